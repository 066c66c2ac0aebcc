"""Do two runs of a training step agree? The rule shared by the golden test (ours against the official
code) and the CUDA graph's check (a replay against an eager iteration).

Adam moves each weight by lr x m / sqrt(v), on its first step lr x sign(g). A weight whose gradient is
about zero (as small as the rounding of its sum) may get the other sign when the same gradient is summed
in another order (another CPU, thread count or cuDNN algorithm), and then moves by up to a whole step
the other way. That is harmless, and rare: about 1e-6 of the weights between two CPUs in fp32, up to a
fifth of a small tensor between two cuDNN algorithms in TF32 or bf16 (measured: docs/faithfulness.md). A
tolerance wide enough to allow it everywhere (two steps) cannot see a wrong update anywhere either: a
flipped loss term or a network that was not updated moves its weights by at most a step or two. So the
rule tells the two apart by how many differ:

- a value that agrees to rounding is within `atol` (a fraction of a step), plus `rtol` times the expected
  update where the runs started from a known state (the graph check: rounding of another kind, TF32 or
  bf16, moves an update in proportion to it);
- beyond that, at most `max_share` of all values compared may differ (the flips), and in each tensor
  at most max(1, max_share x its size), so that a fault confined to one small tensor is seen too;
- and none by more than `max_error` (what flipped steps can add up to).

It is computed where the tensors are (on the GPU for the graph check) and reads back a few numbers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from torch import Tensor


@dataclass(frozen=True)
class Agreement:
    """What `FlipRule.compare` found: `off` of `total` values beyond atol, the largest difference, and
    what breaks the rule (empty when it holds)."""

    off: int
    total: int
    worst: float
    problems: list[str] = field(default_factory=list)

    @property
    def share(self) -> float:
        return self.off / self.total if self.total else 0.0

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class FlipRule:
    """Two runs agree when all but a few values are within `atol` (+ `rtol` x the expected update), the
    few within `max_error`."""

    atol: float
    max_error: float
    max_share: float = 1e-3
    rtol: float = 0.0

    def compare(self, items: Iterable[tuple[str, Tensor, Tensor] | tuple[str, Tensor, Tensor, Tensor]]) -> Agreement:
        """`items` of (name, got, expected) or (name, got, expected, start) tensors on one device, `start`
        the state both runs began from (then `rtol` applies to the expected update, expected - start).
        NaN equals NaN."""
        names, sizes, counts, maxima = [], [], [], []
        with torch.no_grad():
            for name, got, expected, *start in items:
                if got.shape != expected.shape:
                    raise ValueError(f"{name}: shape {tuple(got.shape)} against {tuple(expected.shape)}")
                diff = (got.float() - expected.float()).abs()
                diff = diff.masked_fill_(got.isnan() & expected.isnan(), 0.0).nan_to_num_(nan=math.inf)
                tolerance = self.atol
                if start and self.rtol:
                    tolerance = (expected.float() - start[0].float()).abs_().mul_(self.rtol).add_(self.atol)
                names.append(name)
                sizes.append(diff.numel())
                counts.append((diff > tolerance).sum())
                maxima.append(diff.max() if diff.numel() else diff.new_zeros(()))
        if not names:
            return Agreement(0, 0, 0.0)
        # One read-back for all tensors: the counts and maxima stay on the device until here.
        counts = torch.stack(counts).tolist()
        maxima = torch.stack([m.float() for m in maxima]).tolist()
        problems = []
        for name, size, off, worst in zip(names, sizes, counts, maxima):
            allowed = max(1, math.floor(self.max_share * size))
            if off > allowed:
                problems.append(
                    f"{name}: {off} of {size} values differ by more than {self._within} (at most {allowed} may)"
                )
            if worst > self.max_error:
                problems.append(f"{name} differs by up to {worst:.3g} (more than {self.max_error:.3g})")
        off, total = sum(counts), sum(sizes)
        if off > self.max_share * total:
            problems.insert(
                0,
                f"{off} of {total} values ({off / total:.2g}) differ by more than {self._within} "
                f"(at most {self.max_share:g} may)",
            )
        return Agreement(off, total, max(maxima), problems)

    @property
    def _within(self) -> str:
        return f"{self.atol:.3g}" + (f" + {self.rtol:g} x the update" if self.rtol else "")
