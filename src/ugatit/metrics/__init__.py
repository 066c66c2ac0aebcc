"""Evaluation metrics: KID (the paper's block protocol and the random-subset protocol), mean KID, FID.

See docs/metrics.md for which protocol reproduces which published table.

- `ugatit.metrics.kid`: estimators on feature matrices (no images, no network).
- `ugatit.metrics.inception`: the FID Inception-v3 in plain PyTorch and where its weights come from.
- `ugatit.metrics.features`: images (folders, files, PIL) -> features -> a JSON-ready KID/FID report.

Names are re-exported lazily, so importing a sibling module such as ``ugatit.metrics.groundtruth``
does not pull in image loading and the Inception code.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "features": (
        "RESIZE_MODES",
        "describe_extractor",
        "extract_features",
        "image_tensor",
        "kid_report",
        "source_features",
    ),
    "inception": (
        "FIDInceptionV3",
        "WeightsInfo",
        "load_fid_inception",
        "locate_weights",
        "resize_bilinear_tf1",
    ),
    "kid": (
        "KIDResult",
        "KIDSettings",
        "evaluate_features",
        "frechet_distance",
        "kid_paper",
        "kid_subsets",
        "mean_kid",
        "mmd2_unbiased",
        "paper_block_sizes",
        "polynomial_kernel",
    ),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # cache: later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
