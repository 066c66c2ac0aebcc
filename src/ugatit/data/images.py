"""Image files: finding them in folders and decoding them robustly into RGB.

Every decoding problem (missing, empty, corrupt, truncated, not an image, an unusual mode, too large)
becomes a `BadImageError` naming the file, so callers can skip it and say why.

`load_rgb` is the one decoder of image files for training, translation, evaluation and the web app, and
it bounds what a decode may cost before decoding: a file of a few hundred kilobytes can hold an image of
13000 x 13000 16-bit pixels that decodes to gigabytes. The budget is `MAX_DECODE_PIXELS` pixels, a
16-bit image's counting double and a 32-bit one's four times (`decode_cost`). A JPEG past it is decoded
at 1/2, 1/4 or 1/8 of its size, the largest that fits (libjpeg scales while it decodes, at a fraction of
the cost); any other image past it is refused. Only regular files are opened (a FIFO would block).
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
from ..utils.files import open_regular

#: The most pixels one decode may produce, a 16-bit pixel counting double and a 32-bit one four times
#: (`decode_cost`): a 50-megapixel photo (8160 x 6120) decodes, a 7000 x 7000 16-bit PNG (98 million)
#: does not. At this budget a decode and its conversion to RGB peak at about 0.5 GB.
MAX_DECODE_PIXELS = 50_000_000
#: The reductions libjpeg can apply while decoding (see `Image.draft`).
JPEG_REDUCTIONS = (2, 4, 8)

# Pillow warns about images past 89 million pixels when it opens them, before `load_rgb` can apply its
# own, lower budget, which refuses (or reduces) every one of them; its error past 179 million stays.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)

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

    Every mode is converted as `to_rgb` describes. The decode is held to `MAX_DECODE_PIXELS` (see the
    module docstring): a JPEG past it comes back reduced, other images past it are refused. Any decoding
    problem (missing or empty file, corrupt or truncated data, not an image, unsupported mode, too
    large) raises `BadImageError(path, reason)`.
    """
    try:
        with open_regular(path) as file:
            if os.fstat(file.fileno()).st_size == 0:
                raise BadImageError(path, "the file is empty (0 bytes)")
            with Image.open(file) as opened:
                fit_decode_budget(opened)
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


def decode_cost(img: Image.Image) -> int:
    """What decoding an opened image costs against `MAX_DECODE_PIXELS`: its pixels, counted double for
    16 bits a sample (I;16 modes, and 48- or 64-bit PNGs, which Pillow reads into 8-bit RGB) and four
    times for 32 (I, F)."""
    width, height = img.size
    rawmode = img.tile[0][3] if img.tile and isinstance(img.tile[0][3], str) else ""
    if img.mode in ("I", "F") or ";32" in rawmode:
        weight = 4
    elif img.mode in _SIXTEEN_BIT_MODES or ";16" in rawmode:
        weight = 2
    else:
        weight = 1
    return width * height * weight


def fit_decode_budget(img: Image.Image) -> None:
    """Before `img.load()`: make the decode fit `MAX_DECODE_PIXELS`, by reducing a JPEG while it decodes,
    or raise `BadImageError` saying what the image asks for."""
    cost = decode_cost(img)
    if cost <= MAX_DECODE_PIXELS:
        return
    width, height = img.size
    if img.format == "JPEG":
        factor = next((k for k in JPEG_REDUCTIONS if cost / (k * k) <= MAX_DECODE_PIXELS), None)
        if factor is not None:
            img.draft(None, (width // factor, height // factor))
            if decode_cost(img) <= MAX_DECODE_PIXELS:
                return
    weight = cost // (width * height)
    counted = {2: " of 16 bits a sample (counted twice)", 4: " of 32 bits a sample (counted four times)"}
    even = ", even reduced to 1/8 while decoding" if img.format == "JPEG" else ""
    raise BadImageError(
        "<image>",
        f"too large to decode{even}: {width}x{height} pixels{counted.get(weight, '')} are {cost / 1e6:.0f} "
        f"million, over the limit of {MAX_DECODE_PIXELS / 1e6:.0f} million",
    )


def describe_failure(exc: BaseException) -> str:
    """Why Pillow could not read a file, in a few words."""
    if isinstance(exc, UnidentifiedImageError):
        return "not an image, or a format Pillow cannot read"
    if isinstance(exc, FileNotFoundError):
        return "file not found"
    if isinstance(exc, Image.DecompressionBombError):
        return f"too large to decode ({exc})"
    if isinstance(exc, OSError) and exc.errno is not None and exc.strerror:  # from the system: no Errno prefix
        return exc.strerror
    text = str(exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    if "truncated" in first.lower():
        # Pillow: "image file is truncated (151 bytes not processed)", "Truncated File Read"
        return "truncated: the file ends before its image data does (a copy or download cut short?)"
    return first


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
    if img.mode in _SIXTEEN_BIT_MODES:
        # v * 255 / 65535 = v / 257 exactly, rounded in integers ((v + 128) // 257: no ties, 257 being
        # odd), row blocks at a time: no float64 copy of an image that may hold 50 million samples.
        values = np.asarray(img)
        out = np.empty(values.shape, np.uint8)
        for start in range(0, values.shape[0], 256):
            block = values[start : start + 256].astype(np.uint32)
            out[start : start + 256] = (block + 128) // 257
        return out
    values = np.asarray(img).astype(np.float64)
    values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
    if img.mode == "I" and values.size and values.min() >= 0 and values.max() <= 65535:
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
