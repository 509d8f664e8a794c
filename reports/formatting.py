"""Numbers in the user's words: thousands separators, units, signed changes, a dash for missing."""

from __future__ import annotations

import math
from datetime import timedelta

MISSING = "—"


def is_missing(value: float | None) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def format_value(value: float | None, unit: str = "count") -> str:
    if is_missing(value):
        return MISSING
    if unit == "percent":
        return f"{value * 100:,.1f}%"
    if unit == "seconds":
        return format_duration(timedelta(seconds=value))
    if unit == "currency":
        return f"{value:,.2f}"
    if float(value).is_integer():
        return f"{value:,.0f}"
    return f"{value:,.1f}" if abs(value) >= 100 else f"{value:,.2f}"


def format_change(change: float | None, unit: str = "count") -> str:
    """An absolute change, signed; percentage-unit KPIs change by percentage points."""
    if is_missing(change):
        return MISSING
    sign = "+" if change > 0 else "−" if change < 0 else ""
    if unit == "percent":
        return f"{sign}{abs(change) * 100:,.1f} pp"
    return sign + format_value(abs(change), unit)


def format_change_pct(change_pct: float | None) -> str:
    if is_missing(change_pct) or math.isinf(change_pct):
        return MISSING
    sign = "+" if change_pct > 0 else "−" if change_pct < 0 else ""
    return f"{sign}{abs(change_pct):,.1f}%"


def format_duration(delta: timedelta) -> str:
    seconds = delta.total_seconds()
    if seconds < 60:
        return f"{seconds:,.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m {int(seconds % 60):02d}s"
    if seconds < 86400:
        return _plural(seconds / 3600, "hour")
    return _plural(seconds / 86400, "day")


def _plural(amount: float, unit: str) -> str:
    amount = round(amount, 1)
    return f"{amount:g} {unit}" + ("" if amount == 1 else "s")
