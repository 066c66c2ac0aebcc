"""The divergence guard: a NaN or infinite loss or weight stops a run before that state is saved."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import torch
from torch import Tensor, nn

from ..errors import UserError
from .step import LOSS_NAMES


class TrainingDiverged(UserError):
    """A loss or a weight became NaN or infinite; nothing of that state was saved. `checkpoint` is the
    last good one (None: none yet), `lr` the learning rate the run diverged with."""

    def __init__(self, message: str, checkpoint: Optional[Path] = None, lr: Optional[float] = None):
        super().__init__(message)
        self.checkpoint = checkpoint
        self.lr = lr


def loss_values(losses: dict[str, Tensor]) -> tuple[dict[str, float], list[str]]:
    """The losses as floats, in the official order, read from the device in one transfer; and the
    terms that are not finite, as "name=value"."""
    names = [name for name in LOSS_NAMES if name in losses]
    values = torch.stack([losses[name].float() for name in names]).tolist()
    bad = [f"{name}={value}" for name, value in zip(names, values) if not math.isfinite(value)]
    return dict(zip(names, values)), bad


def nonfinite_parameters(model: nn.Module, shown: int = 3) -> str | None:
    """A description of the parameters holding NaN or infinity (the first `shown`), or None."""
    bad = [name for name, p in model.named_parameters() if not torch.isfinite(p).all()]
    if not bad:
        return None
    more = f" and {len(bad) - shown} more" if len(bad) > shown else ""
    return f"{', '.join(bad[:shown])}{more}"
