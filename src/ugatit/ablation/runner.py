"""`ugatit ablate`: the paper's ablations trained side by side, evaluated alike, and reported.

Every variant (see `config.ABLATIONS`) trains under the same base config, for each seed: the same
iterations, data order (the loader is seeded by `train.seed`) and optimiser; only the model differs.
Each run goes through the library's `train()` into its own run folder, so a stopped ablation continues
run by run, each from its own last checkpoint (`train(resume=True)`); a run that was complete is only
evaluated if its metrics are missing, and a run with metrics is done. Then each run is measured on the
test split with the evaluation code `ugatit eval` uses: KID x 100 of both directions where a feature
extractor is available, and the ground-truth metrics where the data has ground truth (the built-in
tasks). The report (`report`) puts the variants side by side.

One device runs the runs in turn in this process; several (`AblationOptions.devices`) run one process
each at a time, in parallel (`run_on_devices`).
"""

from __future__ import annotations

import json
import multiprocessing
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ..config import check_config
from ..errors import UserError
from ..nn.sizes import check_model_config
from ..utils.files import write_json
from .options import AblationOptions
from .plan import RunSpec, check_variants, data_root, draw_task, run_specs, write_plan

T = TypeVar("T")
R = TypeVar("R")

#: How a run's own process (`_run_in_process`) tells this one that a signal stopped it after it saved: the
#: shell's exit status for that signal, 128 + its number.
STOPPED_STATUS = {name: 128 + signal.Signals[name].value for name in ("SIGINT", "SIGTERM")}

#: KID protocol of the table: the authors' (blocks of 10 in file order), as the paper's Table 1.
KID_PROTOCOL = "paper"


@dataclass(frozen=True)
class Measurement:
    """How runs are measured: KID with which extractor (when `kid`), on the test split of `data`."""

    data: Path
    kid: bool
    inception_weights: str | None = None
    feature_extractor: str | None = None
    note: str | None = None  # why there is no KID, when there is none

    def extractor(self, device: Any, download: bool = False):
        from ..metrics.features import custom_extractor
        from ..metrics.inception import load_fid_inception

        if self.feature_extractor:
            return custom_extractor(self.feature_extractor).to(device).eval()
        model, _ = load_fid_inception(self.inception_weights, device=device, download=download)
        return model


def measurement(opts: AblationOptions, root: Path) -> Measurement:
    """Decide, before anything trains, how the runs will be measured: KID needs a feature extractor
    (the FID Inception weights, or `feature_extractor`); without one, data with ground truth is still
    measured against it, and data without is refused (there would be nothing to compare)."""
    from ..evaluation import TestSplit

    paired = opts.task is not None or TestSplit(root).paired  # the built-in tasks have ground truth
    settings = Measurement(root, True, opts.inception_weights, opts.feature_extractor)
    if opts.inception_weights and opts.feature_extractor:
        raise UserError("`inception_weights` and `feature_extractor` exclude each other")
    try:
        settings.extractor("cpu", download=True)
    except UserError as exc:
        if not paired:
            raise UserError(f"{exc}; an ablation on data without ground truth needs KID") from None
        return Measurement(root, False, note=f"KID not measured: {exc}")
    return settings


def run_ablation(opts: AblationOptions, notify: Callable[[str], None] = print) -> dict[str, Any]:
    """Train, evaluate and report every variant and seed (see the module docstring); returns the
    report's JSON, with "interrupted" set when a signal stopped a run (the same call continues it)."""
    from ..utils.device import resolve_device
    from .report import write_report

    variants = check_variants(list(opts.variants))
    if opts.seeds < 1:
        raise UserError(f"`seeds` must be at least 1, got {opts.seeds}")
    seeds = list(range(opts.first_seed, opts.first_seed + opts.seeds))
    check_config(opts.config)
    for spec in run_specs(opts, variants, seeds[:1]):  # every variant builds, before anything is written
        check_model_config(spec.config.model)
    devices = list(opts.devices) or [opts.config.train.device]
    for device in devices:
        resolve_device(device)
    root = data_root(opts)
    settings = measurement(opts, root)  # before anything is written: KID may be impossible
    started, load_before = time.monotonic(), _load_average()
    plan = write_plan(opts, root, variants, seeds)
    if opts.task is not None:
        notify(f"drawing the {opts.task} task into {root} (once)")
        draw_task(opts)
    if settings.note:
        notify(settings.note)
    specs = run_specs(opts, tuple(plan["variants"]), plan["seeds"])
    pending = [spec for spec in specs if not spec.done]
    notify(
        f"ablation in {opts.out}: {len(plan['variants'])} variants x {len(plan['seeds'])} seeds, "
        f"{len(specs) - len(pending)} runs done, {len(pending)} to go, on {', '.join(devices)}"
    )
    interrupted = None
    if len(devices) == 1:
        for k, spec in enumerate(pending, 1):
            notify(f"[{k}/{len(pending)}] {spec.name}: {_describe(spec)}")
            interrupted = run_one(spec, devices[0], settings, progress=opts.progress, notify=notify)
            if interrupted:
                break
    else:
        interrupted = _run_parallel(pending, devices, settings, notify)
    summary = write_report(
        Path(opts.out),
        plan,
        specs,
        settings,
        time.monotonic() - started,
        opts.gallery,
        execution=_execution(devices),
        load=(load_before, _load_average()),
    )
    if interrupted:
        summary["interrupted"] = interrupted
    return summary


