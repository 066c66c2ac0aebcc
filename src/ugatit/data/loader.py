"""Finite, ordered image sets for inference: translation, evaluation, sample grids, features."""

from __future__ import annotations

from typing import Iterator, Optional, Union

import torch
from torch.utils.data import DataLoader, Dataset

from ..errors import require_int
from .images import BadImageCallback, BadImageError, warn_bad_image
from .sources import SourceLike, as_source
from .transforms import eval_transform



class ImageFolderDataset(Dataset):
    """A finite, ordered set of images with the test transform.

    Item i is ``(tensor (3, img_size, img_size) in [-1, 1], name)``, name being the file path (or
    ``label[i]`` for in-memory images). An undecodable file raises `BadImageError`; `eval_batches`
    skips those instead.
    """

    def __init__(self, source: SourceLike, img_size: int, label: str = "images"):
        require_int("img_size", img_size, minimum=1)
        self.source = as_source(source, label=label)
        self.img_size = img_size

    def __len__(self) -> int:
        return len(self.source)

    def name(self, index: int) -> str:
        """The path (or label) of item `index`."""
        return self.source.name(index)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, str]:
        return eval_transform(self.source.load(index), self.img_size), self.source.name(index)


class _TolerantItems(Dataset):
    """Items of an ImageFolderDataset as (tensor or None, name, reason or None)."""

    def __init__(self, dataset: ImageFolderDataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[Optional[torch.Tensor], str, Optional[str]]:
        try:
            tensor, name = self.dataset[index]
        except BadImageError as exc:
            return None, self.dataset.name(index), exc.reason
        return tensor, name, None


def _collate_tolerant(
    items: list[tuple[Optional[torch.Tensor], str, Optional[str]]],
) -> tuple[Optional[torch.Tensor], list[str], list[tuple[str, str]]]:
    good = [(tensor, name) for tensor, name, _ in items if tensor is not None]
    bad = [(name, reason) for tensor, name, reason in items if tensor is None and reason is not None]
    tensors = torch.stack([tensor for tensor, _ in good]) if good else None
    return tensors, [name for _, name in good], bad


def eval_batches(
    source: Union[SourceLike, ImageFolderDataset],
    img_size: Optional[int] = None,
    batch_size: int = 1,
    num_workers: int = 0,
    on_bad_image: Optional[BadImageCallback] = None,
) -> Iterator[tuple[torch.Tensor, list[str]]]:
    """Yield ``(images (b, 3, S, S), names)`` over a test set once, in order.

    Undecodable files are reported through `on_bad_image(name, reason)` (default: a
    `BadImageWarning`) and left out, so a batch can be smaller than `batch_size`.
    """
    if isinstance(source, ImageFolderDataset):
        dataset = source
    else:
        if img_size is None:
            raise TypeError("eval_batches needs img_size unless given an ImageFolderDataset")
        dataset = ImageFolderDataset(source, img_size)
    require_int("batch_size", batch_size, minimum=1)
    require_int("num_workers", num_workers, minimum=0)
    report = on_bad_image or warn_bad_image
    loader = DataLoader(
        _TolerantItems(dataset),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=_collate_tolerant,
        generator=torch.Generator().manual_seed(0),  # keep the global RNG untouched
    )
    for tensors, names, bad in loader:
        for name, reason in bad:
            report(name, reason)
        if tensors is not None:
            yield tensors, names
