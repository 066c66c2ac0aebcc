"""The index page of a translated folder: input, output and attention side by side, a row per `Result`
(what became of one input file)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from ..utils.files import atomic_write, reported_write
from ..viz.html import Markup, escape, html_page, table
from .faces import Box

INDEX_NAME = "index.html"


@dataclass
class Result:
    """What became of one input file. `error` is None when it was translated."""

    source: Path
    name: str  # the input's path relative to the input folder (its file name for a single file)
    output: Path | None = None
    attention: Path | None = None
    # With attention and discriminators: {"global": path, "local": path}, their attention on the output.
    judged: dict[str, Path] = field(default_factory=dict)
    thumbnail: Path | None = None
    size: tuple[int, int] | None = None  # (width, height) of the output: the input's, upright, or its face crop's
    error: str | None = None
    cam_logit: tuple[float, float] | None = None  # the generator's auxiliary classifier (gap, gmp)
    face: Box | None = None  # with face_crop: the largest face found in the input
    face_note: str | None = None  # with face_crop: what was found and cut out, or that nothing was

    @property
    def ok(self) -> bool:
        return self.error is None


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
    judged = list(dict.fromkeys(scale for r in done for scale in r.judged))
    rows = []
    for r in done:
        row: dict[str, object] = {"file": r.name}
        row["input"] = _image_cell(r.thumbnail or r.source, output_dir, f"input {r.name}", width, r.size)
        row["output"] = _image_cell(r.output, output_dir, f"translation of {r.name}", width, r.size)
        if with_attention:
            row["attention"] = _image_cell(r.attention, output_dir, f"attention for {r.name}", width, r.size)
        for scale in judged:  # the discriminators' attention on the output (see translate.files)
            alt = f"{scale} discriminator attention on the translation of {r.name}"
            row[f"{scale} D attention"] = _image_cell(r.judged.get(scale), output_dir, alt, width, r.size)
        if r.size is not None:
            row["size"] = f"{r.size[0]}x{r.size[1]}"
        if r.face_note is not None:
            row["face"] = r.face_note
        rows.append(row)
    summary = f"{len(done)} translated" + (f", {len(skipped)} skipped" if skipped else "") + "."
    sections: list[tuple[str, object]] = [("", [*notes, summary]), ("Images", table(rows))]
    if skipped:
        sections.append(("Skipped", table([{"file": str(r.source), "reason": r.error} for r in skipped])))
    page = output_dir / INDEX_NAME
    text = html_page(title, sections)
    with reported_write(page):
        atomic_write(page, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return page


def _image_cell(path: Path | None, output_dir: Path, alt: str, box: int, size: tuple[int, int] | None) -> str:
    if path is None:
        return ""
    try:
        relative = os.path.relpath(path, output_dir)
    except ValueError:  # another drive on Windows: no relative path exists
        return ""
    href = escape(quote(relative.replace(os.sep, "/"), safe="/"))
    # A fixed square box with object-fit keeps the columns aligned whatever the aspect ratio. Small
    # images are scaled up crisply (the page's default), large ones scaled down smoothly, since
    # nearest-neighbour reduction aliases. Lazy loading keeps a page of thousands of rows responsive.
    rendering = "pixelated" if size is not None and max(size) < box else "auto"
    style = f"width:{box}px;height:{box}px;object-fit:contain;image-rendering:{rendering}"
    img = f'<img loading="lazy" src="{href}" alt="{escape(alt)}" style="{style}">'
    return Markup(f'<a href="{href}">{img}</a>')
