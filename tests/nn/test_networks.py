from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import torch

from helpers import tiny
from ugatit.config import ModelConfig
from ugatit.errors import UserError
from ugatit.nn.model import UGATIT
from ugatit.nn.sizes import discriminator_output_size
from ugatit.training.step import TrainingStep, prepare_model

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference"


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def paper_model(light: bool) -> UGATIT:
    with torch.device("meta"):  # 670M parameters: shapes only, no memory
        return UGATIT(ModelConfig(light=light))


@pytest.mark.parametrize("light,generator", [(True, 10_589_888), (False, 278_959_808)])
def test_parameter_counts_at_paper_config(light, generator):
    model = paper_model(light)
    assert count(model.genA2B) == count(model.genB2A) == generator
    assert count(model.disGA) == 53_130_176
    assert count(model.disLA) == 3_290_560
    assert count(model) == {True: 134_021_248, False: 670_761_088}[light]


def read_reference_layout(path: Path) -> dict[str, dict[str, tuple]]:
    layout, net = {}, None
    for line in path.read_text().splitlines():
        if m := re.match(r"## (\w+)", line):
            net = m.group(1)
            layout[net] = {}
        elif net and line and not line.startswith("#"):
            key, shape = line.split("\t")[:2]
            layout[net][key] = tuple(int(s) for s in re.findall(r"\d+", shape))
    return layout


@pytest.mark.parametrize("light", [True, False])
def test_state_dict_layout_equals_official_schema(light):
    path = REFERENCE / f"official-pytorch-state-dict-{'light' if light else 'full'}.tsv"
    if not path.exists():  # the schema also lives in tests/data for CI machines without shared/
        path = Path(__file__).parents[1] / "assets" / path.name
    reference = read_reference_layout(path)
    model = paper_model(light)
    for net, keys in reference.items():
        ours = {k: tuple(v.shape) for k, v in getattr(model, net).state_dict().items()}
        assert ours == keys, net


@pytest.mark.parametrize(
    "img_size,global_layers,local_layers",
    [
        (64, 6, 5),
        (96, 7, 5),
        (128, 7, 5),
        (256, 7, 5),
        (512, 7, 5),
        (32, 5, 5),
    ],
)
def test_discriminator_depth_follows_image_size(img_size, global_layers, local_layers):
    cfg = ModelConfig(img_size=img_size, ch=2, n_res=1, light=True)
    with torch.device("meta"):
        model = UGATIT(cfg)
    assert (model.config.n_layers_global, model.config.n_layers_local) == (global_layers, local_layers)


