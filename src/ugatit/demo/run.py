"""`ugatit demo`: the whole product on the built-in shapes task, in a few minutes on a CPU.

It draws the shapes dataset (flat shapes <-> striped shapes, see `shapes`), trains a small light
U-GAT-IT on it, measures the translations against their ground truth during and after training,
translates the test set both ways with attention maps, and writes an HTML report with the inputs,
outputs, attention, ground truth, the metric table and the loss and metric curves.

Output folder:

    report.html, report.json     the report and its numbers (ground truth at step 0 and at the end)
    data/testA, testB, ground_truth.json
                                 the test split on disk: `ugatit eval --checkpoint run --data data`
    run/                         the training run (config, log.jsonl, samples, checkpoints, export)
    translations/{a2b,b2a}/      translations and attention overlays of the test images
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any, Callable

from ..config import Config, DataConfig, DemoOptions, LossConfig, ModelConfig, OptimConfig, TrainConfig
from ..domains import DIRECTIONS, source_and_target
from ..errors import UserError
from ..evaluation import ground_truth_report
from ..nn.model import UGATIT
from ..nn.sizes import check_model_config
from ..training import train
from ..training.run_dir import LOG_FILE
from ..translate import translate_images
from ..utils.device import resolve_device
from ..utils.files import write_json
from ..utils.rng import seed_everything
from ..viz import html
from ..viz.plots import svg_line_plot
from ..weights import load_model
from .shapes import make_shapes, write_shapes

#: Images of each direction shown in the report's gallery.
GALLERY = 8
#: What a demo writes into its folder; --force replaces a folder holding nothing else.
DEMO_ENTRIES = {"report.html", "report.json", "data", "run", "translations"}


def demo_config(opts: DemoOptions) -> Config:
    """A light model at the paper's loss weights, with a higher lr and a small batch so that a short
    run learns. The train transform keeps the paper's flip but no resize margin: the task's stripes
    have a fixed width, which the paper's zoom-and-crop would change between train and test."""
    return Config(
        model=ModelConfig(img_size=opts.img_size, ch=opts.ch, n_res=opts.n_res, light=True),
        loss=LossConfig(),
        optim=OptimConfig(lr=opts.lr, iterations=opts.iters, decay=True),
        data=DataConfig(batch_size=opts.batch_size, num_workers=0, resize_margin=0),
        train=TrainConfig(seed=opts.seed, device=opts.device, log_every=10, sample_every=max(opts.iters // 4, 1),
                          save_every=opts.iters, keep_last=1, eval_every=opts.eval_every),  # fmt: skip
    )


def _summary(table: dict[str, dict]) -> dict[str, float]:
    return {f"{key}_{direction}": row[key] for direction, row in table.items() for key in ("l1", "psnr")}


def run_demo(opts: DemoOptions, notify: Callable[[str], None] = print) -> dict[str, Any]:
    """Build the data, train, translate, measure, write the report; returns report.json's content."""
    out = Path(opts.out)
    if out.exists() and any(out.iterdir()):
        ours = {p.name for p in out.iterdir()} <= DEMO_ENTRIES  # a finished or interrupted demo
        if not (opts.force and ours):
            hint = "it holds more than a demo" if opts.force else "pass `force=True` to replace the demo in it"
            raise UserError(f"{out} is not empty: choose another `out` ({hint})")
        shutil.rmtree(out)
    if opts.iters < 1 or opts.test_count < 1 or opts.train_count < 1:
        raise UserError("`iters`, `train_count` and `test_count` must be at least 1")
    config = demo_config(opts)
    check_model_config(config.model)  # before minutes of drawing and training
    resolve_device(opts.device)
    started = time.monotonic()

    notify(f"building the shapes task: {opts.train_count} unpaired training images a domain, "
           f"{opts.test_count} test pairs, {opts.img_size}px")  # fmt: skip
    data = make_shapes(size=opts.img_size, n_train=opts.train_count, n_test=opts.test_count, seed=opts.seed)
    write_shapes(out / "data", size=opts.img_size, n_train=opts.train_count, n_test=opts.test_count,
                 seed=opts.seed, splits=("testA", "testB"))  # the same images as data["testA"/"testB"]

    # The untrained model, built exactly as the trainer builds it, gives the step-0 numbers.
    seed_everything(opts.seed)
    initial = ground_truth_report(UGATIT(config.model), data["testA"], data["testB"])
    curve: list[dict[str, float]] = [{"step": 0, **_summary(initial)}]

    def evaluate(model: UGATIT, step: int) -> dict[str, float]:
        metrics = _summary(ground_truth_report(model, data["testA"], data["testB"]))
        curve.append({"step": step, **metrics})
        return metrics

    notify(f"training a light U-GAT-IT (ch {opts.ch}, n_res {opts.n_res}) for {opts.iters} iterations on {opts.device}")
    result = train(config, data["trainA"], data["trainB"], out / "run", test_a=data["testA"][:4],
                   test_b=data["testB"][:4], evaluate=evaluate, progress=opts.progress, tensorboard=False)  # fmt: skip
    if result.interrupted:
        raise UserError(f"demo interrupted ({result.interrupted}) at step {result.step}; the run is in {out / 'run'}")

    model, _ = load_model(out / "run")
    final = ground_truth_report(model, data["testA"], data["testB"])
    gallery = _translate_gallery(model, data, out / "translations")
    summary = {
        "task": "shapes",
        "config": config.to_dict(),
        "seconds": round(time.monotonic() - started, 1),
        "ground_truth": {"step_0": initial, "final": final},
        "curve": curve,
        "run": str(out / "run"),
    }
    write_json(summary, out / "report.json")
    page = _write_report(out, summary, gallery, result.run_dir)
    return {**summary, "report": str(page)}


def _translate_gallery(model: UGATIT, data: dict, folder: Path) -> dict[str, list[dict[str, str]]]:
    """Translate the first GALLERY test images each way; save output and attention; return rows."""
    rows: dict[str, list[dict[str, str]]] = {}
    for direction in DIRECTIONS:
        src, tgt = (f"test{d}" for d in source_and_target(direction))
        target_dir = folder / direction
        target_dir.mkdir(parents=True, exist_ok=True)
        rows[direction] = []
        for i, t in enumerate(translate_images(model, data[src][:GALLERY], direction)):
            paths = {"input": t.source, "attention": t.attention_overlay(), "output": t.image,
                     "ground truth": data[tgt][i]}  # fmt: skip
            row = {}
            for kind, img in paths.items():
                path = target_dir / f"{i:02d}_{kind.replace(' ', '_')}.png"
                img.save(path)
                row[kind] = str(path.relative_to(folder.parent))
            rows[direction].append(row)
    return rows


def _curves(run_dir: Path) -> tuple[dict[str, list[tuple[float, float]]], dict[str, list[tuple[float, float]]]]:
    """(total losses, generator terms) against the step, from log.jsonl."""
    totals: dict[str, list[tuple[float, float]]] = {"Discriminator_loss": [], "Generator_loss": []}
    terms: dict[str, list[tuple[float, float]]] = {k: [] for k in ("G_recon_loss_A", "G_recon_loss_B",
                                                                   "G_identity_loss_A", "G_cam_loss_A")}  # fmt: skip
    for line in (run_dir / LOG_FILE).read_text().splitlines():
        record = json.loads(line)
        if "event" in record or "Generator_loss" not in record:
            continue
        for series in (totals, terms):
            for key in series:
                series[key].append((record["step"], record[key]))
    return totals, terms


def _write_report(out: Path, summary: dict, gallery: dict, run_dir: Path) -> Path:
    gt0, gt1 = summary["ground_truth"]["step_0"], summary["ground_truth"]["final"]
    table = [{"direction": d, "L1 (trained)": gt1[d]["l1"], "L1 (step 0)": gt0[d]["l1"],
              "L1 (identity baseline)": gt1[d]["identity_l1"], "PSNR dB (trained)": gt1[d]["psnr"],
              "PSNR dB (identity)": gt1[d]["identity_psnr"], "cycle L1": gt1[d]["cycle_l1"]}
             for d in gt1]  # fmt: skip
    curve = summary["curve"]
    metric_plot = svg_line_plot(
        {**{f"L1 {d}": [(c["step"], c[f"l1_{d}"]) for c in curve] for d in gt1},
         **{f"identity {d}": [(curve[0]["step"], gt1[d]["identity_l1"]), (curve[-1]["step"], gt1[d]["identity_l1"])]
            for d in gt1}},
        title="ground-truth L1 on the test set", xlabel="iteration", ylabel="L1 ([0,1] scale)",
    )  # fmt: skip
    totals, terms = _curves(run_dir)
    sections = [
        html.Section("What this is", [html.paragraph(
            "U-GAT-IT trained from scratch on the built-in shapes task: domain A has flat shapes on a light "
            "background, domain B the same kind of scenes recoloured, striped and on a dark background. "
            "Training pairs are unpaired; every test image has its ground-truth translation. "
            f"Run: {summary['config']['optim']['iterations']} iterations in {summary['seconds']:.0f} s "
            f"(model: light, {summary['config']['model']['img_size']}px, ch {summary['config']['model']['ch']}).")]),
        html.Section("Ground truth metrics", [html.table(table)]),
        html.Section("Curves", [html.row([metric_plot, svg_line_plot(totals, title="total losses",
                       xlabel="iteration", ylabel="loss", log_y=True), svg_line_plot(terms,
                       title="generator terms", xlabel="iteration", ylabel="loss", log_y=True)])]),
    ]  # fmt: skip
    for direction, rows in gallery.items():
        cells = [{kind: html.image(path, kind, width=128) for kind, path in row.items()} for row in rows]
        sections.append(html.Section(f"Test translations {direction}", [html.table(cells)]))
    samples = sorted((run_dir / "samples").glob("test_a2b_*.png"))
    if samples:
        sections.append(html.Section("Latest sample grid (input, attention, translation, cycle)",
                                       [html.image(str(samples[-1].relative_to(out)), "sample grid")]))  # fmt: skip
    page = out / "report.html"
    page.write_text(html.html_page("ugatit demo: shapes", sections))
    return page

