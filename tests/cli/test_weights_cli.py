"""Foreign weights through the commands: `translate` on the golden inputs (a real process per kind),
`convert`, `eval --checkpoint`, `train --init-from`, and one-line errors for damaged or foreign files."""

from __future__ import annotations

import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tf_bundle import write_checkpoint
from ugatit.cli import main
from ugatit.data import tensor_to_uint8
from ugatit.weights.checkpoints import load_training_checkpoint
from ugatit.weights.loading import load_model, read_weights

ASSETS = Path(__file__).resolve().parents[1] / "assets"
SRC = Path(__file__).resolve().parents[2] / "src"
PDPARAMS = {mode: ASSETS / "golden-paddle" / mode / "epoch_1_weight.pdparams" for mode in ("light", "full")}
TF_DIR = {mode: next((ASSETS / "golden-tf" / mode / "checkpoint").iterdir()) for mode in ("light", "full")}


def ugatit(*args) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-m", "ugatit", *map(str, args)], capture_output=True, text=True, env=env, timeout=180
    )


def in_process(capsys, *args) -> subprocess.CompletedProcess:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, captured.out, captured.err)


def one_line_error(proc: subprocess.CompletedProcess, command: str, *fragments: str) -> None:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith(f"ugatit {command}: error:")]
    assert len(lines) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


# --- translate on the golden input, as a user runs it ----------------------------------------------------

CASES = {  # kind/mode: (weights, golden outputs, input key, output key, NHWC)
    "paddle-light": (PDPARAMS["light"], ASSETS / "golden-paddle/light/outputs.npz", "real_A", "genA2B_out", False),
    "paddle-full": (PDPARAMS["full"], ASSETS / "golden-paddle/full/outputs.npz", "real_A", "genA2B_out", False),
    "tf-light": (TF_DIR["light"], ASSETS / "golden-tf/light/outputs.npz", "real_A", "a2b_fake_B", True),
    "tf-full": (TF_DIR["full"] / "UGATIT.model-1", ASSETS / "golden-tf/full/outputs.npz", "real_A", "a2b_fake_B", True),
}


@pytest.mark.parametrize("case", CASES)
def test_translate_golden_input(case, tmp_path):
    """The golden input as an 8-bit PNG through `ugatit translate` in a real process. The PNG is exactly
    what the model gives on that 8-bit input (+-1 level of rounding), and within a few levels of the
    golden output, which the foreign code computed on the unquantised input."""
    weights, outputs, source, target, nhwc = CASES[case]
    golden = np.load(outputs)
    x = torch.from_numpy(golden[source])
    x = x.permute(0, 3, 1, 2) if nhwc else x
    photo = tmp_path / "golden.png"
    Image.fromarray(tensor_to_uint8(x)[0]).save(photo)
    # A light model from these files runs at 256 px unless told (they do not record a size); a full one
    # runs at its size, read off the file.
    size = ["--size", "96"] if case.endswith("light") else []
    proc = ugatit(
        "translate",
        "--checkpoint",
        weights,
        "--input",
        photo,
        "--output",
        tmp_path / "out",
        "--no-progress",
        "--device",
        "cpu",
        *size,
    )
    assert proc.returncode == 0, proc.stderr
    got = np.asarray(Image.open(tmp_path / "out/golden.png"), dtype=int)

    model, _ = load_model(weights)
    model.config.img_size = 96
    quantised = torch.from_numpy(np.asarray(Image.open(photo), dtype=np.float32) / 127.5 - 1).permute(2, 0, 1)[None]
    expected = tensor_to_uint8(model.translate(quantised).image)[0].astype(int)
    assert np.abs(got - expected).max() <= 1
    want = golden[target][0] if nhwc else golden[target][0].transpose(1, 2, 0)
    assert np.abs(got - (want + 1) * 127.5).max() <= 2  # measured: 0.8 to 1.4 levels


# --- convert, eval, train --init-from ---------------------------------------------------------------------


def test_convert_tf_to_an_exact_export(tmp_path, capsys):
    proc = in_process(capsys, "convert", TF_DIR["full"], tmp_path / "selfie2anime")
    assert proc.returncode == 0, proc.stderr
    assert "read TF checkpoint" in proc.stdout and "full at 96 px, ch=2, n_res=4, tf networks" in proc.stdout
    export = tmp_path / "selfie2anime.safetensors"
    assert json.loads((tmp_path / "selfie2anime.json").read_text())["model"]["variant"] == "tf"
    golden = np.load(ASSETS / "golden-tf/full/outputs.npz")
    model, config = load_model(export)
    assert config.model.variant == "tf"
    for net, source, key in (("genA2B", "real_A", "a2b_fake_B"), ("genB2A", "real_B", "b2a_fake_A")):
        with torch.no_grad():
            out = getattr(model, net)(torch.from_numpy(golden[source]).permute(0, 3, 1, 2))[0]
        assert np.abs(out.permute(0, 2, 3, 1).numpy() - golden[key]).max() <= 2e-5


