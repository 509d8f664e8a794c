"""Hourly KPI rows folded into local days inside the warehouse, in the same one query.

A KPI of `grain: hour` returns a row per entity and UTC hour; reports count local days. Rather
than bring every hour back (24 rows per entity and day) and fold them in pandas, a source that
knows its dialect's arithmetic (`HourSql`) wraps the KPI's query: each hour moves to local time,
business hours are kept, and the rows are summed per entity and local day. The answer is exactly
what `reports.kpis.frames` folds in pandas for a source that cannot.

Local time is integer arithmetic on microseconds since 1970: the zone's offsets over the queried
range, and the instants they change (daylight saving), come from Python's own time zone data,
the same that pandas uses, and are written into the query as numbers. So no warehouse needs time
zone support, and none can disagree with pandas about a zone's rules.

Beside each day the wrapper returns, on every row, what the fold in pandas learns from all the
hours: when the newest hour starts, how many values were infinite, and whether any row was
doubled, had no entity or hour, or lies before 2 January 1970 (then the caller asks for the plain
rows and folds them in pandas, which says exactly what is wrong). A day without business hours
is left out, as in pandas, unless no day has any: then every day comes back with none counted,
to carry those figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

# Columns beside the measures: the newest hour (microseconds since 1970, UTC), how many values
# were ±infinity, how many rows were faulty, and how many of the day's hours were counted. `day`
# comes back as whole days since 1970-01-01.
NEWEST, INFINITE, FAULTS, COUNTED = "herald_newest", "herald_infinite", "herald_faults", "herald_rows"
MICROS_PER_MINUTE = 60_000_000
MICROS_PER_DAY = 86_400_000_000
# How far beyond the queried range offsets are looked up: a row just outside it still lands on
# its right local day, so the day filter after the query drops it as pandas would.
MARGIN = timedelta(days=2)


@dataclass(frozen=True)
class HourSql:
    """One SQL dialect's pieces for the wrapper; each is a template."""

    micros: str  # `{hour}` as integer microseconds since 1970-01-01 UTC; a naive hour is UTC
    divide: str  # `{a}` divided by `{b}`, both non-negative integers, rounded down, as an integer
    finite: str  # true when `{x}` is a number neither infinite nor NaN
    infinite: str  # true when `{x}` is ±infinity
    # `{k}` (an integer from 0 to 31) as the integer 2 ** k, where the dialect has BIT_OR: doubled
    # hours are then found from one bit per hour, much cheaper than counting distinct hours.
    bit: str | None = None


@dataclass(frozen=True)
class BusinessWindow:
    """Local hours that count: on these weekdays (0 Monday ... 6 Sunday), from `start` to `end`
    minutes past midnight, the end excluded."""

    weekdays: Sequence[int]
    start: int
    end: int


def utc_offsets(zone: ZoneInfo, start: datetime, end: datetime) -> list[tuple[int | None, int]]:
    """The zone's offset from UTC between naive-UTC `start` and `end` (and a margin), as
    (until, offset) in microseconds since 1970: each offset holds before its `until`, the
    last one (until None) from there on."""
    first = start.replace(tzinfo=UTC) - MARGIN
    last = end.replace(tzinfo=UTC) + MARGIN

    def offset(moment: datetime) -> int:
        change = moment.astimezone(zone).utcoffset() or timedelta()
        return change // timedelta(microseconds=1)

    def micros(moment: datetime) -> int:
        return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)

    found: list[tuple[int | None, int]] = []
    moment, current = first, offset(first)
    while moment < last:
        step = min(moment + timedelta(hours=1), last)
        if offset(step) != current:
            low, high = moment, step  # the change lies in (low, high]: find its second
            while high - low > timedelta(seconds=1):
                middle = low + (high - low) / 2
                low, high = (middle, high) if offset(middle) == current else (low, middle)
            found.append((micros(high), current))
            current = offset(high)
        moment = step
    found.append((None, current))
    return found


