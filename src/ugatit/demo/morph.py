"""A second built-in task whose answer needs a change of shape: circles <-> squares.

The paper sells U-GAT-IT over CycleGAN-like translators on translations that change shape (selfie2anime,
cat2dog), and credits the CAM attention and AdaLIN's layer-normalisation half for it. The shapes task
(`shapes`) only draws an outline inside shapes that stay put; this one asks for the shape itself to change:

* Domain A: a flat circle in red, green or blue on a mid-grey background.
* Domain B: the same scene with the circle replaced by the upright square around it (the circle is the
  square's inscribed circle: same centre, side = the diameter), in the same colour, on the same
  background. A2B adds the four corners, B2A cuts them off: 21% of the square's area.

Nothing but the outline differs between the domains, so a translator that keeps the input scores 0 on
the shape metric below, and one that draws the right squares scores 1. The drawing (antialiasing, the
seeding of every image) is the shapes task's (`shapes.draw`); the colours, their weights and the random
streams are this task's own, fixed: docs/ablations.md publishes a study on these very images.
The test split renders the same scene in both domains, so every test input has its ground truth.

`MorphTruth` turns the test scenes into metrics for `evaluation.ground_truth_report` (the interface of
`truth.ShapesTruth`): per shape, inside the region where circle and square differ, the fraction of
pixels that the translation paints as the target shape does (shape change: 0 = the source shape kept,
1 = the target shape), and its colour inside the region both share.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..domains import DIRECTIONS
from . import shapes as S

TASK = "morph"
#: The colours: red, green and blue (each above the background in one channel and below it in the other
#: two), on the mid-grey background of the shapes task's domain A.
PALETTE: tuple[tuple[int, int, int], ...] = ((225, 45, 45), (45, 190, 60), (50, 90, 230))
BACKGROUND: tuple[int, int, int] = (150, 150, 150)
#: The weight of each colour in the draw (unequal, as the shapes task's were when this task was made).
COLOUR_WEIGHTS: tuple[float, ...] = (0.5, 0.3, 0.2)
#: Circle radius as a fraction of the side: at 48 px r is 7.7 to 11.5 px, and the corners a square adds
#: ((4 - pi) r^2, 0.41 r deep along the diagonals) cover 51 to 114 pixels.
SIZE_RANGE = (0.16, 0.24)
#: One shape an image: two shapes this large, each with room for its square, rarely fit side by side.
SHAPES = 1
#: A pixel counts as the shape's when it lies more than half-way from the background to its colour.
FOREGROUND_FROM = 0.5
#: A shape counts as changed when more of its difference region is right than wrong.
CHANGED_FROM = 0.5
# Random streams of this task: its scenes are never the shapes task's (which uses 0, 1, 2).
_STREAMS = {("train", "A"): 10, ("train", "B"): 11, ("test", "A"): 12, ("test", "B"): 12}
# `shapes` sizes a square by its area (half-side = size * sqrt(pi) / 2); the square around a circle of
# radius r has half-side r, so size r / (sqrt(pi) / 2). Its corners are sqrt(2) r from the centre.
_SQUARE_SIZE = 1 / S._HALF_SIDE
_SQUARE_BOUND = math.sqrt(2)


def _distinct_colours(rng: np.random.Generator, count: int) -> list[int]:
    """`count` different palette indices, each drawn with COLOUR_WEIGHTS among those left."""
    weights = np.asarray(COLOUR_WEIGHTS, dtype=np.float64)
    colours = []
    for _ in range(count):
        colour = int(rng.choice(len(PALETTE), p=weights / weights.sum()))
        colours.append(colour)
        weights[colour] = 0.0
    return colours


def random_scene(rng: np.random.Generator) -> S.Scene:
    """SHAPES circles, each with room for the square around it inside the image and
    apart from the others, in different colours (drawn by COLOUR_WEIGHTS)."""
    shapes: list[S.Shape] = []
    while len(shapes) < SHAPES:  # the rare draw where a shape finds no room starts again
        shapes = []
        for _ in range(SHAPES):
            for _attempt in range(100):
                size = float(rng.uniform(*SIZE_RANGE))
                bound = size * _SQUARE_BOUND
                lo, hi = bound + S._MARGIN, 1.0 - bound - S._MARGIN
                center = (float(rng.uniform(lo, hi)), float(rng.uniform(lo, hi)))
                if all(
                    math.dist(center, other.center) > bound + other.size * _SQUARE_BOUND + S._MARGIN for other in shapes
                ):
                    shapes.append(S.Shape("circle", center, size, 0.0, 0))
                    break
    colours = _distinct_colours(rng, SHAPES)
    return S.Scene(tuple(dataclasses.replace(shape, color=c) for shape, c in zip(shapes, colours)))


def in_domain(scene: S.Scene, domain: str) -> S.Scene:
    """The scene as domain `domain` draws it: circles in A, in B the upright squares around them."""
    if S._check_domain(domain) == "A":
        return scene
    return S.Scene(
        tuple(
            dataclasses.replace(shape, kind="square", size=shape.size * _SQUARE_SIZE, rotation=0.0)
            for shape in scene.shapes
        )
    )


def scene_for(seed: int, split: str, domain: str, index: int) -> S.Scene:
    """The `index`-th scene of a split and domain (drawn as circles; see `in_domain`)."""
    return random_scene(np.random.default_rng([seed, _STREAMS[(split, S._check_domain(domain))], index]))


def render(scene: S.Scene, domain: str, size: int = 48) -> Image.Image:
    """`scene` in `domain`: flat shapes on the mid-grey background in both, circles in A, squares in B."""
    return S.draw(in_domain(scene, domain), size, PALETTE, BACKGROUND)


class MorphDataset(Sequence):
    """`count` images of one split and domain, drawn lazily on access (see `shapes.ShapesDataset`)."""

    def __init__(self, domain: str = "A", split: str = "train", size: int = 48, count: int = 1000, seed: int = 0):
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        self.domain, self.split, self.size, self.count, self.seed = S._check_domain(domain), split, size, count, seed

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self.count))]
        if index < 0:
            index += self.count
        if not 0 <= index < self.count:
            raise IndexError(f"index {index} out of range for {self.count} images")
        return render(scene_for(self.seed, self.split, self.domain, index), self.domain, self.size)


def make_morph(size: int = 48, n_train: int = 1000, n_test: int = 100, seed: int = 0) -> dict[str, list[Image.Image]]:
    """The whole task in memory: {'trainA', 'trainB', 'testA', 'testB'}; testA[i] translates to testB[i]."""
    return {
        f"{split}{domain}": list(MorphDataset(domain, split, size, count, seed))
        for split, count in (("train", n_train), ("test", n_test))
        for domain in ("A", "B")
    }


def write_morph(
    root: str | Path,
    size: int = 48,
    n_train: int = 1000,
    n_test: int = 100,
    seed: int = 0,
    splits: Sequence[str] = S.SPLIT_DIRS,
) -> dict:
    """Write the task as PNGs in the standard layout plus ``ground_truth.json``; return that JSON."""
    root = Path(root)
    counts = {"trainA": n_train, "trainB": n_train, "testA": n_test, "testB": n_test}
    for name in splits:
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        dataset = MorphDataset(name[-1], name[:-1], size, counts[name], seed)
        for i in range(len(dataset)):
            dataset[i].save(folder / S.file_name(i, len(dataset)), format="PNG")
    info = ground_truth_info(size, n_train, n_test, seed)
    (root / "ground_truth.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return info


def ground_truth_info(size: int, n_train: int, n_test: int, seed: int) -> dict[str, Any]:
    """What ``ground_truth.json`` records: the layout, the colours and every test scene (as circles)."""
    return {
        "task": TASK,
        "size": size,
        "seed": seed,
        "counts": {"trainA": n_train, "trainB": n_train, "testA": n_test, "testB": n_test},
        "pairs": {"testA": "testB"},
        "convention": (
            "testA/NAME.png and testB/NAME.png show the same scene: each is the ground-truth translation of "
            "the other. trainA and trainB are unpaired. test_scenes[i] describes the i-th test pair as "
            "circles (domain A); domain B draws each as the upright square around it (same centre, side = "
            "the diameter, same colour)."
        ),
        "domains": {
            "A": "a flat circle in red, green or blue on a mid-grey background",
            "B": "the same scenes with the circle replaced by the upright square around it, in its colour",
        },
        "palette": [list(c) for c in PALETTE],
        "colour_weights": list(COLOUR_WEIGHTS),
        "background": list(BACKGROUND),
        "test_scenes": [S.scene_to_json(scene_for(seed, "test", "A", i)) for i in range(n_test)],
    }


# --- Metrics --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class MorphTruth:
    """The test scenes and their colours: the yardstick of `MorphScore`."""

    scenes: list[S.Scene]
    palette: np.ndarray  # (K, 3) on 0-255
    background: np.ndarray  # (3,) on 0-255

    @classmethod
    def of_task(cls, seed: int, count: int) -> MorphTruth:
        return cls.from_info(ground_truth_info(size=0, n_train=0, n_test=count, seed=seed))

    @classmethod
    def from_info(cls, info: dict[str, Any]) -> MorphTruth:
        return cls(
            scenes=[S.scene_from_json(s) for s in info["test_scenes"]],
            palette=np.asarray(info["palette"], float),
            background=np.asarray(info["background"], float),
        )

    def score(self) -> MorphScore:
        """A fresh accumulator of the shape metrics of translations of these scenes."""
        return MorphScore(self)

    def masks(self, index: int, size: int) -> list[dict[str, np.ndarray]]:
        """For each shape of test pair `index`: its coverage in each domain at `size` px, {"A", "B"}."""
        return [
            {d: S.render_mask(in_domain(S.Scene((shape,)), d), size) for d in ("A", "B")}
            for shape in self.scenes[index].shapes
        ]


class MorphScore:
    """Per direction, for translations and for the identity baseline (the input offered as its own
    translation): shape change, shapes changed, colour accuracy and foreground L1 (see `shape_metrics`)."""

    def __init__(self, truth: MorphTruth):
        self.truth = truth
        self.rows = {kind: {d: _empty() for d in DIRECTIONS} for kind in ("translated", "identity")}
        self._masks: dict[tuple[int, int], list[dict[str, np.ndarray]]] = {}

    def update(self, direction: str, first: int, sources: Any, translated: Any, targets: Any) -> None:
        """Add test pairs `first`, `first + 1`, ...: (N, 3, H, W) tensors in [-1, 1]."""
        src, tgt = direction[0].upper(), direction[-1].upper()
        batches = [_unit_hwc(t) for t in (sources, translated, targets)]
        for offset, (source, made, target) in enumerate(zip(*batches)):
            key = (first + offset, source.shape[0])
            if key not in self._masks:
                self._masks[key] = self.truth.masks(*key)
            shapes = self.truth.scenes[first + offset].shapes
            for kind, image in (("translated", made), ("identity", source)):
                rows = self.rows[kind][direction]
                for shape, masks in zip(shapes, self._masks[key]):
                    _add_shape(rows, image, source, target, masks[src], masks[tgt], shape.color, self.truth)

    def compute(self) -> dict[str, dict[str, float]]:
        table: dict[str, dict[str, float]] = {}
        for direction in DIRECTIONS:
            row = _summary(self.rows["translated"][direction])
            if row is None:
                continue
            identity = _summary(self.rows["identity"][direction]) or {}
            table[direction] = {**row, **{f"identity_{k}": v for k, v in identity.items() if k != "shapes"}}
        return table


def _empty() -> dict[str, list]:
    return {"changed_right": [], "changed_pixels": [], "colour_correct": [], "abs_error": [], "weight": []}


def _foreground(image: np.ndarray, colour: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Where `image` (H, W, 3 on [0, 1]) lies more than half-way from the background to `colour`, by its
    projection on the line between them: a pixel-wise "is this the shape?"."""
    axis = colour - background
    t = ((image - background) @ axis) / float(axis @ axis)
    return t > FOREGROUND_FROM


