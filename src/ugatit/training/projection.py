"""How long the rest of a run will take, said once, early, in words: the progress bar's ETA is easy to
miss and, at the paper's 1M iterations, reads as a number of hours past anything a bar shows well.

The rate is measured after a few warm-up iterations (the first ones allocate memory and, on CUDA,
capture the graph) over at least `MIN_ITERATIONS` iterations and `MIN_SECONDS` seconds, or over
whatever `MAX_SECONDS` allowed on a slow machine. It is wall time between iterations, so the logging,
sample grids and checkpoints of those iterations are in it; on a device that queues work the clock
waits for the device at both ends.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import torch

from ..utils.profiling import synchronize

WARMUP = {"cuda": 6, "other": 2}  # on CUDA the graph is captured after 3 eager iterations, then checked
MIN_ITERATIONS = 20
MIN_SECONDS = 5.0
MAX_SECONDS = 60.0  # a slow machine: project from the iterations done by then (at least 2)
GPU_JOB_SECONDS = 86_400.0  # on the CPU, past a day the run is said to be a GPU job


def duration(seconds: float) -> str:
    """Seconds in the unit a person would use: 45 s, 12 min, 7.5 h, 11.6 days."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


class Projection:
    """Call `observe(step)` after every iteration; it returns the projection once, then None."""

    def __init__(self, device: torch.device, total: int, start_step: int):
        self.device = device
        self.total = total
        self.warmup_until = start_step + WARMUP["cuda" if device.type == "cuda" else "other"]
        self.first: tuple[int, float] | None = None
        self.done = False

    def observe(self, step: int) -> str | None:
        if self.done:
            return None
        if step >= self.total:
            self.done = True  # a run that ends before the measurement needs no projection
            return None
        if step < self.warmup_until:
            return None
        if self.first is None:
            synchronize(self.device)
            self.first = (step, time.monotonic())
            return None
        iterations = step - self.first[0]
        elapsed = time.monotonic() - self.first[1]
        enough = iterations >= MIN_ITERATIONS and elapsed >= MIN_SECONDS
        if not (enough or (elapsed >= MAX_SECONDS and iterations >= 2)):
            return None
        synchronize(self.device)
        elapsed = time.monotonic() - self.first[1]
        self.done = True
        return self.message(step, iterations / elapsed)

    def message(self, step: int, rate: float) -> str:
        remaining = self.total - step
        seconds = remaining / rate
        end = datetime.now() + timedelta(seconds=seconds)
        text = (
            f"projected: {rate:.3g} it/s measured over iterations {self.first[0] + 1}-{step}, so the remaining "
            f"{remaining:,} of {self.total:,} iterations take about {duration(seconds)} at this rate "
            f"(until {end:%Y-%m-%d %H:%M})"
        )
        if self.device.type == "cpu" and seconds > GPU_JOB_SECONDS:
            text += (
                ". On a CPU this is a GPU job: the README's 'How long training takes' gives measured rates, and "
                "ugatit bench measures each model, precision and speed option on a machine (with the time 1M "
                "iterations would take) before you commit to a run"
            )
        return text