def test_eval_checkpoint_reads_pdparams(tmp_path, capsys):
    from ugatit.demo.shapes import write_shapes

    write_shapes(tmp_path / "shapes", size=32, n_train=1, n_test=4, seed=0)
    proc = in_process(
        capsys,
        "eval",
        "--checkpoint",
        PDPARAMS["light"],
        "--data",
        tmp_path / "shapes",
        "--direction",
        "a2b",
        "--feature-extractor",
        "standin_extractor:make",
        "--device",
        "cpu",
    )
    assert proc.returncode == 0, proc.stderr
    assert "a2b: testA (4 images) translated, vs real testB" in proc.stdout


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("finetune")
    rng = np.random.default_rng(0)
    for domain in ("trainA", "trainB"):
        (root / domain).mkdir()
        for i in range(2):
            Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(root / domain / f"{i}.png")
    return root


def test_train_init_from_pdparams(data, tmp_path, capsys):
    """With a vanishing learning rate, the first checkpoint holds the imported weights: the run really
    started from them, all six networks, at the size asked for (light models train at any size)."""
    proc = in_process(
        capsys,
        "train",
        data,
        "--init-from",
        PDPARAMS["light"],
        "--out",
        tmp_path / "run",
        "--iters",
        "1",
        "--lr",
        "1e-30",
        "--img-size",
        "96",
        "--workers",
        "0",
        "--sample-every",
        "0",
        "--no-progress",
        "--device",
        "cpu",
    )
    assert proc.returncode == 0, proc.stderr
    assert "starting from PaddleGAN weights" in proc.stderr and "discriminators from the file" in proc.stderr
    state = load_training_checkpoint(tmp_path / "run")
    model = state["config"]["model"]
    assert [model[k] for k in ("light", "ch", "n_res", "img_size", "n_layers_global", "n_layers_local")] == [
        True,
        2,
        4,
        96,
        7,
        5,
    ]
    imported = read_weights(PDPARAMS["light"]).networks
    for net, tensors in imported.items():
        for key, value in tensors.items():
            if key.endswith(("weight_u", "weight_v")):  # every train-mode D call runs a power iteration
                continue
            assert torch.allclose(state["networks"][net][key], value, atol=1e-6), f"{net}.{key}"


@pytest.mark.parametrize(
    "source, extra, fragments",
    [
        ("full", ["--ch", "4"], ["--ch is 4", "holds a model with ch=2"]),
        ("tf", [], ["runs the authors' TF networks", "not trained here"]),
        ("full", ["--resume"], ["--init-from starts a new run"]),
    ],
)
def test_train_init_from_refusals(data, tmp_path, capsys, source, extra, fragments):
    src = TF_DIR["light"] if source == "tf" else PDPARAMS[source]
    proc = in_process(capsys, "train", data, "--init-from", src, "--out", tmp_path / "run", "--iters", "1", *extra)
    one_line_error(proc, "train", *fragments)


# --- One clear line for bad files -------------------------------------------------------------------------


@pytest.fixture
def bad(tmp_path) -> dict[str, Path]:
    tf = tmp_path / "tf"
    shutil.copytree(TF_DIR["light"], tf)
    for f in tf.iterdir():
        f.chmod(0o644)
    truncated = tmp_path / "truncated"
    shutil.copytree(tf, truncated)
    index = truncated / "UGATIT_light.model-1.index"
    index.write_bytes(index.read_bytes()[:1000])
    (tf / "UGATIT_light.model-1.data-00000-of-00001").unlink()
    cyclegan = tmp_path / "cyclegan.pdparams"
    cyclegan.write_bytes(pickle.dumps({"netG_A": {}, "netG_B": {}, "netD_A": {}, "netD_B": {}}, protocol=4))
    foreign = write_checkpoint(tmp_path / "resnet.ckpt-5", {"resnet/conv1/kernel": np.zeros((7, 7, 3, 4), np.float32)})
    photo = tmp_path / "p.png"
    Image.new("RGB", (32, 32)).save(photo)
    return {"missing_shard": tf, "truncated": truncated, "cyclegan": cyclegan, "foreign": foreign, "photo": photo}


@pytest.mark.parametrize(
    "what, fragments",
    [
        ("truncated", ["UGATIT_light.model-1.index is not a TF checkpoint index, or it is truncated"]),
        ("missing_shard", ["data shard missing", "UGATIT_light.model-1.data-00000-of-00001"]),
        ("cyclegan", ["cyclegan.pdparams is not PaddleGAN U-GAT-IT weights", "netG_A"]),
        ("foreign", ["resnet.ckpt-5.index: TF checkpoint of an unknown layout", "resnet/conv1/kernel"]),
    ],
)
def test_bad_weights_are_one_line(bad, tmp_path, capsys, what, fragments):
    proc = in_process(
        capsys, "translate", "--checkpoint", bad[what], "--input", bad["photo"], "--output", tmp_path / "o"
    )
    one_line_error(proc, "translate", *fragments)
    proc = in_process(capsys, "convert", bad[what], tmp_path / "c")
    one_line_error(proc, "convert", *fragments)


def test_bad_weights_in_a_real_process(bad, tmp_path):
    proc = ugatit("translate", "--checkpoint", bad["foreign"], "--input", bad["photo"], "--output", tmp_path / "o")
    one_line_error(proc, "translate", "unknown layout", "resnet/conv1/kernel")
    assert proc.stdout == ""
