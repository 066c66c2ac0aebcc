"""`ugatit demo`: the whole product on the built-in shapes task, in a few minutes on a CPU.

It draws the shapes dataset (flat shapes <-> outlined shapes, see `shapes`), trains a small light
U-GAT-IT on it, measures the translations against their ground truth during and after training (inside
each shape: right colour, outline, foreground L1; and over the whole image), translates the test set
both ways with attention maps, and writes an HTML report (`report`) that leads with one sentence per
direction and the baselines, then the gallery, the whole-image metrics and the curves.

Output folder:

    report.html, report.json     the report and its numbers (ground truth at step 0 and at the end)
    data/testA, testB, ground_truth.json
                                 the test split on disk: `ugatit eval --checkpoint run --data data`
    run/                         the training run (config, log.jsonl, samples, checkpoints, export)
    translations/{a2b,b2a}/      translations and attention overlays of the test images
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config import Config, DataConfig, LossConfig, ModelConfig, OptimConfig, TrainConfig
from ..domains import DIRECTIONS, source_and_target
from ..errors import UserError
from ..evaluation import ground_truth_report
from ..nn.model import UGATIT
from ..nn.sizes import check_model_config
from ..training import train
from ..translate import translate_images
from ..utils.device import resolve_device
from ..utils.files import write_json
from ..utils.rng import seed_everything
from ..weights import load_model
from .options import DemoOptions
from .report import headline, verdicts, write_report
from .shapes import COLOUR_NAMES, make_shapes, write_shapes
from .truth import ShapesTruth, collapsed_baseline, size_baseline

#: Images of each direction shown in the report's gallery.
GALLERY = 8
#: What a demo writes into its folder; --force replaces a folder holding nothing else.
DEMO_ENTRIES = {"report.html", "report.json", "data", "run", "translations"}


def demo_config(opts: DemoOptions) -> Config:
    """A light model at the paper's loss weights, with a higher lr and a small batch so that a short
    run learns. The train transform keeps the paper's flip but no resize margin: the task's outline
    has a fixed width, which the paper's zoom-and-crop would change between train and test."""
    return Config(
        model=ModelConfig(img_size=opts.img_size, ch=opts.ch, n_res=opts.n_res, light=True),
        loss=LossConfig(),
        optim=OptimConfig(lr=opts.lr, iterations=opts.iters, decay=True),
        data=DataConfig(batch_size=opts.batch_size, num_workers=0, resize_margin=0),
        train=TrainConfig(
            seed=opts.seed,
            device=opts.device,
            log_every=10,
            sample_every=max(opts.iters // 4, 1),
            save_every=opts.iters,
            keep_last=1,
            eval_every=opts.eval_every,
        ),
    )


#: What report.json keeps of the probe with the colours exchanged, per direction.
PROBE_KEYS = (
    "shapes",
    "colour_correct",
    "colour_accuracy",
    "colour_confusion",
    "texture_right",
    "foreground_l1",
    "identity_colour_correct",
)

#: The numbers the learning curve follows, per direction.
CURVE_KEYS = ("colour_accuracy", "texture_accuracy", "foreground_l1", "l1", "psnr")


def _summary(table: dict[str, dict]) -> dict[str, float]:
    return {f"{key}_{direction}": row[key] for direction, row in table.items() for key in CURVE_KEYS}


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

    notify(
        f"building the shapes task: {opts.train_count} unpaired training images a domain, "
        f"{opts.test_count} test pairs, {opts.img_size}px"
    )
    data = make_shapes(size=opts.img_size, n_train=opts.train_count, n_test=opts.test_count, seed=opts.seed)
    write_shapes(
        out / "data",
        size=opts.img_size,
        n_train=opts.train_count,
        n_test=opts.test_count,
        seed=opts.seed,
        splits=("testA", "testB"),
    )  # the same images as data["testA"/"testB"]

    truth = ShapesTruth.of_task(opts.seed, opts.test_count)
    measure = lambda model: ground_truth_report(model, data["testA"], data["testB"], objects=truth)
    # The untrained model, built exactly as the trainer builds it, gives the step-0 numbers.
    seed_everything(opts.seed)
    initial = measure(UGATIT(config.model))
    curve: list[dict[str, float]] = [{"step": 0, **_summary(initial)}]

    def evaluate(model: UGATIT, step: int) -> dict[str, float]:
        metrics = _summary(measure(model))
        curve.append({"step": step, **metrics})
        return metrics

    notify(f"training a light U-GAT-IT (ch {opts.ch}, n_res {opts.n_res}) for {opts.iters} iterations on {opts.device}")
    result = train(
        config,
        data["trainA"],
        data["trainB"],
        out / "run",
        test_a=data["testA"][:4],
        test_b=data["testB"][:4],
        evaluate=evaluate,
        progress=opts.progress,
        tensorboard=False,
    )
    if result.interrupted:
        raise UserError(f"demo interrupted ({result.interrupted}) at step {result.step}; the run is in {out / 'run'}")

    model, _ = load_model(out / "run")
    final = measure(model)
    # The probe: the test scenes with the two colours exchanged (the blue shape the larger, which the
    # task never shows): does the model copy each shape's colour, or read it off the size?
    exchanged = truth.exchanged()
    probe_a, probe_b = exchanged.images("A", opts.img_size), exchanged.images("B", opts.img_size)
    probe = ground_truth_report(model, probe_a, probe_b, objects=exchanged)
    probe = {d: {k: row[k] for k in PROBE_KEYS} for d, row in probe.items()}
    collapsed = collapsed_baseline(truth, data["testA"], data["testB"], opts.img_size)
    for d, row in collapsed_baseline(exchanged, probe_a, probe_b, opts.img_size).items():
        collapsed[d].update(probe_colour_correct=row["colour_correct"], probe_colour_accuracy=row["colour_accuracy"])
    by_size = size_baseline(truth, data["testA"], data["testB"], opts.img_size)
    gallery = _translate_gallery(model, data, out / "translations")
    summary = {
        "task": "shapes",
        "headline": headline(final, collapsed),
        "verdicts": verdicts(final, collapsed, COLOUR_NAMES, probe),
        "config": config.to_dict(),
        "seconds": round(time.monotonic() - started, 1),
        "ground_truth": {"step_0": initial, "final": final},
        "probe_colours_exchanged": probe,
        "baselines": {"one_colour_for_all": collapsed, "colour_by_size": by_size},
        "curve": curve,
        "run": str(out / "run"),
    }
    write_json(summary, out / "report.json")
    page = write_report(out, summary, gallery, result.run_dir, truth.palettes, truth.shade)
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
            paths = {
                "input": t.source,
                "attention": t.attention_overlay(),
                "output": t.image,
                "ground truth": data[tgt][i],
            }
            row = {}
            for kind, img in paths.items():
                path = target_dir / f"{i:02d}_{kind.replace(' ', '_')}.png"
                img.save(path)
                row[kind] = str(path.relative_to(folder.parent))
            rows[direction].append(row)
    return rows
