"""Which torch device a name means: one resolver for training, translation, evaluation and the demo.

Imports torch only when a device is resolved, so that the CLI can check a spelling at parse time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import UserError

if TYPE_CHECKING:
    import torch

#: What a device may be called: auto (CUDA, then MPS, then the CPU), cpu, cuda, cuda:N, mps.
DEVICE_HELP = "auto, cpu, cuda, cuda:N or mps"


def check_device_name(name: str) -> str:
    """The name, normalised, if it is spelled like a device (whether it exists here is not checked)."""
    name = (name or "auto").strip().lower()
    kind, _, index = name.partition(":")
    if name != "auto" and (kind not in ("cpu", "cuda", "mps") or (index and (kind != "cuda" or not index.isdigit()))):
        raise UserError(f"`device={name}` is not a device (choose {DEVICE_HELP})")
    return name


def resolve_device(name: str, *, local_rank: int | None = None) -> torch.device:
    """auto -> cuda if available, then mps, else cpu; an explicit device must exist here. A process of a
    distributed job (`local_rank`: its rank on this machine) given auto or cuda takes the GPU of its local
    rank (modulo the GPUs there are)."""
    import torch

    name = check_device_name(name)
    if local_rank is not None and name in ("auto", "cuda") and torch.cuda.is_available():
        name = f"cuda:{local_rank % torch.cuda.device_count()}"
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if mps_available() else "cpu")
    kind, _, index = name.partition(":")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"`device={name}`: PyTorch sees no CUDA GPU here (use cpu, or auto)")
        if index and int(index) >= torch.cuda.device_count():
            raise UserError(f"`device={name}`: there are only {torch.cuda.device_count()} CUDA devices")
    if kind == "mps" and not mps_available():
        raise UserError(f"`device={name}`: Apple's MPS backend is not available here (use cpu, or auto)")
    return torch.device(name)


def mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())
