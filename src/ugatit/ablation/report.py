"""The ablation's report: a table like the paper's Table 1 (mean and spread over seeds), which differences
stand out from the spread, the same test images translated by every variant, curves, and rho.

report.json holds every number (each run's metrics and evaluation, the means and spreads, the reading);
report.html shows them; gallery_a2b.png and gallery_b2a.png are the side-by-side translations.
"""

from __future__ import annotations

import json
import math
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..domains import DIRECTIONS, source_and_target
from ..training.run_dir import RHO_PLOT
from ..utils.files import atomic_write, write_json
from ..viz import html
from ..viz.plots import svg_line_plot
from .plan import RunSpec

#: The table's columns where the runs have them: (metric, label, which way is better).
METRICS: tuple[tuple[str, str, str], ...] = (
    ("kid_a2b", "KID x100 A to B", "lower"),
    ("kid_b2a", "KID x100 B to A", "lower"),
    ("shape_change_a2b", "shape change A to B", "higher"),
    ("shape_change_b2a", "shape change B to A", "higher"),
    ("colour_accuracy_a2b", "right colour A to B", "higher"),
    ("colour_accuracy_b2a", "right colour B to A", "higher"),
    ("texture_accuracy_a2b", "outline right A to B", "higher"),
    ("texture_accuracy_b2a", "outline right B to A", "higher"),
    ("foreground_l1_a2b", "foreground L1 A to B", "lower"),
    ("foreground_l1_b2a", "foreground L1 B to A", "lower"),
    ("l1_a2b", "L1 A to B", "lower"),
    ("l1_b2a", "L1 B to A", "lower"),
)

#: The paper's Table 1 (Kim et al., ICLR 2020; the same table is assets/ablation.png of taki0112/UGATIT):
#: KID x 100 +- std x 100 on selfie2anime and anime2selfie, by our variant names. `lin` is not in it.
PAPER_TABLE_1: dict[str, tuple[str, tuple[float, float], tuple[float, float]]] = {
    "full": ("U-GAT-IT", (11.61, 0.57), (11.52, 0.57)),
    "in": ("U-GAT-IT w/ IN", (13.64, 0.76), (13.58, 0.8)),
    "ln": ("U-GAT-IT w/ LN", (12.39, 0.61), (13.17, 0.8)),
    "adain": ("U-GAT-IT w/ AdaIN", (12.29, 0.78), (11.81, 0.77)),
    "gn": ("U-GAT-IT w/ GN", (12.76, 0.64), (12.30, 0.77)),
    "no-cam": ("U-GAT-IT w/o CAM", (12.85, 0.82), (14.06, 0.75)),
    "no-g-cam": ("U-GAT-IT w/o G_CAM", (12.33, 0.68), (13.86, 0.75)),
    "no-d-cam": ("U-GAT-IT w/o D_CAM", (12.49, 0.74), (13.33, 0.89)),
}

#: The variant every other one is read against.
REFERENCE = "full"


def mean_and_spread(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (None for a single value) of the finite values."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return float("nan"), None
    mean = sum(finite) / len(finite)
    if len(finite) < 2:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in finite) / (len(finite) - 1))


def aggregate(runs: list[dict[str, Any]], variants: Sequence[str]) -> dict[str, dict[str, dict[str, Any]]]:
    """{variant: {metric: {"mean", "std", "n", "values"}}} over the seeds each variant has."""
    table: dict[str, dict[str, dict[str, Any]]] = {}
    for variant in variants:
        mine = [run for run in runs if run["variant"] == variant]
        keys = dict.fromkeys(key for run in mine for key in run["metrics"])
        table[variant] = {}
        for key in keys:
            values = [run["metrics"][key] for run in mine if key in run["metrics"]]
            mean, std = mean_and_spread(values)
            table[variant][key] = {"mean": mean, "std": std, "n": len(values), "values": values}
    return table


