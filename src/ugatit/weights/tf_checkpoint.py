"""Reading a TensorFlow checkpoint (the "V2" tensor bundle that `tf.train.Saver` writes) without TensorFlow.

A checkpoint `PREFIX` is `PREFIX.index` plus data shards `PREFIX.data-00000-of-0000N`. The index is a
LevelDB table ("SSTable"): data blocks of prefix-compressed key/value entries, an index block pointing
at them, and a 48-byte footer ending in a magic number; every block carries a one-byte compression type
and a masked CRC-32C. Its keys are tensor names (the empty key holds the `BundleHeaderProto`), its values
`BundleEntryProto` messages: dtype, shape, shard, offset, size, CRC-32C of the tensor's bytes. The
protobufs are decoded by hand (a few varint fields), so no TensorFlow or protobuf package is needed.

Checked here: the footer's magic number, every block's type (uncompressed; TF writes bundles that way)
and checksum, each tensor's shard, extent and checksum. Tensors are read on demand, so the Adam slots
of a training checkpoint (two thirds of it) are never loaded. Any problem is a `UserError` naming the file.
"""

from __future__ import annotations

import math
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..utils.crc32c import crc32c, unmask
from ..utils.files import is_regular_file, open_regular, read_regular

TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48
BLOCK_TRAILER_SIZE = 5  # compression type + masked CRC-32C

#: TF DataType enum -> numpy dtype (the numeric ones a model can hold; DT_STRING and others are refused).
DTYPES = {
    1: "f4",
    2: "f8",
    3: "i4",
    4: "u1",
    5: "i2",
    6: "i1",
    9: "i8",
    10: "?",
    17: "u2",
    19: "f2",
    22: "u4",
    23: "u8",
}
DATA_SHARD = re.compile(r"^(?P<prefix>.+)\.data-\d{5}-of-\d{5}$")
#: The largest dimension and rank a tensor may have here: TF's own limits are larger, but no tensor of
#: a U-GAT-IT checkpoint comes near (its largest dimension is a full model's 1,048,576 MLP inputs).
MAX_DIM = 2**31 - 1
MAX_RANK = 8


@dataclass(frozen=True)
class TensorEntry:
    name: str
    dtype: int
    shape: tuple[int, ...]
    shard: int
    offset: int
    size: int
    crc: int | None
    sliced: bool


class TFCheckpoint:
    """The tensors of one checkpoint prefix: `names`, `shape(name)`, `read(name)` (a numpy array)."""

    def __init__(self, prefix: str | Path):
        self.prefix = Path(prefix)
        self.index_path = Path(f"{self.prefix}.index")
        header, self.entries = _read_index(self.index_path)
        self.num_shards = header.get(1, 1)
        self.byte_order = ">" if header.get(2, 0) == 1 else "<"
        for entry in self.entries.values():
            if not 0 <= entry.shard < self.num_shards:
                raise UserError(
                    f"{self.index_path}: tensor {entry.name} names shard {entry.shard} of {self.num_shards}"
                )
            if len(entry.shape) > MAX_RANK or any(not 0 <= d <= MAX_DIM for d in entry.shape):
                raise UserError(
                    f"TF checkpoint index {self.index_path} is corrupted: tensor {entry.name} has shape "
                    f"{list(entry.shape)}"
                )

    @property
    def names(self) -> list[str]:
        return list(self.entries)

    def shape(self, name: str) -> tuple[int, ...]:
        return self.entries[name].shape

    def shard_path(self, shard: int) -> Path:
        return Path(f"{self.prefix}.data-{shard:05d}-of-{self.num_shards:05d}")

    def check_shards(self) -> None:
        """Fail early, naming the file, when a data shard is missing or shorter than the index says."""
        ends: dict[int, int] = {}
        for entry in self.entries.values():
            ends[entry.shard] = max(ends.get(entry.shard, 0), entry.offset + entry.size)
        for shard, end in sorted(ends.items()):
            path = self.shard_path(shard)
            if not is_regular_file(path):
                what = "missing" if not path.exists() else "not a regular file"
                raise UserError(f"TF checkpoint data shard {what}: {path} (the index {self.index_path.name} needs it)")
            if path.stat().st_size < end:
                raise UserError(
                    f"TF checkpoint data shard truncated: {path} has {path.stat().st_size} bytes, the index needs {end}"
                )

    def read(self, name: str) -> np.ndarray:
        entry = self.entries[name]
        if entry.sliced:
            raise UserError(f"{self.index_path}: tensor {name} is partitioned into slices, which is not supported")
        if entry.dtype not in DTYPES:
            raise UserError(f"{self.index_path}: tensor {name} has TF dtype {entry.dtype}, not a numeric one")
        dtype = np.dtype(self.byte_order + DTYPES[entry.dtype])
        count = math.prod(entry.shape)  # Python's integers: no overflow
        if count == 0:
            raise UserError(f"{self.index_path}: tensor {name} is empty (shape {list(entry.shape)})")
        if count * dtype.itemsize != entry.size:
            raise UserError(f"{self.index_path}: tensor {name} has {entry.size} bytes for shape {list(entry.shape)}")
        path = self.shard_path(entry.shard)
        try:
            with open_regular(path) as f:
                f.seek(entry.offset)
                data = f.read(entry.size)
        except OSError as exc:
            raise UserError(f"cannot read TF checkpoint data {path}: {exc.strerror or exc}") from None
        if len(data) != entry.size:
            raise UserError(f"TF checkpoint data shard truncated: {path} ends inside tensor {name}")
        if entry.crc is not None and crc32c(data) != unmask(entry.crc):
            raise UserError(f"TF checkpoint data corrupted: tensor {name} in {path} fails its checksum")
        return np.frombuffer(data, dtype=dtype).reshape(entry.shape).astype(dtype.newbyteorder("="))


