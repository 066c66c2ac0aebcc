"""A built-in translation task whose answer is known: flat shapes <-> outlined shapes.

Real datasets cannot be shipped and a translator cannot be judged on noise, so this module draws two
unpaired image domains with an exact, known correspondence:

* Domain A: two flat shapes (circle, square or triangle), one red and one blue, on a mid-grey
  background.
* Domain B: the same kind of scene on a blue-grey background, each shape drawn with a dark outline: a
  band along its edge, inside the shape, in a dark shade of its colour.

Going A -> B means finding the shapes, drawing the outline inside each (as an anime drawing inks the
outline of a face, not the background) and changing the background; B -> A undoes both. A shape keeps
its colour. Every image holds one shape of each colour, so a translation that loses a colour (paints
both shapes alike) is wrong in every single image, which a discriminator judging one image at a time
can see; docs/demo.md explains why this, and an outline rather than stripes, is what a short run can
learn. Each colour has one RGB channel above both backgrounds and two below: the instance normalisation
at the generator's input keeps little more than the sign of a shape's contrast with its background,
and these signs differ per colour. Everything is drawn from a seed, so the same seed gives the same
bytes. Training images are unpaired: trainA and trainB come from different random streams, so no trainB
image is the translation of any trainA image. The test split renders the same scene in both domains,
so every test input has its ground-truth translation.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np
from PIL import Image

Domain = Literal["A", "B"]
Split = Literal["train", "test"]

KINDS: tuple[str, ...] = ("circle", "square", "triangle")

#: The backgrounds: A mid-grey, B blue-grey.
BACKGROUND_A: tuple[int, int, int] = (150, 150, 150)
BACKGROUND_B: tuple[int, int, int] = (105, 120, 140)
#: The shapes' colours, the same in both domains: red and blue. Each is above both backgrounds in one
#: channel and below them in the other two, so each contrasts with the background in its own way.
PALETTE: tuple[tuple[int, int, int], ...] = ((225, 45, 45), (50, 90, 230))
PALETTE_A = PALETTE_B = PALETTE
COLOUR_NAMES: tuple[str, ...] = ("red", "blue")
#: The outline of domain B is the shape's colour times this; it stays clearly different from the
#: background, so the shape's silhouette is the same in both domains.
SHADE = 0.4
#: The outline's width, inside the shape, as a fraction of the image side (2.9 px at 48 px) ...
OUTLINE_WIDTH = 0.06
#: ... but never less than this many pixels, or it blurs into the edge at tiny sizes.
MIN_OUTLINE_PX = 2.0
#: Shape size ("radius") as a fraction of the image side, per colour; every kind of a given size has
#: the area of the circle of that radius, so size means the same thing for all kinds. Red shapes are
#: larger than blue ones (about twice the area): a translation that swapped the two colours would
#: make large blue shapes, which the other domain never shows (docs/demo.md).
SIZE_RANGES: tuple[tuple[float, float], ...] = ((0.21, 0.27), (0.15, 0.19))
#: Shapes per image: one of each colour, so that a translation that loses a colour is wrong in a
#: single image, which a discriminator judging one image at a time can see (docs/demo.md).
SHAPES = len(PALETTE)
SUPERSAMPLE = 4

# Bounding-circle radius per unit size, for equal areas: square half-side sqrt(pi)/2, triangle
# circumradius sqrt(pi / (3*sqrt(3)/4)).
_HALF_SIDE = math.sqrt(math.pi) / 2
_TRI_RADIUS = math.sqrt(math.pi / (3 * math.sqrt(3) / 4))
_BOUND = {"circle": 1.0, "square": _HALF_SIDE * math.sqrt(2), "triangle": _TRI_RADIUS}
_MARGIN = 0.02  # gap to the border and between shapes, as a fraction of the side

# Random streams: trainA, trainB and test never share a scene.
_STREAMS = {("train", "A"): 0, ("train", "B"): 1, ("test", "A"): 2, ("test", "B"): 2}


@dataclass(frozen=True)
class Shape:
    """One shape in normalised coordinates (x right, y down, both in [0, 1])."""

    kind: str  # one of KINDS
    center: tuple[float, float]
    size: float  # radius of the circle with the same area, as a fraction of the image side
    rotation: float  # radians; irrelevant for circles
    color: int  # index into PALETTE

    def bound(self) -> float:
        """Radius of the circle around `center` that contains the shape."""
        return self.size * _BOUND[self.kind]


@dataclass(frozen=True)
class Scene:
    """What is drawn; the same scene renders to a matching pair of images in domains A and B."""

    shapes: tuple[Shape, ...]


def random_scene(rng: np.random.Generator) -> Scene:
    """Draw SHAPES shapes that lie fully inside the image and do not overlap, one of each colour.

    The colour and kind of each shape are drawn first, then its size (by its colour), rotation and
    place until it fits (up to 100 tries; the rare scene where a shape finds no room starts again), so
    that every kind is about as common as the others. (Redrawing the kind on every try, as the first
    versions did, made most shapes circles: circles fit most easily.)
    """
    shapes: list[Shape] = []
    while len(shapes) < SHAPES:
        shapes = []
        colours = rng.permutation(len(PALETTE))[:SHAPES]  # which colour is placed first is drawn too
        for colour in colours:
            kind = KINDS[int(rng.integers(len(KINDS)))]  # independent of the colour
            for _attempt in range(100):
                size = float(rng.uniform(*SIZE_RANGES[colour]))
                rotation = float(rng.uniform(0.0, 2 * math.pi))
                (x0, y0), (x1, y1) = _extent(Shape(kind, (0.0, 0.0), size, rotation, 0))
                center = (
                    float(rng.uniform(_MARGIN - x0, 1 - _MARGIN - x1)),
                    float(rng.uniform(_MARGIN - y0, 1 - _MARGIN - y1)),
                )
                shape = Shape(kind, center, size, rotation, int(colour))
                # Shapes never overlap (nor touch), so every silhouette stays whole and recognisable.
                if not any(_near(shape, other) for other in shapes):
                    shapes.append(shape)
                    break
            else:
                break
    return Scene(tuple(shapes))


def _corners(shape: Shape) -> np.ndarray:
    """The polygon's corners (k, 2) in image coordinates; a circle has none."""
    if shape.kind == "square":
        half = shape.size * _HALF_SIDE
        local = [(half, half), (-half, half), (-half, -half), (half, -half)]
    elif shape.kind == "triangle":
        # Opposite the edge normals of `inside_distance` (90, 210, 330 degrees), at the circumradius.
        radius = shape.size * _TRI_RADIUS
        local = [(radius * math.cos(a), radius * math.sin(a)) for a in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)]
    else:
        return np.zeros((0, 2))
    c, s = math.cos(shape.rotation), math.sin(shape.rotation)
    # (u, v) in the shape's frame -> image offsets: the inverse of the rotation in `inside_distance`.
    return np.array([(shape.center[0] + c * u - s * v, shape.center[1] + s * u + c * v) for u, v in local])


