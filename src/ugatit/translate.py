"""Translate images with a trained model: in memory, or files and folders to an output folder.

Resize policy (any input size and aspect ratio): each image is resized to the model's square size
(bilinear, the test-time transform the model was evaluated with), translated, and the output is resized
back to the input's own size (bicubic), so an output always has its input's width and height. Non-square
images are therefore squeezed to a square for the generator and stretched back afterwards. A light model
is fully convolutional up to a global pooling, so it can run at any size that is a multiple of 4 and at
least 32 (by default the size it was trained at); a full model's gamma/beta MLP reads the whole
(size/4)^2 attention map, so it runs only at its trained size.

Output layout of `translate_paths` / `translate_folder` in the output folder OUT:

- ``OUT/REL.png``: the translation of input ``REL.ext`` (sub-folders of a folder input kept; always PNG,
  lossless, whatever the input format). Inputs whose names differ only in the extension (``a.jpg`` and
  ``a.png``) keep it in the name (``a.jpg.png``, ``a.png.png``).
- ``OUT/REL_attention.png`` (with ``attention=True``): the generator's attention heatmap, upsampled to
  the image size, jet-coloured and blended over the input.
- ``OUT/.thumbnails/REL.jpg``: small copies of the inputs, so that ``index.html`` still shows them after
  the folder is moved or shared. The folder is hidden so that `find_images` (and so ``ugatit eval
  --fake OUT``) sees only the translations (and overlays, when asked for).
- ``OUT/index.html``: input, output and attention side by side, by relative links; skipped files with
  the reason.

Inputs are never overwritten: the output folder may not be the input folder or inside it, and no output
may land on an input file.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath
from urllib.parse import quote

import numpy as np
import torch
from PIL import Image

from . import report
from .data import BadImageError, eval_transform, find_images, load_rgb, tensor_to_uint8, to_rgb
from .errors import UserError
from .model import UGATIT, Direction

__all__ = [
    "TranslatedImage",
    "Result",
    "resolve_size",
    "translate_images",
    "translate_paths",
    "translate_folder",
    "write_index_html",
    "INDEX_NAME",
    "THUMBNAIL_DIR",
]

INDEX_NAME = "index.html"
THUMBNAIL_DIR = ".thumbnails"
ATTENTION_SUFFIX = "_attention"
THUMBNAIL_SIDE = 256  # longest side of the input copies shown in index.html
OUTPUT_RESAMPLE = Image.Resampling.BICUBIC

#: Called with (path, reason) for each input file that cannot be translated.
SkipCallback = Callable[[Path, str], None]


# --- In memory ---------------------------------------------------------------------------------------------


@dataclass
class TranslatedImage:
    """One translation: the output image, the generator's attention and what it was made from."""

    image: Image.Image  # RGB, at the input's size (or at the model size with restore_size=False)
    heatmap: np.ndarray  # (size/4, size/4) float32: the generator's raw heatmap at the model size
    cam_logit: np.ndarray  # (2,): the auxiliary classifier's gap and gmp logits
    source: Image.Image  # the RGB input it was translated from (the caller's image when already RGB)

    def attention_rgb(self, size: tuple[int, int] | None = None) -> np.ndarray:
        """The heatmap min-max normalised, resized (bilinear) to `size` = (width, height), default the
        input's size, and jet-coloured: uint8 H x W x 3."""
        width, height = size or self.source.size
        return report.heatmap_to_rgb(self.heatmap, (height, width))

    def attention_overlay(self, alpha: float = 0.5) -> Image.Image:
        """The coloured heatmap blended over the input, at the input's size."""
        heat = self.attention_rgb()
        return Image.fromarray(report.overlay(np.asarray(self.source), heat, alpha=alpha))


def resolve_size(model: UGATIT, size: int | None = None) -> int:
    """The square size the model runs at: its trained size, or `size` where the model allows it.

    A light model takes any multiple of 4 that is at least 32; a full model only its trained size, since
    the first layer of its gamma/beta MLP has one input per position of the (size/4)^2 attention map.
    """
    trained = model.config.img_size
    if size is None or size == trained:
        return trained
    if isinstance(size, bool) or not isinstance(size, int):
        raise UserError(f"size must be an integer, got {size!r}")
    if not model.config.light:
        raise UserError(
            f"cannot run this full model at {size} px: it was trained at {trained} px and its gamma/beta MLP "
            f"reads the whole {trained // 4}x{trained // 4} attention map (only light models run at other sizes)"
        )
    if size < 32 or size % 4:
        raise UserError(f"size must be a multiple of 4 and at least 32, got {size}")
    return size