def reading(table: dict[str, dict[str, dict[str, Any]]], columns: Sequence[tuple[str, str, str]]) -> list[dict]:
    """For each variant and metric: its difference from `REFERENCE`, and whether that difference is larger
    than the spread between seeds (the two standard deviations added: mean +- std intervals that do not
    overlap). With one seed there is no spread, and nothing is called larger than it."""
    findings = []
    reference = table.get(REFERENCE)
    if reference is None:
        return findings
    for variant, row in table.items():
        if variant == REFERENCE:
            continue
        for key, label, better in columns:
            if key not in row or key not in reference:
                continue
            ours, ref = row[key], reference[key]
            difference = ours["mean"] - ref["mean"]
            spread = None if ours["std"] is None or ref["std"] is None else ours["std"] + ref["std"]
            worse = difference > 0 if better == "lower" else difference < 0
            findings.append(
                {
                    "variant": variant,
                    "metric": key,
                    "label": label,
                    "difference": difference,
                    "spread": spread,
                    "beyond_spread": spread is not None and abs(difference) > spread,
                    "direction": "worse" if worse else ("better" if difference != 0 else "equal"),
                }
            )
    return findings


def _cell(stat: dict[str, Any] | None, key: str) -> str:
    if stat is None or not math.isfinite(stat["mean"]):
        return "-"
    scale, digits = (100, 1) if "accuracy" in key or "shape_change" in key else (1, 4 if "l1" in key else 2)
    text = f"{stat['mean'] * scale:.{digits}f}"
    if stat["std"] is not None:
        text += f" +- {stat['std'] * scale:.{digits}f}"
    return text + ("%" if scale == 100 else "")


def table_rows(
    table: dict[str, dict[str, dict[str, Any]]], columns: Sequence[tuple[str, str, str]], parameters: dict[str, int]
) -> list[dict[str, Any]]:
    """The report's main table: a row a variant, mean +- std over seeds in each metric's column."""
    rows = []
    for variant, row in table.items():
        cells: dict[str, Any] = {"variant": variant}
        seeds = max((stat["n"] for stat in row.values()), default=0)
        cells["seeds"] = seeds
        for key, label, better in columns:
            cells[f"{label} ({better} is better)"] = _cell(row.get(key), key)
        cells["parameters"] = f"{parameters[variant]:,}" if variant in parameters else "-"
        rows.append(cells)
    return rows


def _sentences(findings: list[dict], seeds: int) -> list[str]:
    if seeds < 2:
        return [
            "One seed a variant: there is no spread between seeds to judge the differences by, so none of "
            "them is called larger than chance. Run with more seeds (`--seeds 3`)."
        ]
    beyond = [f for f in findings if f["beyond_spread"]]
    lines = []
    for f in beyond:
        lines.append(
            f"{f['variant']}: {f['label']} {f['direction']} than {REFERENCE} by {abs(f['difference']):.4g}, more "
            f"than the spread between seeds ({f['spread']:.4g})."
        )
    within = sorted({f["variant"] for f in findings} - {f["variant"] for f in beyond})
    if within:
        lines.append(
            f"Within the spread between seeds on every metric: {', '.join(within)}; at this scale they cannot "
            f"be told from {REFERENCE}."
        )
    if not findings:
        lines.append(f"No variant to compare with {REFERENCE}.")
    return lines


# --- The gallery ------------------------------------------------------------------------------------------


def write_galleries(out: Path, data: Path, specs: list[RunSpec], variants: Sequence[str], count: int) -> dict[str, str]:
    """For each direction, the first `count` test images translated by every variant (its first seed),
    side by side with the input and (where the data has it) the ground truth: OUT/gallery_<d>.png."""
    import torch

    from ..data.images import find_images, load_rgb
    from ..translate import translate_images
    from ..viz.images import labelled_grid
    from ..weights import load_model

    first = {}
    for spec in specs:
        if spec.done and spec.variant not in first:
            first[spec.variant] = spec
    shown = [v for v in variants if v in first]
    if not shown or count < 1:
        return {}
    paired = (data / "ground_truth.json").is_file()
    images = {d: [load_rgb(p) for p in find_images(data / f"test{d}")[:count]] for d in "AB"}
    outputs: dict[str, dict[str, list]] = {d: {} for d in DIRECTIONS}
    for variant in shown:
        model, _ = load_model(first[variant].run_dir, device=torch.device("cpu"))
        size = model.config.img_size
        for direction in DIRECTIONS:
            src = source_and_target(direction)[0]
            made = translate_images(model, images[src], direction, restore_size=False)
            outputs[direction][variant] = [np.asarray(t.image) for t in made]
    written = {}
    for direction in DIRECTIONS:
        src, tgt = source_and_target(direction)
        labels = ["input", *(["ground truth"] if paired else []), *shown]
        rows = []
        for i, source in enumerate(images[src]):
            row = [np.asarray(source.convert("RGB").resize((size, size)))]
            if paired:
                row.append(np.asarray(images[tgt][i].convert("RGB").resize((size, size))))
            row += [outputs[direction][variant][i] for variant in shown]
            rows.append(row)
        path = out / f"gallery_{direction}.png"
        grid = labelled_grid(rows, labels, min_cell=96)
        atomic_write(path, lambda tmp, grid=grid: grid.save(tmp, format="PNG"))
        written[direction] = path.name
    return written


