"""The demo's report: what a person reads first (did the shapes come out right?), then the evidence.

report.html leads with one sentence per direction ("a2b: 46 of 48 shapes the right colour, 44 of 48
outlined"), then what those numbers say (`verdicts`: where the model beats a baseline, where it does
not and why), then the object metrics next to the two baselines a reader needs to judge them (the input
itself, and a translator that paints every shape one colour), the gallery, the whole-image metrics, the
curves and the latest sample grid.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..training.run_dir import LOG_FILE
from ..viz import html
from ..viz.plots import svg_line_plot
from .shapes import COLOUR_NAMES

#: What each direction has to do to the outline, in the words of the headline.
TEXTURE_DONE = {"a2b": "outlined", "b2a": "with the outline removed"}
#: Below this share of shapes right (colour, outline), the verdict says what went wrong.
LEARNED = 0.9
#: The edges "carry" the error when the edge band's L1 is this many times the interior's.
EDGE_DOMINATES = 1.5
#: Gallery images are shown at least this wide (CSS px); 48-px outputs are too small to judge.
GALLERY_WIDTH = 128


def headline_sentence(direction: str, row: dict[str, float], collapsed: dict[str, float] | None = None) -> str:
    """ "a2b: 46 of 48 shapes the right colour, 44 of 48 outlined; foreground L1 ..." for one direction."""
    n = int(row["shapes"])
    baselines = f"the input itself: {row['identity_foreground_l1']:.3f}"
    if collapsed is not None:
        baselines += f", every shape one colour: {collapsed['foreground_l1']:.3f}"
    return (
        f"{direction}: {int(row['colour_correct'])} of {n} shapes the right colour, "
        f"{int(row['texture_right'])} of {n} {TEXTURE_DONE[direction]}; "
        f"foreground L1 {row['foreground_l1']:.3f} ({baselines})"
    )


def headline(final: dict[str, dict[str, float]], collapsed: dict[str, dict[str, float]]) -> list[str]:
    """One sentence per direction: shapes in the right colour, outline right, foreground L1 vs baselines."""
    return [headline_sentence(d, row, collapsed[d]) for d, row in final.items()]


def _colour_misses(row: dict[str, Any], names: Sequence[str]) -> str:
    """ "mostly blue shapes that came out red (5 of 32 blue)": the commonest wrong colour, from the
    confusion counts (rows: true colour; columns: the palette, then the background)."""
    confusion = row.get("colour_confusion")
    if not confusion:
        return ""
    labels = [*names, "background"]
    worst, true, chosen = max(
        (count, k, j) for k, counts in enumerate(confusion) for j, count in enumerate(counts) if j != k
    )
    if worst == 0:
        return ""
    made = "missing, painted as background" if chosen == len(names) else f"{labels[chosen]}"
    return f"mostly {labels[true]} shapes that came out {made} ({worst} of {sum(confusion[true])} {labels[true]})"


def verdict_points(
    direction: str,
    row: dict[str, Any],
    collapsed: dict[str, Any],
    names: Sequence[str] = ("red", "blue"),
    probe: dict[str, Any] | None = None,
) -> list[str]:
    """What one direction's numbers say against the baselines, one point each, in words: where the
    model is worse than doing nothing (the input itself) or than a translator that paints every shape
    one colour, it says so and, from the numbers, why. With `probe` (the object metrics of the test
    scenes with the colours exchanged), whether the model copies the colours or reads them off the sizes."""
    n = int(row["shapes"])
    colour, one_colour = row["colour_accuracy"], collapsed["colour_accuracy"]
    colour_misses = n - int(row["colour_correct"])
    texture_misses = n - int(row["texture_right"])
    into = direction == "a2b"  # into the outlined domain
    said: list[str] = []
    if colour <= one_colour:
        said.append(
            f"{direction} gets no more shapes the right colour ({colour:.0%}) than painting every shape one "
            f"colour ({one_colour:.0%}): it has not learned to keep the colours"
        )
    elif colour < LEARNED:
        said.append(f"{direction} keeps {colour:.0%} of the colours; the misses are {_colour_misses(row, names)}")
    if texture_misses > (1 - LEARNED) * n:
        said.append(
            f"{texture_misses} of {n} shapes are left without their outline (less than half of its contrast "
            "where the true outline is)"
            if into
            else f"{texture_misses} of {n} shapes keep (some of) their outline"
        )
    fg, fg_input = row["foreground_l1"], row["identity_foreground_l1"]
    if fg >= fg_input:
        why = []
        if colour_misses > (1 - LEARNED) * n:
            why.append(f"{colour_misses} shapes have the wrong colour")
        if texture_misses > (1 - LEARNED) * n:
            why.append(f"{texture_misses} have the outline wrong")
        edge, interior = row.get("edge_l1"), row.get("interior_l1")
        if edge is not None and interior is not None and edge > EDGE_DOMINATES * interior:
            why.append(
                f"the edges are blurred or out of place (error {edge:.3f} along the edges against "
                f"{interior:.3f} further in; the input itself has every edge exactly right)"
            )
        if not why:
            why.append("the inside of the shapes is off")
        said.append(
            f"inside the shapes {direction} is further from the truth than the untranslated input "
            f"(foreground L1 {fg:.3f} against {fg_input:.3f}): " + "; ".join(why)
        )
    else:
        said.append(
            f"inside the shapes {direction} is nearer the truth than the untranslated input (foreground L1 "
            f"{fg:.3f} against {fg_input:.3f}) and than one colour for all ({collapsed['foreground_l1']:.3f})"
            if fg < collapsed["foreground_l1"]
            else f"inside the shapes {direction} is nearer the truth than the untranslated input (foreground L1 "
            f"{fg:.3f} against {fg_input:.3f}) but not than one colour for all ({collapsed['foreground_l1']:.3f})"
        )
    if row["l1"] >= collapsed["l1"]:
        where = (
            ": that baseline draws the background and every edge exactly, so the difference is there, not in "
            "the colours"
            if colour > one_colour
            else ""
        )
        said.append(
            f"over the whole image its L1 ({row['l1']:.4f}) is above that of one colour for all "
            f"({collapsed['l1']:.4f}){where}"
        )
    if probe is not None:
        said.append(_probe_point(probe, names, colour >= LEARNED))
    if colour >= LEARNED and texture_misses <= (1 - LEARNED) * n and fg < fg_input:
        said.insert(0, f"{direction} learned the task")
    return said


def _probe_point(probe: dict[str, Any], names: Sequence[str], keeps_colours: bool) -> str:
    """What the probe with the colours exchanged says: a shape that comes out in the other colour is
    what reading the colour off the size gives; one nearest the background is only drawn too faintly."""
    kept, m = int(probe["colour_correct"]), int(probe["shapes"])
    said = (
        "with the two colours exchanged (each blue shape the larger, which neither domain shows) it keeps "
        f"{kept} of {m} colours"
    )
    confusion = probe.get("colour_confusion")
    if kept == m or not keeps_colours or not confusion:
        return said + (": it copies each shape's colour, it does not read it off the size" if kept == m else "")
    k = len(names)
    swapped = sum(c for true, counts in enumerate(confusion) for j, c in enumerate(counts[:k]) if j != true)
    faded = sum(counts[k] for counts in confusion if len(counts) > k)
    parts = [f"{swapped} came out in the other colour (what reading the colour off the size gives)"]
    if faded:
        parts.append(f"{faded} nearer the background than either colour (drawn too faintly)")
    if swapped <= (1 - LEARNED) * m:
        if faded <= (1 - LEARNED) * m:
            return f"{said}; {', '.join(parts)}: it copies the colours, it does not read them off the size"
        # Many faint shapes: the model follows the input's colour but cannot draw that colour at a size it
        # never saw (the probe's sizes), which is not what the task's own scenes ask of it.
        faint = [counts[k] if len(counts) > k else 0 for counts in confusion]
        worst = max(range(len(faint)), key=faint.__getitem__)
        return (
            f"{said}; {', '.join(parts)}: it does not read the colours off the size, but it has not learned to draw "
            f"a {names[worst]} shape of a size no {names[worst]} shape has in either domain ({faint[worst]} of "
            f"{sum(confusion[worst])} {names[worst]} shapes too faint)"
        )
    return (
        f"{said}; {', '.join(parts)}: its colours come at least in part from the sizes (red shapes are always "
        "the larger ones here), not from the input's colours"
    )


def verdict(
    direction: str,
    row: dict[str, Any],
    collapsed: dict[str, Any],
    names: Sequence[str] = ("red", "blue"),
    probe: dict[str, Any] | None = None,
) -> str:
    """`verdict_points` as one sentence (what `ugatit demo` prints)."""
    return "; ".join(verdict_points(direction, row, collapsed, names, probe)) + "."


def verdicts(
    final: dict[str, dict[str, Any]],
    collapsed: dict[str, dict[str, Any]],
    names: Sequence[str] = ("red", "blue"),
    probe: dict[str, dict[str, Any]] | None = None,
) -> list[str]:
    """`verdict` for each direction."""
    return [verdict(d, row, collapsed[d], names, (probe or {}).get(d)) for d, row in final.items()]


def _count(k: float, n: float) -> str:
    return f"{int(k)} / {int(n)}" if n else "-"


#: The object table's columns after the translator's name: (heading, key, per-direction format).
_OBJECT_COLUMNS = (
    ("right colour", "colour"),
    ("outline", "texture"),
    ("foreground L1", "foreground_l1"),
    ("right colour, colours exchanged", "probe"),
)
#: The outline column's heading per direction: what is right.
_OUTLINE_RIGHT = {"a2b": "outline drawn", "b2a": "outline removed"}


def object_table(
    gt0: dict,
    gt1: dict,
    collapsed: dict,
    by_size: dict | None = None,
    probe: dict | None = None,
    iterations: int | None = None,
) -> list[dict[str, Any]]:
    """One row per translator (this model, the untrained model, the input itself, one colour for all,
    colour by size), a column per metric and direction, so that each baseline reads across."""

    def row(name: str, rows: dict, prefix: str = "", probes: dict | None = None) -> dict[str, Any]:
        cells: dict[str, Any] = {"translator": name}
        for heading, key in _OBJECT_COLUMNS:
            for d in gt1:
                r, n = rows[d], rows[d].get("shapes", gt1[d]["shapes"])
                if key == "colour":
                    value: Any = _count(r[f"{prefix}colour_correct"], n)
                elif key == "texture":
                    value = _count(r[f"{prefix}texture_right"], n)
                elif key == "foreground_l1":
                    value = r[f"{prefix}foreground_l1"]
                else:
                    p = (probes or {}).get(d)
                    value = _count(p["colour_correct"], p["shapes"]) if p else "-"
                cells[f"{_OUTLINE_RIGHT[d] if key == 'texture' else heading}, {d}"] = value
        return cells

    trained = f"this model ({iterations} iterations)" if iterations else "this model"
    exchanged_input = {
        d: {"colour_correct": p["identity_colour_correct"], "shapes": p["shapes"]}
        for d, p in (probe or {}).items()
        if "identity_colour_correct" in p
    }
    table = [
        row(trained, gt1, probes=probe),
        row("untrained (step 0)", gt0),
        row("the input itself", gt1, prefix="identity_", probes=exchanged_input),
        row("one colour for all", collapsed, probes=_probe_of(collapsed)),
    ]
    if by_size is not None:
        table.append(row("colour by size (larger red)", by_size, probes=_probe_of(by_size)))
    return table


def _probe_of(baseline: dict) -> dict:
    """A baseline's colours on the probe, where it was scored there."""
    return {
        d: {"colour_correct": r["probe_colour_correct"], "shapes": r["shapes"]}
        for d, r in baseline.items()
        if "probe_colour_correct" in r
    }


