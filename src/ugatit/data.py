"""Images in, tensors out: dataset discovery, robust decoding, transforms and the training sampler.

The training sampler is built around one property: every batch is a pure function of
(seed, domain, epoch, index). The order of a domain in an epoch is a permutation drawn from
(seed, domain, epoch); the flip and crop of the sample at position (epoch, index) are drawn from
(seed, domain, epoch, index). Nothing depends on worker scheduling, on prefetching or on the global
torch RNG, so a run resumed from `UnpairedLoader.state_dict()` sees exactly the batches an
uninterrupted run would have seen, with or without workers.

Pixel conventions (shared by training, translation and evaluation): RGB, CHW float32 in [-1, 1],
i.e. ``x = v / 127.5 - 1`` for an 8-bit value v; `tensor_to_uint8` is the exact inverse.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Union

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset, Sampler

from .errors import UserError

__all__ = [
    "IMAGE_EXTENSIONS",
    "BadImageError",
    "BadImageWarning",
    "Source",
    "FileSource",
    "MemorySource",
    "as_source",
    "resolve_domains",
    "find_images",
    "load_rgb",
    "to_rgb",
    "to_tensor",
    "train_transform",
    "eval_transform",
    "tensor_to_uint8",
    "to_pil",
    "UnpairedLoader",
    "ImageFolderDataset",
    "eval_batches",
]

#: File extensions treated as images (compared case-insensitively).
IMAGE_EXTENSIONS: tuple[str, ...] = (".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp")

#: Called with (name, reason) the first time an image cannot be decoded.
BadImageCallback = Callable[[str, str], None]

PathLike = Union[str, "os.PathLike[str]"]


class BadImageError(UserError):
    """A file that cannot be decoded as an image (corrupt, truncated, not an image, unsupported).

    A `UserError`, so that when it escapes (translating a single file) the CLI prints one line.
    """

    def __init__(self, path: Any, reason: str):
        # Keep (path, reason) as args so the exception pickles across worker processes.
        super().__init__(str(path), reason)
        self.path = str(path)
        self.reason = reason

    def __str__(self) -> str:
        return f"cannot read image {self.path}: {self.reason}"


class BadImageWarning(UserWarning):
    """Issued (once per file) by the default report when a training image is skipped."""


# --------------------------------------------------------------------------------------------------
# Discovery
# --------------------------------------------------------------------------------------------------


def resolve_domains(
    root: Optional[PathLike] = None,
    domain_a: Optional[PathLike] = None,
    domain_b: Optional[PathLike] = None,
    split: str = "train",
) -> tuple[Path, Path]:
    """Return the folders of domains A and B.

    Either `root` in the standard layout (``root/trainA``, ``root/trainB``, and for
    ``split="test"`` ``root/testA``, ``root/testB``) or both explicit folders. Raises `UserError`
    naming the folder that is missing. Emptiness is checked later, by `find_images`.
    """
    if split not in ("train", "test"):
        raise UserError(f"split must be 'train' or 'test', got {split!r}")
    explicit = domain_a is not None or domain_b is not None
    if root is not None and explicit:
        raise UserError("give either a dataset root or two domain folders, not both")
    if root is None:
        if domain_a is None or domain_b is None:
            missing = "A" if domain_a is None else "B"
            raise UserError(
                f"no folder given for domain {missing}: give a dataset root "
                f"(with {split}A/ and {split}B/) or folders for both domains"
            )
        folders = (Path(domain_a), Path(domain_b))
    else:
        root = Path(root)
        if not root.is_dir():
            raise UserError(f"dataset folder not found: {root}")
        folders = (root / f"{split}A", root / f"{split}B")
    for label, folder in zip("AB", folders):
        _require_folder(folder, f"domain {label} folder")
    return folders


def _require_folder(folder: Path, what: str) -> None:
    if not folder.exists():
        raise UserError(f"{what} not found: {folder}")
    if not folder.is_dir():
        raise UserError(f"{what} is not a folder: {folder}")


def find_images(folder: PathLike) -> list[Path]:
    """All image files under `folder`, recursively, sorted by relative path.

    Extensions are matched case-insensitively against `IMAGE_EXTENSIONS`; other files are
    ignored, and so are hidden entries (names starting with "."), which in practice are macOS
    "._x.jpg" resource forks and tool caches, not images. Symlinked folders are followed once.
    Raises `UserError` naming the folder when it is missing or holds no image.
    """
    folder = Path(folder)
    _require_folder(folder, "image folder")
    found: list[Path] = []
    visited: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in visited:  # a symlink cycle or a second link to the same folder
            dirnames[:] = []
            continue
        visited.add(real)
        # Sorted so that which of two links to one folder is kept does not depend on the filesystem.
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
                found.append(Path(dirpath) / name)
    if not found:
        raise UserError(
            f"no images found in {folder} (searched recursively for {', '.join(IMAGE_EXTENSIONS)})"
        )
    return sorted(found, key=lambda p: p.relative_to(folder).parts)


# --------------------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------------------

_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")


def load_rgb(path: PathLike) -> Image.Image:
    """Decode an image file into an RGB PIL image, upright according to its EXIF orientation.

    Every mode is converted as `to_rgb` describes. Any decoding problem (missing file, corrupt or
    truncated data, not an image, unsupported mode) raises `BadImageError(path, reason)`.
    """
    try:
        with Image.open(path) as opened:
            opened.load()  # decode now: truncation and corruption only show up here
            upright = _exif_upright(opened)
            rgb = to_rgb(upright)
    except BadImageError as exc:
        raise BadImageError(path, exc.reason) from None
    # Pillow's format plugins raise a zoo of types on malformed data (OSError, SyntaxError,
    # ValueError, struct.error, IndexError, DecompressionBombError...); all mean "unusable file".
    except Exception as exc:  # noqa: BLE001
        raise BadImageError(path, _describe(exc)) from None
    if rgb.width == 0 or rgb.height == 0:
        raise BadImageError(path, "image has no pixels")
    return rgb


def _exif_upright(img: Image.Image) -> Image.Image:
    """A copy of `img` rotated/flipped per its EXIF orientation (a plain copy when it has none)."""
    try:
        return ImageOps.exif_transpose(img)
    except Exception:  # noqa: BLE001
        # A damaged EXIF block does not make the pixels unusable; keep them as stored.
        return img.copy()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, UnidentifiedImageError):
        return "not an image, or a format Pillow cannot read"
    if isinstance(exc, FileNotFoundError):
        return "file not found"
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert a PIL image of any mode to RGB.

    - Transparency (RGBA, LA, PA, P or L/RGB with a transparent colour) is composited on white:
      the colour under fully transparent pixels is arbitrary (often black), and white is how
      such images are usually seen.
    - 16-bit grayscale (I;16*) is scaled by 255/65535, so the full 16-bit range maps to the full
      8-bit range (Pillow's own conversion clips it, turning most images white).
    - 32-bit integer (I) in [0, 65535] is treated as 16-bit data; otherwise min-max scaled.
    - Float (F) in [0, 1] is scaled by 255; otherwise min-max scaled.
    - Everything else (L, 1, P, CMYK, YCbCr, ...) uses Pillow's conversion.

    RGB images are returned as they are (not copied). Unsupported modes raise `BadImageError`.
    """
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in _SIXTEEN_BIT_MODES or mode in ("I", "F"):
        return _gray_to_rgb(_high_depth_to_uint8(img))
    if mode in _ALPHA_MODES or "transparency" in img.info:
        return _composite_on_white(img)
    try:
        return img.convert("RGB")
    except (ValueError, OSError) as exc:
        raise BadImageError("<image>", f"unsupported image mode {mode}: {_describe(exc)}") from None


