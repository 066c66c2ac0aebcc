"""Messages a newcomer meets first, through `ugatit train` in a subprocess: a dataset in another layout
than trainA/ and trainB/, and a config key that does not exist (in `--override` and in a config file),
each one line that says what would work."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

TINY = ["--img-size", "32", "--ch", "2", "--n-res", "1", "--light", "--device", "cpu", "--workers", "0"]


def train(*args: str | Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "ugatit", "train", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("ugatit train: error: ")
    return lines[0]


def images(folder: Path, count: int = 2, seed: int = 0) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (36, 40, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


def test_a_dataset_with_a_and_b_folders_is_told_the_flags_that_take_them(tmp_path):
    root = tmp_path / "horse2zebra"
    images(root / "A")
    images(root / "B")
    (root / "notes").mkdir()  # not images: not suggested
    (root / "notes" / "readme.txt").write_text("where the photos came from")
    line = one_line_error(train(root, *TINY, "--out", tmp_path / "run"))
    assert f"{root} has no trainA/ and no trainB/" in line
    assert line.endswith(f"give --domain-a {root / 'A'} --domain-b {root / 'B'}"), line
    assert "notes" not in line and "domain_a" not in line
    assert not (tmp_path / "run").exists()

    # The suggestion, copied, trains.
    suggested = line.rsplit("give ", 1)[1].split()
    result = train(*suggested, *TINY, "--iters", "1", "--out", tmp_path / "run", "--no-progress")
    assert result.returncode == 0, result.stderr


def test_other_image_folders_are_named_and_quoted_for_the_shell(tmp_path):
    root = tmp_path / "photos"
    images(root / "my horses")
    images(root / "zebras")
    line = one_line_error(train(root, *TINY))
    assert f"--domain-a '{root / 'my horses'}' --domain-b {root / 'zebras'}" in line

    # One domain in place, the other under another name: both are named.
    half = tmp_path / "half"
    images(half / "trainA")
    images(half / "B")
    line = one_line_error(train(half, *TINY))
    assert f"{half} has no trainB/" in line and "image folders there: B/" in line
    assert "--domain-a and --domain-b" in line

    empty = tmp_path / "empty"
    empty.mkdir()
    line = one_line_error(train(empty, *TINY))
    assert "has no trainA/ and no trainB/" in line and "--domain-a and --domain-b" in line


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, Path]:
    """A dataset and a one-iteration run on it, to resume."""
    root = tmp_path_factory.mktemp("messages")
    images(root / "set" / "trainA")
    images(root / "set" / "trainB", seed=1)
    result = train(root / "set", *TINY, "--iters", "1", "--out", root / "run", "--no-progress")
    assert result.returncode == 0, result.stderr
    return root / "set", root / "run"


def test_an_unknown_override_key_names_the_nearest_and_the_valid_keys(run):
    data, out = run
    line = one_line_error(train(data, "--out", out, "--resume", "--override", "learning_rate=1e-5"))
    assert "--override names an unknown config key 'learning_rate': did you mean 'optim.lr'?" in line
    # The keys a resumed run may change, all of them.
    valid = line.split("(valid keys: ", 1)[1].rstrip(")").split(", ")
    assert valid == [
        "loss.adv_weight",
        "loss.cycle_weight",
        "loss.identity_weight",
        "loss.cam_weight",
        "optim.lr",
        "optim.beta1",
        "optim.beta2",
        "optim.weight_decay",
        "optim.iterations",
        "optim.decay",
    ]
    line = one_line_error(train(data, "--out", out, "--resume", "--override", "cycle=5"))
    assert "did you mean 'loss.cycle_weight'?" in line
    # The suggestion works.
    result = train(data, "--out", out, "--resume", "--override", "optim.lr=1e-5", "--iters", "2", "--no-progress")
    assert result.returncode == 0, result.stderr
    assert "resuming with --lr changed from 0.0001 to 1e-05" in result.stderr


def test_an_unknown_key_in_a_config_file_names_the_nearest_and_its_section(run, tmp_path):
    data, _ = run
    for text, said in (
        ("optim: {learning_rate: 0.001}\n", "unknown config key 'optim.learning_rate': did you mean 'optim.lr'?"),
        ("lr: 0.001\n", "unknown config key 'lr': did you mean 'optim.lr'? (the config's sections: model, loss,"),
        ("train: {sample_evry: 5}\n", "did you mean 'train.sample_every'? (the keys of train: seed, device,"),
        ("optimizer: {lr: 0.001}\n", "unknown config key 'optimizer': did you mean 'optim'?"),
    ):
        config = tmp_path / "config.yaml"
        config.write_text(text)
        line = one_line_error(train(data, "--config", config, "--out", tmp_path / "run"))
        assert said in line, line