def _add_shape(
    rows: dict[str, list],
    image: np.ndarray,
    source: np.ndarray,
    target: np.ndarray,
    source_mask: np.ndarray,
    target_mask: np.ndarray,
    colour: int,
    truth: MorphTruth,
) -> None:
    """Add one shape of one test pair: `image` is the translation of `source`, `target` its ground truth
    (H, W, 3 on [0, 1]); the masks are the shape's coverage in the two domains."""
    palette, background = truth.palette / 255, truth.background / 255
    union = np.maximum(target_mask, source_mask)
    near = union > 0  # this shape's pixels in either domain (the other shape is elsewhere)
    wanted = _foreground(target, palette[colour], background)
    # Where the ground truths of the two domains differ: the corners to add or to cut off, read
    # off the rendered images, so that the answer scores 1 and the input itself 0 by construction.
    differ = near & (wanted != _foreground(source, palette[colour], background))
    painted = _foreground(image, palette[colour], background)
    rows["changed_right"].append(int((painted[differ] == wanted[differ]).sum()))
    rows["changed_pixels"].append(int(differ.sum()))
    core = (target_mask >= 0.999) & (source_mask >= 0.999)  # fully inside both shapes
    if core.any():
        mean = image[core].mean(axis=0)
        candidates = np.vstack([palette, background])
        rows["colour_correct"].append(int(np.linalg.norm(candidates - mean, axis=1).argmin() == colour))
    rows["abs_error"].append(float((np.abs(image - target).mean(axis=2) * union).sum()))
    rows["weight"].append(float(union.sum()))