def fold_hours(
    sql: str,
    dialect: HourSql,
    offsets: Sequence[tuple[int | None, int]],
    measures: Sequence[str],
    how: str,
    business: BusinessWindow | None = None,
) -> str:
    """The KPI's query `sql` (one SELECT, no closing `;`) wrapped to return (entity, day,
    measures...) per local day, plus the NEWEST, INFINITE, FAULTS and COUNTED columns.

    `offsets` are the zone's, from `utc_offsets`; `how` is sum, mean, max or last.
    """

    def div(a: str, b: int) -> str:  # parenthesised whole: `7 * a // b` would multiply first
        return f"({dialect.divide.format(a=a, b=b)})"

    if len(offsets) == 1:
        shift = str(int(offsets[0][1]))
    else:
        steps = " ".join(
            f"WHEN herald_micros < {int(until)} THEN {int(offset)}"
            for until, offset in offsets
            if until is not None
        )
        shift = f"CASE {steps} ELSE {int(offsets[-1][1])} END"
    # Lines of their own around the KPI's SQL, so a closing `-- comment` cannot swallow the rest.
    layer = (
        f"SELECT entity, {', '.join(measures)}, {dialect.micros.format(hour='hour')} AS herald_micros"
        f"\nFROM (\n{sql}\n) AS herald_kpi"
    )
    layer = (
        f"SELECT entity, {', '.join(measures)}, herald_micros,"
        f" {div(a=f'herald_micros + {shift}', b=MICROS_PER_MINUTE)} AS herald_minute\n"
        f"FROM ({layer}) AS herald_hours"
    )
    layer = (
        f"SELECT entity, {', '.join(measures)}, herald_micros, herald_minute,"
        f" {div(a='herald_minute', b=1440)} AS day\nFROM ({layer}) AS herald_minutes"
    )
    if business is None:
        inside = "TRUE"
    else:
        weekday = f"(day + 3 - 7 * {div(a='day + 3', b=7)})"  # 1970-01-01 was a Thursday
        minute = "(herald_minute - 1440 * day)"
        days = ", ".join(str(int(d)) for d in business.weekdays) or "-1"
        inside = (
            f"({weekday} IN ({days}) AND {minute} >= {int(business.start)}"
            f" AND {minute} < {int(business.end)})"
        )
    kept = ", ".join(
        f"CASE WHEN herald_in AND {dialect.finite.format(x=m)} THEN {m} END AS {m}" for m in measures
    )
    infinite = " + ".join(f"CASE WHEN {dialect.infinite.format(x=m)} THEN 1 ELSE 0 END" for m in measures)
    layer = (
        f"SELECT entity, day, herald_micros, herald_in, {infinite} AS herald_inf, {kept}\n"
        f"FROM (SELECT *, {inside} AS herald_in FROM ({layer}) AS herald_days) AS herald_local"
    )
    if how == "last":  # the value of each day's latest counted hour that has one
        latest = ", ".join(
            f"MAX(CASE WHEN {m} IS NOT NULL THEN herald_micros END)"
            f" OVER (PARTITION BY entity, day) AS herald_last_{m}"
            for m in measures
        )
        layer = f"SELECT *, {latest}\nFROM ({layer}) AS herald_ordered"
    folded = ", ".join(_fold(m, how) for m in measures)
    layer = (
        f"SELECT entity, day, {folded},"
        f" COUNT(CASE WHEN herald_in THEN 1 END) AS {COUNTED},"
        " MAX(herald_micros) AS herald_last,"
        " SUM(herald_inf) AS herald_inf,"
        f" {_doubled(dialect, div)}"
        f" + SUM(CASE WHEN herald_micros < {MICROS_PER_DAY} THEN 1 ELSE 0 END)"
        " + CASE WHEN entity IS NULL THEN COUNT(*) ELSE 0 END AS herald_faults\n"
        f"FROM ({layer}) AS herald_marked\nGROUP BY entity, day"
    )
    layer = (
        f"SELECT entity, day, {', '.join(measures)},"
        f" MAX(herald_last) OVER () AS {NEWEST},"
        f" SUM(herald_inf) OVER () AS {INFINITE},"
        f" SUM(herald_faults) OVER () AS {FAULTS},"
        f" {COUNTED}, MAX({COUNTED}) OVER () AS herald_most\n"
        f"FROM ({layer}) AS herald_grouped"
    )
    return (
        f"SELECT entity, day, {', '.join(measures)}, {NEWEST}, {INFINITE}, {FAULTS}, {COUNTED}\n"
        f"FROM ({layer}) AS herald_summed\nWHERE {COUNTED} > 0 OR herald_most = 0"
    )


def _doubled(dialect: HourSql, div) -> str:
    """How many of a local day's rows repeat an hour already there.

    With bits: a local day spans at most 26 consecutive UTC hours (25 in a day that leaves summer
    time, one more where the zone is off the hour), so each hour since 1970, modulo 32, has a bit
    of its own in the day, and the bits' sum exceeds their OR exactly when some bit comes twice.
    Two rows inside one hour (10:00 and 10:30) share a bit too: the caller then takes the plain
    rows and folds them in pandas, so the answer is the same, only slower.
    """
    if dialect.bit is None:
        return "COUNT(*) - COUNT(DISTINCT herald_micros)"
    hour = div(a="herald_micros", b=3_600_000_000)
    bit = dialect.bit.format(k=f"{hour} - 32 * {div(a=hour, b=32)}")
    one = f"CASE WHEN herald_micros >= 0 THEN {bit} ELSE 0 END"  # earlier rows are faults anyway
    return f"(CASE WHEN SUM({one}) > BIT_OR({one}) THEN 1 ELSE 0 END)"


def _fold(measure: str, how: str) -> str:
    """One measure over a local day's counted hours, as pandas folds them."""
    if how == "last":
        return f"MAX(CASE WHEN herald_micros = herald_last_{measure} THEN {measure} END) AS {measure}"
    if how == "mean":
        return f"AVG({measure}) AS {measure}"
    if how == "max":
        return f"MAX({measure}) AS {measure}"
    # pandas adds up a day whose counted hours are all missing to 0, not to a missing value.
    return f"COALESCE(SUM({measure}), 0) AS {measure}"
