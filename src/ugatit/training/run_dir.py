"""The run folder: its layout, log.jsonl, TensorBoard and the sample grids.

    config.yaml                 the resolved config of the latest session (the checkpoint's, on resume)
    log.jsonl                   one JSON object a line: every `log_every` steps {step, lr, time, wall,
                                every loss term, rho statistics}; events {step, event, ...} (bad images,
                                evaluations, divergence)
    tensorboard/                the same scalars and the sample grids (when tensorboard is installed)
    samples/{train,test}_{a2b,b2a}_{step:08d}.png
                                rows: fixed images of the split; columns: input, attention heatmap over
                                the input, translation, cycle reconstruction
    rho.svg                     what AdaLIN learned: every decoder layer's rho at the latest checkpoint
                                (see nn/introspect.py; absent for decoders without rho)
    checkpoints/step_{step:08d}.pt
                                the full training state; the newest `keep_last` are kept
    checkpoints/best.pt         the state with the lowest `kid` returned by the `evaluate` hook
    checkpoints/step_*.pt.unreadable
                                a checkpoint that could not be read when resuming, set aside
    export/ugatit_generators.safetensors (+ .json)
                                the two generators for inference, written when the run completes
    .lock                       held by the trainer using the folder (see `lock`)

Every file is written whole or not at all (a temporary file renamed into place; log.jsonl cut back to
its last whole line), and a failed write raises `storage.WriteFailed`.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import ModelConfig, ablation_name
from ..data.images import BadImageCallback
from ..data.loader import sized_batches
from ..data.sources import Source
from ..data.transforms import tensor_to_uint8
from ..data.unpaired import UnpairedLoader
from ..domains import DIRECTIONS, reverse, source_and_target
from ..errors import UserError
from ..nn.introspect import rho_layers
from ..nn.model import UGATIT
from ..utils.files import O_NOFOLLOW, atomic_write, create_exclusive, os_error_of, unfinished_writes
from ..viz.images import heatmap_to_rgb, labelled_grid, overlay
from ..weights.checkpoints import CHECKPOINT_DIR, latest_checkpoint, newest_readable_checkpoint
from .storage import WriteFailed, writing

CONFIG_FILE = "config.yaml"
LOG_FILE = "log.jsonl"
SAMPLES_DIR = "samples"
TENSORBOARD_DIR = "tensorboard"
EXPORT_FILE = Path("export") / "ugatit_generators.safetensors"
RHO_PLOT = "rho.svg"
BEST_FILE = Path(CHECKPOINT_DIR) / "best.pt"
#: The evaluation metric that marks the best checkpoint; lower is better.
BEST_METRIC = "kid"


def announce(
    notify: Callable[[str], None],
    model: ModelConfig,
    device: torch.device,
    iterations: int,
    sources: list[Source],
    run_dir: Path,
    *,
    resumed: Path | None,
    step: int,
    tensorboard: bool,
) -> None:
    """What a session says before its first iteration: the model, the data, what it resumes, where it writes."""
    kind = "light" if model.light else "full"
    variant = ablation_name(model)
    kind += "" if variant == "full" else f", ablation {variant}"
    notify(
        f"training U-GAT-IT ({kind}, ch={model.ch}, n_res={model.n_res}, {model.img_size}px) on {device} for "
        f"{iterations} iterations: {len(sources[0])} images in domain A, {len(sources[1])} in domain B"
    )
    if resumed is not None:
        notify(f"resuming at step {step} from {resumed}")
    available = tensorboard and tensorboard_available()
    notify(
        f"writing to {run_dir}/: {CONFIG_FILE}, {LOG_FILE}, {SAMPLES_DIR}/, {CHECKPOINT_DIR}/, {EXPORT_FILE.parent}/"
        + (f", {TENSORBOARD_DIR}/" if available else "")
    )
    if tensorboard and not available:
        notify(
            f"no {TENSORBOARD_DIR}/: tensorboard is not installed (pip install tensorboard, or "
            f"ugatit[tensorboard]); the same scalars are in {LOG_FILE}"
        )


def remove_unfinished_writes(run_dir: Path) -> str | None:
    """Delete the temporary files of writes that a killed process left in the run folder (a checkpoint
    cut off by kill -9 stays as checkpoints/.step_*.pt.*.tmp), and say which; only with the run's lock
    held, when no other process can be writing them."""
    folders = [run_dir, run_dir / CHECKPOINT_DIR, run_dir / SAMPLES_DIR, run_dir / EXPORT_FILE.parent]
    removed = [path for folder in folders for path in unfinished_writes(folder)]
    for path in removed:
        path.unlink(missing_ok=True)
    if not removed:
        return None
    names = ", ".join(str(p.relative_to(run_dir)) for p in removed[:3])
    more = f" and {len(removed) - 3} more" if len(removed) > 3 else ""
    files = f"{len(removed)} unfinished file{'s' if len(removed) > 1 else ''}"
    return f"removed {files} that an interrupted write left in {run_dir}: {names}{more}"


def rho_statistics(model: UGATIT) -> dict[str, float]:
    """Mean, min and max of the rho of both generators' decoder layers by kind (`rho_adalin_*`: the
    residual blocks' AdaLIN, `rho_iln_*`: the up-sampling blocks' ILN, `rho_lin_*`: the residual blocks
    of the `lin` ablation): how far the networks lean towards instance (1) or layer (0) normalisation."""
    stats: dict[str, float] = {}
    layers = rho_layers(model)
    for kind in dict.fromkeys(layer.kind for layer in layers):
        rho = torch.cat([layer.values for layer in layers if layer.kind == kind])
        mean, low, high = torch.stack([rho.mean(), rho.min(), rho.max()]).tolist()
        stats.update({f"rho_{kind}_mean": mean, f"rho_{kind}_min": low, f"rho_{kind}_max": high})
    return stats


class JsonlLog:
    """log.jsonl, one record a line, each written to the file at once. On resume the records after the
    checkpoint's step (written by the session that was stopped) are dropped, so every step appears once.
    A write that fails (a full disk) is cut back off: the file always ends with a whole line."""

    def __init__(self, path: Path, keep_until: int):
        kept = []
        if keep_until > 0 and path.is_file():
            kept = [line for line in path.read_text().splitlines() if _record_step(line) <= keep_until]
        self.path = path
        with writing(path):
            atomic_write(path, lambda tmp: tmp.write_text("".join(line + "\n" for line in kept)))
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | O_NOFOLLOW)

    def write(self, record: dict[str, Any]) -> None:
        data = memoryview((json.dumps(record) + "\n").encode())
        with writing(self.path):
            end = os.lseek(self._fd, 0, os.SEEK_END)
            try:
                while data:
                    data = data[os.write(self._fd, data) :]
            except OSError:
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, end)
                raise

    def close(self) -> None:
        os.close(self._fd)


def _record_step(line: str) -> float:
    try:
        return float(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return math.inf  # a line cut short by a crash: drop it


def tensorboard_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorboard") is not None


class NullLog:
    """The log of a process that writes nothing (the ranks other than 0 of a distributed run)."""

    path = None

    def write(self, record: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


class TensorBoard:
    """A SummaryWriter when tensorboard is installed; otherwise every call does nothing.

    The writer writes in a thread of its own and reports a failed write (a full disk) at the next call:
    that call raises `WriteFailed`, and the writer is dropped, so closing it afterwards does not raise
    the same error again over the one being reported. The thread's own report of it (a traceback on
    stderr) is kept quiet: the one line the trainer prints says it.
    """

    def __init__(self, folder: Path, enabled: bool, first_step: int):
        self.writer = None
        self.folder = None
        if not enabled or not tensorboard_available():
            return
        from torch.utils.tensorboard import SummaryWriter

        _quiet_writer_thread_errors()
        self.folder = folder
        with self._writing():
            # purge_step hides events of a stopped session logged after the step resumed from
            self.writer = SummaryWriter(log_dir=str(folder), purge_step=first_step)

    def scalars(self, step: int, values: dict[str, float], prefix: str = "") -> None:
        if self.writer is not None:
            with self._writing():
                for name, value in values.items():
                    self.writer.add_scalar(f"{prefix}{name}", value, step)

    def image(self, tag: str, image: np.ndarray, step: int) -> None:
        if self.writer is not None:
            with self._writing():
                self.writer.add_image(tag, image, step, dataformats="HWC")

    def close(self) -> None:
        if self.writer is not None:
            with self._writing():
                self.writer.close()

    def __enter__(self) -> TensorBoard:
        return self

    def __exit__(self, exc_type: Any, *exc_info: Any) -> None:
        if exc_type is None:
            self.close()
        else:  # the error on its way out says more than a second one from flushing
            with contextlib.suppress(WriteFailed):
                self.close()

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        try:
            with writing(self.folder):
                yield
        except WriteFailed:
            self.writer = None
            raise


def _quiet_writer_thread_errors() -> None:
    """Leave a failed write in TensorBoard's writer thread to the next call, which raises it, instead of
    letting the thread print its traceback (`threading.excepthook`). Other threads' errors, and the
    writer thread's other errors, are reported as before."""
    previous = threading.excepthook
    if getattr(previous, "_ugatit_quiet", False):
        return

    def hook(args: threading.ExceptHookArgs) -> None:
        from_writer = type(args.thread).__name__ == "_AsyncWriterThread"
        if from_writer and isinstance(args.exc_value, Exception) and os_error_of(args.exc_value) is not None:
            return
        previous(args)

    hook._ugatit_quiet = True  # type: ignore[attr-defined]
    threading.excepthook = hook


