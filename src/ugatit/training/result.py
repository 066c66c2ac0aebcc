"""What a call to `train` returns."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..config import Config


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
