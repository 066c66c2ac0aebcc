"""A Hugging Face hub cache laid out by hand the way the hub client lays out what it downloads, so that
`hf://` loading can be tested offline (`HF_HUB_OFFLINE=1`, `HF_HUB_CACHE` pointing here).

The layout (huggingface_hub's "Manage the cache" guide, and `file_download.py`): for the model
NAMESPACE/NAME, a folder ``models--NAMESPACE--NAME`` with ``blobs/`` (each file's bytes once, named by
its ETag: the SHA-256 of an LFS file, the git blob SHA-1 of any other), ``snapshots/COMMIT/PATH`` (a
relative symlink into ``blobs/`` for every file of that commit) and ``refs/REVISION`` (the commit hash of a
branch or tag, no newline). `huggingface_hub.scan_cache_dir` reads it back (tests/weights/test_hub.py
checks that it does).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path

#: Files the Hub stores with LFS (its default .gitattributes), named in the cache by their SHA-256.
LFS_SUFFIXES = {".safetensors", ".pt", ".onnx", ".bin", ".pdparams", ".png", ".index"}


def etag(name: str, data: bytes) -> str:
    if Path(name).suffix in LFS_SUFFIXES or ".data-" in name:
        return hashlib.sha256(data).hexdigest()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def add_to_hub_cache(
    cache: Path, repo_id: str, files: Mapping[str, Path | bytes], revisions: tuple[str, ...] = ("main",)
) -> str:
    """Put `files` ({path in the repository: a file or its bytes}) into `cache` as one commit of the
    model `repo_id`, which each of `revisions` (branches or tags) points at. Returns the commit hash."""
    storage = Path(cache) / f"models--{repo_id.replace('/', '--')}"
    contents = {name: (data if isinstance(data, bytes) else Path(data).read_bytes()) for name, data in files.items()}
    commit = hashlib.sha1(b"".join(name.encode() + etag(name, d).encode() for name, d in sorted(contents.items())))
    commit_hash = commit.hexdigest()
    for name, data in contents.items():
        blob = storage / "blobs" / etag(name, data)
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = storage / "snapshots" / commit_hash / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.unlink(missing_ok=True)
        os.symlink(os.path.relpath(blob, link.parent), link)
    for revision in revisions:
        ref = storage / "refs" / revision
        ref.parent.mkdir(parents=True, exist_ok=True)
        ref.write_text(commit_hash)
    return commit_hash


def folder_files(folder: Path) -> dict[str, Path]:
    """Every file under `folder`, by its path relative to it (as a repository would hold them)."""
    return {p.relative_to(folder).as_posix(): p for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def offline_env(cache: Path, home: Path, **extra: str) -> dict[str, str]:
    """The environment of a subprocess that must find models in `cache` only: offline, and no other
    cache (HF_HOME is a fresh folder)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache), "HF_HOME": str(home), **extra}
    env.pop("HF_TOKEN", None)
    return env