def translate_images(
    model: UGATIT,
    images: Sequence[Image.Image],
    direction: Direction = "a2b",
    *,
    size: int | None = None,
    batch_size: int = 8,
    restore_size: bool = True,
) -> list[TranslatedImage]:
    """Translate PIL images of any mode, size and aspect ratio; returns one `TranslatedImage` each.

    Images are resized to the model size (see `resolve_size`), translated in batches on the model's
    device, and (with `restore_size`) resized back to their own size. A mode that cannot be converted
    to RGB raises `BadImageError`.
    """
    _check_batch_size(batch_size)
    side = resolve_size(model, size)
    rgb = [to_rgb(img) for img in images]
    out: list[TranslatedImage] = []
    for start in range(0, len(rgb), batch_size):
        out += _translate_batch(model, rgb[start : start + batch_size], direction, side, restore_size)
    return out


def _translate_batch(
    model: UGATIT, images: list[Image.Image], direction: Direction, side: int, restore_size: bool = True
) -> list[TranslatedImage]:
    device = next(model.parameters()).device
    batch = torch.stack([eval_transform(img, side) for img in images]).to(device)
    result = model.translate(batch, direction)
    pixels = tensor_to_uint8(result.image)
    heatmaps = result.heatmap[:, 0].float().cpu().numpy()
    logits = result.cam_logit.float().cpu().numpy()
    translated = []
    for source, out, heat, logit in zip(images, pixels, heatmaps, logits):
        output = Image.fromarray(out)
        if restore_size and output.size != source.size:
            output = output.resize(source.size, OUTPUT_RESAMPLE)
        translated.append(TranslatedImage(output, heat, logit, source))
    return translated


def _check_batch_size(batch_size: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise UserError(f"batch size must be an integer >= 1, got {batch_size!r}")


# --- Files -------------------------------------------------------------------------------------------------


@dataclass
class Result:
    """What became of one input file. `error` is None when it was translated."""

    source: Path
    name: str  # the input's path relative to the input folder (its file name for a single file)
    output: Path | None = None
    attention: Path | None = None
    thumbnail: Path | None = None
    size: tuple[int, int] | None = None  # (width, height) of the input, upright
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class _Plan:
    """Where one input's files go."""

    source: Path
    name: PurePath
    output: Path
    attention: Path | None
    thumbnail: Path | None


def translate_paths(
    model: UGATIT,
    paths: Sequence[str | os.PathLike[str]],
    output_dir: str | os.PathLike[str],
    direction: Direction = "a2b",
    *,
    root: str | os.PathLike[str] | None = None,
    attention: bool = False,
    thumbnails: bool = False,
    batch_size: int = 8,
    size: int | None = None,
    progress: bool = False,
    on_skip: SkipCallback | None = None,
) -> list[Result]:
    """Translate image files into `output_dir` (layout: see the module docstring); one `Result` each.

    Outputs are named after the paths relative to `root` (sub-folders kept), or after the file names
    when `root` is None. `thumbnails` also writes the small input copies that `write_index_html` shows
    (without them, the page links to the input files themselves). Files that cannot be decoded are skipped, reported through `on_skip(path,
    reason)` and returned with their `error`; a file that cannot be written raises `UserError`, as does
    an output that would land on an input. `progress` shows a tqdm bar on stderr.
    """
    _check_batch_size(batch_size)
    side = resolve_size(model, size)
    output_dir = Path(output_dir)
    plans = _plan_outputs([Path(p) for p in paths], output_dir, root, attention, thumbnails)
    _make_output_dir(output_dir)
    # Filled by input index: a skipped file is known before the rest of its batch is translated.
    results: list[Result | None] = [None] * len(plans)
    with _progress_bar(len(plans), progress) as bar:
        for chunk in _chunks(list(enumerate(plans)), batch_size):
            decoded: list[tuple[int, Image.Image]] = []
            for i, plan in chunk:
                try:
                    decoded.append((i, load_rgb(plan.source)))
                except BadImageError as exc:
                    results[i] = Result(plan.source, plan.name.as_posix(), error=exc.reason)
                    if on_skip is not None:
                        on_skip(plan.source, exc.reason)
                    bar.update(1)
            if decoded:
                translated = _translate_batch(model, [img for _, img in decoded], direction, side)
                for (i, _), item in zip(decoded, translated):
                    results[i] = _write_outputs(plans[i], item)
                    bar.update(1)
    return [r for r in results if r is not None]


def translate_folder(
    model: UGATIT,
    input_path: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    direction: Direction = "a2b",
    *,
    attention: bool = False,
    batch_size: int = 8,
    size: int | None = None,
    progress: bool = False,
    on_skip: SkipCallback | None = None,
    index: bool = True,
    title: str | None = None,
    notes: Sequence[str] = (),
) -> list[Result]:
    """Translate one image file or every image under a folder (recursively) into `output_dir`, and
    write `output_dir/index.html` (with `index`) when anything was translated.

    Raises `UserError` when the input is missing or holds no image, or when `output_dir` is the input
    folder or inside it (a second run would translate its own outputs).
    """
    input_path = Path(input_path)
    output_dir = Path(output_dir)
    if not input_path.exists():
        raise UserError(f"input not found: {input_path}")
    check_output_dir(output_dir, input_path)
    if input_path.is_dir():
        paths, root = find_images(input_path), input_path
    else:
        paths, root = [input_path], None
    results = translate_paths(
        model, paths, output_dir, direction, root=root, attention=attention, thumbnails=index,
        batch_size=batch_size, size=size, progress=progress, on_skip=on_skip,
    )  # fmt: skip
    if index and any(r.ok for r in results):
        side = resolve_size(model, size)
        about = [
            f"Input: {input_path}. Direction: {direction}. Each image was resized to {side}x{side} px "
            "(bilinear), translated, and resized back to its own size (bicubic).",
            *notes,
        ]
        write_index_html(results, output_dir, title=title or f"ugatit translate ({direction})", notes=about)
    return results


def check_output_dir(output_dir: Path, input_path: Path | None = None) -> None:
    """Fail early, before a model is loaded, on an output folder that cannot be used: an existing file,
    a path under a file, a read-only parent, the input folder or a folder inside it."""
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise UserError(f"output {output_dir} exists and is not a folder")
    if input_path is not None and Path(input_path).is_dir():
        inp, out = Path(input_path).resolve(), output_dir.resolve()
        if out == inp or inp in out.parents:
            raise UserError(
                f"output folder {output_dir} is the input folder or inside it: choose another --output "
                "(inputs are never overwritten, and a second run would translate the outputs)"
            )
    existing = output_dir
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise UserError(f"cannot create output folder {output_dir}: {existing} is a file")
    if existing.is_dir() and not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"cannot write to output folder {output_dir}: {existing} is not writable")