def _extent(shape: Shape) -> tuple[tuple[float, float], tuple[float, float]]:
    """The shape's bounding box, ((x_min, y_min), (x_max, y_max))."""
    if shape.kind == "circle":
        cx, cy = shape.center
        return (cx - shape.size, cy - shape.size), (cx + shape.size, cy + shape.size)
    corners = _corners(shape)
    return tuple(corners.min(axis=0)), tuple(corners.max(axis=0))  # type: ignore[return-value]


def _inradius(shape: Shape) -> float:
    """Radius of the largest circle around the centre inside the shape."""
    return shape.size * {"circle": 1.0, "square": _HALF_SIDE, "triangle": _TRI_RADIUS / 2}[shape.kind]


#: `_near` samples the image this finely: finer than _MARGIN, so two shapes closer than _MARGIN share samples.
_STEP = 1 / 96


def _near(one: Shape, other: Shape) -> bool:
    """Whether two shapes come within _MARGIN of each other: both grown by _MARGIN / 2 share a sample
    point (edge lines stand in for the distance outside a polygon, which only errs towards keeping
    shapes apart). Only the overlap of their bounding boxes is sampled."""
    distance = math.dist(one.center, other.center)
    if distance > one.bound() + other.bound() + _MARGIN:  # their circumcircles are apart
        return False
    if distance < _inradius(one) + _inradius(other) + _MARGIN:  # their incircles are not
        return True
    (a0, b0), (a1, b1) = _extent(one)
    (c0, d0), (c1, d1) = _extent(other)
    pad = _MARGIN / 2
    x0, x1, y0, y1 = max(a0, c0) - pad, min(a1, c1) + pad, max(b0, d0) - pad, min(b1, d1) + pad
    if x0 > x1 or y0 > y1:
        return False
    x = np.arange(x0, x1 + _STEP, _STEP)[None, :]
    y = np.arange(y0, y1 + _STEP, _STEP)[:, None]
    return bool(((inside_distance(one, x, y) > -pad) & (inside_distance(other, x, y) > -pad)).any())


