"""Pictures and pages without plotting libraries: heatmaps, sample grids, SVG charts, HTML.

Used by the training sample grids, the `translate` index pages and the demo's report. Only numpy and
Pillow: no matplotlib, and torch tensors are accepted by duck typing so this module never imports torch
(turn model outputs into uint8 images with `ugatit.data.tensor_to_uint8`).

HTML is escaped by default: a plain `str` placed in a page is text. Markup made by the helpers here
(`image`, `table`, `svg_line_plot`, ...) is a `Markup`, which is inserted as is; wrap other trusted
markup in `Markup(...)` yourself.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from os import PathLike
from urllib.parse import quote

import numpy as np
from PIL import Image

# --------------------------------------------------------------------------------------------------
# Arrays


def to_numpy(array) -> np.ndarray:
    """A numpy array from a numpy array, a PIL image or a torch tensor (detached, moved to the CPU)."""
    if isinstance(array, Image.Image):
        return np.asarray(array)
    if hasattr(array, "detach"):  # torch.Tensor, without importing torch
        return array.detach().float().cpu().numpy()
    return np.asarray(array)


def _size_hw(size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    h, w = size
    return int(h), int(w)


def jet(values: np.ndarray) -> np.ndarray:
    """The classic jet colormap: values in [0, 1] -> uint8 RGB (dark blue, cyan, yellow, dark red).

    Piecewise linear, as MATLAB's: each channel is a trapezoid 1.5 - |4x - c| clipped to [0, 1], with
    c = 3, 2, 1 for red, green, blue.
    """
    x = np.clip(np.asarray(values, dtype=np.float64), 0.0, 1.0)[..., None]
    centres = np.array([3.0, 2.0, 1.0])
    rgb = np.clip(1.5 - np.abs(4.0 * x - centres), 0.0, 1.0)
    return np.rint(rgb * 255.0).astype(np.uint8)


def heatmap_to_rgb(heatmap, size: int | tuple[int, int]) -> np.ndarray:
    """An attention map (H', W') or (1, H', W') -> uint8 H x W x 3 jet colours.

    The map is min-max normalised (a constant map becomes all zeros, i.e. dark blue), resized
    bilinearly to `size` (an int or (H, W)), then coloured.
    """
    array = to_numpy(heatmap).astype(np.float32)
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 2:
        raise ValueError(f"expected a heatmap of shape (H, W) or (1, H, W), got {array.shape}")
    array = np.nan_to_num(array, nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = float(array.min()), float(array.max())
    # Normalise before resizing so bilinear interpolation cannot overshoot [0, 1].
    norm = (array - lo) / (hi - lo) if hi > lo else np.zeros_like(array)
    h, w = _size_hw(size)
    resized = np.asarray(Image.fromarray(norm).resize((w, h), Image.BILINEAR))
    return jet(resized)


def overlay(image_uint8: np.ndarray, heat_rgb: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend a heatmap over an image: (1 - alpha) * image + alpha * heat, uint8 H x W x 3."""
    image = np.asarray(image_uint8)
    heat = np.asarray(heat_rgb)
    if image.shape != heat.shape:
        raise ValueError(f"image {image.shape} and heatmap {heat.shape} differ in shape")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    mixed = (1.0 - alpha) * image.astype(np.float32) + alpha * heat.astype(np.float32)
    return np.rint(mixed).clip(0, 255).astype(np.uint8)


def _as_rgb_uint8(cell) -> np.ndarray:
    array = to_numpy(cell)
    if array.dtype != np.uint8:
        raise ValueError(f"grid cells must be uint8 images, got dtype {array.dtype}")
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ValueError(f"grid cells must be H x W x 3 (or H x W), got shape {array.shape}")
    return array[..., :3]


def image_grid(
    rows: Sequence[Sequence[np.ndarray | None]],
    pad: int = 2,
    background: tuple[int, int, int] = (255, 255, 255),
) -> Image.Image:
    """Paste uint8 H x W x 3 images into a grid, paper style (rows = samples, columns = stages).

    Every column is as wide as its widest cell and every row as tall as its tallest; cells sit at the
    top left of their slot. `pad` pixels of `background` separate the cells and frame the grid, so an
    R x C grid of h x w cells is (C*w + (C+1)*pad) x (R*h + (R+1)*pad). Short rows and None cells are
    left blank.
    """
    if not rows or not any(len(r) for r in rows):
        raise ValueError("image_grid needs at least one image")
    cells = [[None if c is None else _as_rgb_uint8(c) for c in row] for row in rows]
    n_cols = max(len(r) for r in cells)
    col_w = [0] * n_cols
    row_h = [0] * len(cells)
    for i, row in enumerate(cells):
        for j, cell in enumerate(row):
            if cell is not None:
                col_w[j] = max(col_w[j], cell.shape[1])
                row_h[i] = max(row_h[i], cell.shape[0])
    width = sum(col_w) + pad * (n_cols + 1)
    height = sum(row_h) + pad * (len(cells) + 1)
    canvas = np.empty((height, width, 3), dtype=np.uint8)
    canvas[:] = background
    y = pad
    for i, row in enumerate(cells):
        x = pad
        for j in range(n_cols):
            cell = row[j] if j < len(row) else None
            if cell is not None:
                canvas[y : y + cell.shape[0], x : x + cell.shape[1]] = cell
            x += col_w[j] + pad
        y += row_h[i] + pad
    return Image.fromarray(canvas)


