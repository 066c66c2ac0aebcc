"""Heatmaps, grids, SVG charts and HTML pages without plotting libraries."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch

from ugatit.viz.html import Markup, Section, bullets, escape, figure, html_page, image, table
from ugatit.viz.images import heatmap_to_rgb, image_grid, jet, labelled_grid, overlay
from ugatit.viz.plots import svg_line_plot

SVG = "{http://www.w3.org/2000/svg}"


def test_jet_endpoints_and_middle():
    colours = jet(np.array([0.0, 0.5, 1.0]))
    assert colours.dtype == np.uint8
    assert colours[0].tolist() == [0, 0, 128]  # dark blue
    assert colours[1].tolist() == [128, 255, 128]  # green-ish middle
    assert colours[2].tolist() == [128, 0, 0]  # dark red
    # Out-of-range values are clipped to the ends.
    assert jet(np.array([-3.0, 7.0])).tolist() == [[0, 0, 128], [128, 0, 0]]


def test_heatmap_is_normalised_resized_and_coloured():
    heat = np.array([[0.0, 1.0], [2.0, 4.0]], dtype=np.float32) + 10  # min-max removes the offset
    rgb = heatmap_to_rgb(heat, 8)
    assert rgb.shape == (8, 8, 3) and rgb.dtype == np.uint8
    assert rgb[0, 0].tolist() == [0, 0, 128]  # the minimum's corner
    assert rgb[-1, -1].tolist() == [128, 0, 0]  # the maximum's corner
    # (1, H, W) tensors (the model's attention output) and (H, W) rectangles both work.
    rect = heatmap_to_rgb(torch.rand(1, 4, 4), (6, 10))
    assert rect.shape == (6, 10, 3)


def test_constant_heatmap_does_not_divide_by_zero():
    rgb = heatmap_to_rgb(np.full((3, 3), 5.0), 4)
    assert (rgb == jet(np.zeros(1))[0]).all()


def test_heatmap_rejects_batches():
    with pytest.raises(ValueError):
        heatmap_to_rgb(np.zeros((2, 3, 3)), 4)


def test_overlay_blends():
    img = np.zeros((2, 2, 3), np.uint8)
    heat = np.full((2, 2, 3), 200, np.uint8)
    assert (overlay(img, heat, 0.5) == 100).all()
    assert (overlay(img, heat, 0.0) == 0).all()
    assert overlay(img, heat).dtype == np.uint8
    with pytest.raises(ValueError):
        overlay(img, np.zeros((3, 3, 3), np.uint8))


def test_grid_size_arithmetic_and_placement():
    cell = np.full((10, 12, 3), 7, np.uint8)
    grid = image_grid([[cell] * 4] * 3, pad=2)
    assert grid.size == (4 * 12 + 5 * 2, 3 * 10 + 4 * 2)  # (width, height)
    pixels = np.asarray(grid)
    assert pixels[2, 2].tolist() == [7, 7, 7]  # first cell starts after the padding
    assert pixels[0, 0].tolist() == [255, 255, 255]
    # The second cell of the second row starts at x = 2 + 12 + 2, y = 2 + 10 + 2.
    assert pixels[14, 16].tolist() == [7, 7, 7] and pixels[13, 16].tolist() == [255, 255, 255]


def test_grid_mixes_sizes_greyscale_and_gaps():
    big = np.zeros((8, 8, 3), np.uint8)
    small = np.zeros((4, 6), np.uint8)  # greyscale becomes RGB
    grid = image_grid([[big, small], [None, small, big]], pad=1)
    # Columns: 8, 6, 8 wide; rows: 8 and 8 tall.
    assert grid.size == (8 + 6 + 8 + 4, 8 + 8 + 3)
    assert grid.mode == "RGB"
    with pytest.raises(ValueError):
        image_grid([[np.zeros((4, 4, 3), np.float32)]])


def test_svg_is_well_formed_and_names_series():
    series = {
        "loss <G>": [(i, 1.0 / (i + 1)) for i in range(50)],
        "loss D&D": [(i, 0.5 + 0.01 * i) for i in range(50)],
    }
    svg = svg_line_plot(series, title="Losses & more", xlabel="iteration", ylabel="loss")
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "loss <G>" in texts and "loss D&D" in texts and "Losses & more" in texts
    assert len(list(root.iter(f"{SVG}polyline"))) == 2
    # Every drawn point lies inside the declared canvas.
    for line in root.iter(f"{SVG}polyline"):
        for pair in line.get("points").split():
            x, y = map(float, pair.split(","))
            assert 0 <= x <= 640 and 0 <= y <= 360


def test_svg_log_axis_skips_non_positive_and_non_finite_points():
    series = {"kid": [(0, 1e-3), (10, 0.0), (20, 1e-2), (30, math.nan), (40, 1e-1), (50, 1.0)]}
    svg = svg_line_plot(series, log_y=True, width=300, height=200)
    root = ET.fromstring(svg)
    # The zero and the NaN break the line into three single points (drawn as markers) and a pair.
    assert len(list(root.iter(f"{SVG}polyline"))) == 1
    assert len(list(root.iter(f"{SVG}circle"))) == 4
    labels = {t.text for t in root.iter(f"{SVG}text")}
    assert {"0.1", "1"} <= labels


def test_svg_fixed_y_range_shows_exactly_that_axis():
    """A percentage that reaches 0 and 100 gets a 0-100 axis, not the padded -50..150 of free limits."""
    series = {"right colour (%)": [(0, 0.0), (1, 38.0), (2, 100.0)]}
    free = {t.text for t in ET.fromstring(svg_line_plot(series)).iter(f"{SVG}text")}
    fixed = {t.text for t in ET.fromstring(svg_line_plot(series, y_range=(0, 100))).iter(f"{SVG}text")}
    assert "-50" in free and "150" in free
    assert {"0", "100"} <= fixed and "-50" not in fixed and "150" not in fixed


def test_svg_without_data_is_still_valid():
    root = ET.fromstring(svg_line_plot({}, title="empty"))
    assert "no data" in [t.text for t in root.iter(f"{SVG}text")]
    root = ET.fromstring(svg_line_plot({"flat": [(5, 2.0)]}))
    assert len(list(root.iter(f"{SVG}circle"))) == 1


def test_html_escapes_text_but_not_markup():
    page = html_page(
        "A <b> & C",
        [
            ("Scores <1>", ['x < y & "z"']),
            Section(
                "Samples",
                [figure("samples/a b.png", caption="<in>"), image("http://e.x/p.png?a=1&b=2")],
            ),
            ("Table", table([{"direction": "a2b", "l1": 0.123456, "note": "<tag>"}])),
            ("Chart", svg_line_plot({"s": [(0, 1), (1, 2)]})),
        ],
    )
    assert "<title>A &lt;b&gt; &amp; C</title>" in page
    assert "<h2>Scores &lt;1&gt;</h2>" in page
    assert "<p>x &lt; y &amp; &quot;z&quot;</p>" in page
    assert 'src="samples/a%20b.png"' in page  # relative paths are URL-quoted
    assert 'src="http://e.x/p.png?a=1&amp;b=2"' in page
    assert "<td>0.1235</td>" in page and "<td>&lt;tag&gt;</td>" in page
    assert "<figcaption>&lt;in&gt;</figcaption>" in page
    assert "<svg" in page and "<b>" not in page
    assert page.startswith("<!DOCTYPE html>")


def test_escape_leaves_markup_alone():
    assert escape("<a>") == "&lt;a&gt;"
    assert escape(Markup("<a>")) == "<a>"


def test_bullets_escape_text_and_keep_markup():
    assert bullets(["x < y", Markup("<b>z</b>")]) == "<ul><li>x &lt; y</li><li><b>z</b></li></ul>"


def test_labelled_grid_scales_small_cells_and_captions_each_column():
    cells = [[np.full((32, 32, 3), v, np.uint8) for v in (0, 200)]] * 2
    grid = np.asarray(labelled_grid(cells, ["input", "output"], min_cell=128))
    header = 22
    assert grid.shape == (header + 2 * 128 + 3 * 2, 2 * 128 + 3 * 2, 3)
    # Whole-factor nearest-neighbour scaling: every cell is still flat.
    assert (grid[header + 2 : header + 130, 2:130] == 0).all() and (
        grid[header + 2 : header + 130, 132:260] == 200
    ).all()
    # A caption is drawn above each column: dark text pixels in each half of the header.
    for left, right in ((0, 130), (130, 262)):
        assert (grid[:header, left:right] < 128).any()
    # A grid already readable keeps its size.
    big = [[np.zeros((256, 256, 3), np.uint8)]]
    assert np.asarray(labelled_grid(big, ["x"])).shape == (header + 256 + 4, 256 + 4, 3)


def test_identical_series_are_dashed_in_turns_so_both_stay_visible():
    flat = [(0, 0.7), (100, 0.7)]
    svg = svg_line_plot({"identity a2b": flat, "identity b2a": list(flat), "L1": [(0, 0.5), (100, 0.1)]})
    groups = re.findall(r'<g stroke="(#[0-9A-Fa-f]{6})" fill="none" stroke-width="1.5"([^>]*)>', svg)
    assert len(groups) == 3
    (_, first), (_, second), (_, third) = groups
    # Both coinciding lines get the same dash pattern, shifted by one dash; the other line stays solid.
    assert 'stroke-dasharray="6 6"' in first and 'stroke-dasharray="6 6"' in second
    assert 'stroke-dashoffset="0"' in first and 'stroke-dashoffset="-6"' in second
    assert "dasharray" not in third
