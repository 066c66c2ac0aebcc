"""`ugatit eval` end to end in a subprocess, with a stand-in feature extractor and without weights."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

HERE = Path(__file__).resolve().parent
N_IMAGES = 20


def write_folder(folder: Path, n: int, base: tuple[int, int, int], seed: int, size: int = 32) -> Path:
    """n small noisy images around one colour; sizes vary a little to exercise resizing."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for i in range(n):
        side = size + (i % 3) * 4
        pixels = np.clip(np.array(base) + rng.normal(0, 40, (side, side, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:03d}.png")
    return folder


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("eval")
    return {
        "real": write_folder(root / "testB", N_IMAGES, (200, 60, 60), seed=0),
        "fake": write_folder(root / "fakeB", N_IMAGES, (170, 80, 70), seed=1),
        "source": write_folder(root / "testA", N_IMAGES, (60, 60, 200), seed=2),
    }


def run_cli(*args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.pop("UGATIT_INCEPTION_WEIGHTS", None)
    env["UGATIT_OFFLINE"] = "1"  # never touch the network from tests
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "ugatit", "eval", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def load_standin():
    spec = importlib.util.spec_from_file_location("standin_extractor_inproc", HERE / "standin_extractor.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.make()


def test_eval_prints_table_and_writes_json(folders, tmp_path):
    out = tmp_path / "report" / "eval.json"
    proc = run_cli(
        "--real",
        str(folders["real"]),
        "--fake",
        str(folders["fake"]),
        "--source",
        str(folders["source"]),
        "--feature-extractor",
        "standin_extractor:make",
        "--subsets",
        "10",
        "--json",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    table = proc.stdout
    for text in (
        "KID x100",
        "mean KID x100",
        "KID(source, fake) x100",
        "FID",
        "paper: blocks of <=10",
        "subsets: 10 x 20",
    ):
        assert text in table, text
    assert f"({N_IMAGES} images)" in table
    assert "weights n/a (custom extractor)" in table and "stand-in extractor (tests)" in table

    report = json.loads(out.read_text())
    metrics = report["metrics"]
    paper = metrics["kid_paper"]
    assert paper["protocol"] == "paper" and paper["block_size"] == 10 and paper["n_blocks"] == 2
    assert paper["n_real"] == N_IMAGES and paper["n_fake"] == N_IMAGES
    assert paper["feature_extractor"] == "stand-in extractor (tests)" and paper["weights_sha256"] is None
    subsets = metrics["kid_subsets"]
    assert subsets["subsets"] == 10 and subsets["subset_size"] == N_IMAGES and "std_x100" in subsets
    assert metrics["mean_kid_paper"]["formula"].startswith("(0.98 * KID(source, fake)")
    assert report["sets"]["source"]["n"] == N_IMAGES
    assert report["feature_extractor"]["resize"] == "tf1"

    # The CLI reports exactly what the library computes.
    from ugatit.metrics import KIDSettings, kid_report

    kid = KIDSettings(subsets=10)
    direct = kid_report(folders["real"], folders["fake"], load_standin(), source=folders["source"], kid=kid)["metrics"]
    for key in ("kid_paper", "kid_subsets", "mean_kid_paper", "fid"):
        field = "value" if key == "fid" else "value_x100"
        assert metrics[key][field] == pytest.approx(direct[key][field], rel=1e-6), key
    # Red-ish fakes are closer to the red real set than to the blue source set.
    assert metrics["kid_paper"]["value_x100"] < metrics["kid_paper_source"]["value_x100"]


def test_single_protocol_and_pil_resize(folders):
    proc = run_cli(
        "--real",
        str(folders["real"]),
        "--fake",
        str(folders["fake"]),
        "--feature-extractor",
        "standin_extractor:make",
        "--protocol",
        "paper",
        "--resize",
        "pil",
    )
    assert proc.returncode == 0, proc.stderr
    assert "paper:" in proc.stdout and "subsets:" not in proc.stdout and "mean KID" not in proc.stdout
    assert "resize pil" in proc.stdout


def test_offline_without_weights_is_one_line_exit_2(folders, tmp_path):
    torch_home = tmp_path / "torch_home"
    torch_home.mkdir()
    proc = run_cli(
        "--real", str(folders["real"]), "--fake", str(folders["fake"]), env_extra={"TORCH_HOME": str(torch_home)}
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    expected_path = torch_home / "hub" / "checkpoints" / "pt_inception-2015-12-05-6726825d.pth"
    assert lines[0].startswith("ugatit eval: error: FID Inception weights not found")
    assert str(expected_path) in lines[0] and "--inception-weights" in lines[0] and "`" not in lines[0]


def test_a_feature_extractor_module_in_the_working_directory(folders, tmp_path):
    """`ugatit eval --feature-extractor mymodule:make` with mymodule.py where the user stands, run through
    the installed console script (whose import path does not hold the working directory)."""
    import shutil

    (tmp_path / "mymodule.py").write_text((HERE / "standin_extractor.py").read_text())
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    script = shutil.which("ugatit") or str(Path(sys.executable).with_name("ugatit"))
    proc = subprocess.run(
        [
            script,
            "eval",
            "--real",
            str(folders["real"]),
            "--fake",
            str(folders["fake"]),
            "--feature-extractor",
            "mymodule:make",
            "--protocol",
            "subsets",
            "--subsets",
            "5",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "KID" in proc.stdout


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--inception-weights", "/nonexistent/w.pth"], "no such file"),
        (["--feature-extractor", "standin_extractor"], "module:callable"),
        (["--feature-extractor", "standin_extractor:not_a_module"], "not an nn.Module"),
        (["--feature-extractor", "no_such_module_xyz:make"], "cannot import"),
    ],
)
def test_user_errors_exit_2(folders, extra, message):
    proc = run_cli("--real", str(folders["real"]), "--fake", str(folders["fake"]), *extra)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_missing_folder_exit_2(folders, tmp_path):
    proc = run_cli(
        "--real",
        str(tmp_path / "nope"),
        "--fake",
        str(folders["fake"]),
        "--feature-extractor",
        "standin_extractor:make",
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


@pytest.mark.parametrize("fake", ["empty", "one"])
def test_folders_are_checked_before_the_weights(folders, tmp_path, fake):
    """An empty or too small --fake folder is named, not the missing Inception weights."""
    (tmp_path / fake).mkdir()
    if fake == "one":
        Image.new("RGB", (8, 8)).save(tmp_path / fake / "x.png")
    proc = run_cli(
        "--real",
        str(folders["real"]),
        "--fake",
        str(tmp_path / fake),
        env_extra={"TORCH_HOME": str(tmp_path / "no-weights")},
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "--fake" in proc.stderr and "Inception" not in proc.stderr
    assert ("no images found" if fake == "empty" else "at least 2 images") in proc.stderr


@pytest.mark.parametrize("content", ["text", "truncated", "objects"])
def test_a_file_that_is_not_the_inception_weights_says_what_it_is(folders, tmp_path, content):
    import torch

    path = tmp_path / "w.pth"
    if content == "text":
        path.write_text("these are not weights\n")
    else:
        torch.save({"x": torch.zeros(100)} if content == "truncated" else {"x": Path("somewhere")}, path)
        if content == "truncated":
            path.write_bytes(path.read_bytes()[:300])
    proc = run_cli("--real", str(folders["real"]), "--fake", str(folders["fake"]), "--inception-weights", str(path))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    line = proc.stderr.strip()
    assert len(line.splitlines()) == 1 and str(path) in line and "not the FID Inception weights file" in line
    assert "weights_only" not in line and "miniz" not in line and "file an issue" not in line
    expected = {"text": "a text file", "truncated": "truncated", "objects": "never unpickled"}[content]
    assert expected in line


def test_a_missing_folder_is_reported_before_any_weights_are_looked_for(tmp_path):
    """No download attempt (and no weights error) when the folders are wrong in the first place."""
    env = {**os.environ, "TORCH_HOME": str(tmp_path / "empty-home")}
    env.pop("UGATIT_INCEPTION_WEIGHTS", None)
    result = subprocess.run(
        [sys.executable, "-m", "ugatit", "eval", "--real", str(tmp_path / "nope"), "--fake", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == f"ugatit eval: error: --real folder not found: {tmp_path / 'nope'}"
