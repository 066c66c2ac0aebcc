"""Object metrics: colour accuracy, foreground L1 and texture, on hand-made images and on the task."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ugatit.demo import shapes as S
from ugatit.demo.truth import ShapesTruth
from ugatit.metrics.objects import TEXTURED_FROM, ObjectMeter, ObjectTruth, texture_strength

RED, BLUE, BACK = (1.0, 0.0, 0.0), (0.0, 0.0, 1.0), (1.0, 1.0, 1.0)


def _square(top: int, left: int, side: int = 4, size: int = 12) -> np.ndarray:
    mask = np.zeros((size, size))
    mask[top : top + side, left : left + side] = 1.0
    return mask


def _paint(image: np.ndarray, mask: np.ndarray, colour) -> np.ndarray:
    out = image.copy()
    out[mask > 0] = colour
    return out


def _meter() -> ObjectMeter:
    palette = np.array([RED, BLUE])
    return ObjectMeter({"A": palette, "B": palette}, {"A": np.array(BACK), "B": np.array(BACK)})


def test_colour_accuracy_and_foreground_l1_by_hand():
    one, two = _square(1, 1), _square(6, 6)
    shapes = [ObjectTruth(one, 0), ObjectTruth(two, 1)]
    blank = np.ones((12, 12, 3))
    target = _paint(_paint(blank, one, RED), two, BLUE)
    # Right colour in the first square; the second painted background (a missing shape is wrong).
    made = _paint(blank, one, RED)
    meter = _meter()
    meter.update("a2b", made, target, target, shapes)
    row = meter.compute()["a2b"]
    assert row["shapes"] == 2 and row["colour_correct"] == 1 and row["colour_accuracy"] == 0.5
    # Inside the masks: 16 pixels exact, 16 pixels off by (1, 1, 0) -> mean 2/3 each.
    assert row["foreground_l1"] == pytest.approx((16 * 0 + 16 * 2 / 3) / 32)


def test_partial_coverage_weights_the_error_and_edge_pixels_do_not_vote_on_colour():
    mask = _square(2, 2, side=6)
    mask[2, 2:8] = 0.5  # an antialiased top edge
    blank = np.ones((12, 12, 3))
    target = _paint(blank, mask, RED)
    made = target.copy()
    made[2, 2:8] = BLUE  # wrong only on the half-covered edge
    meter = _meter()
    meter.update("b2a", made, target, made, [ObjectTruth(mask, 0)])
    row = meter.compute()["b2a"]
    assert row["colour_correct"] == 1  # the fully covered interior decides
    error_on_edge = np.abs(np.array(BLUE) - np.array(RED)).mean()
    assert row["foreground_l1"] == pytest.approx(6 * 0.5 * error_on_edge / (30 + 3))


def _outlined(size: int = 12, width: int = 2, light: float = 1.0, dark: float = 0.4) -> np.ndarray:
    image = np.full((size, size, 3), dark)
    image[width:-width, width:-width] = light
    return image


def test_texture_strength_is_one_for_the_truth_zero_for_flat_or_noise_negative_inverted():
    mask = _square(0, 0, side=12)
    truth = _outlined()
    assert texture_strength(truth, truth, mask) == pytest.approx(1.0)
    assert texture_strength(truth * 0.5 + 0.2, truth, mask) == pytest.approx(0.5)  # half the contrast
    assert texture_strength(np.full((12, 12, 3), 0.3), truth, mask) == 0.0  # a flat fill
    assert texture_strength(1.4 - truth, truth, mask) == pytest.approx(-1.0)  # light outline, dark inside
    noise = np.random.default_rng(0).random((12, 12, 1)).repeat(3, axis=2)
    assert abs(texture_strength(noise, truth, mask)) < 0.25  # uncorrelated: slope ~N(0, 0.08) here, so 3 sigma
    # Horizontal stripes are a texture too, and one in the wrong place is no texture.
    striped = np.zeros((12, 12, 3))
    striped[::2] = 1.0
    assert texture_strength(striped, striped, mask) == pytest.approx(1.0)
    assert texture_strength(np.roll(striped, 1, axis=0), striped, mask) == pytest.approx(-1.0)
    assert texture_strength(striped.transpose(1, 0, 2), striped, mask) == pytest.approx(0.0)
    assert math.isnan(texture_strength(truth, np.ones((12, 12, 3)), mask))  # a flat truth has none


def test_the_outline_must_appear_going_into_b_and_vanish_going_out():
    mask = _square(0, 0, side=12)
    outlined = _outlined()
    flat = np.full((12, 12, 3), 0.7)
    shapes = [ObjectTruth(mask, 0)]
    meter = _meter()
    meter.update("a2b", outlined, outlined, outlined, shapes)  # outline drawn: right
    meter.update("a2b", flat, outlined, outlined, shapes)  # outline missing: wrong
    meter.update("b2a", flat, flat, outlined, shapes)  # outline removed: right
    meter.update("b2a", outlined, flat, outlined, shapes)  # outline left in: wrong
    table = meter.compute()
    assert table["a2b"]["texture_right"] == 1 and table["a2b"]["texture_strength"] == pytest.approx(0.5)
    assert table["b2a"]["texture_right"] == 1 and table["b2a"]["texture_accuracy"] == 0.5
    assert 0 < TEXTURED_FROM < 1


def test_the_error_is_split_between_the_edges_and_the_interior_and_colours_are_counted():
    mask = _square(2, 2, side=8)  # 28 edge pixels, 36 interior ones
    target = _paint(np.ones((12, 12, 3)), mask, RED)
    made = target.copy()
    made[2:10, 2] = BLUE  # wrong along the left edge only
    meter = _meter()
    meter.update("a2b", made, target, target, [ObjectTruth(mask, 0)])
    meter.update("a2b", _paint(target, mask, BLUE), target, target, [ObjectTruth(mask, 0)])  # all blue
    row = meter.compute()["a2b"]
    error = np.abs(np.array(BLUE) - np.array(RED)).mean()
    assert row["interior_l1"] == pytest.approx(36 * error / 72)
    assert row["edge_l1"] == pytest.approx((8 + 28) * error / 56)
    assert row["foreground_l1"] == pytest.approx((8 + 64) * error / 128)
    # One red shape came out red (the left edge does not vote), one blue; none as background.
    assert row["colour_confusion"] == [[1, 1, 0], [0, 0, 0]]


def test_no_shapes_no_row_and_bad_input_is_refused():
    meter = _meter()
    meter.update("a2b", np.ones((4, 4, 3)), np.ones((4, 4, 3)), np.ones((4, 4, 3)), [])
    assert meter.compute() == {}
    with pytest.raises(ValueError):
        meter.update("x2y", np.ones((4, 4, 3)), np.ones((4, 4, 3)), np.ones((4, 4, 3)), [])
    with pytest.raises(ValueError):
        meter.update("a2b", np.ones((4, 4, 3)), np.ones((5, 5, 3)), np.ones((4, 4, 3)), [])


def _unit(image) -> np.ndarray:
    return np.asarray(image, dtype=np.float64) / 255


@pytest.mark.parametrize("size", [32, 64])
def test_the_ground_truth_scores_perfectly_and_the_input_itself_does_not(size):
    """On the real task, the ground truth is right on every shape at any size; the untranslated input
    has the right colours (the task keeps them) but misses the outlines and the background."""
    count = 12
    truth = ShapesTruth.of_task(seed=3, count=count)
    test_a = S.ShapesDataset("A", "test", size, count, seed=3)
    test_b = S.ShapesDataset("B", "test", size, count, seed=3)
    perfect, identity = truth.meter(), truth.meter()
    for i in range(count):
        a, b = _unit(test_a[i]), _unit(test_b[i])
        objects = truth.objects(i, size)
        perfect.update("a2b", b, b, b, objects)
        perfect.update("b2a", a, a, b, objects)
        identity.update("a2b", a, b, b, objects)
        identity.update("b2a", b, a, b, objects)
    for direction in ("a2b", "b2a"):
        right, wrong = perfect.compute()[direction], identity.compute()[direction]
        assert right["colour_accuracy"] == 1.0 and right["texture_accuracy"] == 1.0 and right["foreground_l1"] == 0.0
        assert wrong["texture_accuracy"] == 0.0 and wrong["foreground_l1"] > 0.1  # the dark outlines
        assert wrong["colour_accuracy"] == 1.0
        assert right["shapes"] == sum(len(s.shapes) for s in truth.scenes) and not math.isnan(right["texture_strength"])
