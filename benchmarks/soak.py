"""The soak: training runs attacked as a machine and its users attack them, resumed, compared with one that
ran straight through.

    python benchmarks/soak.py [--trials 20] [--iters 24] [--save-every 4] [--max-kills 3] [--workers 2]
                              [--distributed-trials 5] [--disk-levels 0,8k,64k,256k,1m,2m]
                              [--only kill,distributed,disk] [--seed 0] [--out /tmp/ugatit-soak]

kill -9 (`--trials`):

Each trial trains the tiny model on CPU with `ugatit train` in its own process group and kills the group
with SIGKILL, one to --max-kills times: at a random iteration, or (every other kill, on average) the
moment a checkpoint's temporary file appears, in the middle of writing it. After each kill it tries to
load every checkpoint left in the run folder, notes how many iterations were lost (the last step in
log.jsonl minus the step the next session resumes from) and resumes with `--resume`, until a session
completes. The final state (networks, optimisers, every RNG state, the data position, the step) is
compared tensor by tensor with an uninterrupted run's. Prints one markdown table row per setting:
trials, kills (and how many left a half-written checkpoint), bit-identical runs, unloadable checkpoints,
most iterations lost to one kill, and temporary files still there at the end.

kill -9 of a distributed job's launcher (`--distributed-trials`): `ugatit train --nproc 2` (gloo, CPU) in a
process session of its own, its group killed with SIGKILL at a random iteration, as a terminal closing or
`kill -9 -- -PID` does. torchrun keeps each rank in a session of its own, so the kill reaches only the
launcher: the ranks must notice, save and stop, and free the run's lock. Then the "continue with:" command
they printed is run as printed, killed again up to --max-kills times, until the run completes, and the
final state is compared with an uninterrupted `--nproc 2` run's. Reports how long the ranks outlived the
launcher, how the ranks exited (the soak adopts them as their subreaper, so it reads their exit statuses:
rank 0 must end with 143, as for a SIGTERM, the other with 0, neither by a signal), whether the lock was
free, whether the printed command named --nproc 2, and bit-identity.

A full disk (`--disk-levels`, needs root to mount a tmpfs): for each amount of free space, each writer
runs on a 4 MB tmpfs filled up to leave that much: a training run (log.jsonl, config.yaml, checkpoints,
sample grids, TensorBoard, the export), `export` (TorchScript and ONNX), `convert` and `translate`. Each
must end either complete or with one line and exit code 2, with no temporary file and no file that does
not load left behind; a training run that stopped is then continued as its message says, once the space
is freed, and compared with an uninterrupted run's final state.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import platform
import random
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ugatit.errors import UserError
from ugatit.weights import checkpoints

CONFIG = """\
model: {{img_size: 32, ch: 2, n_res: 1, light: true}}
optim: {{iterations: {iters}}}
data: {{num_workers: {workers}}}
train: {{device: cpu, log_every: 1, sample_every: {sample_every}, save_every: {save_every}, keep_last: 2}}
"""


@dataclass
class Trial:
    kills: int = 0
    mid_write: int = 0  # kills that left a checkpoint's temporary file behind
    unloadable: int = 0  # checkpoint files (step_*.pt) that did not load after a kill
    lost: list[int] = field(default_factory=list)  # iterations lost to each kill
    identical: bool = False
    leftover: int = 0  # temporary files in the run folder once the run completed


def write_dataset(root: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for domain in ("trainA", "trainB"):
        (root / domain).mkdir(parents=True, exist_ok=True)
        for i in range(4):
            Image.fromarray(rng.integers(0, 256, (36, 40, 3), dtype=np.uint8)).save(root / domain / f"{i}.png")


def start(args: list[str]) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen(
        [sys.executable, "-m", "ugatit", "train", *args, "--no-progress"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def last_logged_step(run_dir: Path) -> int:
    try:
        lines = (run_dir / "log.jsonl").read_text().splitlines()
    except OSError:
        return 0
    steps = [0]
    for line in lines:
        try:
            steps.append(int(json.loads(line)["step"]))
        except (ValueError, KeyError, TypeError):
            pass  # a line cut by the kill
    return max(steps)


def temporaries(run_dir: Path) -> list[Path]:
    return [p for p in run_dir.rglob(".*.tmp") if p.is_file()]


def newest_loadable_step(run_dir: Path) -> int:
    try:
        return int(checkpoints.newest_readable_checkpoint(run_dir)[1]["step"])
    except UserError:
        return 0


def run_to_end(process: subprocess.Popen) -> None:
    _, stderr = process.communicate(timeout=600)
    if process.returncode != 0:
        raise RuntimeError(f"training failed ({process.returncode}):\n{stderr[-3000:]}")


def wait_and_kill(process: subprocess.Popen, run_dir: Path, mid_write: bool, target_step: int) -> bool:
    """Kill the process group when a checkpoint is being written (mid_write) or once `target_step` is
    logged; False when the session ended first."""
    folder = run_dir / checkpoints.CHECKPOINT_DIR
    while process.poll() is None:
        if mid_write:
            writing = folder.is_dir() and any(e.name.endswith(".tmp") for e in os.scandir(folder))
        else:
            writing = last_logged_step(run_dir) >= target_step
        if writing:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return True
        time.sleep(0.001 if mid_write else 0.01)
    return False


def trial(
    data: Path, config: Path, run_dir: Path, reference: dict, iters: int, max_kills: int, rng: random.Random
) -> Trial:
    result = Trial()
    kills = rng.randint(1, max_kills)
    fresh = [str(data), "--config", str(config), "--out", str(run_dir)]
    process = start(fresh)
    while result.kills < kills:
        mid_write = rng.random() < 0.5
        target = rng.randint(min(newest_loadable_step(run_dir) + 1, iters - 1), iters - 1)
        if not wait_and_kill(process, run_dir, mid_write, target):
            break  # the session completed first
        result.kills += 1
        result.mid_write += any("step_" in p.name for p in temporaries(run_dir))
        found = checkpoints.list_checkpoints(run_dir)
        for path in found:
            try:
                checkpoints.load_training_checkpoint(path)
            except UserError:
                result.unloadable += 1
        result.lost.append(last_logged_step(run_dir) - newest_loadable_step(run_dir))
        # killed before its first checkpoint, the run starts again
        process = start([str(data), "--out", str(run_dir), "--resume"] if found else fresh)
    run_to_end(process)
    final = checkpoints.load_training_checkpoint(checkpoints.checkpoint_path(run_dir, iters))
    result.identical = checkpoints.state_differences(final, reference) == []
    result.leftover = len(temporaries(run_dir))
    return result


def soak(
    out: Path,
    trials: int = 20,
    iters: int = 24,
    save_every: int = 4,
    max_kills: int = 3,
    workers: int = 2,
    seed: int = 0,
    log=print,
) -> list[Trial]:
    """Run the soak in `out` (emptied first); returns one `Trial` per trial."""
    shutil.rmtree(out, ignore_errors=True)
    data, config = out / "data", out / "config.yaml"
    write_dataset(data, seed)
    config.write_text(CONFIG.format(iters=iters, workers=workers, save_every=save_every, sample_every=save_every))
    straight = out / "straight"
    run_to_end(start([str(data), "--config", str(config), "--out", str(straight)]))
    reference = checkpoints.load_training_checkpoint(checkpoints.checkpoint_path(straight, iters))
    rng = random.Random(seed)
    results = []
    for index in range(trials):
        results.append(trial(data, config, out / f"trial_{index:02d}", reference, iters, max_kills, rng))
        r = results[-1]
        log(
            f"trial {index + 1}/{trials}: {r.kills} kills ({r.mid_write} mid-write), lost {r.lost}, "
            f"{'bit-identical' if r.identical else 'DIFFERENT'}, {r.unloadable} unloadable"
        )
    return results


def table(results: list[Trial]) -> str:
    kills = sum(r.kills for r in results)
    mid = sum(r.mid_write for r in results)
    lost = max((n for r in results for n in r.lost), default=0)
    return "\n".join(
        [
            "| trials | kills (mid-write) | bit-identical | unloadable checkpoints | max iterations lost "
            "| temporary files left |",
            "|---:|---:|---:|---:|---:|---:|",
            f"| {len(results)} | {kills} ({mid}) | {sum(r.identical for r in results)} | "
            f"{sum(r.unloadable for r in results)} | {lost} | {sum(r.leftover for r in results)} |",
        ]
    )


# --- kill -9 of a distributed job's launcher ------------------------------------------------------------------

DISTRIBUTED_CONFIG = """\
model: {{img_size: 32, ch: 2, n_res: 1, light: true}}
optim: {{iterations: {iters}}}
data: {{num_workers: 0}}
train: {{device: cpu, log_every: 1, sample_every: 0, save_every: {save_every}, keep_last: 2}}
"""


@dataclass
class LauncherTrial:
    kills: int = 0
    outlived: list[float] = field(default_factory=list)  # seconds the ranks ran on after each kill
    lock_free: int = 0  # kills after which the lock was free once the ranks had stopped
    hint_nproc: int = 0  # printed "continue with:" commands that named --nproc 2
    clean_exits: int = 0  # kills after which rank 0 exited 143 and the other 0, neither by a signal
    exits: list[list[int]] = field(default_factory=list)  # the ranks' exit statuses after each kill
    identical: bool = False


def run_processes(run_dir: Path) -> list[int]:
    """The processes whose command line names `run_dir` (a launcher and its ranks)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            words = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if str(run_dir).encode() in words:
            found.append(int(entry.name))
    return found


