"""Counting what a piece of code dispatches: aten ops (a proxy for GPU kernel launches measurable on
any machine) and, on CUDA, peak memory. Used by `ugatit bench` and by the test that holds the step's
op count down.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

# Ops that only describe tensors (shapes, strides, aliases): counted, but also reported apart, since
# they launch nothing on a GPU.
VIEW_OPS = frozenset(
    {
        "view",
        "_unsafe_view",
        "reshape",
        "expand",
        "t",
        "transpose",
        "permute",
        "squeeze",
        "unsqueeze",
        "as_strided",
        "alias",
        "detach",
        "slice",
        "select",
        "unbind",
        "split",
        "split_with_sizes",
        "chunk",
        "_reshape_alias",
        "lift_fresh",
    }
)


class OpCounter(TorchDispatchMode):
    """Counts every aten op dispatched while active, by name (`aten.mul.Tensor` -> `mul`), forward and
    backward alike (the autograd engine carries the mode into the backward pass)."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.counts[func.overloadpacket.__name__] += 1
        return func(*args, **(kwargs or {}))

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def views(self) -> int:
        return sum(n for name, n in self.counts.items() if name in VIEW_OPS)


def count_ops(fn: Callable[[], Any]) -> tuple[Any, OpCounter]:
    """fn()'s result and the ops it dispatched."""
    with OpCounter() as counter:
        result = fn()
    return result, counter


class PhaseClock:
    """Wall time per named phase, waiting for the device at each boundary; a phase inside another is
    counted in its own name only (exclusive times). Call it as a context manager: `with clock("D step")`."""

    def __init__(self, device: torch.device):
        self.device = device
        self.seconds: defaultdict[str, float] = defaultdict(float)
        self._children: list[float] = []

    @contextlib.contextmanager
    def __call__(self, name: str):
        synchronize(self.device)
        start = time.perf_counter()
        self._children.append(0.0)
        try:
            yield
        finally:
            synchronize(self.device)
            elapsed = time.perf_counter() - start
            inner = self._children.pop()
            self.seconds[name] += elapsed - inner
            if self._children:
                self._children[-1] += elapsed


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory_gib(device: torch.device) -> float | None:
    """The CUDA allocator's peak since the last reset, in GiB; None elsewhere."""
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 2**30


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
