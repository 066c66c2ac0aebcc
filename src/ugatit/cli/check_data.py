"""Find the image files that training would have to skip, without training.

DATA is a dataset folder (its trainA/, trainB/, testA/ and testB/, those that exist) or any folder of
images, searched recursively. Each file is checked as `ugatit train` checks it at start: its first and
last bytes (a PNG or JPEG cut short lacks its end marker), or its header for other formats; --full
decodes every file instead, as training does when it draws one (slower, and it also finds damage inside
the pixel data). Prints one line per unreadable file (PATH: reason) and a summary; exits 1 when any file
cannot be read, 0 when all can.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UserError
from ._types import positive_int

HELP = "check that every image of a dataset can be read, before training on it"

SPLITS = ("trainA", "trainB", "testA", "testB")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "data", metavar="DATA", help="dataset folder (trainA/, trainB/, testA/, testB/) or a folder of images"
    )
    parser.add_argument("--full", action="store_true", help="decode every image in full, not only its header and end")
    parser.add_argument("--threads", type=positive_int, default=16, metavar="N", help="files read at once")


def run(args: argparse.Namespace) -> int:
    from ..data.images import find_images
    from ..data.scan import scan_images

    root = Path(args.data)
    if not root.is_dir():
        raise UserError(f"dataset folder not found: {root}" if not root.exists() else f"not a folder: {root}")
    folders = [root / split for split in SPLITS if (root / split).is_dir()] or [root]
    counts, bad, seconds = [], 0, 0.0
    for folder in folders:
        try:
            paths = find_images(folder)
        except UserError as exc:  # an empty folder: say so, and check the others
            print(f"{folder}: {exc}")
            counts.append((folder, 0))
            continue
        result = scan_images(paths, full=args.full, threads=args.threads)
        for path, reason in result.unreadable:
            print(f"{path}: {reason}")
        counts.append((folder, result.checked))
        bad += len(result.unreadable)
        seconds += result.seconds
    total = sum(n for _, n in counts)
    where = ", ".join(f"{folder.name}/ {n}" for folder, n in counts)
    verdict = "all can be read" if not bad else f"{bad} cannot be read (listed above), training skips them"
    print(f"checked {total} images in {seconds:.1f} s ({where}): {verdict}")
    return 1 if bad or not total else 0
