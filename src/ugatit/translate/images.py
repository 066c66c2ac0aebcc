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
from dataclasses import dataclass, field

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


#: The discriminators' scales, as `UGATIT.judge` names them.
DISCRIMINATOR_SCALES = ("global", "local")


@dataclass
class TranslatedImage:
    """One translation: the output image, the generator's attention and what it was made from."""

    image: Image.Image  # RGB, at the input's size (or at the model size with restore_size=False)
    heatmap: np.ndarray | None  # (size/4, size/4) float32: the generator's raw heatmap (None: no CAM)
    cam_logit: np.ndarray | None  # (2,): the auxiliary classifier's gap and gmp logits (None: no CAM)
    source: Image.Image  # the RGB input it was translated from (the caller's image when already RGB)
    # With `discriminators`: the raw CAM heatmaps of the target domain's discriminators on the translation,
    # {"global": (h, w), "local": (h', w')} float32 (the paper's Figure 2 (c)-(d)); empty otherwise.
    judged: dict[str, np.ndarray] = field(default_factory=dict)

    def attention_rgb(self, size: tuple[int, int] | None = None) -> np.ndarray:
        """The heatmap min-max normalised, resized (bilinear) to `size` = (width, height), default the
        input's size, and jet-coloured: uint8 H x W x 3."""
        if self.heatmap is None:
            raise UserError("this model's generator has no CAM attention (an ablation): no attention map")
        width, height = size or self.source.size
        return heatmap_to_rgb(self.heatmap, (height, width))

    def attention_overlay(self, alpha: float = 0.5) -> Image.Image:
        """The coloured heatmap blended over the input, at the input's size."""
        heat = self.attention_rgb()
        return Image.fromarray(overlay(np.asarray(self.source), heat, alpha=alpha))

    def discriminator_overlay(self, scale: str, alpha: float = 0.5) -> Image.Image:
        """The `scale` ("global" or "local") discriminator's heatmap, coloured and blended over the
        translation, at the translation's size."""
        width, height = self.image.size
        heat = heatmap_to_rgb(self.judged[scale], (height, width))
        return Image.fromarray(overlay(np.asarray(self.image.convert("RGB")), heat, alpha=alpha))


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
    discriminators: bool = False,
) -> list[TranslatedImage]:
    """Translate PIL images of any mode, size and aspect ratio; returns one `TranslatedImage` each.

    Images are resized to the model size (see `resolve_size`), translated in batches on the model's
    device, and (with `restore_size`) resized back to their own size. A mode that cannot be converted
    to RGB raises `BadImageError`. `discriminators`: also the target domain's discriminators' attention
    on each translation (`TranslatedImage.judged`), where the model has them.
    """
    _check_batch_size(batch_size)
    side = resolve_size(model, size)
    if not images:
        return []
    out: list[TranslatedImage] = []
    for batch in sized_batches(images, side, batch_size=batch_size, keep_images=True, strict=True):
        out += translate_batch(model, batch, direction, restore_size, discriminators)
    return out


def judges_attention(model: UGATIT) -> bool:
    """Whether `model` has discriminators with CAM, whose attention `translate_batch` can show."""
    return bool(model.has_discriminators and model.config.d_cam)


def translate_batch(
    model: UGATIT, batch: Batch, direction: Direction, restore_size: bool = True, discriminators: bool = False
) -> list[TranslatedImage]:
    """Translate one `Batch` of the inference loader (made with `keep_images`), in its order. With
    `discriminators` (and a model that `judges_attention`), also the heatmaps of the target domain's
    discriminators on each translation."""
    device = next(model.parameters()).device
    result = model.translate(batch.stacked().to(device), direction)
    images = batch.images
    pixels = tensor_to_uint8(result.image)
    count = len(images)
    heatmaps = _per_image(result.heatmap, count)
    logits = [None] * count if result.cam_logit is None else list(result.cam_logit.float().cpu().numpy())
    judged: list[dict[str, np.ndarray]] = [{} for _ in images]
    if discriminators and judges_attention(model):
        for scale, judgement in model.judge_translation(result.image, direction).items():
            for maps, heat in zip(judged, _per_image(judgement.heatmap, count)):
                maps[scale] = heat
    translated = []
    for source, out, heat, logit, maps in zip(images, pixels, heatmaps, logits, judged):
        output = Image.fromarray(out)
        if restore_size and output.size != source.size:
            output = output.resize(source.size, OUTPUT_RESAMPLE)
        translated.append(TranslatedImage(output, heat, logit, source, maps))
    return translated


def _per_image(heatmap, count: int) -> list[np.ndarray | None]:
    """A (B, 1, h, w) heatmap batch as B float32 arrays (h, w); B Nones for a network without CAM."""
    return [None] * count if heatmap is None else list(heatmap[:, 0].float().cpu().numpy())


def _check_batch_size(batch_size: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise UserError(f"batch size must be an integer >= 1, got {batch_size!r}")
