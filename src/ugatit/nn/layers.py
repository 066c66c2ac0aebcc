"""The building blocks of U-GAT-IT that PyTorch does not have: AdaLIN, ILN, spectral-normalised layers.

Parameter names follow the official PyTorch checkpoints (`rho`, `gamma`, `beta`, `weight_orig`,
`weight_u`, `weight_v`) so that they load with strict=True.

Precision policy: normalisation statistics and the spectral norm are always computed in fp32, even
inside a bf16 autocast region, because a variance or a largest singular value in bf16 (8 bits of
mantissa) is too coarse to train with. Only the heavy matmuls/convolutions run in low precision.
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable


def _fp32(x: Tensor) -> Tensor:
    """x in at least fp32 (fp16/bf16 are upcast; fp64 stays, for the tests against the formulas)."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _no_autocast(x: Tensor):
    """A block that leaves an enclosing autocast region (a no-op outside one, and on the meta device)."""
    if x.device.type == "meta" or not torch.is_autocast_enabled(x.device.type):
        return contextlib.nullcontext()
    return torch.autocast(device_type=x.device.type, enabled=False)


class _LayerInstanceNorm(torch.autograd.Function):
    """(rho * IN(x) + (1 - rho) * LN(x)) * gamma + beta with a hand-written backward (see
    layer_instance_norm): one batch norm, one group norm and a multiply-add forward; their two native
    backward kernels, one multiply, one reduction and a few (N, C) ops backward.

    Once differentiable: a double backward (a gradient penalty) through this backward would treat the
    statistics it saved (means, 1/std, the layer-normalised x) as constants, silently wrong; it raises
    instead."""

    @staticmethod
    def forward(ctx, x: Tensor, rho: Tensor, gamma: Tensor, beta: Tensor, eps: float) -> Tensor:
        n, c, h, w = x.shape
        k_in, k_ln = (h * w - 1) / (h * w), (c * h * w - 1) / (c * h * w)
        s_in, s_ln = math.sqrt(k_in), math.sqrt(k_ln)
        r = rho.view(1, c)
        gamma_rho = gamma * r
        w_in, w_ln = gamma_rho * s_in, (gamma - gamma_rho) * s_ln
        w_in_flat = _per_sample(w_in, n)
        x_in, mean_in, invstd_in = torch.native_batch_norm(
            x.reshape(1, n * c, h, w), w_in_flat, _per_sample(beta, n), None, None, True, 0.0, eps * k_in
        )
        x_ln, mean_ln, rstd_ln = torch.native_group_norm(x, None, None, n, c, h * w, 1, eps * k_ln)
        w_ln = w_ln.view(-1, c, 1, 1)
        ctx.save_for_backward(x, r, gamma, w_in_flat, w_ln, x_ln, mean_in, invstd_in, mean_ln, rstd_ln)
        ctx.constants = (s_in, s_ln, eps * k_in)
        return torch.addcmul(x_in.view(n, c, h, w), x_ln, w_ln)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):
        x, r, gamma, w_in_flat, w_ln, x_ln, mean_in, invstd_in, mean_ln, rstd_ln = ctx.saved_tensors
        s_in, s_ln, eps_in = ctx.constants
        n, c, h, w = x.shape
        g = grad.to(x.dtype)
        dx_in, dw_in, dbeta = torch.ops.aten.native_batch_norm_backward(
            g.reshape(1, n * c, h, w),
            x.reshape(1, n * c, h, w),
            w_in_flat,
            None,
            None,
            mean_in,
            invstd_in,
            True,
            eps_in,
            [True, True, True],
        )
        dx_ln, _, _ = torch.ops.aten.native_group_norm_backward(
            g * w_ln.to(g.dtype), x, mean_ln, rstd_ln, None, n, c, h * w, 1, [True, False, False]
        )
        dw_ln = (grad * x_ln).sum((2, 3))
        dw_in, dbeta = dw_in.view(n, c), dbeta.view(n, c)
        if gamma.shape[0] != n:  # one gamma, beta for the whole batch (ILN)
            dw_in, dbeta, dw_ln = dw_in.sum(0, keepdim=True), dbeta.sum(0, keepdim=True), dw_ln.sum(0, keepdim=True)
        # w_in = gamma rho s_in, w_ln = gamma (1 - rho) s_ln
        d_in, d_ln = dw_in * s_in, dw_ln * s_ln
        dgamma = torch.lerp(d_ln, d_in, r)
        drho = ((d_in - d_ln) * gamma).sum(0).view(1, c, 1, 1)
        return dx_in.view(n, c, h, w) + dx_ln, drho, dgamma, dbeta, None


def _per_sample(t: Tensor, n: int) -> Tensor:
    """A (1 or N, C) per-channel tensor as N*C values, one per sample and channel."""
    return t.reshape(-1) if t.shape[0] == n else t.expand(n, -1).reshape(-1)


def layer_instance_norm(x: Tensor, rho: Tensor, gamma: Tensor, beta: Tensor, eps: float) -> Tensor:
    """(rho * IN(x) + (1 - rho) * LN(x)) * gamma + beta, the official formula with the UNBIASED variance
    (torch.var's default; the TF code uses the biased one). rho is (1, C, 1, 1); gamma and beta are
    (N, C) or (1, C).

    Regrouped into two native normalisations and one multiply-add, each a single kernel forward and
    backward, instead of ~20 elementwise ops. With HW the spatial size and k = (HW - 1) / HW, the
    unbiased instance norm is a biased one with eps * k, scaled by sqrt(k):
    (x - m) / sqrt(var * HW / (HW - 1) + eps) = sqrt(k) * (x - m) / sqrt(var + eps * k)
    (likewise for the layer norm with C * HW), so
        out = batch_norm(x as (1, N*C, H, W), weight=gamma * rho * sqrt(k_in), bias=beta)
              + group_norm(x, 1 group) * gamma * (1 - rho) * sqrt(k_ln).
    The kernels accumulate their statistics in fp32 whatever the input's dtype, so a bf16 input is
    read as it is (no full-tensor cast); the result is fp32, as the per-channel weights are.

    Without gradients (translation, evaluation, export) the formula runs as written, in plain ops:
    torch.export cannot trace the fused path's arithmetic on symbolic image sizes.
    """
    if torch.is_grad_enabled() and any(t.requires_grad for t in (x, rho, gamma, beta)):
        return _LayerInstanceNorm.apply(x, rho, gamma, beta, eps)
    c = x.shape[1]
    xf = _fp32(x)
    var_in, mean_in = torch.var_mean(xf, dim=(2, 3), keepdim=True)  # unbiased, as the official code
    var_ln, mean_ln = torch.var_mean(xf, dim=(1, 2, 3), keepdim=True)
    r = rho.view(1, c, 1, 1)
    mixed = r * (xf - mean_in) / torch.sqrt(var_in + eps) + (1 - r) * (xf - mean_ln) / torch.sqrt(var_ln + eps)
    return mixed * gamma.view(-1, c, 1, 1) + beta.view(-1, c, 1, 1)


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
            return layer_instance_norm(x, self.rho, _fp32(gamma), _fp32(beta), self.eps)


