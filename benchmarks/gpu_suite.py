"""Everything worth measuring on a borrowed GPU, in one run of at most `--budget` seconds (default 340):
run by benchmarks/gpu_suite.sh, which says how.

Pieces, in order, each in its own process with its own time limit, each allowed to fail (the failure is
recorded and the suite goes on): the machine; golden parity on the device (fp32 with TF32 off, and bf16);
a dataset of 256 px shapes; `ugatit train` for 200 iterations with the default (fast) path and with
--eager; a profile of one eager light fp32 iteration (kernels, GPU busy time, the costliest kernels);
`ugatit bench` at 256 px (light and full; fp32: official loop, eager, CUDA graph; bf16: eager, CUDA graph);
`ugatit train` as one rank under torchrun; and, when UGATIT_OFFICIAL names a clone of the official PyTorch
code, that code on the same data. After every piece, $OUT/suite.json (every piece: command, status,
seconds, output tail, what it measured) and $OUT/suite.md (the tables) are rewritten, so a run cut short
still leaves what it had.

`--quick` runs the same pieces at toy sizes on any device (the CPU included), to check the plumbing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class Suite:
    def __init__(self, out: Path, budget: float):
        self.out = out
        self.deadline = time.monotonic() + budget
        self.pieces: list[dict] = []
        out.mkdir(parents=True, exist_ok=True)

    def run(self, name: str, command: list[str], limit: float, *, cwd: Path | None = None, minimum: float = 20) -> dict:
        """Run one piece within min(limit, what is left of the budget); never raises."""
        left = self.deadline - time.monotonic()
        piece = {"name": name, "command": " ".join(map(str, command))}
        if left < minimum:
            piece.update(status="skipped: out of time", seconds=0.0, output="")
        else:
            timeout = min(limit, left)
            start = time.monotonic()
            try:
                done = subprocess.run(
                    [str(c) for c in command],
                    capture_output=True,
                    text=True,
                    timeout=timeout,
                    cwd=cwd,
                    env=dict(os.environ, PYTHONUNBUFFERED="1"),
                )
                status = "ok" if done.returncode == 0 else f"failed (exit {done.returncode})"
                output = done.stdout + ("\n" + done.stderr if done.stderr.strip() else "")
            except subprocess.TimeoutExpired as exc:
                status = f"stopped after {timeout:.0f} s"
                output = _text(exc.stdout) + "\n" + _text(exc.stderr)
            except OSError as exc:  # the program is missing
                status, output = f"failed ({exc})", ""
            piece.update(status=status, seconds=round(time.monotonic() - start, 1), output=output[-6000:])
        print(f"[suite] {name}: {piece['status']} ({piece['seconds']} s)", flush=True)
        self.pieces.append(piece)
        self.write()
        return piece

    def write(self) -> None:
        (self.out / "suite.json").write_text(json.dumps({"pieces": self.pieces}, indent=2))
        (self.out / "suite.md").write_text(report(self.pieces, self.out))


def _text(value) -> str:
    if value is None:
        return ""
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def train_rate(run_dir: Path, skip: int) -> dict | None:
    """Iterations per second of a `ugatit train` run from its log.jsonl, after the first `skip` steps
    (warm-up, capture)."""
    log = run_dir / "log.jsonl"
    if not log.is_file():
        return None
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    steps = [(r["step"], r["time"]) for r in records if "time" in r and "event" not in r]
    after = [(s, t) for s, t in steps if s >= skip]
    if len(after) < 2 or after[-1][1] <= after[0][1]:
        return None
    (s0, t0), (s1, t1) = after[0], after[-1]
    return {
        "steps": [s0, s1],
        "iters_per_second": (s1 - s0) / (t1 - t0),
        "first_steps_seconds": t0,
        "total_seconds": t1,
    }


def official_rate(output: str, skip: int) -> dict | None:
    """Iterations per second of the official code from its per-step lines '[ step/ N] time: T ...'."""
    points = [(int(s), float(t)) for s, t in re.findall(r"\[\s*(\d+)/\s*\d+\]\s*time:\s*([\d.]+)", output)]
    after = [(s, t) for s, t in points if s >= skip]
    if len(after) < 2 or after[-1][1] <= after[0][1]:
        return None
    (s0, t0), (s1, t1) = after[0], after[-1]
    return {"steps": [s0, s1], "iters_per_second": (s1 - s0) / (t1 - t0)}


def report(pieces: list[dict], out: Path) -> str:
    """The markdown report: status of every piece, then what each measured."""
    lines = ["# GPU suite", "", "| piece | status | seconds |", "|---|---|---:|"]
    lines += [f"| {p['name']} | {p['status']} | {p['seconds']} |" for p in pieces]
    for p in pieces:
        if p["name"] == "machine" and p["status"] == "ok":
            lines += ["", "## Machine", "", "```", p["output"].strip(), "```"]
        if p["name"].startswith(("golden", "profile")) and "|" in p["output"]:
            # Its tables, each kept apart: two tables run together read as one with the wrong columns.
            tables = [block.strip() for block in p["output"].split("\n\n") if block.strip().startswith("|")]
            lines += ["", f"## {p['name']}", "", "\n\n".join(tables)]
        if p["name"].startswith("bench") and (out / f"{p['name']}.md").is_file():
            lines += ["", f"## {p['name']}", "", (out / f"{p['name']}.md").read_text().strip()]
        if "measured" in p:
            lines += ["", f"## {p['name']}", "", "```", json.dumps(p["measured"], indent=2), "```"]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "gpu-suite-out")))
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--budget", type=float, default=340.0, help="seconds for the whole suite")
    parser.add_argument("--quick", action="store_true", help="toy sizes: check the plumbing on any device")
    args = parser.parse_args()
    suite = Suite(args.out, args.budget)
    py = sys.executable
    ugatit = [py, "-m", "ugatit"]
    quick = args.quick
    size = 32 if quick else 256
    model = ["--ch", "4", "--n-res", "1"] if quick else []
    iters = 12 if quick else 200

    suite.run("machine", [py, "-c", MACHINE], 60, minimum=5)
    golden = [py, str(ROOT / "benchmarks" / "golden_on_device.py"), "--device", args.device]
    suite.run("golden fp32", golden, 90)
    suite.run("golden bf16", [*golden, "--precision", "bf16"], 90)

    # Training end to end first: what a user gets, and what the first H200 run (bench first) ran out of
    # time for. Then where the eager step's time goes, then the bench's table, then torchrun.
    data = suite.out / "shapes"
    shutil.rmtree(data, ignore_errors=True)
    suite.run(
        "dataset",
        [*ugatit, "make-dataset", "shapes", data, "--size", str(size), "--count", "100", "--test-count", "4"],
        60,
    )
    # One rank under torchrun joins an NCCL process group and averages its gradients (trivially, with
    # itself) and agrees on stopping every iteration: what distributed training costs against the same
    # eager step run plainly.
    torchrun = [py, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "1", "-m", "ugatit"]

    def train(name: str, launch: list, extra: list[str]) -> None:
        run_dir = suite.out / ("run-torchrun" if launch is torchrun else "run-eager" if extra else "run-fast")
        shutil.rmtree(run_dir, ignore_errors=True)
        piece = suite.run(
            name,
            [
                *launch,
                "train",
                data,
                "--out",
                run_dir,
                "--light",
                "--img-size",
                str(size),
                *model,
                "--iters",
                str(iters),
                "--device",
                args.device,
                "--no-progress",
                "--log-every",
                "10",
                "--sample-every",
                "0",
                "--save-every",
                "0",
                "--workers",
                "4",
                *extra,
            ],
            100,
        )
        piece["measured"] = train_rate(run_dir, skip=iters // 3)
        said = [line for line in piece["output"].splitlines() if "CUDA graph" in line]
        if said and piece["measured"] is not None:
            piece["measured"]["cuda_graph"] = said[0]
        suite.write()

    train("train (default: fast path)", ugatit, [])
    train("train --eager", ugatit, ["--eager"])
    suite.run(
        "profile light fp32 eager",
        [
            py,
            str(ROOT / "benchmarks" / "profile_step.py"),
            "--device",
            args.device,
            "--img-size",
            str(size),
            *model,
            "--light",
            "--iters",
            "1" if quick else "3",
        ],
        60,
    )

    bench = [*ugatit, "bench", "--device", args.device, "--img-size", str(size), *model, "--models", "light,full"]
    bench += [
        "--iters",
        "2" if quick else "6",
        "--warmup",
        "1" if quick else "2",
        "--phase-iters",
        "1" if quick else "2",
        "--timeout",
        "60" if quick else "90",
    ]
    for precision, options in (("fp32", "official,eager,graph"), ("bf16", "eager,graph")):
        name = f"bench {precision}"
        suite.run(
            name,
            [
                *bench,
                "--precisions",
                precision,
                "--options",
                options,
                "--json",
                suite.out / f"{name}.json",
                "--markdown",
                suite.out / f"{name}.md",
            ],
            160,
        )
    train("train under torchrun, 1 rank (NCCL)", torchrun, ["--eager"])

    official = os.environ.get("UGATIT_OFFICIAL")
    if official and (Path(official) / "main.py").is_file():
        work = suite.out / "official"
        shutil.rmtree(work, ignore_errors=True)
        (work / "dataset").mkdir(parents=True)
        (work / "dataset" / "shapes").symlink_to(data.resolve())
        steps = 20 if quick else 100
        piece = suite.run(
            "official code (light, 256 px)",
            [
                py,
                Path(official).resolve() / "main.py",
                "--dataset",
                "shapes",
                "--light",
                "True",
                "--iteration",
                str(steps),
                "--img_size",
                str(size),
                "--print_freq",
                "100000",
                "--save_freq",
                "100000",
                "--device",
                args.device,
                "--result_dir",
                work / "results",
            ],
            150,
            cwd=work,
        )
        piece["measured"] = official_rate(piece["output"], skip=steps // 4)
        suite.write()
    else:
        suite.pieces.append(
            {
                "name": "official code",
                "status": "skipped: UGATIT_OFFICIAL not set (the bench's "
                "`official` rows are the official loop in this package)",
                "seconds": 0.0,
                "output": "",
            }
        )
        suite.write()
    print(f"[suite] wrote {suite.out / 'suite.md'} and {suite.out / 'suite.json'}")


MACHINE = """
import platform, subprocess, torch
print("python", platform.python_version(), "| torch", torch.__version__, "| CUDA", torch.version.cuda)
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print(torch.cuda.get_device_name(0), f"{p.total_memory / 2**30:.0f} GiB", "| cuDNN", torch.backends.cudnn.version())
    try:
        print(subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version,clocks.max.sm",
                              "--format=csv,noheader"], capture_output=True, text=True, timeout=20).stdout.strip())
    except OSError:
        pass
else:
    print("no CUDA device")
"""


if __name__ == "__main__":
    main()