def lock_free(run_dir: Path) -> bool:
    try:
        with open(run_dir / ".lock", "rb") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
    except OSError:
        return False


def adopt_orphans() -> None:
    """Make this process the subreaper of its descendants (Linux): ranks whose launcher is killed become its
    children, so their exit statuses can be read."""
    import ctypes

    if ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) != 0:  # 36: PR_SET_CHILD_SUBREAPER
        raise RuntimeError(f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(ctypes.get_errno())}")


def launch(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "ugatit", *args, "--no-progress"],
        env=dict(os.environ, OMP_NUM_THREADS="1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def launcher_trial(
    data: Path, config: Path, run_dir: Path, reference: dict, iters: int, max_kills: int, rng: random.Random
) -> LauncherTrial:
    result = LauncherTrial()
    kills = rng.randint(1, max_kills)
    command = ["train", str(data), "--config", str(config), "--out", str(run_dir), "--nproc", "2"]
    process = launch(command)
    while True:
        target = rng.randint(min(newest_loadable_step(run_dir) + 1, iters - 1), iters - 1)
        while process.poll() is None and last_logged_step(run_dir) < target:
            time.sleep(0.01)
        if process.poll() is not None or result.kills == kills:
            break
        ranks = [pid for pid in run_processes(run_dir) if pid != process.pid]
        os.killpg(process.pid, signal.SIGKILL)
        killed = time.monotonic()
        result.kills += 1
        stdout, _ = process.communicate(timeout=600)  # the ranks hold its pipes until they exit
        exits = sorted(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in ranks)  # ours: subreaper
        result.exits.append(exits)
        result.clean_exits += exits == [0, 143]
        while run_processes(run_dir):
            time.sleep(0.05)
        result.outlived.append(time.monotonic() - killed)
        result.lock_free += lock_free(run_dir)
        hint = [line for line in stdout.splitlines() if line.startswith("continue with: ugatit ")]
        if not hint:  # killed before the first checkpoint: the run starts again
            process = launch(command)
            continue
        words = shlex.split(hint[-1].removeprefix("continue with: ugatit "))
        result.hint_nproc += words[-2:] == ["--nproc", "2"]
        process = launch(words)
    stdout, stderr = process.communicate(timeout=600)
    if process.returncode != 0:
        raise RuntimeError(f"training failed ({process.returncode}):\n{stderr[-3000:]}")
    final = checkpoints.load_training_checkpoint(checkpoints.checkpoint_path(run_dir, iters))
    result.identical = checkpoints.state_differences(final, reference) == []
    return result


