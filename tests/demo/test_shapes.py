"""The shapes task: deterministic, unpaired train data, exact test pairs, and a real A/B difference."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ugatit.demo.shapes import (
    BACKGROUND_A,
    BACKGROUND_B,
    KINDS,
    MIN_OUTLINE_PX,
    OUTLINE_WIDTH,
    PALETTE,
    SHADE,
    Scene,
    ShapesDataset,
    inside_distance,
    make_shapes,
    outline_width,
    render,
    render_mask,
    scene_for,
)


def _png_bytes(image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _digest(images) -> str:
    h = hashlib.sha256()
    for image in images:
        h.update(_png_bytes(image))
    return h.hexdigest()


def _foreground(image, background) -> np.ndarray:
    """Pixels clearly different from the domain's background colour."""
    diff = np.abs(np.asarray(image, dtype=np.int16) - np.asarray(background, dtype=np.int16))
    return diff.max(axis=2) > 12


def test_same_seed_same_bytes_different_seed_differs():
    first = make_shapes(size=32, n_train=6, n_test=3, seed=7)
    again = make_shapes(size=32, n_train=6, n_test=3, seed=7)
    other = make_shapes(size=32, n_train=6, n_test=3, seed=8)
    for key in ("trainA", "trainB", "testA", "testB"):
        assert len(first[key]) == (6 if key.startswith("train") else 3)
        assert _digest(first[key]) == _digest(again[key])
        assert _digest(first[key]) != _digest(other[key])


def test_more_images_do_not_change_the_first_ones():
    few = ShapesDataset("A", "train", size=32, count=3, seed=1)
    many = ShapesDataset("A", "train", size=32, count=10, seed=1)
    assert [few.scene(i) for i in range(3)] == [many.scene(i) for i in range(3)]


def test_images_are_rgb_of_the_requested_size():
    image = ShapesDataset("B", "test", size=48, count=1)[0]
    assert image.mode == "RGB" and image.size == (48, 48)


def test_every_scene_has_two_whole_shapes_apart_and_every_kind_is_common():
    size = 128
    kinds = []
    for i in range(50):
        scene = scene_for(0, "train", "A", i)
        assert len(scene.shapes) == 2
        masks = [render_mask(Scene((shape,)), size) for shape in scene.shapes]
        for shape, mask in zip(scene.shapes, masks):
            # Whole: all of its area is in the image (up to the antialiasing, ~1e-3 of it here), and it
            # keeps 2 px (the 2% margin) off the border.
            assert mask.sum() / size**2 == pytest.approx(np.pi * shape.size**2, rel=0.01)
            assert not mask[:2].any() and not mask[-2:].any() and not mask[:, :2].any() and not mask[:, -2:].any()
        assert not ((masks[0] > 0) & (masks[1] > 0)).any()
        kinds += [shape.kind for shape in scene.shapes]
    # Each kind is drawn with 1/3 (triangles fit least easily: 29% of 2000 shapes with seed 0).
    assert all(kinds.count(kind) > 0.2 * len(kinds) for kind in KINDS), kinds


def test_train_domains_are_unpaired():
    a = ShapesDataset("A", "train", size=32, count=20, seed=0)
    b = ShapesDataset("B", "train", size=32, count=20, seed=0)
    scenes_a = {a.scene(i) for i in range(20)}
    scenes_b = {b.scene(i) for i in range(20)}
    assert not scenes_a & scenes_b
    # Nor do the silhouettes line up, which would leak the pairing through the images.
    masks_a = [render_mask(a.scene(i), 32) > 0.5 for i in range(20)]
    masks_b = [render_mask(b.scene(i), 32) > 0.5 for i in range(20)]
    assert sum(np.array_equal(ma, mb) for ma, mb in zip(masks_a, masks_b)) == 0


