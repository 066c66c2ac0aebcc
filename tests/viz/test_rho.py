"""The rho plot: a column per decoder layer in the decoder's order, a dot per channel and generator, the
mean marked, residual and up-sampling blocks apart."""

from __future__ import annotations

import re

import torch

from ugatit.config import ModelConfig
from ugatit.nn.introspect import RESIDUAL, UPSAMPLING, rho_layers, rho_summary
from ugatit.nn.model import UGATIT
from ugatit.viz.rho import svg_rho_plot


def test_every_channel_of_every_layer_is_drawn_in_decoder_order():
    torch.manual_seed(0)
    model = UGATIT(ModelConfig(img_size=32, ch=4, n_res=2, light=True))
    layers = rho_layers(model)
    # 2 residual blocks x 2 AdaLIN (16 channels) then 2 up-sampling ILN (8, 4 channels), per generator
    assert [(layer.label, layer.position, layer.values.numel()) for layer in layers[:6]] == [
        ("res1.1", RESIDUAL, 16),
        ("res1.2", RESIDUAL, 16),
        ("res2.1", RESIDUAL, 16),
        ("res2.2", RESIDUAL, 16),
        ("up1", UPSAMPLING, 8),
        ("up2", UPSAMPLING, 4),
    ]
    layers[0].values[:] = torch.linspace(0, 1, 16)
    summary = rho_summary(layers)
    assert summary["genA2B residual"]["min"] == 0.0 and summary["genA2B up-sampling"]["max"] == 0.0
    svg = svg_rho_plot(layers, title="rho")
    assert svg.count("<circle") == 2 * (4 * 16 + 8 + 4) + 2  # every channel of both, and the legend's two
    assert [m for m in re.findall(r">(res\d\.\d|up\d)<", svg)] == ["res1.1", "res1.2", "res2.1", "res2.2", "up1", "up2"]
    assert "residual blocks" in svg and "up-sampling" in svg and "stroke-dasharray" in svg
    assert "genA2B UpBlock1_1.norm1: mean rho 0.500" in svg  # the mean bar of the set layer


def test_a_decoder_without_rho_says_so():
    assert "no rho" in svg_rho_plot([])
