"""Files: written so that a crash or a full disk never leaves half of one, read only when they are
regular files, named by a path or by a prefix."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from ..errors import UserError

#: The names `atomic_write` gives its temporary files: ".NAME.XXXXXXXX.tmp" (mkstemp's 8 characters).
_TEMPORARY = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")
# mkstemp makes private files (0600), and some writers (safetensors) make their own; the renamed file
# should get the mode any new file gets. Read once, at import, before any thread runs: umask can only
# be read by setting it.
_UMASK = os.umask(0o022)
os.umask(_UMASK)
NEW_FILE_MODE = 0o666 & ~_UMASK
#: Not following a link where the platform can say so (Windows cannot; it has no such links by default).
O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def atomic_write(path: Path, write: Callable[[Path], Any]) -> None:
    """Call write(temporary_path), fsync it, then rename it over `path`: readers see the old file or the
    new one, never a partial one. A failed write removes the temporary file and raises `OSError` (also
    for writers that report a full disk in their own exception types: safetensors' Rust writer, ONNX's
    protobuf). A process killed while writing leaves the temporary file behind (see `unfinished_writes`).
    A link at `path` is replaced, never written through."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        try:
            write(Path(tmp))
        except Exception as exc:
            error = os_error_of(exc)
            if error is None or error is exc:
                raise
            raise error from None
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        with contextlib.suppress(AttributeError, OSError):  # Windows, or a filesystem without modes
            os.chmod(tmp, NEW_FILE_MODE)  # after the writer, which may have made a file of its own
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def os_error_of(exc: BaseException) -> OSError | None:
    """The OSError behind a failed write: the exception itself, the one it was raised from, or the one a
    foreign writer names only in its text ("... (os error 28)" from Rust, "[Errno 28]" from C++)."""
    current: BaseException | None = exc
    for _ in range(5):  # the exception and what it was raised from
        if isinstance(current, OSError):
            return current
        if current is None:
            break
        current = current.__cause__
    found = re.search(r"\(os error (\d+)\)|\[Errno (\d+)\]", str(exc))
    if found is None:
        return None
    code = int(found.group(1) or found.group(2))
    return OSError(code, os.strerror(code))


def describe_write_error(error: OSError, folder: Path | None = None) -> str:
    """Why a write failed, in a few words; for a full disk or quota, what is full and how much is free."""
    where = f" holding {folder}" if folder is not None else ""
    if error.errno == errno.ENOSPC:
        what = f"no space left on the device{where}"
    elif error.errno == getattr(errno, "EDQUOT", None):
        what = f"disk quota exceeded on the device{where}"
    elif error.errno == errno.EROFS:
        return f"the device{where} is read-only"
    elif error.errno == errno.EFBIG:
        return "the file is larger than this process may write (ulimit -f) or the filesystem allows"
    else:
        return error.strerror or str(error) or type(error).__name__
    return f"{what} ({free_space(folder)} free)" if folder is not None else what


def free_space(folder: Path) -> str:
    """The free space of the filesystem holding `folder` (or the nearest folder above it that exists)."""
    folder = Path(folder)
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    try:
        return size_text(shutil.disk_usage(folder).free)
    except OSError:
        return "unknown"


def size_text(size: float) -> str:
    units = ("bytes", "KB", "MB", "GB", "TB")
    for unit in units:
        if size < 1024 or unit == units[-1]:
            break
        size /= 1024
    return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"


@contextlib.contextmanager
def reported_write(path: Path) -> Iterator[None]:
    """Turn a failed write of `path` (an OSError, or a foreign writer's error with an errno in it) into a
    one-line `UserError` naming the file and what is full: for commands that write one file, where
    there is no state to save first (export, convert, translate)."""
    try:
        yield
    except UserError:
        raise
    except Exception as exc:
        error = os_error_of(exc)
        if error is None:
            raise
        raise UserError(f"cannot write {path}: {describe_write_error(error, Path(path).parent)}") from None


def unfinished_writes(folder: Path) -> list[Path]:
    """The temporary files that `atomic_write` calls in `folder` left behind when killed (kill -9, power
    loss). Only safe to delete while no process can be writing there."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if _TEMPORARY.match(p.name) and p.is_file())


def write_json(data: Any, path: Path) -> Path:
    """Write `data` as indented JSON (atomically); values JSON does not know are written as text. A
    failed write is a one-line `UserError`."""
    path = Path(path)
    text = json.dumps(data, indent=2, default=str) + "\n"
    with reported_write(path):
        atomic_write(path, lambda tmp: tmp.write_text(text))
    return path


def path_exists(path: str | Path) -> bool:
    """Whether `path` is a file or folder, or the prefix of a TF checkpoint (`PATH.index` and its shards),
    which names no file of its own."""
    return Path(path).exists() or is_regular_file(Path(f"{path}.index"))


# --- Reading ----------------------------------------------------------------------------------------------


class NotARegularFile(OSError):
    """A path that names a FIFO, a socket, a device or a folder where a file was expected: opening a FIFO
    to read blocks until someone writes to it, a device may never end."""

    def __init__(self, path: str | Path, mode: int):
        kind = _KINDS.get(stat.S_IFMT(mode), "not a regular file")
        super().__init__(errno.EINVAL, f"{kind}, not a regular file", str(path))


_KINDS = {
    stat.S_IFIFO: "a named pipe (FIFO)",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFDIR: "a folder",
}


def is_regular_file(path: str | Path) -> bool:
    """Whether `path` is a regular file (after links): what `open_regular` will open."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def open_regular(path: str | Path) -> IO[bytes]:
    """Open `path` for reading in binary, refusing with `NotARegularFile` (an OSError) anything but a
    regular file, without blocking on a FIFO: the check is made on the opened descriptor, so the file
    cannot be swapped between a check and the open."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotARegularFile(path, mode)
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str | Path) -> bytes:
    """The bytes of a regular file (see `open_regular`)."""
    with open_regular(path) as f:
        return f.read()


def create_exclusive(path: Path, data: bytes = b"") -> None:
    """Create `path` anew (O_EXCL, never through a link: an existing file or link is an error) and write
    `data` to it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | O_NOFOLLOW, NEW_FILE_MODE)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