def test_test_pairs_show_the_same_scene():
    a = ShapesDataset("A", "test", size=64, count=8, seed=3)
    b = ShapesDataset("B", "test", size=64, count=8, seed=3)
    for i in range(8):
        assert a.scene(i) == b.scene(i)
        fg_a = _foreground(a[i], BACKGROUND_A)
        fg_b = _foreground(b[i], BACKGROUND_B)
        truth = render_mask(a.scene(i), 64) > 0.5
        iou = (fg_a & fg_b).sum() / (fg_a | fg_b).sum()
        assert iou > 0.93, f"scene {i}: silhouettes differ between domains (IoU {iou:.3f})"
        # Away from antialiased edges the silhouettes agree exactly with the geometry.
        assert np.array_equal(fg_a[truth], np.ones(truth.sum(), bool))
        assert np.array_equal(fg_b[truth], np.ones(truth.sum(), bool))
        assert not (fg_a & (render_mask(a.scene(i), 64) == 0)).any()


def _luma(image) -> np.ndarray:
    return np.asarray(image, dtype=np.float64) @ np.array([0.299, 0.587, 0.114])


def test_domain_b_is_outlined_on_another_background():
    """B draws each shape's outline, a band OUTLINE_WIDTH wide inside its edge, in SHADE x its colour;
    further in, and everywhere in A, the shape is its flat colour."""
    size = 64
    width = outline_width(size)
    a = ShapesDataset("A", "test", size=size, count=10, seed=0)
    b = ShapesDataset("B", "test", size=size, count=10, seed=0)
    coords = (np.arange(size) + 0.5) / size
    for i in range(10):
        pixels_a, pixels_b = np.asarray(a[i], dtype=np.float64), np.asarray(b[i], dtype=np.float64)
        for shape in a.scene(i).shapes:
            distance = inside_distance(shape, coords[None, :], coords[:, None])
            colour = np.asarray(PALETTE[shape.color], dtype=np.float64)
            # Pixel centres a pixel clear of every boundary (antialiased pixels mix two colours).
            band = (distance > 0.75 / size) & (distance < width - 0.75 / size)
            core = distance > width + 0.75 / size
            assert band.sum() > 20 and core.sum() > 20
            assert np.abs(pixels_b[band] - colour * SHADE).max() <= 1
            assert np.abs(pixels_b[core] - colour).max() <= 1
            assert np.abs(pixels_a[band | core] - colour).max() <= 1
    # Grey versus blue-grey: B's images are darker and bluer.
    mean_a = np.mean([np.asarray(a[i], dtype=np.float64).reshape(-1, 3).mean(0) for i in range(10)], axis=0)
    mean_b = np.mean([np.asarray(b[i], dtype=np.float64).reshape(-1, 3).mean(0) for i in range(10)], axis=0)
    assert mean_a[0] - mean_b[0] > 20 and (mean_b[2] - mean_b[0]) - (mean_a[2] - mean_a[0]) > 15


def test_the_outline_keeps_its_width_in_pixels_at_small_sizes():
    assert outline_width(48) * 48 == pytest.approx(OUTLINE_WIDTH * 48)
    assert outline_width(16) * 16 == pytest.approx(MIN_OUTLINE_PX)


