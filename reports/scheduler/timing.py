"""When jobs fire: cron and `every` triggers in a time zone, catch-up after downtime, and waiting.

Pure logic, no I/O. `every` phrases are the ones users know from the `schedule` library, but Herald
does not use its run loop: it computes the next run from `datetime.now()` only, so it cannot list the
fire times missed while Herald was down, nor give a run a stable nominal time to be known by.
"""

from __future__ import annotations

import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter

from reports.errors import HeraldError

# The longest single wait: a wall clock changed under a sleeping scheduler is noticed this late at most.
_WAIT_CHUNK = 60.0

_WEEKDAYS = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")  # cron 0-6
_EVERY_FORMS = "'10 minutes', 'minute', 'hour', '2 hours', 'day', 'day at 07:00' or 'monday at 08:00'"
_EVERY = re.compile(r"^(?:(?P<count>\d+)\s+)?(?P<unit>[a-z]+?)s?(?:\s+at\s+(?P<at>\S+))?$")


class ScheduleError(HeraldError, ValueError):
    """A schedule that cannot be used as written; `hint` says how to write it."""


class Trigger(ABC):
    """When a job fires: nominal fire times in the trigger's time zone.

    Compare fire times as instants (`.astimezone(UTC)`): Python compares two datetimes in one zone by
    wall clock, ignoring `fold`, and `==` across zones is always False for a time in a repeated hour.
    """

    timezone: str

    @abstractmethod
    def after(self, moment: datetime) -> datetime:
        """The first fire time strictly after `moment` (aware, any zone), in the trigger's zone."""

    @abstractmethod
    def describe(self) -> str:
        """One line for people, e.g. "0 7 * * * (Europe/London)"."""

    def between(self, start: datetime, end: datetime) -> list[datetime]:
        """Every fire time in (start, end], oldest first."""
        times: list[datetime] = []
        fire, end = self.after(start), _instant(end, "end")
        while _instant(fire) <= end:
            times.append(fire)
            fire = self.after(fire)
        return times

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"


class CronTrigger(Trigger):
    """A five-field cron string read as wall-clock time in a time zone.

    Across DST changes each wall-clock time fires once: a time repeated when clocks go back fires at its
    first occurrence only (so an hourly job skips the repeated hour), and a time skipped when clocks go
    forward fires when the gap ends.
    """

    def __init__(self, cron: str, timezone: str) -> None:
        cron = cron.strip()
        if len(cron.split()) != 5 or not croniter.is_valid(cron):
            raise ScheduleError(
                f"cron: '{cron}' is not a valid cron schedule",
                "use five fields, minute hour day-of-month month day-of-week, e.g. '0 8 * * MON'",
            )
        self.cron = cron
        self.timezone = timezone
        self._zone = _zone(timezone)

    def after(self, moment: datetime) -> datetime:
        # Walk naive wall-clock times and place each in the zone ourselves, so DST is handled here, in
        # plain sight, rather than by croniter. Placing is monotonic in wall time, so the first placed
        # time past `moment` is the answer; starting at moment's own wall time misses none.
        wall = _aware(moment, "moment").astimezone(self._zone).replace(tzinfo=None)
        walk = croniter(self.cron, wall)
        while True:
            try:
                fire = self._place(walk.get_next(datetime))
            except CroniterBadDateError:
                raise ScheduleError(
                    f"cron: '{self.cron}' never fires", "check the day-of-month and month fields"
                ) from None
            if _instant(fire) > _instant(moment):
                return fire

    def describe(self) -> str:
        return f"{self.cron} ({self.timezone})"

    def _place(self, wall: datetime) -> datetime:
        """The instant a naive wall-clock time stands for in the zone."""
        first = wall.replace(tzinfo=self._zone, fold=0)
        if first.astimezone(UTC).astimezone(self._zone).replace(tzinfo=None) != wall:
            # The wall time does not exist (clocks went forward over it): fire the instant the gap
            # ends, e.g. 01:30 on the spring-forward night in London fires at 02:00 BST.
            return _gap_end(wall, self._zone)
        # An ambiguous wall time (clocks went back over it) has fold=0 and fold=1 readings; fold=0,
        # the first, is the one that fires, so the job runs once, not twice.
        return first


class EveryTrigger(Trigger):
    """A `schedule`-style phrase ("10 minutes", "day at 07:00", "monday at 08:00") run as cron."""

    def __init__(self, every: str, timezone: str) -> None:
        self.every = every
        self.cron = every_to_cron(every)
        self.timezone = timezone
        self._cron = CronTrigger(self.cron, timezone)

    def after(self, moment: datetime) -> datetime:
        return self._cron.after(moment)

    def describe(self) -> str:
        return f"every {self.every.strip()} ({self.timezone})"


def trigger(cron: str | None, every: str | None, timezone: str) -> Trigger:
    """The trigger for a job's schedule: exactly one of `cron` and `every`."""
    if (cron is None) == (every is None):
        raise ScheduleError("a schedule needs exactly one of cron and every", "e.g. cron: '0 7 * * *'")
    return CronTrigger(cron, timezone) if cron is not None else EveryTrigger(every or "", timezone)


