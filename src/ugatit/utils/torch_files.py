"""Reading PyTorch files safely, and saying what a file is when it cannot be read.

torch.load(weights_only=True) refuses pickled code, but its errors are written for PyTorch developers
(advice to retry with weights_only=False, miniz's internals cut mid-sentence, a bare KeyError for a
text file). `load_torch_file` turns every failure into one line that says what the file is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import UserError

_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTOCOL = 0x80


def load_torch_file(path: Path, what: str = "checkpoint") -> Any:
    """The contents of a PyTorch file, loaded on the CPU without running pickled code; `what` names the
    kind of file in the error ("checkpoint", "Inception weights")."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch, pickle and zip readers raise a zoo of types on a bad file
        raise UserError(f"cannot read {what} {path}: {describe_unreadable(path, exc)}") from None


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
        if "unsupported global" in text.lower():
            return ("it holds Python objects other than tensors and plain data, which are never unpickled here "
                    "(it was saved from objects, not from state dicts)")  # fmt: skip
        if "central directory" in text or "PytorchStreamReader" in text:
            return "truncated or corrupted: an incomplete PyTorch zip file (was it copied or saved completely?)"
        return f"a PyTorch zip file whose contents are corrupted or of another kind ({_first_line(text)})"
    if head[0] == _PICKLE_PROTOCOL:
        return "a raw pickle stream, not a PyTorch file of tensors; pickles are never unpickled here"
    if _looks_like_text(head):
        return "a text file, not a PyTorch file"
    return "not a PyTorch file: its contents are corrupted, or of another format"


def _looks_like_text(head: bytes) -> bool:
    try:
        decoded = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(ch.isprintable() or ch in "\n\r\t" for ch in decoded)


def _first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0][:120] if lines else "no details"
