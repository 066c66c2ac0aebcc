"""The report reads its own numbers: where the model loses to a baseline it says so, and why."""

from __future__ import annotations

from ugatit.demo.report import headline_sentence, object_table, verdict, verdict_points, verdicts

ONE_COLOUR = {"colour_accuracy": 0.5, "foreground_l1": 0.18, "l1": 0.046}


def _row(**changes) -> dict:
    """A direction that learned the task: 64 shapes, every colour and outline right."""
    row = {
        "shapes": 64,
        "colour_correct": 64,
        "colour_accuracy": 1.0,
        "texture_right": 64,
        "texture_accuracy": 1.0,
        "foreground_l1": 0.07,
        "edge_l1": 0.10,
        "interior_l1": 0.05,
        "identity_foreground_l1": 0.134,
        "l1": 0.025,
        "colour_confusion": [[32, 0, 0], [0, 32, 0]],
    }
    return {**row, **changes}


def test_a_learned_direction_is_called_learned_with_the_baselines_it_beats():
    text = verdict("a2b", _row(), ONE_COLOUR)
    assert text.startswith("a2b learned the task")
    assert "nearer the truth than the untranslated input (foreground L1 0.070 against 0.134)" in text
    assert "than one colour for all (0.180)" in text and "further" not in text and "above" not in text


def test_worse_than_the_input_itself_names_the_edges_when_they_carry_the_error():
    """The first demo's numbers: colours and outline right, but blobs for shapes."""
    text = verdict("b2a", _row(foreground_l1=0.161, edge_l1=0.22, interior_l1=0.12), ONE_COLOUR)
    assert "learned the task" not in text
    assert "further from the truth than the untranslated input (foreground L1 0.161 against 0.134)" in text
    assert "the edges are blurred or out of place (error 0.220 along the edges against 0.120 further in" in text


def test_lost_colours_are_named_from_the_confusion_counts():
    row = _row(colour_correct=47, colour_accuracy=47 / 64, colour_confusion=[[30, 2, 0], [15, 17, 0]])
    row.update(foreground_l1=0.15, edge_l1=0.16, interior_l1=0.14)
    text = verdict("b2a", row, ONE_COLOUR)
    assert "b2a keeps 73% of the colours; the misses are mostly blue shapes that came out red (15 of 32 blue)" in text
    assert "17 shapes have the wrong colour" in text and "the edges are" not in text


def test_a_collapsed_translator_and_a_whole_image_l1_above_one_colour_for_all_are_called_out():
    row = _row(colour_correct=32, colour_accuracy=0.5, colour_confusion=[[32, 0, 0], [32, 0, 0]], l1=0.054)
    text = verdict("a2b", row, ONE_COLOUR)
    assert "no more shapes the right colour (50%) than painting every shape one colour (50%)" in text
    assert "has not learned to keep the colours" in text
    assert "over the whole image its L1 (0.0540) is above that of one colour for all (0.0460)" in text


def test_whole_image_l1_above_one_colour_for_all_with_the_colours_right_points_at_background_and_edges():
    text = verdict("a2b", _row(l1=0.05), ONE_COLOUR)
    assert "that baseline draws the background and every edge exactly, so the difference is there" in text


def test_missing_outlines_are_counted_in_the_words_of_each_direction():
    into = verdict("a2b", _row(texture_right=40, texture_accuracy=40 / 64), ONE_COLOUR)
    back = verdict("b2a", _row(texture_right=40, texture_accuracy=40 / 64), ONE_COLOUR)
    assert "24 of 64 shapes are left without their outline (less than half of its contrast" in into
    assert "24 of 64 shapes keep (some of) their outline" in back


def test_one_verdict_per_direction_and_the_headline_counts():
    final = {"a2b": _row(), "b2a": _row(texture_right=63)}
    assert [v[:3] for v in verdicts(final, {"a2b": ONE_COLOUR, "b2a": ONE_COLOUR})] == ["a2b", "b2a"]
    assert headline_sentence("b2a", final["b2a"], ONE_COLOUR).startswith(
        "b2a: 64 of 64 shapes the right colour, 63 of 64 with the outline removed; foreground L1 0.070 "
        "(the input itself: 0.134, every shape one colour: 0.180)"
    )