def launcher_soak(
    out: Path, trials: int = 5, iters: int = 24, save_every: int = 4, max_kills: int = 2, seed: int = 0, log=print
) -> list[LauncherTrial]:
    """kill -9 of `--nproc 2` launchers (see the module docstring), in `out` (emptied first)."""
    adopt_orphans()
    shutil.rmtree(out, ignore_errors=True)
    data, config = out / "data", out / "config.yaml"
    write_dataset(data, seed)
    config.write_text(DISTRIBUTED_CONFIG.format(iters=iters, save_every=save_every))
    straight = out / "straight"
    process = launch(["train", str(data), "--config", str(config), "--out", str(straight), "--nproc", "2"])
    _, stderr = process.communicate(timeout=1200)
    if process.returncode != 0:
        raise RuntimeError(f"training failed ({process.returncode}):\n{stderr[-3000:]}")
    reference = checkpoints.load_training_checkpoint(checkpoints.checkpoint_path(straight, iters))
    rng = random.Random(seed)
    results = []
    for index in range(trials):
        results.append(launcher_trial(data, config, out / f"trial_{index:02d}", reference, iters, max_kills, rng))
        r = results[-1]
        log(
            f"distributed trial {index + 1}/{trials}: {r.kills} kills, ranks outlived the launcher by "
            f"{', '.join(f'{s:.1f}' for s in r.outlived)} s, ranks exited {r.exits}, "
            f"lock free {r.lock_free}/{r.kills}, "
            f"{'bit-identical' if r.identical else 'DIFFERENT'}"
        )
    return results