def _curves(run_dir: Path) -> tuple[dict[str, list[tuple[float, float]]], dict[str, list[tuple[float, float]]]]:
    """(total losses, generator terms) against the step, from log.jsonl."""
    totals: dict[str, list[tuple[float, float]]] = {"Discriminator_loss": [], "Generator_loss": []}
    terms: dict[str, list[tuple[float, float]]] = {
        k: [] for k in ("G_recon_loss_A", "G_recon_loss_B", "G_identity_loss_A", "G_cam_loss_A")
    }
    for line in (run_dir / LOG_FILE).read_text().splitlines():
        record = json.loads(line)
        if "event" in record or "Generator_loss" not in record:
            continue
        for series in (totals, terms):
            for key in series:
                series[key].append((record["step"], record[key]))
    return totals, terms


def metric_plots(curve: list[dict[str, float]], final: dict, collapsed: dict) -> list[html.Markup]:
    """Colour accuracy, foreground L1 and whole-image L1 against the iteration, with their baselines."""
    first, last = curve[0]["step"], curve[-1]["step"]
    flat = lambda value: [(first, value), (last, value)]
    directions = list(final)
    colour = {f"{d}": [(c["step"], 100 * c[f"colour_accuracy_{d}"]) for c in curve] for d in directions}
    colour.update({f"one colour for all, {d}": flat(100 * collapsed[d]["colour_accuracy"]) for d in directions})
    foreground = {f"{d}": [(c["step"], c[f"foreground_l1_{d}"]) for c in curve] for d in directions}
    foreground.update({f"input itself, {d}": flat(final[d]["identity_foreground_l1"]) for d in directions})
    foreground.update({f"one colour for all, {d}": flat(collapsed[d]["foreground_l1"]) for d in directions})
    whole = {f"{d}": [(c["step"], c[f"l1_{d}"]) for c in curve] for d in directions}
    whole.update({f"one colour for all, {d}": flat(collapsed[d]["l1"]) for d in directions})
    return [
        svg_line_plot(
            colour, title="shapes in the right colour", xlabel="iteration", ylabel="% of test shapes", y_range=(0, 100)
        ),
        svg_line_plot(
            foreground,
            title="foreground L1 (inside the shapes)",
            xlabel="iteration",
            ylabel="L1 ([0,1] scale)",
            log_y=True,
        ),
        svg_line_plot(
            whole, title="whole-image L1 (mostly background)", xlabel="iteration", ylabel="L1 ([0,1] scale)", log_y=True
        ),
    ]