def _load_average() -> float | None:
    """The machine's 1-minute load average (None where the system does not say): how much other work
    shared it, for the report's timings."""
    import os

    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def _execution(devices: list[str]) -> str:
    """How the runs were executed, in words, for the report."""
    import torch

    if len(devices) == 1:
        threads = f", {torch.get_num_threads()} threads" if devices[0] == "cpu" else ""
        return f"one run at a time on {devices[0]}{threads}"
    cpu = sum(1 for d in devices if d == "cpu")
    threads = f", {max(1, torch.get_num_threads() // cpu)} thread(s) each on the CPU" if cpu else ""
    return f"{len(devices)} runs at a time, one process each on {', '.join(devices)}{threads}"


def _describe(spec: RunSpec) -> str:
    cfg = spec.config
    kind = "light" if cfg.model.light else "full"
    return f"{kind}, {cfg.model.img_size} px, ch {cfg.model.ch}, {cfg.optim.iterations} iterations, seed {spec.seed}"


# --- One run ----------------------------------------------------------------------------------------------


def run_one(
    spec: RunSpec,
    device: str,
    settings: Measurement,
    *,
    progress: bool = False,
    notify: Callable[[str], None] = print,
) -> str | None:
    """Train `spec` to its last iteration (continuing its own checkpoint), then evaluate it and write its
    metrics. Returns the signal that stopped its training early, or None."""
    from dataclasses import replace

    from ..data.images import find_images, load_rgb
    from ..evaluation import TestSplit
    from ..training import train
    from ..weights.checkpoints import latest_checkpoint

    config = spec.config.replace(train=replace(spec.config.train, device=device))
    split = TestSplit(settings.data)
    evaluate = _training_evaluator(split, settings, device) if config.train.eval_every else None
    sample = {d: [load_rgb(p) for p in find_images(settings.data / f"test{d}")[:4]] for d in "AB"}
    result = train(
        config,
        settings.data / "trainA",
        settings.data / "trainB",
        spec.run_dir,
        test_a=sample["A"],
        test_b=sample["B"],
        resume=latest_checkpoint(spec.run_dir) is not None,
        progress=progress,
        evaluate=evaluate,
        on_message=lambda text: notify(f"{spec.name}: {text}"),
        tensorboard=False,
    )
    if result.interrupted:
        return result.interrupted
    metrics = evaluate_run(spec, split, settings, device, result.step)
    write_json(metrics, spec.metrics_file)  # last: its presence marks the run done
    return None


def evaluate_run(spec: RunSpec, split, settings: Measurement, device: str, step: int) -> dict[str, Any]:
    """The run's final model measured on the test split: flat metrics (`kid_a2b`, `l1_b2a`, ...), the
    full evaluation report, its parameter counts and learned rho."""
    from ..evaluation import evaluate_model
    from ..metrics.kid import KIDSettings
    from ..nn.introspect import parameter_counts, rho_layers, rho_summary
    from ..utils.device import resolve_device
    from ..weights import load_model

    device = resolve_device(device)
    model, _ = load_model(spec.run_dir, device=device, discriminators=True)
    extractor = settings.extractor(device) if settings.kid else None
    report = evaluate_model(
        model,
        split.images("A"),
        split.images("B"),
        extractor=extractor,
        paired=split.paired,
        kid=KIDSettings(protocols=(KID_PROTOCOL,)),
        device=device,
        objects=split.objects,
    )
    return {
        "variant": spec.variant,
        "seed": spec.seed,
        "step": step,
        "train_seconds": _train_seconds(spec.run_dir),
        "metrics": flat_metrics(report),
        "parameters": parameter_counts(model),
        "rho": rho_summary(rho_layers(model)),
        "evaluation": report,
    }


def flat_metrics(report: dict[str, Any]) -> dict[str, float]:
    """{"kid_a2b": KID x 100, "l1_a2b": ..., "colour_accuracy_b2a": ...} from an `evaluate_model` report:
    every number per direction, named `<metric>_<direction>`."""
    flat: dict[str, float] = {}
    for direction, entry in report["directions"].items():
        kid = entry.get("metrics", {}).get(f"kid_{KID_PROTOCOL}")
        if kid is not None:
            flat[f"kid_{direction}"] = float(kid["value_x100"])
    for direction, row in report.get("ground_truth", {}).items():
        for key, value in row.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and not key.startswith("identity_"):
                flat[f"{key}_{direction}"] = float(value)
    return flat


