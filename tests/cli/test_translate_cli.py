"""`ugatit translate` end to end, from each kind of checkpoint file.

A few runs go through a real subprocess (exit status, stderr, no traceback); the rest call the same
`ugatit.cli.main` in-process, which is equivalent for these checks (anything but a `UserError` would
escape it and fail the test) and saves the ~3 s a new interpreter takes to import torch.
"""

from __future__ import annotations

import os
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ugatit.cli import main
from ugatit.config import Config, ModelConfig
from ugatit.data import eval_transform, tensor_to_uint8
from ugatit.nn.model import UGATIT
from ugatit.weights.checkpoints import checkpoint_path, save_training_checkpoint
from ugatit.weights.export import export_generators

SIZE = 32


def make_model(light: bool, seed: int) -> UGATIT:
    torch.manual_seed(seed)
    return UGATIT(ModelConfig(img_size=SIZE, ch=4, n_res=1, light=light)).eval()


def write_noise(path: Path, width: int, height: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def models() -> dict[str, UGATIT]:
    return {"light": make_model(light=True, seed=1), "full": make_model(light=False, seed=2)}


@pytest.fixture(scope="module")
def files(tmp_path_factory, models) -> dict[str, Path]:
    """One checkpoint of each kind, an input folder of assorted sizes, and damaged files."""
    root = tmp_path_factory.mktemp("translate_cli")
    light, full = models["light"], models["full"]
    run_dir = root / "run"
    save_training_checkpoint(
        checkpoint_path(run_dir, 10), model=light, optimizers={}, config=Config(model=light.config), step=10
    )
    official = root / "official_full.pt"
    torch.save(full.official_state_dict(), official)
    export = export_generators(light, Config(), root / "light.safetensors")

    inp = root / "photos"
    for i, (name, w, h) in enumerate([("a.png", 40, 30), ("sub/b.jpg", 17, 50), ("sub/deep/c.png", 32, 32)]):
        write_noise(inp / name, w, h, seed=i)
    (inp / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)

    good = official.read_bytes()
    (root / "truncated.pt").write_bytes(good[: len(good) // 2])
    (root / "garbage.pt").write_bytes(os.urandom(2000))
    (root / "notes.pt").write_text("model: {ch: 4}\n")
    torch.save({"weights": torch.zeros(3)}, root / "wrong_kind.pt")
    exported = export.read_bytes()
    (root / "truncated.safetensors").write_bytes(exported[: len(exported) // 2])
    (root / "a_file").write_text("not a folder")
    (root / "only_bad").mkdir()
    (root / "only_bad/x.png").write_bytes(b"nope")
    return {"root": root, "run": run_dir, "official": official, "export": export, "input": inp}


def run_cli(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ugatit", "translate", "--no-progress", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def run_main(capsys, *args: str | Path) -> subprocess.CompletedProcess:
    """`ugatit translate` in this process, reported like a finished subprocess."""
    code = main(["translate", "--no-progress", *map(str, args)])
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, captured.out, captured.err)


def model_translation(model: UGATIT, path: Path, direction: str, side: int = SIZE) -> Image.Image:
    with Image.open(path) as img:
        src = img.convert("RGB")
    out = Image.fromarray(tensor_to_uint8(model.translate(eval_transform(src, side)[None], direction).image)[0])
    return out if out.size == src.size else out.resize(src.size, Image.Resampling.BICUBIC)


def assert_close(got_path: Path, want: Image.Image, tolerance: int) -> None:
    with Image.open(got_path) as got:
        assert got.size == want.size
        diff = np.abs(np.asarray(got, dtype=int) - np.asarray(want, dtype=int))
    assert diff.max() <= tolerance


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.srcs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.srcs.append(dict(attrs)["src"])


def test_folder_with_attention_from_an_export(files, models, tmp_path):
    out = tmp_path / "out"
    proc = run_cli("--checkpoint", files["export"], "--input", files["input"], "--output", out, "--attention")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    # The unreadable file is reported with its reason, and again in the summary.
    assert f"skipped {files['input'] / 'broken.png'}:" in proc.stderr
    assert "translated 3 images (a2b)" in proc.stdout and "skipped 1 unreadable file" in proc.stdout
    for name, size in {"a.png": (40, 30), "sub/b.png": (17, 50), "sub/deep/c.png": (32, 32)}.items():
        with Image.open(out / name) as img:
            assert img.size == size
        with Image.open(out / name.replace(".png", "_attention.png")) as overlay:
            assert overlay.size == size
    assert not (out / "broken.png").exists()
    # Exported weights are fp16, so allow a little rounding against the fp32 model.
    assert_close(out / "sub/b.png", model_translation(models["light"], files["input"] / "sub/b.jpg", "a2b"), 3)

    page = Links()
    page.feed((out / "index.html").read_text(encoding="utf-8"))
    assert len(page.srcs) == 9  # input, output and attention for 3 images
    for src in page.srcs:
        assert not os.path.isabs(src) and (out / src).is_file(), src
    assert {"a.png", "a_attention.png", "sub/b.png", "sub/deep/c_attention.png"} <= set(page.srcs)


def test_b2a_from_an_official_checkpoint_uses_genB2A(files, models, tmp_path, capsys):
    out = tmp_path / "out"
    image = files["input"] / "sub/deep/c.png"
    proc = run_main(capsys, "--checkpoint", files["official"], "--input", image, "--output", out, "--direction", "b2a")
    assert proc.returncode == 0, proc.stderr
    assert_close(out / "c.png", model_translation(models["full"], image, "b2a"), 1)
    with Image.open(out / "c.png") as got:
        a2b = model_translation(models["full"], image, "a2b")
        assert np.abs(np.asarray(got, dtype=int) - np.asarray(a2b, dtype=int)).max() > 1


def test_light_model_from_a_run_folder_at_another_size(files, models, tmp_path, capsys):
    out = tmp_path / "out"
    proc = run_main(capsys, "--checkpoint", files["run"], "--input", files["input"], "--output", out, "--size", "64")
    assert proc.returncode == 0, proc.stderr
    assert "64x64 px" in (out / "index.html").read_text()
    assert_close(out / "a.png", model_translation(models["light"], files["input"] / "a.png", "a2b", side=64), 1)


def one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("ugatit translate: error:")]
    assert len(lines) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_full_model_refuses_another_size(files, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["--checkpoint", files["official"], "--input", files["input"], "--output", out, "--size", "64"]
    proc = run_main(capsys, *args)
    one_line_error(proc, "full model", "trained at 32 px")
    assert not out.exists()


@pytest.mark.parametrize(
    "checkpoint, input_, output, fragments",
    [
        ("missing.pt", "photos", "out", ["checkpoint not found", "missing.pt"]),
        ("official_full.pt", "nowhere", "out", ["input not found", "nowhere"]),
        ("garbage.pt", "photos", "out", ["garbage.pt", "corrupted"]),
        ("notes.pt", "photos", "out", ["notes.pt", "a text file, not a PyTorch file"]),
        ("truncated.pt", "photos", "out", ["truncated.pt", "corrupted"]),
        ("truncated.safetensors", "photos", "out", ["truncated.safetensors", "corrupted"]),
        ("wrong_kind.pt", "photos", "out", ["wrong_kind.pt", "neither a ugatit checkpoint"]),
        ("official_full.pt", "photos", "a_file/out", ["cannot create output folder", "a_file"]),
        ("official_full.pt", "photos", "a_file", ["exists and is not a folder"]),
        ("official_full.pt", "photos", "photos", ["input folder or inside it"]),
        ("official_full.pt", "only_bad", "out_bad", ["nothing translated", "x.png"]),
    ],
)
def test_errors_are_one_line(files, capsys, checkpoint, input_, output, fragments):
    root = files["root"]
    proc = run_main(capsys, "--checkpoint", root / checkpoint, "--input", root / input_, "--output", root / output)
    one_line_error(proc, *fragments)
    assert not (root / "out").exists()
    assert "miniz" not in proc.stderr and "KeyError" not in proc.stderr  # what the file is, not a library's internals


@pytest.mark.parametrize(
    "checkpoint, input_, fragments",
    [("truncated.pt", "photos", ["truncated.pt", "corrupted"]), ("missing.pt", "photos", ["checkpoint not found"])],
)
def test_errors_are_one_line_in_a_real_process(files, checkpoint, input_, fragments):
    root = files["root"]
    proc = run_cli("--checkpoint", root / checkpoint, "--input", root / input_, "--output", root / "out")
    one_line_error(proc, *fragments)
    assert proc.stdout == ""