def find_prefix(path: str | Path) -> Path | None:
    """The checkpoint prefix that `path` names, or None if it names no TF checkpoint: a prefix, its
    `.index` or a `.data-*` shard, or a folder holding one checkpoint (or a `checkpoint` state file
    naming the one to use, as `tf.train.Saver` keeps it)."""
    path = Path(path)
    if path.is_dir():
        state = path / "checkpoint"
        if state.is_file():
            found = re.search(r'^model_checkpoint_path:\s*"(.*)"\s*$', _text(state), re.M)
            if found:
                # TF 1 wrote the path as given to Saver.save (relative to the trainer's working folder,
                # or absolute on the trainer's machine), so the file name inside this folder counts too.
                named = Path(found.group(1))
                for candidate in (named if named.is_absolute() else path / named, path / named.name):
                    if is_regular_file(f"{candidate}.index"):
                        return candidate
        indexes = sorted(p for p in path.glob("*.index") if is_regular_file(p))  # not a FIFO: it would hang
        if len(indexes) > 1:
            names = ", ".join(p.name for p in indexes[:4])
            raise UserError(f"{path} holds several TF checkpoints ({names}): give the prefix of one")
        return indexes[0].with_suffix("") if indexes else None
    if path.suffix == ".index":
        return path.with_suffix("")
    shard = DATA_SHARD.match(path.name)
    if shard:
        return path.with_name(shard.group("prefix"))
    return path if is_regular_file(f"{path}.index") else None


def _text(path: Path) -> str:
    try:
        return read_regular(path).decode(errors="replace")
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None


# --- The index: an SSTable of BundleEntryProto ------------------------------------------------------------


def _read_index(path: Path) -> tuple[dict[int, int], dict[str, TensorEntry]]:
    try:
        data = read_regular(path)
    except FileNotFoundError:
        raise UserError(f"TF checkpoint index not found: {path}") from None
    except OSError as exc:
        raise UserError(f"cannot read TF checkpoint index {path}: {exc.strerror or exc}") from None
    try:
        return _parse_index(data, path)
    except (IndexError, ValueError, struct.error) as exc:  # a damaged varint or block
        raise UserError(f"TF checkpoint index {path} is corrupted ({exc})") from None


