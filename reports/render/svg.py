"""Charts as SVG for the PDF and the archive page: the same charts as reports/render/charts.py
draws with matplotlib for email, in the same house style, written directly as vector markup.

A PDF of a hundred charts spends its time in the typesetter, not in drawing: each chart here is
a few hundred elements of text, and every label from the warehouse is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from xml.sax.saxutils import escape, quoteattr

from reports.render.style import BAD, GOOD, GRID, INK, MUTED, PRIMARY, axis_number

WIDTH = 259.0  # points: 3.6 in, as the PNG charts, so text sizes are true point sizes
FONT = "DejaVu Sans, sans-serif"


def _text(x: float, y: float, text: str, size: float = 8, anchor: str = "start", **style: str) -> str:
    fill = style.pop("fill", INK)
    extra = "".join(f" {k.replace('_', '-')}={quoteattr(v)}" for k, v in style.items())
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" fill="{fill}"'
        f"{extra}>{escape(_printable(text))}</text>"
    )


def _printable(text: str) -> str:
    return "".join(c for c in str(text) if c.isprintable())


def _svg(height: float, body: list[str], alt: str = "") -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH:.0f} {height:.0f}" '
        f'width="{WIDTH:.0f}" height="{height:.0f}" font-family="{FONT}" role="img">'
        + (f"<title>{escape(_printable(alt))}</title>" if alt else "")
        + "".join(body)
        + "</svg>"
    )


def nice_ticks(low: float, high: float, count: int = 4) -> list[float]:
    """Round tick values (steps of 1, 2, 2.5 or 5 times a power of ten) covering [low, high]."""
    if not math.isfinite(low) or not math.isfinite(high):
        return [0.0, 1.0]
    if high <= low:
        high = low + (abs(low) or 1.0)
    raw = (high - low) / max(count, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    start = math.floor(low / step + 1e-9) * step
    ticks, value = [], start
    while value <= high + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    if ticks[-1] < high:
        ticks.append(round(ticks[-1] + step, 12))
    return ticks


def _finite(values: Sequence[float | None]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def draw_trend(
    title: str,
    unit: str,
    labels: list[str],
    values: list,
    earlier: list,
    axis: list[float] | None = None,
    note: str | None = None,
) -> str:
    height, left, right, top, bottom = 137.0, 34.0, 6.0, 18.0, 14.0
    seen = _finite(values) + _finite(earlier)
    known = [i for i, pair in enumerate(zip(values, earlier, strict=False)) if _finite(pair)]
    first, last = (known[0], known[-1]) if known else (0, max(len(labels) - 1, 0))
    low, high = (axis[0], axis[1]) if axis else (min(seen, default=0.0), max(seen, default=1.0))
    ticks = nice_ticks(low, high)
    low, high = (axis[0], axis[1]) if axis else (ticks[0], ticks[-1])
    if high <= low:
        high = low + 1
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    plot_w, plot_h = WIDTH - left - right, height - top - bottom
    span = max(last - first, 1)

    def x(i: int) -> float:  # the stretch with data fills the width, as matplotlib scales to it
        return left + plot_w * (0.07 + 0.86 * (i - first) / span)

    def y(v: float) -> float:
        return top + plot_h * (1 - (v - low) / (high - low))

    body = [_text(2, 10, title, 9, font_weight="bold")]
    if note:
        body.append(_text(WIDTH - right, 10, note, 6.5, "end", fill=MUTED))
    for tick in ticks:
        if low - 1e-9 <= tick <= high + 1e-9:
            body.append(
                f'<line x1="{left}" x2="{WIDTH - right}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" stroke="{GRID}" stroke-width="0.6"/>'
            )
            body.append(_text(left - 4, y(tick) + 3, axis_number(tick, unit, step), 8, "end"))
    every = max(1, (last - first + 1) // 4)
    for i in range(first, last + 1, every):
        body.append(_text(x(i), height - 3, labels[i], 8, "middle"))
    for series, colour, width, dash in (
        (earlier, MUTED, 1.2, ' stroke-dasharray="4 3"'),
        (values, PRIMARY, 2, ""),
    ):
        for piece in _pieces(series):
            points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in piece)
            body.append(
                f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="{width}"'
                f' stroke-linejoin="round"{dash}/>'
            )
    for i, v in enumerate(values):
        if v is not None and math.isfinite(float(v)):
            body.append(f'<circle cx="{x(i):.1f}" cy="{y(float(v)):.1f}" r="1.6" fill="{PRIMARY}"/>')
    return _svg(height, body)


def _pieces(series: Sequence[float | None]) -> list[list[tuple[int, float]]]:
    """Runs of consecutive known values: a gap in the data is a gap in the line."""
    pieces: list[list[tuple[int, float]]] = [[]]
    for i, v in enumerate(series):
        if v is None or not math.isfinite(float(v)):
            pieces.append([])
        else:
            pieces[-1].append((i, float(v)))
    return [p for p in pieces if p]


def _percent_label(value: float) -> str:
    return f"{value:+.0f}%" if value else "0%"


def draw_movers(title: str, unit: str, names: list[str], changes: list) -> str:
    rows = max(len(names), 1)
    height, left, right, top, bottom = 18 + 16 * rows + 16.0, 110.0, 8.0, 18.0, 16.0
    values = [float(c) if c is not None and math.isfinite(float(c)) else 0.0 for c in changes]
    ticks = nice_ticks(min([0.0, *values]), max([0.0, *values]), 5)
    low, high = ticks[0], ticks[-1]
    plot_w = WIDTH - left - right

    def x(v: float) -> float:
        return left + plot_w * (v - low) / (high - low or 1)

    body = [_text(4, 12, title, 9, font_weight="bold")]
    for tick in ticks:
        body.append(
            f'<line x1="{x(tick):.1f}" x2="{x(tick):.1f}" y1="{top}" y2="{height - bottom}" stroke="{GRID}" stroke-width="0.6"/>'
        )
        body.append(_text(x(tick), height - 5, _percent_label(tick), 7, "middle"))
    for i, (name, value) in enumerate(zip(names, values, strict=False)):
        centre = top + 16 * i + 8
        start, end = sorted((x(0), x(value)))
        colour = GOOD if value >= 0 else BAD
        body.append(
            f'<rect x="{start:.1f}" y="{centre - 4.8:.1f}" width="{max(end - start, 0.5):.1f}" height="13.2" fill="{colour}"/>'
        )
        label = _printable(name)
        label = label if len(label) <= 28 else label[:27] + "…"
        body.append(_text(left - 4, centre + 3, label, 8, "end"))
    body.append(
        f'<line x1="{x(0):.1f}" x2="{x(0):.1f}" y1="{top}" y2="{height - bottom}" stroke="{INK}" stroke-width="0.6"/>'
    )
    return _svg(height, body)


def draw_distribution(title: str, values: list, xlabel: str) -> str:
    height, left, right, top, bottom = 137.0, 34.0, 14.0, 22.0, 26.0
    finite = sorted(_finite(values))
    if not finite:
        finite = [0.0]
    low_p, high_p = _percentile(finite, 2), _percentile(finite, 98)
    edge = max(5.0, math.ceil(max(abs(low_p), abs(high_p)) / 5) * 5)
    bins = [0] * 24
    width = 2 * edge / 24
    for v in finite:
        clipped = max(-edge, min(edge, v))
        bins[min(int((clipped + edge) / width), 23)] += 1
    counts = nice_ticks(0, max(bins), 4)
    plot_w, plot_h = WIDTH - left - right, height - top - bottom

    def x(v: float) -> float:
        return left + plot_w * (v + edge) / (2 * edge)

    def y(c: float) -> float:
        return top + plot_h * (1 - c / (counts[-1] or 1))

    body = [_text(2, 10, title, 9, font_weight="bold")]
    for c in counts:
        body.append(
            f'<line x1="{left}" x2="{WIDTH - right}" y1="{y(c):.1f}" y2="{y(c):.1f}" stroke="{GRID}" stroke-width="0.6"/>'
        )
        body.append(_text(left - 4, y(c) + 3, axis_number(c, "count"), 8, "end"))
    for i, count in enumerate(bins):
        if count:
            x0 = x(-edge + i * width)
            body.append(
                f'<rect x="{x0:.1f}" y="{y(count):.1f}" width="{plot_w / 24:.1f}" height="{y(0) - y(count):.1f}"'
                f' fill="{PRIMARY}" stroke="white" stroke-width="0.5"/>'
            )
    for tick in nice_ticks(-edge, edge, 6):
        if -edge <= tick <= edge:
            body.append(_text(x(tick), height - 15, _percent_label(tick), 8, "middle"))
    body.append(
        f'<line x1="{x(0):.1f}" x2="{x(0):.1f}" y1="{top}" y2="{y(0):.1f}" stroke="{INK}" stroke-width="0.6"/>'
    )
    body.append(_text(left + plot_w / 2, height - 5, xlabel, 7.5, "middle"))
    body.append(
        _text(
            10,
            top + plot_h / 2,
            "entities",
            7.5,
            "middle",
            transform=f"rotate(-90 10 {top + plot_h / 2:.1f})",
        )
    )
    return _svg(height, body)


def _percentile(ordered: list[float], q: float) -> float:
    position = (len(ordered) - 1) * q / 100
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


DRAWINGS: dict[str, Callable[..., str]] = {
    "trend": draw_trend,
    "movers": draw_movers,
    "distribution": draw_distribution,
}
