"""Metrics for tasks with ground truth (the built-in shapes task): L1 and PSNR against the answer.

Inputs are image batches in the model's range [-1, 1], shape (N, C, H, W). Both metrics are computed
on [0, 1] (x / 2 + 0.5), the scale people quote PSNR on:

* L1 is the mean absolute error on [0, 1] (so 0 is perfect and 1 is black versus white);
* PSNR is 10 log10(1 / MSE) on [0, 1] per image, then averaged over images. A perfect image would be
  infinite; MSE is floored at 1e-10, so PSNR tops out at 100 dB and a mean stays finite.

`GroundTruthMeter` accumulates, per direction (a2b, b2a): the translation against its ground truth,
the identity baseline (the untranslated input against the ground truth: what doing nothing scores),
and the cycle reconstruction against the input.
"""

from __future__ import annotations

import math

import torch

from ..domains import DIRECTIONS

#: PSNR of a perfect match would be infinite; this floor on MSE caps it at 100 dB.
MSE_FLOOR = 1e-10


def _check_pair(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.shape != b.shape:
        raise ValueError(f"image batches differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
    if a.dim() != 4:
        raise ValueError(f"expected a batch (N, C, H, W), got shape {tuple(a.shape)}")


def _unit_diff(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(a - b) on the [0, 1] scale, flattened per image, in float32 whatever the input dtype."""
    _check_pair(a, b)
    # (a/2 + 1/2) - (b/2 + 1/2) = (a - b) / 2.
    return ((a.detach().float() - b.detach().float()) / 2).flatten(1)


def l1_per_image(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean absolute error on [0, 1] of each image pair, shape (N,)."""
    return _unit_diff(a, b).abs().mean(dim=1)


def psnr_per_image(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """PSNR in dB on [0, 1] (peak 1) of each image pair, shape (N,); at most 100 dB."""
    mse = _unit_diff(a, b).square().mean(dim=1).clamp_min(MSE_FLOOR)
    return -10.0 * torch.log10(mse)


def l1(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean absolute error on [0, 1] between two [-1, 1] batches."""
    return float(l1_per_image(a, b).mean())


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean over images of the per-image PSNR (dB, [0, 1] scale) between two [-1, 1] batches."""
    return float(psnr_per_image(a, b).mean())


class GroundTruthMeter:
    """Sums per-image L1 and PSNR over a test set, per translation direction.

    For each direction it tracks three comparisons:

    * ``l1`` / ``psnr``: translation versus ground truth (the score);
    * ``identity_l1`` / ``identity_psnr``: input versus ground truth (the do-nothing baseline a
      translator has to beat);
    * ``cycle_l1`` / ``cycle_psnr``: cycle reconstruction versus input (only if reconstructions are
      given).
    """

    _KEYS = ("l1", "psnr", "identity_l1", "identity_psnr", "cycle_l1", "cycle_psnr")

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._sums = {d: dict.fromkeys(self._KEYS, 0.0) for d in DIRECTIONS}
        self._count = dict.fromkeys(DIRECTIONS, 0)
        self._cycle_count = dict.fromkeys(DIRECTIONS, 0)

    def update(
        self,
        direction: str,
        source: torch.Tensor,
        translated: torch.Tensor,
        target: torch.Tensor,
        reconstructed: torch.Tensor | None = None,
    ) -> None:
        """Add a batch: `source` translated to `translated`, whose ground truth is `target`.

        `reconstructed` is the cycle (translated back to the source domain), compared to `source`.
        All tensors are (N, C, H, W) in [-1, 1].
        """
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        sums = self._sums[direction]
        sums["l1"] += float(l1_per_image(translated, target).sum())
        sums["psnr"] += float(psnr_per_image(translated, target).sum())
        sums["identity_l1"] += float(l1_per_image(source, target).sum())
        sums["identity_psnr"] += float(psnr_per_image(source, target).sum())
        self._count[direction] += source.shape[0]
        if reconstructed is not None:
            sums["cycle_l1"] += float(l1_per_image(reconstructed, source).sum())
            sums["cycle_psnr"] += float(psnr_per_image(reconstructed, source).sum())
            self._cycle_count[direction] += source.shape[0]

    def compute(self) -> dict[str, dict[str, float]]:
        """Means per direction: {"a2b": {"count", "l1", "psnr", "identity_l1", ...}, "b2a": ...}.

        Directions without images are left out; cycle keys are NaN when no reconstruction was given.
        """
        table: dict[str, dict[str, float]] = {}
        for d in DIRECTIONS:
            n, n_cycle = self._count[d], self._cycle_count[d]
            if n == 0:
                continue
            sums = self._sums[d]
            row: dict[str, float] = {"count": n}
            for key in ("l1", "psnr", "identity_l1", "identity_psnr"):
                row[key] = sums[key] / n
            for key in ("cycle_l1", "cycle_psnr"):
                row[key] = sums[key] / n_cycle if n_cycle else math.nan
            table[d] = row
        return table

    def rows(self) -> list[dict[str, float | str]]:
        """`compute()` as a list of flat rows ({"direction": "a2b", ...}), ready for a table."""
        return [{"direction": d, **row} for d, row in self.compute().items()]
