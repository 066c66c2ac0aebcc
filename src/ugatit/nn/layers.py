"""The building blocks of U-GAT-IT that PyTorch does not have: AdaLIN, ILN, spectral-normalised layers.

Parameter names follow the official PyTorch checkpoints (`rho`, `gamma`, `beta`, `weight_orig`,
`weight_u`, `weight_v`) so that they load with strict=True.

Precision policy: normalisation statistics and the spectral norm are always computed in fp32, even
inside a bf16 autocast region, because a variance or a largest singular value in bf16 (8 bits of
mantissa) is too coarse to train with. Only the heavy matmuls/convolutions run in low precision.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _fp32(x: Tensor) -> Tensor:
    return x if x.dtype == torch.float32 else x.float()


def _no_autocast(x: Tensor):
    """A block that leaves an enclosing autocast region (a no-op outside one, and on the meta device)."""
    if x.device.type == "meta" or not torch.is_autocast_enabled(x.device.type):
        return contextlib.nullcontext()
    return torch.autocast(device_type=x.device.type, enabled=False)


def _instance_and_layer_norm(x: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    """Instance- and layer-normalised copies of x, with the UNBIASED variance of the official PyTorch code
    (torch.var's default; the TF code uses the biased one)."""
    in_mean = torch.mean(x, dim=[2, 3], keepdim=True)
    in_var = torch.var(x, dim=[2, 3], keepdim=True)
    x_in = (x - in_mean) / torch.sqrt(in_var + eps)
    ln_mean = torch.mean(x, dim=[1, 2, 3], keepdim=True)
    ln_var = torch.var(x, dim=[1, 2, 3], keepdim=True)
    x_ln = (x - ln_mean) / torch.sqrt(ln_var + eps)
    return x_in, x_ln


class AdaLIN(nn.Module):
    """Adaptive Layer-Instance Normalisation (paper eq. 1).

    out = (rho * IN(x) + (1 - rho) * LN(x)) * gamma + beta, with rho learned per channel (init 0.9,
    clamped to [0, 1] after every generator update) and gamma, beta computed from the attention
    features by the generator's MLP, one pair shared by every AdaLIN block.
    """

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.rho = nn.Parameter(torch.full((1, num_features, 1, 1), 0.9))

    def forward(self, x: Tensor, gamma: Tensor, beta: Tensor) -> Tensor:
        with _no_autocast(x):
            x_in, x_ln = _instance_and_layer_norm(_fp32(x), self.eps)
            out = self.rho * x_in + (1 - self.rho) * x_ln
            return out * _fp32(gamma)[:, :, None, None] + _fp32(beta)[:, :, None, None]


class ILN(nn.Module):
    """Layer-Instance Normalisation with its own learned affine (used in the up-sampling path)."""

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.rho = nn.Parameter(torch.zeros(1, num_features, 1, 1))
        self.gamma = nn.Parameter(torch.ones(1, num_features, 1, 1))
        self.beta = nn.Parameter(torch.zeros(1, num_features, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        with _no_autocast(x):
            x_in, x_ln = _instance_and_layer_norm(_fp32(x), self.eps)
            out = self.rho * x_in + (1 - self.rho) * x_ln
            return out * self.gamma + self.beta


class InstanceNorm(nn.Module):
    """InstanceNorm2d without affine parameters (the encoder's), computed in fp32."""

    def __init__(self, eps: float = 1e-5):
        super().__init__()
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        with _no_autocast(x):
            return F.instance_norm(_fp32(x), eps=self.eps)


# --- Spectral normalisation --------------------------------------------------------------------------
# The official networks use torch.nn.utils.spectral_norm (the legacy hook): the raw weight is the
# parameter `weight_orig`, the power-iteration vectors are buffers `weight_u`, `weight_v`, and every
# forward call in train mode runs ONE power iteration before dividing by the estimated sigma; eval mode
# reuses the stored vectors. We implement it as plain layers, which keeps the same state-dict layout,
# lets sigma be computed in fp32 under autocast, and works with torch.compile and channels_last.
# The discriminator advances the power iteration of all its layers at the start of each train-mode
# call (each layer's u, v depend only on its own weight, so the order is immaterial), which keeps the
# layers themselves free of state changes and of graph breaks.

SN_EPS = 1e-12


def _init_power_iteration(module: nn.Module) -> None:
    """Turn `weight` into `weight_orig` plus the u/v buffers, drawing u, v like the legacy hook does."""
    weight = module.weight
    del module._parameters["weight"]
    module.register_parameter("weight_orig", weight)
    with torch.no_grad():
        height = weight.shape[0]
        width = weight.numel() // height
        u = F.normalize(weight.new_empty(height).normal_(0, 1), dim=0, eps=SN_EPS)
        v = F.normalize(weight.new_empty(width).normal_(0, 1), dim=0, eps=SN_EPS)
    module.register_buffer("weight_u", u)
    module.register_buffer("weight_v", v)


@torch.no_grad()
def advance_power_iteration(module: nn.Module) -> None:
    """One power-iteration step for every spectrally normalised layer in `module`."""
    for layer in module.modules():
        if isinstance(layer, (SNConv2d, SNLinear)):
            matrix = layer.weight_orig.float().flatten(1)
            v = F.normalize(torch.mv(matrix.t(), layer.weight_u), dim=0, eps=SN_EPS)
            u = F.normalize(torch.mv(matrix, v), dim=0, eps=SN_EPS)
            # New tensors rather than in-place updates: the autograd graph of an earlier call (a
            # discriminator sees real, then fake images before one backward) may still hold the old
            # ones; under torch.compile the partitioner saves the buffers themselves for the backward.
            layer.weight_u = u
            layer.weight_v = v


def spectral_normalized_weight(module: nn.Module) -> Tensor:
    """weight_orig / sigma, with sigma = u . (W v) from the current power-iteration vectors. sigma is
    differentiated through the weight only: u and v are constants, as in the paper."""
    weight = module.weight_orig
    with _no_autocast(weight):
        matrix = _fp32(weight).flatten(1)
        sigma = torch.dot(module.weight_u, torch.mv(matrix, module.weight_v))
        return weight / sigma


class SNConv2d(nn.Conv2d):
    """Conv2d whose weight is divided by its largest singular value (see advance_power_iteration)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _init_power_iteration(self)

    def forward(self, x: Tensor) -> Tensor:
        return self._conv_forward(x, spectral_normalized_weight(self), self.bias)


class SNLinear(nn.Linear):
    """Linear whose weight is divided by its largest singular value (see advance_power_iteration)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _init_power_iteration(self)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, spectral_normalized_weight(self), self.bias)
