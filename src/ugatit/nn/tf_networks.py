"""The networks of the authors' TensorFlow code (taki0112/UGATIT), to run their released checkpoints.

The paper's numbers and its only released weights come from the TF code, which differs from the official
PyTorch port in ways that change the output, so its weights cannot be poured into `Generator` /
`Discriminator`. These classes compute what the TF graph computes, with the official module names where
a module has a counterpart (so a state dict reads alike):

- every convolution has a bias; the encoder's instance norms have a learned affine (`weight`, `bias`);
- all norms use the biased variance (`tf.nn.moments`); AdaLIN's rho is used as clip(rho - offset, 0, 1)
  (offset 0.1 with the authors' `--smoothing`, their default);
- the CAM is ONE fully-connected layer with a bias (`cam_fc`) shared by the GAP and GMP branches, whose
  weight + bias re-weight the features (spectrally normalised in the discriminators);
- the gamma/beta MLP has biases; a full model's first layer is stored for our (C, H, W) flatten order
  (the importer permutes TF's (H, W, C) rows, which is exact);
- TF pads a k x k, stride s convolution asymmetrically when k - s is odd: (1, 0) before the generator's
  stride-2 convs, (1, 2) before the discriminators' stride-1 k4 convs (whose maps keep their size);
- the discriminator's last conv has a bias.

"tf-2019-07" is the authors' first public code (a152166): the generator's CAM logit comes from its own
dense layer (`cam_logit_fc`) while `cam_fc` only re-weights, the discriminators re-weight with the raw
(not normalised) kernel, and rho is used as stored. See docs/weights.md for the mapping and its checks.

Spectral norm keeps our layers' state (`weight_orig`, `weight_u`, `weight_v`): TF runs one power iteration
in every call, so the importer stores the vectors after that iteration and eval mode reproduces it.
These networks are for inference; training uses the official ones.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import ILN, SNConv2d, SNLinear, _fp32, _no_autocast, spectral_weights
from .networks import N_DOWNSAMPLING, class_activation, decode

#: rho offset of AdaLIN with the authors' --smoothing (code since 2019-08-14).
SMOOTHING_OFFSET = 0.1


def tf_pad(kernel: int, stride: int, pad: int) -> nn.ReflectionPad2d:
    """The reflection padding the authors' `ops.conv` applies before a k x k, stride-s convolution."""
    after = pad if (kernel - stride) % 2 == 0 else kernel - stride - pad
    return nn.ReflectionPad2d((pad, after, pad, after))  # left, right, top, bottom


def _normalized(x: Tensor, dims: tuple[int, ...], eps: float) -> Tensor:
    """(x - mean) / sqrt(var + eps) with the biased variance, as `tf.nn.moments`."""
    var, mean = torch.var_mean(x, dim=dims, correction=0, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps)


def _layer_instance_mix(x: Tensor, rho: Tensor, eps: float) -> Tensor:
    return rho * _normalized(x, (2, 3), eps) + (1 - rho) * _normalized(x, (1, 2, 3), eps)


class TFInstanceNorm(nn.Module):
    """contrib `instance_norm` (center and scale): instance norm with a learned per-channel affine."""

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))

    def forward(self, x: Tensor) -> Tensor:
        with _no_autocast(x):
            return F.instance_norm(_fp32(x), weight=self.weight, bias=self.bias, eps=self.eps)


