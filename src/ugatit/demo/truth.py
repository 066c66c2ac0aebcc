"""What the shapes task's test split is made of, on disk and in memory: the scene of every test pair.

`ground_truth.json` (written by `shapes.write_shapes`) records the palettes and, for each test pair, its
shapes (kind, centre, size, rotation, palette index). That is enough to redraw each shape's mask at any
resolution, so `ugatit eval --checkpoint --data` can look inside the shapes of a dataset written
earlier, at whatever size the model runs. `ShapesTruth` turns it into the inputs of
`metrics.objects.ObjectMeter`, and draws the baselines: "one colour for all" (the right scene with every
shape in one colour, the best a translator can score that paints all shapes alike) and "colour by size"
(the right scene with the larger shape red and the smaller blue: the rule the shapes task also obeys,
so that on its test scenes this baseline is the ground truth itself). `ShapesTruth.exchanged` gives the
probe that tells the two rules apart: the same scenes with the two colours exchanged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..metrics.objects import ObjectMeter, ObjectTruth
from . import shapes as S
from .shapes import ground_truth_info, scene_from_json


@dataclass
class ShapesTruth:
    """The test scenes and the colours they were drawn with; the yardstick of `ObjectMeter`."""

    scenes: list[S.Scene]
    palettes: dict[str, np.ndarray]  # domain -> (K, 3) on 0-255
    backgrounds: dict[str, np.ndarray]  # domain -> (3,) on 0-255
    shade: float  # domain B's outline is the colour times this

    @classmethod
    def of_task(cls, seed: int, count: int) -> ShapesTruth:
        """The first `count` test scenes of the task drawn with `seed`, with this version's colours."""
        return cls.from_info(ground_truth_info(size=0, n_train=0, n_test=count, seed=seed))

    @classmethod
    def from_info(cls, info: dict[str, Any]) -> ShapesTruth | None:
        """From the content of `ground_truth.json`; None when it has no scenes (another task, or a dataset
        written before the scenes were recorded)."""
        if info.get("task", "shapes") != "shapes" or "test_scenes" not in info:
            return None
        return cls(
            scenes=[scene_from_json(s) for s in info["test_scenes"]],
            palettes={d: np.asarray(info[f"palette_{d}"], float) for d in "AB"},
            backgrounds={d: np.asarray(info[f"background_{d}"], float) for d in "AB"},
            # "stripe_shade": datasets written before the outline replaced the stripes
            shade=float(info["shade"] if "shade" in info else info["stripe_shade"]),
        )

    def references(self, domain: str) -> np.ndarray:
        """What a shape of each palette entry averages to in `domain`, on [0, 1]. In domain B about half
        of a shape's fully covered pixels are its dark outline (41% to 59% over the task's sizes; the
        stripes of earlier datasets were half dark too); nearest-colour choices do not hinge on it."""
        scale = (1 + self.shade) / 2 if domain == "B" else 1.0
        return self.palettes[domain] * scale / 255

    def meter(self) -> ObjectMeter:
        return ObjectMeter({d: self.references(d) for d in "AB"}, {d: self.backgrounds[d] / 255 for d in "AB"})

    def score(self) -> ShapesScore:
        """A fresh accumulator of the object metrics of translations of these scenes."""
        return ShapesScore(self)

    def objects(self, index: int, size: int) -> list[ObjectTruth]:
        """The shapes of test pair `index` with their coverage masks at `size` px."""
        return [ObjectTruth(S.render_mask(S.Scene((shape,)), size), shape.color) for shape in self.scenes[index].shapes]

    def exchanged(self) -> ShapesTruth:
        """The same scenes with the palette's colours in reverse order (red and blue exchanged): in the
        shapes task the blue shape is then the larger one, which neither domain ever shows. A translator
        that copies each shape's colour keeps these colours; one that reads the colour off the size (on
        the task's own images the same thing) gets every one wrong."""
        last = len(self.palettes["A"]) - 1
        scenes = [S.Scene(tuple(dataclasses.replace(s, color=last - s.color) for s in sc.shapes)) for sc in self.scenes]
        return dataclasses.replace(self, scenes=scenes)

    def images(self, domain: S.Domain, size: int) -> list[Image.Image]:
        """The test scenes drawn in `domain` (with this version's drawing)."""
        return [S.render(scene, domain, size) for scene in self.scenes]

    def by_size(self, index: int, domain: S.Domain, size: int) -> Image.Image:
        """Test pair `index` in `domain` with its shapes coloured by size, the largest in the palette's
        first colour (red), the next in the second, ...: a translator that ignores the input's colours
        and applies the rule the shapes task's images obey."""
        scene = self.scenes[index]
        ranked = sorted(range(len(scene.shapes)), key=lambda k: -scene.shapes[k].size)
        colour = {k: rank % len(self.palettes["A"]) for rank, k in enumerate(ranked)}
        return S.render(
            S.Scene(tuple(dataclasses.replace(s, color=colour[k]) for k, s in enumerate(scene.shapes))), domain, size
        )

    def collapsed(self, index: int, domain: S.Domain, size: int, colour: int) -> Image.Image:
        """Test pair `index` in `domain` with every shape in palette colour `colour`: a translator that
        learned everything but the colours (drawn with this version's palette)."""
        scene = self.scenes[index]
        one_colour = S.Scene(tuple(dataclasses.replace(s, color=colour) for s in scene.shapes))
        return S.render(one_colour, domain, size)


