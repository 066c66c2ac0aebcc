"""Training checkpoints: the full training state of a run, written atomically, read without unpickling code.

A training checkpoint (`ugatit-train-1`, `RUN/checkpoints/step_NNNNNNNN.pt`) holds the six networks in
the official layout, both optimisers, the step, every RNG state, the data loader's position, the config
and the package version. It is written to a temporary file, fsynced and renamed, so a crash never leaves
half a file; it is read with torch.load(weights_only=True), which refuses pickled code. A file that
cannot be used raises `CheckpointError`; `newest_readable_checkpoint` passes over such files to the
newest one that loads.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, BinaryIO

import torch

from .. import __version__
from ..config import Config
from ..errors import UserError
from ..nn.model import UGATIT
from ..utils.files import atomic_write, is_regular_file
from ..utils.rng import capture_rng_state
from ..utils.torch_files import UnreadableFile, load_torch_file

TRAIN_FORMAT = "ugatit-train-1"
CHECKPOINT_DIR = "checkpoints"
_STEP_FILE = re.compile(r"^step_(\d+)\.pt$")
_TRAINING_KEYS = ("step", "config", "networks", "optimizers", "rng", "data")


class CheckpointError(UserError):
    """A checkpoint file that cannot be used: missing, damaged, of another kind, or holding objects that
    are never unpickled. `reason` is the why without the path."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"cannot read checkpoint {path}: {reason}")
        self.path = Path(path)
        self.reason = reason


# --- Training checkpoints -------------------------------------------------------------------------------


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / f"step_{step:08d}.pt"


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Training checkpoints of a run directory, oldest first: regular files named step_N.pt (a folder or
    a FIFO of that name is passed over)."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _STEP_FILE.search(p.name)) and is_regular_file(p)]
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


def save_training_checkpoint(
    path: Path,
    *,
    model: UGATIT,
    optimizers: dict,
    config: Config,
    step: int,
    data_state: dict | None = None,
    extra: dict | None = None,
) -> Path:
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
    atomic_write(Path(path), lambda tmp: _torch_save(state, tmp))
    return Path(path)


class _KeepWriteError:
    """A file for torch.save that remembers the OSError of a failed write: torch reports a full disk as
    "RuntimeError: [enforce fail at inline_container.cc] unexpected pos", without the errno."""

    def __init__(self, file: BinaryIO):
        self.file = file
        self.error: OSError | None = None

    def write(self, data: Any) -> int:
        try:
            return self.file.write(data)
        except OSError as exc:
            self.error = exc
            raise

    def flush(self) -> None:
        self.file.flush()


def _torch_save(state: dict, path: Path) -> None:
    with open(path, "wb") as file:
        sink = _KeepWriteError(file)
        try:
            torch.save(state, sink)
        except RuntimeError:
            if sink.error is not None:
                raise sink.error from None
            raise


def torch_load(path: Path) -> Any:
    """A PyTorch file's contents without running pickled code; every failure a `CheckpointError` that
    says what the file is."""
    try:
        return load_torch_file(path, "checkpoint")
    except UnreadableFile as exc:
        raise CheckpointError(path, exc.reason) from None


def load_training_checkpoint(path: Path) -> dict[str, Any]:
    """Read a training checkpoint (a run directory means its latest one)."""
    path = Path(path)
    if path.is_dir():
        latest = latest_checkpoint(path)
        if latest is None:
            raise UserError(f"no checkpoint in {path / CHECKPOINT_DIR}")
        path = latest
    return training_state(path, torch_load(path))


def training_state(path: Path, state: Any) -> dict[str, Any]:
    """`state`, as read from `path`, when it is a complete training checkpoint; else `CheckpointError`."""
    if not isinstance(state, dict) or state.get("format") != TRAIN_FORMAT:
        raise CheckpointError(path, "not a ugatit training checkpoint")
    missing = [key for key in _TRAINING_KEYS if key not in state]
    if missing:
        raise CheckpointError(path, f"incomplete (no '{missing[0]}')")
    try:
        config = Config.from_dict(state["config"])
    except UserError as exc:
        raise CheckpointError(path, f"its config is unusable ({exc})") from None
    from .checks import WeightsMismatch, check_networks_fit

    try:  # before anything is built from it
        check_networks_fit(config.model, state["networks"], path, discriminators=True)
    except WeightsMismatch as exc:
        raise CheckpointError(path, exc.reason) from None
    return state


def saved_world_size(saved: dict[str, Any]) -> int:
    """The processes a checkpoint was saved on: its data position records them (`UnpairedLoader.state_dict`);
    a checkpoint of an earlier version may have them in its config instead (`data.world_size`)."""
    for record in (saved.get("data"), (saved.get("config") or {}).get("data")):
        count = record.get("world_size") if isinstance(record, dict) else None
        if isinstance(count, int) and not isinstance(count, bool) and count >= 1:
            return count
    return 1


def newest_readable_checkpoint(run_dir: Path) -> tuple[Path, dict[str, Any], list[CheckpointError]]:
    """The newest training checkpoint of a run folder that loads, its state, and the errors of the newer
    ones passed over (a file damaged on disk, or one put there by someone else). Raises `UserError` when
    there is no checkpoint, or none loads."""
    skipped: list[CheckpointError] = []
    for path in reversed(list_checkpoints(run_dir)):
        try:
            return path, load_training_checkpoint(path), skipped
        except CheckpointError as exc:
            skipped.append(exc)
    folder = Path(run_dir) / CHECKPOINT_DIR
    if not skipped:
        raise UserError(f"no checkpoint in {folder}")
    raise UserError(f"none of the {len(skipped)} checkpoints in {folder} can be read (the newest: {skipped[0]})")


#: The parts of a training state that decide every later iteration (not the config, which a resumed
#: run may change in how long and how it runs, nor timings).
TRAINING_STATE = ("step", "networks", "optimizers", "rng", "data")


def state_differences(a: dict[str, Any], b: dict[str, Any], keys: tuple[str, ...] = TRAINING_STATE) -> list[str]:
    """Where two training states differ, tensors compared bit for bit: [] when a resumed run reached the
    state an uninterrupted one has. Each difference is a path such as "networks.genA2B.gap_fc.weight"."""
    found: list[str] = []
    for key in keys:
        _differences(a.get(key), b.get(key), key, found)
    return found


def _differences(a: Any, b: Any, where: str, found: list[str]) -> None:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        same = isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
        if not same:
            found.append(where)
    elif isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            found.append(f"{where} (keys)")
        for key in a.keys() & b.keys():
            _differences(a[key], b[key], f"{where}.{key}", found)
    elif isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            _differences(x, y, f"{where}[{i}]", found)
    elif a != b:
        found.append(where)
