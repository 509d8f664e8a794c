"""Reporting periods: the current period to date, the one before it, and trailing runs of them.

A period is a closed range of local calendar days. The current period runs from the start of
the day, week or month holding the as-of date up to and including that date; the previous
period has the same length one grain earlier, so a Wednesday's week-to-date is compared with
last Monday-to-Wednesday, never with a whole week.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from reports.config.types import WEEKDAYS

Grain = Literal["day", "week", "month"]
# The most days one period of each grain can span: how far back to look for N periods.
GRAIN_DAYS: dict[str, int] = {"day": 1, "week": 7, "month": 31}


@dataclass(frozen=True, order=True)
class Period:
    start: date
    end: date  # inclusive

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def __contains__(self, day: date) -> bool:
        return self.start <= day <= self.end

    def shifted(self, days: int) -> Period:
        return Period(self.start - timedelta(days=days), self.end - timedelta(days=days))

    def label(self, grain: Grain) -> str:
        if grain == "day":
            return self.start.isoformat()
        if grain == "month":
            return self.start.strftime("%B %Y")
        return f"week of {self.start.isoformat()}"


def period_start(day: date, grain: Grain, week_start: str = "monday") -> date:
    if grain == "day":
        return day
    if grain == "week":
        offset = (day.weekday() - WEEKDAYS.index(week_start)) % 7
        return day - timedelta(days=offset)
    return day.replace(day=1)


def _add_months(day: date, months: int) -> date:
    """Move by whole months, clipping to the month's last day (31 Mar − 1 month = 28 or 29 Feb)."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day, last))


def shift(period: Period, grain: Grain, count: int = 1) -> Period:
    """The same stretch of days `count` grains earlier."""
    if grain == "month":
        start = _add_months(period.start, -count)
        end = _add_months(period.end, -count)
        # A month-to-date that reached its month's last day compares with the whole earlier month.
        if period.end.day == calendar.monthrange(period.end.year, period.end.month)[1]:
            end = date(end.year, end.month, calendar.monthrange(end.year, end.month)[1])
        return Period(start, end)
    days = 7 if grain == "week" else 1
    return period.shifted(days * count)


def current(as_of: date, grain: Grain, week_start: str = "monday") -> Period:
    return Period(period_start(as_of, grain, week_start), as_of)


def previous(as_of: date, grain: Grain, week_start: str = "monday") -> Period:
    return shift(current(as_of, grain, week_start), grain)


def trailing(as_of: date, grain: Grain, count: int, week_start: str = "monday") -> list[Period]:
    """`count` whole periods ending with the current one (to date), oldest first."""
    now = current(as_of, grain, week_start)
    periods = [now]
    start = now.start
    for _ in range(count - 1):
        end = start - timedelta(days=1)
        start = period_start(end, grain, week_start)
        periods.append(Period(start, end))
    return periods[::-1]


@dataclass(frozen=True)
class Clock:
    """One run's calendar, built once: its as-of date, the job's period grain, the first day of
    a week and the time zone (resolved once). KPIs, rules and reports all read this one value."""

    as_of: date
    grain: Grain = "day"
    week_start: str = "monday"
    timezone: str = "UTC"
    tz: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tz", ZoneInfo(self.timezone))

    @property
    def current(self) -> Period:
        """The period to date that holds the as-of date."""
        return current(self.as_of, self.grain, self.week_start)

    @property
    def previous(self) -> Period:
        """The same stretch of days one period earlier."""
        return previous(self.as_of, self.grain, self.week_start)

    def trailing(self, count: int) -> list[Period]:
        """`count` whole periods ending with the current one (to date), oldest first."""
        return trailing(self.as_of, self.grain, count, self.week_start)

    def shift(self, period: Period, count: int = 1) -> Period:
        return shift(period, self.grain, count)

    def on(self, as_of: date) -> Clock:
        """The same calendar on another day (an earlier run, for `for: N runs`)."""
        return replace(self, as_of=as_of)

    def midnight(self, day: date) -> datetime:
        """When `day` begins, in the clock's time zone."""
        return datetime.combine(day, time(), self.tz)

    @property
    def end_of_day(self) -> datetime:
        """When the as-of day ends: how old data is, is measured from here."""
        return self.midnight(self.as_of + timedelta(days=1))


def default_as_of(timezone: str, now: datetime | None = None) -> date:
    """Yesterday in `timezone`: the last day whose data is complete."""
    zone = ZoneInfo(timezone)
    now = now or datetime.now(zone)
    return now.astimezone(zone).date() - timedelta(days=1)