class ILN(nn.Module):
    """Layer-Instance Normalisation with its own learned affine (used in the up-sampling path; with
    rho starting at 0.9, the `lin` ablation's residual blocks)."""

    def __init__(self, num_features: int, eps: float = 1e-5, rho: float = 0.0):
        super().__init__()
        self.eps = eps
        self.rho = nn.Parameter(torch.full((1, num_features, 1, 1), float(rho)))
        self.gamma = nn.Parameter(torch.ones(1, num_features, 1, 1))
        self.beta = nn.Parameter(torch.zeros(1, num_features, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        c = self.rho.shape[1]
        with _no_autocast(x):
            return layer_instance_norm(x, self.rho, self.gamma.view(1, c), self.beta.view(1, c), self.eps)


# --- The decoder normalisations of the paper's ablations (see networks.decoder_norms) -------------------
# Like AdaLIN and ILN, they use the UNBIASED variance, so that `in` is exactly AdaLIN/ILN with rho held
# at 1 and `ln` with rho held at 0: the ablations change what the paper changes and nothing else.

#: Group normalisation's groups (Wu & He 2018's default), fewer in thin layers (see `gn_groups`).
GN_GROUPS = 32


def gn_groups(channels: int, groups: int = GN_GROUPS) -> int:
    """The groups of a `channels`-wide group norm: `groups`, halved until it divides the channels and
    leaves at least two channels a group (else it would be an instance norm); 1 (a layer norm) at the
    least. 32 for every layer of the paper's generator (64 to 256 channels)."""
    while groups > 1 and (channels % groups or channels // groups < 2):
        groups //= 2
    return groups


def group_normalize(x: Tensor, groups: int, eps: float) -> Tensor:
    """(x - mean) / sqrt(var + eps) over each sample's groups of channels, with the unbiased variance
    (torch.var's, as AdaLIN's), in fp32: one group is a layer norm, one group a channel an instance
    norm. Plain ops, which torch.export traces on symbolic image sizes (the ONNX export)."""
    with _no_autocast(x):
        grouped = _fp32(x).reshape(x.shape[0], groups, -1)
        var, mean = torch.var_mean(grouped, dim=2, keepdim=True)
        return ((grouped - mean) / torch.sqrt(var + eps)).reshape(x.shape)


class AdaIN(nn.Module):
    """Adaptive Instance Normalisation (Huang & Belongie 2017): IN(x) * gamma + beta with gamma, beta from
    the generator's MLP, as AdaLIN's, and no rho (the `adain` ablation's residual blocks)."""

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps

    def forward(self, x: Tensor, gamma: Tensor, beta: Tensor) -> Tensor:
        c = x.shape[1]
        normalized = group_normalize(x, c, self.eps)
        return normalized * _fp32(gamma).view(-1, c, 1, 1) + _fp32(beta).view(-1, c, 1, 1)


class AffineNorm(nn.Module):
    """Instance, layer or group normalisation with a learned per-channel affine (keys `gamma`, `beta`, as
    ILN's): the `in`, `ln` and `gn` ablations' layers, and the `adain` ablation's up-sampling ones."""

    def __init__(self, num_features: int, kind: str, eps: float = 1e-5):
        super().__init__()
        groups = {"in": num_features, "ln": 1, "gn": gn_groups(num_features)}
        if kind not in groups:
            raise ValueError(f"kind must be one of {', '.join(groups)}, got {kind!r}")
        self.kind = kind
        self.groups = groups[kind]
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(1, num_features, 1, 1))
        self.beta = nn.Parameter(torch.zeros(1, num_features, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return group_normalize(x, self.groups, self.eps) * self.gamma + self.beta

    def extra_repr(self) -> str:
        return f"{self.gamma.shape[1]}, kind={self.kind}, groups={self.groups}"


class InstanceNorm(nn.Module):
    """InstanceNorm2d without affine parameters (the encoder's, biased variance as nn.InstanceNorm2d).

    Computed as a group norm with one group per channel (the same statistics): unlike F.instance_norm,
    whose result is a view of a batch norm's, its result is a tensor of its own, so the in-place ReLU
    that follows costs no copy-on-write in the backward. The statistics are accumulated in fp32
    whatever the input's dtype."""

    def __init__(self, eps: float = 1e-5):
        super().__init__()
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        with _no_autocast(x):
            return F.group_norm(x, x.shape[1], eps=self.eps)


# --- Spectral normalisation --------------------------------------------------------------------------
# The official networks use torch.nn.utils.spectral_norm (the legacy hook): the raw weight is the
# parameter `weight_orig`, the power-iteration vectors are buffers `weight_u`, `weight_v`, and every
# forward call in train mode runs ONE power iteration before dividing by the estimated sigma; eval mode
# reuses the stored vectors. We implement it as plain layers, which keeps the same state-dict layout,
# lets sigma be computed in fp32 under autocast, and works with torch.compile and channels_last.
# A discriminator normalises all its layers' weights at once at the start of each call
# (`spectral_weights`): each layer's u, v and sigma depend only on its own weight, so the order is
# immaterial, and doing them together lets one foreach op serve every layer.

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


def _normalize(vectors: list[Tensor]) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
    """F.normalize(x, dim=0, eps=SN_EPS) of each vector, its norm and max(norm, eps)."""
    norms = torch._foreach_norm(vectors)
    clamped = torch._foreach_clamp_min(norms, SN_EPS)
    return torch._foreach_div(vectors, clamped), norms, clamped


@torch.no_grad()
def power_iteration(layers: list[nn.Module]) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
    """One power-iteration step for each spectrally normalised layer, as the legacy hook does it:
    v = normalize(W^T u), u = normalize(W v), sigma = u . (W v). Returns (u, v, sigma) as new tensors
    and writes u, v into the layers' buffers in place (the buffers keep their storage, which a CUDA
    graph needs; the returned tensors are what this call's backward uses, safe from the next call).

    sigma is read off the norm already computed: u . (W v) = |Wv|^2 / max(|Wv|, eps), the same value
    without a second matrix-vector product."""
    with _no_autocast(layers[0].weight_orig):
        matrices = [_fp32(layer.weight_orig).flatten(1) for layer in layers]
        v, _, _ = _normalize([torch.mv(m.t(), layer.weight_u) for m, layer in zip(matrices, layers)])
        wv = [torch.mv(m, vi) for m, vi in zip(matrices, v)]
        u, norms, clamped = _normalize(wv)
        sigma = torch._foreach_div(torch._foreach_mul(norms, norms), clamped)
    torch._foreach_copy_([layer.weight_u for layer in layers], u)
    torch._foreach_copy_([layer.weight_v for layer in layers], v)
    return u, v, sigma


@torch.no_grad()
def stored_sigma(layers: list[nn.Module]) -> list[Tensor]:
    """sigma = u . (W v) from the stored vectors (eval mode: no power iteration)."""
    with _no_autocast(layers[0].weight_orig):
        return [
            torch.dot(layer.weight_u, torch.mv(_fp32(layer.weight_orig).flatten(1), layer.weight_v)) for layer in layers
        ]


class _DivideBySigma(torch.autograd.Function):
    """W / sigma for n weights, with sigma = u^T W v differentiated through W (u, v constant, as in the
    paper and the legacy hook): dL/dW = (G - <G, W/sigma> u v^T) / sigma, G = dL/d(W/sigma)."""

    @staticmethod
    def forward(ctx, n: int, *tensors: Tensor):
        sigmas, weights = tensors[2 * n : 3 * n], tensors[3 * n :]
        ctx.n = n
        ctx.save_for_backward(*tensors)
        return tuple(torch._foreach_div(weights, sigmas))

    @staticmethod
    def backward(ctx, *grads: Tensor):
        n, saved = ctx.n, ctx.saved_tensors
        us, vs, sigmas, weights = (saved[i * n : (i + 1) * n] for i in range(4))
        # <G, W / sigma> u, from <G, W> u / sigma
        inner = [(g * w).sum() for g, w in zip(grads, weights)]
        scaled_u = torch._foreach_div(torch._foreach_mul(us, inner), sigmas)
        corrected = [
            torch.addr(g.reshape(g.shape[0], -1), cu, v, alpha=-1).view_as(g) for g, cu, v in zip(grads, scaled_u, vs)
        ]
        return (None, *([None] * (3 * n)), *torch._foreach_div(corrected, sigmas))


def spectral_weights(layers: list[nn.Module], power_iteration_step: bool) -> list[Tensor]:
    """weight_orig / sigma for each layer, differentiable in weight_orig; in train mode after one power
    iteration (`power_iteration_step`), in eval mode from the stored u, v."""
    if power_iteration_step:
        us, vs, sigmas = power_iteration(layers)
    else:
        us, vs = [layer.weight_u for layer in layers], [layer.weight_v for layer in layers]
        sigmas = stored_sigma(layers)
    weights = [layer.weight_orig for layer in layers]
    return list(_DivideBySigma.apply(len(layers), *us, *vs, *sigmas, *weights))


def spectral_normalized_weight(module: nn.Module) -> Tensor:
    """One layer's weight_orig / sigma from its stored u, v (a layer used on its own)."""
    return spectral_weights([module], False)[0]


class SNConv2d(nn.Conv2d):
    """Conv2d whose weight is divided by its largest singular value; `weight` is that normalised weight
    when the caller has computed it (see spectral_weights), else it is computed from the stored u, v."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _init_power_iteration(self)

    def forward(self, x: Tensor, weight: Tensor | None = None) -> Tensor:
        return self._conv_forward(x, spectral_normalized_weight(self) if weight is None else weight, self.bias)


class SNLinear(nn.Linear):
    """Linear whose weight is divided by its largest singular value (see SNConv2d)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _init_power_iteration(self)

    def forward(self, x: Tensor, weight: Tensor | None = None) -> Tensor:
        return F.linear(x, spectral_normalized_weight(self) if weight is None else weight, self.bias)