def _train_seconds(run_dir: Path) -> float | None:
    """Training time of the run (all its sessions), from the last record of its log."""
    from ..training.run_dir import LOG_FILE

    seconds = None
    try:
        for line in (run_dir / LOG_FILE).read_text().splitlines():
            record = json.loads(line)
            if "time" in record:
                seconds = float(record["time"])
    except (OSError, ValueError):
        return None
    return seconds


def _training_evaluator(split, settings: Measurement, device: str):
    """The `evaluate` hook for `train.eval_every`: ground-truth metrics where the data has them, else KID
    (the curves of the report)."""
    from ..evaluation import ground_truth_report, kid_evaluator

    test_a, test_b = split.images("A"), split.images("B")
    if split.paired:

        def evaluate(model, step: int) -> dict[str, float]:
            table = ground_truth_report(model, test_a, test_b, objects=split.objects)
            return flat_metrics({"directions": {}, "ground_truth": table})

        return evaluate
    if settings.kid:
        from ..utils.device import resolve_device

        device = resolve_device(device)
        return kid_evaluator(test_a, test_b, settings.extractor(device), device=device, protocol=KID_PROTOCOL)
    return None


# --- Several devices ----------------------------------------------------------------------------------------


def run_on_devices(
    tasks: Sequence[T], devices: Sequence[str], work: Callable[[T, str], R], stop: threading.Event | None = None
) -> list[tuple[T, str, R]]:
    """Run every task once, in order, each on the first device that is free: a thread a device, each
    doing one task at a time with `work(task, device)` (which blocks until its task is done; the real
    one starts a process). `stop` set: no new task starts. Ctrl-C (KeyboardInterrupt) sets it, waits for
    the tasks under way to end (a child process got the signal too, and saves), then propagates.
    Returns (task, device, result) in the order the tasks finished."""
    stop = stop or threading.Event()
    queue = list(tasks)
    lock = threading.Lock()
    done: list[tuple[T, str, R]] = []
    errors: list[BaseException] = []

    def slot(device: str) -> None:
        while True:
            with lock:
                if not queue or errors or stop.is_set():
                    return
                task = queue.pop(0)
            try:
                result = work(task, device)
            except BaseException as exc:  # re-raised in the caller's thread
                with lock:
                    errors.append(exc)
                return
            with lock:
                done.append((task, device, result))

    threads = [threading.Thread(target=slot, args=(device,), daemon=True) for device in devices]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            thread.join()
    except KeyboardInterrupt:
        stop.set()
        for thread in threads:
            thread.join()
        raise
    if errors:
        raise errors[0]
    return done


def _run_parallel(pending: list[RunSpec], devices: list[str], settings: Measurement, notify) -> str | None:
    """`run_one` for each pending run in a process of its own, one at a time per device. CPU processes
    share the cores: each takes its part of the threads this process would use."""
    import torch

    cpu_slots = sum(1 for d in devices if d == "cpu")
    threads = max(1, torch.get_num_threads() // max(cpu_slots, 1))
    context = multiprocessing.get_context("spawn")
    stop = threading.Event()

    def work(spec: RunSpec, device: str) -> int:
        notify(f"{spec.name}: training on {device} ({_describe(spec)})")
        process = context.Process(
            target=_run_in_process, args=(spec, device, settings, threads if device == "cpu" else None)
        )
        process.start()
        process.join()
        if process.exitcode != 0:
            stop.set()  # a failed or stopped run stops the others from starting
        return process.exitcode

    try:
        results = run_on_devices(pending, devices, work, stop)
    except KeyboardInterrupt:  # the children got the signal too: they save and stop
        stop.set()
        return "SIGINT"
    failed = [(spec, code) for spec, _, code in results if code != 0]
    if not failed:
        return None
    interrupted = [spec for spec, code in failed if code in STOPPED_STATUS.values()]
    if interrupted and len(interrupted) == len(failed):
        return "SIGINT" if any(code == STOPPED_STATUS["SIGINT"] for _, code in failed) else "SIGTERM"
    names = ", ".join(f"{spec.name} (exit {code})" for spec, code in failed)
    raise UserError(f"ablation runs failed: {names}; their messages are above, their folders under runs/")


def _run_in_process(spec: RunSpec, device: str, settings: Measurement, threads: int | None) -> None:
    """A child process's whole life: one run, its exit status the outcome (0 done, 130/143 stopped by a
    signal, 2 a user error, said in one line). It stops, saving, when the ablation's process is gone (kill
    -9 of it alone): no run trains on unattended, holding its folder's lock."""
    import os
    import sys

    import torch

    from ..utils.parent_watch import stop_with_parent

    def say(text: str) -> None:
        print(text, file=sys.stderr)

    parent = os.getppid()
    stop_with_parent(
        parent, f"{spec.name}: ugatit ablate (pid {parent}) is gone: stopping this run as for a SIGTERM", say
    )
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        stopped = run_one(spec, device, settings, progress=False, notify=say)
    except UserError as exc:
        print(f"ugatit ablate: {spec.name}: error: {exc}", file=sys.stderr)
        sys.exit(2)
    if stopped:
        sys.exit(STOPPED_STATUS.get(stopped, 1))
