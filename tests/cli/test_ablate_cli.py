"""`ugatit ablate` as a program: two variants through the command line (one process per "device", two
CPU processes), the report it writes, a killed ablation that continues run by run, and the scheduling and
the reading of the table on their own."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from cli_helpers import adopting_orphans, lock_is_free, log_lines, steps_saved, wait_for
from PIL import Image

from ugatit.ablation.report import mean_and_spread, reading
from ugatit.ablation.runner import run_on_devices
from ugatit.training.step import LOSS_NAMES

HERE = Path(__file__).parent
# A tiny ablation: the morph task at 32 px, ch 4, one residual block, 3 iterations, a checkpoint and a log
# record every step; KID with the stand-in extractor of these tests (standin_extractor.py beside this file).
TINY = [
    *("--task", "morph", "--iters", "3", "--img-size", "32", "--ch", "4", "--n-res", "1", "--batch-size", "2"),
    *("--train-count", "4", "--test-count", "10", "--gallery", "2", "--save-every", "1", "--log-every", "1"),
    *("--no-progress", "--feature-extractor", "standin_extractor:make"),
]


def ablate_call(out: Path, *args: str, **faults: str) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of `ugatit ablate`: one thread, no tensorboard, the stand-in
    extractor importable, and the faults of tests/cli/faults/sitecustomize.py given by name."""
    path = [str(HERE / "faults"), str(HERE), os.environ.get("PYTHONPATH", "")]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(filter(None, path)))
    env.update(
        UGATIT_TEST_NO_TENSORBOARD="1", UGATIT_OFFLINE="1", **{f"UGATIT_TEST_{k.upper()}": v for k, v in faults.items()}
    )
    return [sys.executable, "-m", "ugatit", "ablate", *TINY, "--out", str(out), *args], env


def ablate(out: Path, *args: str, **faults: str) -> subprocess.CompletedProcess:
    """`ugatit ablate` in a subprocess, to its end (see `ablate_call`)."""
    command, env = ablate_call(out, *args, **faults)
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)