# --------------------------------------------------------------------------------------------------
# Markup


class Markup(str):
    """A string of trusted HTML/SVG: placed into a page as is instead of being escaped."""


def escape(value: object) -> str:
    """HTML-escape any value's text (quotes too, so the result is safe inside attributes)."""
    if isinstance(value, Markup):
        return str(value)
    return html.escape(str(value), quote=True)


# Colour-blind friendly categorical colours (Okabe-Ito), then Tableau for more series.
SERIES_COLOURS = (
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442",
    "#8c564b", "#7f7f7f", "#bcbd22", "#17becf",
)


def _nice_step(span: float, target: int) -> float:
    """A step of 1, 2 or 5 times a power of ten giving about `target` intervals over `span`."""
    raw = span / max(target, 1)
    power = 10.0 ** math.floor(math.log10(raw))
    for mult in (1.0, 2.0, 5.0, 10.0):
        if raw <= mult * power * (1 + 1e-9):
            return mult * power
    return 10.0 * power


def _linear_ticks(lo: float, hi: float, target: int = 5) -> tuple[float, float, list[float]]:
    """Axis limits widened to whole steps, and the ticks between them."""
    if not hi > lo:
        # A flat series still needs a visible axis around its value.
        half = abs(lo) * 0.1 or 1.0
        lo, hi = lo - half, hi + half
    step = _nice_step(hi - lo, target)
    start = math.floor(lo / step + 1e-9) * step
    stop = math.ceil(hi / step - 1e-9) * step
    count = int(round((stop - start) / step))
    ticks = [start + k * step for k in range(count + 1)]
    # Round away float noise such as 0.30000000000000004 so labels print cleanly.
    ticks = [round(t, 12) for t in ticks]
    return start, stop, ticks


def _log_ticks(lo: float, hi: float) -> tuple[float, float, list[float]]:
    """Limits at whole decades (log10 units) and tick values; adds 2x and 5x when few decades."""
    lo_exp = math.floor(math.log10(lo) + 1e-9)
    hi_exp = math.ceil(math.log10(hi) - 1e-9)
    if hi_exp == lo_exp:
        hi_exp += 1
    decades = hi_exp - lo_exp
    stride = max(1, math.ceil(decades / 6))
    ticks = [10.0**e for e in range(lo_exp, hi_exp + 1, stride)]
    if decades <= 2:
        ticks = sorted(t * m for t in ticks for m in (1, 2, 5) if t * m <= 10.0**hi_exp)
    return float(lo_exp), float(hi_exp), ticks


def _fmt(value: float) -> str:
    """Short tick label: 1500 -> 1.5k, 2e6 -> 2M, 0.00012 -> 0.00012, 0.5 -> 0.5."""
    if value == 0:
        return "0"
    magnitude = abs(value)
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if magnitude >= limit:
            return f"{value / limit:.3g}{suffix}"
    if magnitude < 1e-3:
        return f"{value:.1e}"
    return f"{value:.4g}"


def _finite_segments(points: Iterable[tuple[float, float]], log_y: bool) -> list[list[tuple[float, float]]]:
    """Split a series into runs of plottable points; NaN/inf (and y <= 0 on a log axis) break lines."""
    segments: list[list[tuple[float, float]]] = [[]]
    for x, y in points:
        x, y = float(x), float(y)
        ok = math.isfinite(x) and math.isfinite(y) and (y > 0 or not log_y)
        if ok:
            segments[-1].append((x, y))
        elif segments[-1]:
            segments.append([])
    return [s for s in segments if s]


