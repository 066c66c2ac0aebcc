"""Files: written so that a crash never leaves half of one; named by a path or by a prefix."""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: The names `atomic_write` gives its temporary files: ".NAME.XXXXXXXX.tmp" (mkstemp's 8 characters).
_TEMPORARY = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")
# mkstemp makes private files (0600); the renamed file should get the mode any new file gets. Read once,
# at import, before any thread runs: umask can only be read by setting it.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def atomic_write(path: Path, write: Callable[[Path], Any]) -> None:
    """Call write(temporary_path), fsync it, then rename it over `path`: readers see the old file or the
    new one, never a partial one. A process killed while writing leaves the temporary file behind
    (see `unfinished_writes`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)
    except (AttributeError, OSError):  # Windows, or a filesystem without modes: keep mkstemp's
        pass
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
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


def unfinished_writes(folder: Path) -> list[Path]:
    """The temporary files that `atomic_write` calls in `folder` left behind when killed (kill -9, power
    loss). Only safe to delete while no process can be writing there."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if _TEMPORARY.match(p.name) and p.is_file())


def write_json(data: Any, path: Path) -> Path:
    """Write `data` as indented JSON (atomically); values JSON does not know are written as text."""
    path = Path(path)
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2, default=str) + "\n"))
    return path


def path_exists(path: str | Path) -> bool:
    """Whether `path` is a file or folder, or the prefix of a TF checkpoint (`PATH.index` and its shards),
    which names no file of its own."""
    return Path(path).exists() or Path(f"{path}.index").is_file()
