"""The authors' TensorFlow checkpoints (taki0112/UGATIT) as state dicts of our `tf` variant networks.

Every tensor of the checkpoint is either mapped or deliberately ignored (Adam slots and beta powers: the
optimiser's state); anything else makes the import fail with the list of tensors not understood, so a
checkpoint of another layout never loads half-understood. Scopes: `generator_B` = genA2B,
`generator_A` = genB2A, `discriminator_A/global` = disGA, `discriminator_A/local` = disLA (B likewise).

Layout changes: conv kernels [kh, kw, in, out] -> [out, in, kh, kw]; dense kernels [in, out] -> [out, in]
(the full model's first MLP layer also has its rows reordered from TF's (H, W, C) flatten to (C, H, W));
norm vectors [C] -> (1, C, 1, 1); contrib instance norm gamma/beta -> weight/bias. Spectral norm: TF
stores only u and runs one power iteration per call, so weight_u / weight_v are that iteration's
results, with v reordered from (kh, kw, in) to (in, kh, kw) (see nn/tf_networks.py).
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import Tensor

from ..config import Config, ModelConfig, check_config
from ..errors import UserError
from .tf_checkpoint import TFCheckpoint

GENERATORS = {"genA2B": "generator_B", "genB2A": "generator_A"}
DISCRIMINATORS = {
    "disGA": "discriminator_A/global",
    "disGB": "discriminator_B/global",
    "disLA": "discriminator_A/local",
    "disLB": "discriminator_B/local",
}
#: The optimiser's state in a training checkpoint: not needed to translate.
IGNORED = re.compile(r"(/Adam(_1)?$|^beta[12]_power(_\d+)?$)")
#: The authors' checkpoint folder name (`UGATIT.model_dir`), which alone records --smoothing.
MODEL_DIR = re.compile(r"^UGATIT(_light)?_.+_\d+resblock_\d+dis_.*?(?P<smoothing>_smoothing)?$")
#: The rank each conversion reads: biases and norm parameters are vectors; u is [1, out].
RANKS = {"copy": 1, "channel": 1, "conv": 4, "dense": 2, "dense_hwc": 2, "sn_conv": 4, "sn_dense": 2, "sn_u": 2}
#: rho above this exists only under the code since 2019-08-14 (before, rho was clipped to [0, 0.9]).
FIRST_CODE_RHO_MAX = 0.9 + 1e-6


def read_tf_checkpoint(prefix: Path) -> tuple[dict[str, dict[str, Tensor]], ModelConfig]:
    """(six state dicts (two if the file has no discriminators), the config of the tf variant)."""
    ckpt = TFCheckpoint(prefix)
    ckpt.check_shards()
    cfg, plan, _ = plan_import(ckpt)
    try:  # what the shapes ask for, before any tensor is read
        check_config(Config(model=cfg), training=False)
    except UserError as exc:
        raise UserError(f"{ckpt.index_path}: {exc}") from None
    for tf_name, (_, _, how) in plan.items():
        shape = ckpt.shape(tf_name)
        if len(shape) != RANKS[how]:
            raise UserError(
                f"{ckpt.index_path}: tensor {tf_name} has shape {list(shape)}, where a tensor of rank "
                f"{RANKS[how]} belongs: unknown layout"
            )
    networks: dict[str, dict[str, Tensor]] = {}
    for tf_name, (net, key, how) in plan.items():
        try:
            converted = _convert(ckpt, tf_name, key, how, cfg)
        except (RuntimeError, ValueError) as exc:  # sizes that do not fit together
            reason = str(exc).strip().splitlines()[0]
            raise UserError(
                f"{ckpt.index_path}: tensor {tf_name} of shape {list(ckpt.shape(tf_name))} does not fit the "
                f"model its other tensors describe ({reason})"
            ) from None
        networks.setdefault(net, {}).update(converted)
    if cfg.variant == "tf-2019-07":
        _check_first_code_rho(networks, ckpt.index_path)
    return networks, cfg


def plan_import(ckpt: TFCheckpoint) -> tuple[ModelConfig, dict[str, tuple[str, str, str]], list[str]]:
    """(config, {TF name: (network, our key, conversion)}, names ignored): every tensor of the checkpoint
    is in exactly one of the two, or this raises a `UserError` listing those that are not."""
    ignored = [n for n in ckpt.names if IGNORED.search(n)]
    names = [n for n in ckpt.names if not IGNORED.search(n)]
    cfg = _infer_config(ckpt, names, ckpt.prefix)
    plan = {}
    for net, scope in GENERATORS.items():
        plan.update(_generator_plan(scope, net, cfg))
    if all(f"{scope}/D_logit/kernel" in ckpt.entries for scope in DISCRIMINATORS.values()):
        for net, scope in DISCRIMINATORS.items():
            depth = cfg.n_layers_global if "global" in scope else cfg.n_layers_local
            plan.update(_discriminator_plan(scope, net, depth))
    unknown = [n for n in names if n not in plan]
    missing = [n for n in plan if n not in ckpt.entries]
    what = f"{ckpt.index_path}: TF checkpoint of an unknown layout"
    if unknown:
        raise UserError(f"{what}, {len(unknown)} tensors not understood: {_listing(unknown)}")
    if missing:
        raise UserError(f"{what}, {len(missing)} tensors missing: {_listing(missing)}")
    return cfg, plan, ignored


def _listing(names: list[str], limit: int = 6) -> str:
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


# --- The architecture, read off the tensors ---------------------------------------------------------------


def _infer_config(ckpt: TFCheckpoint, names: list[str], prefix: Path) -> ModelConfig:
    g = GENERATORS["genA2B"]
    try:
        ch = ckpt.shape(f"{g}/conv/conv2d/kernel")[3]
        mlp_in, width = ckpt.shape(f"{g}/MLP/linear_0/dense/kernel")
    except (KeyError, IndexError, ValueError):
        sample = _listing([n for n in names if not n.startswith("generator_")] or names, 4)
        raise UserError(
            f"{ckpt.index_path}: TF checkpoint of an unknown layout, not the authors' U-GAT-IT "
            f"generator (no {g}/conv/conv2d/kernel or {g}/MLP/linear_0/dense/kernel; it holds {sample})"
        ) from None
    dim = 4 * ch
    n_res = sum(1 for n in names if re.fullmatch(rf"{g}/resblock_\d+/res1/conv_0/conv2d/kernel", n))
    if width != dim:
        raise UserError(
            f"{ckpt.index_path}: the MLP is {width} wide for a {dim}-channel bottleneck (the authors' "
            "graph runs only with n_res 4): unknown layout"
        )
    light = mlp_in == dim
    side = round((mlp_in / dim) ** 0.5)
    if not light and side * side * dim != mlp_in:
        raise UserError(f"{ckpt.index_path}: {g}/MLP/linear_0 has {mlp_in} inputs, which matches no image size")

    def depth(scope: str) -> int | None:
        s2 = sum(1 for n in names if re.fullmatch(rf"{scope}/conv_\d+/kernel", n))
        return s2 + 2 if s2 else None

    match = MODEL_DIR.match(prefix.parent.name)
    return ModelConfig(
        img_size=256 if light else side * 4,  # a light model runs at any size; 256 is the authors' default
        ch=ch,
        n_res=n_res,
        light=light,
        n_layers_global=depth(DISCRIMINATORS["disGA"]),
        n_layers_local=depth(DISCRIMINATORS["disLA"]),
        init="normal",
        variant="tf-2019-07" if f"{g}/CAM_logit/dense/kernel" in ckpt.entries else "tf",
        smoothing=bool(match.group("smoothing")) if match else True,  # the authors' default
    )


def _check_first_code_rho(networks: dict[str, dict[str, Tensor]], where: Path) -> None:
    for net in GENERATORS:
        top = max(v.max().item() for k, v in networks[net].items() if k.startswith("UpBlock1_") and k.endswith("rho"))
        if top > FIRST_CODE_RHO_MAX:
            raise UserError(
                f"{where}: CAM_logit/dense tensors (the authors' code of 2019-07-31) with an AdaLIN rho of "
                f"{top:.4f} > 0.9 (possible only from 2019-08-14 on): a revision in between, not supported"
            )


# --- Name plans: TF name -> (network, our key, how to convert) --------------------------------------------


def _conv(scope: str, net: str, key: str, conv2d: bool = True) -> dict:
    base = f"{scope}/conv2d" if conv2d else scope
    return {f"{base}/kernel": (net, f"{key}.weight", "conv"), f"{base}/bias": (net, f"{key}.bias", "copy")}


def _norm(scope: str, net: str, key: str, params: tuple[str, ...], rename: dict | None = None) -> dict:
    rename = rename or {}
    how = "copy" if rename else "channel"
    return {f"{scope}/{p}": (net, f"{key}.{rename.get(p, p)}", how) for p in params}


def _generator_plan(g: str, net: str, cfg: ModelConfig) -> dict:
    affine = {"gamma": "weight", "beta": "bias"}
    plan = {
        **_conv(f"{g}/conv", net, "DownBlock.1"),
        **_norm(f"{g}/ins_norm", net, "DownBlock.2", ("gamma", "beta"), affine),
    }
    for i, (conv, norm) in enumerate(((5, 6), (9, 10))):
        plan |= _conv(f"{g}/conv_{i}", net, f"DownBlock.{conv}")
        plan |= _norm(f"{g}/ins_norm_{i}", net, f"DownBlock.{norm}", ("gamma", "beta"), affine)
    for i in range(cfg.n_res):
        for res, (conv, norm) in (("res1", (1, 2)), ("res2", (5, 6))):
            block = f"DownBlock.{12 + i}.conv_block"
            plan |= _conv(f"{g}/resblock_{i}/{res}/conv_0", net, f"{block}.{conv}")
            plan |= _norm(f"{g}/resblock_{i}/{res}/instance_norm", net, f"{block}.{norm}", ("gamma", "beta"), affine)
        for res, n in (("res1", 1), ("res2", 2)):
            plan |= _conv(f"{g}/adaptive_resblock{i}/{res}/conv_0", net, f"UpBlock1_{i + 1}.conv{n}")
            plan |= _norm(
                f"{g}/adaptive_resblock{i}/{res}/instance_layer_norm", net, f"UpBlock1_{i + 1}.norm{n}", ("rho",)
            )
    plan[f"{g}/CAM_logit/kernel"] = (net, "cam_fc.weight", "dense")
    plan[f"{g}/CAM_logit/bias"] = (net, "cam_fc.bias", "copy")
    if cfg.variant == "tf-2019-07":
        plan[f"{g}/CAM_logit/dense/kernel"] = (net, "cam_logit_fc.weight", "dense")
        plan[f"{g}/CAM_logit/dense/bias"] = (net, "cam_logit_fc.bias", "copy")
    plan |= _conv(f"{g}/conv_1x1", net, "conv1x1")
    for tf_name, key in (("linear_0", "FC.0"), ("linear_1", "FC.2"), ("gamma", "gamma"), ("beta", "beta")):
        how = "dense" if key != "FC.0" or cfg.light else "dense_hwc"
        plan[f"{g}/MLP/{tf_name}/dense/kernel"] = (net, f"{key}.weight", how)
        plan[f"{g}/MLP/{tf_name}/dense/bias"] = (net, f"{key}.bias", "copy")
    for i, (conv, norm) in enumerate(((2, 3), (7, 8))):
        plan |= _conv(f"{g}/up_conv_{i}", net, f"UpBlock2.{conv}")
        plan |= _norm(f"{g}/layer_ins_norm_{i}", net, f"UpBlock2.{norm}", ("rho", "gamma", "beta"))
    return plan | _conv(f"{g}/G_logit", net, "UpBlock2.11")


def _discriminator_plan(d: str, net: str, n_layers: int) -> dict:
    def sn(scope: str, key: str, how: str) -> dict:
        return {
            f"{scope}/kernel": (net, key, how),
            f"{scope}/bias": (net, f"{key}.bias", "copy"),
            f"{scope}/u": (net, key, "sn_u"),
        }

    s2 = n_layers - 2
    plan = {}
    for i, scope in enumerate([f"conv_{i}" for i in range(s2)] + ["conv_last"]):
        plan |= sn(f"{d}/{scope}", f"model.{3 * i + 1}", "sn_conv")
    plan |= sn(f"{d}/CAM_logit", "cam_fc", "sn_dense")
    plan |= _conv(f"{d}/conv_1x1", net, "conv1x1")
    return plan | sn(f"{d}/D_logit", "conv", "sn_conv")


# --- Conversions ------------------------------------------------------------------------------------------


def _convert(ckpt: TFCheckpoint, name: str, key: str, how: str, cfg: ModelConfig) -> dict[str, Tensor]:
    if how == "sn_u":
        return {}  # read with its kernel
    value = torch.from_numpy(ckpt.read(name)).float()
    if how == "copy":
        return {key: value}
    if how == "channel":
        return {key: value.reshape(1, -1, 1, 1)}
    if how == "conv":
        return {key: value.permute(3, 2, 0, 1).contiguous()}
    if how == "dense":
        return {key: value.t().contiguous()}
    if how == "dense_hwc":
        side = cfg.img_size // 4
        return {
            key: value.reshape(side, side, 4 * cfg.ch, -1).permute(3, 2, 0, 1).reshape(value.shape[1], -1).contiguous()
        }
    # Spectral norm: `key` is the layer; the kernel becomes weight_orig, u gives weight_u / weight_v.
    scope = name.rsplit("/", 1)[0]
    matrix = value.reshape(-1, value.shape[-1])  # TF's view: [kh * kw * in, out]
    u = torch.from_numpy(ckpt.read(f"{scope}/u")).float()
    v_hat = _l2_normalize(u @ matrix.t())
    u_hat = _l2_normalize(v_hat @ matrix)
    if how == "sn_conv":
        kh, kw, cin, _ = value.shape
        weight = value.permute(3, 2, 0, 1).contiguous()
        v = v_hat.reshape(kh, kw, cin).permute(2, 0, 1).reshape(-1)
    else:
        weight, v = value.t().contiguous(), v_hat.reshape(-1)
    return {f"{key}.weight_orig": weight, f"{key}.weight_u": u_hat.reshape(-1), f"{key}.weight_v": v.contiguous()}


def _l2_normalize(x: Tensor) -> Tensor:
    """tf.nn.l2_normalize: x / sqrt(max(sum(x^2), 1e-12))."""
    return x * torch.rsqrt(torch.clamp((x * x).sum(), min=1e-12))
