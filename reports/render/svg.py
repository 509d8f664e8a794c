"""Charts as SVG text: for the PDF and the archive page, and rasterised for the email's PNG.

A trend line, a bar chart of movers and a histogram in the house style, written directly as
vector markup: cheap to make, sharp on paper, and the PDF's figures stay text. The output
depends only on the chart's numbers (same spec, same bytes). Every piece of text is escaped and
stripped of control characters; the SVG refers to nothing outside itself.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from xml.sax.saxutils import escape

import numpy as np

from reports.render.style import BAD, GOOD, GRID, INK, MUTED, PRIMARY, axis_number

WIDTH = 259.2  # 3.6 in, in points: a font size is a true point size
HEIGHT = 136.8  # 1.9 in: trend and distribution charts
TICK, TITLE, NOTE = 8.0, 9.0, 6.5  # font sizes
EDGE = 2.0  # blank margin round the drawing

# DejaVu Sans advance widths of " " to "~", in hundredths of an em: enough to lay out labels
# (margins, clipping, ticks that would collide) without loading a font.
# fmt: off
_ADVANCE = (
    32, 40, 46, 84, 64, 95, 78, 27, 39, 39, 50, 84, 32, 36, 32, 34, 64, 64, 64, 64, 64, 64, 64, 64,
    64, 64, 34, 34, 84, 84, 84, 53, 100, 68, 69, 70, 77, 63, 58, 77, 75, 29, 29, 66, 56, 86, 75, 79,
    60, 79, 69, 63, 61, 73, 68, 99, 69, 61, 69, 39, 34, 39, 84, 50, 50, 61, 63, 55, 63, 62, 35, 63,
    63, 28, 28, 58, 28, 97, 63, 61, 63, 63, 41, 52, 39, 63, 59, 82, 59, 59, 52, 64, 34, 64, 84,
)
# fmt: on


def text_width(text: str, size: float, bold: bool = False) -> float:
    """Roughly how wide `text` sets in DejaVu Sans at `size` points."""
    ems = 0.0
    for c in text:
        if " " <= c <= "~":
            ems += _ADVANCE[ord(c) - 32] / 100
        else:
            ems += 1.0 if unicodedata.east_asian_width(c) in "WF" else 0.7
    return ems * size * (1.1 if bold else 1.0)


def printable(text: object) -> str:
    """Text as a label on one line: no control or formatting characters (bidi overrides, NUL)."""
    return " ".join("".join(c for c in str(text) if c.isprintable() or c.isspace()).split())


def fit(text: object, size: float, room: float, bold: bool = False) -> str:
    """`text` cut with an ellipsis to fit `room` points."""
    label = printable(text)
    if text_width(label, size, bold) <= room:
        return label
    label = label[: int(room / (0.27 * size)) + 1]  # no more than could fit: a 10,000-letter name is quick
    while label and text_width(label + "…", size, bold) > room:
        label = label[:-1]
    return label.rstrip() + "…"


def ticks(
    low: float, high: float, target: int, fits: Callable[[list[float]], bool] | None = None
) -> list[float]:
    """Round values (1, 2 or 5 times a power of ten apart) within [low, high], about `target` of
    them; `fits` can refuse a choice whose labels would collide or read the same."""
    span = high - low
    if not (math.isfinite(span) and span > 0):
        return [low] if math.isfinite(low) else []
    power = math.floor(math.log10(span))
    choices = []
    for exponent in range(power - 2, power + 2):
        for m in (1, 2, 5):
            step = m * 10.0**exponent
            first, last = math.ceil(low / step - 1e-9), math.floor(high / step + 1e-9)
            values = [round(i * step, 12) for i in range(first, last + 1)]
            if values:
                choices.append((abs(len(values) - target), -step, values))
    choices.sort(key=lambda c: c[:2])
    for _, _, values in choices:
        if fits is None or fits(values):
            return values
    return min(choices, key=lambda c: c[1])[2]  # nothing fits: the fewest labels


def _distinct(label: Callable[[list[float], float], str]) -> Callable[[list[float]], bool]:
    """Ticks whose labels all differ: labels of whole seconds never say "42 s" twice."""
    return lambda marks: len({label(marks, m) for m in marks}) == len(marks)


def percent_ticks(low: float, high: float, x: Callable[[float], float]) -> list[float]:
    """Change-% ticks (whole percents, as they are labelled) that leave room between labels."""

    def fits(marks: list[float]) -> bool:
        room = max(text_width(percent_label(m), TICK) for m in marks) + 6
        return all(float(m).is_integer() for m in marks) and (
            len(marks) < 2 or x(marks[1]) - x(marks[0]) >= room
        )

    return ticks(low, high, 6, fits)


def _step(values: Sequence[float]) -> float:
    return values[1] - values[0] if len(values) > 1 else 1.0


def percent_label(value: float) -> str:
    """A change-% tick: +10%, 0%, -20%."""
    return f"{value:+.0f}%" if value else "0%"


def _known(value: object) -> float | None:
    """A plotted number, or None for a missing one (None, NaN, ±inf)."""
    if value is None:
        return None
    number = float(value)  # type: ignore[arg-type]
    return number if math.isfinite(number) else None


def _n(value: float) -> str:
    """A coordinate, short and always written the same way."""
    text = f"{value:.1f}"
    return "0" if text == "-0.0" else text.removesuffix(".0")


_SIZE = re.compile(r'^(<svg [^>]*? width="[\d.]+)pt(" height="[\d.]+)pt"')


def in_pixels(svg: str) -> str:
    """A chart's SVG sized in user units rather than points, as a rasteriser wants it; the
    viewBox, and so the drawing, is unchanged."""
    return _SIZE.sub(r'\1\2"', svg, count=1)


class Canvas:
    """The elements of one chart, written in drawing order."""

    def __init__(self, height: float) -> None:
        self.height = height
        self.parts: list[str] = []
        self.labels: list[tuple[float, float, str]] = []  # (x, baseline, text) of plain tick labels

    def text(
        self, x: float, y: float, text: str, size: float = TICK, anchor: str = "start", **extra: str
    ) -> None:
        label = printable(text)
        if size == TICK and not extra and label and all(" " <= c <= "~" for c in label):
            # Printable ASCII in the tick style: its letters' places are known from the table, so
            # it joins the chart's one element of labels (see `_labels`).
            shift = {"start": 0.0, "middle": 0.5, "end": 1.0}[anchor] * text_width(label, TICK)
            self.labels.append((x - shift, y, label))
            return
        attrs = "".join(
            f' {k.replace("_", "-")}="{escape(v, {chr(34): "&quot;"})}"' for k, v in extra.items()
        )
        where = "" if anchor == "start" else f' text-anchor="{anchor}"'
        self.parts.append(
            f'<text x="{_n(x)}" y="{_n(y)}" font-size="{size:g}"{where}{attrs}>{escape(label)}</text>'
        )

    def lines(self, segments: Iterable[tuple[float, float, float, float]], colour: str, width: float) -> None:
        """Straight lines as one path: grids and spines cost one element, not one each."""
        d = "".join(f"M{_n(a)} {_n(b)}L{_n(c)} {_n(e)}" for a, b, c, e in segments)
        if d:
            self.parts.append(f'<path d="{d}" stroke="{colour}" stroke-width="{width:g}" fill="none"/>')

    def path(self, points: Sequence[tuple[float, float]], colour: str, width: float, extra: str = "") -> None:
        d = "M" + "L".join(f"{_n(x)} {_n(y)}" for x, y in points)
        stroke = f'stroke="{colour}" stroke-width="{width:g}" stroke-linejoin="round"'
        self.parts.append(f'<path d="{d}" {stroke} fill="none"{extra}/>')

    def boxes(self, boxes: Iterable[tuple[float, float, float, float]], colour: str, extra: str = "") -> None:
        """Filled rectangles (x, y, width, height) as one path."""
        d = "".join(f"M{_n(x)} {_n(y)}h{_n(w)}v{_n(h)}h{_n(-w)}z" for x, y, w, h in boxes)
        if d:
            self.parts.append(f'<path d="{d}" fill="{colour}"{extra}/>')

    def axes(
        self,
        left: float,
        top: float,
        right: float,
        bottom: float,
        levels: Sequence[float] = (),
        names: Sequence[str] = (),
    ) -> None:
        """The left and bottom spines, and a labelled grid line at each of `levels` (y positions);
        a grid line that would double the bottom spine is left to the spine."""
        self.lines([(left, v, right, v) for v in levels if bottom - v > 2], GRID, 0.8)
        self.lines([(left, top, left, bottom), (left, bottom, right, bottom)], GRID, 0.8)
        for level, name in zip(levels, names, strict=True):
            self.text(left - 4, level + 2.9, name, anchor="end")

    def title(self, title: str, note: str | None = None) -> float:
        """Title top left, bold, and the note top right (beneath it when both would not fit);
        returns where the plot may start."""
        note = printable(note or "")
        note_w = text_width(note, NOTE)
        beside = bool(note) and text_width(printable(title), TITLE, True) + note_w + 10 <= WIDTH - 2 * EDGE
        room = WIDTH - 2 * EDGE - (note_w + 10 if beside else 0)
        self.text(EDGE, 11, fit(title, TITLE, room, True), TITLE, font_weight="bold")
        if note:
            self.text(
                WIDTH - EDGE, 11 if beside else 20, fit(note, NOTE, WIDTH - 2 * EDGE), NOTE, "end", fill=MUTED
            )
        return 19.0 if beside or not note else 27.0

    def svg(self) -> str:
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_n(WIDTH)} {_n(self.height)}"'
            f' width="{_n(WIDTH)}pt" height="{_n(self.height)}pt"'
            f' font-family="DejaVu Sans, sans-serif" fill="{INK}">'
            + "".join(self.parts)
            + self._labels()
            + "</svg>"
        )

    def _labels(self) -> str:
        """The tick labels as one text element with every letter placed. WeasyPrint lays out and
        draws each SVG text element on its own, then each of its letters; one element per chart
        keeps the letters and loses the per-element cost (a per-project PDF 184 → 163 ms). The
        places assume DejaVu Sans, the house font; the text still reads label by label."""
        xs: list[str] = []
        ys: list[str] = []
        for x, y, label in self.labels:
            for c in label:
                xs.append(_n(x))
                ys.append(_n(y))
                x += text_width(c, TICK)
        if not xs:
            return ""
        body = escape("".join(label for _, _, label in self.labels))
        return f'<text x="{" ".join(xs)}" y="{" ".join(ys)}" font-size="{TICK:g}">{body}</text>'


def _pieces(series: Sequence[float | None]) -> list[list[tuple[int, float]]]:
    """Runs of consecutive known values: a gap in the data is a gap in the line."""
    pieces: list[list[tuple[int, float]]] = [[]]
    for i, value in enumerate(series):
        if value is None:
            pieces.append([])
        else:
            pieces[-1].append((i, value))
    return [p for p in pieces if p]


def draw_trend(
    title: str,
    unit: str,
    labels: list[str],
    values: list,
    earlier: list,
    axis: list[float] | None = None,
    note: str | None = None,
) -> str:
    """This period's line (solid, with points) over the same number of periods before (dashed)."""
    canvas = Canvas(HEIGHT)
    top = canvas.title(title, note)
    now, before = [_known(v) for v in values], [_known(v) for v in earlier]
    seen = [v for v in now + before if v is not None]
    low, high = (float(axis[0]), float(axis[1])) if axis else (min(seen, default=0.0), max(seen, default=1.0))
    low, high = min([low, *seen]), max([high, *seen])  # the spec's axis holds the data; never hide a point
    if high <= low:
        low, high = (low - 1, high + 1) if not axis else (low, low + (abs(low) or 1.0))
    if not axis:  # no axis given: a margin round the data
        margin = (high - low) * 0.05
        low, high = low - margin, high + margin
    marks = ticks(low, high, 4, _distinct(lambda ms, m: axis_number(m, unit, _step(ms))))
    names = [axis_number(t, unit, _step(marks)) for t in marks]
    labels = [fit(label, TICK, WIDTH / 3) for label in labels]
    # Across the periods that have data: a young project's three months fill the chart rather
    # than a corner of it.
    known = [i for i, pair in enumerate(zip(now, before, strict=False)) if pair != (None, None)]
    first, last = (known[0], known[-1]) if known else (0, max(len(labels), len(now), 1) - 1)
    shown = [i for i in range(first, last + 1) if i < len(labels)]
    left = EDGE + max((text_width(name, TICK) for name in names), default=0.0) + 5
    last_w = text_width(labels[shown[-1]], TICK) if shown else 0.0
    right = max(EDGE + 2, last_w / 2 + EDGE - 3)
    bottom = HEIGHT - 14
    plot = WIDTH - left - right
    # Period labels every few periods, counted back from the newest, as many as fit.
    every = max(1, len(shown) // 4)
    widest = max((text_width(labels[i], TICK) for i in shown), default=0.0)
    while every < len(shown) and plot * 0.96 * every / max(len(shown) - 1, 1) < widest + 6:
        every += 1
    marked = shown[::-1][::every][::-1]
    # A margin of 2% each side, or more where the oldest label would run under the y labels
    pad = plot * 0.02
    pad_left = max(pad, text_width(labels[first], TICK) / 2 - 2) if marked[:1] == [first] else pad

    def x(i: float) -> float:
        share = (i - first) / (last - first) if last > first else 0.5
        return left + pad_left + (plot - pad_left - pad) * share

    def y(v: float) -> float:
        return bottom - (bottom - top) * (v - low) / (high - low)

    canvas.axes(left, top, WIDTH - right, bottom, [y(t) for t in marks], names)
    for i in marked:
        canvas.text(x(i), HEIGHT - 3.5, labels[i], anchor="middle")
    for piece in _pieces(before):
        if len(piece) > 1:
            canvas.path([(x(i), y(v)) for i, v in piece], MUTED, 1.2, ' stroke-dasharray="4.4 1.9"')
    for piece in _pieces(now):
        if len(piece) > 1:
            canvas.path([(x(i), y(v)) for i, v in piece], PRIMARY, 2)
    # The points as one path of dots (round caps on zero-length lines): a lone point still shows.
    dots = "".join(f"M{_n(x(i))} {_n(y(v))}h0" for i, v in enumerate(now) if v is not None)
    if dots:
        canvas.parts.append(
            f'<path d="{dots}" stroke="{PRIMARY}" stroke-width="3.2" stroke-linecap="round" fill="none"/>'
        )
    return canvas.svg()


def draw_movers(title: str, unit: str, names: list[str], changes: list) -> str:
    """The biggest risers and fallers as bars of their change in %, green up and red down."""
    rows = max(len(names), 1)
    canvas = Canvas(72 * (0.3 + 0.22 * rows))
    top = canvas.title(title)
    bottom = canvas.height - 13
    moved = [_known(c) for c in changes]
    labels = [printable(name) for name in names]
    labels = [name if len(name) <= 28 else name[:27] + "…" for name in labels]
    room = WIDTH * 0.55
    labels = [fit(name, TICK, room) for name in labels]
    left = EDGE + max((text_width(name, TICK) for name in labels), default=0.0) + 5
    right = EDGE + 10
    known = [c for c in moved if c is not None]
    low, high = min([0.0, *known]), max([0.0, *known])
    if high == low:
        low, high = -1.0, 1.0
    pad = (high - low) * 0.05
    low, high = low - pad, high + pad

    def x(v: float) -> float:
        return left + (WIDTH - left - right) * (v - low) / (high - low)

    marks = percent_ticks(low, high, x)
    canvas.lines([(x(m), top, x(m), bottom) for m in marks], GRID, 0.8)
    canvas.axes(left, top, WIDTH - right, bottom)
    for m in marks:
        canvas.text(x(m), canvas.height - 3.5, percent_label(m), anchor="middle")
    row = (bottom - top) / rows
    bars: dict[str, list[tuple[float, float, float, float]]] = {GOOD: [], BAD: []}
    for i, (label, change) in enumerate(zip(labels, moved, strict=False)):
        centre = top + row * (i + 0.5)
        if change is not None:
            start, end = sorted((x(0), x(change)))
            bars[GOOD if change >= 0 else BAD].append((start, centre - row * 0.3, end - start, row * 0.6))
        canvas.text(left - 4, centre + 2.9, label, anchor="end")
    for colour, boxes in bars.items():
        canvas.boxes(boxes, colour)
    canvas.lines([(x(0), top, x(0), bottom)], INK, 0.6)
    return canvas.svg()


def draw_distribution(title: str, values: list, xlabel: str) -> str:
    """How many entities moved by how much: 24 bins over the bulk, outliers piled at the edges."""
    canvas = Canvas(HEIGHT)
    top = canvas.title(title)
    finite = [v for v in (_known(v) for v in values) if v is not None]
    # Most entities move a little: scale to the bulk (2nd to 98th percentile); outliers pile up
    # in the edge bins.
    low_p, high_p = np.percentile(finite, [2, 98]) if finite else (0.0, 0.0)
    edge = max(5.0, math.ceil(max(abs(low_p), abs(high_p)) / 5) * 5)
    clipped = [max(-edge, min(edge, v)) for v in finite]
    counts = [int(c) for c in np.histogram(clipped, bins=24, range=(-edge, edge))[0]]
    most = max(counts, default=0)
    marks = ticks(0, max(most * 1.05, 4), 4, lambda ms: all(float(m).is_integer() for m in ms))
    high = max(marks[-1], most * 1.05)
    names = [axis_number(t, "count") for t in marks]
    left = EDGE + TICK + 4 + max(text_width(name, TICK) for name in names) + 5
    right = EDGE + text_width(percent_label(edge), TICK) / 2
    bottom = canvas.height - 24
    inner = (WIDTH - left - right) * 0.03
    span = WIDTH - left - right - 2 * inner

    def x(v: float) -> float:
        return left + inner + span * (v + edge) / (2 * edge)

    def y(c: float) -> float:
        return bottom - (bottom - top) * c / high

    canvas.axes(left, top, WIDTH - right, bottom, [y(t) for t in marks], names)
    width = span / 24
    bins = [(x(-edge) + i * width, y(c), width, y(0) - y(c)) for i, c in enumerate(counts) if c]
    canvas.boxes(bins, PRIMARY, ' stroke="white" stroke-width="0.5"')
    for m in percent_ticks(-edge, edge, x):
        canvas.text(x(m), bottom + 10.5, percent_label(m), anchor="middle")
    canvas.lines([(x(0), top, x(0), bottom)], INK, 0.6)
    canvas.text(
        left + (WIDTH - right - left) / 2,
        canvas.height - 3.5,
        fit(xlabel, TICK, WIDTH - 2 * EDGE),
        anchor="middle",
    )
    middle = (top + bottom) / 2
    canvas.text(
        EDGE + TICK - 1,
        middle,
        "entities",
        anchor="middle",
        transform=f"rotate(-90 {_n(EDGE + TICK - 1)} {_n(middle)})",
    )
    return canvas.svg()


DRAWINGS: dict[str, Callable[..., str]] = {
    "trend": draw_trend,
    "movers": draw_movers,
    "distribution": draw_distribution,
}
