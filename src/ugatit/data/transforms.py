"""Transforms: the official code's torchvision pipelines, on PIL and torch.

Pixel conventions (shared by training, translation and evaluation): RGB, CHW float32 in [-1, 1],
i.e. ``x = v / 127.5 - 1`` for an 8-bit value v; `tensor_to_uint8` is the exact inverse.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from .images import to_rgb


def to_tensor(img: Image.Image) -> torch.Tensor:
    """PIL image -> CHW float32 tensor in [-1, 1] (v / 127.5 - 1); non-RGB modes go through `to_rgb`."""
    array = np.asarray(to_rgb(img), dtype=np.uint8)
    chw = torch.from_numpy(array.copy()).permute(2, 0, 1)
    return chw.to(torch.float32).div_(127.5).sub_(1.0)


def train_transform(
    img: Image.Image,
    img_size: int,
    margin: int = 30,
    flip: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Flip (p=0.5), resize to (img_size+margin)^2 bilinear, random crop img_size, scale to [-1, 1].

    The order and the draws (flip: ``rand < 0.5``; crop: top then left, each ``randint(0,
    margin+1)``) follow torchvision's RandomHorizontalFlip/Resize/RandomCrop as in the official
    code. The coin is drawn even when `flip` is False so the crops do not depend on it.
    """
    flip_coin = torch.rand(1, generator=generator).item() < 0.5
    if flip and flip_coin:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    big = img_size + margin
    img = img.resize((big, big), Image.Resampling.BILINEAR)
    top = int(torch.randint(0, margin + 1, (1,), generator=generator).item())
    left = int(torch.randint(0, margin + 1, (1,), generator=generator).item())
    img = img.crop((left, top, left + img_size, top + img_size))
    return to_tensor(img)


def eval_transform(img: Image.Image, img_size: int) -> torch.Tensor:
    """Resize to (img_size, img_size) bilinear and scale to [-1, 1]: the test-time transform."""
    return to_tensor(img.resize((img_size, img_size), Image.Resampling.BILINEAR))


def tensor_to_uint8(tensor: torch.Tensor) -> np.ndarray:
    """Inverse of `to_tensor`: (C,H,W) or (B,C,H,W) in [-1, 1] -> uint8 (H,W,C) or (B,H,W,C).

    Values outside [-1, 1] are clipped; `tensor_to_uint8(to_tensor(img))` returns img's pixels.
    """
    if tensor.dim() not in (3, 4):
        raise ValueError(f"expected a (C,H,W) or (B,C,H,W) tensor, got shape {tuple(tensor.shape)}")
    values = tensor.detach().to("cpu", torch.float32).clamp(-1.0, 1.0).add(1.0).mul(127.5)
    channels_last = values.permute(1, 2, 0) if values.dim() == 3 else values.permute(0, 2, 3, 1)
    return channels_last.round().to(torch.uint8).numpy()


def to_pil(tensor: torch.Tensor) -> Image.Image:
    """A (3,H,W), (1,H,W) or (1,C,H,W) tensor in [-1, 1] as a PIL image (RGB, or L for 1 channel)."""
    if tensor.dim() == 4:
        if tensor.shape[0] != 1:
            raise ValueError(f"to_pil takes one image, got a batch of {tensor.shape[0]}")
        tensor = tensor[0]
    array = tensor_to_uint8(tensor)
    if array.shape[2] == 1:
        return Image.fromarray(array[:, :, 0], "L")
    if array.shape[2] != 3:
        raise ValueError(f"to_pil needs 1 or 3 channels, got {array.shape[2]}")
    return Image.fromarray(array, "RGB")
