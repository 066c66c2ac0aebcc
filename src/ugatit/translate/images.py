"""Translating images in memory: PIL images in, `TranslatedImage`s (output, attention, logits) out.

Resize policy (any input size and aspect ratio): each image is resized to the model's square size
(bilinear, the test-time transform the model was evaluated with), translated, and the output is resized
back to the input's own size (bicubic), so an output always has its input's width and height. Non-square
images are therefore squeezed to a square for the generator and stretched back afterwards. A light model
is fully convolutional up to a global pooling, so it can run at any size that is a multiple of 4 and at
least 32 (by default the size it was trained at); a full model's gamma/beta MLP reads the whole
(size/4)^2 attention map, so it runs only at its trained size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..config import LIMITS
from ..data.loader import Batch, sized_batches
from ..data.transforms import tensor_to_uint8
from ..domains import Direction
from ..errors import UserError
from ..nn.model import UGATIT
from ..nn.sizes import check_image_size
from ..viz.images import heatmap_to_rgb, overlay

OUTPUT_RESAMPLE = Image.Resampling.BICUBIC


@dataclass
class TranslatedImage:
    """One translation: the output image, the generator's attention and what it was made from."""

    image: Image.Image  # RGB, at the input's size (or at the model size with restore_size=False)
    heatmap: np.ndarray  # (size/4, size/4) float32: the generator's raw heatmap at the model size
    cam_logit: np.ndarray  # (2,): the auxiliary classifier's gap and gmp logits
    source: Image.Image  # the RGB input it was translated from (the caller's image when already RGB)

    def attention_rgb(self, size: tuple[int, int] | None = None) -> np.ndarray:
        """The heatmap min-max normalised, resized (bilinear) to `size` = (width, height), default the
        input's size, and jet-coloured: uint8 H x W x 3."""
        width, height = size or self.source.size
        return heatmap_to_rgb(self.heatmap, (height, width))

    def attention_overlay(self, alpha: float = 0.5) -> Image.Image:
        """The coloured heatmap blended over the input, at the input's size."""
        heat = self.attention_rgb()
        return Image.fromarray(overlay(np.asarray(self.source), heat, alpha=alpha))


def resolve_size(model: UGATIT, size: int | None = None) -> int:
    """The square size the model runs at: its trained size, or `size` where the model allows it.

    A light model takes any multiple of 4 that is at least 32; a full model only its trained size, since
    the first layer of its gamma/beta MLP has one input per position of the (size/4)^2 attention map.
    """
    trained = model.config.img_size
    if size is None or size == trained:
        return trained
    if not model.config.light:
        raise UserError(
            f"cannot run this full model at {size} px: it was trained at {trained} px and its gamma/beta MLP "
            f"reads the whole {trained // 4}x{trained // 4} attention map (only light models run at other sizes)"
        )
    check_image_size(size, "`size`")
    if size > LIMITS["model.img_size"]:  # the largest model a config may ask for
        raise UserError(f"`size` {size} is more than the {LIMITS['model.img_size']} px this package allows")
    return size


def translate_images(
    model: UGATIT,
    images: Sequence[Image.Image],
    direction: Direction = "a2b",
    *,
    size: int | None = None,
    batch_size: int = 8,
    restore_size: bool = True,
) -> list[TranslatedImage]:
    """Translate PIL images of any mode, size and aspect ratio; returns one `TranslatedImage` each.

    Images are resized to the model size (see `resolve_size`), translated in batches on the model's
    device, and (with `restore_size`) resized back to their own size. A mode that cannot be converted
    to RGB raises `BadImageError`.
    """
    _check_batch_size(batch_size)
    side = resolve_size(model, size)
    if not images:
        return []
    out: list[TranslatedImage] = []
    for batch in sized_batches(images, side, batch_size=batch_size, keep_images=True, strict=True):
        out += translate_batch(model, batch, direction, restore_size)
    return out


def translate_batch(
    model: UGATIT, batch: Batch, direction: Direction, restore_size: bool = True
) -> list[TranslatedImage]:
    """Translate one `Batch` of the inference loader (made with `keep_images`), in its order."""
    device = next(model.parameters()).device
    result = model.translate(batch.stacked().to(device), direction)
    images = batch.images
    pixels = tensor_to_uint8(result.image)
    heatmaps = result.heatmap[:, 0].float().cpu().numpy()
    logits = result.cam_logit.float().cpu().numpy()
    translated = []
    for source, out, heat, logit in zip(images, pixels, heatmaps, logits):
        output = Image.fromarray(out)
        if restore_size and output.size != source.size:
            output = output.resize(source.size, OUTPUT_RESAMPLE)
        translated.append(TranslatedImage(output, heat, logit, source))
    return translated


def _check_batch_size(batch_size: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise UserError(f"batch size must be an integer >= 1, got {batch_size!r}")