def launcher_table(results: list[LauncherTrial]) -> str:
    kills = sum(r.kills for r in results)
    outlived = [s for r in results for s in r.outlived]
    return "\n".join(
        [
            "| trials | kills of the launcher's group | ranks stopped | ranks outlived it by (max) | ranks exited "
            "143 and 0 | lock free after | printed command with --nproc 2 | bit-identical |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
            f"| {len(results)} | {kills} | {len(outlived)} | {max(outlived, default=0):.1f} s | "
            f"{sum(r.clean_exits for r in results)} | "
            f"{sum(r.lock_free for r in results)} | {sum(r.hint_nproc for r in results)} | "
            f"{sum(r.identical for r in results)} |",
        ]
    )


# --- A full disk ------------------------------------------------------------------------------------------

DISK_SIZE = 4 << 20
DISK_CONFIG = """\
model: {img_size: 32, ch: 2, n_res: 1, light: true}
optim: {iterations: 8}
data: {num_workers: 0}
train: {device: cpu, log_every: 1, sample_every: 2, save_every: 2, keep_last: 2}
"""


@dataclass
class DiskRun:
    level: int  # bytes left free
    writer: str
    outcome: str  # "complete", "one line", or what went wrong
    failed_on: str = ""  # the file its message names
    partial: list[str] = field(default_factory=list)  # files left that are temporary or do not load
    resumed: str = ""  # training: "bit-identical", "DIFFERENT", or "" when it completed


class SmallDisk:
    """A tmpfs of `DISK_SIZE` filled up to leave `free` bytes (rounded to pages)."""

    def __init__(self, folder: Path, free: int):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={DISK_SIZE}", "tmpfs", str(folder)], capture_output=True, text=True
        )
        if mounted.returncode != 0:
            raise RuntimeError(f"the disk soak mounts a tmpfs, which needs root: {mounted.stderr.strip()}")
        fill = max(0, shutil.disk_usage(folder).free - free)
        fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            while fill > 0:
                fill -= os.write(fd, b"\0" * min(fill, 1 << 20))
        except OSError:
            pass
        finally:
            os.close(fd)

    def free(self) -> None:
        (self.folder / "filler").unlink(missing_ok=True)

    def close(self) -> None:
        subprocess.run(["umount", "-l", str(self.folder)], check=False)


def ugatit(*args, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ugatit", *map(str, args)],
        capture_output=True,
        text=True,
        env=env or dict(os.environ, OMP_NUM_THREADS="1"),
        timeout=1200,
    )