def sample_images(
    loader: UnpairedLoader,
    test_data: dict[str, Any],
    img_size: int,
    rows: int,
    device: torch.device,
    on_bad_image: BadImageCallback,
    notify: Callable[[str], None],
) -> dict[str, torch.Tensor]:
    """The fixed images of every sample grid, with the test transform: {'train_a2b': ..., ...}; the
    train rows come from the loader's sources, the test rows from `test_data` ({"A": ..., "B": ...})."""
    found: dict[str, torch.Tensor] = {}
    train_sources = {"A": loader.source_a, "B": loader.source_b}
    for split, sources in (("train", train_sources), ("test", test_data)):
        for direction in DIRECTIONS:  # a direction's grid shows images of its source domain
            source = sources[source_and_target(direction)[0]]
            if source is None:
                continue
            batches = sized_batches(source, img_size, batch_size=rows, on_bad_image=on_bad_image)
            try:
                batch = next((b for b in batches if len(b)), None)
            except UserError as exc:  # an empty test folder: train without its samples
                notify(f"no {split} samples for {direction}: {exc}")
                continue
            if batch is not None:
                found[f"{split}_{direction}"] = batch.stacked().to(device)
    return found


#: The columns of a sample grid, captioned on it.
SAMPLE_COLUMNS = ("input", "attention", "translation", "cycle")


