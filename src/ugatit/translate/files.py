"""Translating image files and folders into an output folder, and where each output goes.

Output layout of `translate_paths` / `translate_folder` in the output folder OUT:

- ``OUT/REL.png``: the translation of input ``REL.ext`` (sub-folders of a folder input kept; always PNG,
  lossless, whatever the input format). Inputs whose names differ only in the extension (``a.jpg`` and
  ``a.png``) keep it in the name (``a.jpg.png``, ``a.png.png``).
- ``OUT/REL_attention.png`` (with ``TranslateOptions(attention=True)``): the generator's attention heatmap, upsampled to
  the image size, jet-coloured and blended over the input (none for a generator without CAM).
- ``OUT/REL_attention_global_D.png``, ``OUT/REL_attention_local_D.png`` (with ``attention=True`` and a
  model loaded with discriminators that have CAM): the attention heatmaps of the target domain's global
  and local discriminators on the translation, blended over it (the paper's Figure 2 (c)-(d)).
- ``OUT/.thumbnails/REL.jpg``: small copies of the inputs, so that ``index.html`` still shows them after
  the folder is moved or shared. The folder is hidden so that `find_images` (and so ``ugatit eval
  --fake OUT``) sees only the translations (and overlays, when asked for).
- ``OUT/index.html``: input, output and attention side by side, by relative links; skipped files with
  the reason.

With ``face_crop=True`` each input is first cut to the square around its largest face (see `faces`);
the translation and overlay are then of that square, and the thumbnail shows the whole input with the
face box and the square drawn on it. An input without a face is translated whole, and its `Result` says so.
With ``paste_back=True`` as well, the translated square (and its overlay) is blended back into the whole
input (see `faces.paste_back`), so each output has its input's size and, outside the square, its pixels.

Inputs are never overwritten: the output folder may not be the input folder or inside it, and no output
may land on an input file.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath

from PIL import Image

from ..data.images import find_images
from ..data.loader import sized_batches
from ..data.sources import FileSource
from ..domains import Direction
from ..errors import UserError
from ..nn.model import UGATIT
from ..utils.console import progress_bar
from ..utils.files import atomic_write, create_exclusive, reported_write
from .faces import FaceCrop, FaceCropSource, check_face_detector, paste_back
from .images import (
    DISCRIMINATOR_SCALES,
    TranslatedImage,
    _check_batch_size,
    judges_attention,
    resolve_size,
    translate_batch,
)
from .page import Result, write_index_html

THUMBNAIL_DIR = ".thumbnails"
ATTENTION_SUFFIX = "_attention"
THUMBNAIL_SIDE = 256  # longest side of the input copies shown in index.html


#: Called with (path, reason) for each input file that cannot be translated.
SkipCallback = Callable[[Path, str], None]


@dataclass(frozen=True)
class TranslateOptions:
    """What `translate_paths` and `translate_folder` make of each input, checked once when made:
    `attention` overlays too, `batch_size` images per forward pass, `size` (light models: the side to
    run at instead of the trained size), `face_crop` and `paste_back` (see the module docstring)."""

    attention: bool = False
    batch_size: int = 8
    size: int | None = None
    face_crop: bool = False
    paste_back: bool = False

    def __post_init__(self) -> None:
        _check_batch_size(self.batch_size)
        if self.paste_back and not self.face_crop:
            raise UserError(
                "`paste_back=True` puts the translated face crop back into the photo: it needs `face_crop=True`"
            )


#: The translation alone, 8 at a time, at the trained size.
PLAIN = TranslateOptions()


@dataclass
class _Plan:
    """Where one input's files go."""

    source: Path
    name: PurePath
    output: Path
    attention: Path | None
    judged: dict[str, Path]
    thumbnail: Path | None