def outcome(result: subprocess.CompletedProcess, subcommand: str) -> tuple[str, str]:
    """("complete" | "one line" | what went wrong, the file a one-line error names)."""
    if result.returncode == 0:
        return "complete", ""
    errors = [line for line in result.stderr.splitlines() if line.startswith(f"ugatit {subcommand}: error: ")]
    if "Traceback" in result.stderr or "Exception in thread" in result.stderr:
        return "traceback", ""
    if result.returncode != 2 or len(errors) != 1:
        return f"exit {result.returncode}, {len(errors)} error lines", ""
    named = errors[0].split("cannot write ", 1)[-1].split(":", 1)[0] if "cannot write " in errors[0] else ""
    return "one line", named


def partial_files(folder: Path) -> list[str]:
    """Files under `folder` (the filler aside) that are temporary or do not load as what they claim to be."""
    import onnx
    import torch
    from PIL import Image

    from ugatit.config import Config
    from ugatit.weights.export import load_export

    bad = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != "filler"):
        name = str(path.relative_to(folder))
        try:
            if path.name.endswith(".tmp"):
                raise ValueError("temporary")
            if path.suffix == ".png":
                with Image.open(path) as img:
                    img.load()
            elif path.suffix == ".safetensors":
                load_export(path)
            elif path.suffix == ".onnx":
                onnx.load(str(path))
            elif path.suffix == ".pt" and path.parent.name == checkpoints.CHECKPOINT_DIR:
                checkpoints.load_training_checkpoint(path)
            elif path.suffix == ".pt":
                torch.jit.load(str(path))
            elif path.name == "config.yaml":
                Config.load(path, complete=True)
            elif (
                path.suffix in (".jsonl", ".html", ".json")
                and path.stat().st_size
                and not path.read_bytes().endswith(b"\n")
            ):
                raise ValueError("cut short")
        except Exception:
            bad.append(name)
    return bad


def disk_soak(out: Path, levels: list[int], seed: int = 0, log=print) -> list[DiskRun]:
    """Every writer on a disk with `levels` bytes free (see the module docstring), in `out` (emptied first)."""
    for stale in out.glob("disk_*"):
        subprocess.run(["umount", "-l", str(stale)], check=False, capture_output=True)
    shutil.rmtree(out, ignore_errors=True)
    data, config = out / "data", out / "config.yaml"
    write_dataset(data, seed)
    config.write_text(DISK_CONFIG)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    straight = out / "straight"
    done = ugatit("train", data, "--config", config, "--out", straight, "--no-progress")
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    reference = checkpoints.load_training_checkpoint(checkpoints.checkpoint_path(straight, 8))
    weights = straight / "export" / "ugatit_generators.safetensors"
    writers = {
        "train": lambda d: ("train", data, "--config", config, "--out", d / "run", "--no-progress"),
        "export torchscript": lambda d: ("export", weights, "--format", "torchscript", "--output", d / "g"),
        "export onnx": lambda d: ("export", weights, "--format", "onnx", "--output", d / "g"),
        "convert": lambda d: ("convert", checkpoints.checkpoint_path(straight, 8), d / "c.safetensors"),
        "translate": lambda d: (
            "translate",
            "--checkpoint",
            weights,
            "--input",
            data / "trainA",
            "--output",
            d / "t",
            "--no-progress",
        ),
    }
    runs = []
    for level in levels:
        for writer, arguments in writers.items():
            disk = SmallDisk(out / f"disk_{level}_{writer.replace(' ', '_')}", level)
            try:
                args = arguments(disk.folder)
                result = ugatit(*args, env=env)
                what, named = outcome(result, args[0])
                run = DiskRun(level, writer, what, named, partial_files(disk.folder))
                if writer == "train" and result.returncode != 0 and what == "one line":
                    run.resumed = continue_training(result, data, config, disk, reference)
            finally:
                disk.close()
            runs.append(run)
            log(
                f"{size_text(level)} free, {writer}: {run.outcome}"
                + (f" ({run.failed_on})" if run.failed_on else "")
                + (f", partial: {', '.join(run.partial)}" if run.partial else "")
                + (f", continued: {run.resumed}" if run.resumed else "")
            )
    return runs


