"""Image files: finding them in folders and decoding them robustly into RGB.

Every decoding problem (missing, corrupt, truncated, not an image, an unusual mode) becomes a
`BadImageError` naming the file, so callers can skip it and say why.
"""

from __future__ import annotations

import os
import shlex
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import UserError

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
    root: PathLike | None = None,
    domain_a: PathLike | None = None,
    domain_b: PathLike | None = None,
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
        if not all(folder.exists() for folder in folders):
            raise UserError(_layout_error(root, split, folders))
    for label, folder in zip("AB", folders):
        _require_folder(folder, f"domain {label} folder")
    return folders


def _layout_error(root: Path, split: str, folders: tuple[Path, Path]) -> str:
    """What a dataset folder without the standard layout lacks, and the image folders it holds instead
    (`domain_a=root/A` `domain_b=root/B` when they are there: a common other layout)."""
    missing = [f"{folder.name}/" for folder in folders if not folder.exists()]
    text = f"{root} has no {' and no '.join(missing)} (a dataset folder holds {split}A/ and {split}B/)"
    present = {folder.name for folder in folders if folder.exists()}
    found = [folder for folder in _image_folders(root) if folder.name not in present]
    if len(missing) == 2 and len(found) >= 2:
        names = {folder.name: folder for folder in found}
        a, b = (names["A"], names["B"]) if {"A", "B"} <= set(names) else found[:2]
        text += (
            f"; to train on its image folders, give `domain_a={shlex.quote(str(a))}` `domain_b={shlex.quote(str(b))}`"
        )
        if len(found) > 2:
            text += f" (image folders there: {', '.join(f'{folder.name}/' for folder in found)})"
    else:
        if found:
            text += f"; image folders there: {', '.join(f'{folder.name}/' for folder in found)}"
        text += "; or give two folders of images as `domain_a` and `domain_b`"
    return text


def _image_folders(root: Path, limit: int = 50) -> list[Path]:
    """The sub-folders of `root` (not hidden) that hold an image at any depth, in name order; only the
    first `limit` folders are looked into."""
    try:
        folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))[:limit]
    except OSError:
        return []
    return [folder for folder in folders if _holds_an_image(folder)]


def _holds_an_image(folder: Path) -> bool:
    for _, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        if any(not n.startswith(".") and os.path.splitext(n)[1].lower() in IMAGE_EXTENSIONS for n in filenames):
            return True
    return False


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
        raise UserError(f"no images found in {folder} (searched recursively for {', '.join(IMAGE_EXTENSIONS)})")
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
    except Exception as exc:
        raise BadImageError(path, describe_failure(exc)) from None
    if rgb.width == 0 or rgb.height == 0:
        raise BadImageError(path, "image has no pixels")
    return rgb


def _exif_upright(img: Image.Image) -> Image.Image:
    """A copy of `img` rotated/flipped per its EXIF orientation (a plain copy when it has none)."""
    try:
        return ImageOps.exif_transpose(img)
    except Exception:
        # A damaged EXIF block does not make the pixels unusable; keep them as stored.
        return img.copy()


def describe_failure(exc: BaseException) -> str:
    """Why Pillow could not read a file, in a few words."""
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
        raise BadImageError("<image>", f"unsupported image mode {mode}: {describe_failure(exc)}") from None


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


def warn_bad_image(name: str, reason: str) -> None:
    """The default report of a skipped image: a `BadImageWarning`."""
    warnings.warn(f"skipping unreadable image {name}: {reason}", BadImageWarning, stacklevel=3)
