"""Metrics that look at the objects of a task whose scenes are known (the built-in shapes task).

Whole-image L1 is mostly background: on the shapes task a translator that paints the background right
and every shape the same colour scores well on it. These metrics look only inside each ground-truth
shape:

* **colour accuracy**: the mean colour of the translation inside a shape is nearer the right palette
  entry than any other entry or the background. The candidates are the colours a shape of each palette
  entry *averages to* in the target domain (a striped shape averages its light and dark stripes), so a
  perfect translation is right by construction and a missing shape (painted as background) is wrong.
* **foreground L1**: mean absolute error against the ground truth over the pixels inside the shapes,
  weighted by how much of each pixel a shape covers; [0, 1] scale like `groundtruth.l1`.
* **stripe strength**: horizontal stripes make neighbouring rows differ and neighbouring columns agree,
  so a shape's stripe contrast is mean |luma difference| between vertical neighbours minus the same
  between horizontal neighbours (blur and noise raise both and cancel). Divided by the contrast of the
  same shape in the striped domain, it is ~1 for the right stripes and ~0 for a flat fill; a shape
  counts as striped from 0.5, nearer striped than flat. For a translation into the striped domain the
  stripes must be there, out of it they must be gone.

Images are float arrays (H, W, 3) on [0, 1]; shapes come as coverage masks (H, W) in [0, 1] with their
palette index. Everything is per shape first, then pooled over the test set.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..domains import DIRECTIONS

#: A shape's stripe strength (relative to the striped domain's own) from which it counts as striped.
STRIPED_FROM = 0.5
#: Pixels count as inside a shape for colour and stripes only when the shape covers them fully:
#: antialiased edge pixels mix in the background.
_INSIDE = 0.999
_LUMA = np.array([0.299, 0.587, 0.114])


@dataclass(frozen=True)
class ObjectTruth:
    """One shape of a test image: how much of each pixel it covers and its palette index."""

    coverage: np.ndarray  # (H, W) float in [0, 1]
    colour: int


def mean_colours(image: np.ndarray, shapes: Sequence[ObjectTruth]) -> np.ndarray:
    """Mean RGB of `image` over the fully covered pixels of each shape: (len(shapes), 3)."""
    return np.stack([image[s.coverage >= _INSIDE].mean(axis=0) for s in shapes]) if shapes else np.zeros((0, 3))


def nearest_colours(colours: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Index of the nearest candidate (Euclidean RGB) for each colour; (N,) ints."""
    distances = np.linalg.norm(colours[:, None, :] - candidates[None, :, :], axis=2)
    return distances.argmin(axis=1)


def stripe_contrast(image: np.ndarray, coverage: np.ndarray) -> float:
    """Vertical minus horizontal mean |luma difference| of neighbours fully inside the shape (>= 0)."""
    luma = image @ _LUMA
    inside = coverage >= _INSIDE
    vertical = inside[1:] & inside[:-1]
    horizontal = inside[:, 1:] & inside[:, :-1]
    if not vertical.any() or not horizontal.any():
        return 0.0
    dv = np.abs(np.diff(luma, axis=0))[vertical].mean()
    dh = np.abs(np.diff(luma, axis=1))[horizontal].mean()
    return max(float(dv - dh), 0.0)


class ObjectMeter:
    """Per direction: colour accuracy, foreground L1 and stripe strength of translations, shape by shape.

    `references[domain]` holds the mean colour of a shape of each palette entry as drawn in that domain
    (K, 3) and `backgrounds[domain]` the background colour, all on [0, 1]; `striped` names the domain
    whose shapes carry stripes.
    """

    def __init__(self, references: dict[str, np.ndarray], backgrounds: dict[str, np.ndarray], striped: str = "B"):
        self.candidates = {
            d: np.vstack([np.asarray(references[d], float), np.asarray(backgrounds[d], float)]) for d in references
        }
        self.striped = striped
        self.reset()

    def reset(self) -> None:
        self._rows: dict[str, dict[str, list]] = {
            d: {"correct": [], "abs_error": [], "weight": [], "strength": []} for d in DIRECTIONS
        }

    def update(
        self,
        direction: str,
        translated: np.ndarray,
        target: np.ndarray,
        striped_truth: np.ndarray,
        shapes: Sequence[ObjectTruth],
    ) -> None:
        """Add one image: `translated` into the domain of `target` (its ground truth); `striped_truth` is
        the scene as drawn in the striped domain (the target or the source), the stripes' yardstick."""
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        if translated.shape != target.shape or translated.shape != striped_truth.shape:
            raise ValueError(f"images differ in shape: {translated.shape}, {target.shape}, {striped_truth.shape}")
        if not shapes:
            return
        rows = self._rows[direction]
        domain = direction[-1].upper()  # a2b -> B
        chosen = nearest_colours(mean_colours(translated, shapes), self.candidates[domain])
        rows["correct"] += [int(c == s.colour) for c, s in zip(chosen, shapes)]
        error = np.abs(translated - target).mean(axis=2)
        for s in shapes:
            rows["abs_error"].append(float((error * s.coverage).sum()))
            rows["weight"].append(float(s.coverage.sum()))
            yardstick = stripe_contrast(striped_truth, s.coverage)
            strength = stripe_contrast(translated, s.coverage) / yardstick if yardstick > 0 else float("nan")
            rows["strength"].append(strength)

    def compute(self) -> dict[str, dict[str, float]]:
        """{direction: {"shapes", "colour_correct", "colour_accuracy", "foreground_l1", "stripe_strength",
        "stripes_right", "stripe_accuracy"}}, for directions with shapes. `stripes_right` counts the shapes
        striped where the target is striped and flat where it is flat."""
        table: dict[str, dict[str, float]] = {}
        for direction, rows in self._rows.items():
            n = len(rows["correct"])
            if n == 0:
                continue
            strength = np.asarray(rows["strength"], float)
            measurable = strength[np.isfinite(strength)]
            into_striped = direction[-1].upper() == self.striped
            right = int((measurable >= STRIPED_FROM).sum() if into_striped else (measurable < STRIPED_FROM).sum())
            table[direction] = {
                "shapes": n,
                "colour_correct": int(sum(rows["correct"])),
                "colour_accuracy": sum(rows["correct"]) / n,
                "foreground_l1": sum(rows["abs_error"]) / max(sum(rows["weight"]), 1e-12),
                "stripe_strength": float(measurable.mean()) if measurable.size else float("nan"),
                "stripes_right": right,
                "stripe_accuracy": right / measurable.size if measurable.size else float("nan"),
            }
        return table
