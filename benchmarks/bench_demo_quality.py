"""Ground-truth quality of the demo configuration against training iterations.

    python benchmarks/bench_demo_quality.py [--iters 1000] [--eval-every 50] [--out /tmp/demo-quality]

Runs `ugatit demo` (the library call, same defaults) with frequent ground-truth evaluations, prints a
markdown table of L1 / PSNR per direction against the iteration, next to the identity baseline, and
writes the curve as an SVG (default docs/images/demo_learning_curve.svg).
"""

from __future__ import annotations

import argparse
import platform
import shutil
from pathlib import Path

import torch

from ugatit.config import DemoOptions
from ugatit.demo import run_demo
from ugatit.viz.plots import svg_line_plot


def main() -> None:
    defaults = DemoOptions()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iters", type=int, default=defaults.iters)
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--img-size", type=int, default=defaults.img_size)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--out", type=Path, default=Path("/tmp/ugatit-demo-quality"))
    parser.add_argument("--svg", type=Path, default=Path(__file__).resolve().parents[1] / "docs/images/demo_learning_curve.svg")
    args = parser.parse_args()

    shutil.rmtree(args.out, ignore_errors=True)
    summary = run_demo(DemoOptions(out=args.out, iters=args.iters, eval_every=args.eval_every,
                                   img_size=args.img_size, seed=args.seed, progress=False))  # fmt: skip
    identity = {d: row["identity_l1"] for d, row in summary["ground_truth"]["final"].items()}
    curve = summary["curve"]

    print(f"\ndemo configuration ({args.img_size}px, light, ch {defaults.ch}, n_res {defaults.n_res}, batch "
          f"{defaults.batch_size}, lr {defaults.lr}, seed {args.seed}), {summary['seconds']:.0f} s on "
          f"{platform.machine()} with {torch.get_num_threads()} threads (torch {torch.__version__})\n")  # fmt: skip
    print("| iteration | L1 a2b | L1 b2a | PSNR a2b (dB) | PSNR b2a (dB) |")
    print("|---:|---:|---:|---:|---:|")
    for point in curve:
        print(f"| {point['step']} | {point['l1_a2b']:.4f} | {point['l1_b2a']:.4f} | "
              f"{point['psnr_a2b']:.2f} | {point['psnr_b2a']:.2f} |")  # fmt: skip
    print(f"| identity baseline | {identity['a2b']:.4f} | {identity['b2a']:.4f} | | |")

    last = curve[-1]["step"]
    series = {f"L1 {d}": [(p["step"], p[f"l1_{d}"]) for p in curve] for d in ("a2b", "b2a")}
    series["identity baseline"] = [(0, identity["a2b"]), (last, identity["a2b"])]
    args.svg.parent.mkdir(parents=True, exist_ok=True)
    args.svg.write_text(svg_line_plot(series, title="shapes demo: ground-truth L1 on 64 test pairs",
                                      xlabel="iteration", ylabel="L1 ([0,1] scale)", log_y=True))  # fmt: skip
    print(f"\nwrote {args.svg}")


if __name__ == "__main__":
    main()
