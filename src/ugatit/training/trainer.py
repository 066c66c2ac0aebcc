"""The training loop: iterations, progress, logs, sample grids, checkpoints, signals, resume.

`train(config, data_a, data_b, run_dir)` runs U-GAT-IT from step 0 (or, with `resume=True`, from the
latest checkpoint in `run_dir`) to `config.optim.iterations`, writing the run folder that
`ugatit.training.run_dir` describes.

Resuming is exact: networks, optimisers, step, RNG states and the data position are restored, so a run
stopped at step k and resumed reaches step n with the weights an uninterrupted run has (bit-identical
on CPU). The checkpoint's config wins, except how long and how the run is executed
(`RESUME_OVERRIDES`). SIGINT and SIGTERM finish the current iteration, save and return; a second
signal aborts at once. A non-finite loss (or weight) stops the run with `TrainingDiverged` before
anything of the broken state is written.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from ..config import Config, check_config
from ..data.loader import sized_batches
from ..data.sources import Source, SourceLike, as_source
from ..data.unpaired import UnpairedLoader
from ..domains import DIRECTIONS, source_and_target
from ..errors import UserError
from ..nn.model import UGATIT
from ..nn.sizes import check_model_config
from ..utils.console import notify, progress_bar
from ..utils.device import resolve_device
from ..utils.rng import preserved_rng, restore_rng_state, seed_everything
from ..weights import checkpoints
from ..weights.export import export_generators
from .resume import resume_config
from .run_dir import (
    BEST_FILE, BEST_METRIC, CONFIG_FILE, EXPORT_FILE, LOG_FILE, SAMPLES_DIR, TENSORBOARD_DIR,
    JsonlLog, TensorBoard, rho_statistics, sample_grid, save_png, tensorboard_available,
)  # fmt: skip
from .divergence import LossGuard, TrainingDiverged, nonfinite_parameters
from .fast import checks_losses_every_step, fast_step
from .signals import SIGNAL_EXIT, MessageHook, StopRequest
from .step import TrainingStep, learning_rate, prepare_model

__all__ = ["TrainResult", "Trainer", "TrainingDiverged", "train"]

LogHook = Callable[[int, dict[str, float]], None]
SampleHook = Callable[[int, dict[str, Path]], None]
EvaluateHook = Callable[[UGATIT, int], dict[str, float]]


@dataclass
class TrainResult:
    """What a call to `train` did. `interrupted` names the signal that stopped it early, if any."""

    run_dir: Path
    step: int
    iterations: int
    losses: dict[str, float]
    config: Config
    checkpoint: Optional[Path] = None
    export: Optional[Path] = None
    best: Optional[Path] = None
    interrupted: Optional[str] = None
    log: Optional[Path] = None
    samples: Optional[Path] = None
    tensorboard: Optional[Path] = None

    @property
    def completed(self) -> bool:
        return self.step >= self.iterations

    @property
    def exit_code(self) -> int:
        """0 when completed, else the shell's code for the signal (130 SIGINT, 143 SIGTERM)."""
        return SIGNAL_EXIT.get(self.interrupted, 1) if self.interrupted else 0