def _make_output_dir(output_dir: Path) -> None:
    check_output_dir(output_dir)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        # A probe write: os.access is not the whole story (read-only mounts, ACLs, full disks).
        probe = output_dir / f".ugatit-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"cannot write to output folder {output_dir}: {exc.strerror or exc}") from None


def _plan_outputs(
    paths: list[Path], output_dir: Path, root: str | os.PathLike[str] | None, attention: bool, thumbnails: bool
) -> list[_Plan]:
    if not paths:
        raise UserError("no input images given")
    names = [_relative_name(p, root) for p in paths]
    taken: set[str] = set()
    outputs = [_claim(taken, cands) for cands in _translation_candidates(names)]
    overlays = [
        _claim(taken, _numbered(out.with_name(out.stem + ATTENTION_SUFFIX + ".png"))) if attention else None
        for out in outputs
    ]
    plans = [
        _Plan(
            source=path,
            name=name,
            output=output_dir / out,
            attention=output_dir / overlay if overlay is not None else None,
            # Unique because translation names are: all end in .png, and only the suffix changes.
            thumbnail=output_dir / THUMBNAIL_DIR / out.with_suffix(".jpg") if thumbnails else None,
        )
        for path, name, out, overlay in zip(paths, names, outputs, overlays)
    ]
    _refuse_overwriting_inputs(plans)
    return plans


def _relative_name(path: Path, root: str | os.PathLike[str] | None) -> PurePath:
    if root is not None:
        try:
            return PurePath(path.relative_to(root))
        except ValueError:
            pass
    return PurePath(path.name)


def _translation_candidates(names: list[PurePath]) -> Iterator[Iterator[PurePath]]:
    """For each input, its output names in order of preference: REL.png, then REL.ext.png when two
    inputs differ only in the extension (both get the longer name, so neither depends on the order),
    then numbered names."""
    primary = [name.with_suffix(".png") for name in names]
    counts = Counter(_key(p) for p in primary)
    for name, first in zip(names, primary):
        preferred = first if counts[_key(first)] == 1 else name.with_name(name.name + ".png")
        yield _numbered(preferred)


