"""KID (two protocols), the authors' "mean KID", and FID, all on precomputed features.

Every function here takes feature matrices, shape (n, d), one row per image, and never sees an image,
so the estimators can be checked on tiny hand-made inputs. Arithmetic is float64 throughout: with
2048-d Inception features the cubic kernel reaches ~1e3 and float32 loses digits that KID x 100 shows.

KID (Binkowski et al. 2018, arXiv 1801.01401) is the unbiased estimate of the squared MMD between the
two feature distributions with the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3. Two protocols
turn it into a number with an error bar:

- ``paper``: the U-GAT-IT authors' metric code (taki0112/GAN_Metrics-Tensorflow, a copy of
  ``tf.contrib.gan``'s ``kernel_classifier_distance_and_std_from_activations`` called with
  ``max_block_size=10``). Both sets are cut, in file order, into the same number of blocks of at most
  10 samples; block i of the real set is compared with block i of the fake set; the result is the
  mean over blocks and its standard error (Bessel-corrected std over blocks / sqrt(n_blocks)).
- ``subsets``: torch-fidelity / torchmetrics / Binkowski's own code: ``subsets`` random subsets of
  ``subset_size`` samples drawn without replacement from each set; the result is the mean over
  subsets and the population std over subsets.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ..errors import UserError

#: Papers report KID multiplied by 100.
KID_SCALE = 100.0
#: The authors' block size (``max_block_size=10`` in their ``kernel_inception_distance``).
PAPER_BLOCK_SIZE = 10
#: torch-fidelity's and torchmetrics' defaults.
DEFAULT_SUBSETS = 100
DEFAULT_SUBSET_SIZE = 1000
#: The authors' weight of KID(source, fake) in "mean KID" (GAN_Metrics-Tensorflow commit 9ced680).
MEAN_KID_SOURCE_WEIGHT = 0.98

KERNEL_DESCRIPTION = "cubic polynomial (x.y/d + 1)^3, unbiased MMD^2"
PROTOCOLS = ("paper", "subsets")


@dataclass(frozen=True)
class KIDSettings:
    """How KID is measured, given once and passed whole through every layer that measures it: which
    protocols (``paper`` and/or ``subsets``), the paper protocol's largest block, and the subsets
    protocol's number and size of subsets and its random seed (None: a fresh random draw)."""

    protocols: tuple[str, ...] = PROTOCOLS
    block_size: int = PAPER_BLOCK_SIZE
    subsets: int = DEFAULT_SUBSETS
    subset_size: int = DEFAULT_SUBSET_SIZE
    seed: int | None = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "protocols", tuple(self.protocols))
        unknown = set(self.protocols) - set(PROTOCOLS)
        if not self.protocols:
            raise UserError("no KID protocol given: use paper, subsets or both")
        if unknown:
            raise UserError(f"unknown KID protocol(s) {sorted(unknown)}: use paper, subsets or both")


#: Both protocols with the authors' block size and torch-fidelity's subsets.
DEFAULT_KID = KIDSettings()


