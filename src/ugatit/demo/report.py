"""The demo's report: what a person reads first (did the shapes come out right?), then the evidence.

report.html leads with one sentence per direction ("a2b: 46 of 48 shapes the right colour, 44 of 48
striped"), then the object metrics next to the two baselines a reader needs to judge them (the input
itself, and a translator that paints every shape the most frequent colour), the gallery, the
whole-image metrics, the curves and the latest sample grid.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..training.run_dir import LOG_FILE
from ..viz import html
from ..viz.plots import svg_line_plot

#: What each direction has to do to the stripes, in the words of the headline.
STRIPES_DONE = {"a2b": "striped", "b2a": "with the stripes removed"}
#: Gallery images are shown at least this wide (CSS px); 48-px outputs are too small to judge.
GALLERY_WIDTH = 128


def headline_sentence(direction: str, row: dict[str, float], collapsed: dict[str, float] | None = None) -> str:
    """ "a2b: 46 of 48 shapes the right colour, 44 of 48 striped; foreground L1 ..." for one direction."""
    n = int(row["shapes"])
    baselines = f"the input itself: {row['identity_foreground_l1']:.3f}"
    if collapsed is not None:
        baselines += f", every shape one colour: {collapsed['foreground_l1']:.3f}"
    return (
        f"{direction}: {int(row['colour_correct'])} of {n} shapes the right colour, "
        f"{int(row['stripes_right'])} of {n} {STRIPES_DONE[direction]}; "
        f"foreground L1 {row['foreground_l1']:.3f} ({baselines})"
    )


def headline(final: dict[str, dict[str, float]], collapsed: dict[str, dict[str, float]]) -> list[str]:
    """One sentence per direction: shapes in the right colour, stripes right, foreground L1 vs baselines."""
    return [headline_sentence(d, row, collapsed[d]) for d, row in final.items()]


def _percent(k: float, n: float) -> str:
    return f"{int(k)} / {int(n)} ({100 * k / n:.0f}%)" if n else "-"


def object_table(gt0: dict, gt1: dict, collapsed: dict) -> list[dict[str, Any]]:
    rows = []
    for d, row in gt1.items():
        n = row["shapes"]
        rows.append(
            {
                "direction": d,
                "right colour": _percent(row["colour_correct"], n),
                "right colour, step 0": _percent(gt0[d]["colour_correct"], n),
                "right colour, input itself": f"{100 * row['identity_colour_accuracy']:.0f}%",
                "right colour, one colour for all": f"{100 * collapsed[d]['colour_accuracy']:.0f}%",
                "stripes right (a2b: striped, b2a: removed)": _percent(row["stripes_right"], n),
                "foreground L1": row["foreground_l1"],
                "foreground L1, step 0": gt0[d]["foreground_l1"],
                "foreground L1, input itself": row["identity_foreground_l1"],
                "foreground L1, one colour for all": collapsed[d]["foreground_l1"],
            }
        )
    return rows


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


def palette_table(palettes: dict[str, Any], weights: Any) -> html.Markup:
    """The colours shapes come in, as swatches per domain, with the weight each is drawn with."""
    rows = [
        {
            "domain A": _swatch(a),
            "domain B (light / dark stripes)": html.Markup(f"{_swatch(b)} {_swatch([v * 0.4 for v in b])}"),
            "weight in the draw": f"{f:g}",
        }
        for a, b, f in zip(palettes["A"], palettes["B"], weights)
    ]
    return html.table(rows)


def write_report(out: Path, summary: dict, gallery: dict, run_dir: Path, palettes: dict, colour_weights: Any) -> Path:
    gt0, gt1 = summary["ground_truth"]["step_0"], summary["ground_truth"]["final"]
    collapsed = summary["baselines"]["one_colour_for_all"]
    config = summary["config"]
    whole = [
        {
            "direction": d,
            "L1 (trained)": gt1[d]["l1"],
            "L1 (step 0)": gt0[d]["l1"],
            "L1 (input itself)": gt1[d]["identity_l1"],
            "L1 (one colour for all)": collapsed[d]["l1"],
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
            [html.paragraph(line) for line in summary["headline"]]
            + [
                html.paragraph(
                    f"{config['optim']['iterations']} iterations in {summary['seconds']:.0f} s; light model, "
                    f"{config['model']['img_size']} px, ch {config['model']['ch']}, n_res {config['model']['n_res']}, "
                    f"batch {config['data']['batch_size']}, lr {config['optim']['lr']:g}."
                )
            ],
        ),
        html.Section(
            "Shapes: colour, stripes and the error inside them",
            [
                html.table(object_table(gt0, gt1, collapsed)),
                html.paragraph(
                    "A shape has the right colour when the mean colour of the translation inside its "
                    "true outline is nearer the right palette colour than any other (or the background). "
                    "Its stripes are right when their contrast is nearer the true stripes' than a flat "
                    "fill's. Foreground L1: mean absolute error inside the shapes, [0, 1] scale. "
                    "Baselines: the input offered as its own translation, and the true scene with every "
                    "shape in the most common colour (a translator that learned all but the colours)."
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
                    "Domain A: two flat shapes on a mid-grey background. Domain B: the same kind of scene on a "
                    "blue-grey background, each shape striped. The two shapes of an image are two different colours "
                    "of red, green and blue, drawn independently of the kind with the same unequal frequencies in "
                    "both domains, and a translation "
                    "keeps them: a2b paints stripes inside the shapes and changes the background, b2a undoes both. "
                    "Training images are unpaired; each test image has its ground-truth translation. Why keeping "
                    "the colours is the one answer an unpaired translator can find: docs/demo.md."
                ),
                palette_table(palettes, colour_weights),
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
