"""SVG line charts without a plotting library: axes, ticks, grid, legend."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from .html import Markup, escape

# Colour-blind friendly categorical colours (Okabe-Ito), then Tableau for more series.
SERIES_COLOURS = (
    "#0072B2",
    "#D55E00",
    "#009E73",
    "#CC79A7",
    "#E69F00",
    "#56B4E9",
    "#000000",
    "#F0E442",
    "#8c564b",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
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
    count = round((stop - start) / step)
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


#: Length in px of one dash where coinciding series take turns.
_DASH = 6


def _dashes_for_coinciding(lines: Sequence[Sequence[tuple[float, float]]]) -> list[str]:
    """SVG dash attributes that keep series drawn on top of each other all visible.

    Series whose points all lie within a pixel of another's (two runs that measure the same, a baseline
    equal in both directions) form a group; the m members of a group are dashed with period m dashes,
    each shifted by one dash, so their colours alternate along the line. Other series stay solid ("").
    """

    def same(a: Sequence[tuple[float, float]], b: Sequence[tuple[float, float]]) -> bool:
        return len(a) == len(b) > 0 and all(abs(x1 - x2) <= 1 and abs(y1 - y2) <= 1 for (x1, y1), (x2, y2) in zip(a, b))

    group_of = list(range(len(lines)))
    for k in range(len(lines)):
        for j in range(k):
            if group_of[j] == j and same(lines[j], lines[k]):
                group_of[k] = j
                break
    attrs = []
    for k, g in enumerate(group_of):
        members = [i for i, other in enumerate(group_of) if other == g]
        if len(members) == 1:
            attrs.append("")
            continue
        rank = members.index(k)
        attrs.append(f' stroke-dasharray="{_DASH} {_DASH * (len(members) - 1)}" stroke-dashoffset="{-_DASH * rank}"')
    return attrs


def svg_line_plot(
    series: Mapping[str, Sequence[tuple[float, float]]],
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
    width: int = 640,
    height: int = 360,
    log_y: bool = False,
    y_range: tuple[float, float] | None = None,
) -> Markup:
    """An inline SVG line chart with axes, ticks, a grid and a legend; one line per named series.

    Points that are not finite (and, with `log_y`, values <= 0) are skipped and break the line, so a
    diverged loss does not flatten the rest of the curve. Series are drawn with markers when they
    have few points, so a single evaluation is still visible. `y_range` fixes a linear y axis (a
    percentage reads best on 0-100 whatever the data).
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
        out.append(
            f'<text x="{width / 2:.1f}" y="20" text-anchor="middle" font-size="14" '
            f'font-weight="bold">{escape(title)}</text>'
        )
    if not xs:
        out.append(
            f'<text x="{width / 2:.1f}" y="{height / 2:.1f}" text-anchor="middle" fill="#888">no data</text></svg>'
        )
        return Markup("\n".join(out))

    x_lo, x_hi, x_ticks = _linear_ticks(min(xs), max(xs))
    if log_y:
        y_lo, y_hi, y_ticks = _log_ticks(min(ys), max(ys))
        y_of = math.log10
    elif y_range is not None:
        y_lo, y_hi, y_ticks = _linear_ticks(*y_range)
        y_of = float
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
        out.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 8}" text-anchor="middle">{escape(xlabel)}</text>')
    if ylabel:
        cy = top + plot_h / 2
        out.append(
            f'<text x="14" y="{cy:.1f}" text-anchor="middle" '
            f'transform="rotate(-90 14 {cy:.1f})">{escape(ylabel)}</text>'
        )

    # Lines. The limits are rounded outwards to whole ticks, so every point is inside the frame and
    # no clipPath is needed (its id would clash when several charts share one HTML page).
    dashes = _dashes_for_coinciding([[(px(x), py(y)) for seg in segs for x, y in seg] for segs in segments.values()])
    for k, (name, segs) in enumerate(segments.items()):
        colour = SERIES_COLOURS[k % len(SERIES_COLOURS)]
        n_points = sum(len(s) for s in segs)
        out.append(f'<g stroke="{colour}" fill="none" stroke-width="1.5"{dashes[k]}><title>{escape(name)}</title>')
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
        out.append(
            f'<g><rect x="{lx}" y="{ly}" width="{box_w}" height="{box_h}" '
            f'fill="white" fill-opacity="0.85" stroke="#ccc"/>'
        )
        for k, name in enumerate(names):
            colour = SERIES_COLOURS[k % len(SERIES_COLOURS)]
            yy = ly + 3 + row_h * k + row_h / 2
            legend_dash = ' stroke-dasharray="3 2"' if dashes[k] else ""
            out.append(
                f'<line x1="{lx + 4}" y1="{yy:.1f}" x2="{lx + 18}" y2="{yy:.1f}" '
                f'stroke="{colour}" stroke-width="2"{legend_dash}/>'
            )
            out.append(f'<text x="{lx + 22}" y="{yy + 4:.1f}">{escape(name)}</text>')
        out.append("</g>")
    out.append("</svg>")
    return Markup("\n".join(out))
