"""Files: written so that a crash never leaves half of one; named by a path or by a prefix."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable


def atomic_write(path: Path, write: Callable[[Path], Any]) -> None:
    """Call write(temporary_path), fsync it, then rename it over `path`: readers see the old file or the
    new one, never a partial one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
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


def write_json(data: Any, path: Path) -> Path:
    """Write `data` as indented JSON (atomically); values JSON does not know are written as text."""
    path = Path(path)
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2, default=str) + "\n"))
    return path


def path_exists(path: str | Path) -> bool:
    """Whether `path` is a file or folder, or the prefix of a TF checkpoint (`PATH.index` and its shards),
    which names no file of its own."""
    return Path(path).exists() or Path(f"{path}.index").is_file()