@dataclass
class KIDResult:
    """One KID estimate with everything needed to say how it was obtained.

    ``value`` and ``spread`` are raw MMD^2 values (not x 100); ``spread_kind`` says whether the
    spread is a standard error over blocks ("sem", paper protocol) or a std over subsets ("std").
    """

    value: float
    spread: float
    spread_kind: str
    protocol: str
    n_real: int
    n_fake: int
    settings: dict[str, Any] = field(default_factory=dict)
    per_estimate: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary in the unit papers use (x 100)."""
        return {
            "value_x100": self.value * KID_SCALE,
            f"{self.spread_kind}_x100": self.spread * KID_SCALE,
            "protocol": self.protocol,
            "n_real": self.n_real,
            "n_fake": self.n_fake,
            "kernel": KERNEL_DESCRIPTION,
            **self.settings,
        }


def _as_float64(features: Tensor, name: str) -> Tensor:
    features = torch.as_tensor(features)
    if features.dim() != 2:
        raise ValueError(f"{name} features must have shape (n, d), got {tuple(features.shape)}")
    return features.to(torch.float64)


def _check_pair(real: Tensor, fake: Tensor) -> tuple[Tensor, Tensor]:
    real = _as_float64(real, "real")
    fake = _as_float64(fake, "fake")
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"feature sizes differ: real {real.shape[1]}, fake {fake.shape[1]}")
    return real, fake


def polynomial_kernel(x: Tensor, y: Tensor, degree: int = 3, coef0: float = 1.0) -> Tensor:
    """k(x, y) = (x.y / d + coef0)^degree for every pair of rows; gamma = 1/d as in KID."""
    return (x @ y.T / x.shape[1] + coef0) ** degree


def mmd2_unbiased(x: Tensor, y: Tensor) -> Tensor:
    """Unbiased MMD^2 between two samples, sizes m and n may differ (both at least 2).

    Within-set terms leave out the diagonal (k(x_i, x_i) is not an independent pair), the cross
    term averages all m*n pairs. For m == n this is exactly torchmetrics' / Binkowski's estimator.
    """
    m, n = x.shape[0], y.shape[0]
    if m < 2 or n < 2:
        raise ValueError(f"unbiased MMD needs at least 2 samples per set, got {m} and {n}")
    k_xx = polynomial_kernel(x, x)
    k_yy = polynomial_kernel(y, y)
    k_xy = polynomial_kernel(x, y)
    xx = (k_xx.sum() - k_xx.diagonal().sum()) / (m * (m - 1))
    yy = (k_yy.sum() - k_yy.diagonal().sum()) / (n * (n - 1))
    return xx + yy - 2.0 * k_xy.mean()


def paper_block_sizes(n_real: int, n_fake: int, max_block_size: int = PAPER_BLOCK_SIZE) -> tuple[list[int], list[int]]:
    """Block sizes of the authors' (tf.contrib.gan) split, for the real and the fake set.

    The number of blocks is set by the larger set, ceil(max(n_real, n_fake) / max_block_size), and
    BOTH sets are cut into that many blocks, so with unequal sizes the smaller set gets smaller
    blocks. Within a set the sizes differ by at most one: n // n_blocks each, and the last
    n % n_blocks blocks get one more (TF puts the larger blocks at the end).
    """
    if max_block_size < 2:
        raise UserError(f"`block_size` must be at least 2, got {max_block_size}")
    n_blocks = math.ceil(max(n_real, n_fake) / max_block_size)

    def split(n: int) -> list[int]:
        base, extra = divmod(n, n_blocks)
        return [base] * (n_blocks - extra) + [base + 1] * extra

    return split(n_real), split(n_fake)


def check_set_sizes(
    n_real: int, n_fake: int, protocols: Sequence[str] = PROTOCOLS, block_size: int = PAPER_BLOCK_SIZE
) -> tuple[list[int], list[int]]:
    """Refuse set sizes the protocols cannot measure, before any feature is computed: KID needs two
    images a set, and the paper protocol two a block. Returns the paper protocol's block sizes."""
    if min(n_real, n_fake) < 2:
        raise UserError(f"KID needs at least 2 images in each set, got {n_real} real and {n_fake} fake")
    sizes_r, sizes_f = paper_block_sizes(n_real, n_fake, block_size)
    if "paper" in protocols and min(sizes_r + sizes_f) < 2:
        raise UserError(
            f"the paper protocol cuts both sets into {len(sizes_r)} blocks (set by the larger set, "
            f"{max(n_real, n_fake)} images, blocks of at most {block_size}); the smaller set "
            f"({min(n_real, n_fake)} images) then has blocks of fewer than 2 images. "
            "Use sets of similar size or `protocol=subsets`"
        )
    return sizes_r, sizes_f


def kid_paper(real: Tensor, fake: Tensor, block_size: int = PAPER_BLOCK_SIZE) -> KIDResult:
    """KID with the authors' block protocol: mean over blocks and its standard error.

    Samples are taken in the order given (the authors' code used file order), which matters: block i
    of ``real`` is only ever compared with block i of ``fake``. With a single block the standard
    error is undefined and reported as NaN, as TF does.
    """
    real, fake = _check_pair(real, fake)
    n_real, n_fake = real.shape[0], fake.shape[0]
    sizes_r, sizes_f = check_set_sizes(n_real, n_fake, ("paper",), block_size)
    blocks_r = torch.split(real, sizes_r)
    blocks_f = torch.split(fake, sizes_f)
    estimates = torch.stack([mmd2_unbiased(r, f) for r, f in zip(blocks_r, blocks_f)])
    n_blocks = estimates.numel()
    mean = estimates.mean()
    sem = estimates.std(unbiased=True) / math.sqrt(n_blocks) if n_blocks > 1 else torch.tensor(math.nan)
    return KIDResult(
        value=float(mean),
        spread=float(sem),
        spread_kind="sem",
        protocol="paper",
        n_real=n_real,
        n_fake=n_fake,
        settings={
            "block_size": block_size,
            "n_blocks": n_blocks,
            "real_block_sizes": _size_range(sizes_r),
            "fake_block_sizes": _size_range(sizes_f),
            "order": "file order (sorted names)",
        },
        per_estimate=estimates.tolist(),
    )


