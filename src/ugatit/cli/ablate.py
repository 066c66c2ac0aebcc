"""Train the paper's ablations side by side and report them: a table like its Table 1, with the spread
between seeds, the same test images translated by every variant, curves and the learned rho.

DATA is a dataset folder with trainA/, trainB/, testA/ and testB/ (the test split is where every variant
is measured), or --task draws a built-in task with ground truth into OUT/data: `shapes` (flat <->
outlined shapes) or `morph` (circles <-> the squares around them: a translation that must change shape).
Variants (--variants, comma-separated; join two with +, e.g. no-cam+ln): full (the paper's model),
no-g-cam, no-d-cam, no-cam (no CAM in the generators, the discriminators, both), adain, lin, in, ln, gn
(the decoder's normalisation instead of AdaLIN); docs/ablations.md defines each. Every variant trains
with each seed (--seeds N from --seed) under one base config: the same iterations, data order and
optimiser; only the model differs. The base config is the paper's for DATA, a demo-scale one for --task
(light, 48 px, ch 8, see `ugatit.ablation.plan.task_config`), changed by --config and the flags given.

Measured on the test split: KID x 100 of both directions (the paper's protocol; needs the FID Inception
weights, or --feature-extractor), and on data with ground truth its metrics (for the built-in tasks,
inside the shapes). Output: OUT/report.html and report.json, OUT/runs/<variant>/seed<k>/ (each a run
folder), OUT/ablation.json (the plan). Stopped (Ctrl-C, or killed), the same command continues where it
stopped, run by run, each from its own last checkpoint; more --variants or --seeds later add runs.
--devices cuda:0,cuda:1 runs one process per device in parallel (cpu,cpu: two CPU processes).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UserError
from . import SIGNAL_EXIT
from ._types import apply_config_flags, device_argument, non_negative_int, positive_float, positive_int

HELP = "train the paper's ablations (no CAM, other normalisations) side by side and report them"

#: Flag -> the base config key it sets.
CONFIG_FLAGS = {
    "--light": "model.light",
    "--img-size": "model.img_size",
    "--ch": "model.ch",
    "--n-res": "model.n_res",
    "--iters": "optim.iterations",
    "--lr": "optim.lr",
    "--batch-size": "data.batch_size",
    "--workers": "data.num_workers",
    "--device": "train.device",
    "--log-every": "train.log_every",
    "--save-every": "train.save_every",
    "--eval-every": "train.eval_every",
}

#: How library errors' terms read on this command line (see `ugatit.errors.reword`).
FLAGS = {
    **{key: flag for flag, key in CONFIG_FLAGS.items()},
    "task": "--task",
    "seeds": "--seeds",
    "feature_extractor": "--feature-extractor",
    "inception_weights": "--inception-weights",
    "weights": "--inception-weights",
    "devices": "--devices",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..ablation.options import BUILT_IN_TASKS, AblationOptions
    from ..config import ABLATIONS

    d = AblationOptions()
    unset = argparse.SUPPRESS
    parser.add_argument("data", nargs="?", metavar="DATA", help="dataset folder with trainA/, trainB/, testA/, testB/")
    parser.add_argument("--task", choices=BUILT_IN_TASKS, help="instead of DATA: draw this built-in task into OUT/data")
    parser.add_argument("--out", default=str(d.out), help="output folder (a stopped ablation continues in it)")
    parser.add_argument(
        "--variants",
        default=",".join(ABLATIONS),
        metavar="LIST",
        help="comma-separated variants: " + ", ".join(ABLATIONS) + " (join two with +)",
    )
    parser.add_argument("--seeds", type=positive_int, default=d.seeds, metavar="N", help="seeds a variant")
    parser.add_argument("--seed", type=int, default=d.first_seed, help="the first seed (then seed+1, ...)")
    parser.add_argument("--config", metavar="FILE", help="YAML or JSON base config; flags given override it")
    parser.add_argument("--iters", type=positive_int, default=unset, metavar="N", help="iterations of every run")
    parser.add_argument(
        "--light", action=argparse.BooleanOptionalAction, default=unset, help="the light model (--task: on)"
    )
    parser.add_argument("--img-size", type=positive_int, default=unset, metavar="N", help="image side in pixels")
    parser.add_argument("--ch", type=positive_int, default=unset, metavar="N", help="base channels")
    parser.add_argument("--n-res", type=positive_int, default=unset, metavar="N", help="residual blocks")
    parser.add_argument("--batch-size", type=positive_int, default=unset, metavar="N", help="batch size")
    parser.add_argument("--lr", type=positive_float, default=unset, metavar="X", help="Adam learning rate")
    parser.add_argument("--workers", type=non_negative_int, default=unset, metavar="N", help="data loading processes")
    parser.add_argument("--log-every", type=positive_int, default=unset, metavar="N", help="log.jsonl period")
    parser.add_argument(
        "--save-every", type=non_negative_int, default=unset, metavar="N", help="checkpoint period (0: at the end)"
    )
    parser.add_argument(
        "--eval-every",
        type=non_negative_int,
        default=unset,
        metavar="N",
        help="evaluate during training every N steps, for the report's curves (0: only at the end)",
    )
    device_argument(parser, default=unset)
    parser.add_argument(
        "--devices",
        metavar="LIST",
        help="run one process per device, in parallel (e.g. cuda:0,cuda:1; cpu,cpu on a machine with cores "
        "to spare); default: the runs in turn on --device",
    )
    parser.add_argument("--train-count", type=positive_int, default=d.train_count, help="--task: train images a domain")
    parser.add_argument("--test-count", type=positive_int, default=d.test_count, help="--task: test pairs")
    parser.add_argument(
        "--gallery", type=non_negative_int, default=d.gallery, help="test images a direction shown side by side"
    )
    parser.add_argument("--inception-weights", metavar="PATH", help="FID Inception weights for KID (see ugatit eval)")
    parser.add_argument(
        "--feature-extractor", metavar="MODULE:CALLABLE", help="advanced: another feature extractor for KID"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def build_options(args: argparse.Namespace):
    """The `AblationOptions` of a command line: base config (the paper's for DATA, the task preset for
    --task), then --config, then the flags given."""
    from ..ablation.options import AblationOptions
    from ..ablation.plan import task_config
    from ..config import Config

    given = vars(args)
    if (args.data is None) == (args.task is None):
        raise UserError("give DATA (a dataset folder) or --task shapes|morph, one of them")
    config = task_config(given.get("iters")) if args.task else Config()
    if args.config:
        config = Config.load(Path(args.config), base=config)
    config, _ = apply_config_flags(config, given, CONFIG_FLAGS)
    variants = tuple(v.strip() for v in args.variants.split(",") if v.strip())
    devices = tuple(d.strip() for d in args.devices.split(",") if d.strip()) if args.devices else ()
    return AblationOptions(
        out=Path(args.out),
        data=Path(args.data) if args.data else None,
        task=args.task,
        variants=variants,
        seeds=args.seeds,
        first_seed=args.seed,
        config=config,
        devices=devices,
        train_count=args.train_count,
        test_count=args.test_count,
        gallery=args.gallery,
        inception_weights=args.inception_weights,
        feature_extractor=args.feature_extractor,
        progress=not args.no_progress,
    )


def run(args: argparse.Namespace) -> int:
    from ..ablation.runner import run_ablation
    from ..config import retired_keys_in
    from ..errors import reword
    from ..utils.console import notify

    opts = build_options(args)
    if args.config:
        for notice in retired_keys_in(Path(args.config)):
            notify(reword(notice, FLAGS))
    summary = run_ablation(opts, notify=lambda text: notify(reword(text, FLAGS)))
    print(f"report: {summary['report']} ({summary['runs_done']} of {summary['runs_planned']} runs done)")
    if summary.get("interrupted"):
        print(f"stopped by {summary['interrupted']}: run the same command to continue where it stopped")
        return SIGNAL_EXIT.get(summary["interrupted"], 1)
    return 0
