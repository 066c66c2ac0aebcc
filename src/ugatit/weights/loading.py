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

import torch

from ..config import Config
from ..errors import UserError
from ..nn.model import DISCRIMINATORS, GENERATORS, UGATIT
from .checkpoints import CHECKPOINT_DIR, TRAIN_FORMAT, latest_checkpoint, torch_load
from .export import load_export
from .official import infer_model_config


def load_model(path: str | Path, *, discriminators: bool = False, device: str | torch.device = "cpu") -> tuple[UGATIT, Config]:
    """A model ready for translation from a run directory, a training checkpoint, an export or an official
    checkpoint. Returns (model in eval mode, config); discriminators are built only on request (and only
    where the file has them)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"checkpoint not found: {path}")
    if path.is_dir():
        exports = sorted(path.glob("*.safetensors"))
        latest = latest_checkpoint(path)
        if latest is not None:
            path = latest
        elif exports:
            path = exports[0]
        else:
            raise UserError(f"{path} holds no checkpoint (expected {CHECKPOINT_DIR}/step_*.pt or *.safetensors)")

    if path.suffix == ".safetensors":
        networks, config = load_export(path)
        discriminators = False
    else:
        state = torch_load(path)
        if isinstance(state, dict) and state.get("format") == TRAIN_FORMAT:
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