def run_processes_of(parent: int) -> list[int]:
    """The processes `parent` spawned to train its runs (multiprocessing's spawn; not its resource tracker)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            spawned = b"spawn_main" in (entry / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == parent and spawned:
            found.append(int(entry.name))
    return found


def test_two_variants_side_by_side_in_two_processes(tmp_path):
    out = tmp_path / "ablation"
    result = ablate(out, "--variants", "full,no-cam", "--devices", "cpu,cpu")
    assert result.returncode == 0, result.stderr
    assert f"report: {out / 'report.html'} (2 of 2 runs done)" in result.stdout

    report = json.loads((out / "report.json").read_text())
    assert report["plan"]["variants"] == ["full", "no-cam"] and report["runs_done"] == 2
    for variant in ("full", "no-cam"):
        row = report["table"][variant]
        for key in ("kid_a2b", "kid_b2a", "shape_change_a2b", "shape_change_b2a", "l1_a2b", "colour_accuracy_b2a"):
            assert row[key]["n"] == 1 and row[key]["std"] is None  # one seed: no spread
        metrics = json.loads((out / "runs" / variant / "seed0" / "metrics.json").read_text())
        assert metrics["step"] == 3 and metrics["metrics"]["kid_a2b"] == row["kid_a2b"]["mean"]
    assert report["parameters"]["no-cam"] < report["parameters"]["full"]
    # the no-CAM run logged no CAM loss term at all
    log = (out / "runs" / "no-cam" / "seed0" / "log.jsonl").read_text()
    assert not [name for name in LOSS_NAMES if "cam" in name and f'"{name}"' in log]
    assert '"G_recon_loss_A"' in log

    page = (out / "report.html").read_text()
    for text in ("full", "no-cam", "KID x100 A to B", "shape change B to A", "U-GAT-IT w/o CAM", "gallery_a2b.png"):
        assert text in page
    assert f"{report['table']['no-cam']['kid_a2b']['mean']:.2f}" in page
    assert "One seed a variant" in page  # the reading says why it calls no difference real
    for direction in ("a2b", "b2a"):
        gallery = Image.open(out / f"gallery_{direction}.png")
        # input, ground truth, full, no-cam: 4 columns of 96-px cells (32 px scaled x3) and 2 rows
        assert gallery.width == 4 * 96 + 5 * 2 and gallery.height == 22 + 2 * 96 + 3 * 2


def test_a_killed_ablation_continues_where_it_stopped(tmp_path):
    out = tmp_path / "ablation"
    variants = ("--variants", "full,gn")
    killed = ablate(out, *variants, crash_at="3:0")  # exits at iteration 3 of the first run, as a kill -9
    assert killed.returncode == 3
    first, second = out / "runs" / "full" / "seed0", out / "runs" / "gn" / "seed0"
    assert (first / "checkpoints" / "step_00000002.pt").is_file() and not (first / "metrics.json").exists()
    assert not second.exists() and not (out / "report.json").exists()

    resumed = ablate(out, *variants)
    assert resumed.returncode == 0, resumed.stderr
    assert "0 runs done, 2 to go" in resumed.stderr
    assert "full/seed0: resuming at step 2" in resumed.stderr
    report = json.loads((out / "report.json").read_text())
    assert set(report["table"]) == {"full", "gn"} and report["runs_done"] == 2
    steps = [json.loads(line)["step"] for line in (first / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]  # each step once: the killed session's record of step 3 never was

    done = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/seed0/metrics.json")}
    again = ablate(out, *variants)
    assert again.returncode == 0 and "2 runs done, 0 to go" in again.stderr
    assert {p: p.stat().st_mtime_ns for p in done} == done  # nothing retrained or re-evaluated

    other = ablate(out, *variants, "--lr", "0.001")
    assert other.returncode == 2
    assert "holds an ablation with other settings (optim.lr: 0.0005 there, 0.001 now)" in other.stderr


def test_kill_9_of_the_ablation_alone_stops_its_runs_and_the_next_ablation_continues_them(tmp_path):
    """On two devices each run trains in a child process. Killed alone (not its process group: the OOM
    killer, `kill -9 PID`), the ablation used to leave them training unattended, holding their locks."""
    out = tmp_path / "ablation"
    variants = ("--variants", "full,gn", "--devices", "cpu,cpu")
    runs = [out / "runs" / variant / "seed0" for variant in ("full", "gn")]
    # 6 iterations of at least 2 s: the kill lands well before either run ends; each process takes 3 s more
    # to exit, so that a signal that came late would find the run over and its default handler back
    command, env = ablate_call(out, *variants, "--iters", "6", step_seconds="2", exit_seconds="3")
    with adopting_orphans():
        parent = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
        )
        try:
            wait_for(lambda: all(log_lines(run) >= 1 for run in runs), parent)
            children = run_processes_of(parent.pid)
            assert len(children) == 2, children
            os.kill(parent.pid, signal.SIGKILL)
            _, stderr = parent.communicate(timeout=120)  # the runs hold its stderr until they exit
        finally:
            if parent.poll() is None:
                os.killpg(parent.pid, signal.SIGKILL)
        codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children]
    assert codes == [143, 143], (codes, stderr)  # stopped as by SIGTERM, each having saved
    for run, variant in zip(runs, ("full", "gn")):
        assert f"{variant}/seed0: ugatit ablate (pid {parent.pid}) is gone: stopping this run" in stderr, stderr
        assert f"{variant}/seed0: SIGTERM: finishing this iteration, then saving a checkpoint" in stderr, stderr
        assert lock_is_free(run) and steps_saved(run) and not (run / "metrics.json").exists()

    resumed = ablate(out, *variants, "--iters", "6")
    assert resumed.returncode == 0, resumed.stderr
    assert "0 runs done, 2 to go" in resumed.stderr
    for variant in ("full", "gn"):
        assert f"{variant}/seed0: resuming at step" in resumed.stderr, resumed.stderr
    assert json.loads((out / "report.json").read_text())["runs_done"] == 2


def test_runs_are_scheduled_one_at_a_time_per_device_in_order():
    events: list[tuple[str, int, float, float]] = []
    lock = threading.Lock()

    def work(task: int, device: str) -> int:
        start = time.monotonic()
        time.sleep(0.02 * (1 + task % 3))
        with lock:
            events.append((device, task, start, time.monotonic()))
        return task * 10

    done = run_on_devices(list(range(7)), ["cuda:0", "cuda:1"], work)
    assert sorted(task for task, _, _ in done) == list(range(7))
    assert all(result == task * 10 for task, _, result in done)
    assert {device for device, *_ in events} == {"cuda:0", "cuda:1"}
    for device in ("cuda:0", "cuda:1"):
        mine = sorted((start, end) for d, _, start, end in events if d == device)
        assert all(end <= next_start for (_, end), (next_start, _) in itertools.pairwise(mine))  # one at a time
    starts = [task for _, task, start, _ in sorted(events, key=lambda e: e[2])]
    assert starts == sorted(starts)  # taken in order

    stop = threading.Event()

    def failing(task: int, device: str) -> int:
        if task == 1:
            stop.set()  # as a failed run does: the others finish, nothing new starts
        return task

    assert sorted(t for t, _, _ in run_on_devices(list(range(6)), ["cpu"], failing, stop)) == [0, 1]

    def broken(task: int, device: str) -> int:
        raise RuntimeError(f"task {task} broke")

    with pytest.raises(RuntimeError, match="broke"):
        run_on_devices([1, 2], ["cpu", "cpu"], broken)


def test_the_reading_calls_a_difference_real_only_beyond_the_seed_spread():
    assert mean_and_spread([1.0, 3.0]) == (2.0, pytest.approx(2**0.5))
    assert mean_and_spread([5.0]) == (5.0, None)
    columns = [("kid_a2b", "KID x100 A to B", "lower"), ("shape_change_a2b", "shape change A to B", "higher")]
    table = {
        "full": {"kid_a2b": {"mean": 10.0, "std": 0.5}, "shape_change_a2b": {"mean": 0.8, "std": 0.05}},
        "no-cam": {"kid_a2b": {"mean": 12.0, "std": 0.5}, "shape_change_a2b": {"mean": 0.75, "std": 0.05}},
        "in": {"kid_a2b": {"mean": 9.0, "std": None}},
    }
    found = {(f["variant"], f["metric"]): f for f in reading(table, columns)}
    assert found[("no-cam", "kid_a2b")]["beyond_spread"] and found[("no-cam", "kid_a2b")]["direction"] == "worse"
    assert found[("no-cam", "kid_a2b")]["spread"] == 1.0
    assert not found[("no-cam", "shape_change_a2b")]["beyond_spread"]  # 0.05 apart, spread 0.1
    assert found[("no-cam", "shape_change_a2b")]["direction"] == "worse"
    assert not found[("in", "kid_a2b")]["beyond_spread"] and found[("in", "kid_a2b")]["spread"] is None


def test_bad_requests_fail_before_anything_is_written(tmp_path):
    out = tmp_path / "ablation"
    unknown = ablate(out, "--variants", "full,no-attention")
    assert unknown.returncode == 2 and "unknown model variant 'no-attention'" in unknown.stderr
    missing = subprocess.run(
        [sys.executable, "-m", "ugatit", "ablate", str(tmp_path / "nowhere"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == 2 and "dataset folder not found" in missing.stderr
    assert not out.exists()

    data = tmp_path / "photos"  # real data: no ground truth, so without KID there is nothing to compare
    for split in ("trainA", "trainB", "testA", "testB"):
        (data / split).mkdir(parents=True)
        Image.new("RGB", (32, 32), (10, 200, 30)).save(data / split / "0.png")
    env = dict(os.environ, UGATIT_OFFLINE="1", TORCH_HOME=str(tmp_path / "torch"))  # no Inception weights
    env.pop("UGATIT_INCEPTION_WEIGHTS", None)
    unmeasurable = subprocess.run(
        [sys.executable, "-m", "ugatit", "ablate", str(data), "--out", str(out), "--variants", "full"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert unmeasurable.returncode == 2, unmeasurable.stderr
    assert "FID Inception weights not found" in unmeasurable.stderr and "needs KID" in unmeasurable.stderr
    assert not out.exists()
