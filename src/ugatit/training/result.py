"""What a call to `train` returns."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..config import Config
from .signals import SIGNAL_EXIT


@dataclass
class TrainResult:
    """What a call to `train` did. `interrupted` names the signal that stopped it early, if any."""

    run_dir: Path
    step: int
    iterations: int
    losses: dict[str, float]
    config: Config
    checkpoint: Path | None = None
    export: Path | None = None
    best: Path | None = None
    interrupted: str | None = None
    log: Path | None = None
    samples: Path | None = None
    tensorboard: Path | None = None

    @property
    def completed(self) -> bool:
        return self.step >= self.iterations

    @property
    def exit_code(self) -> int:
        """0 when completed, else the shell's code for the signal (130 SIGINT, 143 SIGTERM)."""
        return SIGNAL_EXIT.get(self.interrupted, 1) if self.interrupted else 0