class TFAdaLIN(nn.Module):
    """`adaptive_instance_layer_norm`: rho stored as TF stores it (init 1), used as clip(rho - offset, 0, 1)."""

    def __init__(self, num_features: int, rho_offset: float, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.rho_offset = rho_offset
        self.rho = nn.Parameter(torch.ones(1, num_features, 1, 1))

    def forward(self, x: Tensor, gamma: Tensor, beta: Tensor) -> Tensor:
        with _no_autocast(x):
            rho = torch.clamp(self.rho - self.rho_offset, 0.0, 1.0)
            out = _layer_instance_mix(_fp32(x), rho, self.eps)
            return out * _fp32(gamma)[:, :, None, None] + _fp32(beta)[:, :, None, None]


class TFILN(ILN):
    """`layer_instance_norm` of the up-sampling path: ILN's parameters, TF's biased variance."""

    def forward(self, x: Tensor) -> Tensor:
        with _no_autocast(x):
            return _layer_instance_mix(_fp32(x), self.rho, self.eps) * self.gamma + self.beta


# --- Generator -----------------------------------------------------------------------------------------


def _conv3(dim: int) -> list[nn.Module]:
    return [tf_pad(3, 1, 1), nn.Conv2d(dim, dim, kernel_size=3)]


class TFResnetBlock(nn.Module):
    """`resblock`: x + [conv3x3, IN, ReLU, conv3x3, IN], with biases and affine norms."""

    def __init__(self, dim: int):
        super().__init__()
        self.conv_block = nn.Sequential(
            *_conv3(dim), TFInstanceNorm(dim), nn.ReLU(inplace=True), *_conv3(dim), TFInstanceNorm(dim)
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv_block(x)


class TFResnetAdaLINBlock(nn.Module):
    """`adaptive_ins_layer_resblock`."""

    def __init__(self, dim: int, rho_offset: float):
        super().__init__()
        self.pad1, self.conv1 = _conv3(dim)
        self.norm1 = TFAdaLIN(dim, rho_offset)
        self.relu1 = nn.ReLU(inplace=True)
        self.pad2, self.conv2 = _conv3(dim)
        self.norm2 = TFAdaLIN(dim, rho_offset)

    def forward(self, x: Tensor, gamma: Tensor, beta: Tensor) -> Tensor:
        out = self.relu1(self.norm1(self.conv1(self.pad1(x)), gamma, beta))
        return self.norm2(self.conv2(self.pad2(out)), gamma, beta) + x


class TFGenerator(nn.Module):
    """`UGATIT.generator`. forward(x) -> (image in [-1, 1], cam_logit (B, 2), heatmap (B, 1, H/4, W/4)).

    The MLP is `ch * n_res` wide in TF, which broadcasts against the 4ch bottleneck only when n_res is
    4 (the only value the authors' graph runs with); it is built 4ch wide and the importer checks it.
    """

    def __init__(
        self,
        ch: int = 64,
        n_res: int = 4,
        img_size: int = 256,
        light: bool = False,
        rho_offset: float = SMOOTHING_OFFSET,
        separate_cam_logit: bool = False,
    ):
        super().__init__()
        self.light = light
        self.n_res = n_res
        dim = ch * 2**N_DOWNSAMPLING
        down: list[nn.Module] = [tf_pad(7, 1, 3), nn.Conv2d(3, ch, kernel_size=7), TFInstanceNorm(ch), nn.ReLU(True)]
        for i in range(N_DOWNSAMPLING):
            mult = 2**i
            down += [
                tf_pad(3, 2, 1),
                nn.Conv2d(ch * mult, ch * mult * 2, kernel_size=3, stride=2),
                TFInstanceNorm(ch * mult * 2),
                nn.ReLU(inplace=True),
            ]
        self.DownBlock = nn.Sequential(*down, *[TFResnetBlock(dim) for _ in range(n_res)])

        self.cam_fc = nn.Linear(dim, 1)
        # The first public code computed the logit with a separate dense layer (`CAM_logit/dense`).
        self.cam_logit_fc = nn.Linear(dim, 1) if separate_cam_logit else None
        self.conv1x1 = nn.Conv2d(2 * dim, dim, kernel_size=1)
        self.relu = nn.ReLU(inplace=True)

        mlp_in = dim if light else dim * (img_size // 2**N_DOWNSAMPLING) ** 2
        self.FC = nn.Sequential(nn.Linear(mlp_in, dim), nn.ReLU(inplace=True), nn.Linear(dim, dim), nn.ReLU(True))
        self.gamma = nn.Linear(dim, dim)
        self.beta = nn.Linear(dim, dim)

        for i in range(n_res):
            setattr(self, f"UpBlock1_{i + 1}", TFResnetAdaLINBlock(dim, rho_offset))
        up: list[nn.Module] = []
        for i in range(N_DOWNSAMPLING):
            mult = 2 ** (N_DOWNSAMPLING - i)
            up += [
                nn.Upsample(scale_factor=2, mode="nearest"),  # = TF resize_nearest_neighbor (no half pixel)
                tf_pad(3, 1, 1),
                nn.Conv2d(ch * mult, ch * mult // 2, kernel_size=3),
                TFILN(ch * mult // 2),
                nn.ReLU(inplace=True),
            ]
        up += [tf_pad(7, 1, 3), nn.Conv2d(ch, 3, kernel_size=7), nn.Tanh()]
        self.UpBlock2 = nn.Sequential(*up)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x = self.DownBlock(x)
        weights = self.cam_fc.weight + self.cam_fc.bias[:, None]  # `tf.nn.bias_add(w, bias)`
        logit_fc = self.cam_logit_fc if self.cam_logit_fc is not None else self.cam_fc
        x, cam_logit = class_activation(x, logit_fc.weight, logit_fc.weight, weights, weights, logit_bias=logit_fc.bias)
        image, heatmap = decode(self, x)
        return image, cam_logit, heatmap


# --- Discriminator -------------------------------------------------------------------------------------


class TFDiscriminator(nn.Module):
    """`discriminator_global` (n_layers = n_dis + 1) or `discriminator_local` (n_layers = n_dis - 1), with
    the official depth convention. forward(x) -> (patch logits, cam_logit (B, 2), heatmap)."""

    def __init__(self, ch: int = 64, n_layers: int = 5, raw_cam_weights: bool = False):
        super().__init__()
        self.raw_cam_weights = raw_cam_weights
        model: list[nn.Module] = []
        channels = [3] + [ch * 2**i for i in range(n_layers - 1)]
        for i in range(n_layers - 2):
            model += [
                tf_pad(4, 2, 1),
                SNConv2d(channels[i], channels[i + 1], kernel_size=4, stride=2),
                nn.LeakyReLU(0.2, inplace=True),
            ]
        model += [tf_pad(4, 1, 1), SNConv2d(channels[-2], channels[-1], kernel_size=4), nn.LeakyReLU(0.2, True)]
        dim = channels[-1]
        self.cam_fc = SNLinear(dim, 1)
        self.conv1x1 = nn.Conv2d(2 * dim, dim, kernel_size=1)
        self.leaky_relu = nn.LeakyReLU(0.2, inplace=True)
        self.pad = tf_pad(4, 1, 1)
        self.conv = SNConv2d(dim, 1, kernel_size=4)
        self.model = nn.Sequential(*model)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        # One power iteration per call in train mode, all layers at once (nn/layers.py: spectral_weights).
        layers = [*(m for m in self.model if isinstance(m, SNConv2d)), self.cam_fc, self.conv]
        *model_weights, cam_w, conv_w = spectral_weights(layers, self.training)
        weights = iter(model_weights)
        for layer in self.model:
            x = layer(x, next(weights)) if isinstance(layer, SNConv2d) else layer(x)
        kernel = self.cam_fc.weight_orig if self.raw_cam_weights else cam_w
        reweight = kernel + self.cam_fc.bias[:, None]
        x, cam_logit = class_activation(x, cam_w, cam_w, reweight, reweight, logit_bias=self.cam_fc.bias)
        x = self.leaky_relu(self.conv1x1(x))
        heatmap = torch.sum(x, dim=1, keepdim=True)
        return self.conv(self.pad(x), conv_w), cam_logit, heatmap
