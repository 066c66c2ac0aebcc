"""Reading PyTorch files safely, and saying what a file is when it cannot be read.

torch.load(weights_only=True) refuses pickled code, but its errors are written for PyTorch developers
(advice to retry with weights_only=False, miniz's internals cut mid-sentence, a bare KeyError for a
text file). `load_torch_file` turns every failure into one line that says what the file is.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

from ..errors import UserError

_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTOCOL = 0x80


class UnreadableFile(UserError):
    """A PyTorch file that cannot be loaded; `reason` says what it is, without the path."""

    def __init__(self, path: Path, reason: str, what: str = "file"):
        super().__init__(f"cannot read {what} {path}: {reason}")
        self.path = Path(path)
        self.reason = reason


def load_torch_file(path: Path, what: str = "checkpoint") -> Any:
    """The contents of a PyTorch file, loaded on the CPU without running pickled code; `what` names the
    kind of file in the error ("checkpoint", "Inception weights")."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise UnreadableFile(path, "file not found", what)
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols on crafted files: noise here
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UnreadableFile(path, describe_unreadable(path, exc), what) from None


def describe_unreadable(path: Path, exc: BaseException) -> str:
    """What a file that torch.load(weights_only=True) refused is, in words."""
    text = str(exc)
    try:
        with open(path, "rb") as f:
            head = f.read(1024)
    except OSError as err:
        return err.strerror or str(err)
    if not head:
        return "the file is empty"
    if head.startswith(_ZIP_MAGIC):
        # torch names a refused global "Unsupported global" in some versions, "unsupported GLOBAL" in 2.13
        refused = re.search(r"unsupported global:?\s*(?:global\s+)?([\w.]+)", text, re.IGNORECASE)
        if refused:
            return (
                f"it holds objects other than tensors and plain data ({refused.group(1)}), which are never "
                "unpickled here"
            )
        # miniz's "failed finding central directory", an errno from a record cut short, ...: all mean the
        # zip archive is not whole
        return (
            "corrupted, truncated or incomplete: a PyTorch zip file that cannot be read whole "
            "(was it copied or saved completely?)"
        )
    if head[0] == _PICKLE_PROTOCOL:
        return "a raw pickle stream, not a PyTorch file of tensors; pickles are never unpickled here"
    if _looks_like_text(head):
        return "a text file, not a PyTorch file"
    return "corrupted, truncated or not a PyTorch file"


def _looks_like_text(head: bytes) -> bool:
    try:
        decoded = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(ch.isprintable() or ch in "\n\r\t" for ch in decoded)
