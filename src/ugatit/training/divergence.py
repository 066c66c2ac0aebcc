"""The divergence guard: a NaN or infinite loss or weight stops a run before that state is saved."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import Tensor, nn

from ..errors import UserError
from .step import LOSS_NAMES


class TrainingDiverged(UserError):
    """A loss or a weight became NaN or infinite; nothing of that state was saved. `checkpoint` is the
    last good one (None: none yet), `lr` the learning rate the run diverged with."""

    def __init__(self, message: str, checkpoint: Path | None = None, lr: float | None = None):
        super().__init__(message)
        self.checkpoint = checkpoint
        self.lr = lr

    @classmethod
    def at(cls, step: int, what: str, checkpoint: Path | None, lr: float) -> TrainingDiverged:
        """The error for step `step`, saying what went wrong and how to go on from `checkpoint`."""
        if checkpoint is None:
            kept = "no checkpoint had been written yet: start again with a smaller `optim.lr`"
        else:
            kept = (
                f"the last good checkpoint is {checkpoint}: continue from it with a smaller learning "
                "rate through `overrides`"
            )
        return cls(f"training diverged at step {step}: {what}; nothing of it was saved, {kept}", checkpoint, lr)


def nonfinite_parameters(model: nn.Module, shown: int = 3) -> str | None:
    """A description of the parameters holding NaN or infinity (the first `shown`), or None."""
    bad = [name for name, p in model.named_parameters() if not torch.isfinite(p).all()]
    if not bad:
        return None
    more = f" and {len(bad) - shown} more" if len(bad) > shown else ""
    return f"{', '.join(bad[:shown])}{more}"


class LossGuard:
    """Watches every iteration's losses for NaN or infinity on the device, and reads them (one transfer)
    only when asked: after every step on the CPU, at log and save time on the fast CUDA path, so that
    the host never waits for the GPU in between. Nothing is lost by waiting: the first non-finite step
    and its losses are kept on the device until the next read."""

    def __init__(self, every_step: bool = True):
        self.every_step = every_step
        self._latest: Tensor | None = None  # the losses of the last step, stacked in LOSS_NAMES order
        self._first_bad: Tensor | None = None  # 0, or the first step with a non-finite loss
        self._bad_losses: Tensor | None = None
        self._names: list[str] = []
        self.pending = False

    def observe(self, step: int, losses: dict[str, Tensor]) -> None:
        """Record one step's losses (copied: a captured graph overwrites its outputs at the next step)."""
        self._names = [name for name in LOSS_NAMES if name in losses]
        stacked = torch.stack([losses[name].detach().float() for name in self._names])
        newly_bad = ~torch.isfinite(stacked).all()
        if self._first_bad is None:
            self._first_bad = torch.zeros((), dtype=torch.int64, device=stacked.device)
            self._bad_losses = torch.zeros_like(stacked)
        newly_bad &= self._first_bad == 0
        self._first_bad = torch.where(newly_bad, step, self._first_bad)
        self._bad_losses = torch.where(newly_bad, stacked, self._bad_losses)
        self._latest = stacked
        self.pending = True

    def read(self) -> tuple[dict[str, float], int | None, list[str]]:
        """(the last step's losses, the first step with a non-finite loss or None, that step's non-finite
        terms as "name=value"), in one transfer from the device."""
        if self._latest is None:
            return {}, None, []
        k = len(self._names)
        packed = torch.cat([self._latest, self._first_bad.reshape(1).to(self._latest.dtype), self._bad_losses])
        values = packed.tolist()  # steps up to 2^24 are exact in fp32
        latest, first_bad, bad_values = values[:k], int(values[k]), values[k + 1 :]
        self.pending = False
        if not first_bad:
            return dict(zip(self._names, latest)), None, []
        bad = [f"{name}={value}" for name, value in zip(self._names, bad_values) if not math.isfinite(value)]
        return dict(zip(self._names, latest)), first_bad, bad