def _numbered(name: PurePath) -> Iterator[PurePath]:
    yield name
    n = 2
    while True:
        yield name.with_name(f"{name.stem}-{n}{name.suffix}")
        n += 1


def _claim(taken: set[str], candidates: Iterator[PurePath]) -> PurePath:
    for candidate in candidates:
        if _key(candidate) not in taken:
            taken.add(_key(candidate))
            return candidate
    raise AssertionError("unreachable: candidates are endless")


def _key(name: PurePath) -> str:
    # Case-insensitive: on macOS and Windows A.png and a.png are the same file.
    return name.as_posix().lower()


def _refuse_overwriting_inputs(plans: list[_Plan]) -> None:
    inputs = {p.source.resolve(): p.source for p in plans}
    for plan in plans:
        for target in (plan.output, plan.attention, plan.thumbnail):
            if target is not None and target.resolve() in inputs:
                source = inputs[target.resolve()]
                raise UserError(f"writing {target} would overwrite the input {source}: choose another output folder")


def _write_outputs(plan: _Plan, item: TranslatedImage) -> Result:
    result = Result(plan.source, plan.name.as_posix(), size=item.source.size)
    result.output = _save(item.image, plan.output)
    if plan.attention is not None:
        result.attention = _save(item.attention_overlay(), plan.attention)
    if plan.thumbnail is not None:
        thumb = item.source.copy()
        thumb.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.BICUBIC)
        result.thumbnail = _save(thumb, plan.thumbnail, quality=90)
    return result


def _save(img: Image.Image, path: Path, **options) -> Path:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        img.save(path, **options)
    except OSError as exc:
        # A full disk or a vanished folder fails every later file too: stop with one line.
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _progress_bar(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="img", desc="translating", file=sys.stderr, disable=not enabled, leave=False)


# --- The index page ----------------------------------------------------------------------------------------


def write_index_html(
    results: Sequence[Result],
    output_dir: str | os.PathLike[str],
    *,
    title: str = "ugatit translate",
    notes: Sequence[str] = (),
    width: int = 256,
) -> Path:
    """Write `output_dir/index.html`: a table of input, output and attention (when made) per image,
    each shown in a `width`-pixel square and linked to the file, by paths relative to the page (the
    input's thumbnail, or the input file itself when there is none); then the skipped files with their
    reasons. Returns its path."""
    output_dir = Path(output_dir)
    done = [r for r in results if r.ok]
    skipped = [r for r in results if not r.ok]
    with_attention = any(r.attention is not None for r in done)
    rows = []
    for r in done:
        row: dict[str, object] = {"file": r.name}
        row["input"] = _image_cell(r.thumbnail or r.source, output_dir, f"input {r.name}", width, r.size)
        row["output"] = _image_cell(r.output, output_dir, f"translation of {r.name}", width, r.size)
        if with_attention:
            row["attention"] = _image_cell(r.attention, output_dir, f"attention for {r.name}", width, r.size)
        if r.size is not None:
            row["size"] = f"{r.size[0]}x{r.size[1]}"
        rows.append(row)
    summary = f"{len(done)} translated" + (f", {len(skipped)} skipped" if skipped else "") + "."
    sections: list[tuple[str, object]] = [("", [*notes, summary]), ("Images", report.table(rows))]
    if skipped:
        sections.append(("Skipped", report.table([{"file": str(r.source), "reason": r.error} for r in skipped])))
    page = output_dir / INDEX_NAME
    try:
        page.write_text(report.html_page(title, sections), encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot write {page}: {exc.strerror or exc}") from None
    return page


def _image_cell(path: Path | None, output_dir: Path, alt: str, box: int, size: tuple[int, int] | None) -> str:
    if path is None:
        return ""
    try:
        relative = os.path.relpath(path, output_dir)
    except ValueError:  # another drive on Windows: no relative path exists
        return ""
    href = report.escape(quote(relative.replace(os.sep, "/"), safe="/"))
    # A fixed square box with object-fit keeps the columns aligned whatever the aspect ratio. Small
    # images are scaled up crisply (the page's default), large ones scaled down smoothly, since
    # nearest-neighbour reduction aliases. Lazy loading keeps a page of thousands of rows responsive.
    rendering = "pixelated" if size is not None and max(size) < box else "auto"
    style = f"width:{box}px;height:{box}px;object-fit:contain;image-rendering:{rendering}"
    img = f'<img loading="lazy" src="{href}" alt="{report.escape(alt)}" style="{style}">'
    return report.Markup(f'<a href="{href}">{img}</a>')
