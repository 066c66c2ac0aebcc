"""PaddleGAN and the authors' TensorFlow weights: parity with the golden outputs their own code produced,
every tensor accounted for, and damaged or foreign files refused with one clear message.

The golden files (tests/assets/golden-{paddle,tf}/, see their READMEs) were made by running PaddleGAN's
and the authors' own network code: random weights (perturbed so that every tensor matters), eval outputs
of all six networks on one random image per domain.
"""

from __future__ import annotations

import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tf_bundle import write_checkpoint
from ugatit.errors import UserError
from ugatit.weights.loading import build_model, read_weights
from ugatit.weights.paddle import load_pdparams, read_pdparams
from ugatit.weights.tf import plan_import, read_tf_checkpoint
from ugatit.weights.tf_checkpoint import TFCheckpoint, find_prefix

ASSETS = Path(__file__).resolve().parents[1] / "assets"
PADDLE = {mode: ASSETS / "golden-paddle" / mode for mode in ("light", "full")}
TF = {mode: ASSETS / "golden-tf" / mode for mode in ("light", "full")}
IMAGE_TOL, OTHER_TOL = 2e-5, 1e-5
#: Golden output keys of each network: (input, Paddle prefix, TF keys (out, cam_logit, heatmap)).
OUTPUTS = {
    "genA2B": ("real_A", "genA2B", ("a2b_fake_B", "a2b_cam_logit", "a2b_heatmap")),
    "genB2A": ("real_B", "genB2A", ("b2a_fake_A", "b2a_cam_logit", "b2a_heatmap")),
    "disGA": ("real_A", "disGA", ("dA_global_logit", "dA_global_cam_logit", "dA_global_heatmap")),
    "disLA": ("real_A", "disLA", ("dA_local_logit", "dA_local_cam_logit", "dA_local_heatmap")),
    "disGB": ("real_B", "disGB", ("dB_global_logit", "dB_global_cam_logit", "dB_global_heatmap")),
    "disLB": ("real_B", "disLB", ("dB_local_logit", "dB_local_cam_logit", "dB_local_heatmap")),
}


def tf_folder(mode: str) -> Path:
    return next((TF[mode] / "checkpoint").iterdir())


def max_errors(weights, golden: dict, nhwc: bool) -> dict[str, float]:
    """Largest |ours - golden| per network and output, the model built at the golden's 96 px."""
    weights.config.model.img_size = 96
    model = build_model(weights, discriminators=True)
    errors = {}
    with torch.no_grad():
        for net, (source, prefix, tf_keys) in OUTPUTS.items():
            x = torch.from_numpy(golden[source])
            outputs = getattr(model, net)(x.permute(0, 3, 1, 2) if nhwc else x)
            keys = tf_keys if nhwc else [f"{prefix}_{k}" for k in ("out", "cam_logit", "heatmap")]
            for name, got, key in zip(("out", "cam_logit", "heatmap"), outputs, keys):
                want = golden[key]
                got = got.permute(0, 2, 3, 1) if nhwc and got.ndim == 4 and name == "out" else got
                errors[f"{net}.{name}"] = float(np.abs(got.numpy().reshape(want.shape) - want).max())
    return errors


def assert_within_tolerance(errors: dict[str, float]) -> None:
    for key, error in errors.items():
        tolerance = IMAGE_TOL if key.startswith("gen") and key.endswith(".out") else OTHER_TOL
        assert error <= tolerance, f"{key}: {error:.3g}"


@pytest.mark.parametrize("mode", ["light", "full"])
def test_paddle_outputs_equal_paddlegan(mode):
    weights = read_weights(PADDLE[mode] / "epoch_1_weight.pdparams")
    assert weights.kind == "PaddleGAN weights" and weights.config.model.variant == "official"
    assert (weights.config.model.light, weights.config.model.ch, weights.config.model.n_res) == (mode == "light", 2, 4)
    assert_within_tolerance(max_errors(weights, np.load(PADDLE[mode] / "outputs.npz"), nhwc=False))


@pytest.mark.parametrize("mode", ["light", "full"])
def test_tf_outputs_equal_the_authors_graph(mode):
    weights = read_weights(tf_folder(mode))  # the folder, as the authors' code saves it
    model = weights.config.model
    assert weights.kind == "TF checkpoint" and (model.variant, model.smoothing) == ("tf", True)
    assert (model.light, model.ch, model.n_res, model.n_layers_global, model.n_layers_local) == (
        mode == "light",
        2,
        4,
        7,
        5,
    )
    assert_within_tolerance(max_errors(weights, np.load(TF[mode] / "outputs.npz"), nhwc=True))


def test_tf_checkpoint_is_found_from_each_of_its_names():
    folder = tf_folder("light")
    prefix = folder / "UGATIT_light.model-1"
    for given in (folder, prefix, Path(f"{prefix}.index"), Path(f"{prefix}.data-00000-of-00001")):
        assert find_prefix(given) == prefix, given


