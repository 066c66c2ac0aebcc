"""What an ablation runs and where: the runs (variant x seed), the data, and the plan file that lets a
stopped ablation continue.

Output folder OUT:

    ablation.json               the plan: data, base config, variants, seeds (a later call must agree)
    data/                       a built-in task, drawn once (trainA, trainB, testA, testB, ground_truth.json)
    runs/<variant>/seed<k>/     one training run each (config.yaml, log.jsonl, checkpoints, rho.svg, ...)
                  metrics.json  its evaluation, written once the run is complete: the run is then done
    report.html, report.json    the report (see `report`); gallery_a2b.png, gallery_b2a.png
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..config import ABLATIONS, Config, ablation
from ..errors import UserError
from ..training.resume import RESUME_OVERRIDES
from ..utils.files import write_json
from .options import BUILT_IN_TASKS, AblationOptions

PLAN_FILE = "ablation.json"
PLAN_FORMAT = "ugatit-ablation-1"
METRICS_FILE = "metrics.json"
RUNS_DIR = "runs"
DATA_DIR = "data"
TASKS = BUILT_IN_TASKS
#: The seed the built-in task is drawn with: every run of every variant and seed sees the same images.
TASK_SEED = 0


#: Iterations of a run of the built-in tasks' preset (`task_config`).
TASK_ITERATIONS = 300


def task_config(iterations: int | None = None) -> Config:
    """The base config of an ablation on a built-in task: a light model at 48 px with 8 base channels
    and 2 residual blocks, batch 4, lr 5e-4 at the paper's loss weights (as `ugatit demo` trains), no
    resize margin (the tasks' outlines and squares have fixed sizes), on the CPU, a checkpoint every
    quarter of the run so that a stopped run loses little."""
    from ..config import DataConfig, ModelConfig, OptimConfig, TrainConfig

    iterations = iterations or TASK_ITERATIONS
    return Config(
        model=ModelConfig(img_size=48, ch=8, n_res=2, light=True),
        optim=OptimConfig(lr=5e-4, iterations=iterations),
        data=DataConfig(batch_size=4, num_workers=0, resize_margin=0),
        train=TrainConfig(
            device="cpu",
            log_every=10,
            sample_every=max(iterations // 2, 1),
            save_every=max(iterations // 4, 1),
            keep_last=1,
        ),
    )


@dataclass(frozen=True)
class RunSpec:
    """One training run of the ablation: a variant under one seed."""

    variant: str
    seed: int
    config: Config
    run_dir: Path

    @property
    def name(self) -> str:
        return f"{self.variant}/seed{self.seed}"

    @property
    def metrics_file(self) -> Path:
        return self.run_dir / METRICS_FILE

    @property
    def done(self) -> bool:
        """Trained to the end and evaluated (its metrics written)."""
        return self.metrics_file.is_file()


def check_variants(names: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The variant names, checked (each a key of `ABLATIONS` or several joined with "+"), in order and
    without repeats."""
    if not names:
        raise UserError(f"no variants given (known: {', '.join(ABLATIONS)})")
    for name in names:
        ablation(Config().model, name)  # raises for an unknown name
    return tuple(dict.fromkeys(names))


def run_specs(opts: AblationOptions, variants: tuple[str, ...], seeds: list[int]) -> list[RunSpec]:
    """Every run, variant by variant: the base config with the variant's model and the seed's
    `train.seed` (which seeds the weights and the data order); nothing else differs between runs."""
    base = opts.config
    return [
        RunSpec(
            variant,
            seed,
            base.replace(model=ablation(base.model, variant), train=replace(base.train, seed=seed)),
            Path(opts.out) / RUNS_DIR / variant / f"seed{seed}",
        )
        for variant in variants
        for seed in seeds
    ]


def identity(config: Config) -> dict[str, Any]:
    """The part of a base config that decides the results: all of it but how a run is executed (the
    keys a resumed run may change, except its length, which is the budget every variant shares)."""
    data = config.to_dict()
    for section, keys in RESUME_OVERRIDES.items():
        for key in keys:
            if (section, key) != ("optim", "iterations"):
                data[section].pop(key, None)
    return data


def _first_difference(a: dict[str, Any], b: dict[str, Any]) -> str:
    for section in a:
        for key in a[section]:
            if a[section][key] != b.get(section, {}).get(key):
                return f"{section}.{key}: {b.get(section, {}).get(key)!r} there, {a[section][key]!r} now"
    return "?"


def write_plan(opts: AblationOptions, data: Path, variants: tuple[str, ...], seeds: list[int]) -> dict[str, Any]:
    """Write (or extend) OUT/ablation.json and return it. A folder holding an ablation of another base
    config or another dataset is refused: its runs would not be comparable with the new ones. Variants
    and seeds add up: the plan holds every run asked for so far, in the order first asked."""
    out = Path(opts.out)
    path = out / PLAN_FILE
    plan = {
        "format": PLAN_FORMAT,
        "data": str(data),
        "task": opts.task,
        "base_config": identity(opts.config),
        "variants": list(variants),
        "seeds": list(seeds),
    }
    if path.is_file():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot read {path} ({exc}): choose another output folder") from None
        if old.get("format") != PLAN_FORMAT:
            raise UserError(f"{path} is not a ugatit ablation plan: choose another output folder")
        if old["data"] != plan["data"]:
            raise UserError(f"{out} holds an ablation on {old['data']}, not {data}: choose another output folder")
        if old["base_config"] != plan["base_config"]:
            difference = _first_difference(plan["base_config"], old["base_config"])
            raise UserError(
                f"{out} holds an ablation with other settings ({difference}): its runs would not compare with "
                "these; give the same settings to continue it, or choose another output folder"
            )
        plan["variants"] = list(dict.fromkeys([*old["variants"], *variants]))
        plan["seeds"] = sorted({*old["seeds"], *seeds})
    elif out.exists() and any(out.iterdir()):
        raise UserError(f"{out} is not empty and holds no ablation: choose another output folder")
    out.mkdir(parents=True, exist_ok=True)
    write_json(plan, path)
    return plan


def data_root(opts: AblationOptions) -> Path:
    """The dataset root the runs train on: `opts.data`, checked (trainA/trainB, and testA/testB to
    evaluate on), or OUT/data for a built-in task (drawn by `draw_task`). Writes nothing."""
    from ..data.images import resolve_domains

    if (opts.data is None) == (opts.task is None):
        raise UserError("give DATA (a dataset folder) or `task` (a built-in task: shapes, morph), one of them")
    if opts.data is not None:
        root = Path(opts.data)
        resolve_domains(root)
        try:
            resolve_domains(root, split="test")
        except UserError as exc:
            raise UserError(f"{exc}: an ablation evaluates every variant on the test split") from None
        return root
    if opts.task not in TASKS:
        raise UserError(f"unknown task {opts.task!r}: choose one of {', '.join(TASKS)}")
    return Path(opts.out) / DATA_DIR


def draw_task(opts: AblationOptions) -> None:
    """Draw the built-in task into OUT/data, once: a later call finds it and checks it is the same."""
    root = data_root(opts)
    size = opts.config.model.img_size
    wanted = {"task": opts.task, "size": size, "seed": TASK_SEED}
    counts = {
        "trainA": opts.train_count,
        "trainB": opts.train_count,
        "testA": opts.test_count,
        "testB": opts.test_count,
    }
    info_file = root / "ground_truth.json"
    if info_file.is_file():
        info = json.loads(info_file.read_text(encoding="utf-8"))
        if {key: info.get(key) for key in wanted} != wanted or info.get("counts") != counts:
            raise UserError(
                f"{root} holds another drawing of the task ({info.get('task')} at {info.get('size')} px, "
                f"{info.get('counts')}): give the same sizes and counts, or choose another output folder"
            )
        return
    # ground_truth.json comes last: a drawing cut short is drawn again, over the files it left.
    if opts.task == "morph":
        from ..demo.morph import write_morph

        write_morph(root, size=size, n_train=opts.train_count, n_test=opts.test_count, seed=TASK_SEED)
    else:
        from ..demo.shapes import write_shapes

        write_shapes(root, size=size, n_train=opts.train_count, n_test=opts.test_count, seed=TASK_SEED)
