"""Measure training speed on this machine before a long run.

For each model, precision and speed option: iterations per second, milliseconds per phase (generator
forward, D step, G step, optimiser, other: on the CPU they add up to ms / it; the table's legend says
what each measures), peak memory, aten ops dispatched per iteration, and how long the paper's 1,000,000
iterations would take at that rate. Random images at --img-size; nothing is written but --json /
--markdown. Each case runs in its own process; one that fails is a row saying why.

Speed options: official (the official loop's structure), eager (this package's step; what --eager
trains with), graph (CUDA: the default training path), channels-last, compile.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path

from ._types import device_argument, positive_float, positive_int

HELP = "measure training speed here: it/s, time per phase, memory, ops, time for 1M iterations"


def _choices(allowed: tuple[str, ...]):
    def parse(text: str) -> list[str]:
        values = [v.strip() for v in text.split(",") if v.strip()]
        bad = [v for v in values if v not in allowed]
        if bad or not values:
            raise argparse.ArgumentTypeError(f"choose from {', '.join(allowed)} (comma-separated), got {text!r}")
        return values

    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..bench import OPTIONS

    device_argument(parser)
    parser.add_argument(
        "--models", type=_choices(("light", "full")), default="light,full", metavar="LIST", help="models to measure"
    )
    parser.add_argument(
        "--precisions",
        type=_choices(("fp32", "bf16")),
        default="fp32,bf16",
        metavar="LIST",
        help="precisions to measure",
    )
    parser.add_argument(
        "--options",
        type=_choices(tuple(OPTIONS)),
        default=argparse.SUPPRESS,
        metavar="LIST",
        help=f"speed options, of {','.join(OPTIONS)} (default: official,eager,graph on CUDA; official,eager elsewhere)",
    )
    parser.add_argument("--img-size", type=positive_int, default=256, metavar="N", help="image side in pixels")
    parser.add_argument("--ch", type=positive_int, default=64, metavar="N", help="base channels")
    parser.add_argument("--n-res", type=positive_int, default=4, metavar="N", help="residual blocks")
    parser.add_argument("--batch-size", type=positive_int, default=1, metavar="N", help="images per domain and step")
    parser.add_argument("--iters", type=positive_int, default=20, metavar="N", help="timed iterations per case")
    parser.add_argument("--warmup", type=positive_int, default=5, metavar="N", help="untimed iterations first")
    parser.add_argument(
        "--phase-iters",
        type=positive_int,
        default=3,
        metavar="N",
        help="on a GPU: iterations timed phase by phase, waiting for the device at each boundary (on the CPU "
        "the timed iterations themselves are split)",
    )
    parser.add_argument("--timeout", type=positive_float, default=300.0, metavar="S", help="seconds a case may take")
    parser.add_argument("--json", type=Path, default=argparse.SUPPRESS, metavar="FILE", help="write the rows as JSON")
    parser.add_argument(
        "--markdown", type=Path, default=argparse.SUPPRESS, metavar="FILE", help="write the table as markdown"
    )


def run(args: argparse.Namespace) -> int:
    from .. import bench
    from ..utils.device import resolve_device
    from ..utils.files import write_json

    settings = bench.Settings(
        device=args.device,
        img_size=args.img_size,
        ch=args.ch,
        n_res=args.n_res,
        batch_size=args.batch_size,
        iters=args.iters,
        warmup=args.warmup,
        phase_iters=args.phase_iters,
        timeout=args.timeout,
    )
    machine = bench.machine(args.device)
    options = getattr(args, "options", None) or (
        ["official", "eager", "graph"] if _on_cuda(args.device) else ["official", "eager"]
    )
    cases = [bench.Case(m, p, o) for m in args.models for p in args.precisions for o in options]
    header = (
        f"ugatit bench on {machine}: {args.img_size} px, ch {args.ch}, n_res {args.n_res}, batch {args.batch_size}, "
        f"{args.iters} timed iterations after {args.warmup}"
    )
    print(header, file=sys.stderr)

    def progress(row):
        said = row.get("error") or f"{row['iters_per_second']:.2f} it/s"
        print(f"  {row['model']} {row['precision']} {row['option']}: {said}", file=sys.stderr)

    rows = bench.run_bench(cases, settings, on_row=progress)
    table = bench.markdown(rows)
    legend = bench.legend(resolve_device(args.device).type)
    print(f"\n{header}\n\n{table}\n\n{legend}")
    if "json" in args:
        write_json({"machine": machine, "settings": asdict(settings), "rows": rows}, args.json)
    if "markdown" in args:
        args.markdown.write_text(f"{header}\n\n{table}\n\n{legend}\n")
    return 0


def _on_cuda(device: str) -> bool:
    from ..utils.device import resolve_device

    return resolve_device(device).type == "cuda"
