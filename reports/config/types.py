"""Small config value types: durations, time zones, cron strings, run counts, weekdays."""

from __future__ import annotations

import difflib
import re
import zoneinfo
from datetime import timedelta
from functools import cache
from typing import Annotated, Any, Literal

from croniter import croniter
from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

from reports.config.base import fail
from reports.scheduler.timing import ScheduleError, every_to_cron

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]

_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 7 * 86400}
_SHORT = {"s": "second", "m": "minute", "h": "hour", "d": "day", "w": "week"}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(second|minute|hour|day|week|[smhdw])s?\s*$")
_RUNS = re.compile(r"^\s*(\d+)\s*runs?\s*$")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def _duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    match = _DURATION.match(str(value))
    if not match:
        raise fail(
            f"'{value}' is not a duration",
            "write a number and a unit, e.g. '2 days' or '36 hours' (short: '10m', '6h')",
        )
    return timedelta(seconds=float(match[1]) * _UNITS[_SHORT.get(match[2], match[2])])


def _run_count(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    match = _RUNS.match(str(value))
    if not match or int(match[1]) < 1:
        raise fail(f"'{value}' is not a number of runs", "write how many runs in a row, e.g. '2 runs'")
    return int(match[1])


@cache
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _timezone(value: Any) -> str:
    name = str(value)
    if name not in _zones():
        close = difflib.get_close_matches(name, _zones(), n=1)
        hint = f"did you mean '{close[0]}'?" if close else "use an IANA name such as Europe/London or UTC"
        raise fail(f"unknown time zone '{name}'", hint)
    return name


def _cron(value: Any) -> str:
    text = str(value).strip()
    if not croniter.is_valid(text) or len(text.split()) != 5:
        raise fail(
            f"'{text}' is not a valid cron schedule",
            "use five fields, minute hour day-of-month month day-of-week, e.g. '0 8 * * MON'",
        )
    return text


def _every(value: Any) -> str:
    text = str(value).strip()
    try:
        every_to_cron(text)
    except ScheduleError as exc:
        raise fail(exc.message, exc.hint) from None
    return text


def _name(value: Any) -> str:
    text = str(value)
    if not _NAME.match(text):
        raise fail(
            f"'{text}' is not a valid name",
            "use lower-case letters, digits and underscores, e.g. 'usage_drop'",
        )
    return text


Duration = Annotated[
    timedelta,
    BeforeValidator(_duration),
    PlainSerializer(lambda d: f"{d.total_seconds() / 3600:g} hours"),
    WithJsonSchema({"type": "string", "pattern": _DURATION.pattern, "examples": ["2 days", "36 hours"]}),
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