def _composite_on_white(img: Image.Image) -> Image.Image:
    rgba = img.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")


def _high_depth_to_uint8(img: Image.Image) -> np.ndarray:
    values = np.asarray(img).astype(np.float64)
    values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
    if img.mode in _SIXTEEN_BIT_MODES:
        scaled = values / 257.0  # 65535 / 255 = 257 exactly
    elif img.mode == "I" and values.size and values.min() >= 0 and values.max() <= 65535:
        scaled = values / 257.0
    elif img.mode == "F" and values.size and values.min() >= 0 and values.max() <= 1:
        scaled = values * 255.0
    else:
        low, high = (values.min(), values.max()) if values.size else (0.0, 0.0)
        scaled = (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _gray_to_rgb(gray: np.ndarray) -> Image.Image:
    return Image.fromarray(np.repeat(gray[:, :, None], 3, axis=2), "RGB")


# --------------------------------------------------------------------------------------------------
# Sources: where a domain's images come from
# --------------------------------------------------------------------------------------------------


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

    def __init__(self, paths: Sequence[PathLike], label: Optional[str] = None):
        self.paths = [Path(p) for p in paths]
        self.label = label or "image files"
        if not self.paths:
            raise UserError(f"{self.label}: no images given")

    @classmethod
    def from_folder(cls, folder: PathLike) -> "FileSource":
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


SourceLike = Union[Source, PathLike, Sequence[Image.Image], Sequence[PathLike]]


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


# --------------------------------------------------------------------------------------------------
# Transforms (the official code's torchvision pipelines, on PIL + torch)
# --------------------------------------------------------------------------------------------------


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
    generator: Optional[torch.Generator] = None,
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


# --------------------------------------------------------------------------------------------------
# The endless, seeded, resumable unpaired sampler
# --------------------------------------------------------------------------------------------------


def _derived_seed(*parts: object) -> int:
    """A 63-bit seed from a tuple; stable across processes and runs (unlike hash())."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def _generator(*parts: object) -> torch.Generator:
    return torch.Generator().manual_seed(_derived_seed(*parts))


class _DomainStream:
    """One domain as an endless stream: position g is sample (epoch, index) = divmod(g, n)."""

    def __init__(self, source: Source, domain: str, seed: int, img_size: int, margin: int, flip: bool):
        self.source = source
        self.domain = domain
        self.seed = seed
        self.img_size = img_size
        self.margin = margin
        self.flip = flip
        self._permutation: tuple[int, list[int]] = (-1, [])
        # Per process: remembers undecodable files so each is decoded (and fails) only once.
        self._bad: dict[int, str] = {}

    def __len__(self) -> int:
        return len(self.source)

    def permutation(self, epoch: int) -> list[int]:
        """The order of the domain's images in `epoch`."""
        if self._permutation[0] != epoch:
            order = torch.randperm(len(self.source), generator=_generator(self.seed, self.domain, "order", epoch))
            self._permutation = (epoch, order.tolist())
        return self._permutation[1]

    def sample(self, position: int) -> tuple[Optional[torch.Tensor], list[tuple[str, str]]]:
        """The augmented sample at `position` and the (name, reason) of files skipped on the way.

        An undecodable file is replaced by the next one in the epoch's order (wrapping around),
        augmented with the randomness of the original position, so the substitution is as
        deterministic as everything else. Returns None when no file of the domain decodes.
        """
        n = len(self.source)
        epoch, index = divmod(position, n)
        order = self.permutation(epoch)
        skipped: list[tuple[str, str]] = []
        for step in range(n):
            item = order[(index + step) % n]
            if item not in self._bad:
                try:
                    img = self.source.load(item)
                except BadImageError as exc:
                    self._bad[item] = exc.reason
                else:
                    rng = _generator(self.seed, self.domain, "augment", epoch, index)
                    return train_transform(img, self.img_size, self.margin, self.flip, rng), skipped
            skipped.append((self.source.name(item), self._bad[item]))
        return None, skipped


class _UnpairedBatches(Dataset):
    """Map-style dataset whose keys are (position A, position B); an item is a whole batch.

    Building whole batches in one worker keeps the DataLoader's in-order delivery aligned with
    batch boundaries, so the main process always knows which positions it has consumed.
    """

    def __init__(self, stream_a: _DomainStream, stream_b: _DomainStream, batch_size: int):
        self.streams = {"A": stream_a, "B": stream_b}
        self.batch_size = batch_size

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        batch: dict[str, Any] = {"key": tuple(key), "bad": [], "exhausted": None}
        for domain, start in zip("AB", key):
            stream = self.streams[domain]
            samples = []
            for position in range(start, start + self.batch_size):
                tensor, skipped = stream.sample(position)
                batch["bad"].extend(skipped)
                if tensor is None:
                    # Raised in the main process: a UserError raised here would come back
                    # wrapped with a worker traceback instead of as one line.
                    batch["exhausted"] = stream.source.label
                    return batch
                samples.append(tensor)
            batch[domain] = torch.stack(samples)
        return batch


class _EndlessKeys(Sampler):
    """Yields (start A, start B), (start A + step, start B + step), ... forever."""

    def __init__(self, start_a: int, start_b: int, step: int):
        self.start_a, self.start_b, self.step = start_a, start_b, step

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for k in itertools.count():
            yield (self.start_a + k * self.step, self.start_b + k * self.step)


def _pass_through(batch: Any) -> Any:
    """Collate for pre-built batches (module level so it pickles to spawned workers)."""
    return batch


def _warn_bad_image(name: str, reason: str) -> None:
    warnings.warn(f"skipping unreadable image {name}: {reason}", BadImageWarning, stacklevel=3)


class UnpairedLoader:
    """Endless, seeded, resumable batches ``(real_A, real_B)`` of shape (B, 3, img_size, img_size).

    The two domains are shuffled independently, each with a new permutation every epoch of its
    own, and batches run across epoch boundaries. Undecodable files are reported once each through
    `on_bad_image(name, reason)` (default: a `BadImageWarning`) and replaced by the next file.
    `state_dict()` is the position of the next batch to be handed out; loading it into a new
    loader with the same sources and seed continues bit-identically, whatever `num_workers`.
    """

    def __init__(
        self,
        domain_a: SourceLike,
        domain_b: SourceLike,
        img_size: int,
        batch_size: int = 1,
        seed: int = 0,
        num_workers: int = 0,
        margin: int = 30,
        flip: bool = True,
        on_bad_image: Optional[BadImageCallback] = None,
        pin_memory: bool = False,
        prefetch_factor: int = 2,
    ):
        _check_int("img_size", img_size, minimum=1)
        _check_int("batch_size", batch_size, minimum=1)
        _check_int("num_workers", num_workers, minimum=0)
        _check_int("margin", margin, minimum=0)
        _check_int("prefetch_factor", prefetch_factor, minimum=1)
        self.source_a = as_source(domain_a, label="domain A")
        self.source_b = as_source(domain_b, label="domain B")
        self.img_size = img_size
        self.batch_size = batch_size
        self.seed = int(seed)
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.prefetch_factor = prefetch_factor
        self.on_bad_image = on_bad_image or _warn_bad_image
        streams = [
            _DomainStream(source, domain, self.seed, img_size, margin, flip)
            for domain, source in (("A", self.source_a), ("B", self.source_b))
        ]
        self._dataset = _UnpairedBatches(*streams, batch_size=batch_size)
        self._position = {"A": 0, "B": 0}  # stream position of the next batch handed out
        self._iterator: Optional[Iterator[dict[str, Any]]] = None
        self._reported: dict[str, str] = {}

    @classmethod
    def from_config(
        cls, config: Any, domain_a: SourceLike, domain_b: SourceLike, **overrides: Any
    ) -> "UnpairedLoader":
        """Build from a `ugatit.config.Config` (data section, model.img_size, train.seed)."""
        options: dict[str, Any] = dict(
            img_size=config.model.img_size,
            batch_size=config.data.batch_size,
            seed=config.train.seed,
            num_workers=config.data.num_workers,
            margin=config.data.resize_margin,
            flip=config.data.flip,
        )
        options.update(overrides)
        return cls(domain_a, domain_b, **options)

    @property
    def sizes(self) -> tuple[int, int]:
        """Number of images in domains A and B."""
        return len(self.source_a), len(self.source_b)

    @property
    def bad_images(self) -> dict[str, str]:
        """Every file reported as undecodable so far: name -> reason."""
        return dict(self._reported)

    def __iter__(self) -> "UnpairedLoader":
        return self

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._iterator is None:
            self._iterator = iter(self._make_dataloader())
        batch = next(self._iterator)
        self._report(batch["bad"])
        if batch["exhausted"] is not None:
            self.close()
            raise UserError(f"{batch['exhausted']}: none of its images could be decoded")
        expected = (self._position["A"], self._position["B"])
        if tuple(batch["key"]) != expected:  # would mean the DataLoader reordered batches
            raise RuntimeError(f"data loader out of order: got batch {batch['key']}, expected {expected}")
        self._position["A"] += self.batch_size
        self._position["B"] += self.batch_size
        return batch["A"], batch["B"]

    def _make_dataloader(self) -> DataLoader:
        sampler = _EndlessKeys(self._position["A"], self._position["B"], self.batch_size)
        extra: dict[str, Any] = {}
        if self.num_workers > 0:
            extra["prefetch_factor"] = self.prefetch_factor
        return DataLoader(
            self._dataset,
            batch_size=None,  # items are whole batches already
            sampler=sampler,
            num_workers=self.num_workers,
            collate_fn=_pass_through,
            pin_memory=self.pin_memory,
            # A private generator: otherwise every new iterator draws its base seed from the global
            # torch RNG, and a resumed run's global RNG would drift from an uninterrupted one.
            generator=torch.Generator().manual_seed(self.seed),
            **extra,
        )

    def _report(self, skipped: list[tuple[str, str]]) -> None:
        for name, reason in skipped:
            if name not in self._reported:
                self._reported[name] = reason
                self.on_bad_image(name, reason)

    def state_dict(self) -> dict[str, Any]:
        """Position of the next batch: {"A": {"epoch", "index", "size"}, "B": {...}, "seed"}.

        Counts only batches already returned by `__next__`, never those prefetched by workers.
        """
        state: dict[str, Any] = {"seed": self.seed}
        for domain, size in zip("AB", self.sizes):
            epoch, index = divmod(self._position[domain], size)
            state[domain] = {"epoch": epoch, "index": index, "size": size}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a `state_dict()`; batches prefetched from the old position are dropped.

        Warns when the seed or a domain's size differs from the checkpoint's: the run continues,
        but no longer matches the uninterrupted one.
        """
        positions = {}
        for domain, size in zip("AB", self.sizes):
            epoch, index, saved_size = _parse_position(state, domain)
            if saved_size is not None and saved_size != size:
                warnings.warn(
                    f"domain {domain} has {size} images but had {saved_size} when the data position "
                    f"was saved: the batches after resuming differ from an uninterrupted run",
                    stacklevel=2,
                )
            if index >= size:  # the domain shrank: start its next epoch
                epoch, index = epoch + 1, 0
            positions[domain] = epoch * size + index
        saved_seed = state.get("seed")
        if saved_seed is not None and int(saved_seed) != self.seed:
            warnings.warn(
                f"data seed {self.seed} differs from the saved seed {saved_seed}: the batches after "
                "resuming differ from an uninterrupted run",
                stacklevel=2,
            )
        self.close()
        self._position = positions

    def close(self) -> None:
        """Stop the workers (if any); iterating again restarts them at the current position."""
        # Dropping the only reference shuts a multiprocessing iterator's workers down (its __del__).
        self._iterator = None

    def __enter__(self) -> "UnpairedLoader":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UserError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _parse_position(state: Any, domain: str) -> tuple[int, int, Optional[int]]:
    try:
        entry = state[domain]
        epoch, index = int(entry["epoch"]), int(entry["index"])
        size = entry.get("size")
        size = None if size is None else int(size)
    except (KeyError, TypeError, ValueError, AttributeError):
        raise UserError(f"malformed data position for domain {domain} in the checkpoint") from None
    if epoch < 0 or index < 0:
        raise UserError(f"malformed data position for domain {domain} in the checkpoint")
    return epoch, index, size


# --------------------------------------------------------------------------------------------------
# Finite, ordered test sets
# --------------------------------------------------------------------------------------------------


class ImageFolderDataset(Dataset):
    """A finite, ordered set of images with the test transform.

    Item i is ``(tensor (3, img_size, img_size) in [-1, 1], name)``, name being the file path (or
    ``label[i]`` for in-memory images). An undecodable file raises `BadImageError`; `eval_batches`
    skips those instead.
    """

    def __init__(self, source: SourceLike, img_size: int, label: str = "images"):
        _check_int("img_size", img_size, minimum=1)
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
    _check_int("batch_size", batch_size, minimum=1)
    _check_int("num_workers", num_workers, minimum=0)
    report = on_bad_image or _warn_bad_image
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