def test_render_rejects_unknown_domain():
    with pytest.raises(ValueError):
        render(scene_for(0, "test", "A", 0), "C", 32)  # type: ignore[arg-type]


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    # Run the package from this checkout even when it is not installed.
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-m", "ugatit", "make-dataset", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_cli_writes_layout_and_refuses_a_non_empty_folder(tmp_path):
    out = tmp_path / "shapes"
    done = _cli("shapes", str(out), "--size", "32", "--count", "5", "--test-count", "3")
    assert done.returncode == 0, done.stderr
    for name, count in (("trainA", 5), ("trainB", 5), ("testA", 3), ("testB", 3)):
        files = sorted(p.name for p in (out / name).iterdir())
        assert files == [f"{i:04d}.png" for i in range(1, count + 1)]
    info = json.loads((out / "ground_truth.json").read_text())
    assert info["task"] == "shapes" and info["size"] == 32 and info["seed"] == 0
    assert info["counts"] == {"trainA": 5, "trainB": 5, "testA": 3, "testB": 3}
    assert info["pairs"] == {"testA": "testB"}
    # The files on disk are the in-memory API's images.
    expected = make_shapes(size=32, n_train=5, n_test=3, seed=0)
    from PIL import Image

    for name in ("trainB", "testA"):
        for i, image in enumerate(expected[name]):
            assert np.array_equal(np.asarray(Image.open(out / name / f"{i + 1:04d}.png")), np.asarray(image))

    refused = _cli("shapes", str(out), "--size", "32", "--count", "2")
    assert refused.returncode == 2
    assert "Traceback" not in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert "--force" in refused.stderr

    # --force rewrites the split folders, so a smaller dataset leaves no stale images behind.
    forced = _cli("shapes", str(out), "--size", "32", "--count", "2", "--test-count", "1", "--force")
    assert forced.returncode == 0, forced.stderr
    assert len(list((out / "trainA").iterdir())) == 2
    assert len(list((out / "testB").iterdir())) == 1


def test_one_shape_of_each_colour_kept_across_domains_red_larger():
    """What makes keeping the colours the one answer (docs/demo.md): the same palette in both domains,
    one shape of each colour in every image (losing a colour is wrong in every image), the red one
    larger (swapping the colours is wrong in every image), colours independent of the kind; and every
    colour contrasts with both backgrounds with its own signs (one channel above, two below)."""
    from collections import Counter

    from ugatit.demo.shapes import COLOUR_NAMES, PALETTE_A, PALETTE_B, SIZE_RANGES

    assert PALETTE_A == PALETTE_B == PALETTE and len(COLOUR_NAMES) == len(PALETTE)
    for background in (BACKGROUND_A, BACKGROUND_B):
        signs = {tuple(np.sign(np.subtract(colour, background))) for colour in PALETTE}
        assert len(signs) == len(PALETTE) and all(sorted(s) == [-1, -1, 1] for s in signs)
    size, count = 48, 300
    a = ShapesDataset("A", "train", size=size, count=count, seed=4)
    b = ShapesDataset("B", "train", size=size, count=count, seed=4)
    for data in (a, b):
        scenes = [data.scene(i) for i in range(count)]
        assert all(sorted(shape.color for shape in s.shapes) == list(range(len(PALETTE))) for s in scenes)
        for scene in scenes:
            red, blue = sorted(scene.shapes, key=lambda shape: shape.color)
            assert (
                SIZE_RANGES[0][0] <= red.size <= SIZE_RANGES[0][1]
                and SIZE_RANGES[1][0] <= blue.size <= SIZE_RANGES[1][1]
            )
            assert red.size > blue.size
        shapes = [shape for scene in scenes for shape in scene.shapes]
        # Every kind comes in every colour, about equally often (300 draws of 1/6: 50 +- 7 each).
        pairs = Counter((shape.kind, shape.color) for shape in shapes)
        assert set(pairs) == {(k, c) for k in KINDS for c in range(len(PALETTE))}
        assert min(pairs.values()) > 25, pairs
        # Which colour comes first is drawn too: a colour is not tied to a place in the draw.
        assert 0.3 < np.mean([s.shapes[0].color for s in scenes]) < 0.7
    # A test pair: outside the shapes, each domain's background; inside, B's inside is A's colour.
    ta = ShapesDataset("A", "test", size=size, count=10, seed=4)
    tb = ShapesDataset("B", "test", size=size, count=10, seed=4)
    for i in range(10):
        mask = render_mask(ta.scene(i), size)
        pixels_a, pixels_b = np.asarray(ta[i], dtype=np.int16), np.asarray(tb[i], dtype=np.int16)
        assert (pixels_a[mask == 0] == BACKGROUND_A).all() and (pixels_b[mask == 0] == BACKGROUND_B).all()
        same = (np.abs(pixels_b - pixels_a) <= 1).all(axis=2)
        assert 0.3 < same[mask == 1].mean() < 0.8
