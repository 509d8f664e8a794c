import itertools
from datetime import UTC, date, datetime

import pytest
import time_machine

from reports.kpis import periods
from reports.kpis.periods import Period


@pytest.mark.parametrize(
    ("as_of", "grain", "week_start", "current", "previous"),
    [
        (date(2026, 11, 22), "day", "monday", (date(2026, 11, 22),) * 2, (date(2026, 11, 21),) * 2),
        # Sunday closes a Monday-first week...
        (
            date(2026, 11, 22),
            "week",
            "monday",
            (date(2026, 11, 16), date(2026, 11, 22)),
            (date(2026, 11, 9), date(2026, 11, 15)),
        ),
        # ...but opens a Sunday-first one.
        (date(2026, 11, 22), "week", "sunday", (date(2026, 11, 22),) * 2, (date(2026, 11, 15),) * 2),
        # A Wednesday's week to date is compared with last Monday to Wednesday.
        (
            date(2026, 11, 18),
            "week",
            "monday",
            (date(2026, 11, 16), date(2026, 11, 18)),
            (date(2026, 11, 9), date(2026, 11, 11)),
        ),
        # A whole month compares with the whole month before, whatever their lengths.
        (
            date(2024, 3, 31),
            "month",
            "monday",
            (date(2024, 3, 1), date(2024, 3, 31)),
            (date(2024, 2, 1), date(2024, 2, 29)),
        ),
        # Leap day: a full February compares with a full January.
        (
            date(2024, 2, 29),
            "month",
            "monday",
            (date(2024, 2, 1), date(2024, 2, 29)),
            (date(2024, 1, 1), date(2024, 1, 31)),
        ),
        # Month to date on the 30th of March compares with February clipped to its end.
        (
            date(2025, 3, 30),
            "month",
            "monday",
            (date(2025, 3, 1), date(2025, 3, 30)),
            (date(2025, 2, 1), date(2025, 2, 28)),
        ),
        # Across a year boundary.
        (
            date(2026, 1, 15),
            "month",
            "monday",
            (date(2026, 1, 1), date(2026, 1, 15)),
            (date(2025, 12, 1), date(2025, 12, 15)),
        ),
    ],
)
def test_current_and_previous(as_of, grain, week_start, current, previous):
    assert periods.current(as_of, grain, week_start) == Period(*current)
    assert periods.previous(as_of, grain, week_start) == Period(*previous)


def test_trailing_weeks_are_whole_and_contiguous():
    weeks = periods.trailing(date(2026, 11, 18), "week", 12)
    assert len(weeks) == 12
    assert weeks[-1] == Period(date(2026, 11, 16), date(2026, 11, 18))  # this week to date
    assert all(w.days == 7 for w in weeks[:-1])
    assert all(a.end.toordinal() + 1 == b.start.toordinal() for a, b in itertools.pairwise(weeks))


def test_trailing_months_cover_a_leap_february():
    months = periods.trailing(date(2024, 3, 10), "month", 3)
    assert [m.start for m in months] == [date(2024, 1, 1), date(2024, 2, 1), date(2024, 3, 1)]
    assert months[1].days == 29


def test_labels():
    assert Period(date(2026, 11, 16), date(2026, 11, 22)).label("week") == "week of 2026-11-16"
    assert Period(date(2026, 11, 1), date(2026, 11, 22)).label("month") == "November 2026"


@pytest.mark.parametrize(
    ("utc_now", "timezone", "as_of"),
    [
        # 00:30 on 2 July in London (summer time) is still 1 July in UTC: London's yesterday is 1 July.
        (datetime(2026, 7, 1, 23, 30, tzinfo=UTC), "Europe/London", date(2026, 7, 1)),
        (datetime(2026, 7, 1, 23, 30, tzinfo=UTC), "UTC", date(2026, 6, 30)),
        # Winter: London is on UTC, so both agree.
        (datetime(2026, 1, 15, 23, 30, tzinfo=UTC), "Europe/London", date(2026, 1, 14)),
        # Auckland is 13 hours ahead in its summer: already the 16th there.
        (datetime(2026, 1, 15, 12, 0, tzinfo=UTC), "Pacific/Auckland", date(2026, 1, 15)),
    ],
)
def test_default_as_of_is_yesterday_in_the_config_time_zone(utc_now, timezone, as_of):
    with time_machine.travel(utc_now, tick=False):
        assert periods.default_as_of(timezone) == as_of
    assert periods.default_as_of(timezone, now=utc_now) == as_of