@pytest.mark.parametrize("img_size", [64, 96, 128, 256, 512])
def test_every_supported_size_trains(img_size):
    torch.manual_seed(0)
    model = UGATIT(ModelConfig(img_size=img_size, ch=2, n_res=1, light=True))
    step = TrainingStep(model)
    x = torch.rand(1, 3, img_size, img_size) * 2 - 1
    losses = step(x, x.flip(-1), 1)
    assert all(torch.isfinite(v) for v in losses.values())
    out, cam, heat = model.translate(x)
    assert out.shape == x.shape and cam.shape == (1, 2) and heat.shape == (1, 1, img_size // 4, img_size // 4)
    logits, _, _ = model.disGA(x)
    assert logits.shape[-1] == discriminator_output_size(img_size, model.config.n_layers_global)


def test_official_global_discriminator_cannot_run_at_64px():
    assert discriminator_output_size(64, 7) is None
    with pytest.raises(UserError, match="n_layers_global=7 does not fit 64px"):
        UGATIT(ModelConfig(img_size=64, ch=2, n_res=1, n_layers_global=7))


@pytest.mark.parametrize("img_size", [30, 66, 16])
def test_unusable_sizes_are_a_clear_error(img_size):
    with pytest.raises(UserError, match="image size"):
        UGATIT(ModelConfig(img_size=img_size, ch=2, n_res=1))


def test_batch_larger_than_one_trains_and_matches_single_forward():
    model = tiny(False)
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    batched = model.translate(x)
    single = model.translate(x[1:2])
    # Every normalisation is per sample, so a batch is the same as its images one by one.
    torch.testing.assert_close(batched.image[1:2], single.image, atol=1e-5, rtol=0)
    losses = TrainingStep(model)(x, x.flip(0), 1)
    assert all(torch.isfinite(v) for v in losses.values())


def test_paper_init_is_normal_002_with_zero_biases():
    torch.manual_seed(0)
    model = UGATIT(ModelConfig(img_size=64, ch=16, n_res=2, light=True))
    w = model.genA2B.UpBlock1_1.conv1.weight
    assert abs(w.std().item() - 0.02) < 0.001 and abs(w.mean().item()) < 0.001
    assert abs(model.disGA.model[4].weight_orig.std().item() - 0.02) < 0.001
    assert torch.count_nonzero(model.disGA.model[1].bias) == 0
    assert torch.all(model.genA2B.UpBlock1_1.norm1.rho == 0.9)
    assert torch.all(model.genA2B.UpBlock2[3].rho == 0) and torch.all(model.genA2B.UpBlock2[3].gamma == 1)


def test_pytorch_init_is_selectable():
    torch.manual_seed(0)
    model = UGATIT(ModelConfig(img_size=64, ch=16, n_res=2, light=True, init="pytorch"))
    w = model.genA2B.UpBlock1_1.conv1.weight  # kaiming-uniform: bound 1/sqrt(fan_in)
    assert w.abs().max() <= 1 / (64 * 9) ** 0.5 + 1e-6
    assert torch.count_nonzero(model.disGA.model[1].bias) > 0


def test_rho_is_clamped_after_every_generator_update():
    model = tiny()
    step = TrainingStep(model)
    with torch.no_grad():
        model.genA2B.UpBlock1_1.norm1.rho.fill_(5.0)
        model.genB2A.UpBlock2[3].rho.fill_(-5.0)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    step(x, x, 1)
    rhos = [p for n, p in model.named_parameters() if n.endswith("rho") and n.startswith("gen")]
    assert all(((r >= 0) & (r <= 1)).all() for r in rhos)
    assert model.genA2B.UpBlock1_1.norm1.rho.max() == 1.0 and model.genB2A.UpBlock2[3].rho.min() == 0.0


# --- Precision and layout -------------------------------------------------------------------------------
# Stated tolerances against fp32 (relative to the largest magnitude): channels_last 1e-5 forward and
# 1e-5 on the first step's losses; torch.compile 1e-4 / 1e-4; bf16 autocast 6e-2 forward, 2e-2 losses.
TOLERANCES = {
    "channels_last": (1e-5, 1e-5),
    "bf16": (6e-2, 2e-2),
}


def _first_step_losses(model: UGATIT, a, b, **kw) -> dict:
    return {k: v.item() for k, v in TrainingStep(model, **kw)(a, b, 1).items()}


@pytest.mark.parametrize("light", [True, False])
@pytest.mark.parametrize("mode", ["channels_last", "bf16"])
def test_precision_and_layout_stay_close_to_fp32(mode, light):
    base = tiny(light)
    a, b = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    other = prepare_model(copy.deepcopy(base), channels_last=mode == "channels_last")
    kw = {"channels_last": True} if mode == "channels_last" else {"precision": "bf16"}

    ref = base.translate(a).image
    x = a.contiguous(memory_format=torch.channels_last) if mode == "channels_last" else a
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode == "bf16"):
        got = other.translate(x).image.float()
    fwd_tol, loss_tol = TOLERANCES[mode]
    assert (got - ref).abs().max() / ref.abs().max() < fwd_tol

    ref_losses = _first_step_losses(base, a, b)
    got_losses = _first_step_losses(other, a, b, **kw)
    for name, value in ref_losses.items():
        assert got_losses[name] == pytest.approx(value, rel=loss_tol, abs=1e-6), name


def test_bf16_keeps_statistics_and_losses_in_fp32():
    """The norms read bf16 activations as they are and accumulate fp32 statistics (checked numerically in
    test_layers.py); AdaLIN/ILN results, sigma, u, v and the losses are fp32."""
    model = tiny()
    a = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.autocast("cpu", dtype=torch.bfloat16):
        image, _, _ = model.genA2B(a)
        model.disGA(a)
    assert image.dtype == torch.bfloat16  # the last convolution's
    losses = TrainingStep(model, precision="bf16")(a, a, 1)
    assert all(v.dtype == torch.float32 for v in losses.values())
    assert model.disGA.model[1].weight_u.dtype == torch.float32


def test_torch_compile_matches_eager():
    """torch.compile (Inductor, C++ on CPU) on a generator and a discriminator in train mode: outputs
    and weight gradients within 1e-4 of eager, state-dict keys unchanged, power iteration still advancing."""
    base = tiny(light=False)
    compiled = prepare_model(copy.deepcopy(base), compile=True)
    assert list(compiled.genA2B.state_dict()) == list(base.genA2B.state_dict())
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    for name in ("genA2B", "disLA"):
        results = []
        for model in (base, compiled):
            net = getattr(model, name)
            outputs = net(x)
            sum(o.float().square().mean() for o in outputs).backward()
            results.append((outputs, {n: p.grad.clone() for n, p in net.named_parameters()}, net.state_dict()))
        (out_e, grad_e, sd_e), (out_c, grad_c, sd_c) = results
        for e, c in zip(out_e, out_c):
            assert (e - c).abs().max() <= 1e-4 * e.abs().max(), name
        for key, g in grad_e.items():
            assert (g - grad_c[key]).abs().max() <= 1e-4 * g.abs().max() + 1e-8, f"{name}.{key}"
        for key, buf in sd_e.items():  # u, v advanced identically
            torch.testing.assert_close(buf, sd_c[key], atol=1e-5, rtol=0)
