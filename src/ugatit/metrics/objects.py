"""Metrics that look at the objects of a task whose scenes are known (the built-in shapes task).

Whole-image L1 is mostly background: on the shapes task a translator that paints the background right
and every shape the same colour scores well on it. These metrics look only inside each ground-truth
shape:

* **colour accuracy**: the mean colour of the translation inside a shape is nearer the right palette
  entry than any other entry or the background. The candidates are the colours a shape of each palette
  entry *averages to* in the target domain (an outlined shape averages its light inside and its dark
  outline), so a perfect translation is right by construction and a missing shape (painted as
  background) is wrong.
* **foreground L1**: mean absolute error against the ground truth over the pixels inside the shapes,
  weighted by how much of each pixel a shape covers; [0, 1] scale like `groundtruth.l1`. Split in two
  to say where the error is: **edge L1** over the pixels along the outline (those a shape covers only
  in part, and the fully covered ones next to them) and **interior L1** over the rest.
* **texture strength**: how much of the textured domain's pattern inside a shape (the shapes task's
  outline; any pattern drawn in one domain and not the other) the translation shows, in the right
  place: the slope of the translation's luma against the textured truth's luma over the shape's
  pixels (each minus its mean). ~1 for the right texture, ~0 for a flat fill or a pattern in the wrong
  place (noise averages out), negative for an inverted one. A shape counts as textured from 0.5,
  nearer the texture than a flat fill. Going into the textured domain the texture must be there, out
  of it it must be gone.

Images are float arrays (H, W, 3) on [0, 1]; shapes come as coverage masks (H, W) in [0, 1] with their
palette index. Everything is per shape first, then pooled over the test set.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..domains import DIRECTIONS

#: A shape's texture strength (1: the textured domain's own) from which it counts as textured.
TEXTURED_FROM = 0.5
#: Pixels count as inside a shape for colour and texture only when the shape covers them fully:
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


def texture_strength(image: np.ndarray, textured_truth: np.ndarray, coverage: np.ndarray) -> float:
    """Least-squares slope of `image`'s luma on `textured_truth`'s over the pixels fully inside the
    shape, both minus their mean: 1 where the image shows the truth's texture, 0 for a flat fill; NaN
    where the truth shows no texture there."""
    inside = coverage >= _INSIDE
    truth = textured_truth[inside] @ _LUMA
    truth = truth - truth.mean() if truth.size else truth
    power = float(truth @ truth)
    if power < 1e-9:
        return float("nan")
    made = image[inside] @ _LUMA
    return float((made - made.mean()) @ truth) / power


def _interior(coverage: np.ndarray) -> np.ndarray:
    """Pixels fully covered whose eight neighbours are fully covered too: a shape minus its edge band."""
    full = np.pad(coverage >= _INSIDE, 1)
    h, w = coverage.shape
    inner = np.ones((h, w), dtype=bool)
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            inner &= full[dy : dy + h, dx : dx + w]
    return inner


class ObjectMeter:
    """Per direction: colour accuracy, foreground L1 and texture strength of translations, shape by shape.

    `references[domain]` holds the mean colour of a shape of each palette entry as drawn in that domain
    (K, 3) and `backgrounds[domain]` the background colour, all on [0, 1]; `textured` names the domain
    whose shapes carry the texture.
    """

    def __init__(self, references: dict[str, np.ndarray], backgrounds: dict[str, np.ndarray], textured: str = "B"):
        self.candidates = {
            d: np.vstack([np.asarray(references[d], float), np.asarray(backgrounds[d], float)]) for d in references
        }
        self.textured = textured
        self.reset()

    def reset(self) -> None:
        self._rows: dict[str, dict[str, list]] = {
            d: {k: [] for k in ("correct", "abs_error", "weight", "edge_error", "edge_weight", "strength", "confusion")}
            for d in DIRECTIONS
        }

    def update(
        self,
        direction: str,
        translated: np.ndarray,
        target: np.ndarray,
        textured_truth: np.ndarray,
        shapes: Sequence[ObjectTruth],
    ) -> None:
        """Add one image: `translated` into the domain of `target` (its ground truth); `textured_truth`
        is the scene as drawn in the textured domain (the target or the source), the texture's yardstick."""
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        if translated.shape != target.shape or translated.shape != textured_truth.shape:
            raise ValueError(f"images differ in shape: {translated.shape}, {target.shape}, {textured_truth.shape}")
        if not shapes:
            return
        rows = self._rows[direction]
        domain = direction[-1].upper()  # a2b -> B
        chosen = nearest_colours(mean_colours(translated, shapes), self.candidates[domain])
        rows["correct"] += [int(c == s.colour) for c, s in zip(chosen, shapes)]
        rows["confusion"] += [(s.colour, int(c)) for c, s in zip(chosen, shapes)]
        error = np.abs(translated - target).mean(axis=2)
        for s in shapes:
            rows["abs_error"].append(float((error * s.coverage).sum()))
            rows["weight"].append(float(s.coverage.sum()))
            edge = s.coverage * ~_interior(s.coverage)
            rows["edge_error"].append(float((error * edge).sum()))
            rows["edge_weight"].append(float(edge.sum()))
            rows["strength"].append(texture_strength(translated, textured_truth, s.coverage))

    def compute(self) -> dict[str, dict[str, Any]]:
        """{direction: {"shapes", "colour_correct", "colour_accuracy", "foreground_l1", "edge_l1",
        "interior_l1", "texture_strength",
        "texture_right", "texture_accuracy", "colour_confusion"}}, for directions with shapes.
        `texture_right` counts the shapes textured where the target is textured and flat where it is
        flat; `colour_confusion[k][j]` counts the shapes of palette entry k whose translation came out
        nearest candidate j (the palette entries, then the background as the last column)."""
        table: dict[str, dict[str, Any]] = {}
        for direction, rows in self._rows.items():
            n = len(rows["correct"])
            if n == 0:
                continue
            strength = np.asarray(rows["strength"], float)
            measurable = strength[np.isfinite(strength)]
            into_textured = direction[-1].upper() == self.textured
            right = int((measurable >= TEXTURED_FROM).sum() if into_textured else (measurable < TEXTURED_FROM).sum())
            candidates = len(self.candidates[direction[-1].upper()])  # palette entries + background
            confusion = np.zeros((candidates - 1, candidates), dtype=int)
            for true, chosen in rows["confusion"]:
                confusion[true, chosen] += 1
            weight, edge_weight = sum(rows["weight"]), sum(rows["edge_weight"])
            error, edge_error = sum(rows["abs_error"]), sum(rows["edge_error"])
            table[direction] = {
                "shapes": n,
                "colour_correct": int(sum(rows["correct"])),
                "colour_accuracy": sum(rows["correct"]) / n,
                "foreground_l1": error / max(weight, 1e-12),
                "edge_l1": edge_error / max(edge_weight, 1e-12),
                "interior_l1": (error - edge_error) / max(weight - edge_weight, 1e-12),
                "texture_strength": float(measurable.mean()) if measurable.size else float("nan"),
                "texture_right": right,
                "texture_accuracy": right / measurable.size if measurable.size else float("nan"),
                "colour_confusion": confusion.tolist(),
            }
        return table
