"""The training loop in-process: outputs, exact resume, signals, divergence, the evaluate hook, bad images.

Tiny everything (light, ch 2, one residual block, 32 px, a handful of PNGs) so a whole run takes about a
second on two cores.
"""

from __future__ import annotations

import json
import math
import os
import signal
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import ITERS, tiny_config, write_images
from ugatit import training
from ugatit.config import Config
from ugatit.demo.shapes import ShapesDataset
from ugatit.errors import UserError
from ugatit.training import TrainingDiverged, resume_config, train
from ugatit.training.step import LOSS_NAMES, TrainingStep
from ugatit.weights import checkpoints, load_model


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_images(root / "trainA", 5, seed=1)
    write_images(root / "trainB", 4, seed=2)
    write_images(root / "testA", 2, seed=3)
    write_images(root / "testB", 2, seed=4)
    return root


@pytest.fixture(autouse=True)
def _one_thread():
    # These tensors are tiny: with other processes on the two cores, two threads mostly wait on each other.
    torch.set_num_threads(1)


def run(dataset: Path, run_dir: Path, config: Config | None = None, **kwargs) -> training.TrainResult:
    kwargs.setdefault("progress", False)
    kwargs.setdefault("on_message", lambda text: None)
    kwargs.setdefault("test_a", dataset / "testA")
    kwargs.setdefault("test_b", dataset / "testB")
    return train(config or tiny_config(), dataset / "trainA", dataset / "trainB", run_dir, **kwargs)