def _swatch(rgb: Any) -> html.Markup:
    r, g, b = (int(v) for v in rgb)
    return html.Markup(
        f'<span style="display:inline-block;width:1.2em;height:1.2em;vertical-align:middle;'
        f'border:1px solid #999;background:rgb({r},{g},{b})"></span>'
    )


def palette_table(palettes: dict[str, Any], shade: float) -> html.Markup:
    """The colours shapes come in, as swatches per domain (B: the inside and the outline)."""
    rows = [
        {
            "domain A": _swatch(a),
            "domain B (inside / outline)": html.Markup(f"{_swatch(b)} {_swatch([v * shade for v in b])}"),
        }
        for a, b in zip(palettes["A"], palettes["B"])
    ]
    return html.table(rows)


def write_report(out: Path, summary: dict, gallery: dict, run_dir: Path, palettes: dict, shade: float) -> Path:
    gt0, gt1 = summary["ground_truth"]["step_0"], summary["ground_truth"]["final"]
    collapsed = summary["baselines"]["one_colour_for_all"]
    by_size = summary["baselines"].get("colour_by_size")
    probe = summary.get("probe_colours_exchanged")
    config = summary["config"]
    whole = [
        {
            "direction": d,
            "L1 (trained)": gt1[d]["l1"],
            "L1 (step 0)": gt0[d]["l1"],
            "L1 (input itself)": gt1[d]["identity_l1"],
            "L1 (one colour for all)": collapsed[d]["l1"],
            "edge L1 / interior L1 (trained)": f"{gt1[d]['edge_l1']:.3f} / {gt1[d]['interior_l1']:.3f}",
            "PSNR dB (trained)": gt1[d]["psnr"],
            "PSNR dB (input itself)": gt1[d]["identity_psnr"],
            "cycle L1": gt1[d]["cycle_l1"],
        }
        for d in gt1
    ]
    totals, terms = _curves(run_dir)
    sections = [
        html.Section(
            "Result",
            [
                item
                for d, line in zip(gt1, summary["headline"])
                for item in (
                    html.paragraph(line),
                    html.bullets(verdict_points(d, gt1[d], collapsed[d], COLOUR_NAMES, (probe or {}).get(d))),
                )
            ]
            + [
                html.paragraph(
                    f"{config['optim']['iterations']} iterations in {summary['seconds']:.0f} s; light model, "
                    f"{config['model']['img_size']} px, ch {config['model']['ch']}, n_res {config['model']['n_res']}, "
                    f"batch {config['data']['batch_size']}, lr {config['optim']['lr']:g}."
                )
            ],
        ),
        html.Section(
            "Shapes: colour, outline and the error inside them",
            [
                html.table(object_table(gt0, gt1, collapsed, by_size, probe, config["optim"]["iterations"])),
                html.paragraph(
                    "A shape has the right colour when the mean colour of the translation inside its "
                    "true outline is nearer the right palette colour than any other (or the background). "
                    "Its outline is right when the translation shows at least half of the true outline's "
                    "contrast, in its place (a2b), or less than half of it (b2a). Foreground L1: mean "
                    "absolute error inside the shapes, [0, 1] scale (lower is better)."
                ),
                html.paragraph(
                    "The rows below the model are what other translators score. The input itself: doing "
                    "nothing (right colours, no outline, the wrong background). One colour for all: the true "
                    "scene with every shape in one colour, what a translator that learned everything but the "
                    "colours could at most reach. Colour by size: the true scene with the larger shape red and "
                    "the smaller blue, ignoring the input's colours. In this task red shapes are always the "
                    "larger, so on the test scenes colour by size is the ground truth itself: the right-colour "
                    "count alone cannot tell it from a translator that copies the colours. The last columns "
                    "can: there the test scenes are drawn with the two colours exchanged (every blue shape the "
                    "larger, which neither domain shows), and a translator keeps those colours only if it "
                    "copies them from its input."
                ),
            ],
        ),
    ]
    for direction, rows in gallery.items():
        cells = [{kind: html.image(path, kind, width=GALLERY_WIDTH) for kind, path in row.items()} for row in rows]
        sections.append(html.Section(f"Test translations {direction}", [html.table(cells)]))
    sections += [
        html.Section(
            "The task",
            [
                html.paragraph(
                    "Domain A: two flat shapes, one red and one blue, on a mid-grey background. Domain B: the "
                    "same kind of scene on a blue-grey background, each shape with a dark outline inside its "
                    "edge. Colours are drawn independently of the kind, and a translation keeps them: a2b draws "
                    "the outlines and changes the background, b2a undoes both. Training images are unpaired; "
                    "each test image has its ground-truth translation. Why this is the answer an unpaired "
                    "translator finds: docs/demo.md."
                ),
                palette_table(palettes, shade),
            ],
        ),
        html.Section("Whole-image metrics", [html.table(whole)]),
        html.Section(
            "Curves",
            [
                html.row(
                    metric_plots(summary["curve"], gt1, collapsed)
                    + [
                        svg_line_plot(totals, title="total losses", xlabel="iteration", ylabel="loss", log_y=True),
                        svg_line_plot(terms, title="generator terms", xlabel="iteration", ylabel="loss", log_y=True),
                    ]
                )
            ],
        ),
    ]
    samples = sorted((run_dir / "samples").glob("test_a2b_*.png"))
    if samples:
        sections.append(
            html.Section(
                "Latest sample grid (test images, a2b)", [html.image(str(samples[-1].relative_to(out)), "sample grid")]
            )
        )
    page = out / "report.html"
    page.write_text(html.html_page("ugatit demo: shapes", sections))
    return page