def _summary(rows: dict[str, list]) -> dict[str, float] | None:
    """shape_change: right pixels / all pixels of the difference regions, pooled over the shapes;
    shapes_changed: shapes whose own share is at least CHANGED_FROM; colour accuracy; foreground L1."""
    n = len(rows["changed_pixels"])
    if n == 0:
        return None
    right, pixels = np.asarray(rows["changed_right"], float), np.asarray(rows["changed_pixels"], float)
    shares = np.divide(right, pixels, out=np.zeros_like(right), where=pixels > 0)
    return {
        "shapes": n,
        "shape_change": float(right.sum() / max(pixels.sum(), 1.0)),
        "shapes_changed": int((shares >= CHANGED_FROM).sum()),
        "colour_accuracy": sum(rows["colour_correct"]) / max(len(rows["colour_correct"]), 1),
        "foreground_l1": sum(rows["abs_error"]) / max(sum(rows["weight"]), 1e-12),
    }


def _unit_hwc(batch: Any) -> np.ndarray:
    """(N, C, H, W) tensor on [-1, 1] -> (N, H, W, C) float array on [0, 1]."""
    return torch.as_tensor(batch).detach().float().cpu().permute(0, 2, 3, 1).numpy() / 2 + 0.5


#: What each direction has to do, in the words of `headline_sentence`.
CHANGE = {"a2b": "circles made squares", "b2a": "squares made circles"}


def headline_sentence(direction: str, row: dict[str, float]) -> str:
    """ "a2b: 30 of 32 circles made squares (shape change 0.87), 32 of 32 the right colour; ..." """
    n = int(row["shapes"])
    return (
        f"{direction}: {int(row['shapes_changed'])} of {n} {CHANGE[direction]} (shape change "
        f"{row['shape_change']:.2f}; the input itself: {row['identity_shape_change']:.2f}), "
        f"{round(row['colour_accuracy'] * n)} of {n} the right colour; foreground L1 {row['foreground_l1']:.3f} "
        f"(the input itself: {row['identity_foreground_l1']:.3f})"
    )
