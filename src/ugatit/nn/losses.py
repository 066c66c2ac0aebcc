"""The U-GAT-IT objective (paper section 2.2), term by term, under the official names.

Every term is computed in fp32, whatever precision the networks ran in.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _f32(x: Tensor) -> Tensor:
    return x.float()


def lsgan_real_fake(real_logit: Tensor, fake_logit: Tensor) -> Tensor:
    """Discriminator LSGAN: real patches and CAM logits towards 1, fakes towards 0. The paper writes the
    CAM term with a log; the authors confirmed that is a typo, and both official codes use this MSE."""
    real_logit, fake_logit = _f32(real_logit), _f32(fake_logit)
    return F.mse_loss(real_logit, torch.ones_like(real_logit)) + F.mse_loss(fake_logit, torch.zeros_like(fake_logit))


def lsgan_fool(fake_logit: Tensor) -> Tensor:
    """Generator LSGAN: make the discriminator say 1 on fakes."""
    fake_logit = _f32(fake_logit)
    return F.mse_loss(fake_logit, torch.ones_like(fake_logit))


def l1(output: Tensor, target: Tensor) -> Tensor:
    """Cycle and identity losses."""
    return F.l1_loss(_f32(output), _f32(target))


def generator_cam(source_logit: Tensor, target_logit: Tensor) -> Tensor:
    """The generator's auxiliary classifier must say 1 on source-domain input and 0 on an image already in
    its target domain. For genB2A: source_logit on B images, target_logit on A images (identity input)."""
    source_logit, target_logit = _f32(source_logit), _f32(target_logit)
    return F.binary_cross_entropy_with_logits(
        source_logit, torch.ones_like(source_logit)
    ) + F.binary_cross_entropy_with_logits(target_logit, torch.zeros_like(target_logit))