def sample_grid(model: UGATIT, images: torch.Tensor, direction: str) -> np.ndarray:
    """One row per image: input, heatmap of the translating generator over it, translation, cycle
    reconstruction (translated back by the other generator), under a row of column captions; small
    images are scaled up to at least 128 px. uint8 H x W x 3."""
    back = reverse(direction)
    fake = model.translate(images, direction)
    cycle = model.translate(fake.image, back)
    size = tuple(images.shape[-2:])
    inputs, fakes, cycles = (tensor_to_uint8(t) for t in (images, fake.image, cycle.image))
    # A generator without CAM (an ablation) has no attention: a grey tile holds its column.
    attention = (
        [overlay(inputs[i], heatmap_to_rgb(fake.heatmap[i], size)) for i in range(len(inputs))]
        if fake.heatmap is not None
        else [np.full_like(inputs[i], 128) for i in range(len(inputs))]
    )
    rows = [[inputs[i], attention[i], fakes[i], cycles[i]] for i in range(len(inputs))]
    columns = SAMPLE_COLUMNS if fake.heatmap is not None else ("input", "(no CAM)", *SAMPLE_COLUMNS[2:])
    return np.asarray(labelled_grid(rows, columns))


def write_rho_plot(model: UGATIT, path: Path, step: int) -> Path | None:
    """The rho of every decoder layer as an SVG strip plot (`viz.rho`) at `path`; None (and nothing
    written) for a decoder without rho."""
    layers = rho_layers(model)
    if not layers:
        return None
    from ..viz.rho import svg_rho_plot

    svg = svg_rho_plot(layers, title=f"learned rho per decoder layer, step {step}")
    with writing(path):
        atomic_write(path, lambda tmp: tmp.write_text(svg + "\n", encoding="utf-8"))
    return path


def save_png(grid: np.ndarray, path: Path) -> None:
    from PIL import Image

    with writing(path):
        atomic_write(path, lambda tmp: Image.fromarray(grid).save(tmp, format="PNG"))


def run_to_resume(run_dir: Path, resume: bool) -> bool:
    """Whether the folder holds a run to resume; an error when that is not what was asked for."""
    latest = latest_checkpoint(run_dir)
    if resume and latest is None:
        raise UserError(
            f"nothing to resume: no checkpoint in {run_dir / CHECKPOINT_DIR} (a new run starts without `resume`)"
        )
    if not resume and latest is not None:
        raise UserError(
            f"{run_dir} already holds a run ({latest.name}): continue it with `resume=True`, or "
            "choose another `run_dir`"
        )
    return latest is not None


def make_run_dir(run_dir: Path) -> None:
    """Create the folder and prove it writable (a probe file: os.access misses read-only mounts, ACLs).
    The probe is made anew, never through a link someone left under its name."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.unlink(missing_ok=True)
        create_exclusive(probe)
        probe.unlink()
    except OSError as exc:
        raise UserError(f"cannot write to the run directory {run_dir}: {exc.strerror or exc}") from None


def resumable_checkpoint(run_dir: Path, notify: Callable[[str], None]) -> dict[str, Any]:
    """The newest readable checkpoint's state, with its "path"; the unreadable ones after it are renamed
    *.unreadable (out of the way of listing, pruning and the save that will reach their step; kept for
    a look) and named through `notify`. Only with the run's lock held."""
    path, state, skipped = newest_readable_checkpoint(run_dir)
    for error in skipped:
        aside = error.path.with_name(error.path.name + ".unreadable")
        error.path.replace(aside)
        notify(
            f"skipped checkpoint {error.path.name}: {error.reason}; kept it as {aside.name}, resuming from {path.name}"
        )
    state["path"] = path
    return state
