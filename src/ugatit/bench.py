"""How fast one training iteration runs here: `ugatit bench`.

For each model (light, full), precision (fp32, bf16) and speed option, on random images at the chosen
size: iterations per second after warm-up, milliseconds per phase (`PHASE_MEANINGS`), peak memory, aten
ops dispatched per iteration (the host's work: on a GPU each is one or more kernel launches) and the
time the paper's 1M iterations would take at that rate.

The phase columns add up to the time of the iterations they split. On the CPU those are the timed
iterations themselves (nothing runs asynchronously, so splitting them changes nothing), and they add
up to ms / it. On a GPU a phase can only be timed by waiting for the device at its boundaries, which
stops the host from queueing ahead: they are timed in separate iterations (`--phase-iters`) and add
up to those iterations' own time, which the row's note gives.

Each case runs in its own process (`measure_isolated`), so that peak memory belongs to it alone and a
case that fails (out of memory, a compiler error, an option this machine lacks) is a row that says why,
not the end of the table.
"""

from __future__ import annotations

import json
import platform
import resource
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

#: The speed options: what each row runs.
OPTIONS = {
    "official": "the official loop's structure and dead work (TrainingStep(official=True)), eager",
    "eager": "this package's step, plain eager (what --eager trains with)",
    "graph": "the default on CUDA: cuDNN autotuning and the whole iteration as one CUDA graph",
    "channels-last": "eager with the channels_last memory layout",
    "compile": "eager with torch.compile'd networks (--compile)",
}
CUDA_ONLY = ("graph",)
PHASES = ("G forward", "D step", "G step", "optimiser", "other")
#: What each phase column measures (exclusive times: a phase inside another counts only in its own).
PHASE_MEANINGS = {
    "G forward": "both generators on the real batches (the translations, and in this package's step the "
    "identity images too; the official loop runs this forward twice)",
    "D step": "the four discriminators on real and translated images, their losses and backward",
    "G step": "the cycle (and, in the official loop, identity) generator passes, the discriminators on the "
    "translations, the generator losses and the backward through all of them",
    "optimiser": "both Adam steps and the rho clamp",
    "other": "the rest of the iteration: the learning-rate schedule, Python between the phases and, on a GPU, "
    "the waits at the phase boundaries",
}
PAPER_ITERATIONS = 1_000_000


@dataclass
class Case:
    model: str  # light | full
    precision: str  # fp32 | bf16
    option: str  # a key of OPTIONS


@dataclass
class Settings:
    device: str = "auto"
    img_size: int = 256
    ch: int = 64
    n_res: int = 4
    batch_size: int = 1
    iters: int = 20
    warmup: int = 5
    phase_iters: int = 3
    timeout: float = 300.0


class Unsupported(Exception):
    """This case cannot run here (e.g. a CUDA graph without CUDA)."""


