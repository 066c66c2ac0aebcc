"""The official PyTorch checkpoint layout (znxlwm/UGATIT-pytorch): a dict of six state dicts.

`UGATIT.official_state_dict()` writes it and `UGATIT.load_official_state_dict()` reads it; this module
recovers the architecture from such a file, which stores no config.
"""

from __future__ import annotations

import re

from torch import Tensor

from ..config import ModelConfig
from ..errors import UserError


def infer_model_config(state: dict[str, dict[str, Tensor]]) -> ModelConfig:
    """Recover ch, n_res, light, img_size (full models only) and the discriminator depths from an official
    checkpoint, so that official weights can be used without a config file."""
    try:
        gen = state["genA2B"]
        ch = gen["DownBlock.1.weight"].shape[0]
        dim = 4 * ch
        n_res = len({m.group(1) for k in gen if (m := re.match(r"UpBlock1_(\d+)\.", k))})
        fc_in = gen["FC.0.weight"].shape[1]
    except (KeyError, TypeError, AttributeError, IndexError):
        raise UserError("not a U-GAT-IT checkpoint: genA2B lacks the official generator keys") from None
    light = fc_in == dim
    img_size = 256
    if not light:
        side = round((fc_in / dim) ** 0.5)
        if side * side * dim != fc_in:
            raise UserError(f"genA2B.FC.0.weight has {fc_in} inputs, which matches no image size for ch={ch}")
        img_size = side * 4

    def depth(name: str) -> int | None:
        if name not in state:
            return None
        return len([k for k in state[name] if k.startswith("model.") and k.endswith("weight_orig")]) + 1

    return ModelConfig(
        img_size=img_size,
        ch=ch,
        n_res=n_res,
        light=light,
        n_layers_global=depth("disGA"),
        n_layers_local=depth("disLA"),
    )
