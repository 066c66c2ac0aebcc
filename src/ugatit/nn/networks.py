"""The U-GAT-IT generator and discriminator, to be read against the paper's Figure 1 (mapped in docs/architecture.md).

Module names and `nn.Sequential` indices are the official PyTorch ones, so official checkpoints load
with strict=True. Layers are also *created* in the official order, so that with `init="pytorch"` and
the same seed the networks start from exactly the official code's initial weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import ILN, AdaLIN, InstanceNorm, SNConv2d, SNLinear, spectral_weights

N_DOWNSAMPLING = 2  # the bottleneck runs at H/4 x W/4 with 4 * ch channels


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
    """The decoder's residual block: like ResnetBlock with AdaLIN driven by the attention's gamma/beta."""

    def __init__(self, dim: int):
        super().__init__()
        self.pad1 = nn.ReflectionPad2d(1)
        self.conv1 = nn.Conv2d(dim, dim, kernel_size=3, bias=False)
        self.norm1 = AdaLIN(dim)
        self.relu1 = nn.ReLU(inplace=True)
        self.pad2 = nn.ReflectionPad2d(1)
        self.conv2 = nn.Conv2d(dim, dim, kernel_size=3, bias=False)
        self.norm2 = AdaLIN(dim)

    def forward(self, x: Tensor, gamma: Tensor, beta: Tensor) -> Tensor:
        out = self.relu1(self.norm1(self.conv1(self.pad1(x)), gamma, beta))
        out = self.norm2(self.conv2(self.pad2(out)), gamma, beta)
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
    """

    def __init__(self, ch: int = 64, n_res: int = 4, img_size: int = 256, light: bool = False):
        super().__init__()
        self.light = light
        self.n_res = n_res
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
        self.gap_fc = nn.Linear(dim, 1, bias=False)
        self.gmp_fc = nn.Linear(dim, 1, bias=False)
        self.conv1x1 = nn.Conv2d(2 * dim, dim, kernel_size=1, bias=True)
        self.relu = nn.ReLU(inplace=True)

        # gamma/beta for AdaLIN. The full model reads the whole attention map: its first layer has
        # dim * (img/4)^2 inputs (268M weights at 256 px), which ties a full checkpoint to its image size.
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
            setattr(self, f"UpBlock1_{i + 1}", ResnetAdaLINBlock(dim))
        up: list[nn.Module] = []
        for i in range(N_DOWNSAMPLING):
            mult = 2 ** (N_DOWNSAMPLING - i)
            up += [
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.ReflectionPad2d(1),
                nn.Conv2d(ch * mult, ch * mult // 2, kernel_size=3, bias=False),
                ILN(ch * mult // 2),
                nn.ReLU(inplace=True),
            ]
        up += [nn.ReflectionPad2d(3), nn.Conv2d(ch, 3, kernel_size=7, bias=False), nn.Tanh()]

        self.DownBlock = down_block
        self.FC = fc
        self.UpBlock2 = nn.Sequential(*up)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x = self.DownBlock(x)

        gap_w, gmp_w = self.gap_fc.weight, self.gmp_fc.weight
        x, cam_logit = class_activation(x, gap_w, gmp_w, gap_w, gmp_w)
        image, heatmap = decode(self, x)
        return image, cam_logit, heatmap


def decode(gen: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    """The generator after the CAM: (image, heatmap) from the re-weighted features, through conv1x1, the
    gamma/beta MLP, the AdaLIN blocks and the up-sampling path. Shared with the TF variant's generator,
    whose modules carry the same names."""
    x = gen.relu(gen.conv1x1(x))
    heatmap = torch.sum(x, dim=1, keepdim=True)

    # reshape, not view: view fails on channels_last tensors. The full model flattens in C, H, W order.
    features = F.adaptive_avg_pool2d(x, 1) if gen.light else x
    features = gen.FC(features.reshape(x.shape[0], -1))
    gamma, beta = gen.gamma(features), gen.beta(features)

    for i in range(gen.n_res):
        x = getattr(gen, f"UpBlock1_{i + 1}")(x, gamma, beta)
    return gen.UpBlock2(x), heatmap


# --- Discriminator -------------------------------------------------------------------------------------


class Discriminator(nn.Module):
    """PatchGAN discriminator with CAM attention and spectral norm; n_layers 7 (global), 5 (local).

    forward(x) -> (patch logits, cam_logit (B, 2), heatmap).
    """

    def __init__(self, ch: int = 64, n_layers: int = 5):
        super().__init__()
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
        self.gap_fc = SNLinear(dim, 1, bias=False)
        self.gmp_fc = SNLinear(dim, 1, bias=False)
        self.conv1x1 = nn.Conv2d(2 * dim, dim, kernel_size=1, bias=True)  # no spectral norm here (official)
        self.leaky_relu = nn.LeakyReLU(0.2, inplace=True)
        self.pad = nn.ReflectionPad2d(1)
        self.conv = SNConv2d(dim, 1, kernel_size=4, stride=1, bias=False)
        self.model = model_block

    def spectral_layers(self) -> list[nn.Module]:
        """The spectrally normalised layers, in the order of `forward`."""
        return [*(m for m in self.model if isinstance(m, SNConv2d)), self.gap_fc, self.gmp_fc, self.conv]

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        # In train mode one power iteration per call, as torch's spectral_norm; all layers at once.
        *model_weights, gap_w, gmp_w, conv_w = spectral_weights(self.spectral_layers(), self.training)
        weights = iter(model_weights)
        for layer in self.model:
            x = layer(x, next(weights)) if isinstance(layer, SNConv2d) else layer(x)
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