def train(config: Config, data_a: SourceLike, data_b: SourceLike, run_dir: str | Path, **options: Any) -> TrainResult:
    """Train to `config.optim.iterations` and return a `TrainResult` (see the module docstring).

    data_a / data_b are folders or sequences of PIL images; `options` are `Trainer`'s keyword
    arguments: test_a, test_b, resume, progress, on_log, on_sample, evaluate, on_message, tensorboard,
    sample_rows.
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
    """

    def __init__(
        self,
        config: Config,
        data_a: SourceLike,
        data_b: SourceLike,
        run_dir: str | Path,
        *,
        test_a: Optional[SourceLike] = None,
        test_b: Optional[SourceLike] = None,
        resume: bool = False,
        progress: bool = True,
        on_log: Optional[LogHook] = None,
        on_sample: Optional[SampleHook] = None,
        evaluate: Optional[EvaluateHook] = None,
        on_message: Optional[MessageHook] = None,
        tensorboard: bool = True,
        sample_rows: int = 4,
    ):
        self.requested = config
        self.data = (data_a, data_b)
        self.test_data = {"A": test_a, "B": test_b}
        self.run_dir = Path(run_dir)
        self.resume = resume
        self.progress = progress
        self.on_log, self.on_sample, self.evaluate = on_log, on_sample, evaluate
        self.notify = on_message or notify
        self.use_tensorboard = tensorboard
        self.sample_rows = sample_rows

        self.step = 0
        self.losses: dict[str, float] = {}
        self.best: Optional[dict[str, Any]] = None
        self.last_checkpoint: Optional[Path] = None
        self._elapsed_before = 0.0  # training time of earlier sessions of this run
        self._reported_images: set[str] = set()

    # --- Set-up ---------------------------------------------------------------------------------------

    def run(self) -> TrainResult:
        # Everything that can be checked is checked before the run folder is created, so that a
        # mistake leaves nothing behind.
        check_config(self.requested)
        check_model_config(self.requested.model)
        resolve_device(self.requested.train.device)
        sources = [as_source(data, label=f"domain {d}") for data, d in zip(self.data, "AB")]
        saved = self._load_checkpoint() if self._check_run_dir() else None
        self.config = self._resolve_config(saved)
        self.device = resolve_device(self.config.train.device)
        self._make_run_dir()

        seed_everything(self.config.train.seed)
        self._build(sources)
        if saved is not None:
            self._restore(saved)  # last: building the networks drew from the RNG
        self._clock = time.monotonic()
        self.config.save(self.run_dir / CONFIG_FILE)
        self._announce(sources, saved)

        with contextlib.ExitStack() as cleanup:
            cleanup.callback(self.loader.close)
            self.log = JsonlLog(self.run_dir / LOG_FILE, keep_until=self.step)
            cleanup.callback(self.log.close)
            self.tb = TensorBoard(self.run_dir / TENSORBOARD_DIR, self.use_tensorboard, first_step=self.step + 1)
            cleanup.callback(self.tb.close)
            self.stop = cleanup.enter_context(StopRequest(self.notify))
            self.samples = self._sample_images()
            self._loop()
            return self._finish()

    def _check_run_dir(self) -> bool:
        """Whether there is a run to resume; an error when that is not what was asked for."""
        latest = checkpoints.latest_checkpoint(self.run_dir)
        if self.resume and latest is None:
            raise UserError(
                f"nothing to resume: no checkpoint in {self.run_dir / checkpoints.CHECKPOINT_DIR} "
                "(a new run starts without `resume`)"
            )
        if not self.resume and latest is not None:
            raise UserError(
                f"{self.run_dir} already holds a run ({latest.name}): continue it with `resume=True`, "
                "or choose another `run_dir`"
            )
        return latest is not None

    def _make_run_dir(self) -> None:
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            probe = self.run_dir / ".write-test"
            probe.write_text("")
            probe.unlink()
        except OSError as exc:
            raise UserError(f"cannot write to the run directory {self.run_dir}: {exc.strerror or exc}") from None

    def _load_checkpoint(self) -> dict[str, Any]:
        path = checkpoints.latest_checkpoint(self.run_dir)
        state = checkpoints.load_training_checkpoint(path)
        missing = [key for key in ("step", "config", "networks", "optimizers", "rng", "data") if key not in state]
        if missing:
            raise UserError(f"checkpoint {path} is incomplete (no '{missing[0]}')")
        state["path"] = path
        return state

    def _resolve_config(self, saved: Optional[dict[str, Any]]) -> Config:
        if saved is None:
            return self.requested
        config, ignored = resume_config(Config.from_dict(saved["config"]), self.requested)
        if ignored:
            self.notify(f"resuming keeps the checkpoint's {', '.join(ignored)} (only the length and "
                        "execution settings of a run change on resume)")  # fmt: skip
        check_config(config)
        if config.optim.iterations < saved["step"]:
            raise UserError(
                f"the run is already at step {saved['step']}, past `optim.iterations={config.optim.iterations}`"
            )
        return config

    def _build(self, sources: list[Source]) -> None:
        cfg = self.config
        model = UGATIT(cfg.model).to(self.device)
        self.model = prepare_model(model, channels_last=cfg.train.channels_last, compile=cfg.train.compile)
        self.model.train()
        self.config = cfg.replace(model=self.model.config)  # with the discriminator depths it resolved
        step = TrainingStep(
            self.model, cfg.loss, cfg.optim,
            precision=cfg.train.precision, channels_last=cfg.train.channels_last,
        )  # fmt: skip
        # CUDA: a captured graph and losses read at log/save time, unless `train.eager`.
        self.train_step = fast_step(step, self.device, eager=cfg.train.eager, notify=self.notify)
        self.guard = LossGuard(every_step=checks_losses_every_step(self.device, cfg.train.eager))
        self.loader = UnpairedLoader.from_config(
            cfg, *sources, on_bad_image=self._bad_image, pin_memory=self.device.type == "cuda"
        )

    def _restore(self, saved: dict[str, Any]) -> None:
        self.model.load_official_state_dict(saved["networks"])
        try:
            self.train_step.load_state_dict(saved["optimizers"])
        except (KeyError, ValueError) as exc:
            raise UserError(f"checkpoint {saved['path']} has unusable optimiser state ({exc})") from None
        self.loader.load_state_dict(saved["data"])
        self.step = int(saved["step"])
        extra = saved.get("extra") or {}
        self.best = extra.get("best")
        self._elapsed_before = float(extra.get("elapsed", 0.0))
        self.last_checkpoint = saved["path"]
        restore_rng_state(saved["rng"])

    def _announce(self, sources: list[Source], saved: Optional[dict[str, Any]]) -> None:
        m = self.model.config
        kind = "light" if m.light else "full"
        self.notify(
            f"training U-GAT-IT ({kind}, ch={m.ch}, n_res={m.n_res}, {m.img_size}px) on {self.device} "
            f"for {self.config.optim.iterations} iterations: {len(sources[0])} images in domain A, "
            f"{len(sources[1])} in domain B"
        )
        if saved is not None:
            self.notify(f"resuming at step {self.step} from {saved['path']}")
        tensorboard = self.use_tensorboard and tensorboard_available()
        self.notify(
            f"writing to {self.run_dir}/: {CONFIG_FILE}, {LOG_FILE}, {SAMPLES_DIR}/, "
            f"{checkpoints.CHECKPOINT_DIR}/, {EXPORT_FILE.parent}/" + (f", {TENSORBOARD_DIR}/" if tensorboard else "")
        )
        if self.use_tensorboard and not tensorboard:
            self.notify(f"no {TENSORBOARD_DIR}/: tensorboard is not installed (pip install tensorboard, or "
                        "ugatit[tensorboard]); the same scalars are in " + LOG_FILE)  # fmt: skip

    def _sample_images(self) -> dict[str, torch.Tensor]:
        """The fixed images of every sample grid, with the test transform: {'train_a2b': ..., ...}."""
        found: dict[str, torch.Tensor] = {}
        train_sources = {"A": self.loader.source_a, "B": self.loader.source_b}
        for split, sources in (("train", train_sources), ("test", self.test_data)):
            for direction in DIRECTIONS:  # a direction's grid shows images of its source domain
                source = sources[source_and_target(direction)[0]]
                if source is None:
                    continue
                batches = sized_batches(source, self.config.model.img_size, batch_size=self.sample_rows,
                                        on_bad_image=self._bad_image)  # fmt: skip
                try:
                    batch = next((b for b in batches if len(b)), None)
                except UserError as exc:  # an empty test folder: train without its samples
                    self.notify(f"no {split} samples for {direction}: {exc}")
                    continue
                if batch is not None:
                    found[f"{split}_{direction}"] = batch.stacked().to(self.device)
        return found

    # --- The loop -------------------------------------------------------------------------------------

    def _loop(self) -> None:
        iterations = self.config.optim.iterations
        bar = progress_bar(iterations, "train", "it", enabled=self.progress, initial=self.step)
        try:
            while self.step < iterations and self.stop.reason is None:
                self._iterate()
                bar.update(1)
                if self.losses:  # the last losses read (every step, or at each log on the fast path)
                    bar.set_postfix(D=f"{self.losses['Discriminator_loss']:.3f}",
                                    G=f"{self.losses['Generator_loss']:.3f}", refresh=False)  # fmt: skip
                self._after_step(self.step == iterations)
        finally:
            bar.close()

    def _iterate(self) -> None:
        step = self.step + 1
        real_A, real_B = (t.to(self.device, non_blocking=True) for t in next(self.loader))
        self.guard.observe(step, self.train_step(real_A, real_B, step))
        self.step = step
        if self.guard.every_step:
            self._check_losses()

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
        if (t.save_every and step % t.save_every == 0) or last or self.stop.reason is not None:
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
        kept = (
            f"the last good checkpoint is {self.last_checkpoint}"
            if self.last_checkpoint is not None
            else "no checkpoint had been written yet"
        )
        raise TrainingDiverged(f"training diverged at step {step}: {what}; nothing of it was saved, {kept}")

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
        self.tb.scalars(step, {k[len("rho_"):]: v for k, v in record.items() if k.startswith("rho_")}, prefix="rho/")
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
        self.last_checkpoint = path
        checkpoints.prune_checkpoints(self.run_dir, self.config.train.keep_last)

    def _write_checkpoint(self, path: Path, step: int) -> None:
        self._check_losses()
        self._require_finite_weights(step)
        try:
            checkpoints.save_training_checkpoint(
                path,
                model=self.model,
                optimizers=self.train_step.state_dict(),
                config=self.config,
                step=step,
                data_state=self.loader.state_dict(),
                extra={"best": self.best, "elapsed": self._elapsed()},
            )
        except OSError as exc:
            raise UserError(f"cannot write checkpoint {path}: {exc.strerror or exc}") from None

    def _hook(self, hook: Callable[..., Any], *args: Any) -> Any:
        """Run a user hook; a KeyboardInterrupt from it (a notebook's stop button, a test) is a request
        to stop, honoured like Ctrl-C: the iteration is complete, so its state can be saved."""
        try:
            return hook(*args)
        except KeyboardInterrupt:
            self.stop.request("SIGINT")
            return None

    def _bad_image(self, name: str, reason: str) -> None:
        if name not in self._reported_images:
            self._reported_images.add(name)
            self.notify(f"skipping unreadable image {name}: {reason}")
            self.log.write({"step": self.step, "event": "bad_image", "name": name, "reason": reason})

    def _elapsed(self) -> float:
        return self._elapsed_before + time.monotonic() - self._clock

    # --- The end --------------------------------------------------------------------------------------

    def _finish(self) -> TrainResult:
        # A signal that came after the step's save decision still gets its checkpoint.
        if self.stop.reason is not None and self.step > 0 and not self._saved_at(self.step):
            self._save(self.step)
        export = None
        if self.step >= self.config.optim.iterations:
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
            interrupted=self.stop.reason,
            log=self.log.path,
            samples=samples if samples.is_dir() else None,
            tensorboard=self.tb.folder,
        )

    def _saved_at(self, step: int) -> bool:
        return checkpoints.checkpoint_path(self.run_dir, step).is_file()