def scene_for(seed: int, split: Split, domain: Domain, index: int) -> Scene:
    """The `index`-th scene of a split and domain; independent of how many images are drawn.

    Each image has its own generator, seeded from (seed, stream, index), so asking for more images
    never changes the first ones. testA and testB share a stream: same index, same scene.
    """
    stream = _STREAMS[(split, _check_domain(domain))]
    return random_scene(np.random.default_rng([seed, stream, index]))


def _check_domain(domain: str) -> Domain:
    if domain not in ("A", "B"):
        raise ValueError(f"domain must be 'A' or 'B', got {domain!r}")
    return domain  # type: ignore[return-value]


def _shape_mask(shape: Shape, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Boolean mask of the sample points (x, y) that lie inside `shape`.

    Kept apart from `inside_distance` (which decides only where domain B's outline goes) and exactly as
    first written: the morph task draws with it, and its images must not change by a bit."""
    cx, cy = shape.center
    dx, dy = x - cx, y - cy
    if shape.kind == "circle":
        return dx * dx + dy * dy <= shape.size**2
    # Rotate the points into the shape's own frame instead of rotating the shape.
    c, s = math.cos(shape.rotation), math.sin(shape.rotation)
    u, v = c * dx + s * dy, -s * dx + c * dy
    if shape.kind == "square":
        half = shape.size * _HALF_SIDE
        return (np.abs(u) <= half) & (np.abs(v) <= half)
    if shape.kind == "triangle":
        # Equilateral: inside the three half-planes whose normals point at 90, 210 and 330 degrees,
        # each at the inradius (half the circumradius) from the centre.
        inradius = shape.size * _TRI_RADIUS / 2
        inside = np.ones(np.broadcast_shapes(u.shape, v.shape), dtype=bool)
        for angle in (math.pi / 2, math.pi / 2 + 2 * math.pi / 3, math.pi / 2 + 4 * math.pi / 3):
            inside &= u * math.cos(angle) + v * math.sin(angle) <= inradius
        return inside
    raise ValueError(f"unknown shape kind {shape.kind!r}; expected one of {KINDS}")


def inside_distance(shape: Shape, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Distance from each point (x, y) to the outline of `shape`, positive inside, negative outside
    (exact inside, where the outline is drawn: every kind is convex)."""
    cx, cy = shape.center
    dx, dy = x - cx, y - cy
    if shape.kind == "circle":
        return shape.size - np.sqrt(dx * dx + dy * dy)
    # Rotate the points into the shape's own frame instead of rotating the shape.
    c, s = math.cos(shape.rotation), math.sin(shape.rotation)
    u, v = c * dx + s * dy, -s * dx + c * dy
    if shape.kind == "square":
        half = shape.size * _HALF_SIDE
        return np.minimum(half - np.abs(u), half - np.abs(v))
    if shape.kind == "triangle":
        # Equilateral: inside the three half-planes whose normals point at 90, 210 and 330 degrees,
        # each at the inradius (half the circumradius) from the centre.
        inradius = shape.size * _TRI_RADIUS / 2
        sides = [
            inradius - (u * math.cos(angle) + v * math.sin(angle))
            for angle in (math.pi / 2, math.pi / 2 + 2 * math.pi / 3, math.pi / 2 + 4 * math.pi / 3)
        ]
        return np.minimum(np.minimum(sides[0], sides[1]), sides[2])
    raise ValueError(f"unknown shape kind {shape.kind!r}; expected one of {KINDS}")


def outline_width(size: int) -> float:
    """Width of domain B's outline in normalised units for an image of `size` pixels."""
    return max(OUTLINE_WIDTH * size, MIN_OUTLINE_PX) / size


def _sample_grid(size: int, supersample: int) -> tuple[np.ndarray, np.ndarray]:
    n = size * supersample
    coords = (np.arange(n, dtype=np.float64) + 0.5) / n
    return coords[None, :], coords[:, None]  # x varies along columns, y along rows


def _downsample(array: np.ndarray, factor: int) -> np.ndarray:
    """Box-filter an (H*f, W*f, ...) array to (H, W, ...): the antialiasing step."""
    if factor == 1:
        return array
    h, w = array.shape[0] // factor, array.shape[1] // factor
    return array.reshape(h, factor, w, factor, *array.shape[2:]).mean(axis=(1, 3))


def render(scene: Scene, domain: Domain, size: int = 64, supersample: int = SUPERSAMPLE) -> Image.Image:
    """Draw `scene` as a `size` x `size` RGB image in domain "A" (flat) or "B" (outlined).

    Edges are antialiased by drawing `supersample`^2 samples per pixel and averaging them.
    """
    if _check_domain(domain) == "A":
        return draw(scene, size, PALETTE_A, BACKGROUND_A, supersample=supersample)
    return draw(scene, size, PALETTE_B, BACKGROUND_B, outline=(outline_width(size), SHADE), supersample=supersample)


def draw(
    scene: Scene,
    size: int,
    palette: Sequence[Sequence[int]],
    background: Sequence[int],
    *,
    outline: tuple[float, float] | None = None,
    supersample: int = SUPERSAMPLE,
) -> Image.Image:
    """`scene`'s shapes filled with their `palette` colour on `background`, antialiased; with `outline`
    (width in normalised units, shade), a band that wide inside each shape's edge in its colour times
    the shade. The drawing of both tasks (`render`, and the morph task's own colours)."""
    if size < 8:
        raise ValueError(f"size must be at least 8 pixels, got {size}")
    x, y = _sample_grid(size, supersample)
    n = size * supersample
    canvas = np.empty((n, n, 3), dtype=np.float64)
    canvas[:] = background
    for shape in scene.shapes:
        mask = np.broadcast_to(_shape_mask(shape, x, y), (n, n))
        colour = np.asarray(palette[shape.color], dtype=np.float64)
        canvas[mask] = colour
        if outline is not None:
            width, shade = outline
            # The outline follows the edge at a fixed distance: where it goes is decided by the edge
            # nearby, so a convolutional translator can draw it from what it sees (stripes, whose phase
            # depended on the shape's centre, could not be placed in a short run: docs/demo.md).
            canvas[mask & (inside_distance(shape, x, y) < width)] = colour * shade
    pixels = np.rint(_downsample(canvas, supersample)).clip(0, 255).astype(np.uint8)
    return Image.fromarray(pixels)  # uint8 (H, W, 3) -> RGB


def render_mask(scene: Scene, size: int = 64, supersample: int = SUPERSAMPLE) -> np.ndarray:
    """Fraction of each pixel covered by a shape, float32 (size, size) in [0, 1]; same for A and B."""
    x, y = _sample_grid(size, supersample)
    covered = np.zeros((size * supersample,) * 2, dtype=np.float32)
    for shape in scene.shapes:
        covered[_shape_mask(shape, x, y)] = 1.0
    return _downsample(covered, supersample).astype(np.float32)


class ShapesDataset(Sequence):
    """`count` images of one split and domain of the shapes task, drawn lazily on access.

    ``ShapesDataset("A", "test")[i]`` and ``ShapesDataset("B", "test")[i]`` show the same scene (the
    ground-truth pair); the train split of A and of B share no scene.
    """

    def __init__(
        self,
        domain: Domain = "A",
        split: Split = "train",
        size: int = 64,
        count: int = 1000,
        seed: int = 0,
    ) -> None:
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        if count < 0:
            raise ValueError(f"count must be non-negative, got {count}")
        self.domain = _check_domain(domain)
        self.split = split
        self.size = size
        self.count = count
        self.seed = seed

    def __len__(self) -> int:
        return self.count

    def scene(self, index: int) -> Scene:
        return scene_for(self.seed, self.split, self.domain, self._index(index))

    def _index(self, index: int) -> int:
        if index < 0:
            index += self.count
        if not 0 <= index < self.count:
            raise IndexError(f"index {index} out of range for {self.count} images")
        return index

    @overload
    def __getitem__(self, index: int) -> Image.Image: ...
    @overload
    def __getitem__(self, index: slice) -> list[Image.Image]: ...
    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self.count))]
        return render(self.scene(index), self.domain, self.size)