def test_tf_state_file_written_elsewhere(tmp_path):
    """TF 1 recorded the prefix as the trainer gave it: relative to its working folder, or absolute."""
    folder = tmp_path / "UGATIT_light_selfie2anime_lsgan_4resblock_6dis_1_1_10_10_1000_sn_smoothing"
    shutil.copytree(tf_folder("light"), folder)
    (folder / "checkpoint").chmod(0o644)
    for recorded in (f"checkpoint/{folder.name}/UGATIT_light.model-1", "/home/someone/ckpt/UGATIT_light.model-1"):
        (folder / "checkpoint").write_text(f'model_checkpoint_path: "{recorded}"\n')
        assert find_prefix(folder) == folder / "UGATIT_light.model-1"


# --- Every tensor used or deliberately ignored -----------------------------------------------------------


@pytest.mark.parametrize("mode", ["light", "full"])
def test_every_tf_tensor_is_mapped_or_ignored(mode):
    ckpt = TFCheckpoint(find_prefix(tf_folder(mode)))
    _cfg, plan, ignored = plan_import(ckpt)
    assert set(plan) | set(ignored) == set(ckpt.names) and not set(plan) & set(ignored)
    assert len(ignored) == 500 and all(n.endswith(("/Adam", "/Adam_1")) or "_power" in n for n in ignored)
    assert len(plan) == 248 + 28  # model variables and spectral-norm u
    # Each maps to its own key (u tensors ride with their kernel), and fills the model exactly.
    targets = [(net, key) for net, key, how in plan.values() if how != "sn_u"]
    assert len(targets) == len(set(targets))
    networks, _ = read_tf_checkpoint(ckpt.prefix)
    model = build_model(read_weights(ckpt.prefix), discriminators=True)
    for net, state in model.official_state_dict().items():
        assert set(state) == set(networks[net]), net


def golden_tensors(mode: str) -> dict[str, np.ndarray]:
    ckpt = TFCheckpoint(find_prefix(tf_folder(mode)))
    return {n: ckpt.read(n) for n in ckpt.names if "Adam" not in n and "_power" not in n}


def test_a_tf_tensor_not_understood_is_an_error(tmp_path):
    tensors = golden_tensors("light") | {"generator_B/attention_gate/kernel": np.zeros((8, 1), np.float32)}
    prefix = write_checkpoint(tmp_path / "UGATIT_light.model-7", tensors)
    with pytest.raises(
        UserError, match=r"unknown layout, 1 tensors not understood: generator_B/attention_gate/kernel$"
    ):
        read_weights(prefix)


def test_a_missing_tf_tensor_is_an_error(tmp_path):
    tensors = golden_tensors("light")
    del tensors["generator_A/layer_ins_norm_1/rho"]
    with pytest.raises(UserError, match="1 tensors missing: generator_A/layer_ins_norm_1/rho"):
        read_weights(write_checkpoint(tmp_path / "m", tensors))


def test_the_first_public_tf_code_layout(tmp_path):
    """2019-07-31 code: CAM logit from CAM_logit/dense, rho used unshifted (<= 0.9). With the dense layer
    equal to CAM_logit and every rho r <= 0.9, the generator equals the current code's with r + 0.1."""
    tensors = golden_tensors("light")
    for g in ("generator_A", "generator_B"):
        tensors[f"{g}/CAM_logit/dense/kernel"] = tensors[f"{g}/CAM_logit/kernel"]
        tensors[f"{g}/CAM_logit/dense/bias"] = tensors[f"{g}/CAM_logit/bias"]
    adalin = [n for n in tensors if "instance_layer_norm/rho" in n]
    with pytest.raises(UserError, match=r"AdaLIN rho of 0.9.* > 0.9 .*not supported"):
        read_weights(write_checkpoint(tmp_path / "between", tensors))  # golden rho reach 1: code of mid-August

    for n in adalin:
        tensors[n] = np.minimum(tensors[n], 0.9)
    first = read_weights(write_checkpoint(tmp_path / "first", tensors))
    assert first.config.model.variant == "tf-2019-07"
    for n in adalin:
        tensors[n] = tensors[n] + np.float32(0.1)
    for g in ("generator_A", "generator_B"):
        del tensors[f"{g}/CAM_logit/dense/kernel"], tensors[f"{g}/CAM_logit/dense/bias"]
    current = read_weights(write_checkpoint(tmp_path / "current", tensors))
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    a, b = build_model(first).translate(x), build_model(current).translate(x)
    for got, want in zip(a, b):
        assert torch.allclose(got, want, atol=1e-6)


# --- Damaged and foreign files ----------------------------------------------------------------------------


@pytest.fixture
def tf_copy(tmp_path) -> Path:
    folder = tmp_path / tf_folder("light").name
    shutil.copytree(tf_folder("light"), folder)
    for f in folder.iterdir():
        f.chmod(0o644)
    return folder / "UGATIT_light.model-1"


def test_truncated_tf_index(tf_copy):
    index = Path(f"{tf_copy}.index")
    index.write_bytes(index.read_bytes()[:20000])
    with pytest.raises(UserError, match=r"UGATIT_light.model-1.index is not a TF checkpoint index, or it is truncated"):
        read_weights(tf_copy)