def measure(case: Case, settings: Settings) -> dict[str, Any]:
    """Run one case in this process and return its row."""
    import torch

    from .config import ModelConfig, OptimConfig
    from .nn.model import UGATIT
    from .training.fast import CapturedStep, fast_step
    from .training.step import TrainingStep, prepare_model
    from .utils.device import resolve_device
    from .utils.profiling import PhaseClock, count_ops, peak_memory_gib, reset_peak_memory, synchronize

    device = resolve_device(settings.device)
    if case.option in CUDA_ONLY and device.type != "cuda":
        raise Unsupported("CUDA only")
    torch.manual_seed(0)
    cfg = ModelConfig(img_size=settings.img_size, ch=settings.ch, n_res=settings.n_res, light=case.model == "light")
    with torch.device(device):
        model = UGATIT(cfg)
    channels_last = case.option == "channels-last"
    prepare_model(model, channels_last=channels_last, compile=case.option == "compile")
    step = TrainingStep(
        model,
        optim_cfg=OptimConfig(),
        precision=case.precision,
        channels_last=channels_last,
        official=case.option == "official",
    )
    notes: list[str] = []
    # The graph option is what training runs on CUDA (cuDNN autotuning and the graph come with it).
    runner = fast_step(step, device, eager=case.option != "graph", notify=notes.append)
    graph = isinstance(runner, CapturedStep)
    shape = (settings.batch_size, 3, settings.img_size, settings.img_size)
    a, b = torch.rand(shape, device=device) * 2 - 1, torch.rand(shape, device=device) * 2 - 1

    n = 0
    # The graph option captures after its own warm-up (CapturedStep.warmup) plus one call.
    warmup = max(settings.warmup, runner.warmup + 2) if graph else settings.warmup
    start = time.perf_counter()
    for n in range(1, warmup + 1):
        runner(a, b, n)
    synchronize(device)
    warmup_seconds = time.perf_counter() - start

    # On the CPU nothing is queued: the timed iterations are split into phases as they run.
    split_timed = device.type == "cpu"
    step.phase_clock = PhaseClock(device) if split_timed else None
    reset_peak_memory(device)
    start = time.perf_counter()
    first = n + 1
    for n in range(first, first + settings.iters):
        losses = runner(a, b, n)
    finite = all(
        v == v and abs(v) != float("inf") for v in (float(losses[k]) for k in ("Generator_loss", "Discriminator_loss"))
    )
    synchronize(device)
    seconds = (time.perf_counter() - start) / settings.iters
    peak = peak_memory_gib(device)
    memory_kind = "CUDA peak allocated"
    if peak is None:
        peak, memory_kind = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, "peak RSS (process)"

    phases_ms: dict[str, float] = {}
    ops: int | None = None
    captured = graph and runner.captured
    if split_timed:
        phases_ms = _phase_split(step.phase_clock, seconds, settings.iters)
        step.phase_clock = None
    elif captured:
        notes.append("one graph replay per iteration: phases are not separable")
    else:  # eager steps on a device that queues work (also a graph that fell back): phases apart
        step.phase_clock = PhaseClock(device)
        first = n + 1
        start = time.perf_counter()
        for n in range(first, first + settings.phase_iters):
            step(a, b, n)
        synchronize(device)
        phased = (time.perf_counter() - start) / settings.phase_iters
        phases_ms = _phase_split(step.phase_clock, phased, settings.phase_iters)
        step.phase_clock = None
        notes.append(
            f"phases from {settings.phase_iters} more iterations, waiting for the device at each phase "
            f"boundary: {1e3 * phased:.1f} ms / it"
        )
    if not captured and case.option != "compile":  # the ops one eager iteration dispatches
        _, counter = count_ops(lambda: step(a, b, n + 1))
        ops = counter.total
    if not finite:
        notes.append("non-finite losses")
    return {
        **asdict(case),
        "seconds_per_iter": seconds,
        "iters_per_second": 1.0 / seconds,
        "phases_ms": phases_ms,
        "peak_gib": peak,
        "memory_kind": memory_kind,
        "ops_per_iter": ops,
        "warmup_seconds": warmup_seconds,
        "paper_days": seconds * PAPER_ITERATIONS / 86400,
        "note": "; ".join(notes),
    }


def _phase_split(clock: Any, seconds_per_iter: float, iters: int) -> dict[str, float]:
    """Milliseconds per iteration in each phase the clock timed, and `other`: the rest of
    `seconds_per_iter`, so that the columns add up to it."""
    phases = {name: 1e3 * clock.seconds.get(name, 0.0) / iters for name in PHASES[:-1]}
    phases["other"] = max(0.0, 1e3 * seconds_per_iter - sum(phases.values()))
    return phases


