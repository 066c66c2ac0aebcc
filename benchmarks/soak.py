"""The kill -9 soak: training runs killed at random points, resumed until done, compared with one that ran
straight through.

    python benchmarks/soak.py [--trials 20] [--iters 24] [--save-every 4] [--max-kills 3] [--workers 2]
                              [--seed 0] [--out /tmp/ugatit-soak]

Each trial trains the tiny model on CPU with `ugatit train` in its own process group and kills the group
with SIGKILL, one to --max-kills times: at a random iteration, or (every other kill, on average) the
moment a checkpoint's temporary file appears, in the middle of writing it. After each kill it tries to
load every checkpoint left in the run folder, notes how many iterations were lost (the last step in
log.jsonl minus the step the next session resumes from) and resumes with `--resume`, until a session
completes. The final state (networks, optimisers, every RNG state, the data position, the step) is
compared tensor by tensor with an uninterrupted run's. Prints one markdown table row per setting:
trials, kills (and how many left a half-written checkpoint), bit-identical runs, unloadable checkpoints,
most iterations lost to one kill, and temporary files still there at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
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
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("/tmp/ugatit-soak"))
    args = parser.parse_args()
    started = time.monotonic()
    results = soak(args.out, args.trials, args.iters, args.save_every, args.max_kills, args.workers, args.seed)
    print(
        f"\n{cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{args.iters} iterations a run, a checkpoint every {args.save_every}, {args.workers} data workers, "
        f"{time.monotonic() - started:.0f} s\n"
    )
    print(table(results))


if __name__ == "__main__":
    main()
