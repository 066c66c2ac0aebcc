"""Training: one iteration (`step`), the loop around it (`trainer`), the run folder it writes (`run_dir`),
what a resumed run keeps (`resume`), how signals stop it (`signals`) and the guard against
NaN (`divergence`)."""

from .divergence import TrainingDiverged
from .resume import RESUME_OVERRIDES, resume_config
from .step import LOSS_NAMES, TrainingStep, learning_rate
from .trainer import Trainer, TrainResult, train

__all__ = [
    "LOSS_NAMES",
    "RESUME_OVERRIDES",
    "TrainResult",
    "Trainer",
    "TrainingDiverged",
    "TrainingStep",
    "learning_rate",
    "resume_config",
    "train",
]