def measure_isolated(case: Case, settings: Settings) -> dict[str, Any]:
    """`measure` in a child process (this module run as `python -m ugatit.bench CASE`); a failure becomes
    a row with `error`."""
    command = [sys.executable, "-m", "ugatit.bench", json.dumps({"case": asdict(case), "settings": asdict(settings)})]
    try:
        child = subprocess.run(command, capture_output=True, text=True, timeout=settings.timeout)
    except subprocess.TimeoutExpired:
        return {**asdict(case), "error": f"did not finish in {settings.timeout:.0f} s"}
    lines = child.stdout.strip().splitlines()
    if child.returncode == 0 and lines:
        try:
            return json.loads(lines[-1])
        except ValueError:
            pass
    tail = [line for line in child.stderr.strip().splitlines() if line.strip()]
    return {**asdict(case), "error": tail[-1][:300] if tail else f"exit code {child.returncode}"}


def measure_case_main(payload: str) -> int:
    """The child's side of `measure_isolated`: print the row as JSON (or the reason it cannot run)."""
    data = json.loads(payload)
    case, settings = Case(**data["case"]), Settings(**data["settings"])
    try:
        row = measure(case, settings)
    except Unsupported as exc:
        row = {**asdict(case), "error": str(exc)}
    print(json.dumps(row))
    return 0


def machine(device_name: str) -> str:
    import torch

    from .utils.device import resolve_device

    device = resolve_device(device_name)
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}"
    return f"{_cpu_name()}, {torch.get_num_threads()} threads, torch {torch.__version__}"


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    except OSError:
        names = []
    return names[0] if names else (platform.processor() or platform.machine())


def duration(days: float) -> str:
    if days >= 2:
        return f"{days:.1f} days"
    return f"{days * 24:.1f} h"


def markdown(rows: list[dict[str, Any]]) -> str:
    """The rows as a markdown table (failed cases say why)."""
    head = "| model | precision | option | it/s | ms / it | " + " | ".join(f"{p} ms" for p in PHASES)
    head += " | ops / it | peak GiB | 1M iterations | note |"
    lines = [head, "|" + "---|" * 3 + "---:|" * (7 + len(PHASES) - 2) + "---|"]
    for r in rows:
        first = f"| {r['model']} | {r['precision']} | {r['option']} |"
        if "error" in r:
            lines.append(first + " - |" * (5 + len(PHASES)) + f" {r['error']} |")
            continue
        phases = " | ".join(f"{r['phases_ms'][p]:.1f}" if p in r["phases_ms"] else "-" for p in PHASES)
        ops = f"{r['ops_per_iter']:,}" if r.get("ops_per_iter") is not None else "-"
        lines.append(
            f"{first} {r['iters_per_second']:.2f} | {1e3 * r['seconds_per_iter']:.1f} | {phases} | {ops} | "
            f"{r['peak_gib']:.2f} | {duration(r['paper_days'])} | {r['note']} |"
        )
    return "\n".join(lines)


def legend(device_type: str) -> str:
    """What the phase columns measure, printed under the table."""
    if device_type == "cpu":
        total = "they split the timed iterations and add up to ms / it."
    else:
        total = (
            "they are timed in separate iterations that wait for the device at each phase boundary, and add up "
            "to those iterations' time (in the note), not to ms / it."
        )
    lines = [f"Phase columns, ms per iteration: {total}"]
    lines += [f"- {name}: {meaning}." for name, meaning in PHASE_MEANINGS.items()]
    return "\n".join(lines)


def run_bench(cases: list[Case], settings: Settings, *, isolate: bool = True, on_row=None) -> list[dict[str, Any]]:
    """Every case, in order; `on_row(row)` after each (for progress)."""
    from .utils.device import resolve_device

    on_cuda = resolve_device(settings.device).type == "cuda"
    rows = []
    for case in cases:
        if case.option in CUDA_ONLY and not on_cuda:
            row = {**asdict(case), "error": "CUDA only"}
        elif isolate:
            row = measure_isolated(case, settings)
        else:
            try:
                row = measure(case, settings)
            except Unsupported as exc:
                row = {**asdict(case), "error": str(exc)}
        rows.append(row)
        if on_row is not None:
            on_row(row)
    return rows


if __name__ == "__main__":  # the child process of `measure_isolated`
    sys.exit(measure_case_main(sys.argv[1]))