def log_records(run_dir: Path) -> list[dict]:
    lines = (run_dir / "log.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def stop_at(step: int):
    """An on_log hook that stops the run like Ctrl-C once `step` is done."""

    def hook(current: int, losses: dict) -> None:
        if current == step:
            raise KeyboardInterrupt

    return hook


# --- A whole run -----------------------------------------------------------------------------------------


def test_a_run_writes_logs_samples_checkpoints_and_export(dataset, tmp_path):
    logged, sampled = [], []
    result = run(
        dataset,
        tmp_path / "run",
        on_log=lambda s, terms: logged.append((s, terms)),
        on_sample=lambda s, paths: sampled.append((s, paths)),
    )
    run_dir = tmp_path / "run"

    assert result.completed and result.step == ITERS and result.interrupted is None
    assert set(result.losses) == set(LOSS_NAMES)

    records = [r for r in log_records(run_dir) if "event" not in r]
    assert [r["step"] for r in records] == list(range(1, ITERS + 1))
    for record in records:
        assert set(LOSS_NAMES) <= set(record)
        assert {"lr", "time", "wall"} <= set(record)
        for kind in ("adalin", "iln"):
            for stat in ("mean", "min", "max"):
                assert 0.0 <= record[f"rho_{kind}_{stat}"] <= 1.0
    assert records[0]["lr"] == pytest.approx(1e-4) and records[-1]["lr"] == 0.0
    assert [s for s, _ in logged] == list(range(1, ITERS + 1)) and set(logged[0][1]) == set(LOSS_NAMES)

    expected = {f"{split}_{d}_{step:08d}.png" for split in ("train", "test") for d in ("a2b", "b2a") for step in (3, 6)}
    assert {p.name for p in (run_dir / "samples").iterdir()} == expected
    assert [s for s, _ in sampled] == [3, 6] and set(sampled[0][1]) == {
        "train_a2b",
        "train_b2a",
        "test_a2b",
        "test_b2a",
    }
    grid = Image.open(run_dir / "samples" / "train_a2b_00000006.png")
    # 4 columns (input, heatmap, translation, cycle) x 4 rows of 32 px scaled 4x to a readable 128 px,
    # 2 px padding, under a 22 px row of column captions
    assert grid.size == (4 * 128 + 5 * 2, 22 + 4 * 128 + 5 * 2)

    assert [p.name for p in checkpoints.list_checkpoints(run_dir)] == ["step_00000004.pt", "step_00000006.pt"]
    assert result.checkpoint == checkpoints.checkpoint_path(run_dir, ITERS)
    assert result.export == run_dir / "export" / "ugatit_generators.safetensors"
    assert result.export.is_file() and result.export.with_suffix(".json").is_file()
    _model, config = load_model(result.export)
    assert config.model == result.config.model
    assert Config.load(run_dir / "config.yaml") == result.config
    assert any((run_dir / "tensorboard").iterdir())


def test_in_memory_images_train_like_folders(tmp_path):
    """The demo passes the shapes dataset itself, not files."""
    shapes = {f"{split}{d}": ShapesDataset(d, split, size=32, count=3) for split in ("train", "test") for d in "AB"}
    config = tiny_config(sample_every=ITERS, save_every=0)
    result = train(
        config,
        shapes["trainA"],
        shapes["trainB"],
        tmp_path / "run",
        test_a=shapes["testA"],
        test_b=shapes["testB"],
        progress=False,
        on_message=lambda text: None,
    )
    assert result.completed and result.export.is_file()
    assert (tmp_path / "run" / "samples" / "test_b2a_00000006.png").is_file()


# --- Exact resume ----------------------------------------------------------------------------------------


def assert_same(a, b, where: str = "") -> None:
    """Recursive equality of checkpoint contents; tensors bit for bit."""
    assert checkpoints.state_differences({"x": a}, {"x": b}, keys=("x",)) == [], where


def random_kid(model, step: int) -> dict:
    """An evaluation that draws from every global RNG, as a real one may (random KID subsets)."""
    return {"kid": float(torch.rand(()).item() + np.random.rand() + step % 3)}


@pytest.mark.parametrize("workers", [0, 2])
def test_stopped_and_resumed_run_equals_uninterrupted_run(dataset, tmp_path, workers):
    config = tiny_config(sample_every=2, save_every=3, eval_every=2)
    config = config.replace(data=replace(config.data, num_workers=workers))
    straight = run(dataset, tmp_path / "straight", config, evaluate=random_kid)

    stopped = run(dataset, tmp_path / "resumed", config, evaluate=random_kid, on_log=stop_at(2))
    assert stopped.interrupted == "SIGINT" and stopped.step == 2 and stopped.export is None
    assert stopped.checkpoint == checkpoints.checkpoint_path(tmp_path / "resumed", 2)
    # The second session samples, evaluates and saves at other steps than the straight run: none of that
    # may change the training state, not even the RNG states (the evaluation draws random numbers).
    resumed_config = config.replace(train=replace(config.train, sample_every=1, save_every=0, eval_every=1))
    resumed = run(dataset, tmp_path / "resumed", resumed_config, evaluate=random_kid, resume=True)
    assert resumed.completed and resumed.step == ITERS

    a = checkpoints.load_training_checkpoint(straight.checkpoint)
    b = checkpoints.load_training_checkpoint(resumed.checkpoint)
    for key in ("step", "networks", "optimizers", "data", "rng"):
        assert_same(a[key], b[key], key)

    # The log of the resumed run reads as one run: every step once, the same losses.
    def losses(run_dir):
        return {r["step"]: [r[n] for n in LOSS_NAMES] for r in log_records(run_dir) if "event" not in r}

    assert losses(tmp_path / "straight") == losses(tmp_path / "resumed")


def test_resume_extends_iterations_and_keeps_the_checkpoints_settings(dataset, tmp_path):
    messages = []
    run(dataset, tmp_path / "run", tiny_config(save_every=0))
    longer = tiny_config(save_every=0, keep_last=5)
    longer = longer.replace(optim=replace(longer.optim, iterations=ITERS + 2, lr=5e-4))
    result = run(dataset, tmp_path / "run", longer, resume=True, on_message=messages.append)
    assert result.step == ITERS + 2 and result.config.optim.iterations == ITERS + 2
    assert result.config.optim.lr == 1e-4  # the checkpoint's: only length and execution change
    assert result.config.train.keep_last == 5
    assert any("optim.lr" in m for m in messages)
    assert Config.load(tmp_path / "run" / "config.yaml").optim.iterations == ITERS + 2


def test_resume_config_takes_only_length_and_execution_settings():
    saved = tiny_config()
    given = Config()  # the paper's everything
    given = given.replace(optim=replace(given.optim, iterations=99), train=replace(given.train, device="auto", seed=7))
    merged, ignored = resume_config(saved, given)
    assert merged.model == saved.model and merged.train.seed == saved.train.seed
    assert merged.optim.iterations == 99 and merged.train.device == "auto"
    assert "model.ch" in ignored and "train.seed" in ignored and "optim.iterations" not in ignored
    # Only the keys the caller chose count: the others, defaults included, stay the run's.
    merged, ignored = resume_config(saved, given, {"optim.iterations", "train.seed"})
    assert merged.optim.iterations == 99 and merged.train == saved.train and ignored == ["train.seed"]
    with pytest.raises(UserError, match=r"cannot resume with `model\.g_cam=False`"):
        resume_config(saved, given.replace(model=replace(given.model, g_cam=False)), {"model.g_cam"})
    assert resume_config(saved, given.replace(model=replace(given.model, g_cam=False)), {"train.seed"})[0].model.g_cam


def test_resume_and_run_directory_errors(dataset, tmp_path):
    with pytest.raises(UserError, match="nothing to resume"):
        run(dataset, tmp_path / "empty", resume=True)
    run(dataset, tmp_path / "done", tiny_config(sample_every=0))
    with pytest.raises(UserError, match="already holds a run"):
        run(dataset, tmp_path / "done")
    with pytest.raises(UserError, match="already at step 6"):
        shorter = tiny_config()
        run(dataset, tmp_path / "done", shorter.replace(optim=replace(shorter.optim, iterations=3)), resume=True)
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match="cannot write to the run directory"):
        run(dataset, tmp_path / "file" / "run")
    # The library names its own terms (the CLI turns them into flags: tests/cli/test_train_cli.py).
    with pytest.raises(UserError, match="`device=tpu` is not a device"):
        run(dataset, tmp_path / "dev", tiny_config(device="tpu"))
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="`device=cuda`: PyTorch sees no CUDA GPU"):
            run(dataset, tmp_path / "dev", tiny_config(device="cuda"))
    assert not (tmp_path / "dev").exists()  # device errors come before any folder is made
    with pytest.raises(UserError, match="log_every"):
        run(dataset, tmp_path / "bad", tiny_config(log_every=0))


