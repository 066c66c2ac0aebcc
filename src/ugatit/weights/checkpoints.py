"""Training checkpoints: the full training state of a run, written atomically, read without unpickling code.

A training checkpoint (`ugatit-train-1`, `RUN/checkpoints/step_NNNNNNNN.pt`) holds the six networks in
the official layout, both optimisers, the step, every RNG state, the data loader's position, the config
and the package version. It is written to a temporary file, fsynced and renamed, so a crash never leaves
half a file; it is read with torch.load(weights_only=True), which refuses pickled code.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..config import Config
from ..errors import UserError
from ..nn.model import UGATIT
from ..utils.files import atomic_write
from ..utils.torch_files import load_torch_file
from ..utils.rng import capture_rng_state

TRAIN_FORMAT = "ugatit-train-1"
CHECKPOINT_DIR = "checkpoints"
_STEP_FILE = re.compile(r"step_(\d+)\.pt$")


# --- Training checkpoints -------------------------------------------------------------------------------


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / f"step_{step:08d}.pt"


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Training checkpoints of a run directory, oldest first."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _STEP_FILE.search(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def prune_checkpoints(run_dir: Path, keep_last: int, protect: tuple[Path, ...] = ()) -> None:
    """Delete all but the newest `keep_last` checkpoints (never those in `protect`, e.g. the best one)."""
    if keep_last <= 0:
        return
    protected = {Path(p).resolve() for p in protect}
    for old in list_checkpoints(run_dir)[:-keep_last]:
        if old.resolve() not in protected:
            old.unlink(missing_ok=True)


def save_training_checkpoint(path: Path, *, model: UGATIT, optimizers: dict, config: Config, step: int,
                             data_state: dict | None = None, extra: dict | None = None) -> Path:  # fmt: skip
    """Write the full training state atomically. `optimizers` is TrainingStep.state_dict()."""
    config = config.replace(model=model.config)  # with the resolved discriminator depths
    state = {
        "format": TRAIN_FORMAT,
        "version": __version__,
        "step": int(step),
        "config": config.to_dict(),
        "networks": model.official_state_dict(),
        "optimizers": optimizers,
        "rng": capture_rng_state(),
        "data": data_state or {},
        "extra": extra or {},
    }
    atomic_write(Path(path), lambda tmp: torch.save(state, tmp))
    return Path(path)


def torch_load(path: Path) -> Any:
    """A PyTorch file's contents, without running pickled code; a bad file is one line saying what it is."""
    return load_torch_file(path, "checkpoint")


def load_training_checkpoint(path: Path) -> dict[str, Any]:
    """Read a training checkpoint (a run directory means its latest one)."""
    path = Path(path)
    if path.is_dir():
        latest = latest_checkpoint(path)
        if latest is None:
            raise UserError(f"no checkpoint in {path / CHECKPOINT_DIR}")
        path = latest
    state = torch_load(path)
    if not isinstance(state, dict) or state.get("format") != TRAIN_FORMAT:
        raise UserError(f"{path} is not a ugatit training checkpoint")
    return state


