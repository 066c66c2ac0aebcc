"""The training loop: iterations, progress, logs, sample grids, checkpoints, signals, resume.

`train(config, data_a, data_b, run_dir)` runs U-GAT-IT from step 0 (or, with `resume=True`, from the
latest checkpoint in `run_dir`) to `config.optim.iterations`. A run directory holds:

    config.yaml                 the resolved config of the latest session (the checkpoint's, on resume)
    log.jsonl                   one JSON object a line: every `log_every` steps {step, lr, time, wall,
                                every loss term, rho statistics}; events {step, event, ...} (bad images,
                                evaluations, divergence)
    tensorboard/                the same scalars and the sample grids (when tensorboard is installed)
    samples/{train,test}_{a2b,b2a}_{step:08d}.png
                                rows: fixed images of the split; columns: input, attention heatmap over
                                the input, translation, cycle reconstruction
    checkpoints/step_{step:08d}.pt
                                the full training state; the newest `keep_last` are kept
    checkpoints/best.pt         the state with the lowest `kid` returned by the `evaluate` hook
    export/ugatit_generators.safetensors (+ .json)
                                the two generators for inference, written when the run completes

Resuming is exact: networks, optimisers, step, RNG states and the data position are restored, so a run
stopped at step k and resumed reaches step n with the weights an uninterrupted run has (bit-identical
on CPU). The checkpoint's config wins, except how long and how the run is executed
(`RESUME_OVERRIDES`). SIGINT and SIGTERM finish the current iteration, save and return; a second
signal aborts at once. A non-finite loss (or weight) stops the run with `TrainingDiverged` before
anything of the broken state is written.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import numpy as np
import torch

from . import checkpoints
from .config import Config
from .data import Source, SourceLike, UnpairedLoader, as_source, eval_batches, tensor_to_uint8
from .errors import UserError
from .layers import ILN, AdaLIN
from .model import UGATIT
from .report import heatmap_to_rgb, image_grid, overlay
from .step import LOSS_NAMES, TrainingStep, learning_rate, prepare_model

__all__ = [
    "RESUME_OVERRIDES",
    "TrainResult",
    "Trainer",
    "TrainingDiverged",
    "resolve_device",
    "resume_config",
    "rho_statistics",
    "saved_run_config",
    "train",
]

CONFIG_FILE = "config.yaml"
LOG_FILE = "log.jsonl"
SAMPLES_DIR = "samples"
TENSORBOARD_DIR = "tensorboard"
EXPORT_FILE = Path("export") / "ugatit_generators.safetensors"
BEST_FILE = Path(checkpoints.CHECKPOINT_DIR) / "best.pt"
#: The evaluation metric that marks the best checkpoint; lower is better.
BEST_METRIC = "kid"

#: What a resumed run takes from the config it is given rather than from its checkpoint: how long it
#: runs and how it is executed. Everything else (model, losses, optimiser, data pipeline, seed) stays
#: the checkpoint's, since changing it midway would be a different experiment under the same name.
RESUME_OVERRIDES: dict[str, tuple[str, ...]] = {
    "optim": ("iterations",),
    "data": ("num_workers",),
    "train": ("device", "precision", "channels_last", "compile",
              "log_every", "sample_every", "save_every", "keep_last", "eval_every"),
}  # fmt: skip

#: Exit status of a process stopped by each signal (128 + signal number), for the CLI.
_SIGNAL_EXIT = {"SIGINT": 130, "SIGTERM": 143}

LogHook = Callable[[int, dict[str, float]], None]
SampleHook = Callable[[int, dict[str, Path]], None]
EvaluateHook = Callable[[UGATIT, int], dict[str, float]]
MessageHook = Callable[[str], None]


class TrainingDiverged(UserError):
    """A loss or a weight became NaN or infinite; nothing of that state was saved."""


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
        return _SIGNAL_EXIT.get(self.interrupted, 1) if self.interrupted else 0


def train(config: Config, data_a: SourceLike, data_b: SourceLike, run_dir: str | Path, **options: Any) -> TrainResult:
    """Train to `config.optim.iterations` and return a `TrainResult` (see the module docstring).

    data_a / data_b are folders or sequences of PIL images; `options` are `Trainer`'s keyword
    arguments: test_a, test_b, resume, progress, on_log, on_sample, evaluate, on_message, tensorboard,
    sample_rows.
    """
    return Trainer(config, data_a, data_b, run_dir, **options).run()


# --- Config, device, seeds --------------------------------------------------------------------------------


def resume_config(saved: Config, given: Config) -> tuple[Config, list[str]]:
    """The config of a resumed run: `saved` with `RESUME_OVERRIDES` taken from `given`. Also returns
    the other keys where `given` differs (they are ignored; callers say so)."""
    merged, wanted = saved.to_dict(), given.to_dict()
    for section, keys in RESUME_OVERRIDES.items():
        for key in keys:
            merged[section][key] = wanted[section][key]
    ignored = [
        f"{section}.{key}"
        for section, values in wanted.items()
        for key, value in values.items()
        # None is "automatic" (the discriminator depths): the saved config holds what it resolved to
        if value is not None and merged[section][key] != value
    ]
    return Config.from_dict(merged), ignored


def saved_run_config(run_dir: str | Path) -> Optional[Config]:
    """The config a run directory was last trained with (its config.yaml, else its latest checkpoint's),
    or None when it holds neither: the base a resumed run's settings are changed from."""
    run_dir = Path(run_dir)
    if (run_dir / CONFIG_FILE).is_file():
        return Config.load(run_dir / CONFIG_FILE)
    latest = checkpoints.latest_checkpoint(run_dir)
    if latest is None:
        return None
    return Config.from_dict(checkpoints.load_training_checkpoint(latest)["config"])


#: Flag names, so that a bad value read from a config file still points at the flag that sets it.
_FLAGS = {
    "optim.iterations": "--iters", "optim.lr": "--lr", "data.batch_size": "--batch-size",
    "data.num_workers": "--workers", "train.log_every": "--log-every",
    "train.sample_every": "--sample-every", "train.save_every": "--save-every",
    "train.keep_last": "--keep-last", "train.eval_every": "--eval-every",
}  # fmt: skip


def check_config(config: Config) -> None:
    """Values the dataclasses cannot reject by type: counts and frequencies out of range."""
    minimums = {
        "optim.iterations": (config.optim.iterations, 1),
        "data.batch_size": (config.data.batch_size, 1),
        "data.num_workers": (config.data.num_workers, 0),
        "train.log_every": (config.train.log_every, 1),
        "train.sample_every": (config.train.sample_every, 0),  # 0: no samples
        "train.save_every": (config.train.save_every, 0),  # 0: only when stopping and at the end
        "train.keep_last": (config.train.keep_last, 0),  # 0: keep every checkpoint
        "train.eval_every": (config.train.eval_every, 0),
        "optim.lr": (config.optim.lr, 0),
    }
    for key, (value, minimum) in minimums.items():
        if value < minimum:
            flag = f" ({_FLAGS[key]})" if key in _FLAGS else ""
            raise UserError(f"config key '{key}'{flag} must be at least {minimum}, got {value}")


def resolve_device(name: str) -> torch.device:
    """auto -> cuda if available, then mps, else cpu; an explicit device must exist here."""
    name = (name or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if _mps_available() else "cpu")
    kind, _, index = name.partition(":")
    if kind not in ("cpu", "cuda", "mps") or (index and (kind != "cuda" or not index.isdigit())):
        raise UserError(f"--device: unknown device {name!r} (choose auto, cpu, cuda, cuda:N or mps)")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise UserError("--device cuda: PyTorch sees no CUDA GPU here (use --device cpu, or auto)")
        if index and int(index) >= torch.cuda.device_count():
            raise UserError(f"--device {name}: there are only {torch.cuda.device_count()} CUDA devices")
    if kind == "mps" and not _mps_available():
        raise UserError("--device mps: Apple's MPS backend is not available here (use --device cpu, or auto)")
    return torch.device(name)


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextlib.contextmanager
def preserved_rng() -> Iterator[None]:
    """Hooks (sampling, evaluation) may draw random numbers; training must not see that they did,
    or a resumed run would drift from an uninterrupted one that evaluated at other steps."""
    state = checkpoints.capture_rng_state()
    try:
        yield
    finally:
        checkpoints.restore_rng_state(state)


def rho_statistics(model: UGATIT) -> dict[str, float]:
    """Mean, min and max of every AdaLIN rho and every ILN rho of both generators: how far the
    networks lean towards instance (1) or layer (0) normalisation."""
    stats: dict[str, float] = {}
    for label, kind in (("adalin", AdaLIN), ("iln", ILN)):
        values = [m.rho.detach().flatten() for g in model.generators() for m in g.modules() if isinstance(m, kind)]
        if values:
            rho = torch.cat(values).float()
            mean, low, high = torch.stack([rho.mean(), rho.min(), rho.max()]).tolist()
            stats.update({f"rho_{label}_mean": mean, f"rho_{label}_min": low, f"rho_{label}_max": high})
    return stats


# --- Signals ----------------------------------------------------------------------------------------------


class StopRequest:
    """Turns the first SIGINT/SIGTERM into a request to stop after the current iteration; a second one
    aborts at once (KeyboardInterrupt). Handlers are installed only in the main thread, where Python
    delivers signals, and the previous ones are restored on exit."""

    def __init__(self, notify: MessageHook):
        self.notify = notify
        self.reason: Optional[str] = None
        self._previous: dict[int, Any] = {}

    def request(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason

    def _handle(self, signum: int, frame: Any) -> None:
        if os.getpid() != self._pid:
            # A forked data worker inherits this handler; Ctrl-C reaches it too (the whole process
            # group gets it). It keeps working: the main process stops it when it stops.
            return
        if self.reason is not None:
            self._restore()
            raise KeyboardInterrupt
        self.request(signal.Signals(signum).name)
        self.notify(f"{self.reason}: finishing this iteration, then saving a checkpoint and stopping "
                    "(repeat to abort at once)")  # fmt: skip

    def __enter__(self) -> "StopRequest":
        self._pid = os.getpid()
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._restore()

    def _restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


# --- Outputs: log file, TensorBoard, sample grids -------------------------------------------------------


class JsonlLog:
    """log.jsonl, one record a line, flushed as written. On resume the records after the checkpoint's
    step (written by the session that was stopped) are dropped, so every step appears once."""

    def __init__(self, path: Path, keep_until: int):
        kept = []
        if keep_until > 0 and path.is_file():
            kept = [line for line in path.read_text().splitlines() if _record_step(line) <= keep_until]
        path.write_text("".join(line + "\n" for line in kept))
        self.path = path
        self._file = path.open("a")

    def write(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def _record_step(line: str) -> float:
    try:
        return float(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return math.inf  # a line cut short by a crash: drop it


class TensorBoard:
    """A SummaryWriter when tensorboard is installed; otherwise every call does nothing."""

    def __init__(self, folder: Path, enabled: bool, first_step: int):
        self.writer = None
        self.folder = None
        if not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            return
        # purge_step hides events of a stopped session logged after the step resumed from
        self.writer = SummaryWriter(log_dir=str(folder), purge_step=first_step)
        self.folder = folder

    def scalars(self, step: int, values: dict[str, float], prefix: str = "") -> None:
        if self.writer is not None:
            for name, value in values.items():
                self.writer.add_scalar(f"{prefix}{name}", value, step)

    def image(self, tag: str, image: np.ndarray, step: int) -> None:
        if self.writer is not None:
            self.writer.add_image(tag, image, step, dataformats="HWC")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def sample_grid(model: UGATIT, images: torch.Tensor, direction: str) -> np.ndarray:
    """One row per image: input, heatmap of the translating generator over it, translation, cycle
    reconstruction (translated back by the other generator). uint8 H x W x 3."""
    back = "b2a" if direction == "a2b" else "a2b"
    fake = model.translate(images, direction)
    cycle = model.translate(fake.image, back)
    size = tuple(images.shape[-2:])
    inputs, fakes, cycles = (tensor_to_uint8(t) for t in (images, fake.image, cycle.image))
    rows = [
        [inputs[i], overlay(inputs[i], heatmap_to_rgb(fake.heatmap[i], size)), fakes[i], cycles[i]]
        for i in range(len(inputs))
    ]
    return np.asarray(image_grid(rows))


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
        self.test_data = {"a2b": test_a, "b2a": test_b}  # a direction samples its source domain
        self.run_dir = Path(run_dir)
        self.resume = resume
        self.progress = progress
        self.on_log, self.on_sample, self.evaluate = on_log, on_sample, evaluate
        self.notify = on_message or _to_stderr
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
        check_config(self.requested)
        resolve_device(self.requested.train.device)  # fail before any folder is created
        sources = [as_source(data, label=f"domain {d}") for data, d in zip(self.data, "AB")]
        self._make_run_dir()
        saved = self._load_checkpoint() if self.resume else None
        self.config = self._resolve_config(saved)
        self.device = resolve_device(self.config.train.device)

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

    def _make_run_dir(self) -> None:
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            probe = self.run_dir / ".write-test"
            probe.write_text("")
            probe.unlink()
        except OSError as exc:
            raise UserError(f"cannot write to the run directory {self.run_dir}: {exc.strerror or exc}") from None
        latest = checkpoints.latest_checkpoint(self.run_dir)
        if self.resume and latest is None:
            raise UserError(
                f"nothing to resume: no checkpoint in {self.run_dir / checkpoints.CHECKPOINT_DIR} "
                "(start without --resume)"
            )
        if not self.resume and latest is not None:
            raise UserError(
                f"{self.run_dir} already holds a run ({latest.name}): pass --resume to continue it, "
                "or choose another output folder (--out)"
            )

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
                f"the run is already at step {saved['step']}, past --iters {config.optim.iterations}"
            )
        return config

    def _build(self, sources: list[Source]) -> None:
        cfg = self.config
        model = UGATIT(cfg.model).to(self.device)
        self.model = prepare_model(model, channels_last=cfg.train.channels_last, compile=cfg.train.compile)
        self.model.train()
        self.config = cfg.replace(model=self.model.config)  # with the discriminator depths it resolved
        self.train_step = TrainingStep(
            self.model, cfg.loss, cfg.optim,
            precision=cfg.train.precision, channels_last=cfg.train.channels_last,
        )  # fmt: skip
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
        checkpoints.restore_rng_state(saved["rng"])

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
        self.notify(
            f"writing to {self.run_dir}/: {CONFIG_FILE}, {LOG_FILE}, {SAMPLES_DIR}/, "
            f"{checkpoints.CHECKPOINT_DIR}/, {EXPORT_FILE.parent}/"
            + (f", {TENSORBOARD_DIR}/" if self.use_tensorboard else "")
        )

    def _sample_images(self) -> dict[str, torch.Tensor]:
        """The fixed images of every sample grid, with the test transform: {'train_a2b': ..., ...}."""
        found: dict[str, torch.Tensor] = {}
        train_sources = {"a2b": self.loader.source_a, "b2a": self.loader.source_b}
        for split, sources in (("train", train_sources), ("test", self.test_data)):
            for direction, source in sources.items():
                if source is None:
                    continue
                try:
                    batch = next(eval_batches(source, self.config.model.img_size, batch_size=self.sample_rows,
                                              on_bad_image=self._bad_image), None)  # fmt: skip
                except UserError as exc:  # an empty test folder: train without its samples
                    self.notify(f"no {split} samples for {direction}: {exc}")
                    continue
                if batch is not None:
                    found[f"{split}_{direction}"] = batch[0].to(self.device)
        return found

    # --- The loop -------------------------------------------------------------------------------------

    def _loop(self) -> None:
        iterations = self.config.optim.iterations
        bar = _progress_bar(self.step, iterations, enabled=self.progress)
        try:
            while self.step < iterations and self.stop.reason is None:
                self._iterate()
                bar.update(1)
                bar.set_postfix(D=f"{self.losses['Discriminator_loss']:.3f}",
                                G=f"{self.losses['Generator_loss']:.3f}", refresh=False)  # fmt: skip
                self._after_step(self.step == iterations)
        finally:
            bar.close()

    def _iterate(self) -> None:
        step = self.step + 1
        real_A, real_B = (t.to(self.device, non_blocking=True) for t in next(self.loader))
        losses = self.train_step(real_A, real_B, step)
        self.losses = self._finite_losses(step, losses)
        self.step = step

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

    def _finite_losses(self, step: int, losses: dict[str, torch.Tensor]) -> dict[str, float]:
        names = [name for name in LOSS_NAMES if name in losses]
        values = torch.stack([losses[name].float() for name in names]).tolist()  # one device sync
        bad = [f"{name}={value}" for name, value in zip(names, values) if not math.isfinite(value)]
        if bad:
            self._diverged(step, f"non-finite loss ({', '.join(bad)})")
        return dict(zip(names, values))

    def _require_finite_weights(self, step: int) -> None:
        bad = [name for name, p in self.model.named_parameters() if not torch.isfinite(p).all()]
        if bad:
            more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
            self._diverged(step, f"non-finite weights ({', '.join(bad[:3])}{more})")

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
                _save_png(grid, path)
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
            export = checkpoints.export_generators(self.model, self.config, self.run_dir / EXPORT_FILE)
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


def _progress_bar(start: int, total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(
        total=total, initial=start, unit="it", desc="train", file=sys.stderr,
        disable=not enabled, dynamic_ncols=True,
    )  # fmt: skip


def _to_stderr(message: str) -> None:
    from tqdm import tqdm

    tqdm.write(message, file=sys.stderr)  # above a running progress bar, not through it


def _save_png(grid: np.ndarray, path: Path) -> None:
    from PIL import Image

    Image.fromarray(grid).save(path)