def test_resuming_a_finished_run_changes_nothing(dataset, tmp_path):
    first = run(dataset, tmp_path / "run", tiny_config(sample_every=0))
    before = checkpoints.load_training_checkpoint(first.checkpoint)["networks"]
    again = run(dataset, tmp_path / "run", tiny_config(sample_every=0), resume=True)
    assert again.completed and again.step == ITERS and again.export.is_file()
    assert_same(before, checkpoints.load_training_checkpoint(again.checkpoint)["networks"])


# --- Stopping: signals, divergence -----------------------------------------------------------------------


def test_sigterm_finishes_the_iteration_saves_and_returns(dataset, tmp_path):
    previous = signal.getsignal(signal.SIGTERM)

    def terminate(step, losses):
        if step == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    result = run(dataset, tmp_path / "run", tiny_config(save_every=0), on_log=terminate)
    assert result.interrupted == "SIGTERM"
    assert result.step == 3 and not result.completed and result.export is None
    assert [p.name for p in checkpoints.list_checkpoints(tmp_path / "run")] == ["step_00000003.pt"]
    assert checkpoints.load_training_checkpoint(result.checkpoint)["step"] == 3
    assert signal.getsignal(signal.SIGTERM) is previous  # handlers are put back


def test_keyboard_interrupt_from_a_hook_saves_like_ctrl_c(dataset, tmp_path):
    result = run(dataset, tmp_path / "run", tiny_config(save_every=0), on_log=stop_at(1))
    assert result.interrupted == "SIGINT" and result.step == 1
    assert checkpoints.latest_checkpoint(tmp_path / "run") == checkpoints.checkpoint_path(tmp_path / "run", 1)


def poison_step(monkeypatch, at_step: int) -> None:
    """Make iteration `at_step` report a NaN cycle loss, as a blown-up generator would."""
    real_call = TrainingStep.__call__

    def call(self, real_A, real_B, step):
        losses = real_call(self, real_A, real_B, step)
        if step == at_step:
            losses["G_recon_loss_A"] = torch.tensor(math.nan)
            losses["Generator_loss"] = torch.tensor(math.inf)
        return losses

    monkeypatch.setattr(TrainingStep, "__call__", call)


def test_non_finite_loss_stops_without_saving_and_keeps_the_last_good_checkpoint(dataset, tmp_path, monkeypatch):
    poison_step(monkeypatch, at_step=5)
    with pytest.raises(TrainingDiverged) as error:
        run(dataset, tmp_path / "run", tiny_config(save_every=2, keep_last=1))
    message = str(error.value)
    assert "\n" not in message and "step 5" in message
    assert "G_recon_loss_A=nan" in message and "Generator_loss=inf" in message
    assert "step_00000004.pt" in message  # where to go back to
    assert [p.name for p in checkpoints.list_checkpoints(tmp_path / "run")] == ["step_00000004.pt"]
    assert not (tmp_path / "run" / "export").exists()
    assert log_records(tmp_path / "run")[-1]["event"] == "diverged"


