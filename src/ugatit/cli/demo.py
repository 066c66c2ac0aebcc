"""Train U-GAT-IT on the built-in shapes task and write an HTML report (no arguments needed).

Draws two unpaired domains whose answer is known (a red and a blue flat shape on grey <-> the same kind
of shapes with a dark outline, on blue-grey), trains a small light model on the CPU for a few minutes,
translates the test set both ways with attention maps, and measures each translation against its ground
truth: inside the shapes (right colour, outline, foreground L1) and over the whole image (L1, PSNR),
next to the input itself and a translator that paints every shape one colour. Prints what the numbers
say and the report's path. Make it longer or bigger with --iters, --img-size, --ch, --n-res.
"""

from __future__ import annotations

import argparse

from ._types import device_argument, non_negative_int, positive_float, positive_int

#: How library errors' terms read on this command line (see `ugatit.errors.reword`).
FLAGS = {
    "device": "--device",
    "out": "--out",
    "force": "--force",
    "iters": "--iters",
    "train_count": "--train-count",
    "test_count": "--test-count",
    "model.img_size": "--img-size",
}

HELP = "train on the built-in shapes task and write an HTML report (a few minutes on a CPU)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..demo.options import DemoOptions

    d = DemoOptions()
    parser.add_argument("--out", default=str(d.out), help="output folder")
    parser.add_argument("--iters", type=positive_int, default=d.iters, help="training iterations")
    parser.add_argument("--img-size", type=positive_int, default=d.img_size, help="image size (multiple of 4, >= 32)")
    parser.add_argument("--ch", type=positive_int, default=d.ch, help="base channel count (the paper: 64)")
    parser.add_argument("--n-res", type=positive_int, default=d.n_res, help="residual blocks (the paper: 4)")
    parser.add_argument(
        "--batch-size", type=positive_int, default=d.batch_size, help="images per domain in a batch (the paper: 1)"
    )
    parser.add_argument("--lr", type=positive_float, default=d.lr, help="Adam learning rate (the paper: 1e-4)")
    parser.add_argument("--train-count", type=positive_int, default=d.train_count, help="training images per domain")
    parser.add_argument("--test-count", type=positive_int, default=d.test_count, help="test pairs")
    parser.add_argument(
        "--eval-every", type=non_negative_int, default=d.eval_every, help="ground-truth evaluation interval"
    )
    parser.add_argument("--seed", type=int, default=d.seed, help="seed of the task, the weights and the data order")
    device_argument(parser, default=d.device)
    parser.add_argument("--force", action="store_true", help="replace an earlier demo in --out")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..demo.options import DemoOptions
    from ..demo.run import run_demo

    opts = DemoOptions(
        out=Path(args.out),
        iters=args.iters,
        img_size=args.img_size,
        ch=args.ch,
        n_res=args.n_res,
        batch_size=args.batch_size,
        lr=args.lr,
        train_count=args.train_count,
        test_count=args.test_count,
        seed=args.seed,
        device=args.device,
        eval_every=args.eval_every,
        progress=not args.no_progress,
        force=args.force,
    )
    summary = run_demo(opts)
    print()
    for line in summary["headline"] + summary["verdicts"]:
        print(line)
    for direction, row in summary["ground_truth"]["final"].items():
        print(
            f"{direction}: whole-image L1 {row['l1']:.4f} (input itself: {row['identity_l1']:.4f}), "
            f"PSNR {row['psnr']:.2f} dB"
        )
    print(f"report: {summary['report']}")
    return 0
