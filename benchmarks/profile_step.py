"""Where one training iteration's time goes on a GPU: kernels launched, GPU busy time against wall time,
and the kernels that take the most, from torch.profiler over a few eager iterations.

    python benchmarks/profile_step.py --device cuda [--light] [--img-size 256] [--precision fp32]

If the GPU is busy for most of the wall time, the step is bound by its kernels (fuse or speed them up);
if it is busy for little of it, the host launching them is the limit (capture a graph, launch fewer).
Prints a markdown table; on the CPU it runs too (CPU kernels instead), to check the script.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

import torch
from torch.profiler import ProfilerActivity, profile

from ugatit.config import LossConfig, ModelConfig, OptimConfig
from ugatit.nn.model import UGATIT
from ugatit.training.step import TrainingStep
from ugatit.utils.profiling import synchronize


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--img-size", type=int, default=256)
    parser.add_argument("--ch", type=int, default=64)
    parser.add_argument("--n-res", type=int, default=4)
    parser.add_argument("--light", action="store_true")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--iters", type=int, default=3, help="profiled iterations (after 3 warm-up ones)")
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = device.type == "cuda"
    model = UGATIT(ModelConfig(img_size=args.img_size, ch=args.ch, n_res=args.n_res, light=args.light)).to(device)
    step = TrainingStep(model, LossConfig(), OptimConfig(), precision=args.precision)
    real_a = torch.rand(1, 3, args.img_size, args.img_size, device=device) * 2 - 1
    real_b = torch.rand(1, 3, args.img_size, args.img_size, device=device) * 2 - 1
    for i in range(3):
        step(real_a, real_b, i + 1)
    synchronize(device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        start = time.perf_counter()
        for i in range(args.iters):
            step(real_a, real_b, i + 4)
        synchronize(device)
        wall = (time.perf_counter() - start) / args.iters
    on_device = "cuda" if device.type == "cuda" else "cpu"
    kernels = [
        e
        for e in prof.events()
        if (e.device_type.name.lower() == on_device and on_device == "cuda")
        or (on_device == "cpu" and e.name.startswith("aten::") and e.cpu_parent is None)
    ]
    busy = sum(e.device_time if on_device == "cuda" else e.cpu_time for e in kernels) / 1e3 / args.iters
    per_name = Counter()
    counts = Counter()
    for e in kernels:
        per_name[e.name[:90]] += (e.device_time if on_device == "cuda" else e.cpu_time) / 1e3 / args.iters
        counts[e.name[:90]] += 1
    mode = "light" if args.light else "full"
    print(
        f"\none {mode} {args.precision} iteration at {args.img_size} px on {args.device} "
        f"({torch.cuda.get_device_name() if on_device == 'cuda' else 'cpu'}, torch {torch.__version__}), "
        f"mean of {args.iters}\n"
    )
    print("| wall ms | kernels | busy ms | busy share |")
    print("|---:|---:|---:|---:|")
    print(f"| {wall * 1e3:.1f} | {len(kernels) // args.iters:,} | {busy:.1f} | {busy / (wall * 1e3):.0%} |\n")
    print("| kernel | per iteration | ms | share of busy |")
    print("|---|---:|---:|---:|")
    for name, ms in per_name.most_common(args.top):
        print(f"| `{name}` | {counts[name] // args.iters} | {ms:.2f} | {ms / busy:.0%} |")


if __name__ == "__main__":
    main()
