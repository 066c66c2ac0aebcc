"""What a weights file may ask for: its config is checked against the tensors it actually holds before
anything is built.

A checkpoint or an export carries the config that rebuilds its networks. A crafted or damaged one could
ask for a model far larger than its tensors (`n_res=100000` builds for minutes, `ch=20000` allocates
tens of gigabytes) and fail only after that. `check_networks_fit` first holds the config to the limits
of `ugatit.config.check_config`, then builds the networks on PyTorch's meta device (shapes only, no
memory, no time) and compares every tensor name and shape with the file's.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..config import Config, ModelConfig, check_config
from ..errors import UserError
from ..nn.model import UGATIT


class WeightsMismatch(UserError):
    """A file whose config does not describe its tensors; `reason` without the path."""

    def __init__(self, path: str | Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = Path(path)
        self.reason = reason


def check_networks_fit(
    model: ModelConfig, networks: Mapping[str, Any], path: str | Path, *, discriminators: bool
) -> None:
    """Raise `WeightsMismatch` unless `networks` ({"genA2B": state dict, ...}) hold exactly the tensors,
    by name and shape, that `model` builds (the two generators, and the four discriminators with
    `discriminators`); also when `model` asks for more than `check_config` allows."""
    try:
        check_config(Config(model=model), training=False)
        with torch.device("meta"):
            expected = UGATIT(model, discriminators=discriminators).official_state_dict()
    except UserError as exc:
        raise WeightsMismatch(path, f"its config is unusable ({exc})") from None
    if not isinstance(networks, Mapping):
        raise WeightsMismatch(path, "it holds no networks")
    about = _describe(model)
    for name, tensors in expected.items():
        given = networks.get(name)
        if not isinstance(given, Mapping):
            raise WeightsMismatch(path, f"its config ({about}) needs a network {name}, which the file lacks")
        for key, tensor in tensors.items():
            value = given.get(key)
            if not isinstance(value, torch.Tensor):
                raise WeightsMismatch(path, f"its config ({about}) needs {name}.{key}, which the file lacks")
            if tuple(value.shape) != tuple(tensor.shape):
                raise WeightsMismatch(
                    path,
                    f"its config ({about}) needs {name}.{key} of shape {tuple(tensor.shape)}, the file holds "
                    f"one of shape {tuple(value.shape)}",
                )
        extra = sorted(set(given) - set(tensors))
        if extra:
            more = f" and {len(extra) - 1} more" if len(extra) > 1 else ""
            raise WeightsMismatch(path, f"it holds {name}.{extra[0]}{more}, which its config ({about}) does not build")


def _describe(model: ModelConfig) -> str:
    kind = "light" if model.light else f"full at {model.img_size} px"
    return f"{kind}, ch={model.ch}, n_res={model.n_res}"
