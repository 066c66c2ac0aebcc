"""Object metrics: colour accuracy, foreground L1 and stripes, on hand-made images and on the task."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ugatit.demo import shapes as S
from ugatit.demo.truth import ShapesTruth
from ugatit.metrics.objects import STRIPED_FROM, ObjectMeter, ObjectTruth, stripe_contrast

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


def test_stripe_contrast_sees_horizontal_stripes_not_vertical_ones_or_noise():
    mask = _square(0, 0, side=12)
    rows = np.zeros((12, 12, 3))
    rows[::2] = 1.0  # horizontal stripes, 1 px
    assert stripe_contrast(rows, mask) == pytest.approx(1.0)
    assert stripe_contrast(rows.transpose(1, 0, 2), mask) == 0.0  # vertical stripes
    assert stripe_contrast(np.full((12, 12, 3), 0.3), mask) == 0.0
    noise = np.random.default_rng(0).random((12, 12, 1)).repeat(3, axis=2)
    assert stripe_contrast(noise, mask) < 0.1  # isotropic: vertical and horizontal cancel


def test_stripes_must_appear_going_into_b_and_vanish_going_out():
    mask = _square(0, 0, side=12)
    striped = np.zeros((12, 12, 3))
    striped[::2] = 1.0
    flat = np.full((12, 12, 3), 0.5)
    shapes = [ObjectTruth(mask, 0)]
    meter = _meter()
    meter.update("a2b", striped, striped, striped, shapes)  # stripes kept: right
    meter.update("a2b", flat, striped, striped, shapes)  # stripes missing: wrong
    meter.update("b2a", flat, flat, striped, shapes)  # stripes removed: right
    meter.update("b2a", striped, flat, striped, shapes)  # stripes left in: wrong
    table = meter.compute()
    assert table["a2b"]["stripes_right"] == 1 and table["a2b"]["stripe_strength"] == pytest.approx(0.5)
    assert table["b2a"]["stripes_right"] == 1 and table["b2a"]["stripe_accuracy"] == 0.5
    assert 0 < STRIPED_FROM < 1


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
    has the right colours (the task keeps them) but misses the stripes and the background."""
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
        assert right["colour_accuracy"] == 1.0 and right["stripe_accuracy"] == 1.0 and right["foreground_l1"] == 0.0
        assert wrong["stripe_accuracy"] == 0.0 and wrong["foreground_l1"] > 0.1  # the dark stripes
        assert wrong["colour_accuracy"] == 1.0
        assert right["shapes"] == sum(len(s.shapes) for s in truth.scenes) and not math.isnan(right["stripe_strength"])
