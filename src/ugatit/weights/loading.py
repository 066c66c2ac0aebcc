"""Loading a model for inference from any file we understand.

- a run folder (its latest training checkpoint, else an export in it),
- a training checkpoint (`.pt`, see `checkpoints`),
- an export (`.safetensors`, see `export`),
- an official PyTorch checkpoint: a dict of six state dicts (genA2B, genB2A, disGA, disGB, disLA, disLB),
  whose architecture is read off the tensor shapes (see `official`).

Loading never runs pickled code: safetensors, or torch.load(weights_only=True).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

import torch

from ..config import Config
from ..errors import UserError
from ..nn.model import DISCRIMINATORS, GENERATORS, UGATIT
from ..utils.console import notify
from .checkpoints import (
    CHECKPOINT_DIR, TRAIN_FORMAT, list_checkpoints, newest_readable_checkpoint, torch_load, training_state,
)  # fmt: skip
from .export import load_export
from .official import infer_model_config


def load_model(path: str | Path, *, discriminators: bool = False, device: str | torch.device = "cpu",
               on_message: Optional[Callable[[str], None]] = None) -> tuple[UGATIT, Config]:  # fmt: skip
    """A model ready for translation from a run directory, a training checkpoint, an export or an official
    checkpoint. Returns (model in eval mode, config); discriminators are built only on request (and only
    where the file has them). A run directory whose newest checkpoint cannot be read falls back to the
    newest one that can, and says so through `on_message` (default: stderr)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"checkpoint not found: {path}")
    state: Any = None
    if path.is_dir():
        exports = sorted(path.glob("*.safetensors"))
        if list_checkpoints(path):
            path, state, skipped = newest_readable_checkpoint(path)
            for error in skipped:
                (on_message or notify)(f"skipped checkpoint {error.path}: {error.reason}; using {path.name}")
        elif exports:
            path = exports[0]
        else:
            raise UserError(f"{path} holds no checkpoint (expected {CHECKPOINT_DIR}/step_*.pt or *.safetensors)")

    if path.suffix == ".safetensors":
        networks, config = load_export(path)
        discriminators = False
    else:
        state = torch_load(path) if state is None else state
        if isinstance(state, dict) and state.get("format") == TRAIN_FORMAT:
            state = training_state(path, state)
            networks, config = state["networks"], Config.from_dict(state["config"])
        elif isinstance(state, dict) and all(name in state for name in GENERATORS):
            networks, config = state, Config(model=infer_model_config(state))
            discriminators = discriminators and all(n in state for n in DISCRIMINATORS)
        else:
            raise UserError(f"{path} is neither a ugatit checkpoint nor an official U-GAT-IT checkpoint")

    with torch.device("meta"):
        model = UGATIT(config.model, discriminators=discriminators)
    model = model.to_empty(device="cpu")
    model.load_official_state_dict(networks)
    return model.to(device).eval(), config
