"""KID (paper blocks, random subsets), mean KID and FID against hand computations and torchmetrics."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from ugatit.errors import UserError
from ugatit.metrics.kid import (
    KIDSettings,
    evaluate_features,
    frechet_distance,
    kid_paper,
    kid_subsets,
    mean_kid,
    mmd2_unbiased,
    paper_block_sizes,
    trace_sqrt_product_from_cov,
    trace_sqrt_product_from_data,
)

# torchmetrics warns that KID keeps all features in memory; irrelevant for these tiny inputs.
pytestmark = pytest.mark.filterwarnings("ignore:Metric `Kernel Inception Distance`:UserWarning")


def naive_mmd2(x: torch.Tensor, y: torch.Tensor) -> float:
    """Unbiased MMD^2 written out pair by pair, independent of the vectorised code."""
    d = x.shape[1]

    def k(a, b):
        return (sum(float(a[i]) * float(b[i]) for i in range(d)) / d + 1.0) ** 3

    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


class FeaturesAsImages(nn.Module):
    """Lets torchmetrics run on given feature vectors: its 'images' are the features."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.num_features = d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def test_mmd_hand_computed_1d():
    # k(a, b) = (a*b + 1)^3 with d = 1. xx: k(0,1)=1 -> 1; yy: k(2,3)=343 -> 343;
    # xy: k(0,2)=1, k(0,3)=1, k(1,2)=27, k(1,3)=64 -> mean 23.25. MMD^2 = 1 + 343 - 46.5.
    x = torch.tensor([[0.0], [1.0]])
    y = torch.tensor([[2.0], [3.0]])
    assert float(mmd2_unbiased(x, y)) == pytest.approx(297.5, abs=1e-12)


def test_mmd_matches_naive_loop_unequal_sizes():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, generator=g, dtype=torch.float64)
    y = torch.randn(6, 3, generator=g, dtype=torch.float64) + 0.5
    assert float(mmd2_unbiased(x, y)) == pytest.approx(naive_mmd2(x, y), rel=1e-12)


@pytest.mark.parametrize(
    "n_real, n_fake, block, expected_real, expected_fake",
    [
        (100, 100, 10, [10] * 10, [10] * 10),
        (100, 95, 10, [10] * 10, [9] * 5 + [10] * 5),  # the larger set fixes the block count
        (95, 100, 10, [9] * 5 + [10] * 5, [10] * 10),
        (25, 25, 10, [8, 8, 9], [8, 8, 9]),  # ceil(25/10) = 3 blocks; the larger blocks come last
        (20, 20, 10, [10, 10], [10, 10]),
        (7, 7, 10, [7], [7]),
    ],
)
def test_paper_block_split_like_tf_contrib_gan(n_real, n_fake, block, expected_real, expected_fake):
    assert paper_block_sizes(n_real, n_fake, block) == (expected_real, expected_fake)


def test_paper_protocol_blocks_in_order_mean_and_standard_error():
    g = torch.Generator().manual_seed(1)
    real = torch.randn(25, 4, generator=g, dtype=torch.float64)
    fake = torch.randn(23, 4, generator=g, dtype=torch.float64) * 1.3
    result = kid_paper(real, fake, block_size=10)
    # 3 blocks: real 8, 8, 9; fake 7, 8, 8 -- contiguous, in the given order.
    bounds_r, bounds_f = [0, 8, 16, 25], [0, 7, 15, 23]
    per_block = [naive_mmd2(real[bounds_r[i] : bounds_r[i + 1]], fake[bounds_f[i] : bounds_f[i + 1]]) for i in range(3)]
    mean = sum(per_block) / 3
    sem = math.sqrt(sum((v - mean) ** 2 for v in per_block) / 2) / math.sqrt(3)
    assert result.per_estimate == pytest.approx(per_block, rel=1e-10)
    assert result.value == pytest.approx(mean, rel=1e-10)
    assert result.spread == pytest.approx(sem, rel=1e-10)
    assert result.spread_kind == "sem" and result.protocol == "paper"
    assert (result.n_real, result.n_fake) == (25, 23)
    assert result.settings["n_blocks"] == 3
    assert result.settings["fake_block_sizes"] == "7-8"


