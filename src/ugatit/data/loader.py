"""The one loader for inference: a finite set of images, in order, decoded, transformed and batched.

Translation (files and images in memory), evaluation, the training sample grids and the feature
extractor behind KID all read their images through `image_batches`. It decodes each image of a
`Source` (optionally in worker processes), applies the caller's transform (the test-time resize and
scaling for a generator, the 299 px resize for Inception), and hands out `Batch`es in source order. A
file that cannot be decoded is skipped and reported with its reason, or, with `strict=True`, raises.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from ..errors import require_int
from .images import BadImageCallback, BadImageError, warn_bad_image
from .sources import Source, SourceLike, as_source
from .transforms import eval_transform

Transform = Callable[[Image.Image], torch.Tensor]


@dataclass
class Batch:
    """Consecutive images of a source that decoded: their transformed tensors, names and positions;
    with `keep_images`, the decoded RGB images too. `skipped` holds (position, name, reason) of the
    files in the same stretch of the source that could not be decoded."""

    tensors: list[torch.Tensor]
    names: list[str]
    indices: list[int]
    images: list[Image.Image] = field(default_factory=list)
    skipped: list[tuple[int, str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.tensors)

    def stacked(self) -> torch.Tensor:
        """The tensors as one (b, ...) batch; they must share a shape (the test transform ensures it)."""
        return torch.stack(self.tensors)


class _Decoded(Dataset):
    """Item i of a source as (i, name, tensor or None, image or None, reason or None)."""

    def __init__(self, source: Source, transform: Transform, keep_images: bool):
        self.source, self.transform, self.keep_images = source, transform, keep_images

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> tuple[int, str, Any, Any, str | None]:
        name = self.source.name(index)
        try:
            image = self.source.load(index)
        except BadImageError as exc:
            return index, name, None, None, exc.reason
        return index, name, self.transform(image), image if self.keep_images else None, None


def _collate(items: list[tuple[int, str, Any, Any, str | None]]) -> Batch:
    batch = Batch([], [], [])
    for index, name, tensor, image, reason in items:
        if reason is not None:
            batch.skipped.append((index, name, reason))
            continue
        batch.tensors.append(tensor)
        batch.names.append(name)
        batch.indices.append(index)
        if image is not None:
            batch.images.append(image)
    return batch


def image_batches(
    source: SourceLike,
    transform: Transform,
    *,
    batch_size: int = 1,
    num_workers: int = 0,
    keep_images: bool = False,
    strict: bool = False,
    on_bad_image: BadImageCallback | None = None,
    label: str = "images",
) -> Iterator[Batch]:
    """Yield `Batch`es over `source` (a folder, file paths, PIL images or a `Source`) once, in order.

    Each stretch of `batch_size` positions gives one batch, smaller where files were skipped; a batch
    may hold only skipped files (no tensors), so a caller can account for every position. Skipped files
    are also reported through `on_bad_image(name, reason)` (default: a `BadImageWarning`); with
    `strict`, the first one raises its `BadImageError` instead.
    """
    require_int("`batch_size`", batch_size, minimum=1)
    require_int("`num_workers`", num_workers, minimum=0)
    report = on_bad_image or warn_bad_image
    loader = DataLoader(
        _Decoded(as_source(source, label=label), transform, keep_images),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=_collate,
        generator=torch.Generator().manual_seed(0),  # keep the global RNG untouched
    )
    for batch in loader:
        for _, name, reason in batch.skipped:
            if strict:
                raise BadImageError(name, reason)
            report(name, reason)
        yield batch


def sized_batches(source: SourceLike, img_size: int, **options: Any) -> Iterator[Batch]:
    """`image_batches` with the test-time transform (resize to img_size^2, scale to [-1, 1]): what a
    generator reads."""
    require_int("`img_size`", img_size, minimum=1)
    return image_batches(source, partial(eval_transform, img_size=img_size), **options)
