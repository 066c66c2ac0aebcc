"""`ugatit train` end to end in a subprocess: a tiny run, --resume, odd image files, one-line errors."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import noise, write_plain

TINY_CONFIG = """\
model: {img_size: 32, ch: 2, n_res: 1, light: true}
data: {num_workers: 0}
train: {device: cpu, log_every: 1, sample_every: 2, save_every: 2, keep_last: 2}
"""


def write_odd(folder_a: Path, folder_b: Path) -> None:
    """Two unreadable files among every mode users' folders hold in practice."""
    write_plain(folder_a, 2, seed=10)
    write_plain(folder_b, 2, seed=20)
    (folder_a / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 20)
    buffer = folder_a / "whole.jpg"
    noise(1, (64, 64)).save(buffer, quality=90)
    (folder_a / "truncated.jpg").write_bytes(buffer.read_bytes()[:400])
    buffer.unlink()
    noise(2).convert("L").save(folder_a / "grayscale.png")
    rgba = noise(3).convert("RGBA")
    rgba.putalpha(128)
    rgba.save(folder_a / "rgba.png")
    noise(4).convert("CMYK").save(folder_b / "cmyk.jpg")
    sixteen = (np.random.default_rng(5).integers(0, 65536, (36, 40))).astype(np.uint16)
    Image.fromarray(sixteen).save(folder_b / "sixteen_bit.png")
    rotated = noise(6, (48, 32))
    exif = rotated.getexif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees on display
    rotated.save(folder_b / "exif_rotated.jpg", exif=exif)


