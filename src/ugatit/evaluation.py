"""Measuring a model on a test split: KID/FID of its translations and, where the task has it, the
error against the ground truth.

`ugatit eval --checkpoint`, the training loop's `--eval-every` and the demo all come through here:
translate each test image of the source domain, then compare the translations with the real images
of the target domain (KID x 100, FID; see docs/metrics.md) and, for a task whose test split renders
the same scene in both domains (the built-in shapes task), with each image's own ground truth
(L1, PSNR, cycle error, and the identity baseline).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from PIL import Image
from torch import nn

from .data.images import find_images, load_rgb, to_rgb
from .data.transforms import eval_transform
from .domains import DIRECTIONS, reverse, source_and_target
from .errors import UserError
from .metrics.features import kid_report, source_features
from .metrics.groundtruth import GroundTruthMeter
from .metrics.kid import DEFAULT_KID, KIDSettings, evaluate_features
from .nn.model import UGATIT
from .translate import translate_images
from .utils.files import atomic_write, reported_write

if TYPE_CHECKING:
    from .demo.truth import ShapesTruth

GROUND_TRUTH_FILE = "ground_truth.json"


# --- The test split on disk ---------------------------------------------------------------------------


class TestSplit:
    """testA/testB of a dataset root, in sorted file order; knows whether the images are paired."""

    __test__ = False  # not a pytest class

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.files = {}
        for domain in ("A", "B"):
            folder = self.root / f"test{domain}"
            if not folder.is_dir():
                raise UserError(f"test split not found: {folder} (expected {self.root}/testA and testB)")
            self.files[domain] = find_images(folder)
        self.paired = (self.root / GROUND_TRUTH_FILE).is_file()
        if self.paired:
            names = {d: [p.relative_to(self.root / f"test{d}") for p in self.files[d]] for d in ("A", "B")}
            if names["A"] != names["B"]:
                raise UserError(
                    f"{self.root / GROUND_TRUTH_FILE} says testA and testB are paired by name, "
                    "but their file names differ"
                )
        self.objects = _scene_truth(self.root / GROUND_TRUTH_FILE) if self.paired else None
        if self.objects is not None and len(self.objects.scenes) != len(self.files["A"]):
            raise UserError(
                f"{self.root / GROUND_TRUTH_FILE} describes {len(self.objects.scenes)} test scenes "
                f"but {self.root / 'testA'} holds {len(self.files['A'])} images"
            )

    def images(self, domain: str) -> list[Image.Image]:
        return [load_rgb(p) for p in self.files[domain]]


def _scene_truth(path: Path) -> ShapesTruth | None:
    """The test scenes a ground_truth.json records (the shapes task, or the morph task's `MorphTruth`,
    which scores alike), for the object metrics."""
    from .demo.morph import TASK as MORPH
    from .demo.morph import MorphTruth
    from .demo.truth import ShapesTruth

    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(info, dict) and info.get("task") == MORPH:
            return MorphTruth.from_info(info)
        return ShapesTruth.from_info(info) if isinstance(info, dict) else None
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise UserError(f"{path} is not a ground-truth description this version can read ({exc!r})") from None


# --- Ground truth ------------------------------------------------------------------------------------


def ground_truth_report(
    model: UGATIT,
    test_a: Sequence[Image.Image],
    test_b: Sequence[Image.Image],
    directions: Sequence[str] = DIRECTIONS,
    *,
    batch_size: int = 16,
    translations: dict[str, list[Image.Image]] | None = None,
    objects: ShapesTruth | None = None,
) -> dict[str, dict]:
    """L1 / PSNR of each translation against its ground truth (test_b[i] is test_a[i] in domain B), the
    cycle reconstruction error, and the identity baseline, per direction. Computed at the model's size.
    `translations` ({direction: images at the model's size}) reuses translations already made. With the
    test scenes (`objects`), also the object metrics of `metrics.objects` and their identity baseline."""
    side = model.config.img_size
    domains = {"A": list(test_a), "B": list(test_b)}
    if len(domains["A"]) != len(domains["B"]):
        raise UserError(f"paired test split has {len(test_a)} A images but {len(test_b)} B images")
    as_batch = lambda images: torch.stack([eval_transform(to_rgb(i), side) for i in images])
    meter = GroundTruthMeter()
    scores = objects.score() if objects is not None else None
    for direction in directions:
        src, tgt = source_and_target(direction)
        back = reverse(direction)
        fakes = (translations or {}).get(direction) or _translations(model, domains[src], direction, batch_size)
        for start in range(0, len(fakes), batch_size):
            sources = domains[src][start : start + batch_size]
            targets = domains[tgt][start : start + batch_size]
            made = fakes[start : start + batch_size]
            cycles = _translations(model, made, back, batch_size)
            batches = [as_batch(images) for images in (sources, made, targets)]
            meter.update(direction, *batches, as_batch(cycles))
            if scores is not None:
                scores.update(direction, start, *batches)
    table = meter.compute()
    for direction, row in (scores.compute() if scores is not None else {}).items():
        table[direction].update(row)
    return table


def _translations(model: UGATIT, images: Sequence[Image.Image], direction: str, batch_size: int) -> list[Image.Image]:
    """Translations at the model's size, as the images a user would get (8-bit)."""
    return [t.image for t in translate_images(model, images, direction, restore_size=False, batch_size=batch_size)]


# --- A whole evaluation --------------------------------------------------------------------------------


def evaluate_model(
    model: UGATIT,
    test_a: Sequence[Image.Image],
    test_b: Sequence[Image.Image],
    *,
    directions: Sequence[str] = DIRECTIONS,
    extractor: nn.Module | None = None,
    paired: bool = False,
    kid: KIDSettings = DEFAULT_KID,
    batch_size: int = 16,
    feature_batch_size: int = 50,
    device: str | torch.device = "cpu",
    resize: str = "tf1",
    extractor_name: str | None = None,
    save_translations: Path | None = None,
    names: dict[str, list[str]] | None = None,
    objects: ShapesTruth | None = None,
) -> dict[str, Any]:
    """Translate the test split and measure it. KID/FID need an `extractor` (KID measured as `kid` says);
    ground-truth metrics need
    `paired` (and the test scenes, `objects`, for the object metrics). With `save_translations`, the
    translations are written as PNG under <dir>/<direction>/."""
    domains = {"A": list(test_a), "B": list(test_b)}
    report: dict[str, Any] = {"directions": {}}
    translations: dict[str, list[Image.Image]] = {}
    for direction in directions:
        src, tgt = source_and_target(direction)
        fakes = translations[direction] = _translations(model, domains[src], direction, batch_size)
        entry: dict[str, Any] = {"source": f"test{src}", "target": f"test{tgt}", "n": len(fakes)}
        if save_translations is not None:
            folder = Path(save_translations) / direction
            stems = (names or {}).get(src) or [f"{i:05d}" for i in range(len(fakes))]
            for stem, img in zip(stems, fakes):
                path = folder / f"{Path(stem).with_suffix('')}.png".replace("/", "_")
                with reported_write(path):
                    atomic_write(path, lambda tmp, img=img: img.save(tmp, format="PNG"))
            entry["translations"] = str(folder)
        if extractor is not None:
            entry.update(
                kid_report(
                    domains[tgt],
                    fakes,
                    extractor,
                    source=domains[src],
                    kid=kid,
                    batch_size=feature_batch_size,
                    device=device,
                    resize=resize,
                    extractor_name=extractor_name,
                )
            )
        report["directions"][direction] = entry
    if paired:
        report["ground_truth"] = ground_truth_report(
            model, test_a, test_b, directions, batch_size=batch_size, translations=translations, objects=objects
        )
    return report


def kid_evaluator(
    test_a: Sequence[Image.Image],
    test_b: Sequence[Image.Image],
    extractor: nn.Module,
    *,
    device: str | torch.device = "cpu",
    protocol: str = "paper",
) -> Callable[[UGATIT, int], dict[str, float]]:
    """The training loop's evaluate hook: KID x 100 of both directions on the test split, and their mean
    as `kid` (lower is better; the best checkpoint is kept by it). Real-image features are computed once."""
    settings = KIDSettings(protocols=(protocol,))
    real = {
        "A": source_features(test_a, extractor, device=device)[0],
        "B": source_features(test_b, extractor, device=device)[0],
    }
    images = {"A": list(test_a), "B": list(test_b)}

    def evaluate(model: UGATIT, step: int) -> dict[str, float]:
        result = {}
        for direction in DIRECTIONS:
            src, tgt = source_and_target(direction)
            fakes = _translations(model, images[src], direction, batch_size=16)
            metrics = evaluate_features(
                real[tgt], source_features(fakes, extractor, device=device)[0], kid=settings, fid=False
            )
            result[f"kid_{direction}"] = next(iter(metrics.values()))["value_x100"]
        result["kid"] = sum(result.values()) / len(DIRECTIONS)
        return result

    return evaluate
