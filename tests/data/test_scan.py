"""The image scan before training: what it calls unreadable, and what it must not."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ugatit.data.scan import check_image, scan_images, scan_sources
from ugatit.data.sources import FileSource, MemorySource
from ugatit.errors import UserError


def encoded(fmt: str, size: tuple[int, int] = (40, 30), **options) -> bytes:
    pixels = np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, fmt, **options)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("scan")
    png, jpeg = encoded("PNG"), encoded("JPEG", quality=90)
    contents = {
        "good.png": png,
        "good.jpg": jpeg,
        "good.bmp": encoded("BMP"),
        "good.webp": encoded("WEBP"),
        "padded.jpg": jpeg + b"\0" * 16,
        "trailing.jpg": jpeg + b"a preview or a video" * 50,  # readable: data after a whole image
        "cut.png": png[: len(png) // 2],
        "cut.jpg": jpeg[: len(jpeg) // 2],
        "zero_size.png": png[:16] + b"\0" * 8 + png[24:],
        "empty.png": b"",
        "text.jpg": b"hello\n",
        "cut.bmp": encoded("BMP")[:200],  # header intact: found only by a full decode
    }
    paths = {}
    for name, data in contents.items():
        paths[name] = folder / name
        paths[name].write_bytes(data)
    return paths


def test_the_quick_check_reads_headers_and_end_markers(files):
    found = {name: check_image(path) for name, path in files.items()}
    readable = {name for name, reason in found.items() if reason is None}
    assert readable == {"good.png", "good.jpg", "good.bmp", "good.webp", "padded.jpg", "trailing.jpg", "cut.bmp"}
    assert "truncated" in found["cut.png"] and "truncated" in found["cut.jpg"]
    assert found["zero_size.png"] == "damaged PNG header"
    assert found["empty.png"] == "the file is empty (0 bytes)"
    assert found["text.jpg"] == "not an image, or a format Pillow cannot read"
    assert check_image(files["cut.bmp"], full=True) is not None
    assert check_image(files["good.bmp"], full=True) is None


def test_scan_keeps_the_order_and_refuses_a_domain_with_nothing_readable(files):
    paths = sorted(files.values())
    result = scan_images(paths, threads=3)
    assert result.checked == len(paths)
    assert [Path(p).name for p, _ in result.unreadable] == sorted(
        ["cut.png", "cut.jpg", "zero_size.png", "empty.png", "text.jpg"]
    )
    assert result.summary().endswith("5 cannot be read")
    with pytest.raises(UserError, match=r"broken: none of its 2 images can be read \(the first, .*cut.jpg"):
        scan_sources([FileSource([files["cut.jpg"], files["empty.png"]], label="broken")])
    in_memory = MemorySource([Image.new("RGB", (4, 4))])
    assert scan_sources([in_memory]).checked == 0  # images in memory need no scan