def _size_range(sizes: list[int]) -> str:
    lo, hi = min(sizes), max(sizes)
    return str(lo) if lo == hi else f"{lo}-{hi}"


def kid_subsets(
    real: Tensor,
    fake: Tensor,
    subsets: int = DEFAULT_SUBSETS,
    subset_size: int = DEFAULT_SUBSET_SIZE,
    seed: int | None = 0,
    generator: torch.Generator | None = None,
) -> KIDResult:
    """KID over random subsets: mean and population std over ``subsets`` draws.

    The subset size is min(subset_size, n_real, n_fake), so small test sets (selfie2anime has 100
    images a domain) work; torch-fidelity and torchmetrics refuse those instead. When the subset size
    equals both set sizes every subset is the whole set and the std is 0 up to rounding.

    Draws follow torchmetrics' order exactly: for each subset ``randperm(n_real)`` then
    ``randperm(n_fake)``, first ``subset_size`` indices of each. Pass ``generator`` to control the
    stream yourself, otherwise a CPU generator seeded with ``seed`` is used (seed None: random).
    """
    real, fake = _check_pair(real, fake)
    n_real, n_fake = real.shape[0], fake.shape[0]
    if subsets < 1:
        raise UserError(f"`subsets` must be at least 1, got {subsets}")
    size = min(subset_size, n_real, n_fake)
    if size < 2:
        raise UserError(f"KID needs at least 2 images in each set, got {n_real} real and {n_fake} fake")
    if generator is None:
        generator = torch.Generator()
        if seed is None:
            generator.seed()
        else:
            generator.manual_seed(seed)
    estimates = []
    for _ in range(subsets):
        idx_r = torch.randperm(n_real, generator=generator)[:size]
        idx_f = torch.randperm(n_fake, generator=generator)[:size]
        estimates.append(mmd2_unbiased(real[idx_r], fake[idx_f]))
    stacked = torch.stack(estimates)
    settings: dict[str, Any] = {
        "subsets": subsets,
        "subset_size": size,
        "requested_subset_size": subset_size,
        "seed": seed,
        "std": "population std over subsets (ddof 0)",
    }
    if size == n_real == n_fake:
        settings["note"] = "every subset is the whole set: std is 0 by construction"
    return KIDResult(
        value=float(stacked.mean()),
        spread=float(stacked.std(unbiased=False)),
        spread_kind="std",
        protocol="subsets",
        n_real=n_real,
        n_fake=n_fake,
        settings=settings,
        per_estimate=stacked.tolist(),
    )


def mean_kid(kid_source_fake: float, kid_target_fake: float, source_weight: float = MEAN_KID_SOURCE_WEIGHT) -> float:
    """The U-GAT-IT authors' "mean KID": (0.98 * KID(source, fake) + 0.02 * KID(target, fake)) / 2.

    Source: taki0112/GAN_Metrics-Tensorflow, main.py, ``mean_kernel_inception_distance`` as of commit
    9ced680 ("add alpha", 2019-08-15): ``source_alpha = 0.98``, ``target_alpha = 1 - source_alpha``,
    ``mean = (target_alpha * KID(real_target, fake) + source_alpha * KID(real_source, fake)) / 2.0``.
    The same mix is applied to the standard errors and (there) to FID. Note the weights sum to 1 and
    the result is still halved, so it is half a weighted average, dominated by the distance of the
    translations from their own source images. Works on any unit (raw or x 100) as long as both
    inputs share it.
    """
    target_weight = 1.0 - source_weight
    return (target_weight * kid_target_fake + source_weight * kid_source_fake) / 2.0


