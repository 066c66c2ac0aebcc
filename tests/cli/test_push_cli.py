"""`ugatit push`: the folder a push uploads (`--dry-run DIR`), its model card, and the card's usage
snippets run as written against that folder served from a hub cache (tests/hub_cache.py), offline.

The run is a real one: `ugatit train` for 4 iterations with evaluations (KID on a stand-in feature
extractor, tests/cli/standin_extractor.py) and sample grids every 2.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hub_cache import add_to_hub_cache, folder_files, offline_env

HERE = Path(__file__).parent
SRC = HERE.parents[1] / "src"
REPO = "someone/tiny-shapes"


def ugatit(*args, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    environment = {
        **(env or os.environ),
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(SRC), str(HERE), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [sys.executable, "-m", "ugatit", *map(str, args)],
        capture_output=True,
        text=True,
        env=environment,
        cwd=cwd,
        timeout=600,
    )


@pytest.fixture(scope="module")
def run(tmp_path_factory, need) -> Path:
    need("huggingface_hub")
    from ugatit.demo.shapes import write_shapes

    root = tmp_path_factory.mktemp("push")
    write_shapes(root / "shapes", size=32, n_train=6, n_test=4, seed=0)
    config = root / "tiny.yaml"
    config.write_text(
        "model: {img_size: 32, ch: 4, n_res: 1, light: true}\ndata: {num_workers: 0}\ntrain: {sample_every: 2}\n"
    )
    out = root / "run"
    done = ugatit(
        "train",
        root / "shapes",
        "--out",
        out,
        "--config",
        config,
        "--iters",
        "4",
        "--eval-every",
        "2",
        "--feature-extractor",
        "standin_extractor:make",
        "--no-progress",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return out


@pytest.fixture(scope="module")
def dry_run(run, need):
    """`ugatit push RUN REPO --dry-run DIR` with both deployment formats."""
    need("onnx")
    need("onnxscript")
    folder = run.parent / "upload"
    done = ugatit(
        "push",
        run,
        REPO,
        "--dry-run",
        folder,
        "--domain-a",
        "flat shapes",
        "--domain-b",
        "outlined shapes",
        "--license",
        "mit",
        "--formats",
        "onnx,torchscript",
    )
    assert done.returncode == 0, done.stderr
    return folder, done


def test_dry_run_writes_the_folder_it_would_upload(run, dry_run):
    folder, done = dry_run
    assert sorted(folder_files(folder)) == [
        "README.md",
        "deploy/ugatit_a2b.onnx",
        "deploy/ugatit_a2b.pt",
        "deploy/ugatit_b2a.onnx",
        "deploy/ugatit_b2a.pt",
        "metrics.json",
        "samples/a2b.png",
        "samples/b2a.png",
        "ugatit_generators.json",
        "ugatit_generators.safetensors",
    ]
    assert f"dry run: nothing uploaded; `ugatit push {run} {REPO}` would upload {folder}" in done.stdout
    assert "card: training checkpoint, 4 iterations, 2 evaluations, 2 sample grids" in done.stdout
    # The run's newest test grids, as they are.
    assert (folder / "samples/a2b.png").read_bytes() == (run / "samples/test_a2b_00000004.png").read_bytes()
    assert (folder / "samples/b2a.png").read_bytes() == (run / "samples/test_b2a_00000004.png").read_bytes()


def test_the_card_holds_the_runs_config_metrics_and_grid(run, dry_run):
    folder, _ = dry_run
    card = (folder / "README.md").read_text()
    front = card.split("---")[1]
    assert "license: mit" in front and "library_name: ugatit" in front and "pipeline_tag: image-to-image" in front
    assert "translates **flat shapes** (domain A) into **outlined shapes** (domain B)" in card
    assert "| model | light, official networks," in card and "| image size | 32 px" in card
    assert "| base channels, residual blocks | 4, 1 |" in card
    assert "| trained | 4 iterations, batch 1 x 1 process, lr 0.0001 |" in card  # --iters 4: all that was planned
    assert "![a2b: flat shapes to outlined shapes](samples/a2b.png)" in card
    # Every evaluation the run logged is in metrics.json; the last one is in the card.
    events = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if '"eval"' in line]
    logged = [{k: v for k, v in e.items() if k != "event"} for e in events]
    assert json.loads((folder / "metrics.json").read_text()) == logged and len(logged) == 2
    last = logged[-1]
    assert "| | step | kid_a2b | kid_b2a | kid |" in card
    assert f"| last | 4 | {last['kid_a2b']:.4g} | {last['kid_b2a']:.4g} | {last['kid']:.4g} |" in card


def python_blocks(card: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", card, flags=re.S)


def test_the_cards_usage_snippets_run_against_the_uploaded_folder(run, dry_run, tmp_path, need):
    need("onnxruntime")
    folder, _ = dry_run
    cache = tmp_path / "cache"
    add_to_hub_cache(cache, REPO, folder_files(folder))
    work = tmp_path / "work"
    work.mkdir()
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (36, 44, 3), dtype=np.uint8)).save(work / "photo.jpg", quality=95)
    env = offline_env(cache, tmp_path / "hf-home", OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])
    blocks = python_blocks((folder / "README.md").read_text())
    assert len(blocks) == 3  # ugatit's Python API, onnxruntime, TorchScript
    outputs = {}
    for block, name in zip(blocks, ("photo_a2b.png", "photo_a2b.png", "photo_a2b_torchscript.png")):
        done = subprocess.run(
            [sys.executable, "-c", block], cwd=work, env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, (block, done.stderr)
        outputs[block] = np.asarray(Image.open(work / name))
        assert outputs[block].shape == (36, 44, 3)
    # The API's translation is what `ugatit translate` writes from the same hub model.
    cli = ugatit(
        "translate",
        "--checkpoint",
        f"hf://{REPO}",
        "--input",
        work / "photo.jpg",
        "--output",
        tmp_path / "cli",
        env=env,
    )
    assert cli.returncode == 0, cli.stderr
    api, onnx, script = outputs.values()
    assert np.array_equal(api, np.asarray(Image.open(tmp_path / "cli" / "photo.png")))
    # ONNX and TorchScript run the same fp32 network on other kernels: float differences of ~1e-6 can
    # move a pixel across a rounding boundary, so one grey level at most. Before the final resize both
    # snippets run the same code.
    assert np.abs(onnx.astype(int) - script.astype(int)).max() <= 1


def test_push_without_dry_run_offline_is_one_line(run, tmp_path):
    env = offline_env(tmp_path / "cache", tmp_path / "hf-home")
    done = ugatit("push", run, REPO, env=env)
    assert done.returncode == 2 and done.stderr.count("\n") == 2, done.stderr  # the licence note, then the error
    assert "no --license given: the card says `license: other`" in done.stderr
    assert "HF_HUB_OFFLINE is set: unset it to push (or write the folder only, with --dry-run DIR)" in done.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["not a repo"], "'not a repo' is not a Hub model name: give NAMESPACE/NAME"),
        ([REPO, "--formats", "tflite"], "--formats: 'tflite' is not onnx or torchscript"),
    ],
)
def test_push_refuses_bad_arguments_in_one_line(run, args, message):
    done = ugatit("push", run, *args, "--dry-run", run.parent / "never")
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and message in done.stderr, done.stderr
    assert not (run.parent / "never").exists()


def test_dry_run_refuses_a_folder_with_files(run, tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    done = ugatit("push", run, REPO, "--dry-run", tmp_path, "--license", "mit")
    assert done.returncode == 2 and "is not an empty folder" in done.stderr, done.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_an_export_is_uploaded_as_it_is(run, tmp_path):
    export = run / "export" / "ugatit_generators.safetensors"
    done = ugatit("push", export, REPO, "--dry-run", tmp_path / "up", "--license", "mit")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "up" / "ugatit_generators.safetensors").read_bytes() == export.read_bytes()
    # An export inside a run still finds the run's log and samples.
    assert "card: export, 4 iterations, 2 evaluations, 2 sample grids" in done.stdout