def continue_training(
    result: subprocess.CompletedProcess, data: Path, config: Path, disk: SmallDisk, reference: dict
) -> str:
    """Free the space, continue as the run's last words say (or start again when it had no checkpoint),
    and compare the end with the uninterrupted run."""
    disk.free()
    said = [line for line in result.stdout.splitlines() if " with: ugatit train " in line]
    if said:
        words = shlex.split(said[-1].split(" with: ugatit ", 1)[1])
    else:
        words = ["train", str(data), "--config", str(config), "--out", str(disk.folder / "run")]
    continued = ugatit(*words, "--no-progress")
    if continued.returncode != 0:
        return f"failed again: {continued.stderr.strip().splitlines()[-1:]}"
    final = checkpoints.load_training_checkpoint(checkpoints.checkpoint_path(disk.folder / "run", 8))
    return "bit-identical" if checkpoints.state_differences(final, reference) == [] else "DIFFERENT"


def disk_table(runs: list[DiskRun]) -> str:
    writers = list(dict.fromkeys(r.writer for r in runs))
    rows = [
        "| free | " + " | ".join(writers) + " |",
        "|---:|" + "---|" * len(writers),
    ]
    for level in dict.fromkeys(r.level for r in runs):
        cells = []
        for writer in writers:
            r = next(r for r in runs if r.level == level and r.writer == writer)
            cell = r.outcome + (f": {Path(r.failed_on).name}" if r.failed_on else "")
            if r.partial:
                cell += f"; PARTIAL {', '.join(r.partial)}"
            if r.resumed:
                cell += f"; continued {r.resumed}"
            cells.append(cell)
        rows.append(f"| {size_text(level)} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def size_text(size: int) -> str:
    return f"{size // (1 << 20)} MB" if size >= 1 << 20 else f"{size // 1024} KB" if size else "0"


def parse_size(text: str) -> int:
    text = text.strip().lower()
    factor = {"k": 1 << 10, "m": 1 << 20}.get(text[-1:], 1)
    return int(float(text.rstrip("km")) * factor)


def load_average() -> str:
    try:
        return ", ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--iters", type=int, default=24)
    parser.add_argument("--save-every", type=int, default=4)
    parser.add_argument("--max-kills", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--distributed-trials", type=int, default=5)
    parser.add_argument("--disk-levels", default="0,8k,64k,256k,1m,2m", help="free space left on the disk")
    parser.add_argument("--only", default="kill,distributed,disk", help="which soaks to run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("/tmp/ugatit-soak"))
    args = parser.parse_args()
    only = set(args.only.split(","))
    machine = f"{cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}"
    if "kill" in only:
        started = time.monotonic()
        results = soak(
            args.out / "kill", args.trials, args.iters, args.save_every, args.max_kills, args.workers, args.seed
        )
        print(
            f"\n{machine}, {args.iters} iterations a run, a checkpoint every {args.save_every}, {args.workers} "
            f"data workers, {time.monotonic() - started:.0f} s, load average {load_average()}\n"
        )
        print(table(results))
    if "distributed" in only:
        started = time.monotonic()
        launched = launcher_soak(
            args.out / "distributed",
            args.distributed_trials,
            args.iters,
            args.save_every,
            min(args.max_kills, 2),
            args.seed,
        )
        print(
            f"\n{machine}, --nproc 2 (gloo), {args.iters} iterations a run, a checkpoint every {args.save_every}, "
            f"{time.monotonic() - started:.0f} s, load average {load_average()}\n"
        )
        print(launcher_table(launched))
    if "disk" in only:
        started = time.monotonic()
        runs = disk_soak(args.out / "disk", [parse_size(t) for t in args.disk_levels.split(",")], args.seed)
        print(
            f"\n{machine}, a {DISK_SIZE >> 20} MB tmpfs, {time.monotonic() - started:.0f} s, load average "
            f"{load_average()}\n"
        )
        print(disk_table(runs))


if __name__ == "__main__":
    main()
