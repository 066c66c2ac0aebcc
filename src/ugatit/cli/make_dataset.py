"""Write a built-in synthetic task to disk: trainA, trainB, testA, testB plus ground_truth.json.

`shapes`: two flat shapes (circles, squares, triangles), one red and one blue, on a grey background (A)
versus the same kind of shapes with a dark outline inside their edge, on a blue-grey background (B).
trainA and trainB are unpaired; testA/NAME.png and testB/NAME.png show the same scene, so every test
translation can be scored against the truth.

`morph`: a flat circle (A) versus the same scene with the circle replaced by the upright square around it,
in its colour (B): a translation that must change shape (see docs/ablations.md).
"""

from __future__ import annotations

import argparse

from ..errors import UserError
from ._types import non_negative_int, positive_int

HELP = "write a synthetic task with known ground truth (shapes, morph) as an image folder"

TASKS = ["shapes", "morph"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("task", choices=TASKS, help="which synthetic task to write")
    parser.add_argument("dir", metavar="DIR", help="output folder (created; must be empty unless --force)")
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--count", type=positive_int, default=1000, help="train images per domain")
    parser.add_argument("--test-count", type=non_negative_int, default=100, help="test pairs (testA/testB)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; the same seed writes the same bytes")
    parser.add_argument(
        "--force",
        action="store_true",
        help="write into a non-empty DIR, first deleting the PNGs in its trainA/trainB/testA/testB",
    )


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..demo.shapes import SPLIT_DIRS, write_shapes

    root = Path(args.dir)
    if args.size < 8:
        raise UserError(f"--size must be at least 8 pixels, got {args.size}")
    if root.exists() and not root.is_dir():
        raise UserError(f"{root} exists and is not a folder")
    if root.is_dir() and any(root.iterdir()):
        if not args.force:
            raise UserError(f"{root} is not empty; choose an empty folder or pass --force to overwrite")
        # Stale images from an earlier, larger run would silently join the new dataset; remove only
        # what this command writes, never anything else the user keeps there.
        for name in SPLIT_DIRS:
            folder = root / name
            if folder.is_dir():
                for png in folder.glob("*.png"):
                    png.unlink()

    if args.task == "morph":
        from ..demo.morph import write_morph

        write_morph(root, size=args.size, n_train=args.count, n_test=args.test_count, seed=args.seed)
    else:
        write_shapes(root, size=args.size, n_train=args.count, n_test=args.test_count, seed=args.seed, progress=True)
    print(
        f"wrote {args.task} to {root}: {args.count} train images per domain, {args.test_count} test pairs "
        f"at {args.size}px (seed {args.seed}); testA/NAME.png <-> testB/NAME.png is the ground truth"
    )
    return 0