# --- Curves -----------------------------------------------------------------------------------------------


def _log_records(run_dir: Path) -> list[dict[str, Any]]:
    from ..training.run_dir import LOG_FILE

    try:
        return [json.loads(line) for line in (run_dir / LOG_FILE).read_text().splitlines() if line.strip()]
    except (OSError, ValueError):
        return []


def curves(specs: list[RunSpec], variants: Sequence[str], columns: Sequence[tuple[str, str, str]]) -> list[html.Markup]:
    """Losses and the mean rho of each kind against the iteration, and the metrics evaluated during
    training (`train.eval_every`), one line a variant (its first seed)."""
    first: dict[str, RunSpec] = {}
    for spec in specs:
        if spec.variant not in first and spec.run_dir.is_dir():
            first[spec.variant] = spec
    records = {v: _log_records(first[v].run_dir) for v in variants if v in first}
    plots = []
    for key, title in (("Generator_loss", "generator loss"), ("Discriminator_loss", "discriminator loss")):
        series = {v: [(r["step"], r[key]) for r in rs if key in r and "event" not in r] for v, rs in records.items()}
        plots.append(svg_line_plot(series, title=title, xlabel="iteration", ylabel=key, log_y=True))
    for kind, where in (("adalin", "residual blocks"), ("lin", "residual blocks"), ("iln", "up-sampling blocks")):
        key = f"rho_{kind}_mean"
        series = {v: [(r["step"], r[key]) for r in rs if key in r] for v, rs in records.items()}
        series = {v: points for v, points in series.items() if points}
        if series:
            title = f"mean rho of the {kind.upper()} layers ({where})"
            plots.append(svg_line_plot(series, title=title, xlabel="iteration", ylabel="rho", y_range=(0, 1)))
    for key, label, _ in columns:
        series = {
            v: [(r["step"], r[key]) for r in rs if r.get("event") == "eval" and key in r] for v, rs in records.items()
        }
        series = {v: points for v, points in series.items() if points}
        if series:
            plots.append(svg_line_plot(series, title=f"{label} during training", xlabel="iteration", ylabel=label))
    return plots


# --- The whole report -------------------------------------------------------------------------------------


def machine_description(devices: Sequence[str]) -> str:
    from ..bench import machine

    names = dict.fromkeys(machine(device) for device in devices)
    return f"{'; '.join(names)}; {platform.system()} {platform.machine()}"


def write_report(
    out: Path,
    plan: dict[str, Any],
    specs: list[RunSpec],
    settings,
    seconds: float,
    gallery: int = 6,
    *,
    execution: str = "",
    load: tuple[float | None, float | None] = (None, None),
) -> dict[str, Any]:
    """Write report.json, report.html and the galleries from every run that is done; return the JSON."""
    variants = plan["variants"]
    runs = [json.loads(spec.metrics_file.read_text(encoding="utf-8")) for spec in specs if spec.done]
    table = aggregate(runs, variants)
    present = {key for run in runs for key in run["metrics"]}
    columns = [c for c in METRICS if c[0] in present]
    parameters = {run["variant"]: run["parameters"]["total"] for run in runs}
    findings = reading(table, columns)
    seeds = min((len([r for r in runs if r["variant"] == v]) for v in variants if v in table), default=0)
    devices = sorted({spec.config.train.device for spec in specs})
    summary: dict[str, Any] = {
        "format": "ugatit-ablation-report-1",
        "plan": plan,
        "machine": machine_description(devices),
        "execution": execution,
        "load_average": {"start": load[0], "end": load[1]},
        "session_seconds": round(seconds, 1),
        "train_seconds": sum(run.get("train_seconds") or 0.0 for run in runs),
        "runs_done": len(runs),
        "runs_planned": len(specs),
        "kid": settings.kid,
        "note": settings.note,
        "table": table,
        "parameters": parameters,
        "reading": findings,
        "paper_table_1": {
            v: {"row": row, "selfie2anime": s2a, "anime2selfie": a2s} for v, (row, s2a, a2s) in PAPER_TABLE_1.items()
        },
        "runs": runs,
    }
    galleries = write_galleries(out, settings.data, specs, variants, gallery)
    summary["galleries"] = galleries
    write_json(summary, out / "report.json")
    page = out / "report.html"
    html_text = _page(out, summary, table, columns, parameters, findings, seeds, specs, variants, galleries)
    atomic_write(page, lambda tmp: tmp.write_text(html_text, encoding="utf-8"))
    summary["report"] = str(page)
    return summary