def test_paper_protocol_depends_on_order():
    g = torch.Generator().manual_seed(2)
    real = torch.randn(40, 4, generator=g, dtype=torch.float64)
    fake = torch.randn(40, 4, generator=g, dtype=torch.float64)
    reordered = kid_paper(real, fake.flip(0)).value
    assert kid_paper(real, fake).value != pytest.approx(reordered, rel=1e-9)


def test_single_block_equals_torchmetrics_full_set_and_sem_is_nan():
    from torchmetrics.image.kid import KernelInceptionDistance

    g = torch.Generator().manual_seed(3)
    real = torch.randn(30, 8, generator=g, dtype=torch.float64)
    fake = torch.randn(30, 8, generator=g, dtype=torch.float64) + 0.2
    metric = KernelInceptionDistance(feature=FeaturesAsImages(8), subsets=1, subset_size=30)
    metric.update(real, real=True)
    metric.update(fake, real=False)
    tm_mean, _ = metric.compute()
    ours = kid_paper(real, fake, block_size=30)
    assert ours.value == pytest.approx(float(tm_mean), rel=1e-12)
    assert math.isnan(ours.spread)


@pytest.mark.parametrize("n_real, n_fake, size, subsets", [(60, 45, 25, 7), (30, 30, 30, 3)])
def test_subsets_equal_torchmetrics_with_the_same_random_stream(n_real, n_fake, size, subsets):
    from torchmetrics.image.kid import KernelInceptionDistance

    g = torch.Generator().manual_seed(4)
    real = torch.randn(n_real, 16, generator=g, dtype=torch.float64)
    fake = torch.randn(n_fake, 16, generator=g, dtype=torch.float64) * 1.1 + 0.1
    metric = KernelInceptionDistance(feature=FeaturesAsImages(16), subsets=subsets, subset_size=size)
    metric.update(real, real=True)
    metric.update(fake, real=False)
    torch.manual_seed(1234)  # torchmetrics draws from the global generator
    tm_mean, tm_std = metric.compute()
    ours = kid_subsets(real, fake, subsets=subsets, subset_size=size, generator=torch.Generator().manual_seed(1234))
    assert ours.value == pytest.approx(float(tm_mean), rel=1e-12)
    assert ours.spread == pytest.approx(float(tm_std), rel=1e-9, abs=1e-15)
    assert ours.settings["subset_size"] == size and ours.settings["subsets"] == subsets


def test_subsets_seeded_and_capped_at_set_size():
    g = torch.Generator().manual_seed(5)
    real = torch.randn(50, 8, generator=g)
    fake = torch.randn(40, 8, generator=g)
    a = kid_subsets(real, fake, subsets=5, seed=7)
    b = kid_subsets(real, fake, subsets=5, seed=7)
    c = kid_subsets(real, fake, subsets=5, seed=8)
    assert a.per_estimate == b.per_estimate and a.per_estimate != c.per_estimate
    assert a.settings["subset_size"] == 40 and a.settings["requested_subset_size"] == 1000


def test_n_100_works_for_both_protocols():
    g = torch.Generator().manual_seed(6)
    real = torch.rand(100, 2048, generator=g)
    fake = torch.rand(100, 2048, generator=g) * 1.2
    paper = kid_paper(real, fake)
    subsets = kid_subsets(real, fake)  # 100 subsets of min(100, 1000) = 100
    assert paper.settings["n_blocks"] == 10 and len(paper.per_estimate) == 10
    assert math.isfinite(paper.spread) and paper.spread > 0
    assert subsets.settings["subset_size"] == 100 and len(subsets.per_estimate) == 100
    # Every subset is the whole set: one value, std zero up to summation order.
    full = float(mmd2_unbiased(real.double(), fake.double()))
    assert subsets.value == pytest.approx(full, rel=1e-9)
    assert subsets.spread <= 1e-9 * abs(full)
    assert "whole set" in subsets.settings["note"]