def translate_paths(
    model: UGATIT,
    paths: Sequence[str | os.PathLike[str]],
    output_dir: str | os.PathLike[str],
    direction: Direction = "a2b",
    options: TranslateOptions = PLAIN,
    *,
    root: str | os.PathLike[str] | None = None,
    thumbnails: bool = False,
    progress: bool = False,
    on_skip: SkipCallback | None = None,
) -> list[Result]:
    """Translate image files into `output_dir` (layout: see the module docstring); one `Result` each.

    Outputs are named after the paths relative to `root` (sub-folders kept), or after the file names
    when `root` is None. `thumbnails` also writes the small input copies that `write_index_html` shows
    (without them, the page links to the input files themselves). Files that cannot be decoded are
    skipped, reported through `on_skip(path, reason)` and returned with their `error`; a file that
    cannot be written raises `UserError`, as does an output that would land on an input. `progress`
    shows a tqdm bar on stderr. `options` says what is made of each input (see `TranslateOptions`).
    """
    side = resolve_size(model, options.size)
    if options.face_crop:
        check_face_detector()
    output_dir = Path(output_dir)
    judge = options.attention and judges_attention(model)
    plans = _plan_outputs([Path(p) for p in paths], output_dir, root, options.attention, thumbnails, judge)
    source = FileSource([p.source for p in plans], label="input files")
    faces = FaceCropSource(source) if options.face_crop else None
    check_output_dir(output_dir)  # made just before the first output: translating nothing leaves no folder
    # Filled by input position: a skipped file is known before the rest of its batch is translated.
    results: list[Result | None] = [None] * len(plans)
    made = False
    batches = sized_batches(
        faces or source, side, batch_size=options.batch_size, keep_images=True, on_bad_image=lambda name, reason: None
    )
    with progress_bar(len(plans), "translating", "img", enabled=progress and len(plans) > 1, leave=False) as bar:
        for batch in batches:
            for i, _, reason in batch.skipped:
                results[i] = Result(plans[i].source, plans[i].name.as_posix(), error=reason)
                if on_skip is not None:
                    on_skip(plans[i].source, reason)
            if len(batch):
                if not made:
                    _make_output_dir(output_dir)
                    made = True
                for i, item in zip(batch.indices, translate_batch(model, batch, direction, discriminators=judge)):
                    results[i] = _write_outputs(plans[i], item, faces.take(i) if faces else None, options.paste_back)
            bar.update(len(batch) + len(batch.skipped))
    return [r for r in results if r is not None]


def translate_folder(
    model: UGATIT,
    input_path: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    direction: Direction = "a2b",
    options: TranslateOptions = PLAIN,
    *,
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
        model,
        paths,
        output_dir,
        direction,
        options,
        root=root,
        thumbnails=index,
        progress=progress,
        on_skip=on_skip,
    )
    if index and any(r.ok for r in results):
        side = resolve_size(model, options.size)
        about = [
            f"Input: {input_path}. Direction: {direction}. Each image was resized to {side}x{side} px "
            "(bilinear), translated, and resized back to its own size (bicubic).",
            *(
                [
                    "Face crop: each input was cut to a square around its largest face (boxes drawn on the "
                    "inputs), or translated whole where no face was found."
                ]
                if options.face_crop
                else []
            ),
            *(
                [
                    "Paste-back: each translated square was blended back into its whole input (a feathered "
                    "band inside the square's edge); outside the square the output is the input."
                ]
                if options.paste_back
                else []
            ),
            *(attention_notes(model, direction) if options.attention else []),
            *notes,
        ]
        write_index_html(results, output_dir, title=title or f"ugatit translate ({direction})", notes=about)
    return results


