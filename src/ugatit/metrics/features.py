"""Images (folders, files or PIL images) -> feature matrices -> the KID / FID report.

A feature extractor is any ``nn.Module`` that maps a float batch (N, 3, H, W) with values in [0, 1]
to features (N, d). Optional attributes it may carry, all read with ``getattr``:

- ``input_size`` (int): images are resized to input_size x input_size here, one at a time, before
  batching, so folders of mixed sizes work. None or absent: images keep their size and only
  same-sized neighbours share a batch.
- ``name`` (str) and ``weights_info`` (`WeightsInfo`): what the report says about the extractor.

The FID Inception (`ugatit.metrics.inception.FIDInceptionV3`) has ``input_size = 299``.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from ..data.loader import image_batches
from ..data.sources import SourceLike, as_source
from ..errors import UserError
from .inception import resize_bilinear_tf1
from .kid import DEFAULT_KID, KIDSettings, evaluate_features

#: How images are brought to the extractor's input size:
#: "tf1": float bilinear like TF1's resize_bilinear (what the TF Inception graph does; torch-fidelity,
#:        torchmetrics); "pil": PIL bilinear on the 8-bit image, rounded back to 8 bits (the U-GAT-IT
#:        authors' scipy.misc.imresize(x, [299, 299])); "none": no resize here.
RESIZE_MODES = ("tf1", "pil", "none")

Progress = Callable[[int, int], None]


def image_tensor(img: Image.Image, size: int | None, resize: str = "tf1") -> Tensor:
    """RGB PIL image -> float32 (3, H, W) in [0, 1], resized to size x size unless size is None."""
    if resize not in RESIZE_MODES:
        raise UserError(f"unknown resize mode {resize!r}: use one of {', '.join(RESIZE_MODES)}")
    if size is not None and resize == "pil" and img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.BILINEAR)
    array = np.asarray(img, dtype=np.uint8)
    x = torch.from_numpy(array.copy()).permute(2, 0, 1).to(torch.float32) / 255.0
    if size is not None and resize == "tf1":
        x = resize_bilinear_tf1(x.unsqueeze(0), (size, size)).squeeze(0)
    return x


def _batches(items: Iterable[Tensor], batch_size: int) -> Iterator[Tensor]:
    """Stack consecutive items into batches of at most batch_size, never mixing image sizes."""
    pending: list[Tensor] = []
    for item in items:
        if pending and (len(pending) == batch_size or item.shape != pending[0].shape):
            yield torch.stack(pending)
            pending = []
        pending.append(item)
    if pending:
        yield torch.stack(pending)


@torch.no_grad()
def extract_features(
    images: Iterable[Tensor],
    extractor: nn.Module,
    *,
    batch_size: int = 50,
    device: str | torch.device = "cpu",
    total: int | None = None,
    progress: Progress | None = None,
) -> Tensor:
    """Features (N, d), float32 on the CPU, of images given one by one as (3, H, W) in [0, 1].

    Order is preserved (the paper protocol depends on it). ``extractor`` must already be on
    ``device`` and is put in eval mode.
    """
    if batch_size < 1:
        raise UserError(f"`batch_size` must be at least 1, got {batch_size}")
    extractor.eval()
    chunks: list[Tensor] = []
    done = 0
    for batch in _batches(images, batch_size):
        out = extractor(batch.to(device))
        if isinstance(out, (tuple, list)):  # e.g. pytorch-fid style modules returning a list
            out = out[0]
        chunks.append(out.reshape(out.shape[0], -1).float().cpu())
        done += batch.shape[0]
        if progress is not None:
            progress(done, total if total is not None else done)
    if not chunks:
        raise UserError("no images to compute features of")
    return torch.cat(chunks)


def source_features(
    images: SourceLike,
    extractor: nn.Module,
    *,
    batch_size: int = 50,
    device: str | torch.device = "cpu",
    resize: str = "tf1",
    progress: Progress | None = None,
) -> tuple[Tensor, list[str]]:
    """Features of a set of images (a folder in sorted file order, file paths or PIL images), and their
    names in that order. An image that cannot be decoded is an error: a metric must not silently
    measure another set than the one it names."""
    if resize not in RESIZE_MODES:
        raise UserError(f"unknown resize mode {resize!r}: use one of {', '.join(RESIZE_MODES)}")
    source = as_source(images)
    transform = partial(image_tensor, size=getattr(extractor, "input_size", None), resize=resize)
    names: list[str] = []

    def tensors() -> Iterator[Tensor]:
        for batch in image_batches(source, transform, batch_size=batch_size, strict=True):
            names.extend(batch.names)
            yield from batch.tensors

    feats = extract_features(
        tensors(), extractor, batch_size=batch_size, device=device, total=len(source), progress=progress
    )
    return feats, names


def describe_extractor(extractor: nn.Module, fallback_name: str | None = None) -> dict[str, Any]:
    """Name and weights identity of an extractor, as the report prints them."""
    info = getattr(extractor, "weights_info", None)
    return {
        "name": getattr(extractor, "name", None) or fallback_name or type(extractor).__name__,
        "input_size": getattr(extractor, "input_size", None),
        "weights_file": getattr(info, "filename", None),
        "weights_sha256": getattr(info, "sha256", None),
    }


def kid_report(
    real: SourceLike,
    fake: SourceLike,
    extractor: nn.Module,
    *,
    source: SourceLike | None = None,
    kid: KIDSettings = DEFAULT_KID,
    batch_size: int = 50,
    device: str | torch.device = "cpu",
    resize: str = "tf1",
    extractor_name: str | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Any]:
    """KID (measured as `kid` says), FID and, given ``source``, the authors' mean KID.

    ``real`` holds real images of the target domain, ``fake`` the translations into it, ``source``
    the real source-domain images the translations were made from; each is a folder, a list of files
    or a list of PIL images. Returns a JSON-ready dict: ``sets`` (counts, and paths for folders),
    ``feature_extractor`` (name, weights file and sha256, resize), ``metrics`` (see
    `ugatit.metrics.kid.evaluate_features`; each entry repeats the extractor identity so that a single
    metric copied elsewhere still says what it was measured with).
    """
    sets_given = {"real": real, "fake": fake, "source": source}
    feats: dict[str, Tensor] = {}
    sets: dict[str, Any] = {}
    for role, images in sets_given.items():
        if images is None:
            continue
        report = (lambda done, total, role=role: progress(role, done, total)) if progress else None
        feats[role], names = source_features(
            images, extractor, batch_size=batch_size, device=device, resize=resize, progress=report
        )
        sets[role] = (
            {"path": str(images), "n": len(names)} if isinstance(images, (str, os.PathLike)) else {"n": len(names)}
        )
    extractor_desc = {**describe_extractor(extractor, extractor_name), "resize": resize}
    metrics = evaluate_features(
        feats["real"],
        feats["fake"],
        source=feats.get("source"),
        kid=kid,
    )
    identity = {
        "feature_extractor": extractor_desc["name"],
        "weights_sha256": extractor_desc["weights_sha256"],
    }
    for entry in metrics.values():
        entry.update(identity)
    return {"sets": sets, "feature_extractor": extractor_desc, "metrics": metrics}


def custom_extractor(spec: str) -> nn.Module:
    """The feature extractor a `feature_extractor="module:callable"` names: a factory returning an
    nn.Module that maps (N, 3, H, W) floats in [0, 1] to (N, d) features. The module is looked for in
    the working directory first, then on the import path, as `python -m` would (the `ugatit` console
    script alone would not see a mymodule.py beside the user)."""
    import importlib

    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise UserError(f"`feature_extractor` must look like module:callable, got {spec!r}")
    with _working_directory_importable():
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise UserError(
                f"`feature_extractor`: cannot import {module_name!r} from the working directory "
                f"or the import path: {exc}"
            ) from None
        factory = getattr(module, attr, None)
        if not callable(factory):
            raise UserError(f"`feature_extractor`: {module_name} has no callable {attr!r}")
        extractor = factory()
    if not isinstance(extractor, nn.Module):
        raise UserError(f"`feature_extractor`: {spec}() returned {type(extractor).__name__}, not an nn.Module")
    return extractor


@contextlib.contextmanager
def _working_directory_importable() -> Iterator[None]:
    cwd = os.getcwd()
    added = cwd not in sys.path and "" not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        yield
    finally:
        if added:
            sys.path.remove(cwd)
