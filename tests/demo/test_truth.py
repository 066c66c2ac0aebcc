"""The demo's yardstick: the ground truth scores perfectly, and a translator that paints every shape one
colour scores exactly the share of shapes that have that colour, so the report's "one colour for all"
baseline is the most a collapsed model can reach."""

from __future__ import annotations

from collections import Counter

import pytest

from ugatit.demo.shapes import make_shapes
from ugatit.demo.truth import ShapesTruth, collapsed_baseline, size_baseline

SIZE, COUNT, SEED = 32, 12, 3


@pytest.fixture(scope="module")
def task():
    data = make_shapes(size=SIZE, n_train=0, n_test=COUNT, seed=SEED)
    return ShapesTruth.of_task(SEED, COUNT), data["testA"], data["testB"]


def test_one_colour_for_all_scores_the_share_of_its_colour(task):
    truth, test_a, test_b = task
    colours = Counter(shape.color for scene in truth.scenes for shape in scene.shapes)
    total = sum(colours.values())
    best = collapsed_baseline(truth, test_a, test_b, SIZE)
    for direction in ("a2b", "b2a"):
        row = best[direction]
        assert row["shapes"] == total
        assert row["colour_correct"] == colours[row["colour"]]  # right for its own colour's shapes only
        assert row["colour_correct"] == max(colours.values()) < total
        assert row["foreground_l1"] > 0.05  # wrong colours inside the other shapes


def test_the_ground_truth_itself_is_right_everywhere(task):
    truth, test_a, test_b = task
    import torch

    from ugatit.data.transforms import eval_transform

    batch = lambda images: torch.stack([eval_transform(i, SIZE) for i in images])
    score = truth.score()
    score.update("a2b", 0, batch(test_a), batch(test_b), batch(test_b))
    score.update("b2a", 0, batch(test_b), batch(test_a), batch(test_a))
    for direction, row in score.compute().items():
        assert row["colour_accuracy"] == 1.0 and row["texture_accuracy"] == 1.0, direction
        assert row["foreground_l1"] < 1e-6
        # The input offered as the answer keeps the colours, as it should, but not the outlines.
        assert row["identity_colour_accuracy"] == 1.0 and row["identity_texture_accuracy"] == 0.0


def test_colour_by_size_is_the_ground_truth_here_and_wrong_everywhere_with_the_colours_exchanged(task):
    """Red shapes are always the larger, so the test scenes cannot tell "copy the colour" from "colour by
    size"; the same scenes with the colours exchanged can: the size rule gets every colour wrong there,
    the ground truth of the exchanged scenes keeps them all, and one colour for all still gets half."""
    truth, test_a, test_b = task
    by_size = size_baseline(truth, test_a, test_b, SIZE)
    exchanged = truth.exchanged()
    assert [[s.color for s in sc.shapes] for sc in exchanged.scenes] == [
        [1 - s.color for s in sc.shapes] for sc in truth.scenes
    ]
    one_colour = collapsed_baseline(exchanged, exchanged.images("A", SIZE), exchanged.images("B", SIZE), SIZE)
    for direction in ("a2b", "b2a"):
        row = by_size[direction]
        assert row["colour_accuracy"] == 1.0 and row["foreground_l1"] == 0.0 and row["l1"] == 0.0
        assert row["probe_colour_correct"] == 0 and row["probe_colour_accuracy"] == 0.0
        assert one_colour[direction]["colour_accuracy"] == 0.5  # one shape of each colour in every image