def attention_notes(model: UGATIT, direction: Direction) -> list[str]:
    """What the attention columns of the index show, and why one is missing."""
    from ..config import ablation_name
    from ..domains import GENERATOR_OF, source_and_target

    target = source_and_target(direction)[1]
    notes = []
    if model.config.g_cam:
        notes.append(
            f"Attention: where {GENERATOR_OF[direction]} looked, the heatmap of its CAM attention over the input "
            "(the paper's Figure 2 (b))."
        )
    else:
        notes.append(f"Attention: none, this model's generators have no CAM (ablation {ablation_name(model.config)}).")
    if judges_attention(model):
        notes.append(
            f"Global and local D attention: where the target domain's discriminators, disG{target} (global) and "
            f"disL{target} (local), looked on the translation, the heatmaps of their CAM attention over it "
            "(the paper's Figure 2 (c)-(d))."
        )
    elif model.has_discriminators:
        notes.append("Discriminators' attention: none, this model's discriminators have no CAM.")
    else:
        notes.append(
            "Discriminators' attention: not shown, the model was loaded without discriminators (an export or "
            "a converted file holds only the generators; a training checkpoint or a run folder has them)."
        )
    return notes


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
                f"output folder {output_dir} is the input folder or inside it: choose another output folder "
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
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        # A probe write: os.access is not the whole story (read-only mounts, ACLs, full disks).
        probe = output_dir / f".ugatit-write-test-{os.getpid()}"
        probe.unlink(missing_ok=True)  # left by a killed process of the same number
        create_exclusive(probe)
        probe.unlink()
    except OSError as exc:
        raise UserError(f"cannot write to output folder {output_dir}: {exc.strerror or exc}") from None


def _plan_outputs(
    paths: list[Path],
    output_dir: Path,
    root: str | os.PathLike[str] | None,
    attention: bool,
    thumbnails: bool,
    judged: bool = False,
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
    judged_overlays = [
        {
            scale: _claim(taken, _numbered(out.with_name(f"{out.stem}{ATTENTION_SUFFIX}_{scale}_D.png")))
            for scale in (DISCRIMINATOR_SCALES if judged else ())
        }
        for out in outputs
    ]
    plans = [
        _Plan(
            source=path,
            name=name,
            output=output_dir / out,
            attention=output_dir / overlay if overlay is not None else None,
            judged={scale: output_dir / p for scale, p in judged_paths.items()},
            # Unique because translation names are: all end in .png, and only the suffix changes.
            thumbnail=output_dir / THUMBNAIL_DIR / out.with_suffix(".jpg") if thumbnails else None,
        )
        for path, name, out, overlay, judged_paths in zip(paths, names, outputs, overlays, judged_overlays)
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
        for target in (plan.output, plan.attention, plan.thumbnail, *plan.judged.values()):
            if target is not None and target.resolve() in inputs:
                source = inputs[target.resolve()]
                raise UserError(f"writing {target} would overwrite the input {source}: choose another output folder")


def _write_outputs(plan: _Plan, item: TranslatedImage, crop: FaceCrop | None = None, pasted: bool = False) -> Result:
    output = item.image
    overlay = item.attention_overlay() if plan.attention is not None and item.heatmap is not None else None
    if pasted and crop is not None and crop.crop is not None:
        output = paste_back(crop.source, crop.crop, output)
        overlay = paste_back(crop.source, crop.crop, overlay) if overlay is not None else None
    result = Result(plan.source, plan.name.as_posix(), size=output.size)
    if item.cam_logit is not None:
        result.cam_logit = (float(item.cam_logit[0]), float(item.cam_logit[1]))
    if crop is not None:
        result.face, result.face_note = crop.face, crop.describe()
        if pasted and crop.found:
            result.face_note += " and pasted it back into the photo"
    result.output = _save(output, plan.output)
    if overlay is not None:  # a generator without CAM has no map
        result.attention = _save(overlay, plan.attention)
    for scale, path in plan.judged.items():
        result.judged[scale] = _save(item.discriminator_overlay(scale), path)
    if plan.thumbnail is not None:
        # With a face crop, the whole input with its boxes: the crop itself is what the output shows.
        thumb = crop.marked() if crop is not None else item.source.copy()
        thumb.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.BICUBIC)
        result.thumbnail = _save(thumb, plan.thumbnail, quality=90)
    return result


def _save(img: Image.Image, path: Path, **options) -> Path:
    # Whole or not at all (a full disk used to leave a 0-byte PNG); a full disk or a vanished folder
    # fails every later file too: stop with one line.
    image_format = Image.registered_extensions()[path.suffix.lower()]
    with reported_write(path):
        atomic_write(path, lambda tmp: img.save(tmp, format=image_format, **options))
    return path