def ugatit(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")  # tiny tensors: extra threads only contend
    return subprocess.run(
        [sys.executable, "-m", "ugatit", "train", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=cwd,
    )


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("ugatit train: error: ")
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cli") / "tinyset"
    write_plain(root / "trainA", 3, seed=0)
    write_plain(root / "trainB", 3, seed=100)
    write_plain(root / "testA", 2, seed=200)
    write_plain(root / "testB", 2, seed=300)
    return root


@pytest.fixture(scope="module")
def config_file(data) -> Path:
    path = data.parent / "tiny.yaml"
    path.write_text(TINY_CONFIG)
    return path


@pytest.fixture(scope="module")
def trained_run(data, config_file) -> Path:
    """A run trained for 4 iterations, then resumed to 6."""
    out = data.parent / "run"
    first = ugatit(data, "--config", config_file, "--iters", 4, "--out", out, "--no-progress")
    assert first.returncode == 0, first.stderr
    assert str(out) in first.stderr and str(out) in first.stdout  # says where it writes, at start and end
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_00000002.pt", "step_00000004.pt"]
    assert (out / "export" / "ugatit_generators.safetensors").is_file()

    # Only --iters is given: the rest (tiny model, frequencies) is the run's own config.
    second = ugatit(data, "--out", out, "--resume", "--iters", 6, "--no-progress")
    assert second.returncode == 0, second.stderr
    assert "resuming at step 4" in second.stderr
    return out


def test_train_then_resume_to_more_iterations(trained_run):
    assert sorted(p.name for p in (trained_run / "checkpoints").iterdir()) == ["step_00000004.pt", "step_00000006.pt"]
    records = [json.loads(line) for line in (trained_run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "event" not in r] == [1, 2, 3, 4, 5, 6]
    config = (trained_run / "config.yaml").read_text()
    assert "iterations: 6" in config and "ch: 2" in config
    assert (trained_run / "samples" / "test_b2a_00000006.png").is_file()
    export = trained_run / "export" / "ugatit_generators.safetensors"
    assert json.loads(export.with_suffix(".json").read_text())["optim"]["iterations"] == 6


def test_the_trained_run_translates_a_folder(trained_run, data, tmp_path):
    """The user's path after training: translate with the run directory and with its export."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for checkpoint in (trained_run, trained_run / "export" / "ugatit_generators.safetensors"):
        out = tmp_path / checkpoint.name
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "ugatit",
                "translate",
                "--checkpoint",
                str(checkpoint),
                "--input",
                str(data / "testA"),
                "--output",
                str(out),
                "--attention",
                "--no-progress",
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr
        inputs = sorted(p.stem for p in (data / "testA").iterdir())
        assert sorted(p.stem for p in out.glob("*.png") if "_attention" not in p.stem) == inputs
        assert len(list(out.glob("*_attention.png"))) == len(inputs) and (out / "index.html").is_file()
        # The run folder's checkpoint holds the discriminators: their attention on each translation too.
        judged = len(inputs) * 2 if checkpoint == trained_run else 0
        assert len(list(out.glob("*_attention_*_D.png"))) == judged


def test_flags_override_the_config_file_and_the_default_output_is_runs_dataset(data, config_file, tmp_path):
    result = ugatit(
        data.resolve(),
        "--config",
        config_file,
        "--iters",
        2,
        "--sample-every",
        0,
        "--ch",
        3,
        "--lr",
        "2e-4",
        "--no-progress",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    run_dir = tmp_path / "runs" / data.name
    config = (run_dir / "config.yaml").read_text()
    assert "ch: 3" in config and "lr: 0.0002" in config and "n_res: 1" in config
    assert not (run_dir / "samples").exists()


def test_odd_images_train_and_the_unreadable_ones_are_named(tmp_path, config_file):
    root = tmp_path / "odd"
    write_odd(root / "trainA", root / "trainB")
    result = ugatit(root, "--config", config_file, "--iters", 7, "--out", tmp_path / "run", "--no-progress")
    assert result.returncode == 0, result.stderr
    assert "corrupt.png" in result.stderr and "truncated.jpg" in result.stderr
    for fine in ("grayscale.png", "rgba.png", "cmyk.jpg", "sixteen_bit.png", "exif_rotated.jpg"):
        assert fine not in result.stderr
    assert (tmp_path / "run" / "export" / "ugatit_generators.safetensors").is_file()


def test_domain_folders_instead_of_a_dataset_root(data, config_file, tmp_path):
    result = ugatit(
        "--domain-a",
        data / "trainA",
        "--domain-b",
        data / "trainB",
        "--config",
        config_file,
        "--iters",
        1,
        "--sample-every",
        0,
        "--no-progress",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "runs" / data.name / "checkpoints" / "step_00000001.pt").is_file()


@pytest.mark.parametrize(
    "sig, workers, code", [(signal.SIGINT, 2, 130), (signal.SIGTERM, 0, 143)], ids=["SIGINT-2-workers", "SIGTERM"]
)
def test_a_signal_saves_a_checkpoint_and_exits_with_its_code(data, config_file, tmp_path, sig, workers, code):
    """Ctrl-C in a terminal signals the whole process group, data workers included."""
    out = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    command = [
        sys.executable,
        "-m",
        "ugatit",
        "train",
        str(data),
        "--config",
        str(config_file),
        "--iters",
        "100000",
        "--workers",
        str(workers),
        "--save-every",
        "100000",
        "--out",
        str(out),
        "--no-progress",
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 120
        log = out / "log.jsonl"
        while not (log.is_file() and log.read_text().count("\n") >= 2):
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()
            time.sleep(0.05)
        os.killpg(process.pid, sig)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == code, stderr
    assert "Traceback" not in stderr and "--resume" in stdout
    saved = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert len(saved) == 1 and saved[0] in stdout
    assert not (out / "export").exists()


# --- Errors: one line, exit 2 ---------------------------------------------------------------------------


def test_missing_data(tmp_path):
    assert_one_line_error(ugatit(tmp_path / "nowhere"), "dataset folder not found", "nowhere")
    assert_one_line_error(ugatit(), "no data")


def test_empty_domain(tmp_path, config_file):
    write_plain(tmp_path / "set" / "trainA", 2, seed=0)
    (tmp_path / "set" / "trainB").mkdir()
    result = ugatit(tmp_path / "set", "--config", config_file, "--out", tmp_path / "run")
    assert_one_line_error(result, "no images found", "trainB")
    assert not (tmp_path / "run").exists()


def test_unknown_config_key(data, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {chh: 4}\n")
    assert_one_line_error(ugatit(data, "--config", bad, "--out", tmp_path / "run"), "unknown config key 'model.chh'")


def test_a_config_file_of_an_earlier_version_is_told_what_replaced_its_retired_key(data, tmp_path):
    """`data.world_size: 2` once chose the processes; now it is ignored, which must not pass in silence."""
    old = tmp_path / "old.yaml"
    old.write_text(TINY_CONFIG.replace("data: {num_workers: 0}", "data: {num_workers: 0, world_size: 2}"))
    result = ugatit(data, "--config", old, "--iters", 1, "--out", tmp_path / "run")
    assert result.returncode == 0, result.stderr
    notice = (
        f"{old}: 'data.world_size' is no longer read: the number of processes is set where the run is launched "
        "(--nproc N, or torchrun), and each checkpoint records it"
    )
    assert result.stderr.count(notice) == 1, result.stderr


def test_unwritable_output_directory(data, config_file, tmp_path):
    (tmp_path / "a_file").write_text("")
    result = ugatit(data, "--config", config_file, "--out", tmp_path / "a_file" / "run")
    assert_one_line_error(result, "cannot write to the run directory")


def test_a_refused_run_leaves_no_folder(data, config_file, tmp_path):
    assert_one_line_error(
        ugatit(data, "--config", config_file, "--img-size", 17, "--out", tmp_path / "odd"),
        "multiple of 4",
        "--img-size",
    )
    assert_one_line_error(ugatit(data, "--out", tmp_path / "fresh", "--resume"), "nothing to resume")
    assert not (tmp_path / "odd").exists() and not (tmp_path / "fresh").exists()


def test_without_tensorboard_the_run_says_so(data, config_file, tmp_path):
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text("import sys\nsys.modules['tensorboard'] = None  # as if not installed\n")
    env = dict(
        os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(hide), os.environ.get("PYTHONPATH", "")])
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ugatit",
            "train",
            str(data),
            "--config",
            str(config_file),
            "--iters",
            "1",
            "--out",
            str(tmp_path / "run"),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert (
        "no tensorboard/: tensorboard is not installed" in result.stderr and "pip install tensorboard" in result.stderr
    )
    assert "tensorboard/" not in result.stderr.split("writing to", 1)[1].splitlines()[0]
    assert not (tmp_path / "run" / "tensorboard").exists()


def test_resume_errors(trained_run, data, tmp_path):
    assert_one_line_error(ugatit(data, "--out", tmp_path / "fresh", "--resume"), "nothing to resume")
    damaged = tmp_path / "damaged"
    shutil.copytree(trained_run, damaged)
    # A damaged newest checkpoint is passed over for the one before it (tests/cli/test_faults_cli.py);
    # with every one damaged there is nothing to resume from.
    for step in (4, 6):
        checkpoint = damaged / "checkpoints" / f"step_{step:08d}.pt"
        checkpoint.write_bytes(checkpoint.read_bytes()[:5000])
    assert_one_line_error(
        ugatit(data, "--out", damaged, "--resume", "--no-progress"),
        "none of the 2 checkpoints",
        "cannot read checkpoint",
        "step_00000006.pt",
    )


def test_library_terms_come_out_as_flags(trained_run, data, config_file, tmp_path):
    """The library names config keys and arguments; the CLI says the flag the user typed."""
    result = ugatit(data, "--out", tmp_path / "fresh", "--resume")
    assert_one_line_error(result, "nothing to resume", "without --resume")
    assert_one_line_error(
        ugatit(data, "--out", trained_run), "already holds a run", "continue it with --resume", "output folder (--out)"
    )
    result = ugatit(data, "--config", config_file, "--device", "cuda:7", "--out", tmp_path / "gpu")
    assert_one_line_error(result, "--device cuda:7")
    bad = tmp_path / "zero.yaml"
    bad.write_text("train: {log_every: 0}\n")
    result = ugatit(data, "--config", bad, "--out", tmp_path / "zero")
    assert_one_line_error(result, "--log-every must be at least 1, got 0")
    for term in ("`", "resume=", "run_dir", "log_every"):
        assert term not in result.stderr
    assert "is not a device" in ugatit(data, "--device", "tpu").stderr  # argparse's check of the spelling


def test_eval_every_logs_kid_and_keeps_the_best_checkpoint(tmp_path):
    """--eval-every with a stand-in feature extractor (no Inception weights needed)."""
    import json

    from ugatit.demo.shapes import write_shapes

    write_shapes(tmp_path / "shapes", size=32, n_train=6, n_test=10, seed=0)
    config = tmp_path / "tiny.yaml"
    config.write_text("model: {img_size: 32, ch: 4, n_res: 1, light: true}\ndata: {num_workers: 0}\n")
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ugatit",
            "train",
            str(tmp_path / "shapes"),
            "--out",
            str(out),
            "--config",
            str(config),
            "--iters",
            "4",
            "--eval-every",
            "2",
            "--feature-extractor",
            "standin_extractor:make",
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    events = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines() if '"eval"' in line]
    assert [e["step"] for e in events] == [2, 4]
    assert all({"kid", "kid_a2b", "kid_b2a"} <= set(e) for e in events)
    assert (out / "checkpoints" / "best.pt").is_file() and "best:" in result.stdout

    # Resumed without the flags: the run's own --eval-every and extractor path go on evaluating (the
    # extractor is named again, as the resume command printed at a stop says).
    resumed = subprocess.run(
        [sys.executable, "-m", "ugatit", "train", str(tmp_path / "shapes"), "--out", str(out), "--resume"]
        + ["--iters", "6", "--feature-extractor", "standin_extractor:make", "--no-progress"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    events = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines() if '"eval"' in line]
    assert [e["step"] for e in events] == [2, 4, 6]

    no_test = subprocess.run(
        [
            sys.executable,
            "-m",
            "ugatit",
            "train",
            "--domain-a",
            str(tmp_path / "shapes" / "trainA"),
            "--domain-b",
            str(tmp_path / "shapes" / "trainB"),
            "--out",
            str(tmp_path / "run2"),
            "--config",
            str(config),
            "--iters",
            "2",
            "--eval-every",
            "1",
            "--feature-extractor",
            "standin_extractor:make",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert no_test.returncode == 2 and "--eval-every needs a test split" in no_test.stderr
    assert "Traceback" not in no_test.stderr
    assert not (tmp_path / "run2").exists()  # refused before the run folder is made
