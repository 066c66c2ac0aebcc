"""When the run folder cannot be written: a full disk, an exhausted quota, an I/O error.

Every write into the run folder goes through `writing(path)`, which turns an OSError into `WriteFailed`
(the file and the error). The trainer catches it once, tries to keep the current state as a checkpoint
where the failed write was not itself a checkpoint, and raises `RunWriteError`: one message saying what
failed and why, which checkpoint is the last good one, and how to continue. Files are written atomically
or, for log.jsonl, cut back to their last whole line, so a failure leaves nothing half-written.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator
from pathlib import Path

from ..errors import UserError
from ..utils.files import describe_write_error, os_error_of, size_text


class WriteFailed(Exception):
    """A write into the run folder failed. Internal to training: `RunWriteError` is what callers see."""

    def __init__(self, path: Path, error: OSError, *, checkpoint: bool = False):
        super().__init__(f"cannot write {path}: {error}")
        self.path = Path(path)
        self.error = error
        self.checkpoint = checkpoint  # a checkpoint that failed is not worth trying again at once


class RunWriteError(UserError):
    """Training stopped because the run folder could not be written. `checkpoint` is the newest one
    written and complete (None: none yet)."""

    def __init__(self, message: str, checkpoint: Path | None):
        super().__init__(message)
        self.checkpoint = checkpoint


@contextlib.contextmanager
def writing(path: Path, *, checkpoint: bool = False) -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        error = os_error_of(exc)
        if error is None:
            raise
        raise WriteFailed(path, error, checkpoint=checkpoint) from None


def run_write_error(
    failure: WriteFailed, run_dir: Path, checkpoint: Path | None, step: int | None, saved_now: bool
) -> RunWriteError:
    """The one message for a failed write: the file, why (what is full), what was kept, what to do.
    `checkpoint`/`step`: the last good checkpoint; `saved_now`: it was written after the failure."""
    needed = checkpoint.stat().st_size if failure.checkpoint and checkpoint and checkpoint.is_file() else None
    why = _why(failure.error, run_dir, needed)
    full = failure.error.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", None))
    fix = "free some space" if full else "make the folder writable"
    if checkpoint is None:
        kept = "no checkpoint had been written yet, so the run starts again"
        todo = f"{fix} (or choose another `run_dir`) and start again"
    else:
        kept = (
            f"the state of step {step} was saved to {checkpoint} after it"
            if saved_now
            else f"the last good checkpoint is {checkpoint} (step {step})"
        )
        todo = f"{fix}, then continue with `resume=True`"
    return RunWriteError(f"cannot write {failure.path}: {why}; {kept}: {todo}", checkpoint)


def _why(error: OSError, run_dir: Path, needed: int | None) -> str:
    """What failed; for a full disk or quota, what is full, how much space there is and what a
    checkpoint takes."""
    why = describe_write_error(error, run_dir)
    if needed and error.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", None)):
        why = f"{why[:-1]}, a checkpoint takes {size_text(needed)})"
    return why