def _probe(kept: int, confusion=None) -> dict:
    return {"shapes": 64, "colour_correct": kept, "colour_accuracy": kept / 64, "colour_confusion": confusion}


def test_the_probe_with_the_colours_exchanged_says_whether_the_colours_are_copied_or_read_off_the_size():
    lead = "with the two colours exchanged (each blue shape the larger, which neither domain shows) it keeps "
    every = verdict("a2b", _row(), ONE_COLOUR, probe=_probe(64, [[32, 0, 0], [0, 32, 0]]))
    assert lead + "64 of 64 colours: it copies each shape's colour, it does not read it off the size" in every
    # Misses nearest the background are faint drawing, not the size rule; misses in the other colour are.
    faded = verdict("a2b", _row(), ONE_COLOUR, probe=_probe(50, [[20, 1, 11], [0, 30, 2]]))
    assert lead + "50 of 64 colours; 1 came out in the other colour (what reading the colour off the size " in faded
    assert "13 nearer the background than either colour (drawn too faintly): it does not read the colours off" in faded
    # So many faint shapes (more than a tenth) say what the model cannot draw: here red at the probe's size.
    assert "it has not learned to draw a red shape of a size no red shape has in either domain (11 of 32" in faded
    few_faded = verdict("a2b", _row(), ONE_COLOUR, probe=_probe(60, [[31, 0, 1], [1, 29, 2]]))
    assert "3 nearer the background than either colour (drawn too faintly): it copies the colours, it does" in few_faded
    by_size = verdict("a2b", _row(), ONE_COLOUR, probe=_probe(5, [[3, 29, 0], [27, 2, 3]]))
    assert "5 of 64 colours; 56 came out in the other colour" in by_size
    assert "3 nearer the background" in by_size and "its colours come at least in part from the sizes" in by_size
    # A model that does not keep the colours on the task's own scenes: the probe proves nothing more.
    lost = _row(colour_correct=32, colour_accuracy=0.5, colour_confusion=[[32, 0, 0], [32, 0, 0]])
    text = verdict("a2b", lost, ONE_COLOUR, probe=_probe(32, [[32, 0, 0], [32, 0, 0]]))
    assert text.endswith("it keeps 32 of 64 colours.") and "sizes" not in text


def test_the_report_lists_each_directions_points_under_its_headline():
    points = verdict_points("a2b", _row(texture_right=40, l1=0.05), ONE_COLOUR)
    assert (
        points[0]
        == "24 of 64 shapes are left without their outline (less than half of its contrast where the true outline is)"
    )
    assert len(points) == 3 and verdict("a2b", _row(texture_right=40, l1=0.05), ONE_COLOUR) == "; ".join(points) + "."


def test_the_object_table_puts_each_translator_in_a_row_with_its_probe_column():
    final = {"a2b": _row(), "b2a": _row(texture_right=60)}
    for row in final.values():
        row.update(identity_colour_correct=64, identity_texture_right=0)
    start = {d: _row(colour_correct=0, texture_right=0, foreground_l1=0.3) for d in final}
    one_colour = {d: {**_row(colour_correct=32), "probe_colour_correct": 32} for d in final}
    size_rule = {d: {**_row(foreground_l1=0.0), "probe_colour_correct": 0} for d in final}
    probe = {d: {**_probe(63), "identity_colour_correct": 64} for d in final}
    table = object_table(start, final, one_colour, size_rule, probe, iterations=1000)
    names = [row["translator"] for row in table]
    assert names == [
        "this model (1000 iterations)",
        "untrained (step 0)",
        "the input itself",
        "one colour for all",
        "colour by size (larger red)",
    ]
    model, _, itself, one, size = table
    assert model["right colour, a2b"] == "64 / 64" and model["outline removed, b2a"] == "60 / 64"
    assert model["right colour, colours exchanged, b2a"] == "63 / 64" and itself["outline drawn, a2b"] == "0 / 64"
    assert (
        itself["right colour, colours exchanged, a2b"] == "64 / 64"
        and one["right colour, colours exchanged, a2b"] == "32 / 64"
    )
    assert size["right colour, a2b"] == "64 / 64" and size["right colour, colours exchanged, a2b"] == "0 / 64"
    assert table[1]["right colour, colours exchanged, a2b"] == "-"  # not measured on the untrained model
