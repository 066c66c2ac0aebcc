"""What a long job shows on the terminal: a progress bar on stderr, and notices that do not break it."""

from __future__ import annotations

import sys
from typing import Any


def progress_bar(total: int, desc: str, unit: str, *, enabled: bool = True, **options: Any):
    """A tqdm bar on stderr; disabled, it still counts but draws nothing."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, disable=not enabled, dynamic_ncols=True, **options)


def notify(message: str) -> None:
    """One line on stderr, above a running progress bar rather than through it."""
    from tqdm import tqdm

    tqdm.write(message, file=sys.stderr)
