"""A quick look at every image file before training: which ones cannot be read.

Training skips an unreadable file when it is drawn, which may be hours in, or never in a short run. The
scan finds them up front, reading only a file's first and last bytes: a PNG must start with its
signature and a header of non-zero size within the decode budget (`images.MAX_DECODE_PIXELS`), a JPEG
with its start marker, and both must end with their end marker (a copy or download cut short does
not). A file that fails the end check is decoded in full before it is called unreadable, since some
writers append data after a whole image; other formats are opened with Pillow, which reads their
header. A pool of threads reads the files, so that slow storage is read in parallel. `full=True`
decodes every file as training does: slower, and it also finds damage
inside the pixel data, which training still guards against file by file.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from PIL import Image

from ..errors import UserError
from ..utils.files import open_regular
from .images import MAX_DECODE_PIXELS, BadImageError, PathLike, describe_failure, fit_decode_budget, load_rgb
from .sources import FileSource, Source

#: Threads reading files: enough to keep a network filesystem busy.
SCAN_THREADS = 16
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"IEND\xaeB`\x82"
_JPEG_START, _JPEG_END = b"\xff\xd8\xff", b"\xff\xd9"
_TAIL = 64  # end markers may be followed by a little padding


def check_image(path: PathLike, full: bool = False) -> str | None:
    """Why `path` cannot be used as a training image, or None when it can (see the module docstring)."""
    if not full:
        try:
            with open_regular(path) as file:
                head = file.read(32)
                file.seek(max(0, file.seek(0, 2) - _TAIL))
                tail = file.read(_TAIL)
        except OSError as exc:
            return describe_failure(exc)
        if not head:
            return "the file is empty (0 bytes)"
        if head.startswith(_PNG_SIGNATURE):
            if head[12:16] != b"IHDR" or 0 in struct.unpack(">II", head[16:24]):
                return "damaged PNG header"
            width, height = struct.unpack(">II", head[16:24])
            weight = 2 if head[24] == 16 else 1  # bit depth
            if width * height * weight > MAX_DECODE_PIXELS:
                return _png_too_large(path)
            if _PNG_END in tail:
                return None
        elif head.startswith(_JPEG_START):
            if _JPEG_END in tail:
                return None
        else:
            return _pillow_header(path)
    try:
        load_rgb(path)
    except BadImageError as exc:
        return exc.reason
    return None


def _pillow_header(path: PathLike) -> str | None:
    try:
        with open_regular(path) as file, Image.open(file) as img:
            if img.width == 0 or img.height == 0:
                return "image has no pixels"
            fit_decode_budget(img)  # reads no pixels: a JPEG is only marked for a reduced decode
            return None
    except BadImageError as exc:
        return exc.reason
    except Exception as exc:
        return describe_failure(exc)


def _png_too_large(path: PathLike) -> str:
    """The reason `load_rgb` gives for a PNG past the budget, from its header."""
    return _pillow_header(path) or "too large to decode"


@dataclass
class ScanResult:
    """How many files were checked, the unreadable ones as (path, reason), and how long it took."""

    checked: int = 0
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        head = f"checked {self.checked} image{'s' if self.checked != 1 else ''} in {self.seconds:.1f} s"
        if not self.unreadable:
            return f"{head}: all can be read"
        return f"{head}: {len(self.unreadable)} cannot be read"


def scan_images(paths: Sequence[PathLike], *, full: bool = False, threads: int = SCAN_THREADS) -> ScanResult:
    """Check `paths` with `check_image`, in parallel; unreadable files come back in the given order."""
    start = time.monotonic()
    paths = [str(p) for p in paths]
    # Work in chunks: a future per file would cost more than reading a header.
    size = max(1, min(256, len(paths) // (threads * 4)))
    chunks = [paths[i : i + size] for i in range(0, len(paths), size)]

    def check(chunk: list[str]) -> list[tuple[str, str]]:
        return [(p, reason) for p in chunk if (reason := check_image(p, full)) is not None]

    with ThreadPoolExecutor(max_workers=max(1, min(threads, len(chunks)))) as pool:
        unreadable = [found for part in pool.map(check, chunks) for found in part]
    return ScanResult(len(paths), unreadable, time.monotonic() - start)


def scan_sources(sources: Sequence[Source]) -> ScanResult:
    """Scan the files of the sources that are files (images in memory need no scan). A source none of
    whose files can be read is a `UserError`: there is nothing to train on."""
    total = ScanResult()
    for source in sources:
        if not isinstance(source, FileSource):
            continue
        found = scan_images(source.paths)
        if found.unreadable and len(found.unreadable) == len(source):
            name, reason = found.unreadable[0]
            raise UserError(
                f"{source.label}: none of its {len(source)} images can be read (the first, {name}: {reason})"
            )
        total.checked += found.checked
        total.unreadable += found.unreadable
        total.seconds += found.seconds
    return total
