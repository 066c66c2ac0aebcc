"""PNGs that are small on disk and huge decoded, for the tests of the decode budget (issue 19)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path


def huge_png(path: Path, width: int, height: int, bits: int = 16) -> Path:
    """A grey PNG of `width` x `height` zeros at `bits` a sample, compressed row by row: a few hundred KB
    on disk however many pixels it holds (13000 x 13000 at 16 bits: 328 KB)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    row = bytes(1 + width * bits // 8)  # the filter byte, then the samples
    packer = zlib.compressobj(9)
    data = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, bits, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return path
