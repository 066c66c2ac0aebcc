"""The U-GAT-IT generator and discriminator, to be read against the paper's Figure 1 (mapped in docs/architecture.md).

Module names and `nn.Sequential` indices are the official PyTorch ones, so official checkpoints load
with strict=True. Layers are also *created* in the official order, so that with `init="pytorch"` and
the same seed the networks start from exactly the official code's initial weights.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import ILN, AdaIN, AdaLIN, AffineNorm, InstanceNorm, SNConv2d, SNLinear, spectral_weights

N_DOWNSAMPLING = 2  # the bottleneck runs at H/4 x W/4 with 4 * ch channels


# --- The decoder's normalisation (the paper's ablations) ----------------------------------------------


class DecoderNorms(NamedTuple):
    """What the decoder normalises with: a layer for the residual blocks and one for the up-sampling
    blocks (each made from its channel count), and whether the residual blocks' affine is adaptive
    (gamma, beta computed from the attention features by the generator's MLP)."""

    residual: Callable[[int], nn.Module]
    upsampling: Callable[[int], nn.Module]
    adaptive: bool


def decoder_norms(kind: str = "adalin") -> DecoderNorms:
    """The decoder of `ModelConfig.decoder_norm` (the one place the choice is made; docs/ablations.md).

    adalin: AdaLIN in the residual blocks, ILN in the up-sampling blocks (the paper, the official code).
    adain:  AdaIN (instance norm, gamma/beta from the MLP) in the residual blocks, instance norm with a
            learned affine in the up-sampling blocks.
    lin:    layer-instance norm with a learned affine everywhere: AdaLIN without its adaptive gamma/beta
            (the MLP goes), rho starting at 0.9 in the residual blocks and at 0 in the up-sampling ones.
    in, ln, gn: instance, layer or group normalisation with a learned affine everywhere (no MLP, no rho).
    """
    if kind == "adalin":
        return DecoderNorms(AdaLIN, ILN, True)
    if kind == "adain":
        return DecoderNorms(AdaIN, partial(AffineNorm, kind="in"), True)
    if kind == "lin":
        return DecoderNorms(partial(ILN, rho=0.9), ILN, False)
    if kind in ("in", "ln", "gn"):
        norm = partial(AffineNorm, kind=kind)
        return DecoderNorms(norm, norm, False)
    raise ValueError(f"decoder_norm must be one of adalin, adain, lin, in, ln, gn, got {kind!r}")


# --- Generator -----------------------------------------------------------------------------------------


class ResnetBlock(nn.Module):
    """x + [pad, conv3x3, IN, ReLU, pad, conv3x3, IN]: the encoder's residual block."""

    def __init__(self, dim: int):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, kernel_size=3, bias=False),
            InstanceNorm(),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, kernel_size=3, bias=False),
            InstanceNorm(),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv_block(x)


class ResnetAdaLINBlock(nn.Module):
    """The decoder's residual block: like ResnetBlock with AdaLIN driven by the attention's gamma/beta
    (or, in an ablation, another normalisation: `norm` makes it, `adaptive` says it takes gamma/beta)."""

    def __init__(self, dim: int, norm: Callable[[int], nn.Module] = AdaLIN, adaptive: bool = True):
        super().__init__()
        self.adaptive = adaptive
        self.pad1 = nn.ReflectionPad2d(1)
        self.conv1 = nn.Conv2d(dim, dim, kernel_size=3, bias=False)
        self.norm1 = norm(dim)
        self.relu1 = nn.ReLU(inplace=True)
        self.pad2 = nn.ReflectionPad2d(1)
        self.conv2 = nn.Conv2d(dim, dim, kernel_size=3, bias=False)
        self.norm2 = norm(dim)

    def forward(self, x: Tensor, gamma: Tensor | None = None, beta: Tensor | None = None) -> Tensor:
        affine = (gamma, beta) if self.adaptive else ()
        out = self.relu1(self.norm1(self.conv1(self.pad1(x)), *affine))
        out = self.norm2(self.conv2(self.pad2(out)), *affine)
        return out + x


