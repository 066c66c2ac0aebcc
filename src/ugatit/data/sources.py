"""Sources: where a domain's images come from (files on disk or PIL images in memory)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Union

from PIL import Image

from ..errors import UserError
from .images import BadImageError, PathLike, find_images, load_rgb, to_rgb


class Source:
    """A finite, indexable collection of one domain's images (files on disk or images in memory).

    `load(i)` returns an RGB PIL image that callers must not modify, or raises `BadImageError`;
    `name(i)` is what reports and outputs call the image (its path for files).
    """

    label: str = "images"

    def __len__(self) -> int:
        raise NotImplementedError

    def name(self, index: int) -> str:
        raise NotImplementedError

    def load(self, index: int) -> Image.Image:
        raise NotImplementedError


class FileSource(Source):
    """Image files, in the given order."""

    def __init__(self, paths: Sequence[PathLike], label: str | None = None):
        self.paths = [Path(p) for p in paths]
        self.label = label or "image files"
        if not self.paths:
            raise UserError(f"{self.label}: no images given")

    @classmethod
    def from_folder(cls, folder: PathLike) -> FileSource:
        """All images under `folder` (see `find_images`), labelled by the folder path."""
        return cls(find_images(folder), label=str(folder))

    def __len__(self) -> int:
        return len(self.paths)

    def name(self, index: int) -> str:
        return str(self.paths[index])

    def load(self, index: int) -> Image.Image:
        return load_rgb(self.paths[index])


class MemorySource(Source):
    """PIL images in memory, or a lazy Sequence of them (the synthetic dataset); names are ``label[i]``.

    A Sequence is kept as it is, not copied, so images drawn on access are drawn in the workers.
    """

    def __init__(self, images: Sequence[Image.Image], label: str = "images"):
        self.images = images if isinstance(images, Sequence) else list(images)
        self.label = label
        if not self.images:
            raise UserError(f"{label}: no images given")

    def __len__(self) -> int:
        return len(self.images)

    def name(self, index: int) -> str:
        return f"{self.label}[{index}]"

    def load(self, index: int) -> Image.Image:
        img = self.images[index]
        if not isinstance(img, Image.Image):  # a programming error, not a bad file
            raise TypeError(f"{self.name(index)} is a {type(img).__name__}, not a PIL image")
        try:
            rgb = to_rgb(img)
        except BadImageError as exc:
            raise BadImageError(self.name(index), exc.reason) from None
        if rgb.width == 0 or rgb.height == 0:
            raise BadImageError(self.name(index), "image has no pixels")
        return rgb


SourceLike = Union[Source, PathLike, Sequence[Image.Image], Sequence[PathLike]]  # noqa: UP007 (a runtime alias on 3.10)


def as_source(source: SourceLike, label: str = "images") -> Source:
    """Wrap a folder path, a sequence of PIL images or a list of file paths as a `Source`.

    A `Source` is returned unchanged; `label` names in-memory images in reports. A Sequence whose
    first item is a PIL image is taken as images without touching the rest, so lazy sequences
    (``synthetic.ShapesDataset``) stay lazy.
    """
    if isinstance(source, Source):
        return source
    if isinstance(source, (str, os.PathLike)):
        return FileSource.from_folder(source)
    items = source if isinstance(source, Sequence) else list(source)
    if len(items) == 0:
        raise UserError(f"{label}: no images given")
    if isinstance(items[0], Image.Image):
        return MemorySource(items, label=label)
    if all(isinstance(item, (str, os.PathLike)) for item in items):
        return FileSource(items, label=label)
    raise TypeError(f"{label}: expected a folder, a list of PIL images or a list of paths")
