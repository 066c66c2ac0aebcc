"""CRC-32C (Castagnoli), the checksum of TensorFlow's checkpoint files, in numpy.

Python's zlib has only the IEEE CRC-32. A byte-at-a-time loop in Python would take minutes on the
gigabyte tensors of a full model, so long inputs are cut into equal chunks whose CRCs are computed side
by side (one numpy step per byte position), then combined: with a zero initial register the CRC is
linear over GF(2), and appending n bytes maps a register through a fixed 32 x 32 bit matrix.
"""

from __future__ import annotations

import numpy as np

_POLY = 0x82F63B78  # reflected Castagnoli polynomial


def _byte_table() -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ _POLY if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _byte_table()
_NP_TABLE = np.array(_TABLE, dtype=np.uint32)
_SMALL = 1 << 15  # below this a plain loop is faster than numpy's per-call overhead


# --- Registers as GF(2) linear maps: a map is the list of the images of the 32 unit vectors -----------


def _apply(matrix: list[int], v: int) -> int:
    out, i = 0, 0
    while v:
        if v & 1:
            out ^= matrix[i]
        v >>= 1
        i += 1
    return out


def _compose(a: list[int], b: list[int]) -> list[int]:
    return [_apply(a, col) for col in b]


_ONE_ZERO_BYTE = [_TABLE[(1 << i) & 0xFF] ^ ((1 << i) >> 8) for i in range(32)]


def _zeros_operator(n: int) -> list[int]:
    """The map register -> register after n zero bytes (square and multiply)."""
    result = [1 << i for i in range(32)]
    power = _ONE_ZERO_BYTE
    while n:
        if n & 1:
            result = _compose(power, result)
        n >>= 1
        if n:
            power = _compose(power, power)
    return result


def _apply_many(matrix: list[int], values: np.ndarray) -> np.ndarray:
    """`_apply` on an array, through one 256-entry table per byte of the register."""
    out = np.zeros_like(values)
    byte = np.arange(256, dtype=np.uint32)
    for k in range(4):
        table = np.zeros(256, dtype=np.uint32)
        for bit in range(8):
            table ^= np.where(byte & (1 << bit), np.uint32(matrix[8 * k + bit]), np.uint32(0))
        out ^= table[(values >> np.uint32(8 * k)) & np.uint32(0xFF)]
    return out


# --- The checksum -----------------------------------------------------------------------------------------


def _register(data: bytes | memoryview, start: int = 0) -> int:
    crc = start
    for b in bytes(data):
        crc = _TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc


def _register_from_zero(data: bytes | memoryview) -> int:
    n = len(data)
    if n <= _SMALL:
        return _register(data)
    # Leading zero bytes leave a zero register unchanged, so pad in front to chunks x length, both
    # powers of two, then fold neighbouring chunks pairwise.
    length = 1 << max(8, (n.bit_length() + 1) // 2)
    chunks = 1 << max(0, (-(-n // length) - 1).bit_length())
    padded = np.zeros(chunks * length, dtype=np.uint8)
    padded[chunks * length - n :] = np.frombuffer(data, dtype=np.uint8)
    rows = padded.reshape(chunks, length)
    regs = np.zeros(chunks, dtype=np.uint32)
    for j in range(length):
        regs = _NP_TABLE[(regs ^ rows[:, j]) & 0xFF] ^ (regs >> np.uint32(8))
    while len(regs) > 1:
        regs = _apply_many(_zeros_operator(length), regs[0::2]) ^ regs[1::2]
        length *= 2
    return int(regs[0])


def crc32c(data: bytes | memoryview) -> int:
    """The standard CRC-32C of `data` (initial register and final xor 0xFFFFFFFF)."""
    raw = _register_from_zero(data)
    return raw ^ _apply(_zeros_operator(len(data)), 0xFFFFFFFF) ^ 0xFFFFFFFF


def unmask(masked: int) -> int:
    """LevelDB/TF store `mask(crc)` so that a CRC of data holding CRCs stays well distributed."""
    rot = (masked - 0xA282EAD8) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF
