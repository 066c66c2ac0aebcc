"""A tiny deterministic stand-in for the FID Inception, for CLI tests (``module:callable`` hook).

Not a test module: pytest does not collect it. ``make()`` returns a fixed random conv net that maps
(N, 3, H, W) floats in [0, 1] to 16 features, so folders of different colours get different KIDs.
"""

from __future__ import annotations

import torch
from torch import nn


class StandIn(nn.Module):
    name = "stand-in extractor (tests)"
    input_size = 24  # exercises the resize-before-batching path

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.conv = nn.Conv2d(3, 8, 3, stride=2)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=g) * 0.5)
            self.conv.bias.copy_(torch.randn(self.conv.bias.shape, generator=g) * 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv(x))
        return torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], 1)


def make() -> nn.Module:
    return StandIn()


def not_a_module() -> int:
    return 3
