"""Loading a model from any weights we understand, the kind told by the files themselves.

- a run folder (its latest training checkpoint, else an export in it),
- a training checkpoint (`.pt`, see `checkpoints`),
- an export (`.safetensors`, see `export`),
- an official PyTorch checkpoint: a dict of six state dicts (genA2B, genB2A, disGA, disGB, disLA, disLB),
  whose architecture is read off the tensor shapes (see `official`),
- PaddleGAN weights (`.pdparams`, see `paddle`),
- the authors' TensorFlow checkpoint: its folder, its prefix, its `.index` or a `.data-*` shard (see `tf`),
- any of these on the Hugging Face Hub: `hf://NAMESPACE/NAME[@REVISION][/PATH]`, fetched into (or found in)
  the hub client's cache first (see `hub`).

Loading never runs pickled code: safetensors, torch.load(weights_only=True), a numpy-only unpickler,
or our own reader of TF's format.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..config import Config
from ..errors import UserError
from ..nn.model import DISCRIMINATORS, GENERATORS, UGATIT
from ..utils.console import notify
from ..utils.files import path_exists
from .checkpoints import (
    CHECKPOINT_DIR,
    TRAIN_FORMAT,
    list_checkpoints,
    newest_readable_checkpoint,
    torch_load,
    training_state,
)
from .checks import check_networks_fit
from .export import load_export
from .official import infer_model_config
from .tf_checkpoint import find_prefix


@dataclass
class Weights:
    """Networks in our layout (the official one for official-variant models), with the config that
    builds them and what they were read from."""

    networks: dict[str, dict[str, Tensor]]
    config: Config
    kind: str  # "training checkpoint", "export", "official PyTorch checkpoint", "PaddleGAN weights", "TF checkpoint"
    path: Path
    step: int | None = None  # the iteration a training checkpoint was saved at (other kinds do not record it)

    @property
    def has_discriminators(self) -> bool:
        return all(name in self.networks for name in DISCRIMINATORS)


def resolve_checkpoint_path(path: str | Path) -> Path:
    """The local path a checkpoint argument names: `path` itself, or for `hf://...` the files fetched
    from the Hugging Face Hub or found in its cache (see `hub.resolve_hub_path`)."""
    from .hub import is_hub_path

    if is_hub_path(path):
        from .hub import resolve_hub_path

        return resolve_hub_path(str(path))
    return Path(path)


def read_weights(path: str | Path, on_message: Callable[[str], None] | None = None) -> Weights:
    """The networks and config stored in `path`, whatever its kind (see the module docstring). A run
    folder whose newest checkpoint cannot be read falls back to the newest one that can, and says so
    through `on_message` (default: stderr)."""
    path = resolve_checkpoint_path(path)
    if not path_exists(path):
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
            prefix = find_prefix(path)
            if prefix is None:
                raise UserError(
                    f"{path} holds no checkpoint (expected {CHECKPOINT_DIR}/step_*.pt, *.safetensors "
                    "or a TF checkpoint: *.index with its .data-* shards)"
                )
            return _tf(prefix)

    if path.suffix == ".safetensors":
        networks, config = load_export(path)
        return Weights(networks, config, "export", path)
    if path.suffix == ".pdparams":
        from .paddle import read_pdparams

        networks = read_pdparams(path)
        return Weights(networks, Config(model=infer_model_config(networks)), "PaddleGAN weights", path)
    prefix = find_prefix(path) if state is None else None
    if prefix is not None:
        return _tf(prefix)
    state = torch_load(path) if state is None else state
    if isinstance(state, dict) and state.get("format") == TRAIN_FORMAT:
        state = training_state(path, state)
        config = Config.from_dict(state["config"])
        return Weights(state["networks"], config, "training checkpoint", path, step=int(state["step"]))
    if isinstance(state, dict) and all(name in state for name in GENERATORS):
        return Weights(state, Config(model=infer_model_config(state)), "official PyTorch checkpoint", path)
    raise UserError(f"{path} is neither a ugatit checkpoint nor an official U-GAT-IT checkpoint")


def _tf(prefix: Path) -> Weights:
    from .tf import read_tf_checkpoint

    networks, model_config = read_tf_checkpoint(prefix)
    return Weights(networks, Config(model=model_config), "TF checkpoint", prefix)


def build_model(weights: Weights, *, discriminators: bool = False, device: str | torch.device = "cpu") -> UGATIT:
    """The model of `weights` in eval mode; discriminators only on request and where the file has them.
    The weights must fit the config (`check_networks_fit`) before memory is taken for them."""
    with_discriminators = discriminators and weights.has_discriminators
    check_networks_fit(weights.config.model, weights.networks, weights.path, discriminators=with_discriminators)
    with torch.device("meta"):  # no time spent initialising weights that are overwritten at once
        model = UGATIT(weights.config.model, discriminators=with_discriminators)
    model = model.to_empty(device="cpu")
    model.load_official_state_dict(weights.networks)
    return model.to(device).eval()


def load_model(
    path: str | Path,
    *,
    discriminators: bool = False,
    device: str | torch.device = "cpu",
    on_message: Callable[[str], None] | None = None,
) -> tuple[UGATIT, Config]:
    """A model ready for translation from any kind of weights (see the module docstring). Returns (model
    in eval mode, config); discriminators are built only on request (and only where the file has them).
    `on_message` hears of checkpoints a run folder's fallback passed over (see `read_weights`)."""
    weights = read_weights(path, on_message=on_message)
    return build_model(weights, discriminators=discriminators, device=device), weights.config
