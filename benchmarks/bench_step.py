"""Speed, FLOPs and peak memory of one U-GAT-IT training iteration: this project's step vs a naive step
that keeps the official loop's dead work (TrainingStep(official=True)).

    python benchmarks/bench_step.py --img-size 256 --light --precision fp32 --iters 3
    python benchmarks/bench_step.py --img-size 256 --device cuda --precision bf16 --iters 20

Prints a markdown table. Each variant runs in its own process, so that peak memory (CUDA: the
allocator's peak; CPU: the process's peak resident set, which includes ~0.3 GB of Python and torch)
belongs to that variant alone. FLOPs are counted by torch.utils.flop_counter on the meta device (no
compute), for matmuls and convolutions, forward and backward; the optimiser's elementwise work is not
counted.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from ugatit.config import ModelConfig
from ugatit.nn.model import UGATIT
from ugatit.training.step import TrainingStep, prepare_model

VARIANTS = {"ugatit": False, "official-dead-work": True}


def build(args: argparse.Namespace, device: str | torch.device) -> UGATIT:
    cfg = ModelConfig(img_size=args.img_size, ch=args.ch, n_res=args.n_res, light=args.light)
    with torch.device(device):
        model = UGATIT(cfg)
    return prepare_model(model, channels_last=args.channels_last, compile=args.compile)


def batch(args: argparse.Namespace, device) -> tuple[torch.Tensor, torch.Tensor]:
    shape = (args.batch_size, 3, args.img_size, args.img_size)
    return torch.rand(shape, device=device) * 2 - 1, torch.rand(shape, device=device) * 2 - 1


def count_flops(args: argparse.Namespace, official: bool) -> tuple[int, int]:
    """(FLOPs of one iteration, FLOPs of one generator forward), on the meta device."""
    model = build(argparse.Namespace(**{**vars(args), "compile": False}), "meta")
    step = TrainingStep(model, precision="fp32", official=official)
    a, b = batch(args, "meta")
    with FlopCounterMode(display=False) as counter:
        step(a, b, 1)
    with FlopCounterMode(display=False) as gen_counter, torch.no_grad():
        model.genA2B(a)
    return counter.get_total_flops(), gen_counter.get_total_flops()


def measure(args: argparse.Namespace, official: bool) -> dict:
    """Seconds per iteration and peak memory of one variant (run in a fresh process)."""
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = build(args, device)
    step = TrainingStep(model, precision=args.precision, channels_last=args.channels_last, official=official)
    a, b = batch(args, device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for i in range(args.warmup):
        step(a, b, i + 1)
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for i in range(args.iters):
        losses = step(a, b, args.warmup + i + 1)
    float(losses["Generator_loss"])  # wait for the last iteration
    sync()
    seconds = (time.perf_counter() - start) / args.iters
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**30
        memory_kind = "CUDA peak allocated"
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
        memory_kind = "peak RSS"
    return {"seconds": seconds, "peak_gib": peak, "memory_kind": memory_kind}


def machine(device: str) -> str:
    if device.startswith("cuda"):
        return f"{torch.cuda.get_device_name()} (torch {torch.__version__})"
    return (
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads (torch {torch.__version__})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--img-size", type=int, default=256)
    parser.add_argument("--ch", type=int, default=64)
    parser.add_argument("--n-res", type=int, default=4)
    parser.add_argument("--light", action="store_true")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--iters", type=int, default=3, help="timed iterations")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated: " + ", ".join(VARIANTS))
    parser.add_argument("--json", help="also write the rows here")
    parser.add_argument("--_measure", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args._measure:  # child process: one variant
        print(json.dumps(measure(args, VARIANTS[args._measure])))
        return

    rows = []
    for name in args.variants.split(","):
        flops, gen_flops = count_flops(args, VARIANTS[name])
        child = subprocess.run(
            [sys.executable, __file__, *sys.argv[1:], "--_measure", name], capture_output=True, text=True
        )
        if child.returncode != 0:
            sys.exit(f"{name} failed:\n{child.stderr[-3000:]}")
        result = json.loads(child.stdout.strip().splitlines()[-1])
        rows.append({"variant": name, "tflop_per_iter": flops / 1e12, "gen_fwd_gflop": gen_flops / 1e9, **result})

    kind = "light" if args.light else "full"
    print(
        f"\n{kind} model, {args.img_size}px, ch {args.ch}, n_res {args.n_res}, batch {args.batch_size}, "
        f"{args.precision}{', channels_last' if args.channels_last else ''}{', compiled' if args.compile else ''}"
        f" on {args.device}: {machine(args.device)}\n"
    )
    print("| step | s / iter | TFLOP / iter | generator fwd GFLOP | peak memory (GiB) |")
    print("|---|---:|---:|---:|---:|")
    base = rows[-1]
    for r in rows:
        rel = f" ({r['seconds'] / base['seconds']:.0%})" if r is not base else ""
        print(
            f"| {r['variant']} | {r['seconds']:.3f}{rel} | {r['tflop_per_iter']:.3f} | {r['gen_fwd_gflop']:.1f} | "
            f"{r['peak_gib']:.2f} {r['memory_kind']} |"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"args": {k: v for k, v in vars(args).items() if not k.startswith("_")}, "rows": rows}, f, indent=2
            )


if __name__ == "__main__":
    main()