def test_paper_protocol_refuses_blocks_of_one():
    real = torch.randn(100, 4)
    fake = torch.randn(10, 4)  # 10 blocks set by the real set -> fake blocks of 1
    with pytest.raises(UserError, match="fewer than 2"):
        kid_paper(real, fake)


def test_mean_kid_is_the_authors_half_weighted_mix():
    # GAN_Metrics-Tensorflow 9ced680: (0.02 * KID(target, fake) + 0.98 * KID(source, fake)) / 2
    assert mean_kid(kid_source_fake=10.0, kid_target_fake=20.0) == pytest.approx((0.98 * 10 + 0.02 * 20) / 2)
    assert mean_kid(4.0, 4.0) == pytest.approx(2.0)


@pytest.mark.parametrize(
    "n, d, rel",
    [
        (50, 16, 1e-10),  # full-rank covariances: both computations are exact to rounding
        # n < d: singular covariances. torchmetrics takes square roots of rounding-noise eigenvalues
        # (measured 4e-8 relative here), ours uses singular values of the centred data product.
        (20, 64, 1e-6),
    ],
)
def test_fid_equals_torchmetrics(n, d, rel):
    from torchmetrics.image.fid import FrechetInceptionDistance

    g = torch.Generator().manual_seed(7)
    real = torch.randn(n, d, generator=g, dtype=torch.float64)
    fake = torch.randn(n + 3, d, generator=g, dtype=torch.float64) * 0.8 + 0.3
    metric = FrechetInceptionDistance(feature=FeaturesAsImages(d))
    metric.update(real, real=True)
    metric.update(fake, real=False)
    assert frechet_distance(real, fake) == pytest.approx(float(metric.compute()), rel=rel)


def test_fid_trace_term_data_route_equals_covariance_route():
    g = torch.Generator().manual_seed(9)
    a = torch.randn(40, 12, generator=g, dtype=torch.float64)
    b = torch.randn(33, 12, generator=g, dtype=torch.float64) @ torch.randn(12, 12, generator=g, dtype=torch.float64)
    a, b = a - a.mean(0), b - b.mean(0)
    from_data = trace_sqrt_product_from_data(a, b)
    from_cov = trace_sqrt_product_from_cov(a.T @ a / 39, b.T @ b / 32)
    assert float(from_data) == pytest.approx(float(from_cov), rel=1e-11)


def test_fid_of_a_set_with_itself_is_zero():
    x = torch.randn(40, 8, dtype=torch.float64)
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-8)


def test_kid_settings_refuse_an_unknown_protocol():
    with pytest.raises(UserError, match="unknown KID protocol"):
        KIDSettings(protocols=("paper", "blocks"))
    assert KIDSettings(protocols=["subsets"]).protocols == ("subsets",)  # a list is kept as a tuple


def test_evaluate_features_report_states_n_protocol_and_settings():
    g = torch.Generator().manual_seed(8)
    real, fake, source = (torch.randn(30, 8, generator=g) for _ in range(3))
    report = evaluate_features(real, fake, source=source, kid=KIDSettings(subsets=4))
    assert set(report) == {
        "kid_paper",
        "kid_paper_source",
        "mean_kid_paper",
        "kid_subsets",
        "kid_subsets_source",
        "mean_kid_subsets",
        "fid",
    }
    paper = report["kid_paper"]
    assert paper["protocol"] == "paper" and paper["block_size"] == 10 and paper["n_blocks"] == 3
    assert paper["n_real"] == 30 and paper["n_fake"] == 30 and "sem_x100" in paper
    assert report["kid_subsets"]["subsets"] == 4 and "std_x100" in report["kid_subsets"]
    expected = mean_kid(report["kid_paper_source"]["value_x100"], paper["value_x100"])
    assert report["mean_kid_paper"]["value_x100"] == pytest.approx(expected)
    assert report["kid_paper"]["value_x100"] == pytest.approx(kid_paper(real, fake).value * 100)