def every_to_cron(every: str) -> str:
    """The cron expression equivalent to a `schedule`-style phrase."""
    text = " ".join(every.lower().split())
    match = _EVERY.match(text)
    if not match:
        raise _unknown(every)
    count = int(match["count"] or 1)
    unit, at = match["unit"], match["at"]
    if count < 1:
        raise ScheduleError(f"every: '{every}' never fires", "use a count of 1 or more, or a cron string")
    if unit == "minute" and at is None:
        if 60 % count:
            raise ScheduleError(
                f"every: '{every}' does not divide the hour evenly",
                "use a number of minutes that divides 60 (such as 5, 10, 15, 20 or 30), or a cron string",
            )
        return {1: "* * * * *", 60: "0 * * * *"}.get(count, f"*/{count} * * * *")
    if unit == "hour":
        if 24 % count:
            raise ScheduleError(
                f"every: '{every}' does not divide the day evenly",
                "use a number of hours that divides 24 (such as 2, 3, 4, 6 or 12), or a cron string",
            )
        minute = 0 if at is None else _minute_of_hour(every, at)
        return {1: f"{minute} * * * *", 24: f"{minute} 0 * * *"}.get(count, f"{minute} */{count} * * *")
    if (unit == "day" or unit in _WEEKDAYS) and count == 1:
        hour, minute = (0, 0) if at is None else _time_of_day(every, at)
        weekday = "*" if unit == "day" else str(_WEEKDAYS.index(unit))
        return f"{minute} {hour} * * {weekday}"
    if unit == "second":
        raise ScheduleError(
            f"every: '{every}' is finer than Herald schedules", "use minutes, or a cron string"
        )
    if unit == "day" or unit in _WEEKDAYS:
        raise ScheduleError(
            f"every: '{every}' cannot be kept in step with the calendar",
            "use 'day', a weekday such as 'monday at 08:00', or a cron string",
        )
    raise _unknown(every)


def as_of_for(scheduled_for: datetime, timezone: str, days_before: int = 1) -> date:
    """A run's as-of date: the calendar day of `scheduled_for` in `timezone`, less `days_before`."""
    local = _aware(scheduled_for, "scheduled_for").astimezone(_zone(timezone))
    return local.date() - timedelta(days=days_before)


@dataclass(frozen=True)
class Due:
    """Fire times to run now, and fire times given up on; both oldest first."""

    run: list[datetime]
    missed: list[datetime]


def due(
    trigger: Trigger, last: datetime | None, now: datetime, grace: timedelta, coalesce: bool = True
) -> Due:
    """What is due at `now` given the last fire time handled (None: never run, look back `grace` only).

    Fire times older than `now - grace` are missed. Of the rest, `coalesce` runs only the latest and
    counts the older ones as missed; otherwise all of them run.
    """
    now = _instant(now, "now")
    cutoff = now - grace
    fires = trigger.between(cutoff if last is None else last, now)
    late = [fire for fire in fires if _instant(fire) < cutoff]
    timely = [fire for fire in fires if _instant(fire) >= cutoff]
    if coalesce:
        return Due(run=timely[-1:], missed=late + timely[:-1])
    return Due(run=timely, missed=late)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def sleep_until(moment: datetime, wake: threading.Event, now: Callable[[], datetime] = _utc_now) -> bool:
    """Block until `moment` or until `wake` is set; True when woken by `wake`.

    Waits on the event in chunks of at most a minute, re-reading the clock between them, so a wall
    clock set forward or back (or a machine resumed from sleep) is noticed within a minute.
    """
    while not wake.is_set():
        remaining = (_instant(moment, "moment") - _instant(now())).total_seconds()
        if remaining <= 0:
            return False
        if wake.wait(min(remaining, _WAIT_CHUNK)):
            return True
    return True


def _zone(timezone: str) -> ZoneInfo:
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(
            f"unknown time zone '{timezone}'", "use an IANA name such as Europe/London or UTC"
        ) from None


def _aware(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {moment!r}")
    return moment


def _instant(moment: datetime, name: str = "fire time") -> datetime:
    """`moment` in UTC, where arithmetic and comparison follow the real clock, not the wall clock."""
    return _aware(moment, name).astimezone(UTC)


def _gap_end(wall: datetime, zone: ZoneInfo) -> datetime:
    """The instant clocks jumped forward over the non-existent wall time `wall`."""
    # Read with the offsets from either side of the jump, `wall` lands once before it and once after
    # it (PEP 495 folds); bisect between the two, to the second.
    before, after = sorted(wall.replace(tzinfo=zone, fold=fold).astimezone(UTC) for fold in (0, 1))
    offset_after = after.astimezone(zone).utcoffset()
    while after - before > timedelta(seconds=1):
        middle = before + timedelta(seconds=(after - before).total_seconds() // 2)
        if middle.astimezone(zone).utcoffset() == offset_after:
            after = middle
        else:
            before = middle
    return after.astimezone(zone)


def _minute_of_hour(every: str, at: str) -> int:
    match = re.fullmatch(r":(\d\d)", at)
    if not match or int(match[1]) > 59:
        raise ScheduleError(
            f"every: '{every}' has an invalid minute", "write it as :MM after 'at', e.g. 'hour at :30'"
        )
    return int(match[1])


def _time_of_day(every: str, at: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d\d?):(\d\d)", at)
    if not match or int(match[1]) > 23 or int(match[2]) > 59:
        raise ScheduleError(
            f"every: '{every}' has an invalid time of day",
            "write it as HH:MM after 'at', e.g. 'day at 07:00' (seconds are not supported)",
        )
    return int(match[1]), int(match[2])


def _unknown(every: str) -> ScheduleError:
    return ScheduleError(
        f"every: '{every}' is not a schedule Herald knows", f"write {_EVERY_FORMS}, or use a cron string"
    )