def test_non_finite_weights_are_never_saved(dataset, tmp_path):
    # The evaluate hook runs just before the step-2 save: break a weight there, with finite losses.
    def evaluate(model, step):
        with torch.no_grad():
            model.genA2B.gap_fc.weight.fill_(math.nan)
        return {}

    with pytest.raises(TrainingDiverged, match=r"step 2: non-finite weights \(genA2B.gap_fc.weight\)"):
        run(dataset, tmp_path / "run", tiny_config(save_every=2, eval_every=2), evaluate=evaluate)
    assert checkpoints.list_checkpoints(tmp_path / "run") == []


# --- The evaluate hook and the best checkpoint -----------------------------------------------------------


def test_evaluate_hook_marks_the_best_checkpoint(dataset, tmp_path):
    kid_at = {2: 5.0, 4: 3.0, 6: 4.0}
    seen_modes = []

    def evaluate(model, step):
        seen_modes.append(torch.is_grad_enabled())
        model.eval()  # a hook may switch modes; training must not inherit that
        return {"kid": kid_at[step], "fid": 10.0 * step}

    result = run(dataset, tmp_path / "run", tiny_config(eval_every=2, save_every=0, sample_every=0), evaluate=evaluate)
    assert seen_modes == [False, False, False]  # evaluation runs without autograd
    best = checkpoints.load_training_checkpoint(result.best)
    assert result.best == tmp_path / "run" / "checkpoints" / "best.pt"
    assert best["step"] == 4 and best["extra"]["best"]["kid"] == 3.0
    assert best["extra"]["best"]["metrics"] == {"kid": 3.0, "fid": 40.0}
    events = [r for r in log_records(tmp_path / "run") if r.get("event") == "eval"]
    assert [(e["step"], e["kid"]) for e in events] == [(2, 5.0), (4, 3.0), (6, 4.0)]
    # best.pt is not a step checkpoint: pruning and `latest_checkpoint` leave it alone
    assert checkpoints.latest_checkpoint(tmp_path / "run").name == "step_00000006.pt"

    # The best score survives a resume: a worse one later does not replace best.pt.
    longer = tiny_config(eval_every=2, save_every=0, sample_every=0)
    longer = longer.replace(optim=replace(longer.optim, iterations=8))
    kid_at[8] = 3.5
    again = run(dataset, tmp_path / "run", longer, evaluate=evaluate, resume=True)
    assert checkpoints.load_training_checkpoint(again.best)["step"] == 4


# --- Bad images -----------------------------------------------------------------------------------------


def test_bad_images_are_reported_once_and_skipped(tmp_path):
    root = tmp_path / "data"
    write_images(root / "trainA", 3, seed=1)
    write_images(root / "trainB", 3, seed=2)
    (root / "trainA" / "01.png").write_bytes(b"not a png at all")
    (root / "trainB" / "zz_truncated.png").write_bytes((root / "trainB" / "00.png").read_bytes()[:60])
    messages = []
    result = train(
        tiny_config(sample_every=0),
        root / "trainA",
        root / "trainB",
        tmp_path / "run",
        progress=False,
        on_message=messages.append,
    )
    assert result.completed
    bad = [m for m in messages if m.startswith("skipping unreadable image")]
    assert len(bad) == 2
    assert any("01.png" in m for m in bad) and any("zz_truncated.png" in m for m in bad)
    events = [r for r in log_records(tmp_path / "run") if r.get("event") == "bad_image"]
    assert sorted(Path(e["name"]).name for e in events) == ["01.png", "zz_truncated.png"]


def test_losses_read_only_at_log_and_save_time_still_stop_before_a_bad_save(dataset, tmp_path, monkeypatch):
    """The fast CUDA path reads the losses only when it logs or saves (no host sync per step); here on the
    CPU: a NaN at step 3 is found at the step-4 save, which is not written, and the message names step 3."""
    monkeypatch.setattr(training.trainer, "checks_losses_every_step", lambda runner: False)
    poison_step(monkeypatch, at_step=3)
    with pytest.raises(TrainingDiverged, match=r"step 3: non-finite loss \(G_recon_loss_A=nan, Generator_loss=inf\)"):
        run(dataset, tmp_path / "run", tiny_config(save_every=2, keep_last=0, log_every=100))
    assert [p.name for p in checkpoints.list_checkpoints(tmp_path / "run")] == ["step_00000002.pt"]
