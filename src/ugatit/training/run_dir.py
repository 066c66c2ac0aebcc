"""The run folder: its layout, log.jsonl, TensorBoard and the sample grids.

    config.yaml                 the resolved config of the latest session (the checkpoint's, on resume)
    log.jsonl                   one JSON object a line: every `log_every` steps {step, lr, time, wall,
                                every loss term, rho statistics}; events {step, event, ...} (bad images,
                                evaluations, divergence)
    tensorboard/                the same scalars and the sample grids (when tensorboard is installed)
    samples/{train,test}_{a2b,b2a}_{step:08d}.png
                                rows: fixed images of the split; columns: input, attention heatmap over
                                the input, translation, cycle reconstruction
    checkpoints/step_{step:08d}.pt
                                the full training state; the newest `keep_last` are kept
    checkpoints/best.pt         the state with the lowest `kid` returned by the `evaluate` hook
    export/ugatit_generators.safetensors (+ .json)
                                the two generators for inference, written when the run completes
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.transforms import tensor_to_uint8
from ..domains import reverse
from ..nn.layers import ILN, AdaLIN
from ..nn.model import UGATIT
from ..viz.images import heatmap_to_rgb, image_grid, overlay
from ..weights.checkpoints import CHECKPOINT_DIR

CONFIG_FILE = "config.yaml"
LOG_FILE = "log.jsonl"
SAMPLES_DIR = "samples"
TENSORBOARD_DIR = "tensorboard"
EXPORT_FILE = Path("export") / "ugatit_generators.safetensors"
BEST_FILE = Path(CHECKPOINT_DIR) / "best.pt"
#: The evaluation metric that marks the best checkpoint; lower is better.
BEST_METRIC = "kid"


def rho_statistics(model: UGATIT) -> dict[str, float]:
    """Mean, min and max of every AdaLIN rho and every ILN rho of both generators: how far the
    networks lean towards instance (1) or layer (0) normalisation."""
    stats: dict[str, float] = {}
    for label, kind in (("adalin", AdaLIN), ("iln", ILN)):
        values = [m.rho.detach().flatten() for g in model.generators() for m in g.modules() if isinstance(m, kind)]
        if values:
            rho = torch.cat(values).float()
            mean, low, high = torch.stack([rho.mean(), rho.min(), rho.max()]).tolist()
            stats.update({f"rho_{label}_mean": mean, f"rho_{label}_min": low, f"rho_{label}_max": high})
    return stats



class JsonlLog:
    """log.jsonl, one record a line, flushed as written. On resume the records after the checkpoint's
    step (written by the session that was stopped) are dropped, so every step appears once."""

    def __init__(self, path: Path, keep_until: int):
        kept = []
        if keep_until > 0 and path.is_file():
            kept = [line for line in path.read_text().splitlines() if _record_step(line) <= keep_until]
        path.write_text("".join(line + "\n" for line in kept))
        self.path = path
        self._file = path.open("a")

    def write(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def _record_step(line: str) -> float:
    try:
        return float(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return math.inf  # a line cut short by a crash: drop it


def tensorboard_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorboard") is not None


class TensorBoard:
    """A SummaryWriter when tensorboard is installed; otherwise every call does nothing."""

    def __init__(self, folder: Path, enabled: bool, first_step: int):
        self.writer = None
        self.folder = None
        if not enabled or not tensorboard_available():
            return
        from torch.utils.tensorboard import SummaryWriter

        # purge_step hides events of a stopped session logged after the step resumed from
        self.writer = SummaryWriter(log_dir=str(folder), purge_step=first_step)
        self.folder = folder

    def scalars(self, step: int, values: dict[str, float], prefix: str = "") -> None:
        if self.writer is not None:
            for name, value in values.items():
                self.writer.add_scalar(f"{prefix}{name}", value, step)

    def image(self, tag: str, image: np.ndarray, step: int) -> None:
        if self.writer is not None:
            self.writer.add_image(tag, image, step, dataformats="HWC")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def sample_grid(model: UGATIT, images: torch.Tensor, direction: str) -> np.ndarray:
    """One row per image: input, heatmap of the translating generator over it, translation, cycle
    reconstruction (translated back by the other generator). uint8 H x W x 3."""
    back = reverse(direction)
    fake = model.translate(images, direction)
    cycle = model.translate(fake.image, back)
    size = tuple(images.shape[-2:])
    inputs, fakes, cycles = (tensor_to_uint8(t) for t in (images, fake.image, cycle.image))
    rows = [
        [inputs[i], overlay(inputs[i], heatmap_to_rgb(fake.heatmap[i], size)), fakes[i], cycles[i]]
        for i in range(len(inputs))
    ]
    return np.asarray(image_grid(rows))



def save_png(grid: np.ndarray, path: Path) -> None:
    from PIL import Image

    Image.fromarray(grid).save(path)
