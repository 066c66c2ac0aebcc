"""Ground-truth quality of the demo configuration against training iterations.

    python benchmarks/bench_demo_quality.py [--iters 1000] [--eval-every 50] [--out /tmp/demo-quality]
    python benchmarks/bench_demo_quality.py --from-report ugatit-demo/report.json   # table and SVG again, no training

Runs `ugatit demo` (the library call, same defaults) with frequent ground-truth evaluations and prints a
markdown table per direction against the iteration: the object metrics (shapes in the right colour,
outline right, foreground L1 inside the shapes) and the whole-image L1, with the baselines (the input
itself, one colour for all shapes), then the report's verdicts. Writes the curves as an SVG (default
docs/images/demo_learning_curve.svg).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
from pathlib import Path

import torch

from ugatit.demo.options import DemoOptions
from ugatit.demo.run import run_demo
from ugatit.viz.plots import svg_line_plot


def main() -> None:
    defaults = DemoOptions()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iters", type=int, default=defaults.iters)
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--img-size", type=int, default=defaults.img_size)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--out", type=Path, default=Path("/tmp/ugatit-demo-quality"))
    parser.add_argument(
        "--svg", type=Path, default=Path(__file__).resolve().parents[1] / "docs/images/demo_learning_curve.svg"
    )
    parser.add_argument("--from-report", type=Path, help="a demo's report.json: print and plot it instead of training")
    args = parser.parse_args()

    if args.from_report:
        summary = json.loads(args.from_report.read_text())
    else:
        shutil.rmtree(args.out, ignore_errors=True)
        summary = run_demo(
            DemoOptions(
                out=args.out,
                iters=args.iters,
                eval_every=args.eval_every,
                img_size=args.img_size,
                seed=args.seed,
                progress=False,
            )
        )
    model, optim = summary["config"]["model"], summary["config"]["optim"]
    final = summary["ground_truth"]["final"]
    collapsed = summary["baselines"]["one_colour_for_all"]
    curve = summary["curve"]

    print(
        f"\ndemo configuration ({model['img_size']}px, light, ch {model['ch']}, n_res {model['n_res']}, batch "
        f"{summary['config']['data']['batch_size']}, lr {optim['lr']}, seed {summary['config']['train']['seed']}), "
        + (
            f"as recorded in {args.from_report} ({summary['seconds']:.0f} s; machine and threads not recorded)\n"
            if args.from_report
            else f"{summary['seconds']:.0f} s on {platform.machine()} with {torch.get_num_threads()} threads "
            f"(torch {torch.__version__})\n"
        )
    )
    print(
        "| iteration | right colour a2b | right colour b2a | outline right a2b | outline right b2a "
        "| foreground L1 a2b | foreground L1 b2a | L1 a2b | L1 b2a |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for p in curve:
        print(
            f"| {p['step']} | {p['colour_accuracy_a2b']:.0%} | {p['colour_accuracy_b2a']:.0%} | "
            f"{p['texture_accuracy_a2b']:.0%} | {p['texture_accuracy_b2a']:.0%} | {p['foreground_l1_a2b']:.3f} | "
            f"{p['foreground_l1_b2a']:.3f} | {p['l1_a2b']:.4f} | {p['l1_b2a']:.4f} |"
        )
    for name, rows in (
        (
            "input itself",
            {
                d: {
                    k: final[d][f"identity_{k}"] for k in ("colour_accuracy", "texture_accuracy", "foreground_l1", "l1")
                }
                for d in final
            },
        ),
        ("one colour for all", collapsed),
    ):
        print(
            f"| {name} | {rows['a2b']['colour_accuracy']:.0%} | {rows['b2a']['colour_accuracy']:.0%} | "
            f"{rows['a2b'].get('texture_accuracy', float('nan')):.0%} | "
            f"{rows['b2a'].get('texture_accuracy', float('nan')):.0%} | "
            f"{rows['a2b']['foreground_l1']:.3f} | {rows['b2a']['foreground_l1']:.3f} | "
            f"{rows['a2b']['l1']:.4f} | {rows['b2a']['l1']:.4f} |"
        )
    print()
    for line in summary["headline"] + summary.get("verdicts", []):
        print(line)

    last = curve[-1]["step"]
    series = {f"right colour {d} (%)": [(p["step"], 100 * p[f"colour_accuracy_{d}"]) for p in curve] for d in final}
    series.update(
        {
            f"one colour for all {d} (%)": [
                (0, 100 * collapsed[d]["colour_accuracy"]),
                (last, 100 * collapsed[d]["colour_accuracy"]),
            ]
            for d in final
        }
    )
    series.update(
        {f"outline right {d} (%)": [(p["step"], 100 * p[f"texture_accuracy_{d}"]) for p in curve] for d in final}
    )
    args.svg.parent.mkdir(parents=True, exist_ok=True)
    args.svg.write_text(
        svg_line_plot(
            series,
            title=f"shapes demo: {len(final) and int(final['a2b']['shapes'])} test shapes",
            xlabel="iteration",
            ylabel="% of test shapes",
            y_range=(0, 100),
        )
    )
    print(f"\nwrote {args.svg}")


if __name__ == "__main__":
    main()