def class_activation(
    x: Tensor,
    gap_logit_weight: Tensor,
    gmp_logit_weight: Tensor,
    gap_weight: Tensor,
    gmp_weight: Tensor,
    logit_bias: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """The CAM block shared by generator and discriminators.

    An auxiliary classifier on global average- and max-pooled features says which domain x comes from
    (`cam_logit`, (B, 2)); its weights then re-weight the feature channels, so that the decoder (or the
    discriminator head) attends to what tells the domains apart. Returns (re-weighted features with
    2C channels, cam_logit). The logits use `*_logit_weight` (the discriminator's are spectrally
    normalised), the re-weighting `gap_weight`, `gmp_weight`; the official networks' logits have no bias,
    the TF variant's one classifier has (`logit_bias`).
    """
    batch, channels = x.shape[:2]
    gap_logit = F.linear(F.adaptive_avg_pool2d(x, 1).reshape(batch, -1), gap_logit_weight, logit_bias)
    gmp_logit = F.linear(F.adaptive_max_pool2d(x, 1).reshape(batch, -1), gmp_logit_weight, logit_bias)
    gap = x * gap_weight.reshape(1, channels, 1, 1).to(x.dtype)
    gmp = x * gmp_weight.reshape(1, channels, 1, 1).to(x.dtype)
    return torch.cat([gap, gmp], 1), torch.cat([gap_logit, gmp_logit], 1)


class Generator(nn.Module):
    """ResnetGenerator of the official code: encoder, CAM attention, gamma/beta MLP, AdaLIN decoder.

    forward(x) -> (image in [-1, 1], cam_logit (B, 2), heatmap (B, 1, H/4, W/4)).

    The paper's ablations: `cam=False` drops the attention (the auxiliary classifier `gap_fc`, `gmp_fc`
    and `conv1x1`, which merges its two re-weighted maps): the decoder gets the encoder's features as
    they are, and forward returns None for cam_logit and heatmap. `norm` picks the decoder's
    normalisation (`decoder_norms`); a non-adaptive one has no gamma/beta MLP (`FC`, `gamma`, `beta`).
    """

    def __init__(
        self,
        ch: int = 64,
        n_res: int = 4,
        img_size: int = 256,
        light: bool = False,
        cam: bool = True,
        norm: str = "adalin",
    ):
        super().__init__()
        self.light = light
        self.n_res = n_res
        self.cam = cam
        norms = decoder_norms(norm)
        self.adaptive = norms.adaptive
        dim = ch * 2**N_DOWNSAMPLING

        # Encoder (created first, as in the official code, so the default init draws in the same order).
        down: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(3, ch, kernel_size=7, bias=False),
            InstanceNorm(),
            nn.ReLU(inplace=True),
        ]
        for i in range(N_DOWNSAMPLING):
            mult = 2**i
            down += [
                nn.ReflectionPad2d(1),
                nn.Conv2d(ch * mult, ch * mult * 2, kernel_size=3, stride=2, bias=False),
                InstanceNorm(),
                nn.ReLU(inplace=True),
            ]
        down += [ResnetBlock(dim) for _ in range(n_res)]
        down_block = nn.Sequential(*down)

        # Class activation map (attention).
        if cam:
            self.gap_fc = nn.Linear(dim, 1, bias=False)
            self.gmp_fc = nn.Linear(dim, 1, bias=False)
            self.conv1x1 = nn.Conv2d(2 * dim, dim, kernel_size=1, bias=True)
            self.relu = nn.ReLU(inplace=True)

        # gamma/beta for AdaLIN. The full model reads the whole attention map: its first layer has
        # dim * (img/4)^2 inputs (268M weights at 256 px), which ties a full checkpoint to its image size.
        if norms.adaptive:
            mlp_in = dim if light else dim * (img_size // 2**N_DOWNSAMPLING) ** 2
            fc = nn.Sequential(
                nn.Linear(mlp_in, dim, bias=False),
                nn.ReLU(inplace=True),
                nn.Linear(dim, dim, bias=False),
                nn.ReLU(inplace=True),
            )
            self.gamma = nn.Linear(dim, dim, bias=False)
            self.beta = nn.Linear(dim, dim, bias=False)

        # Decoder: AdaLIN residual blocks, then up-sampling with ILN.
        for i in range(n_res):
            setattr(self, f"UpBlock1_{i + 1}", ResnetAdaLINBlock(dim, norms.residual, norms.adaptive))
        up: list[nn.Module] = []
        for i in range(N_DOWNSAMPLING):
            mult = 2 ** (N_DOWNSAMPLING - i)
            up += [
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.ReflectionPad2d(1),
                nn.Conv2d(ch * mult, ch * mult // 2, kernel_size=3, bias=False),
                norms.upsampling(ch * mult // 2),
                nn.ReLU(inplace=True),
            ]
        up += [nn.ReflectionPad2d(3), nn.Conv2d(ch, 3, kernel_size=7, bias=False), nn.Tanh()]

        self.DownBlock = down_block
        if norms.adaptive:
            self.FC = fc
        self.UpBlock2 = nn.Sequential(*up)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor | None, Tensor | None]:
        x = self.DownBlock(x)

        cam_logit = None
        if self.cam:
            gap_w, gmp_w = self.gap_fc.weight, self.gmp_fc.weight
            x, cam_logit = class_activation(x, gap_w, gmp_w, gap_w, gmp_w)
        image, heatmap = decode(self, x)
        return image, cam_logit, heatmap


def decode(gen: nn.Module, x: Tensor) -> tuple[Tensor, Tensor | None]:
    """The generator after the CAM: (image, heatmap) from the re-weighted features, through conv1x1, the
    gamma/beta MLP, the AdaLIN blocks and the up-sampling path. Shared with the TF variant's generator,
    whose modules carry the same names. Without the CAM (an ablation) the encoder's features go to the
    decoder as they are and there is no heatmap; without an adaptive normalisation there is no MLP."""
    heatmap = None
    if getattr(gen, "cam", True):
        x = gen.relu(gen.conv1x1(x))
        heatmap = torch.sum(x, dim=1, keepdim=True)

    affine: tuple[Tensor, ...] = ()
    if getattr(gen, "adaptive", True):
        # reshape, not view: view fails on channels_last tensors. The full model flattens in C, H, W order.
        features = F.adaptive_avg_pool2d(x, 1) if gen.light else x
        features = gen.FC(features.reshape(x.shape[0], -1))
        affine = (gen.gamma(features), gen.beta(features))

    for i in range(gen.n_res):
        x = getattr(gen, f"UpBlock1_{i + 1}")(x, *affine)
    return gen.UpBlock2(x), heatmap


# --- Discriminator -------------------------------------------------------------------------------------


class Discriminator(nn.Module):
    """PatchGAN discriminator with CAM attention and spectral norm; n_layers 7 (global), 5 (local).

    forward(x) -> (patch logits, cam_logit (B, 2), heatmap).

    `cam=False` (the paper's ablation) drops the attention: the auxiliary classifier (`gap_fc`, `gmp_fc`)
    and `conv1x1` with its activation, which merges the two re-weighted maps; the head convolution
    reads the encoder's features as they are, and forward returns None for cam_logit and heatmap.
    """

    def __init__(self, ch: int = 64, n_layers: int = 5, cam: bool = True):
        super().__init__()
        self.cam = cam
        if n_layers < 3:
            raise ValueError(f"a discriminator needs at least 3 layers, got {n_layers}")
        model: list[nn.Module] = [
            nn.ReflectionPad2d(1),
            SNConv2d(3, ch, kernel_size=4, stride=2, bias=True),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        for i in range(1, n_layers - 2):
            mult = 2 ** (i - 1)
            model += [
                nn.ReflectionPad2d(1),
                SNConv2d(ch * mult, ch * mult * 2, kernel_size=4, stride=2, bias=True),
                nn.LeakyReLU(0.2, inplace=True),
            ]
        mult = 2 ** (n_layers - 3)
        model += [
            nn.ReflectionPad2d(1),
            SNConv2d(ch * mult, ch * mult * 2, kernel_size=4, stride=1, bias=True),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        model_block = nn.Sequential(*model)

        dim = ch * 2 ** (n_layers - 2)
        if cam:
            self.gap_fc = SNLinear(dim, 1, bias=False)
            self.gmp_fc = SNLinear(dim, 1, bias=False)
            self.conv1x1 = nn.Conv2d(2 * dim, dim, kernel_size=1, bias=True)  # no spectral norm here (official)
            self.leaky_relu = nn.LeakyReLU(0.2, inplace=True)
        self.pad = nn.ReflectionPad2d(1)
        self.conv = SNConv2d(dim, 1, kernel_size=4, stride=1, bias=False)
        self.model = model_block

    def spectral_layers(self) -> list[nn.Module]:
        """The spectrally normalised layers, in the order of `forward`."""
        attention = [self.gap_fc, self.gmp_fc] if self.cam else []
        return [*(m for m in self.model if isinstance(m, SNConv2d)), *attention, self.conv]

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor | None, Tensor | None]:
        # In train mode one power iteration per call, as torch's spectral_norm; all layers at once.
        weights = spectral_weights(self.spectral_layers(), self.training)
        conv_w = weights.pop()
        model_weights = iter(weights)
        for layer in self.model:
            x = layer(x, next(model_weights)) if isinstance(layer, SNConv2d) else layer(x)
        if not self.cam:
            return self.conv(self.pad(x), conv_w), None, None
        gap_w, gmp_w = next(model_weights), next(model_weights)
        # The logits use the spectrally normalised FC weights, but the channel re-weighting uses the RAW
        # weights (`weight_orig`): an official quirk kept for parity.
        x, cam_logit = class_activation(x, gap_w, gmp_w, self.gap_fc.weight_orig, self.gmp_fc.weight_orig)
        x = self.leaky_relu(self.conv1x1(x))
        heatmap = torch.sum(x, dim=1, keepdim=True)
        return self.conv(self.pad(x), conv_w), cam_logit, heatmap


def init_paper_weights(module: nn.Module, std: float = 0.02) -> None:
    """The paper's init: N(0, 0.02) for every conv and linear weight, zero biases. Norm parameters keep
    their defaults (rho 0.9 / 0, gamma 1, beta 0)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            weight = m.weight_orig if hasattr(m, "weight_orig") else m.weight
            nn.init.normal_(weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
