"""A minimal writer of TF V2 checkpoints (float32 tensors, one shard), to make damaged or foreign ones.

Follows the format the reader documents (ugatit.weights.tf_checkpoint): the same LevelDB table layout,
prefix-compressed keys, masked CRC-32C block trailers, BundleHeaderProto under the empty key.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from ugatit.utils.crc32c import crc32c


def mask(crc: int) -> int:
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def field(number: int, value: int | bytes, fixed32: bool = False) -> bytes:
    if fixed32:
        return varint(number << 3 | 5) + struct.pack("<I", value)
    if isinstance(value, bytes):
        return varint(number << 3 | 2) + varint(len(value)) + value
    return varint(number << 3) + varint(value)


def _block(entries: list[tuple[bytes, bytes]]) -> bytes:
    out, previous = bytearray(), b""
    for key, value in entries:
        shared = 0
        while shared < min(len(key), len(previous)) and key[shared] == previous[shared]:
            shared += 1
        out += varint(shared) + varint(len(key) - shared) + varint(len(value)) + key[shared:] + value
        previous = key
    return bytes(out) + struct.pack("<II", 0, 1)  # one restart point, at 0


def write_checkpoint(
    prefix: Path,
    tensors: dict[str, np.ndarray],
    compression: int = 0,
    per_block: int = 50,
    shapes: dict[str, tuple[int, ...]] | None = None,
) -> Path:
    """`shapes` records other shapes than the tensors' own in the index (a damaged or crafted entry)."""
    data, entries = bytearray(), []
    for name in sorted(tensors):
        raw = np.ascontiguousarray(tensors[name], dtype="<f4").tobytes()
        shape = b"".join(field(2, field(1, d)) for d in (shapes or {}).get(name, tensors[name].shape))
        entry = (
            field(1, 1) + field(2, shape) + field(4, len(data)) + field(5, len(raw)) + field(6, mask(crc32c(raw)), True)
        )
        entries.append((name.encode(), entry))
        data += raw
    Path(f"{prefix}.data-00000-of-00001").write_bytes(bytes(data))
    entries.insert(0, (b"", field(1, 1) + field(3, field(1, 1))))  # num_shards 1, version {producer 1}

    table = bytearray()

    def put(block: bytes) -> bytes:
        handle = varint(len(table)) + varint(len(block))
        kind = bytes([compression])
        table.extend(block + kind + struct.pack("<I", mask(crc32c(block + kind))))
        return handle

    index = [
        (chunk[-1][0], put(_block(chunk)))
        for chunk in (entries[i : i + per_block] for i in range(0, len(entries), per_block))
    ]
    meta = put(_block([]))
    footer = meta + put(_block(index))
    table += footer + b"\0" * (40 - len(footer)) + struct.pack("<Q", 0xDB4775248B80FB57)
    Path(f"{prefix}.index").write_bytes(bytes(table))
    return Path(prefix)
