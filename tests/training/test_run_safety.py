"""The trainer's guards in-process: the run folder lock, failed writes, config.yaml fallback, overrides.

The same faults met through the command line are in tests/cli/test_faults_cli.py.
"""

from __future__ import annotations

import errno
import multiprocessing
import os
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from helpers import tiny_config, write_images
from ugatit.config import Config
from ugatit.errors import UserError
from ugatit.training import train
from ugatit.training.lock import RunInUse, RunLock
from ugatit.training.resume import apply_overrides
from ugatit.training.run_dir import JsonlLog
from ugatit.training.storage import RunWriteError, WriteFailed
from ugatit.weights import checkpoints


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("safety")
    write_images(root / "trainA", 3, seed=1)
    write_images(root / "trainB", 3, seed=2)
    return root


def quiet(dataset: Path, run_dir: Path, config: Config, **options):
    options.setdefault("on_message", lambda text: None)
    return train(config, dataset / "trainA", dataset / "trainB", run_dir, progress=False, **options)


# --- The lock -------------------------------------------------------------------------------------------


def _start_then_sleep(started, seconds: float) -> None:
    import time

    started.set()  # after the fork handlers ran
    time.sleep(seconds)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork")
def test_the_lock_refuses_a_second_holder_and_forked_children_do_not_keep_it(tmp_path):
    with RunLock(tmp_path) as first:
        with pytest.raises(RunInUse, match=rf"in use by another training process \(pid {os.getpid()} on "):
            RunLock(tmp_path).acquire()
        # A data worker forked while the lock is held must not hold it after its parent is gone.
        context = multiprocessing.get_context("fork")
        started = context.Event()
        child = context.Process(target=_start_then_sleep, args=(started, 20))
        child.start()
        try:
            assert started.wait(60)
            first.release()
            with RunLock(tmp_path):
                pass
        finally:
            child.terminate()
            child.join()
    with RunLock(tmp_path / "not yet made") as absent:  # nothing to lock: no other trainer can be there
        assert not (tmp_path / "not yet made").exists()
        absent.release()


# --- Failed writes --------------------------------------------------------------------------------------


def test_a_failed_log_write_is_cut_back_to_the_last_whole_line(tmp_path, monkeypatch):
    log = JsonlLog(tmp_path / "log.jsonl", keep_until=0)
    log.write({"step": 1, "value": "whole"})
    real_write = os.write

    def half_then_full(fd, data):
        if len(data) > 10:
            return real_write(fd, bytes(data)[:10])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", half_then_full)
    with pytest.raises(WriteFailed) as failure:
        log.write({"step": 2, "value": "x" * 100})
    monkeypatch.undo()
    log.close()
    assert failure.value.path == tmp_path / "log.jsonl" and failure.value.error.errno == errno.ENOSPC
    assert (tmp_path / "log.jsonl").read_text() == '{"step": 1, "value": "whole"}\n'


def test_a_tensorboard_that_cannot_write_stops_the_run_after_keeping_its_state(dataset, tmp_path, monkeypatch):
    """TensorBoard writes in a thread and reports a full disk at a later call: that call stops the run,
    and the complete state of the step is saved first (the checkpoint has room, the events did not)."""
    from torch.utils.tensorboard import SummaryWriter

    real = SummaryWriter.add_scalar

    def add_scalar(self, tag, value, step, *args, **kwargs):
        if step == 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(self, tag, value, step, *args, **kwargs)

    monkeypatch.setattr(SummaryWriter, "add_scalar", add_scalar)
    with pytest.raises(RunWriteError) as error:
        quiet(dataset, tmp_path / "run", tiny_config(sample_every=0, save_every=2))
    message = str(error.value)
    assert f"cannot write {tmp_path / 'run' / 'tensorboard'}: no space left on the device" in message
    assert "the state of step 3 was saved to" in message and "`resume=True`" in message
    assert error.value.checkpoint == checkpoints.checkpoint_path(tmp_path / "run", 3)
    assert checkpoints.load_training_checkpoint(error.value.checkpoint)["step"] == 3


# --- config.yaml ----------------------------------------------------------------------------------------


def test_config_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "config.yaml"
    Config().save(path)
    before = path.read_text()

    def fail(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError):
        tiny_config().save(path)
    monkeypatch.undo()
    assert path.read_text() == before and [p.name for p in tmp_path.iterdir()] == ["config.yaml"]


# --- Overrides ------------------------------------------------------------------------------------------


def test_overrides_change_only_the_optimiser_and_the_losses_on_the_record():
    config = tiny_config()
    changed, record = apply_overrides(config, {"optim.lr": "5e-5", "loss.cam_weight": 100, "optim.beta1": 0.5})
    assert changed.optim.lr == 5e-5 and changed.loss.cam_weight == 100.0
    assert record == [
        {"key": "optim.lr", "from": 1e-4, "to": 5e-5},
        {"key": "loss.cam_weight", "from": 1000.0, "to": 100.0},
    ]
    with pytest.raises(UserError, match=r"'model.ch' cannot be changed on resume: `overrides` changes only optim.*"):
        apply_overrides(config, {"model.ch": 4})
    with pytest.raises(UserError, match=r"unknown config key 'optim.learning_rate'"):
        apply_overrides(config, {"optim.learning_rate": 1})
    with pytest.raises(UserError, match="must be a number"):
        apply_overrides(config, {"optim.lr": "small"})


def test_overrides_reach_the_optimisers_and_need_resume(dataset, tmp_path):
    config = tiny_config(sample_every=0, save_every=0)
    with pytest.raises(UserError, match="`overrides` change a run only when resuming"):
        quiet(dataset, tmp_path / "run", config, overrides={"optim.lr": 1e-5})
    quiet(dataset, tmp_path / "run", config.replace(optim=replace(config.optim, iterations=2)), tensorboard=False)
    result = quiet(
        dataset,
        tmp_path / "run",
        config,
        resume=True,
        tensorboard=False,
        overrides={"optim.beta1": 0.9, "optim.weight_decay": 0.0},
    )
    optimizers = checkpoints.load_training_checkpoint(result.checkpoint)["optimizers"]
    for group in optimizers["G_optim"]["param_groups"] + optimizers["D_optim"]["param_groups"]:
        assert group["betas"][0] == 0.9 and group["weight_decay"] == 0.0
    assert torch.is_tensor(optimizers["G_optim"]["state"][0]["exp_avg"])  # the moments were kept
