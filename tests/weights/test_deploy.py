"""`ugatit export`: ONNX in onnxruntime and TorchScript in torch.jit equal eager PyTorch (1e-4, fp32) at
two batch sizes and, for light models, two image sizes; a full model's graph is tied to its size; the
README's onnxruntime example runs with onnxruntime, numpy and Pillow only."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import tiny
from ugatit.cli import main
from ugatit.nn.model import UGATIT

# torch 2.13 marks TorchScript deprecated; `ugatit export --format torchscript` is asked for all the same.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
README = Path(__file__).resolve().parents[2] / "README.md"
TOLERANCE = 1e-4


def export(checkpoint: Path, fmt: str, direction: str, output: Path, *extra: str) -> None:
    args = ["export", str(checkpoint), "--format", fmt, "--direction", direction, "--output", str(output)]
    assert main([*args, *extra]) == 0


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict:
    """A light and a full model as official checkpoints, and their TorchScript exports (both directions;
    fp16 for the light one too): torch only."""
    root = tmp_path_factory.mktemp("deploy")
    found = {"root": root}
    for seed, light in ((1, True), (2, False)):
        model = tiny(light, seed=seed, discriminators=False).eval()
        name = "light" if light else "full"
        torch.save(model.official_state_dict(), root / f"{name}.pt")
        export(root / f"{name}.pt", "torchscript", "both", root / name)
        found[name] = model
    export(root / "light.pt", "torchscript", "a2b", root / "light16", "--fp16")
    return found


@pytest.fixture(scope="module")
def onnx_models(models, need) -> dict:
    """The same models exported to ONNX (a2b), and onnxruntime: the export extra, which CI installs (`need`
    fails there without it, and skips elsewhere)."""
    ort = need("onnxruntime")
    need("onnx"), need("onnxscript")
    root = models["root"]
    for name in ("light", "full"):
        export(root / f"{name}.pt", "onnx", "a2b", root / name)
    return {**models, "ort": ort}


def eager(model: UGATIT, x: torch.Tensor, direction: str = "a2b") -> list[np.ndarray]:
    return [t.numpy() for t in model.translate(x, direction)]


def assert_equal_outputs(got: list, want: list[np.ndarray], tolerance: float = TOLERANCE) -> None:
    assert len(got) == 3
    for name, g, w in zip(("translation", "cam_logit", "heatmap"), got, want):
        g = g.numpy() if isinstance(g, torch.Tensor) else g
        assert g.shape == w.shape and g.dtype == np.float32, name
        assert np.abs(g - w).max() <= tolerance, (name, float(np.abs(g - w).max()))


LIGHT_SHAPES = [(1, 32, 32), (3, 48, 64)]  # two batch sizes, two image sizes (one not square)
FULL_SHAPES = [(1, 32, 32), (3, 32, 32)]


def test_onnx_equals_eager(onnx_models):
    models, ort = onnx_models, onnx_models["ort"]
    root = models["root"]
    for name, shapes in (("light", LIGHT_SHAPES), ("full", FULL_SHAPES)):
        session = ort.InferenceSession(str(root / f"{name}.onnx"), providers=["CPUExecutionProvider"])
        assert [o.name for o in session.get_outputs()] == ["translation", "cam_logit", "heatmap"]
        dims = session.get_inputs()[0].shape
        assert isinstance(dims[0], str) and dims[1] == 3
        # A full model's MLP reads the whole attention map: the graph is tied to the trained size.
        assert all(isinstance(d, str) for d in dims[2:]) if name == "light" else dims[2:] == [32, 32]
        for batch, height, width in shapes:
            x = torch.rand(batch, 3, height, width) * 2 - 1
            assert_equal_outputs(session.run(None, {"image": x.numpy()}), eager(models[name], x))


def test_torchscript_equals_eager_both_directions(models):
    root = models["root"]
    for name, shapes in (("light", LIGHT_SHAPES), ("full", FULL_SHAPES)):
        for direction in ("a2b", "b2a"):
            scripted = torch.jit.load(str(root / f"{name}_{direction}.pt"))
            for batch, height, width in shapes:
                x = torch.rand(batch, 3, height, width) * 2 - 1
                assert_equal_outputs(list(scripted(x)), eager(models[name], x, direction))


def test_fp16_weights_with_float32_inputs_and_outputs(models):
    scripted = torch.jit.load(str(models["root"] / "light16.pt"))
    dtypes = {p.dtype for name, p in scripted.named_parameters() if name.endswith("weight")}
    assert torch.float16 in dtypes
    x = torch.rand(2, 3, 40, 40) * 2 - 1
    assert_equal_outputs(list(scripted(x)), eager(models["light"], x), tolerance=1e-2)


def test_readme_onnxruntime_example_runs_without_torch(onnx_models, tmp_path):
    models = onnx_models
    block = next(b for b in re.findall(r"```python\n(.*?)```", README.read_text(), re.S) if "onnxruntime" in b)
    onnx_name = re.search(r'InferenceSession\("([^"]+)"', block).group(1)
    photo_name = re.search(r'Image.open\("([^"]+)"', block).group(1)
    (tmp_path / onnx_name).write_bytes((models["root"] / "light.onnx").read_bytes())
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)).save(tmp_path / photo_name)
    (tmp_path / "example.py").write_text(block)
    guard = "import sys; sys.modules['torch'] = None; exec(open('example.py').read())"  # any torch import fails
    proc = subprocess.run([sys.executable, "-c", guard], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    written = re.findall(r'\.save\("([^"]+)"\)', block)
    with Image.open(tmp_path / written[-1]) as out, Image.open(tmp_path / photo_name) as photo:
        assert out.size == (70, 50)
        # What the model itself makes of the same input, through the same 8-bit steps.
        x = torch.from_numpy(
            np.asarray(photo.convert("RGB").resize((256, 256), Image.BILINEAR), np.float32) / 127.5 - 1
        )
        fake = models["light"].translate(x.permute(2, 0, 1)[None]).image[0].permute(1, 2, 0).numpy()
        want = Image.fromarray(((fake + 1) * 127.5).round().clip(0, 255).astype(np.uint8)).resize(
            (70, 50), Image.BICUBIC
        )
        assert np.abs(np.asarray(out, dtype=int) - np.asarray(want, dtype=int)).max() <= 1
