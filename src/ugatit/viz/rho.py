"""What AdaLIN learned, as a picture: the rho of every channel of every AdaLIN/ILN layer, layer by layer.

One column per decoder layer, in the order the decoder runs them (its residual blocks, then its
up-sampling blocks, a line between the two); in each column a dot per channel for each generator, and a
bar at their mean. rho = 1 is instance normalisation, 0 layer normalisation (the paper's eq. 1).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..nn.introspect import RESIDUAL, UPSAMPLING, RhoLayer
from .html import Markup, escape
from .plots import SERIES_COLOURS

#: Horizontal room of one layer's column, in px.
COLUMN = 56


def svg_rho_plot(layers: Sequence[RhoLayer], title: str = "learned rho per decoder layer", height: int = 300) -> Markup:
    """An inline SVG strip plot of `layers` (see the module docstring); "no rho" text for none."""
    labels = list(dict.fromkeys(layer.label for layer in layers))
    generators = list(dict.fromkeys(layer.generator for layer in layers))
    left, right, top, bottom = 58, 16, 50, 48
    width = left + right + max(len(labels), 1) * COLUMN
    width = max(width, 320)
    plot_h = height - top - bottom
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2:.1f}" y="20" text-anchor="middle" font-size="14" font-weight="bold">'
        f"{escape(title)}</text>",
    ]
    if not layers:
        out.append(
            f'<text x="{width / 2:.1f}" y="{height / 2:.1f}" text-anchor="middle" fill="#888">'
            "no rho: this decoder has no AdaLIN or ILN layer</text></svg>"
        )
        return Markup("\n".join(out))

    def py(rho: float) -> float:
        return top + (1 - min(max(rho, 0.0), 1.0)) * plot_h

    def column_x(index: int) -> float:
        return left + (index + 0.5) * COLUMN

    # Grid and the rho axis: 1 = instance norm at the top, 0 = layer norm at the bottom.
    out.append('<g stroke="#e5e5e5">')
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        out.append(f'<line x1="{left}" y1="{py(tick):.1f}" x2="{width - right}" y2="{py(tick):.1f}"/>')
    out.append("</g>")
    out.append('<g fill="#333">')
    for tick, text in ((0.0, "0 LN"), (0.25, "0.25"), (0.5, "0.5"), (0.75, "0.75"), (1.0, "1 IN")):
        out.append(f'<text x="{left - 6}" y="{py(tick) + 4:.1f}" text-anchor="end">{text}</text>')
    out.append("</g>")
    out.append(
        f'<rect x="{left}" y="{top}" width="{width - left - right}" height="{plot_h}" fill="none" stroke="#333"/>'
    )
    # Where the residual blocks end and the up-sampling blocks begin, with the two groups named.
    positions = {layer.label: layer.position for layer in layers}
    groups = [(p, [i for i, label in enumerate(labels) if positions[label] == p]) for p in (RESIDUAL, UPSAMPLING)]
    for position, indices in groups:
        if not indices:
            continue
        centre = (column_x(indices[0]) + column_x(indices[-1])) / 2
        name = "residual blocks" if position == RESIDUAL else "up-sampling"
        out.append(f'<text x="{centre:.1f}" y="{height - 12}" text-anchor="middle" fill="#555">{name}</text>')
        if position == UPSAMPLING and indices[0] > 0:
            x = left + indices[0] * COLUMN
            out.append(f'<line x1="{x}" y1="{top}" x2="{x}" y2="{top + plot_h}" stroke="#888" stroke-dasharray="4 3"/>')
    for i, label in enumerate(labels):
        out.append(f'<text x="{column_x(i):.1f}" y="{top + plot_h + 15}" text-anchor="middle">{escape(label)}</text>')

    # A dot per channel, each generator to one side of its column, and a bar at the mean.
    spread = COLUMN * 0.3
    for g, generator in enumerate(generators):
        colour = SERIES_COLOURS[g % len(SERIES_COLOURS)]
        offset = (g - (len(generators) - 1) / 2) * spread
        out.append(f'<g fill="{colour}" stroke="{colour}"><title>{escape(generator)}</title>')
        for layer in layers:
            if layer.generator != generator:
                continue
            x = column_x(labels.index(layer.label)) + offset
            values = layer.values.tolist()
            for k, rho in enumerate(values):
                # A small fixed jitter spreads equal values sideways without randomness.
                jitter = ((k * 7) % 11 - 5) / 5 * spread * 0.25
                out.append(
                    f'<circle cx="{x + jitter:.1f}" cy="{py(rho):.1f}" r="1.8" fill-opacity="0.45" stroke="none"/>'
                )
            mean = sum(values) / len(values)
            half = spread * 0.45
            out.append(
                f'<line x1="{x - half:.1f}" y1="{py(mean):.1f}" x2="{x + half:.1f}" y2="{py(mean):.1f}" '
                f'stroke-width="2.5"><title>{escape(f"{generator} {layer.name}: mean rho {mean:.3f}")}</title></line>'
            )
        out.append("</g>")
    # Legend, between the title and the plot.
    for g, generator in enumerate(generators):
        colour = SERIES_COLOURS[g % len(SERIES_COLOURS)]
        x = left + 90 * g
        out.append(f'<circle cx="{x + 4}" cy="38" r="4" fill="{colour}"/>')
        out.append(f'<text x="{x + 12}" y="42">{escape(generator)}</text>')
    out.append("</svg>")
    return Markup("\n".join(out))
