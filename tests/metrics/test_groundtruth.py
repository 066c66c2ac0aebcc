"""Ground-truth L1 / PSNR with values checkable by hand."""

from __future__ import annotations

import math

import pytest
import torch

from ugatit.metrics.groundtruth import GroundTruthMeter, l1, l1_per_image, psnr, psnr_per_image


def _full(value: float, n: int = 2, size: int = 4) -> torch.Tensor:
    return torch.full((n, 3, size, size), value)


def test_l1_is_on_the_unit_scale():
    # -1 vs 1 is black vs white: difference 1 on [0, 1].
    assert l1(_full(-1.0), _full(1.0)) == pytest.approx(1.0)
    # 0 vs -1 is grey vs black: 0.5.
    assert l1(_full(0.0), _full(-1.0)) == pytest.approx(0.5)
    assert l1(_full(0.3), _full(0.3)) == 0.0


def test_psnr_hand_values():
    # MSE 1 -> 0 dB; MSE 0.25 -> 10 log10(4) = 6.0206 dB; MSE 0.01 -> 20 dB.
    assert psnr(_full(-1.0), _full(1.0)) == pytest.approx(0.0, abs=1e-6)
    assert psnr(_full(0.0), _full(-1.0)) == pytest.approx(10 * math.log10(4), abs=1e-5)
    assert psnr(_full(0.2), _full(0.0)) == pytest.approx(20.0, abs=1e-4)


def test_identical_images_give_the_capped_psnr():
    assert psnr(_full(0.5), _full(0.5)) == pytest.approx(100.0)


def test_psnr_is_the_mean_of_per_image_values():
    a = torch.cat([_full(0.0, n=1), _full(0.0, n=1)])
    b = torch.cat([_full(-1.0, n=1), _full(0.2, n=1)])  # per image: 6.02 dB and 20 dB
    per_image = psnr_per_image(a, b)
    assert per_image.tolist() == pytest.approx([10 * math.log10(4), 20.0], abs=1e-4)
    assert psnr(a, b) == pytest.approx((10 * math.log10(4) + 20.0) / 2, abs=1e-4)
    assert l1_per_image(a, b).tolist() == pytest.approx([0.5, 0.1])


def test_half_the_pixels_wrong():
    a = _full(-1.0, n=1)
    b = a.clone()
    b[..., :2] = 1.0  # half of each image flipped black -> white
    assert l1(a, b) == pytest.approx(0.5)
    assert psnr(a, b) == pytest.approx(10 * math.log10(2), abs=1e-5)  # MSE 0.5


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError):
        l1(_full(0.0, size=4), _full(0.0, size=8))


def test_meter_accumulates_per_direction():
    meter = GroundTruthMeter()
    src, gt = _full(-1.0, n=2), _full(1.0, n=2)
    translated = _full(0.6, n=2)  # 0.2 away from gt on [0, 1]
    recon = _full(-1.0, n=2)  # perfect cycle
    meter.update("a2b", src, translated, gt, recon)
    # A second batch of one image, translated perfectly, no reconstruction given.
    meter.update("a2b", _full(-1.0, n=1), _full(1.0, n=1), _full(1.0, n=1))
    table = meter.compute()
    assert set(table) == {"a2b"}
    row = table["a2b"]
    assert row["count"] == 3
    assert row["l1"] == pytest.approx((0.2 + 0.2 + 0.0) / 3)
    # MSE 0.04 -> 10 log10(25) = 13.98 dB twice, plus one capped 100 dB.
    assert row["psnr"] == pytest.approx((10 * math.log10(25) * 2 + 100.0) / 3, abs=1e-4)
    assert row["identity_l1"] == pytest.approx(1.0)
    assert row["identity_psnr"] == pytest.approx(0.0, abs=1e-6)
    assert row["cycle_l1"] == 0.0  # mean over the two images that had a reconstruction
    assert row["cycle_psnr"] == pytest.approx(100.0)

    meter.update("b2a", gt[:1], src[:1], src[:1])
    table = meter.compute()
    assert table["b2a"]["count"] == 1 and table["b2a"]["l1"] == 0.0
    assert math.isnan(table["b2a"]["cycle_l1"])
    rows = meter.rows()
    assert [r["direction"] for r in rows] == ["a2b", "b2a"]

    meter.reset()
    assert meter.compute() == {}


def test_meter_rejects_unknown_direction():
    with pytest.raises(ValueError):
        GroundTruthMeter().update("x2y", _full(0.0), _full(0.0), _full(0.0))