def test_missing_tf_data_shard(tf_copy):
    Path(f"{tf_copy}.data-00000-of-00001").unlink()
    with pytest.raises(UserError, match=r"data shard missing: .*UGATIT_light.model-1.data-00000-of-00001"):
        read_weights(tf_copy.parent)


def test_corrupted_tf_index_block_and_data(tf_copy):
    entry = TFCheckpoint(tf_copy).entries["generator_B/conv/conv2d/kernel"]
    data = Path(f"{tf_copy}.data-00000-of-00001")
    raw = bytearray(data.read_bytes())
    raw[entry.offset + 5] ^= 0x40
    data.write_bytes(bytes(raw))
    with pytest.raises(UserError, match=r"tensor generator_B/conv/conv2d/kernel in .* fails its checksum"):
        read_weights(tf_copy)
    index = Path(f"{tf_copy}.index")
    raw = bytearray(index.read_bytes())
    raw[100] ^= 0x01
    index.write_bytes(bytes(raw))
    with pytest.raises(UserError, match=r"index .* is corrupted"):
        read_weights(tf_copy)


def test_compressed_tf_index_and_foreign_tf_checkpoint(tmp_path):
    tensors = {"encoder/conv/kernel": np.zeros((3, 3, 3, 8), np.float32)}
    with pytest.raises(UserError, match="snappy-compressed blocks"):
        read_weights(write_checkpoint(tmp_path / "snappy", tensors, compression=1))
    with pytest.raises(UserError, match=r"unknown layout, not the authors' U-GAT-IT generator .*encoder/conv/kernel"):
        read_weights(write_checkpoint(tmp_path / "other", tensors))


class _Touch:
    """Unpickled by plain pickle, this runs `touch MARKER`."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def test_crafted_pdparams_is_refused_before_anything_runs(tmp_path):
    marker = tmp_path / "ran"
    crafted = tmp_path / "evil.pdparams"
    crafted.write_bytes(pickle.dumps({"genA2B": {"DownBlock.1.weight": _Touch(marker)}, "genB2A": {}}, protocol=4))
    with pytest.raises(
        UserError, match=r"refused to load .*evil.pdparams: it references posix.system.*nothing in it was run"
    ):
        read_weights(crafted)
    assert not marker.exists()
    # The file is live: plain pickle does run it.
    subprocess.run([sys.executable, "-c", f"import pickle; pickle.load(open({str(crafted)!r}, 'rb'))"], check=True)
    assert marker.exists()


def test_pdparams_of_another_model_and_bad_frozen_norms(tmp_path):
    cyclegan = tmp_path / "cyclegan.pdparams"
    cyclegan.write_bytes(pickle.dumps({"netG_A": {"w": np.zeros(2, np.float32)}, "netD_A": {}}, protocol=4))
    with pytest.raises(
        UserError, match=r"cyclegan.pdparams is not PaddleGAN U-GAT-IT weights: its entries are netG_A, netD_A"
    ):
        read_weights(cyclegan)

    content = load_pdparams(PADDLE["light"] / "epoch_1_weight.pdparams")
    content["genA2B"]["DownBlock.6.scale"] = content["genA2B"]["DownBlock.6.scale"] * 2
    learned = tmp_path / "learned.pdparams"
    learned.write_bytes(pickle.dumps(content, protocol=4))
    with pytest.raises(UserError, match=r"genA2B.DownBlock.6.scale is not 1"):
        read_pdparams(learned)

    content["genA2B"]["DownBlock.6.scale"] = content["genA2B"]["DownBlock.6.scale"] / 2
    content["genB2A"]["FC.1.weight"] = np.zeros((8, 8), np.float32)  # a tensor the official layout lacks
    unmapped = tmp_path / "unmapped.pdparams"
    unmapped.write_bytes(pickle.dumps(content, protocol=4))
    with pytest.raises(UserError, match=r"unmapped.pdparams: it holds genB2A.FC.1.weight, which its config"):
        build_model(read_weights(unmapped))


def test_pdparams_layouts_checkpoint_and_generator_only(tmp_path):
    content = load_pdparams(PADDLE["light"] / "epoch_1_weight.pdparams")
    assert set(content) == {"genA2B", "genB2A", "disGA", "disGB", "disLA", "disLB", "StructuredToParameterName@@"}
    checkpoint = tmp_path / "epoch_3_checkpoint.pdparams"
    checkpoint.write_bytes(
        pickle.dumps(content | {"epoch": 3, "optimG": {"LR_Scheduler": {"last_lr": 1e-4}}, "optimD": {}}, protocol=4)
    )
    assert read_weights(checkpoint).has_discriminators
    generators = tmp_path / "generators.pdparams"
    generators.write_bytes(pickle.dumps({k: content[k] for k in ("genA2B", "genB2A")}, protocol=4))
    weights = read_weights(generators)
    assert not weights.has_discriminators
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    full_file = build_model(read_weights(PADDLE["light"] / "epoch_1_weight.pdparams"))
    assert torch.equal(build_model(weights).translate(x, "b2a").image, full_file.translate(x, "b2a").image)