def svg_line_plot(
    series: Mapping[str, Sequence[tuple[float, float]]],
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
    width: int = 640,
    height: int = 360,
    log_y: bool = False,
) -> Markup:
    """An inline SVG line chart with axes, ticks, a grid and a legend; one line per named series.

    Points that are not finite (and, with `log_y`, values <= 0) are skipped and break the line, so a
    diverged loss does not flatten the rest of the curve. Series are drawn with markers when they
    have few points, so a single evaluation is still visible.
    """
    left, right, top, bottom = 64, 16, 32 if title else 12, 44
    plot_w, plot_h = max(width - left - right, 10), max(height - top - bottom, 10)
    segments = {name: _finite_segments(points, log_y) for name, points in series.items()}
    xs = [x for segs in segments.values() for seg in segs for x, _ in seg]
    ys = [y for segs in segments.values() for seg in segs for _, y in seg]

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="white"/>',
    ]
    if title:
        out.append(f'<text x="{width / 2:.1f}" y="20" text-anchor="middle" font-size="14" '
                   f'font-weight="bold">{escape(title)}</text>')
    if not xs:
        out.append(f'<text x="{width / 2:.1f}" y="{height / 2:.1f}" text-anchor="middle" '
                   f'fill="#888">no data</text></svg>')
        return Markup("\n".join(out))

    x_lo, x_hi, x_ticks = _linear_ticks(min(xs), max(xs))
    if log_y:
        y_lo, y_hi, y_ticks = _log_ticks(min(ys), max(ys))
        y_of = math.log10
    else:
        # A little headroom so a curve that ends on a round value does not run along the frame.
        margin = 0.03 * (max(ys) - min(ys))
        y_lo, y_hi, y_ticks = _linear_ticks(min(ys) - margin, max(ys) + margin)
        y_of = float

    def px(x: float) -> float:
        return left + (x - x_lo) / (x_hi - x_lo) * plot_w

    def py(y: float) -> float:
        return top + plot_h - (y_of(y) - y_lo) / (y_hi - y_lo) * plot_h

    # Grid and tick labels.
    out.append('<g stroke="#e5e5e5" stroke-width="1">')
    for t in x_ticks:
        out.append(f'<line x1="{px(t):.1f}" y1="{top}" x2="{px(t):.1f}" y2="{top + plot_h}"/>')
    for t in y_ticks:
        out.append(f'<line x1="{left}" y1="{py(t):.1f}" x2="{left + plot_w}" y2="{py(t):.1f}"/>')
    out.append("</g>")
    out.append('<g fill="#333">')
    for t in x_ticks:
        label = escape(_fmt(t))
        out.append(f'<text x="{px(t):.1f}" y="{top + plot_h + 15}" text-anchor="middle">{label}</text>')
    for t in y_ticks:
        out.append(f'<text x="{left - 6}" y="{py(t) + 4:.1f}" text-anchor="end">{escape(_fmt(t))}</text>')
    out.append("</g>")
    # Axes.
    out.append(f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#333"/>')
    if xlabel:
        out.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 8}" '
                   f'text-anchor="middle">{escape(xlabel)}</text>')
    if ylabel:
        cy = top + plot_h / 2
        out.append(f'<text x="14" y="{cy:.1f}" text-anchor="middle" '
                   f'transform="rotate(-90 14 {cy:.1f})">{escape(ylabel)}</text>')

    # Lines. The limits are rounded outwards to whole ticks, so every point is inside the frame and
    # no clipPath is needed (its id would clash when several charts share one HTML page).
    for k, (name, segs) in enumerate(segments.items()):
        colour = SERIES_COLOURS[k % len(SERIES_COLOURS)]
        n_points = sum(len(s) for s in segs)
        out.append(f'<g stroke="{colour}" fill="none" stroke-width="1.5"><title>{escape(name)}</title>')
        for seg in segs:
            if len(seg) > 1:
                coords = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in seg)
                out.append(f'<polyline points="{coords}"/>')
            if n_points <= 30 or len(seg) == 1:
                for x, y in seg:
                    out.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="2.5" fill="{colour}"/>')
        out.append("</g>")

    # Legend in whichever corner of the plot area hides the fewest points (top right on a tie).
    names = list(segments)
    if names:
        row_h, box_w = 16, 24 + 7 * max(len(n) for n in names)
        box_h = row_h * len(names) + 6
        drawn = [(px(x), py(y)) for segs in segments.values() for seg in segs for x, y in seg]
        corners = [
            (left + plot_w - box_w - 6, top + 6),
            (left + 6, top + 6),
            (left + plot_w - box_w - 6, top + plot_h - box_h - 6),
            (left + 6, top + plot_h - box_h - 6),
        ]

        def hidden(corner: tuple[float, float]) -> int:
            cx, cy = corner
            return sum(cx <= x <= cx + box_w and cy <= y <= cy + box_h for x, y in drawn)

        lx, ly = min(corners, key=hidden)  # min keeps the first corner among equals
        out.append(f'<g><rect x="{lx}" y="{ly}" width="{box_w}" height="{box_h}" '
                   f'fill="white" fill-opacity="0.85" stroke="#ccc"/>')
        for k, name in enumerate(names):
            colour = SERIES_COLOURS[k % len(SERIES_COLOURS)]
            yy = ly + 3 + row_h * k + row_h / 2
            out.append(f'<line x1="{lx + 4}" y1="{yy:.1f}" x2="{lx + 18}" y2="{yy:.1f}" '
                       f'stroke="{colour}" stroke-width="2"/>')
            out.append(f'<text x="{lx + 22}" y="{yy + 4:.1f}">{escape(name)}</text>')
        out.append("</g>")
    out.append("</svg>")
    return Markup("\n".join(out))


# --------------------------------------------------------------------------------------------------
# HTML


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


def table(rows: Sequence[Mapping[str, object]], columns: Sequence[str] | None = None,
          float_format: str = "{:.4g}") -> Markup:
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
