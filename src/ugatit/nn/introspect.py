"""What a model is made of and what it learned: parameter counts, and the rho of every AdaLIN/ILN layer.

rho is the gate of the paper's AdaLIN (its eq. 1): 1 is instance normalisation (keeps each channel's
own statistics: content and shape), 0 layer normalisation (one set for the whole map: lets the style
move shape). The paper's AdaLIN analysis reads where the learned rho end up in the decoder's residual
blocks and in its up-sampling blocks; `rho_layers` lists them in that order.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..config import ModelConfig

#: Where a normalisation layer sits in the decoder.
RESIDUAL, UPSAMPLING = "residual", "up-sampling"


@dataclass
class RhoLayer:
    """The learned rho of one AdaLIN/ILN layer of a generator."""

    generator: str  # "genA2B" or "genB2A"
    name: str  # module path in the generator: "UpBlock1_1.norm1", "UpBlock2.3"
    label: str  # short, for plots: "res1.1" (residual block 1, first norm), "up1" (first up-sampling)
    position: str  # RESIDUAL or UPSAMPLING
    kind: str  # "adalin" (gamma/beta from the MLP), "iln" or "lin" (their own learned gamma/beta)
    values: torch.Tensor  # (C,) float32, one per channel, on the model's device (a copy)


def rho_layers(model: nn.Module) -> list[RhoLayer]:
    """Every layer with a learned rho in the model's generators (`model.generators()`), residual blocks
    first, then up-sampling, in the order the decoder runs them; empty for decoders without rho."""
    found = []
    for generator_name, generator in zip(("genA2B", "genB2A"), model.generators()):
        ups = 0
        for name, module in generator.named_modules():
            rho = getattr(module, "rho", None)
            if not isinstance(rho, nn.Parameter):
                continue
            if name.startswith("UpBlock1_"):  # UpBlock1_<block>.norm<1|2>
                block, norm = name.split(".")
                position, label = RESIDUAL, f"res{block.rsplit('_', 1)[1]}.{norm[-1]}"
            else:
                ups += 1
                position, label = UPSAMPLING, f"up{ups}"
            # AdaLIN takes gamma/beta from the MLP; the `lin` ablation's residual layers have their own.
            adaptive = getattr(generator, "adaptive", True)
            kind = "iln" if position == UPSAMPLING else ("adalin" if adaptive else "lin")
            found.append(RhoLayer(generator_name, name, label, position, kind, rho.detach().float().flatten().clone()))
    return found


def rho_summary(layers: list[RhoLayer]) -> dict[str, dict[str, float]]:
    """Per decoder position (and generator): mean, min and max of the rho of its layers' channels."""
    summary: dict[str, dict[str, float]] = {}
    for generator in dict.fromkeys(layer.generator for layer in layers):
        for position in (RESIDUAL, UPSAMPLING):
            values = [layer.values for layer in layers if layer.generator == generator and layer.position == position]
            if values:
                rho = torch.cat(values)
                summary[f"{generator} {position}"] = {
                    "layers": len(values),
                    "mean": float(rho.mean()),
                    "min": float(rho.min()),
                    "max": float(rho.max()),
                }
    return summary


def parameter_counts(model: nn.Module) -> dict[str, int]:
    """Parameters of each network of a UGATIT model (those it was built with), and their total."""
    counts = {name: sum(p.numel() for p in getattr(model, name).parameters()) for name in model.network_names()}
    counts["total"] = sum(counts.values())
    return counts


def describe_ablation(model: ModelConfig) -> list[str]:
    """What a model of this config lacks or has instead, compared with the paper's (one line each; none
    for the paper's model). docs/ablations.md says the same at length."""
    lines = []
    if not model.g_cam:
        lines.append(
            "generators without CAM: no auxiliary classifier (gap_fc, gmp_fc) and no conv1x1; the decoder reads "
            "the encoder's features as they are; no G_cam_loss, no attention map"
        )
    if not model.d_cam:
        lines.append(
            "discriminators without CAM: no auxiliary classifier (gap_fc, gmp_fc), no conv1x1; the head reads "
            "the encoder's features; no D_ad_cam_loss / G_ad_cam_loss terms"
        )
    norm = model.decoder_norm
    if norm == "adain":
        lines.append("decoder: AdaIN in the residual blocks (gamma/beta from the MLP, no rho), IN + affine up-sampling")
    elif norm == "lin":
        lines.append("decoder: LIN (rho mix, learned affine) everywhere; no gamma/beta MLP")
    elif norm in ("in", "ln", "gn"):
        name = {"in": "instance", "ln": "layer", "gn": "group"}[norm]
        lines.append(f"decoder: {name} normalisation with a learned affine everywhere; no gamma/beta MLP, no rho")
    return lines
