"""Small config value types: durations, time zones, cron strings, run counts, weekdays."""

from __future__ import annotations

import difflib
import re
import zoneinfo
from datetime import time, timedelta
from functools import cache
from typing import Annotated, Any, Literal

from croniter import croniter
from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

from reports.config.base import fail, quoted
from reports.scheduler.timing import ScheduleError, every_to_cron

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]

_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 7 * 86400}
_SHORT = {"s": "second", "m": "minute", "h": "hour", "d": "day", "w": "week"}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(second|minute|hour|day|week|[smhdw])s?\s*$")
_RUNS = re.compile(r"^\s*(\d+)\s*runs?\s*$")
MAX_DURATION = timedelta(days=366)  # longer is a typo, and would overflow timedelta soon after
MAX_RUNS = 1000
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_TIME = re.compile(r"^\s*([01]?\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?\s*$")
# A rule's bound may be written as a percentage, '80%' (0.8), as well as a number.
PERCENT = re.compile(r"^\s*-?\d+(\.\d+)?\s*%\s*$")
PERCENT_JSON_SCHEMA = {"type": "string", "pattern": PERCENT.pattern, "examples": ["80%"]}


def _shown(value: Any) -> str:
    return quoted(value) or "the value"


def _duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    else:
        match = _DURATION.match(value) if isinstance(value, str) else None
        if not match:
            raise fail(
                f"{_shown(value)} is not a duration",
                "write a number and a unit, e.g. '2 days' or '36 hours' (short: '10m', '6h')",
            )
        seconds = float(match[1]) * _UNITS[_SHORT.get(match[2], match[2])]
    if not 0 <= seconds <= MAX_DURATION.total_seconds():
        raise fail(f"{_shown(value)} is too long", "a duration is at most 366 days")
    return timedelta(seconds=seconds)


def _run_count(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        count = value
    else:
        match = _RUNS.match(value) if isinstance(value, str) else None
        count = int(match[1]) if match and len(match[1]) <= 6 else 0
    if not 1 <= count <= MAX_RUNS:
        raise fail(
            f"{_shown(value)} is not a number of runs",
            f"write how many runs in a row (1 to {MAX_RUNS}), e.g. '2 runs'",
        )
    return count


def _time_of_day(value: Any) -> time:
    # Not a number: pydantic would read 540 as 00:09 UTC, which compares with no local time.
    if isinstance(value, time) and value.tzinfo is None:
        return value
    match = _TIME.match(value) if isinstance(value, str) else None
    if not match:
        raise fail(f"{_shown(value)} is not a time of day", "write it as '09:00' (24-hour clock)")
    return time(int(match[1]), int(match[2]), int(match[3] or 0))


@cache
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _timezone(value: Any) -> str:
    name = str(value) if isinstance(value, str | int | float) else ""
    if name not in _zones():
        close = difflib.get_close_matches(name, _zones(), n=1) if len(name) <= 64 else []
        hint = f"did you mean '{close[0]}'?" if close else "use an IANA name such as Europe/London or UTC"
        raise fail(f"unknown time zone {_shown(value)}", hint)
    return name


def _cron(value: Any) -> str:
    text = value.strip() if isinstance(value, str) else ""
    if len(text) > 200 or len(text.split()) != 5 or not croniter.is_valid(text):
        raise fail(
            f"{_shown(value)} is not a valid cron schedule",
            "use five fields, minute hour day-of-month month day-of-week, e.g. '0 8 * * MON'",
        )
    return text


def _every(value: Any) -> str:
    text = str(value).strip() if isinstance(value, str | int) else ""
    if not text or len(text) > 100:
        raise fail(f"{_shown(value)} is not a schedule phrase", "write e.g. 'day at 07:00', or use `cron:`")
    try:
        every_to_cron(text)
    except ScheduleError as exc:
        raise fail(exc.message, exc.hint) from None
    return text


def _name(value: Any) -> str:
    text = value if isinstance(value, str) else ""
    if not _NAME.match(text):
        raise fail(
            f"{_shown(value)} is not a valid name",
            "use lower-case letters, digits and underscores, e.g. 'usage_drop'",
        )
    return text


Duration = Annotated[
    timedelta,
    BeforeValidator(_duration),
    PlainSerializer(lambda d: f"{d.total_seconds() / 3600:g} hours"),
    WithJsonSchema({"type": "string", "pattern": _DURATION.pattern, "examples": ["2 days", "36 hours"]}),
]
TimeOfDay = Annotated[
    time, BeforeValidator(_time_of_day), WithJsonSchema({"type": "string", "pattern": _TIME.pattern})
]
RunCount = Annotated[
    int,
    BeforeValidator(_run_count),
    WithJsonSchema(
        {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "string", "pattern": _RUNS.pattern}]}
    ),
]
TimeZoneName = Annotated[
    str, BeforeValidator(_timezone), WithJsonSchema({"type": "string", "examples": ["Europe/London"]})
]
EveryPhrase = Annotated[str, BeforeValidator(_every), WithJsonSchema({"type": "string"})]
CronString = Annotated[
    str, BeforeValidator(_cron), WithJsonSchema({"type": "string", "examples": ["0 8 * * MON"]})
]
Name = Annotated[str, BeforeValidator(_name), WithJsonSchema({"type": "string", "pattern": _NAME.pattern})]
