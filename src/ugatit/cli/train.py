"""Train U-GAT-IT on two unpaired image folders.

DATA is a dataset folder with trainA/ and trainB/ (testA/ and testB/, when present, add test rows to
the sample grids); --domain-a and --domain-b name the two folders instead. Settings are the paper's,
changed by a --config file (YAML or JSON, any key of the config), changed in turn by the flags given.

The run directory (--out, default runs/<dataset>) receives config.yaml, log.jsonl, tensorboard/,
samples/, checkpoints/ (the newest --keep-last) and, when the run completes, export/ (the generators
for `ugatit translate`). Ctrl-C or SIGTERM finishes the current iteration, saves a checkpoint and exits
(130 / 143); a second Ctrl-C aborts at once. --resume continues the latest checkpoint exactly: the
checkpoint's settings are kept, except --iters and how the run executes (device, precision, workers,
frequencies, --keep-last, --channels-last, --compile, --eager). --override KEY=VALUE changes an optimiser or
loss setting of a resumed run on the record (log.jsonl, config.yaml), e.g. `--resume --override
lr=5e-5` to continue a run that diverged. --init-from starts a new run from imported weights of the
official architecture (an official PyTorch checkpoint, PaddleGAN .pdparams, one of our checkpoints or
exports) to fine-tune them on DATA: the model's architecture comes from that file (a light model may
train at another --img-size); networks it lacks (the discriminators of a generator-only file) start from
the paper's init. Image files are checked before training (see `ugatit check-data`); one trainer at a
time may use a run directory; a full disk stops the run with the last good checkpoint named.
--no-g-cam, --no-d-cam and --decoder-norm train the paper's ablations (docs/ablations.md; `ugatit ablate`
trains several side by side); a resumed run keeps its own, and giving another one is refused.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from ..config import DECODER_NORMS
from ..errors import UserError
from . import SIGNAL_EXIT
from ._types import apply_config_flags, device_argument, non_negative_int, paper_default, positive_float, positive_int

HELP = "train a model on two unpaired image folders (trainA/, trainB/)"

#: Flag -> the config key it sets: the one map between the command line and `ugatit.config.Config`.
#: Flags the user leaves out keep the value of the config file (or the paper's).
CONFIG_FLAGS = {
    "--light": "model.light",
    "--img-size": "model.img_size",
    "--ch": "model.ch",
    "--n-res": "model.n_res",
    "--g-cam": "model.g_cam",
    "--d-cam": "model.d_cam",
    "--decoder-norm": "model.decoder_norm",
    "--iters": "optim.iterations",
    "--lr": "optim.lr",
    "--batch-size": "data.batch_size",
    "--workers": "data.num_workers",
    "--precision": "train.precision",
    "--device": "train.device",
    "--seed": "train.seed",
    "--channels-last": "train.channels_last",
    "--compile": "train.compile",
    "--eager": "train.eager",
    "--log-every": "train.log_every",
    "--sample-every": "train.sample_every",
    "--save-every": "train.save_every",
    "--keep-last": "train.keep_last",
    "--eval-every": "train.eval_every",
}

#: How library errors' terms read on this command line (see `ugatit.errors.reword`). The CAM switches
#: stay config keys: "`model.g_cam=False`" reads better than "no --g-cam".
FLAGS = {
    **{key: flag for flag, key in CONFIG_FLAGS.items() if key not in ("model.g_cam", "model.d_cam")},
    "device": "--device",
    "resume": "--resume",
    "run_dir": "output folder (--out)",
    "weights": "--inception-weights",
    "feature_extractor": "--feature-extractor",
    "overrides": "--override",
    "domain_a": "--domain-a",
    "domain_b": "--domain-b",
    "world_size": "--nproc",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # Every option defaults to SUPPRESS: absent from the namespace unless given, so only what the user
    # typed changes the config, and the help shows the paper's values rather than "(default: None)".
    unset = argparse.SUPPRESS
    data = parser.add_argument_group("data")
    data.add_argument(
        "data",
        nargs="?",
        default=unset,
        metavar="DATA",
        help="dataset folder with trainA/ and trainB/ (+ testA/, testB/)",
    )
    data.add_argument("--domain-a", default=unset, metavar="DIR", help="folder of domain A images (instead of DATA)")
    data.add_argument("--domain-b", default=unset, metavar="DIR", help="folder of domain B images (instead of DATA)")
    data.add_argument(
        "--workers",
        type=non_negative_int,
        default=unset,
        metavar="N",
        help="data loading processes (default: 2, or up to 6 when training on CUDA: enough for 60 it/s)",
    )

    run = parser.add_argument_group("run")
    run.add_argument("--out", default=unset, metavar="RUN_DIR", help="run directory (default: runs/<dataset name>)")
    run.add_argument("--config", default=unset, metavar="FILE", help="YAML or JSON config; flags given override it")
    run.add_argument(
        "--resume", action="store_true", default=unset, help="continue the latest checkpoint in the run directory"
    )
    run.add_argument(
        "--override",
        action="append",
        default=unset,
        metavar="KEY=VALUE",
        help="with --resume: change an optimiser or loss setting of the run, recorded in log.jsonl "
        "and config.yaml (KEY: a flag such as lr, or a config key such as optim.lr or loss.cam_weight)",
    )
    run.add_argument(
        "--init-from",
        default=unset,
        metavar="SRC",
        help="start a new run from these weights (official "
        "PyTorch, PaddleGAN .pdparams, ours); the architecture comes from SRC",
    )
    _config_option(run, "--iters", type=positive_int, metavar="N", help="total iterations (paper: {default})")
    run.add_argument(
        "--nproc",
        type=positive_int,
        default=unset,
        metavar="N",
        help="train on N processes of this "
        "machine (torchrun --standalone; N GPUs, or N CPU processes), each with --batch-size images: "
        "the global batch is N x --batch-size; see docs/distributed.md",
    )
    device_argument(run, default=unset)
    _config_option(run, "--precision", choices=["fp32", "bf16"], help="compute precision (default {default})")
    run.add_argument(
        "--channels-last", action=argparse.BooleanOptionalAction, default=unset, help="channels-last memory layout"
    )
    run.add_argument(
        "--compile", action=argparse.BooleanOptionalAction, default=unset, help="torch.compile the networks"
    )
    run.add_argument(
        "--eager",
        action=argparse.BooleanOptionalAction,
        default=unset,
        help="CUDA: plain eager iterations, without the fast path (cuDNN autotuning, one CUDA graph "
        "per iteration, losses read at log/save time); the same updates either way",
    )
    _config_option(run, "--seed", type=int, help="seed of the weights and the data order (default {default})")
    _config_option(
        run, "--log-every", type=positive_int, metavar="N", help="log.jsonl/TensorBoard period (default {default})"
    )
    _config_option(
        run,
        "--sample-every",
        type=non_negative_int,
        metavar="N",
        help="sample grid period, 0: none (default {default})",
    )
    _config_option(
        run,
        "--save-every",
        type=non_negative_int,
        metavar="N",
        help="checkpoint period, 0: only at the end (default {default})",
    )
    _config_option(
        run, "--keep-last", type=non_negative_int, metavar="N", help="checkpoints kept, 0: all (default {default})"
    )
    run.add_argument("--no-progress", action="store_true", default=unset, help="no progress bar")
    evaluation = parser.add_argument_group("evaluation during training (needs testA/ and testB/)")
    _config_option(
        evaluation,
        "--eval-every",
        type=non_negative_int,
        metavar="N",
        help="KID x100 of both directions on the test split every N steps (paper protocol), logged; the lowest "
        "mean is kept as checkpoints/best.pt (0: off; default {default})",
    )
    evaluation.add_argument(
        "--inception-weights",
        default=unset,
        metavar="PATH",
        help="FID Inception weights for --eval-every (see ugatit eval)",
    )
    evaluation.add_argument(
        "--feature-extractor",
        default=unset,
        metavar="MODULE:CALLABLE",
        help="advanced: another feature extractor for --eval-every (see ugatit eval)",
    )

    model = parser.add_argument_group("model and optimisation")
    _config_option(
        model,
        "--light",
        action=argparse.BooleanOptionalAction,
        help="the light model (default: {default}, the full model)",
    )
    _config_option(model, "--img-size", type=positive_int, metavar="N", help="image side in pixels (default {default})")
    _config_option(model, "--ch", type=positive_int, metavar="N", help="base channels (default {default})")
    _config_option(model, "--n-res", type=positive_int, metavar="N", help="residual blocks (default {default})")
    _config_option(
        model,
        "--g-cam",
        action=argparse.BooleanOptionalAction,
        help="the generators' CAM attention; --no-g-cam is the paper's ablation without it (default: {default})",
    )
    _config_option(
        model,
        "--d-cam",
        action=argparse.BooleanOptionalAction,
        help="the discriminators' CAM attention; --no-d-cam is the paper's ablation without it (default: {default})",
    )
    _config_option(
        model,
        "--decoder-norm",
        choices=DECODER_NORMS,
        help="the decoder's normalisation: adalin (the paper's), or an ablation: adain, lin, in, ln, gn "
        "(docs/ablations.md; default {default})",
    )
    _config_option(model, "--batch-size", type=positive_int, metavar="N", help="batch size (default {default})")
    _config_option(model, "--lr", type=positive_float, metavar="X", help="Adam learning rate (default {default})")


def _config_option(group, flag: str, *names: str, help: str, **kwargs) -> None:
    """A flag that sets a config key (`CONFIG_FLAGS`). It is absent from the namespace unless given (see
    `add_arguments`), and `{default}` in its help is the key's default: the config's, not a copy."""
    help = help.format(default=paper_default(CONFIG_FLAGS[flag]))
    group.add_argument(flag, *names, default=argparse.SUPPRESS, help=help, **kwargs)


def run(args: argparse.Namespace) -> int:
    from .. import training
    from ..config import retired_keys_in
    from ..errors import reword
    from ..training.distributed import Distributed
    from ..utils.console import notify

    def on_message(text: str) -> None:  # library notices in this command line's terms
        notify(reword(text, FLAGS))

    given = vars(args)  # only the options the user typed (see add_arguments)
    dist = Distributed.from_environment()
    if given.get("nproc", 1) > 1 and not dist.enabled:  # relaunch on N processes; inside them, train
        _data_folders(given)  # a mistyped folder fails here, once, not in every rank
        return _launch_local(given["nproc"], ["train", *_without_nproc(args._argv[1:])])
    folders = _data_folders(given)
    out = Path(given["out"]) if "out" in given else Path("runs") / folders["name"]
    resume = given.get("resume", False)
    overrides = _overrides(given.get("override", []))
    config, chosen = _build_config(given)
    if "config" in given and dist.is_main:  # rank 0 speaks for the job
        for notice in retired_keys_in(Path(given["config"])):
            on_message(notice)
    init = _init_weights(given, resume)
    if init is not None:
        config = config.replace(model=_imported_model(config.model, init))
        others = "from the file" if init.has_discriminators else "from the paper's init (the file has none)"
        if dist.is_main:
            on_message(f"starting from {init.kind} {given['init_from']}; discriminators {others}")

    def evaluator(settled):  # KID for --eval-every, from the run's settings (a resumed run's own)
        return _kid_evaluator(given, folders, settled) if settled.train.eval_every else None

    try:
        result = training.train(
            config,
            folders["trainA"],
            folders["trainB"],
            out,
            test_a=folders.get("testA"),
            test_b=folders.get("testB"),
            resume=resume,
            given=chosen,
            overrides=overrides,
            progress=not given.get("no_progress", False),
            evaluator=evaluator,
            on_message=on_message,
            init_weights=init.networks if init is not None else None,
        )
    except UserError as exc:
        if dist.is_main:
            _print_way_on(exc, given, out)
        raise
    if not dist.is_main:
        # Rank 0 reports how the job ended, a stop by a signal included: were the others to exit with
        # 143 first, torchrun would count them failed and end rank 0 before it has said what to type next.
        return 0
    _print_summary(result, given)
    return SIGNAL_EXIT.get(result.interrupted, 1) if result.interrupted else 0


def _launch_local(nproc: int, argv: list[str]) -> int:
    """Run `ugatit <argv>` on `nproc` processes of this machine, as `torchrun --standalone
    --nproc-per-node N -m ugatit ...` would, with torchrun's agent in this process; returns the exit
    status. A signal ends it with 128 + the signal's number once the ranks have saved (the agent passes
    the signal on), and so do ranks that a signal stopped (one sent to a rank rather than to this
    process: they agree to stop and save); a rank that fails ends it with a `RankFailed` naming the rank
    and its exit code. The ranks stop when this process is gone (`training.distributed.die_with_launcher`)."""
    import os
    import signal

    from torch.distributed import run
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    from ..training.distributed import LAUNCHER_PID_ENV, RankFailed

    os.environ[LAUNCHER_PID_ENV] = str(os.getpid())  # inherited by the ranks
    try:
        run.main(["--standalone", f"--nproc-per-node={nproc}", "--module", "ugatit", *argv])
    except SignalException as exc:
        return 128 + int(exc.sigval)
    except ChildFailedError as exc:
        # Stopped by a signal (and saved): rank 0 exits 130 or 143, the others 0 (see `run`); one that
        # torchrun ended with its own SIGTERM because rank 0 was done first exits -15.
        codes = {failure.exitcode for failure in exc.failures.values()}
        stopped = set(SIGNAL_EXIT.values())
        if codes & stopped and codes <= stopped | {-signal.SIGTERM}:
            return max(codes)
        rank, failure = exc.get_first_failure()  # the root cause: the others failed because of it
        raise RankFailed(
            f"rank {rank} of {nproc} failed with exit code {failure.exitcode} (its message is above); "
            "torchrun stopped the others"
        ) from None
    return 0


def _without_nproc(argv: list[str]) -> list[str]:
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            kept.append(arg)
    return kept


def _overrides(texts: list[str]) -> dict[str, Any]:
    """--override KEY=VALUE, ... as {"optim.lr": value}: KEY is a config key or a flag's name (lr, --lr);
    VALUE is read as YAML (numbers, true/false), the config checks its type."""
    import yaml

    found: dict[str, Any] = {}
    for text in texts:
        key, sep, value = text.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UserError(f"--override takes KEY=VALUE (e.g. lr=5e-5), got {text!r}")
        flag = key if key.startswith("--") else f"--{key}"
        key = CONFIG_FLAGS.get(flag, key)
        try:
            found[key] = yaml.safe_load(value)
        except yaml.YAMLError:
            found[key] = value
    return found


def _init_weights(given: dict[str, Any], resume: bool):
    if "init_from" not in given:
        return None
    if resume:
        raise UserError("--init-from starts a new run and --resume continues one: give only one of them")
    from ..weights.loading import read_weights

    weights = read_weights(given["init_from"])
    if weights.config.model.variant != "official":
        raise UserError(
            f"--init-from {given['init_from']}: a {weights.kind} runs the authors' TF networks "
            f"(variant {weights.config.model.variant}), which are not trained here; official PyTorch "
            "or PaddleGAN weights can be"
        )
    return weights


def _imported_model(model, weights):
    """The run's model section: the imported architecture. Values set away from the paper's by a flag or
    --config must agree with it, except the size of a light model, which trains at any size."""
    from dataclasses import replace

    from ..config import ModelConfig

    imported, paper = weights.config.model, ModelConfig()
    keys = ("light", "ch", "n_res", "g_cam", "d_cam", "decoder_norm") + (() if imported.light else ("img_size",))
    for key in keys:
        value = getattr(model, key)
        if value != getattr(paper, key) and value != getattr(imported, key):
            raise UserError(
                f"`model.{key}` is {value}, but --init-from {weights.path} holds a model with "
                f"{key}={getattr(imported, key)}"
            )
    img_size = model.img_size if imported.light else imported.img_size
    depths = {} if weights.has_discriminators else {"n_layers_global": None, "n_layers_local": None}
    return replace(imported, img_size=img_size, init=model.init, **depths)


def _kid_evaluator(given: dict[str, Any], folders: dict[str, Any], config):
    """KID on the test split for --eval-every, with the extractor loaded (or refused) before training."""
    from ..data.images import find_images, load_rgb
    from ..evaluation import kid_evaluator
    from ..metrics.features import custom_extractor
    from ..utils.device import resolve_device

    if "testA" not in folders or "testB" not in folders:
        raise UserError("--eval-every needs a test split: DATA/testA and DATA/testB")
    device = resolve_device(config.train.device)
    if "feature_extractor" in given:
        extractor = custom_extractor(given["feature_extractor"]).to(device)
    else:
        from ..metrics.inception import load_fid_inception

        extractor, _ = load_fid_inception(given.get("inception_weights"), device=device)
    test = {d: [load_rgb(p) for p in find_images(folders[f"test{d}"])] for d in "AB"}
    return kid_evaluator(test["A"], test["B"], extractor, device=device)


def _data_folders(given: dict[str, Any]) -> dict[str, Any]:
    """trainA/trainB (+ testA/testB where they exist) and a name for the default run directory."""
    from ..data.images import resolve_domains

    explicit = "domain_a" in given or "domain_b" in given
    if "data" in given and explicit:
        raise UserError("give DATA or --domain-a/--domain-b, not both")
    if "data" not in given and not explicit:
        raise UserError("no data: give DATA (a folder with trainA/ and trainB/) or --domain-a and --domain-b")
    if "data" in given:
        root = Path(given["data"])
        train_a, train_b = resolve_domains(root)
        found = {"trainA": train_a, "trainB": train_b, "name": root.resolve().name}
        for split in ("testA", "testB"):
            if (root / split).is_dir():
                found[split] = root / split
        return found
    train_a, train_b = resolve_domains(domain_a=given.get("domain_a"), domain_b=given.get("domain_b"))
    a, b = train_a.resolve(), train_b.resolve()
    name = a.parent.name if a.parent == b.parent else f"{a.name}2{b.name}"
    return {"trainA": train_a, "trainB": train_b, "name": name}


def _build_config(given: dict[str, Any]):
    """The paper's config, then the --config file's keys, then flags; and the keys these two chose (a
    resumed run keeps its own settings for the others: the trainer decides which it may change)."""
    from ..config import Config, read_config_file

    config, chosen = Config(), set()
    if "config" in given:
        path = Path(given["config"])
        config = Config.load(path)
        chosen = {
            f"{s}.{k}" for s, values in read_config_file(path).items() if isinstance(values, dict) for k in values
        }
    config, flagged = apply_config_flags(config, given, CONFIG_FLAGS)
    return config, chosen | flagged


def _print_summary(result, given: dict[str, Any]) -> None:
    if result.interrupted:
        print(
            f"stopped by {result.interrupted} at step {result.step} of {result.iterations}; "
            f"checkpoint: {result.checkpoint}"
        )
        # flushed at once: a process may be ended (a signal) before its interpreter flushes at exit, and this
        # line is what continues the run
        print(f"continue with: {_resume_command(given, result.run_dir)}", flush=True)
        return
    print(f"done: step {result.step} of {result.iterations} in {result.run_dir}")
    print(f"  checkpoint: {result.checkpoint}")
    if result.best is not None:
        print(f"  best:       {result.best}")
    print(f"  export:     {result.export}")
    if result.samples is not None:
        print(f"  samples:    {result.samples}")
    print(f"  log:        {result.log}")
    if result.tensorboard is not None:
        print(f"  tensorboard --logdir {result.tensorboard}")
    sys.stdout.flush()  # as above: what the run made is named even if the process is ended before its exit


def _print_way_on(error: UserError, given: dict[str, Any], out: Path) -> None:
    """After a run stopped by a divergence or a full disk: the command that continues it, on stdout (the
    error itself is the one line on stderr)."""
    from ..training import TrainingDiverged
    from ..training.storage import RunWriteError

    if not isinstance(error, (TrainingDiverged, RunWriteError)) or error.checkpoint is None:
        return
    command = _resume_command(given, out)
    if isinstance(error, TrainingDiverged):
        lr = f"{error.lr / 2:g}" if error.lr else "X"
        print(f"continue from {error.checkpoint} with a smaller learning rate: {command} --override lr={lr}")
    else:
        print(f"once there is space, continue from {error.checkpoint} with: {command}")


def _resume_command(given: dict[str, Any], out: Path) -> str:
    """The command that continues the run exactly: its data and folder, --resume, and what the run folder
    does not record: how many processes train (the global batch and each rank's share of the data
    depend on it) and the extractor that --eval-every measures with."""
    import os

    from ..training.distributed import LAUNCHER_PID_ENV, Distributed

    words = [_data_arguments(given), "--out", shlex.quote(str(out)), "--resume"]
    for key in ("inception_weights", "feature_extractor"):
        if key in given:
            words += [f"--{key.replace('_', '-')}", shlex.quote(str(given[key]))]
    command = " ".join(words)
    dist = Distributed.from_environment()
    if not dist.enabled:
        return f"ugatit train {command}"
    if os.environ.get(LAUNCHER_PID_ENV):  # started by --nproc
        return f"ugatit train {command} --nproc {dist.world_size}"
    nodes = int(os.environ.get("GROUP_WORLD_SIZE", "1") or 1)
    if nodes == 1:
        return f"torchrun --standalone --nproc-per-node {dist.world_size} -m ugatit train {command}"
    return f"torchrun <as before: {dist.world_size} processes on {nodes} nodes> -m ugatit train {command}"


def _data_arguments(given: dict[str, Any]) -> str:
    """The data part of the command line, enough to resume: the run keeps everything else."""
    if "data" in given:
        return shlex.quote(given["data"])
    return f"--domain-a {shlex.quote(given['domain_a'])} --domain-b {shlex.quote(given['domain_b'])}"
