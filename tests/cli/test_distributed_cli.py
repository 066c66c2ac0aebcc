"""Distributed training (issues 11 and 19) on this machine's CPUs with gloo, through `ugatit train --nproc
N` and `torchrun`, as users launch it: the maths of N ranks, signals to the whole job, kill -9 of the
launcher, a signal to rank 0 alone while it evaluates, resume from the printed command, two "nodes" on
localhost, a rank that dies, a NaN on one rank, and the check that keeps the ranks' weights equal.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from cli_helpers import adopting_orphans, environment, lock_is_free, log_lines, steps_saved, wait_for

from helpers import write_plain
from ugatit.weights import checkpoints

CONFIG = """\
model: {img_size: 32, ch: 2, n_res: 1, light: true}
optim: {decay: false}  # a constant lr: runs of any length share their first steps with the reference
data: {num_workers: 0}
train: {device: cpu, log_every: 1, sample_every: 0, save_every: 2, keep_last: 0}
"""
#: Long enough to be stopped by a signal partway, short enough for the reference run.
REFERENCE_STEPS = 10


def processes_saved(run_dir: Path) -> int:
    """The processes the run's newest checkpoint was saved on, as its data position records them."""
    return checkpoints.load_training_checkpoint(checkpoints.latest_checkpoint(run_dir))["data"]["world_size"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("dist") / "tinyset"
    for domain, seed in (("trainA", 0), ("trainB", 100)):
        write_plain(root / domain, 5, seed=seed)
    (root.parent / "dist.yaml").write_text(CONFIG)
    return root


def train_command(data: Path, out: Path, *args) -> list[str]:
    """`ugatit train` on the test data with the distributed test config, then `args`."""
    config = data.parent / "dist.yaml"
    return [
        sys.executable,
        "-m",
        "ugatit",
        "train",
        str(data),
        "--config",
        str(config),
        "--out",
        str(out),
        "--no-progress",
        *map(str, args),
    ]


def train(data: Path, out: Path, *args, faults: dict[str, str] | None = None, timeout: float = 300):
    return subprocess.run(
        train_command(data, out, *args),
        capture_output=True,
        text=True,
        env=environment(**(faults or {})),
        timeout=timeout,
    )


def networks(run_dir: Path, step: int) -> dict[str, dict[str, torch.Tensor]]:
    return checkpoints.load_training_checkpoint(checkpoints.checkpoint_path(run_dir, step))["networks"]


@pytest.fixture(scope="module")
def reference(data) -> Path:
    """An uninterrupted 2-rank run, a checkpoint every other step."""
    out = data.parent / "reference"
    result = train(data, out, "--nproc", 2, "--iters", REFERENCE_STEPS)
    assert result.returncode == 0, result.stderr
    return out


def test_two_ranks_of_batch_1_equal_one_process_of_batch_2(data, reference, tmp_path):
    """The loss is a mean over the batch and the ranks' gradients are averaged: the same updates."""
    single = train(data, tmp_path / "single", "--batch-size", 2, "--iters", 6)
    assert single.returncode == 0, single.stderr
    a, b = networks(reference, 6), networks(tmp_path / "single", 6)
    worst = max((a[net][key].float() - b[net][key].float()).abs().max().item() for net in a for key in a[net])
    assert worst < 1e-5, worst
    config = yaml.safe_load((reference / "config.yaml").read_text())
    assert config["data"]["batch_size"] == 1 and "world_size" not in config["data"]  # the launch's, not a setting
    assert processes_saved(reference) == 2  # each checkpoint records it


def test_a_signal_to_the_whole_job_saves_once_and_resumes_exactly(data, reference, tmp_path):
    """What Slurm, systemd and Ctrl-C do: SIGTERM to the process group (launcher and ranks)."""
    out = tmp_path / "run"
    job = start_long_run(data, out)
    try:
        wait_for(lambda: log_lines(out) >= 2, job)
        os.killpg(job.pid, signal.SIGTERM)
        stdout, stderr = job.communicate(timeout=120)
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
    assert job.returncode == 143, stderr
    assert "Traceback" not in stderr
    saved = steps_saved(out)
    assert len(saved) == 1 and saved[0] < REFERENCE_STEPS - 1, (saved, stderr)
    assert stdout.count("stopped by SIGTERM") == 1  # rank 0 speaks for the job

    step = saved[0]
    resumed = train(data, out, "--nproc", 2, "--resume", "--iters", step + 1, "--save-every", 1)
    assert resumed.returncode == 0, resumed.stderr
    final = checkpoints.load_training_checkpoint(checkpoints.checkpoint_path(out, step + 1))
    # the reference saved every other step: compare where it has one
    expected_step = step + 1 if (step + 1) % 2 == 0 else None
    if expected_step is None:
        resumed = train(data, out, "--nproc", 2, "--resume", "--iters", step + 2, "--save-every", 1)
        assert resumed.returncode == 0, resumed.stderr
        expected_step = step + 2
        final = checkpoints.load_training_checkpoint(checkpoints.checkpoint_path(out, expected_step))
    expected = checkpoints.load_training_checkpoint(checkpoints.checkpoint_path(reference, expected_step))
    assert checkpoints.state_differences(final, expected) == []


def test_resuming_on_another_number_of_processes_says_what_changes(data, reference, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    result = train(data, out, "--resume", "--iters", REFERENCE_STEPS + 1)
    assert result.returncode == 0, result.stderr
    notice = (
        "resuming on 1 process, saved on 2: the global batch changes from 2 to 1 images, and so does which "
        "images each process draws; from here on the run differs from one that was never stopped (resume on "
        "2 processes, --nproc 2, to continue it exactly)"
    )
    assert result.stderr.count(notice) == 1, result.stderr  # said once, as a notice, not also as a warning
    assert "Warning" not in result.stderr, result.stderr
    assert processes_saved(out) == 1


# --- The launcher killed, a signal to rank 0 alone (issue 19) ---------------------------------------------


def processes_of(run_dir: Path) -> list[int]:
    """The processes whose command line names `run_dir` (the launcher and its ranks)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            words = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if entry.name.isdigit() and int(entry.name) != os.getpid() and str(run_dir).encode() in words:
            found.append(int(entry.name))
    return found


def continue_as_printed(stdout: str, reference: Path, out: Path, env: dict[str, str] | None = None) -> None:
    """Run the "continue with:" command of `stdout` one or two iterations on (to a step the reference
    saved) and compare the state with the uninterrupted run's, bit for bit."""
    hint = [line for line in stdout.splitlines() if line.startswith("continue with: ugatit train ")]
    assert len(hint) == 1, stdout
    words = shlex.split(hint[0].removeprefix("continue with: ugatit "))
    assert words[-2:] == ["--nproc", "2"], words
    step = int(checkpoints.load_training_checkpoint(out)["step"])
    target = step + 1 if (step + 1) % 2 == 0 else step + 2  # the reference saved every other step
    assert target <= REFERENCE_STEPS, step
    resumed = subprocess.run(
        [sys.executable, "-m", "ugatit", *words, "--iters", str(target), "--no-progress"],
        capture_output=True,
        text=True,
        env=env or environment(),
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    final = checkpoints.load_training_checkpoint(checkpoints.checkpoint_path(out, target))
    expected = checkpoints.load_training_checkpoint(checkpoints.checkpoint_path(reference, target))
    assert checkpoints.state_differences(final, expected) == []


def start_long_run(data: Path, out: Path, *args, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        train_command(data, out, "--nproc", 2, "--iters", 100000, "--save-every", 100000, *args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env or environment(),
        start_new_session=True,
    )


def test_kill_9_of_the_launchers_group_stops_the_ranks_and_frees_the_run(data, reference, tmp_path):
    """torchrun puts each rank in a session of its own: they used to train on, holding the lock. Each rank
    takes 3 s more to exit, so the watchdog finds its launcher gone after the run has ended: it used to
    send a real SIGTERM then, which killed a rank on its way out (the default handler was back) and lost
    the command rank 0 had printed but not yet flushed."""
    out = tmp_path / "run"
    with adopting_orphans():
        job = start_long_run(data, out, env=environment(exit_seconds="3"))
        try:
            wait_for(lambda: log_lines(out) >= 2, job)
            ranks = [pid for pid in processes_of(out) if pid != job.pid]
            assert len(ranks) == 2, ranks
            os.killpg(job.pid, signal.SIGKILL)  # the launcher's group: the ranks are not in it
            stdout, stderr = job.communicate(timeout=120)  # the ranks hold its pipes until they exit
        finally:
            if job.poll() is None:
                os.killpg(job.pid, signal.SIGKILL)
        # rank 0 says how the job ended (143: stopped by SIGTERM), the other exits 0; none died of a signal
        codes = sorted(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in ranks)
    assert codes == [0, 143], (codes, stderr)
    assert lock_is_free(out)
    assert "stopped by SIGTERM" in stdout, stderr  # rank 0 saved, as for a SIGTERM
    assert len(steps_saved(out)) == 1
    continue_as_printed(stdout, reference, out)


@pytest.fixture(scope="module")
def data_with_tests(data) -> Path:
    """The same training images, with test splits for --eval-every."""
    root = data.parent / "with_tests"
    shutil.copytree(data, root)
    write_plain(root / "testA", 2, seed=300)
    write_plain(root / "testB", 2, seed=400)
    return root


def test_a_sigterm_to_rank_0_during_its_evaluation_stops_every_rank_once(data, data_with_tests, reference, tmp_path):
    """Rank 0 evaluates alone. A signal that lands then used to send it into the checkpoint's collective
    while rank 1 was in the next iteration's: a hang until the collective's timeout, or garbage."""
    out, started = tmp_path / "run", tmp_path / "evaluating"
    env = environment()
    env["PYTHONPATH"] += os.pathsep + str(Path(__file__).parent)  # slow_extractor
    slow = {**env, "UGATIT_TEST_EVAL_STARTED": str(started), "UGATIT_TEST_EVAL_SECONDS": "3"}
    job = start_long_run(
        data_with_tests, out, "--eval-every", 3, "--feature-extractor", "slow_extractor:make", env=slow
    )
    try:
        wait_for(started.is_file, job)
        os.kill(int(started.read_text()), signal.SIGTERM)  # rank 0 alone, in the middle of its evaluation
        stdout, stderr = job.communicate(timeout=120)  # not a hang
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
    assert job.returncode == 143, stderr
    assert "Traceback" not in stderr and "error:" not in stderr, stderr
    assert stdout.count("stopped by SIGTERM at step 4 of 100000") == 1, stdout  # the next iteration, once
    assert steps_saved(out) == [4]
    assert "--feature-extractor slow_extractor:make --nproc 2" in stdout
    # Evaluations change nothing in the training state: the run without them is the reference.
    continue_as_printed(stdout, reference, out, env)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_on_localhost_train_one_model(data, tmp_path):
    """Two torchrun invocations, as on two machines, meeting through a c10d rendezvous on 127.0.0.1."""
    out = tmp_path / "run"
    port, run_id = free_port(), f"ugatit-test-{os.getpid()}"
    nodes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--nnodes",
                "2",
                "--nproc-per-node",
                "1",
                "--rdzv-backend",
                "c10d",
                "--rdzv-endpoint",
                f"127.0.0.1:{port}",
                "--rdzv-id",
                run_id,
                "-m",
                "ugatit",
                "train",
                str(data),
                "--config",
                str(data.parent / "dist.yaml"),
                "--out",
                str(out),
                "--iters",
                "3",
                "--no-progress",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment(),
            cwd=tmp_path,
        )
        for _ in range(2)
    ]
    try:
        results = [node.communicate(timeout=300) for node in nodes]
    finally:
        for node in nodes:
            if node.poll() is None:
                node.kill()
    assert [node.returncode for node in nodes] == [0, 0], results
    assert steps_saved(out) == [2, 3]
    assert processes_saved(out) == 2
    assert sum(stdout.count("done: step 3 of 3") for stdout, _ in results) == 1  # rank 0, on one node


def test_a_rank_that_dies_ends_the_job_with_a_message(data, tmp_path):
    started = time.monotonic()
    result = train(data, tmp_path / "run", "--nproc", 2, "--iters", 20, faults={"crash_at": "3:1"}, timeout=180)
    assert time.monotonic() - started < 120  # not a hang
    assert result.returncode == 2, result.stderr
    assert "ugatit train: error: rank 1 of 2 failed with exit code 3" in result.stderr
    assert steps_saved(tmp_path / "run") == [2]  # nothing of the unfinished iteration


def test_a_nan_on_one_rank_stops_every_rank_before_saving(data, tmp_path):
    result = train(data, tmp_path / "run", "--nproc", 2, "--iters", 20, faults={"nan_at": "3:1"}, timeout=180)
    assert result.returncode == 2, result.stderr
    assert "training diverged at step 3: non-finite loss (on another rank)" in result.stderr  # rank 0's words
    assert "[rank 1]: error: training diverged at step 3: non-finite loss (G_recon_loss_A=nan)" in result.stderr
    assert steps_saved(tmp_path / "run") == [2]


def test_ranks_whose_networks_drift_apart_are_stopped(data, tmp_path):
    """The ranks keep equal weights and spectral-norm vectors by computing them alike, not by sending them
    (every run above passes the check at each checkpoint, which compares the u/v vectors bit for bit); the
    check catches a rank whose copy drifted (here a weight nudged by a fault)."""
    result = train(data, tmp_path / "run", "--nproc", 2, "--iters", 6, faults={"desync_at": "3:1"}, timeout=180)
    assert result.returncode != 0
    assert "the ranks' networks differ" in result.stderr
    assert steps_saved(tmp_path / "run") == [2]
