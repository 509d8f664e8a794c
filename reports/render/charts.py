"""Charts as PNG, for email bodies, drawn with matplotlib's Agg backend in the house style.

The PDF and the archive page draw the same charts as SVG (render/svg.py); render/drawn.py keeps
what each process has drawn.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from reports.render.style import BAD, GOOD, GRID, INK, MUTED, PRIMARY, axis_number
from reports.report.model import Chart

STYLE = {
    "font.family": "DejaVu Sans",
    "font.size": 8,
    "axes.edgecolor": GRID,
    "axes.labelcolor": INK,
    "axes.titlesize": 9,
    "axes.titleweight": "bold",
    "axes.titlelocation": "left",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.grid.axis": "y",
    "grid.color": GRID,
    "xtick.color": INK,
    "ytick.color": INK,
    "svg.hashsalt": "herald",
    "text.parse_math": False,  # names from the warehouse are text: "$x$" is not a formula
}


def _clean(values: Sequence[float | None]) -> list[float]:
    return [math.nan if v is None else float(v) for v in values]


def _tick_step(ax: Axes) -> float:
    ticks = ax.get_yticks()
    return float(ticks[1] - ticks[0]) if len(ticks) > 1 else 1.0


def _draw_trend(
    title: str,
    unit: str,
    labels: list[str],
    values: list,
    earlier: list,
    axis: list[float] | None = None,
    note: str | None = None,
) -> Figure:
    figure, ax = plt.subplots(figsize=(3.6, 1.9))
    x = range(len(labels))
    if any(not math.isnan(v) for v in earlier):
        ax.plot(x, earlier, color=MUTED, linestyle="--", linewidth=1.2, label="previous periods")
    ax.plot(x, values, color=PRIMARY, linewidth=2, marker="o", markersize=2.5, label="this period and before")
    ax.set_title(title, color=INK)
    if axis:
        ax.set_ylim(*axis)
    if note:
        ax.annotate(
            note, xy=(1, 1.02), xycoords="axes fraction", ha="right", va="bottom", fontsize=6.5, color=MUTED
        )
    ax.yaxis.set_major_locator(MaxNLocator(4))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: axis_number(v, unit, _tick_step(ax))))
    step = max(1, len(labels) // 4)
    ax.set_xticks(list(x)[::step], [labels[i] for i in range(0, len(labels), step)])
    ax.tick_params(axis="both", length=0)
    ax.margins(x=0.02)
    figure.tight_layout(pad=0.4)
    return figure


def _draw_movers(title: str, unit: str, names: list[str], changes: list) -> Figure:
    figure, ax = plt.subplots(figsize=(3.6, 0.3 + 0.22 * max(len(names), 1)))
    colours = [GOOD if c >= 0 else BAD for c in changes]
    ax.barh(range(len(names)), changes, color=colours, height=0.6)
    names = ["".join(c for c in n if c.isprintable()) for n in names]  # no control characters
    ax.set_yticks(range(len(names)), [n if len(n) <= 28 else n[:27] + "…" for n in names])
    ax.invert_yaxis()
    ax.axvline(0, color=INK, linewidth=0.6)
    ax.grid(axis="x", color=GRID)
    ax.grid(axis="y", visible=False)
    _percent_axis(ax.xaxis)
    ax.set_title(title, color=INK)
    ax.tick_params(axis="both", length=0)
    figure.tight_layout(pad=0.4)
    return figure


def _percent_axis(axis: Axis) -> None:
    """Change-% ticks at round steps (1, 2, 5, 10...), labelled without decimals."""
    axis.set_major_locator(MaxNLocator(6, steps=[1, 2, 5, 10]))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:+.0f}%" if v else "0%"))


def _draw_distribution(title: str, values: list, xlabel: str) -> Figure:
    figure, ax = plt.subplots(figsize=(3.6, 1.9))
    finite = sorted(v for v in values if not math.isnan(v) and not math.isinf(v))
    # Most entities move a little: scale to the bulk (2nd to 98th percentile) and pile outliers at the edges.
    low, high = np.percentile(finite, [2, 98])
    edge = max(5.0, math.ceil(max(abs(low), abs(high)) / 5) * 5)
    clipped = [max(-edge, min(edge, v)) for v in finite]
    ax.hist(clipped, bins=24, range=(-edge, edge), color=PRIMARY, edgecolor="white", linewidth=0.5)
    ax.set_ylabel("entities")
    ax.axvline(0, color=INK, linewidth=0.6)
    ax.set_xlabel(xlabel)
    _percent_axis(ax.xaxis)
    ax.set_title(title, color=INK)
    ax.tick_params(axis="both", length=0)
    figure.tight_layout(pad=0.4)
    return figure


DRAWINGS: dict[str, Callable[..., Figure]] = {
    "trend": _draw_trend,
    "movers": _draw_movers,
    "distribution": _draw_distribution,
}


def draw_png(chart: Chart) -> bytes:
    """One chart of the model as a PNG."""
    spec = {
        k: v if k in ("labels", "names") or not isinstance(v, list) else _clean(v)
        for k, v in chart.spec.items()
    }
    with plt.rc_context(STYLE):
        figure = DRAWINGS[chart.kind](**spec)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=200, metadata={"Software": None})
        plt.close(figure)
    return buffer.getvalue()
