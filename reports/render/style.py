"""The house style every chart shares (render/svg.py draws them)."""

from __future__ import annotations

import math

INK = "#1f2933"
MUTED = "#9aa5b1"
PRIMARY = "#1f4e79"
GOOD = "#2e7d32"
BAD = "#c62828"
GRID = "#e4e7eb"


def axis_number(value: float, unit: str, step: float = 1.0) -> str:
    """Short tick labels: 12k, 1.2M, 45%, 99.5%, 30 s; `step` is the distance between ticks."""
    if unit == "percent":
        decimals = max(0, min(2, -math.floor(math.log10(step * 100)))) if step > 0 else 0
        return f"{value * 100:.{decimals}f}%"
    if unit == "seconds":
        return f"{value:,.0f} s"
    size = abs(value)
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if size >= limit:
            return f"{value / limit:,.1f}".rstrip("0").rstrip(".") + suffix
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"
