"""Self-contained HTML pages without a template engine: escaping, images, tables, sections.

HTML is escaped by default: a plain `str` placed in a page is text. Markup made by the helpers here
(`image`, `table`, `viz.plots.svg_line_plot`, ...) is a `Markup`, which is inserted as is; wrap other
trusted markup in `Markup(...)` yourself.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from os import PathLike
from urllib.parse import quote


class Markup(str):
    """A string of trusted HTML/SVG: placed into a page as is instead of being escaped."""


def escape(value: object) -> str:
    """HTML-escape any value's text (quotes too, so the result is safe inside attributes)."""
    if isinstance(value, Markup):
        return str(value)
    return html.escape(str(value), quote=True)


_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def _url(src: str | PathLike) -> str:
    """A relative path as a URL (forward slashes, %-quoted); URLs with a scheme are kept as they are."""
    text = str(src)
    if _SCHEME.match(text) and not re.match(r"^[a-zA-Z]:\\", text):  # but not C:\ paths
        return text
    return quote(text.replace("\\", "/"), safe="/")


def image(src: str | PathLike, alt: str = "", width: int | None = None, title: str | None = None) -> Markup:
    """An <img> referencing `src` (relative to the page); `width` in CSS pixels (nearest-neighbour
    scaling keeps small samples crisp)."""
    attrs = f' src="{escape(_url(src))}" alt="{escape(alt)}"'
    if width is not None:
        attrs += f' width="{int(width)}"'
    if title:
        attrs += f' title="{escape(title)}"'
    return Markup(f"<img{attrs}>")


def figure(src: str | PathLike, caption: str = "", width: int | None = None) -> Markup:
    """An image with a caption underneath."""
    cap = f"<figcaption>{escape(caption)}</figcaption>" if caption else ""
    return Markup(f"<figure>{image(src, alt=caption, width=width)}{cap}</figure>")


def paragraph(text: str) -> Markup:
    return Markup(f"<p>{escape(text)}</p>")


def bullets(items: Iterable[str]) -> Markup:
    """A bulleted list; plain strings are escaped, `Markup` goes in as is."""
    return Markup("<ul>" + "".join(f"<li>{escape(i)}</li>" for i in items) + "</ul>")


def heading(text: str, level: int = 2) -> Markup:
    level = min(max(int(level), 1), 6)
    return Markup(f"<h{level}>{escape(text)}</h{level}>")


def row(items: Iterable[str]) -> Markup:
    """Items side by side, wrapping on narrow screens (e.g. a row of figures)."""
    return Markup('<div class="row">' + "".join(escape(i) for i in items) + "</div>")


def _cell(value: object, float_format: str) -> str:
    if isinstance(value, Markup):
        return str(value)
    if isinstance(value, float):
        return escape(float_format.format(value) if math.isfinite(value) else str(value))
    return escape("" if value is None else value)


def table(
    rows: Sequence[Mapping[str, object]], columns: Sequence[str] | None = None, float_format: str = "{:.4g}"
) -> Markup:
    """A <table> from a list of dicts; columns default to the keys in first-seen order.

    Floats are printed with `float_format`; `Markup` values (e.g. `image(...)`) go in as is, so a
    table can hold thumbnails.
    """
    if columns is None:
        columns = list(dict.fromkeys(k for r in rows for k in r))
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_cell(r.get(c), float_format)}</td>" for c in columns) + "</tr>" for r in rows
    )
    return Markup(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


@dataclass
class Section:
    """A titled part of a page. Items are `Markup` (inserted as is) or plain text (escaped, as <p>)."""

    title: str
    items: list[str] = field(default_factory=list)


_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1200px;
       padding: 0 1em; color: #222; line-height: 1.4; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; border-bottom: 1px solid #ddd; padding-bottom: .2em; }
table { border-collapse: collapse; margin: .5em 0; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: right; vertical-align: middle; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
img { image-rendering: pixelated; max-width: 100%; }
figure { display: inline-block; margin: .3em; text-align: center; }
figcaption { font-size: .85em; color: #555; }
.row { display: flex; flex-wrap: wrap; gap: .5em; align-items: flex-start; }
svg { max-width: 100%; height: auto; }
"""


def html_page(title: str, sections: Iterable[Section | tuple[str, object]]) -> str:
    """A self-contained HTML page (inline CSS; images by relative path) with an <h2> per section.

    A section is a `Section` or a (title, items) tuple, where items is one item or a list of them.
    Plain strings become escaped paragraphs; `Markup` is inserted as is.
    """
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title>",
        f"<style>{_STYLE}</style>",
        "</head>",
        "<body>",
        f"<h1>{escape(title)}</h1>",
    ]
    for section in sections:
        if not isinstance(section, Section):
            name, items = section
            if isinstance(items, str) or not isinstance(items, Iterable):
                items = [items]
            section = Section(str(name), list(items))
        parts.append("<section>")
        if section.title:
            parts.append(heading(section.title, 2))
        for item in section.items:
            parts.append(str(item) if isinstance(item, Markup) else paragraph(str(item)))
        parts.append("</section>")
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)
