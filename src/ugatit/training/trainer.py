"""The training loop: iterations, progress, logs, sample grids, checkpoints, signals, resume.

`train(config, data_a, data_b, run_dir)` runs U-GAT-IT from step 0 (or, with `resume=True`, from the
latest checkpoint in `run_dir`) to `config.optim.iterations`, writing the run folder that
`ugatit.training.run_dir` describes.

Resuming is exact: networks, optimisers, step, RNG states and the data position are restored, so a run
stopped at step k and resumed reaches step n with the weights an uninterrupted run has (bit-identical
on CPU). The checkpoint's config wins, except how long and how the run is executed
(`RESUME_OVERRIDES`) and what `overrides` changes explicitly. SIGINT and SIGTERM finish the current
iteration, save and return; a second SIGINT aborts at once (a repeated SIGTERM does not: schedulers
send more than one). On several processes the ranks first agree on stopping, and the loop and the save
follow only that agreement (see `Trainer.stopping`). A non-finite loss (or weight) stops the run
with `TrainingDiverged` before anything of the broken state is written; a run folder that cannot be
written (a full disk) stops it with `RunWriteError`. One trainer at a time holds a run folder
(`RunLock`); a checkpoint that cannot be read is passed over for the one before it.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

import torch

from ..config import Config, check_config
from ..data.scan import ScanResult, scan_sources
from ..data.sources import Source, SourceLike, as_source
from ..data.unpaired import UnpairedLoader
from ..errors import UserError
from ..nn.model import UGATIT
from ..nn.sizes import check_model_config
from ..utils.console import notify, progress_bar
from ..utils.device import resolve_device
from ..utils.rng import preserved_rng, restore_rng_state, seed_everything
from ..weights import checkpoints
from ..weights.export import export_generators
from .distributed import Distributed, describe
from .divergence import LossGuard, TrainingDiverged, nonfinite_parameters
from .fast import checks_losses_every_step, fast_step
from .lock import RunLock
from .memory import check_memory, local_processes
from .projection import Projection
from .result import TrainResult
from .resume import apply_overrides, resume_config
from .run_dir import (
    BEST_FILE,
    BEST_METRIC,
    CONFIG_FILE,
    EXPORT_FILE,
    LOG_FILE,
    RHO_PLOT,
    SAMPLES_DIR,
    TENSORBOARD_DIR,
    JsonlLog,
    NullLog,
    TensorBoard,
    announce,
    make_run_dir,
    remove_unfinished_writes,
    resumable_checkpoint,
    rho_statistics,
    run_to_resume,
    sample_grid,
    sample_images,
    save_png,
    write_rho_plot,
)
from .signals import MessageHook, StopRequest
from .step import TrainingStep, learning_rate, prepare_model
from .storage import WriteFailed, run_write_error, writing

#: Stop requests as numbers for the ranks' agreement (a max over ranks): the signals' own.
STOP_CODES = {"SIGINT": 2, "SIGTERM": 15}

__all__ = ["TrainResult", "Trainer", "TrainingDiverged", "train"]

LogHook = Callable[[int, dict[str, float]], None]
SampleHook = Callable[[int, dict[str, Path]], None]
EvaluateHook = Callable[[UGATIT, int], dict[str, float]]
#: Unreadable images named one by one at the start (all of them go to log.jsonl).
SHOWN_BAD_IMAGES = 10


def train(config: Config, data_a: SourceLike, data_b: SourceLike, run_dir: str | Path, **options: Any) -> TrainResult:
    """Train to `config.optim.iterations` and return a `TrainResult` (see the module docstring).

    data_a / data_b are folders or sequences of PIL images; `options` are `Trainer`'s keyword
    arguments: test_a, test_b, resume, given, overrides, progress, on_log, on_sample, evaluate,
    evaluator, on_message, tensorboard, sample_rows, init_weights.
    """
    return Trainer(config, data_a, data_b, run_dir, **options).run()


# --- The trainer ----------------------------------------------------------------------------------------


class Trainer:
    """One training session: `Trainer(...).run()` is `train(...)`.

    test_a / test_b (folders or image sequences, optional) add test rows to the sample grids. Hooks:
    `on_log(step, losses)` after each log record; `on_sample(step, {name: path})` after each set of
    grids; `evaluate(model, step) -> {metric: value}` every `train.eval_every` steps, under no_grad
    and with the RNG states put back afterwards (a `kid` lower than any before saves
    checkpoints/best.pt); `on_message(text)` receives notices (default: stderr, above the progress
    bar). A hook raising KeyboardInterrupt stops the run as Ctrl-C does. `tensorboard=False` skips
    TensorBoard even where it is installed; `sample_rows` is the number of images in a grid.
    `evaluator(config)`, instead of `evaluate`, builds that hook (or None) from the run's config once it
    is settled (a resumed run's is its checkpoint's), before anything is written.
    A resumed run keeps its checkpoint's config but for the keys of `config` that `resume.RESUME_OVERRIDES`
    lets it change; `given` (config keys, "optim.iterations", ...) names the keys the caller chose, the
    others staying the run's (None: every key of `config` is chosen). `overrides` ({"optim.lr": 5e-5};
    with `resume` only) changes the optimiser or loss settings of the resumed run, on the record (see
    `resume.OVERRIDABLE_SECTIONS`). `init_weights` (official-layout state
    dicts, e.g. `weights.loading.read_weights(path).networks`) starts a new run from imported networks.
    """

    def __init__(
        self,
        config: Config,
        data_a: SourceLike,
        data_b: SourceLike,
        run_dir: str | Path,
        *,
        test_a: SourceLike | None = None,
        test_b: SourceLike | None = None,
        resume: bool = False,
        given: Collection[str] | None = None,
        overrides: Mapping[str, Any] | None = None,
        progress: bool = True,
        on_log: LogHook | None = None,
        on_sample: SampleHook | None = None,
        evaluate: EvaluateHook | None = None,
        evaluator: Callable[[Config], EvaluateHook | None] | None = None,
        on_message: MessageHook | None = None,
        tensorboard: bool = True,
        sample_rows: int = 4,
        init_weights: dict[str, dict[str, torch.Tensor]] | None = None,
        distributed: Distributed | None = None,
    ):
        self.requested = config
        self.data = (data_a, data_b)
        self.test_data = {"A": test_a, "B": test_b}
        self.run_dir = Path(run_dir)
        self.resume = resume
        self.given = None if given is None else set(given)
        self.overrides = dict(overrides or {})
        self.progress = progress
        self.on_log, self.on_sample, self.evaluate = on_log, on_sample, evaluate
        if evaluate is not None and evaluator is not None:
            raise ValueError("give `evaluate` or `evaluator`, not both")
        self.evaluator = evaluator
        self.notify = on_message or notify
        self.use_tensorboard = tensorboard
        self.sample_rows = sample_rows
        self.init_weights = init_weights
        # Under torchrun every rank trains; rank 0 alone writes the folder and speaks.
        self.dist = distributed or Distributed.from_environment()
        if not self.dist.is_main:
            self.notify, self.progress, self.on_log, self.on_sample, self.evaluate = _quiet, False, None, None, None

        self.step = 0
        self.losses: dict[str, float] = {}
        self.best: dict[str, Any] | None = None
        self.last_checkpoint: Path | None = None
        self._saved_step: int | None = None  # the step of last_checkpoint
        self._overridden: list[dict[str, Any]] = []
        self._elapsed_before = 0.0  # training time of earlier sessions of this run
        self._reported_images: set[str] = set()
        self._agreed_stop: str | None = None  # distributed: the stop every rank agreed on

    # --- Set-up ---------------------------------------------------------------------------------------

    def run(self) -> TrainResult:
        # Everything that can be checked is checked before the run folder is created, so that a
        # mistake leaves nothing behind.
        check_config(self.requested)
        check_model_config(self.requested.model)
        resolve_device(self.requested.train.device)
        if self.overrides and not self.resume:
            raise UserError(
                "`overrides` change a run only when resuming (`resume=True`); a new run takes "
                "every setting from its config"
            )
        sources = [as_source(data, label=f"domain {d}") for data, d in zip(self.data, "AB")]
        scan = scan_sources(sources) if self.dist.is_main else None
        with contextlib.ExitStack() as cleanup:
            # each CUDA rank takes the GPU of its local rank
            local_rank = self.dist.local_rank if self.dist.enabled else None
            self.device = resolve_device(self.requested.train.device, local_rank=local_rank)
            self.dist.start(self.device, notify=self.notify)
            cleanup.callback(self.dist.stop)
            if self.dist.is_main:  # the one process that writes the folder holds it and tidies it first
                lock = cleanup.enter_context(RunLock(self.run_dir, self.notify))  # before reading the folder
                removed = remove_unfinished_writes(self.run_dir)  # safe with the lock held
                if removed:
                    self.notify(removed)
                saved = self._settle()  # before a new run's folder is made
                if self.evaluator is not None:
                    self.evaluate = self.evaluator(self.config)
                make_run_dir(self.run_dir)
                lock.acquire()  # a folder made just now
            self.dist.barrier()  # the other ranks read the folder once rank 0 has tidied it
            if not self.dist.is_main:
                saved = self._settle()

            seed_everything(self.config.train.seed)
            self._build(sources)
            cleanup.callback(self.loader.close)
            if saved is not None:
                self._restore(saved)  # last: building the networks drew from the RNG
            elif self.init_weights is not None:  # networks the file lacks keep their fresh init
                self.model.load_official_state_dict(self.model.official_state_dict() | self.init_weights)
            self._clock = time.monotonic()
            self.dist.check_in_sync(self.model, self.device)
            try:
                with contextlib.ExitStack() as session:
                    self._start(session, sources, saved, scan)
                    self._loop()
                    result = self._finish()
                return result
            except WriteFailed as failure:
                raise self._write_failed(failure) from None

    def _start(
        self, session: contextlib.ExitStack, sources: list[Source], saved: dict[str, Any] | None, scan: ScanResult
    ) -> None:
        """The session's outputs, opened in `session`, and what it reports before the first iteration."""
        self.stop = session.enter_context(StopRequest(self.notify))
        if not self.dist.is_main:  # writes nothing: rank 0 keeps the log, the grids and the checkpoints
            self.log, self.tb, self.samples = NullLog(), TensorBoard(self.run_dir, False, 0), {}
            return
        with writing(self.run_dir / CONFIG_FILE):
            self.config.save(self.run_dir / CONFIG_FILE)
        announce(
            self.notify,
            self.model.config,
            self.device,
            self.config.optim.iterations,
            sources,
            self.run_dir,
            resumed=saved["path"] if saved else None,
            step=self.step,
            tensorboard=self.use_tensorboard,
        )
        self.log = JsonlLog(self.run_dir / LOG_FILE, keep_until=self.step)
        session.callback(self.log.close)
        tb = TensorBoard(self.run_dir / TENSORBOARD_DIR, self.use_tensorboard, first_step=self.step + 1)
        self.tb = session.enter_context(tb)
        if self.dist.enabled:
            self.notify(
                f"distributed: {describe(self.dist, self.config.data.batch_size)} (the paper trains one "
                "process with batch 1); rank 0 writes the log, sample grids and checkpoints"
            )
        for change in self._overridden:
            self.log.write({"step": self.step, "event": "override", **change})
            self.notify(
                f"resuming with `{change['key']}` changed from {change['from']} to {change['to']} "
                f"(recorded in {LOG_FILE} and {CONFIG_FILE})"
            )
        if scan.unreadable:
            self.notify(f"{scan.summary()}: they are skipped whenever drawn")
            for i, (name, reason) in enumerate(scan.unreadable):
                self._bad_image(name, reason, announce=i < SHOWN_BAD_IMAGES)
            if len(scan.unreadable) > SHOWN_BAD_IMAGES:
                self.notify(f"... and {len(scan.unreadable) - SHOWN_BAD_IMAGES} more, every one recorded in {LOG_FILE}")
        self.samples = sample_images(
            self.loader,
            self.test_data,
            self.config.model.img_size,
            self.sample_rows,
            self.device,
            on_bad_image=self._bad_image,
            notify=self.notify,
        )

    def _settle(self) -> dict[str, Any] | None:
        """The checkpoint to resume from (None for a new run), and the run's config (`self.config`),
        checked against the memory there is."""
        saved = resumable_checkpoint(self.run_dir, self.notify) if run_to_resume(self.run_dir, self.resume) else None
        self.config = self._resolve_config(saved)
        self._check_memory()
        return saved

    def _resolve_config(self, saved: dict[str, Any] | None) -> Config:
        requested = self.requested
        if saved is None:
            return requested
        config, ignored = resume_config(Config.from_dict(saved["config"]), requested, self.given)
        config, self._overridden = apply_overrides(config, self.overrides)
        ignored = [key for key in ignored if key not in self.overrides]
        if ignored:
            self.notify(
                f"resuming keeps the checkpoint's {', '.join(f'`{k}`' for k in ignored)} (only the "
                "length and execution settings of a run change on resume, others through `overrides`)"
            )
        check_config(config)
        if config.optim.iterations < saved["step"]:
            raise UserError(
                f"the run is already at step {saved['step']}, past `optim.iterations={config.optim.iterations}`"
            )
        return config

    def _check_memory(self) -> None:
        check_memory(self.config, self.device, self.notify, local_processes() if self.dist.enabled else 1)

    def _build(self, sources: list[Source]) -> None:
        cfg = self.config
        model = UGATIT(cfg.model).to(self.device)
        self.model = prepare_model(model, channels_last=cfg.train.channels_last, compile=cfg.train.compile)
        self.model.train()
        self.config = cfg.replace(model=self.model.config)  # with the discriminator depths it resolved
        step = TrainingStep(
            self.model,
            cfg.loss,
            cfg.optim,
            precision=cfg.train.precision,
            channels_last=cfg.train.channels_last,
            average_gradients=self.dist.average_gradients if self.dist.enabled else None,
        )
        # CUDA: a captured graph and losses read at log/save time, unless `train.eager`. Distributed ranks
        # run the eager step: they agree on stopping after every iteration, and the graph path has not
        # been tried with collectives inside.
        eager = cfg.train.eager or self.dist.enabled
        self.train_step = fast_step(step, self.device, eager=eager, notify=self.notify)
        self.guard = LossGuard(every_step=checks_losses_every_step(self.train_step))
        self.loader = UnpairedLoader.from_config(
            cfg,
            *sources,
            on_bad_image=self._bad_image,
            pin_memory=self.device.type == "cuda",
            rank=self.dist.rank,
            world_size=self.dist.world_size,
        )

    def _restore(self, saved: dict[str, Any]) -> None:
        self.model.load_official_state_dict(saved["networks"])
        try:
            self.train_step.load_state_dict(saved["optimizers"])
        except (KeyError, ValueError) as exc:
            raise UserError(f"checkpoint {saved['path']} has unusable optimiser state ({exc})") from None
        # the processes it was saved on, also where an earlier version kept them in the config
        position = {**saved["data"], "world_size": checkpoints.saved_world_size(saved)}
        self.loader.load_state_dict(position, notify=self.notify)  # says what differs from the saved run
        self.step = int(saved["step"])
        extra = saved.get("extra") or {}
        self.best = extra.get("best")
        self._elapsed_before = float(extra.get("elapsed", 0.0))
        self.last_checkpoint = saved["path"]
        self._saved_step = self.step
        restore_rng_state(saved["rng"])

    # --- The loop -------------------------------------------------------------------------------------

    def _loop(self) -> None:
        iterations = self.config.optim.iterations
        bar = progress_bar(iterations, "train", "it", enabled=self.progress, initial=self.step)
        projection = Projection(self.device, iterations, self.step)
        try:
            while self.step < iterations and self.stopping is None:
                self._iterate()
                bar.update(1)
                if (projected := projection.observe(self.step)) is not None:
                    self.notify(projected)
                if self.losses:  # the last losses read (every step, or at each log on the fast path)
                    bar.set_postfix(
                        D=f"{self.losses['Discriminator_loss']:.3f}",
                        G=f"{self.losses['Generator_loss']:.3f}",
                        refresh=False,
                    )
                self._after_step(self.step == iterations)
        finally:
            bar.close()

    def _iterate(self) -> None:
        step = self.step + 1
        real_A, real_B = (t.to(self.device, non_blocking=True) for t in next(self.loader))
        self.guard.observe(step, self.train_step(real_A, real_B, step))
        self.step = step
        if self.dist.enabled:
            self._agree()
        elif self.guard.every_step:
            self._check_losses()

    @property
    def stopping(self) -> str | None:
        """Why the run stops after this iteration (a signal's name), or None: what the loop and the save
        decision read. On one process, the stop request itself; on several, only what the ranks agreed on
        after the iteration's update (`_agree`). A request that comes later, while rank 0 logs, writes
        sample grids or evaluates (a signal, or a hook's KeyboardInterrupt), counts from the next
        agreement: read at once, it would send rank 0 alone into the checkpoint's collective."""
        return self._agreed_stop if self.dist.enabled else self.stop.reason

    def _agree(self) -> None:
        """Every rank stops at the same iteration: when any of them was signalled or saw a NaN."""
        values, bad_step, bad = self.guard.read()
        asked = STOP_CODES.get(self.stop.reason, STOP_CODES["SIGTERM"]) if self.stop.reason else 0
        code, diverged = self.dist.agree([asked, bad_step is not None], self.device)
        if diverged:
            self._diverged(self.step, f"non-finite loss ({', '.join(bad) or 'on another rank'})")
        if code:
            # the strongest request of any rank (SIGTERM over SIGINT), for every rank alike
            self._agreed_stop = next(name for name, value in STOP_CODES.items() if value == code)
            self.stop.request(self._agreed_stop)
        self.losses = values

    def _after_step(self, last: bool) -> None:
        """Logging, samples, evaluation and saving, each at its own frequency. None of them changes the
        training state, so a resumed run may do them at other steps without drifting."""
        t = self.config.train
        step = self.step
        if step % t.log_every == 0 or last:
            self._log(step)
        if t.sample_every and (step % t.sample_every == 0 or last):
            self._write_samples(step)
        if t.eval_every and self.evaluate is not None and step % t.eval_every == 0:
            self._evaluate(step)
        if (t.save_every and step % t.save_every == 0) or last or self.stopping is not None:
            self.dist.check_in_sync(self.model, self.device)  # every rank, at the same steps
            if self.dist.is_main:
                self._save(step)

    def _check_losses(self) -> None:
        """Read the losses from the device; stop at the first step that had a non-finite one."""
        if self.guard.pending:
            values, bad_step, bad = self.guard.read()
            if bad_step is not None:
                self._diverged(bad_step, f"non-finite loss ({', '.join(bad)})")
            self.losses = values

    def _require_finite_weights(self, step: int) -> None:
        bad = nonfinite_parameters(self.model)
        if bad:
            self._diverged(step, f"non-finite weights ({bad})")

    def _diverged(self, step: int, what: str) -> None:
        self.log.write({"step": step, "event": "diverged", "detail": what})
        raise TrainingDiverged.at(step, what, self.last_checkpoint, self.config.optim.lr)

    # --- What happens between iterations --------------------------------------------------------------

    def _log(self, step: int) -> None:
        self._check_losses()
        record = {
            "step": step,
            "lr": learning_rate(step, self.config.optim),
            "time": round(self._elapsed(), 3),
            "wall": round(time.time(), 3),
            **self.losses,
            **rho_statistics(self.model),
        }
        self.log.write(record)
        self.tb.scalars(step, {"lr": record["lr"]})
        self.tb.scalars(step, self.losses, prefix="loss/")
        self.tb.scalars(step, {k[len("rho_") :]: v for k, v in record.items() if k.startswith("rho_")}, prefix="rho/")
        if self.on_log is not None:
            self._hook(self.on_log, step, dict(self.losses))

    def _write_samples(self, step: int) -> None:
        folder = self.run_dir / SAMPLES_DIR
        folder.mkdir(exist_ok=True)
        written: dict[str, Path] = {}
        with preserved_rng():
            for name, images in self.samples.items():
                grid = sample_grid(self.model, images, direction=name.rsplit("_", 1)[1])
                path = folder / f"{name}_{step:08d}.png"
                save_png(grid, path)
                self.tb.image(f"samples/{name}", grid, step)
                written[name] = path
        if written and self.on_sample is not None:
            self._hook(self.on_sample, step, written)

    def _evaluate(self, step: int) -> None:
        with preserved_rng(), torch.no_grad():
            metrics = self._hook(self.evaluate, self.model, step)
        self.model.train()  # whatever the hook did to the modes
        if not metrics:
            return
        metrics = {name: float(value) for name, value in metrics.items()}
        self.log.write({"step": step, "event": "eval", **metrics})
        self.tb.scalars(step, metrics, prefix="eval/")
        score = metrics.get(BEST_METRIC)
        if score is not None and math.isfinite(score) and (self.best is None or score < self.best[BEST_METRIC]):
            self.best = {"step": step, BEST_METRIC: score, "metrics": metrics}
            self._write_checkpoint(self.run_dir / BEST_FILE, step)
            self.notify(f"step {step}: best {BEST_METRIC} so far ({score:.4g}), saved {self.run_dir / BEST_FILE}")

    def _save(self, step: int) -> None:
        path = checkpoints.checkpoint_path(self.run_dir, step)
        self._write_checkpoint(path, step)
        self.last_checkpoint, self._saved_step = path, step
        checkpoints.prune_checkpoints(self.run_dir, self.config.train.keep_last)
        write_rho_plot(self.model, self.run_dir / RHO_PLOT, step)

    def _write_checkpoint(self, path: Path, step: int) -> None:
        self._check_losses()
        self._require_finite_weights(step)
        with writing(path, checkpoint=True):
            checkpoints.save_training_checkpoint(
                path,
                model=self.model,
                optimizers=self.train_step.state_dict(),
                config=self.config,
                step=step,
                data_state=self.loader.state_dict(),
                extra={"best": self.best, "elapsed": self._elapsed()},
            )

    def _write_failed(self, failure: WriteFailed) -> UserError:
        """The error for a failed write, after keeping the current state if that can still be written:
        between iterations the state is whole, so a checkpoint of it resumes exactly."""
        saved_now = False
        if not failure.checkpoint and self.step > (self._saved_step or 0):
            try:
                self._save(self.step)
                saved_now = True
            except WriteFailed:
                pass  # the same full disk: the last good checkpoint stays the last
        return run_write_error(failure, self.run_dir, self.last_checkpoint, self._saved_step, saved_now)

    def _hook(self, hook: Callable[..., Any], *args: Any) -> Any:
        """Run a user hook; a KeyboardInterrupt from it (a notebook's stop button, a test) is a request
        to stop, honoured like Ctrl-C: the iteration is complete, so its state can be saved."""
        try:
            return hook(*args)
        except KeyboardInterrupt:
            self.stop.request("SIGINT")
            return None

    def _bad_image(self, name: str, reason: str, announce: bool = True) -> None:
        if name not in self._reported_images:
            self._reported_images.add(name)
            if announce:
                self.notify(f"skipping unreadable image {name}: {reason}")
            self.log.write({"step": self.step, "event": "bad_image", "name": name, "reason": reason})

    def _elapsed(self) -> float:
        return self._elapsed_before + time.monotonic() - self._clock

    # --- The end --------------------------------------------------------------------------------------

    def _finish(self) -> TrainResult:
        # One process: a signal that came after the step's save decision still gets its checkpoint. (On
        # several, a stop is only ever agreed before the save decision, which saved it.)
        if self.dist.is_main and self.stopping is not None and self.step > 0 and self._saved_step != self.step:
            self._save(self.step)
        export = None
        if self.dist.is_main and self.step >= self.config.optim.iterations:
            with writing(self.run_dir / EXPORT_FILE):
                export = export_generators(self.model, self.config, self.run_dir / EXPORT_FILE)
        best = self.run_dir / BEST_FILE
        samples = self.run_dir / SAMPLES_DIR
        return TrainResult(
            run_dir=self.run_dir,
            step=self.step,
            iterations=self.config.optim.iterations,
            losses=dict(self.losses),
            config=self.config,
            checkpoint=self.last_checkpoint,
            export=export,
            best=best if self.best is not None and best.is_file() else None,
            interrupted=self.stopping,
            log=self.log.path,
            samples=samples if samples.is_dir() else None,
            tensorboard=self.tb.folder,
        )


def _quiet(message: str) -> None:
    """The notices of ranks other than 0: rank 0 says everything once."""