def _parse_index(data: bytes, path: Path) -> tuple[dict[int, int], dict[str, TensorEntry]]:
    if len(data) < FOOTER_SIZE or struct.unpack("<Q", data[-8:])[0] != TABLE_MAGIC:
        raise UserError(f"{path} is not a TF checkpoint index, or it is truncated (no table footer)")
    footer = data[-FOOTER_SIZE:]
    _meta_offset, pos = _varint(footer, 0)  # the meta-index block is empty in a bundle
    _meta_size, pos = _varint(footer, pos)
    index_offset, pos = _varint(footer, pos)
    index_size, pos = _varint(footer, pos)
    header: dict[int, int] | None = None
    entries: dict[str, TensorEntry] = {}
    for _, handle in _block_entries(_block(data, index_offset, index_size, path)):
        offset, pos = _varint(handle, 0)
        size, _ = _varint(handle, pos)
        for key, value in _block_entries(_block(data, offset, size, path)):
            name = key.decode("utf-8", errors="replace")
            if name == "":
                header = {field: v for field, _, v in _fields(value) if isinstance(v, int)}
            else:
                entries[name] = _entry(name, value)
    if header is None:
        raise UserError(f"{path} has no bundle header: not a TF V2 checkpoint index")
    return header, entries


def _block(data: bytes, offset: int, size: int, path: Path) -> bytes:
    end = offset + size
    if end + BLOCK_TRAILER_SIZE > len(data) - FOOTER_SIZE:
        raise UserError(f"TF checkpoint index {path} is truncated (a block runs past its end)")
    block, kind = data[offset:end], data[end]
    (stored,) = struct.unpack("<I", data[end + 1 : end + BLOCK_TRAILER_SIZE])
    if crc32c(data[offset : end + 1]) != unmask(stored):
        raise UserError(f"TF checkpoint index {path} is corrupted (a block fails its checksum)")
    if kind != 0:
        what = "snappy" if kind == 1 else f"type {kind}"
        raise UserError(f"TF checkpoint index {path} has {what}-compressed blocks, which this reader does not read")
    return block


def _block_entries(block: bytes):
    """(key, value) of a table block: keys share a prefix with the previous key; the restart array at
    the end (uint32 offsets and their count) is only an accelerator for seeks."""
    (restarts,) = struct.unpack("<I", block[-4:])
    end = len(block) - 4 * (restarts + 1)
    if end < 0:
        raise ValueError("bad restart array")
    key, pos = b"", 0
    while pos < end:
        shared, pos = _varint(block, pos)
        own, pos = _varint(block, pos)
        size, pos = _varint(block, pos)
        if shared > len(key) or pos + own + size > end:
            raise ValueError("entry runs past its block")
        key = key[:shared] + block[pos : pos + own]
        pos += own
        yield key, block[pos : pos + size]
        pos += size


# --- Protobuf wire format -------------------------------------------------------------------------------


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _fields(message: bytes):
    """(field number, wire type, value) of a protobuf message: ints for varint / fixed fields, bytes
    for length-delimited ones."""
    pos = 0
    while pos < len(message):
        tag, pos = _varint(message, pos)
        field, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(message, pos)
        elif wire == 1:
            (value,), pos = struct.unpack_from("<Q", message, pos), pos + 8
        elif wire == 2:
            size, pos = _varint(message, pos)
            value, pos = message[pos : pos + size], pos + size
        elif wire == 5:
            (value,), pos = struct.unpack_from("<I", message, pos), pos + 4
        else:
            raise ValueError(f"protobuf wire type {wire}")
        yield field, wire, value


def _entry(name: str, message: bytes) -> TensorEntry:
    """A `BundleEntryProto`: 1 dtype, 2 shape, 3 shard_id, 4 offset, 5 size, 6 crc32c, 7 slices."""
    values: dict[int, object] = {3: 0, 4: 0, 5: 0}
    sliced = False
    for field, _, value in _fields(message):
        sliced |= field == 7
        values[field] = value
    return TensorEntry(
        name,
        int(values.get(1, 0)),
        _shape(values.get(2, b"")),
        int(values[3]),
        int(values[4]),
        int(values[5]),
        values.get(6),
        sliced,
    )


def _shape(message: bytes) -> tuple[int, ...]:
    """A `TensorShapeProto`: repeated 2 dim { 1 size }, 3 unknown_rank."""
    dims = []
    for field, _, value in _fields(message):
        if field == 3 and value:
            raise ValueError("tensor of unknown rank")
        if field == 2:
            sizes = [v for f, _, v in _fields(value) if f == 1]
            dims.append(sizes[0] if sizes else 0)
    return tuple(dims)
