"""Checkpoints: the full training state, the compact generator export, and loading any of them.

Three kinds of file are understood:
- a training checkpoint (`ugatit-train-1`, a `.pt` file): the six networks in the official layout,
  both optimisers, the step, every RNG state, the data loader's position, the config and the package
  version. Written atomically (temporary file, fsync, rename), so a crash never leaves half a file.
- an export (`ugatit-export-1`, a `.safetensors` file with the config as JSON in its metadata and
  beside it): the two generators only, fp16 by default, for inference.
- an official PyTorch checkpoint: a dict of six state dicts (genA2B, genB2A, disGA, disGB, disLA, disLB);
  the architecture is read off the tensor shapes.

Loading never runs pickled code: safetensors, or torch.load(weights_only=True).
"""

from __future__ import annotations

import json
import os
import random
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import __version__
from .config import Config
from .errors import UserError
from .model import GENERATORS, UGATIT, infer_model_config

TRAIN_FORMAT = "ugatit-train-1"
EXPORT_FORMAT = "ugatit-export-1"
CHECKPOINT_DIR = "checkpoints"
_STEP_FILE = re.compile(r"step_(\d+)\.pt$")


# --- Atomic writes ---------------------------------------------------------------------------------------


def atomic_write(path: Path, write) -> None:
    """Call write(temporary_path), fsync it, then rename it over `path`: readers see the old file or the
    new one, never a partial one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


# --- RNG state -------------------------------------------------------------------------------------------


def capture_rng_state() -> dict[str, Any]:
    """torch (CPU and CUDA), numpy and python RNG states, in types torch.load(weights_only=True) accepts."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": random.getstate(),
    }  # fmt: skip
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


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


def _torch_load(path: Path) -> Any:
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "Weights only load failed" in reason:
            reason = "it holds objects other than tensors and plain data, which are never unpickled here"
        raise UserError(f"cannot read checkpoint {path}: corrupted, truncated or not a checkpoint ({reason[:160]})") from None
    except Exception as exc:  # pickle errors of every kind on a damaged file
        if "Unsupported global" in str(exc):  # a valid pickle of arbitrary objects (UnpicklingError)
            raise UserError(f"cannot read checkpoint {path}: it holds objects other than tensors and plain data, "
                            "which are never unpickled here") from None  # fmt: skip
        raise UserError(f"cannot read checkpoint {path}: corrupted or truncated ({type(exc).__name__})") from None


def load_training_checkpoint(path: Path) -> dict[str, Any]:
    """Read a training checkpoint (a run directory means its latest one)."""
    path = Path(path)
    if path.is_dir():
        latest = latest_checkpoint(path)
        if latest is None:
            raise UserError(f"no checkpoint in {path / CHECKPOINT_DIR}")
        path = latest
    state = _torch_load(path)
    if not isinstance(state, dict) or state.get("format") != TRAIN_FORMAT:
        raise UserError(f"{path} is not a ugatit training checkpoint")
    return state


# --- Export ----------------------------------------------------------------------------------------------


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
    atomic_write(path.with_suffix(".json"), lambda tmp: tmp.write_text(config.to_json() + "\n"))
    return path


def _load_export(path: Path) -> tuple[dict, Config]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {key: f.get_tensor(key) for key in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise UserError(f"cannot read {path}: corrupted or truncated safetensors file ({exc})") from None
    if metadata.get("format") != EXPORT_FORMAT:
        raise UserError(f"{path} is not a ugatit export (no '{EXPORT_FORMAT}' metadata)")
    config = Config.from_dict(json.loads(metadata["config"]))
    state: dict[str, dict] = {name: {} for name in GENERATORS}
    for key, value in tensors.items():
        net, _, rest = key.partition(".")
        if net in state:
            state[net][rest] = value.float()
    return state, config


# --- Loading any of them for inference -------------------------------------------------------------------


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
        networks, config = _load_export(path)
        discriminators = False
    else:
        state = _torch_load(path)
        if isinstance(state, dict) and state.get("format") == TRAIN_FORMAT:
            networks, config = state["networks"], Config.from_dict(state["config"])
        elif isinstance(state, dict) and all(name in state for name in GENERATORS):
            networks, config = state, Config(model=infer_model_config(state))
            discriminators = discriminators and all(n in state for n in ("disGA", "disGB", "disLA", "disLB"))
        else:
            raise UserError(f"{path} is neither a ugatit checkpoint nor an official U-GAT-IT checkpoint")

    with torch.device("meta"):
        model = UGATIT(config.model, discriminators=discriminators)
    model = model.to_empty(device="cpu")
    model.load_official_state_dict(networks)
    return model.to(device).eval(), config