def _page(out, summary, table, columns, parameters, findings, seeds, specs, variants, galleries) -> str:
    plan = summary["plan"]
    base = plan["base_config"]
    model, optim = base["model"], base["optim"]
    about = [
        f"Data: {plan['data']}" + (f" (the built-in {plan['task']} task)" if plan.get("task") else "") + ".",
        f"Base model: {'light' if model['light'] else 'full'}, {model['img_size']} px, ch {model['ch']}, "
        f"n_res {model['n_res']}; {optim['iterations']} iterations, lr {optim['lr']:g}, batch "
        f"{base['data']['batch_size']}. Every variant trains under it with the same seeds "
        f"({', '.join(map(str, plan['seeds']))}), hence the same data order; only the model differs.",
        f"Runs done: {summary['runs_done']} of {summary['runs_planned']}. Machine: {summary['machine']}; "
        f"{summary['execution']}. Training time, all runs added up: {summary['train_seconds'] / 60:.1f} min; "
        f"this session: {summary['session_seconds'] / 60:.1f} min (wall); the machine's load average was "
        f"{summary['load_average']['start']} at its start and {summary['load_average']['end']} at its end "
        "(other work sharing the machine slows every timing here).",
    ]
    if summary["note"]:
        about.append(summary["note"])
    sections: list[tuple[str, object]] = [("", about)]
    sections.append(
        (
            "Table (mean +- standard deviation over seeds)",
            [
                html.table(table_rows(table, columns, parameters)),
                "Percentages: share of test shapes (right colour, outline) or of the pixels where the two "
                "domains' shapes differ (shape change: 0% keeps the source shape, 100% draws the target's). "
                "L1 on the [0, 1] scale. KID x 100 with the paper's protocol (blocks of 10 in file order).",
            ],
        )
    )
    sections.append(
        ("Reading: which differences are larger than the spread between seeds", _sentences(findings, seeds))
    )
    paper_rows = [
        {
            "variant": variant,
            "the paper's row": row,
            "selfie2anime KID x100": f"{s2a[0]:.2f} +- {s2a[1]:.2f}",
            "anime2selfie KID x100": f"{a2s[0]:.2f} +- {a2s[1]:.2f}",
        }
        for variant, (row, s2a, a2s) in PAPER_TABLE_1.items()
        if variant in variants
    ]
    if paper_rows:
        sections.append(
            (
                "What the paper reports (Table 1, selfie2anime, 256 px, full model, 1M iterations)",
                [
                    html.table(paper_rows),
                    "Its numbers are on another dataset and scale: compare the ranking, not the values.",
                ],
            )
        )
    if galleries:
        items = []
        for direction, name in galleries.items():
            src, tgt = source_and_target(direction)
            items.append(html.figure(name, f"test images {src} to {tgt}, every variant (its first seed)"))
        sections.append(("The same test images, translated by every variant", items))
    sections.append(("Curves (first seed of each variant)", curves(specs, variants, columns)))
    rho_items = []
    for variant in variants:
        spec = next((s for s in specs if s.variant == variant and (s.run_dir / RHO_PLOT).is_file()), None)
        if spec is not None:
            path = (spec.run_dir / RHO_PLOT).relative_to(out).as_posix()
            rho_items.append(html.figure(path, f"{variant}: learned rho per decoder layer"))
    if rho_items:
        sections.append(
            (
                "What AdaLIN learned: rho per decoder layer (1 = instance norm, 0 = layer norm)",
                [html.row(rho_items)],
            )
        )
    return html.html_page("ugatit ablate: the paper's ablations side by side", sections)