class ShapesScore:
    """Object metrics of translations of the test split (`ObjectMeter`), next to the same metrics of the
    identity baseline (the input offered as its own translation)."""

    def __init__(self, truth: ShapesTruth):
        self.truth = truth
        self.translated = truth.meter()
        self.identity = truth.meter()
        self._objects: dict[tuple[int, int], list[ObjectTruth]] = {}

    def objects(self, index: int, size: int) -> list[ObjectTruth]:
        key = (index, size)
        if key not in self._objects:  # every evaluation during training asks for the same masks
            self._objects[key] = self.truth.objects(index, size)
        return self._objects[key]

    def update(self, direction: str, first: int, sources: Any, translated: Any, targets: Any) -> None:
        """Add a batch of test pairs `first`, `first + 1`, ...: (N, 3, H, W) tensors in [-1, 1]."""
        batches = [_unit_hwc(t) for t in (sources, translated, targets)]
        for offset, (source, made, target) in enumerate(zip(*batches)):
            shapes = self.objects(first + offset, source.shape[0])
            textured = target if direction == "a2b" else source  # the scene as drawn in domain B
            self.translated.update(direction, made, target, textured, shapes)
            self.identity.update(direction, source, target, textured, shapes)

    def compute(self) -> dict[str, dict[str, float]]:
        identity = self.identity.compute()
        return {
            d: {
                **row,
                **{f"identity_{k}": v for k, v in identity[d].items() if k not in ("shapes", "colour_confusion")},
            }
            for d, row in self.translated.compute().items()
        }


def _unit_hwc(batch: Any) -> np.ndarray:
    """(N, C, H, W) tensor on [-1, 1] -> (N, H, W, C) float array on [0, 1]."""
    return batch.detach().float().cpu().permute(0, 2, 3, 1).numpy() / 2 + 0.5


def _baseline(
    truth: ShapesTruth,
    test_a: list[Image.Image],
    test_b: list[Image.Image],
    size: int,
    paint: Callable[[int, S.Domain], Image.Image],
) -> dict[str, dict[str, Any]]:
    """Whole-image L1 and the object metrics, per direction, of a translator whose translation of test
    pair i into domain d is `paint(i, d)`."""
    from ..data.transforms import eval_transform
    from ..metrics.groundtruth import GroundTruthMeter

    as_batch = lambda images: torch.stack([eval_transform(i, size) for i in images])
    meter, score = GroundTruthMeter(), truth.score()
    for direction, sources, targets, domain in (("a2b", test_a, test_b, "B"), ("b2a", test_b, test_a, "A")):
        made = [paint(i, domain) for i in range(len(sources))]  # type: ignore[arg-type]
        batches = [as_batch(images) for images in (sources, made, targets)]
        meter.update(direction, *batches)
        score.update(direction, 0, *batches)
    whole = meter.compute()
    return {d: {"l1": whole[d]["l1"], **row} for d, row in score.translated.compute().items()}


def collapsed_baseline(
    truth: ShapesTruth, test_a: list[Image.Image], test_b: list[Image.Image], size: int
) -> dict[str, dict[str, Any]]:
    """Whole-image L1 and the object metrics of the "collapsed" translator (`ShapesTruth.collapsed`:
    everything right but every shape in one colour), per direction, at `size` px; of the palette's
    colours, the one that scores best (most shapes right, then the lowest foreground L1)."""
    best: dict[str, dict[str, Any]] = {}
    for colour in range(len(truth.palettes["A"])):
        paint = lambda i, domain, colour=colour: truth.collapsed(i, domain, size, colour)
        for d, row in _baseline(truth, test_a, test_b, size, paint).items():
            candidate = {"colour": colour, **row}
            rank = lambda r: (r["colour_accuracy"], -r["foreground_l1"])
            if d not in best or rank(candidate) > rank(best[d]):
                best[d] = candidate
    return best


def size_baseline(
    truth: ShapesTruth, test_a: list[Image.Image], test_b: list[Image.Image], size: int
) -> dict[str, dict[str, Any]]:
    """The "colour by size" translator (`ShapesTruth.by_size`) per direction: its metrics on the test
    scenes and, as "probe_colour_correct" / "probe_colour_accuracy", its colours on the same scenes with
    the colours exchanged (`ShapesTruth.exchanged`)."""
    probe = truth.exchanged()
    on_probe = _baseline(
        probe,
        probe.images("A", size),
        probe.images("B", size),
        size,
        lambda i, domain: probe.by_size(i, domain, size),
    )
    rows = _baseline(truth, test_a, test_b, size, lambda i, domain: truth.by_size(i, domain, size))
    return {
        d: {
            **row,
            "probe_colour_correct": on_probe[d]["colour_correct"],
            "probe_colour_accuracy": on_probe[d]["colour_accuracy"],
        }
        for d, row in rows.items()
    }
