"""The export: both generators in one safetensors file, with the config that rebuilds them.

`ugatit-export-1`: genA2B and genB2A in the official key layout (`genA2B.DownBlock.1.weight`, ...), fp16 by
default, the config as JSON in the file's metadata and in a `.json` beside it. Reading it runs no code.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .. import __version__
from ..config import Config
from ..errors import UserError
from ..nn.model import GENERATORS, UGATIT
from ..utils.files import atomic_write
from .checks import check_networks_fit

EXPORT_FORMAT = "ugatit-export-1"


def export_generators(model: UGATIT, config: Config, path: Path, dtype: torch.dtype = torch.float16) -> Path:
    """Write genA2B and genB2A as safetensors (fp16 by default: half the size, and inference in fp32 from
    it differs from the fp32 weights by ~1e-3), with the config in the metadata and as JSON beside it."""
    from safetensors.torch import save_file

    config = config.replace(model=model.config)
    path = Path(path)
    if path.suffix != ".safetensors":
        path = path.with_suffix(".safetensors")
    tensors = {
        f"{name}.{key}": value.detach().to("cpu", dtype if value.is_floating_point() else value.dtype).contiguous()
        for name in GENERATORS
        for key, value in getattr(model, name).state_dict().items()
    }
    metadata = {"format": EXPORT_FORMAT, "version": __version__, "config": config.to_json()}
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))
    try:
        atomic_write(path.with_suffix(".json"), lambda tmp: tmp.write_text(config.to_json() + "\n"))
    except BaseException:
        path.unlink(missing_ok=True)  # an export without its .json beside it is not what was asked for
        raise
    return path


def load_export(path: Path) -> tuple[dict, Config]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118 (safe_open is not iterable)
    except (SafetensorError, OSError, ValueError) as exc:
        raise UserError(f"cannot read {path}: corrupted or truncated safetensors file ({exc})") from None
    if metadata.get("format") != EXPORT_FORMAT:
        raise UserError(f"{path} is not a ugatit export (no '{EXPORT_FORMAT}' metadata)")
    config = _export_config(path, metadata)
    state: dict[str, dict] = {name: {} for name in GENERATORS}
    for key, value in tensors.items():
        net, _, rest = key.partition(".")
        if net in state:
            state[net][rest] = value.float()
    check_networks_fit(config.model, state, path, discriminators=False)  # before anything is built
    return state, config


def _export_config(path: Path, metadata: dict) -> Config:
    """The config in an export's metadata; a file edited or crafted by hand gets a one-line reason."""
    if "config" not in metadata:
        raise UserError(f"{path} is damaged: its metadata has no 'config' to rebuild the model from")
    try:
        data = json.loads(metadata["config"])
    except ValueError as exc:
        raise UserError(f"{path} is damaged: the 'config' in its metadata is not JSON ({exc})") from None
    try:
        return Config.from_dict(data)
    except UserError as exc:
        raise UserError(f"{path} is damaged: the 'config' in its metadata is unusable ({exc})") from None