def make_shapes(size: int = 64, n_train: int = 1000, n_test: int = 100, seed: int = 0) -> dict[str, list[Image.Image]]:
    """The whole task in memory: {'trainA', 'trainB', 'testA', 'testB'} -> lists of PIL images.

    testA[i] translates to testB[i]; trainA and trainB are unpaired.
    """
    out: dict[str, list[Image.Image]] = {}
    for split, count in (("train", n_train), ("test", n_test)):
        for domain in ("A", "B"):
            dataset = ShapesDataset(domain, split, size, count, seed)  # type: ignore[arg-type]
            out[f"{split}{domain}"] = list(dataset)
    return out


SPLIT_DIRS = ("trainA", "trainB", "testA", "testB")


def file_name(index: int, count: int) -> str:
    """Zero-padded 1-based name, so files sort in scene order: 0001.png ... ."""
    return f"{index + 1:0{max(4, len(str(count)))}d}.png"


def write_shapes(
    root: str | Path,
    size: int = 64,
    n_train: int = 1000,
    n_test: int = 100,
    seed: int = 0,
    progress: bool = False,
    splits: Sequence[str] = SPLIT_DIRS,
) -> dict:
    """Write the task as PNGs in the standard layout plus ``ground_truth.json``; return that JSON.

    ``root/testA/NAME.png`` translates to ``root/testB/NAME.png`` (and back); train file names carry
    no pairing. `splits` limits which folders are written (the demo trains from memory and writes
    only the test split). Existing files of the same name are overwritten; nothing else is removed.
    """
    root = Path(root)
    counts = {"trainA": n_train, "trainB": n_train, "testA": n_test, "testB": n_test}
    jobs = [
        (name, ShapesDataset(name[-1], name[:-1], size, counts[name], seed))  # type: ignore[arg-type]
        for name in splits
    ]
    total = sum(counts[name] for name in splits)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="img", desc="shapes", disable=None)  # None: silent when not a TTY
    for name, dataset in jobs:
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(len(dataset)):
            dataset[i].save(folder / file_name(i, len(dataset)), format="PNG")
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    info = ground_truth_info(size, n_train, n_test, seed)
    (root / "ground_truth.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return info


def scene_to_json(scene: Scene) -> list[dict[str, Any]]:
    """A scene as JSON-ready shapes; floats rounded to 1e-9, far below a pixel at any size."""
    return [
        {
            "kind": s.kind,
            "center": [round(c, 9) for c in s.center],
            "size": round(s.size, 9),
            "rotation": round(s.rotation, 9),
            "colour": s.color,
        }
        for s in scene.shapes
    ]


def scene_from_json(shapes: Sequence[dict[str, Any]]) -> Scene:
    return Scene(
        tuple(
            Shape(
                d["kind"],
                (float(d["center"][0]), float(d["center"][1])),
                float(d["size"]),
                float(d["rotation"]),
                int(d["colour"]),
            )
            for d in shapes
        )
    )


def palette_info() -> dict[str, Any]:
    """The colours of both domains as `ground_truth.json` records them (0-255 RGB)."""
    return {
        "palette_A": [list(c) for c in PALETTE_A],
        "palette_B": [list(c) for c in PALETTE_B],
        "background_A": list(BACKGROUND_A),
        "background_B": list(BACKGROUND_B),
        "texture": "outline",
        "outline_width": OUTLINE_WIDTH,
        "shade": SHADE,
    }


def ground_truth_info(size: int, n_train: int, n_test: int, seed: int) -> dict:
    """The description written to ``ground_truth.json``: the layout, the colours and every test scene."""
    return {
        "task": "shapes",
        "size": size,
        "seed": seed,
        "counts": {"trainA": n_train, "trainB": n_train, "testA": n_test, "testB": n_test},
        "pairs": {"testA": "testB"},
        "convention": (
            "testA/NAME.png and testB/NAME.png show the same scene: each is the ground-truth "
            "translation of the other. trainA and trainB are unpaired (different scenes). "
            "test_scenes[i] describes the i-th test pair in file-name order (x right, y down, in [0, 1])."
        ),
        "domains": {
            "A": "two flat shapes (circles, squares, triangles), one red and one blue, on a mid-grey background",
            "B": "the same kind of scene on a blue-grey background, each shape with a dark outline inside its edge",
        },
        **palette_info(),
        "test_scenes": [scene_to_json(scene_for(seed, "test", "A", i)) for i in range(n_test)],
    }