def frechet_distance(real: Tensor, fake: Tensor) -> float:
    """FID: |mu_r - mu_f|^2 + tr(S_r + S_f - 2 (S_r S_f)^(1/2)), covariances with 1/(n-1).

    tr((S_r S_f)^(1/2)) is the sum of square roots of the eigenvalues of S_r S_f (real and >= 0:
    the product is similar to a PSD matrix). How it is computed depends on which is smaller:

    - few samples (test sets of 100 images, 2048-d features): with centred data A (n x d) and
      B (m x d), the non-zero eigenvalues of S_r S_f are the squared singular values of A B^T, so
      the trace is the nuclear norm of A B^T / sqrt((n-1)(m-1)). This never takes the square root
      of a rounding-noise eigenvalue, which is what limits eigenvalue-based FID when n < d.
    - many samples: the d x d route, sqrt of the eigenvalues of R S_f R with R = S_r^(1/2) (same
      eigenvalues as S_r S_f but symmetric; tf.contrib.gan uses the same identity).
    """
    real, fake = _check_pair(real, fake)
    n, m, d = real.shape[0], fake.shape[0], real.shape[1]
    if n < 2 or m < 2:
        raise UserError(f"FID needs at least 2 images in each set, got {n} and {m}")
    mu_r, mu_f = real.mean(0), fake.mean(0)
    a, b = real - mu_r, fake - mu_f
    trace_r = a.square().sum() / (n - 1)
    trace_f = b.square().sum() / (m - 1)
    if n * m * min(n, m) <= d**3:
        trace_sqrt = trace_sqrt_product_from_data(a, b)
    else:
        trace_sqrt = trace_sqrt_product_from_cov(a.T @ a / (n - 1), b.T @ b / (m - 1))
    value = (mu_r - mu_f).square().sum() + trace_r + trace_f - 2 * trace_sqrt
    return float(value)


def trace_sqrt_product_from_data(a: Tensor, b: Tensor) -> Tensor:
    """tr((S_a S_b)^(1/2)) from centred samples a (n x d), b (m x d), S = X^T X / (rows - 1)."""
    scale = math.sqrt((a.shape[0] - 1) * (b.shape[0] - 1))
    return torch.linalg.svdvals(a @ b.T).sum() / scale


def trace_sqrt_product_from_cov(cov_a: Tensor, cov_b: Tensor) -> Tensor:
    """tr((S_a S_b)^(1/2)) from two covariance matrices (symmetric PSD, d x d)."""
    root_a = _sym_sqrt(cov_a)
    middle = root_a @ cov_b @ root_a
    middle = (middle + middle.T) / 2  # remove rounding asymmetry before eigvalsh
    return torch.linalg.eigvalsh(middle).clamp(min=0).sqrt().sum()


def _sym_sqrt(mat: Tensor) -> Tensor:
    """Square root of a symmetric positive semi-definite matrix via its eigen-decomposition."""
    eigvals, eigvecs = torch.linalg.eigh(mat)
    return (eigvecs * eigvals.clamp(min=0).sqrt()) @ eigvecs.T


def evaluate_features(
    real: Tensor,
    fake: Tensor,
    *,
    source: Tensor | None = None,
    kid: KIDSettings = DEFAULT_KID,
    fid: bool = True,
) -> dict[str, dict[str, Any]]:
    """All metrics on precomputed features, keyed by metric name, values JSON-ready.

    Keys: ``kid_paper`` / ``kid_subsets`` (KID(real, fake), the protocols of `kid`), ``fid``; with
    ``source``: ``kid_<protocol>_source`` (KID(source, fake)) and ``mean_kid_<protocol>`` (see `mean_kid`).
    """
    n_real, n_fake = len(real), len(fake)

    def run(protocol: str, a: Tensor, b: Tensor) -> KIDResult:
        if protocol == "paper":
            return kid_paper(a, b, kid.block_size)
        return kid_subsets(a, b, subsets=kid.subsets, subset_size=kid.subset_size, seed=kid.seed)

    out: dict[str, dict[str, Any]] = {}
    for protocol in kid.protocols:
        target_kid = run(protocol, real, fake)
        out[f"kid_{protocol}"] = {"metric": "KID x100", **target_kid.to_dict()}
        if source is not None:
            source_kid = run(protocol, source, fake)
            out[f"kid_{protocol}_source"] = {"metric": "KID(source, fake) x100", **source_kid.to_dict()}
            spread = target_kid.spread_kind
            out[f"mean_kid_{protocol}"] = {
                "metric": "mean KID x100",
                "value_x100": mean_kid(source_kid.value, target_kid.value) * KID_SCALE,
                f"{spread}_x100": mean_kid(source_kid.spread, target_kid.spread) * KID_SCALE,
                "protocol": protocol,
                "n_real": n_real,
                "n_fake": n_fake,
                "n_source": source_kid.n_real,
                "formula": "(0.98 * KID(source, fake) + 0.02 * KID(target, fake)) / 2",
                **target_kid.settings,
            }
    if fid:
        out["fid"] = {
            "metric": "FID",
            "value": frechet_distance(real, fake),
            "n_real": n_real,
            "n_fake": n_fake,
            "protocol": "full sets",
        }
    return out
