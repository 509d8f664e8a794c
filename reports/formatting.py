"""Numbers in the user's words (thousands separators, units, signed changes, a dash for missing),
and plain-text tables for the terminal."""

from __future__ import annotations

import math
import unicodedata
from datetime import date, datetime, timedelta

MISSING = "—"


def as_number(value: object) -> float | None:
    """A float, or None for anything missing (None, NaN, pandas NA), infinite or not a number."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


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
    if float(value).is_integer() or abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:,.1f}" if abs(value) >= 100 else f"{value:,.2f}"


def format_change(change: float | None, unit: str = "count") -> str:
    """An absolute change, signed; percentage-unit KPIs change by percentage points."""
    if is_missing(change):
        return MISSING
    if unit == "percent":
        return _signed(change, f"{abs(change) * 100:,.1f} pp")
    return _signed(change, format_value(abs(change), unit))


def format_change_pct(change_pct: float | None) -> str:
    if is_missing(change_pct) or math.isinf(change_pct):
        return MISSING
    return _signed(change_pct, f"{abs(change_pct):,.1f}%")


def shows_no_change(text: str) -> bool:
    """A formatted change that reads as none: "0.0 pp", "0.0%", "0" (or missing)."""
    return not any("1" <= c <= "9" for c in text)


def _signed(change: float, magnitude: str) -> str:
    """A sign only on a change that shows: one that rounds away reads 0.0 pp, never −0.0 pp."""
    if shows_no_change(magnitude):
        return magnitude
    return ("+" if change > 0 else "−") + magnitude


def format_duration(delta: timedelta) -> str:
    seconds = delta.total_seconds()
    if seconds < 60:
        return f"{seconds:,.1f} s"
    if seconds < 3600:
        whole = round(seconds)  # 99.53 s is 1m 40s, not 1m 39s
        return f"{whole // 60}m {whole % 60:02d}s" if whole < 3600 else "1 hour"
    if seconds < 86400:
        return _plural(seconds / 3600, "hour")
    return _plural(seconds / 86400, "day")


def _plural(amount: float, unit: str) -> str:
    amount = round(amount, 1)
    return f"{amount:g} {unit}" + ("" if amount == 1 else "s")


def format_span(start: date, end: date) -> str:
    """16 – 22 Nov 2026, 28 Sep – 4 Oct 2026, 30 Dec 2025 – 5 Jan 2026, or 22 Nov 2026 for one day."""
    if start == end:
        return f"{end.day} {end:%b %Y}"
    if (start.year, start.month) == (end.year, end.month):
        return f"{start.day} – {end.day} {end:%b %Y}"
    if start.year == end.year:
        return f"{start.day} {start:%b} – {end.day} {end:%b %Y}"
    return f"{start.day} {start:%b %Y} – {end.day} {end:%b %Y}"


def format_through(moment: datetime | None) -> str:
    """The last moment data covers, from the end of its newest period: a day, or a day and hour."""
    if moment is None:
        return MISSING
    last = moment - timedelta(microseconds=1)
    if (last.hour, last.minute) == (23, 59):
        return f"{last.day} {last:%b %Y}"
    return f"{last.day} {last:%b %Y} {moment:%H:%M}"


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(_width(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]

    def line(cells: list[str]) -> str:
        padded = [str(c) + " " * (w - _width(str(c))) for c, w in zip(cells, widths, strict=True)]
        return "  ".join(padded).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def clip(text: object, limit: int = 80) -> str:
    """Text from the warehouse cut to fit its place, with an ellipsis: a 10,000-character name
    must not push a page's alerts off it. The workbook keeps the full text."""
    value = "" if text is None else str(text)
    return value if len(value) <= limit else value[: limit - 1].rstrip() + "…"


def standing(finding: object) -> str:
    """How an alert stands on its run: "new", "since 20 Nov", "resolved", or "" when untracked."""
    status, since = getattr(finding, "status", ""), getattr(finding, "since", None)
    if status == "ongoing" and since is not None:
        return f"since {since.day} {since:%b}"
    return status
