"""When jobs fire: cron across DST in London, `every` phrases, catch-up after downtime, waiting."""

import threading
import time
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine

from reports.errors import HeraldError
from reports.scheduler import timing
from reports.scheduler.timing import (
    CronTrigger,
    Due,
    EveryTrigger,
    ScheduleError,
    as_of_for,
    due,
    sleep_until,
    trigger,
)

LONDON = "Europe/London"
HOUR = timedelta(hours=1)
# Europe/London in 2026: clocks go forward at 01:00 UTC on Sun 29 March (01:00 GMT -> 02:00 BST) and
# back at 01:00 UTC on Sun 25 October (02:00 BST -> 01:00 GMT).


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def in_utc(times: list[datetime]) -> list[datetime]:
    return [t.astimezone(UTC) for t in times]


def test_daily_job_stays_at_seven_local_when_clocks_go_forward():
    fires = CronTrigger("0 7 * * *", LONDON).between(utc(2026, 3, 27), utc(2026, 3, 31))
    assert [(f.date(), f.hour, f.minute) for f in fires] == [
        (date(2026, 3, d), 7, 0) for d in (27, 28, 29, 30)
    ]
    assert [f.utcoffset() for f in fires] == [timedelta(0), timedelta(0), HOUR, HOUR]
    assert in_utc(fires) == [
        utc(2026, 3, 27, 7),
        utc(2026, 3, 28, 7),
        utc(2026, 3, 29, 6),
        utc(2026, 3, 30, 6),
    ]


def test_daily_job_stays_at_seven_local_when_clocks_go_back():
    fires = CronTrigger("0 7 * * *", LONDON).between(utc(2026, 10, 23), utc(2026, 10, 27))
    assert [f.utcoffset() for f in fires] == [HOUR, HOUR, timedelta(0), timedelta(0)]
    assert in_utc(fires) == [
        utc(2026, 10, 23, 6),
        utc(2026, 10, 24, 6),
        utc(2026, 10, 25, 7),
        utc(2026, 10, 26, 7),
    ]
    assert all(f.tzinfo == ZoneInfo(LONDON) and f.hour == 7 for f in fires)


def test_a_time_repeated_when_clocks_go_back_fires_once_at_its_first_occurrence():
    job = CronTrigger("30 1 * * *", LONDON)
    (fire,) = job.between(utc(2026, 10, 24, 12), utc(2026, 10, 25, 12))
    assert (fire.hour, fire.minute, fire.fold, fire.utcoffset()) == (1, 30, 0, HOUR)
    assert fire.astimezone(UTC) == utc(2026, 10, 25, 0, 30)  # `==` across zones is False in a fold
    # Not again at the second 01:30 (GMT, 01:30 UTC), even asked from inside the repeated hour.
    assert job.after(fire) == utc(2026, 10, 26, 1, 30)
    assert job.after(utc(2026, 10, 25, 1, 15)) == utc(2026, 10, 26, 1, 30)


def test_a_time_skipped_when_clocks_go_forward_fires_once_when_the_gap_ends():
    job = CronTrigger("30 1 * * *", LONDON)
    fires = job.between(utc(2026, 3, 27, 12), utc(2026, 3, 30, 12))
    assert in_utc(fires) == [utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1), utc(2026, 3, 30, 0, 30)]
    skipped = fires[1]
    assert (skipped.hour, skipped.minute, skipped.utcoffset()) == (2, 0, HOUR)


def test_hourly_job_across_both_changes():
    hourly = CronTrigger("0 * * * *", LONDON)
    # Forward: 01:00 local does not exist and lands on 02:00 BST, the same instant as 02:00 itself: once.
    assert in_utc(hourly.between(utc(2026, 3, 28, 23, 30), utc(2026, 3, 29, 2, 30))) == [
        utc(2026, 3, 29, 0),
        utc(2026, 3, 29, 1),
        utc(2026, 3, 29, 2),
    ]
    # Back: each wall-clock hour fires once, so the repeated 01:00 (GMT, 01:00 UTC) does not.
    assert in_utc(hourly.between(utc(2026, 10, 24, 22, 30), utc(2026, 10, 25, 2, 30))) == [
        utc(2026, 10, 24, 23),
        utc(2026, 10, 25, 0),
        utc(2026, 10, 25, 2),
    ]


def test_moments_inside_the_repeated_hour_are_read_as_instants_not_wall_clock():
    every_ten = CronTrigger("*/10 * * * *", LONDON)
    second_0145 = datetime(2026, 10, 25, 1, 45, fold=1, tzinfo=ZoneInfo(LONDON))  # GMT: 01:45 UTC
    assert every_ten.after(second_0145).astimezone(UTC) == utc(2026, 10, 25, 2)
    # `now` and `grace` in the job's own zone: two real hours back from 02:30 GMT is 00:30 UTC.
    now = datetime(2026, 10, 25, 2, 30, tzinfo=ZoneInfo(LONDON))
    result = due(CronTrigger("0 * * * *", LONDON), last=None, now=now, grace=2 * HOUR)
    assert in_utc(result.run) == [utc(2026, 10, 25, 2)] and result.missed == []


def test_after_takes_a_moment_in_any_zone_and_answers_in_the_triggers_zone():
    job = CronTrigger("0 7 * * *", LONDON)
    new_york = datetime(2026, 6, 10, 20, 0, tzinfo=ZoneInfo("America/New_York"))  # 01:00 BST on the 11th
    fire = job.after(new_york)
    assert fire == utc(2026, 6, 11, 6) and fire.tzinfo == ZoneInfo(LONDON)
    assert job.after(fire) == utc(2026, 6, 12, 6)
    with pytest.raises(ValueError, match="timezone-aware"):
        job.after(datetime(2026, 6, 10, 20, 0))


def test_between_covers_a_week_start_exclusive_end_inclusive():
    weekdays = CronTrigger("0 8 * * MON-FRI", LONDON)
    monday, saturday = datetime(2026, 6, 8, 8, tzinfo=ZoneInfo(LONDON)), utc(2026, 6, 13)
    assert [f.strftime("%a %H:%M %Z") for f in weekdays.between(monday - HOUR, saturday)] == [
        "Mon 08:00 BST",
        "Tue 08:00 BST",
        "Wed 08:00 BST",
        "Thu 08:00 BST",
        "Fri 08:00 BST",
    ]
    assert weekdays.between(monday, monday + 4 * timedelta(days=1))[0].day == 9
    assert weekdays.between(monday - HOUR, monday) == [monday]
    assert weekdays.between(saturday, saturday + timedelta(days=1)) == []


EVERY = [
    ("10 minutes", "*/10 * * * *"),
    ("minute", "* * * * *"),
    ("hour", "0 * * * *"),
    ("2 hours", "0 */2 * * *"),
    ("hour at :15", "15 * * * *"),
    ("day", "0 0 * * *"),
    ("day at 07:00", "0 7 * * *"),
    ("monday at 08:00", "0 8 * * 1"),
    ("Sunday at 18:30", "30 18 * * 0"),
]


@pytest.mark.parametrize(("every", "cron"), EVERY)
def test_every_phrases_fire_as_their_cron_equivalents(every, cron):
    friendly = EveryTrigger(every, LONDON)
    assert friendly.cron == cron
    # Sat evening to Mon noon around the spring-forward night, so DST behaves the same both ways.
    start, end = utc(2026, 3, 28, 20), utc(2026, 3, 30, 12)
    assert friendly.between(start, end)
    assert friendly.between(start, end) == CronTrigger(cron, LONDON).between(start, end)
    assert friendly.describe() == f"every {every} ({LONDON})"


@pytest.mark.parametrize(
    ("every", "fix"),
    [
        ("7 minutes", "use a number of minutes that divides 60"),
        ("5 hours", "use a number of hours that divides 24"),
        ("0 minutes", "a count of 1 or more"),
        ("30 seconds", "use minutes"),
        ("2 days", "use 'day', a weekday"),
        ("day at 7", "HH:MM"),
        ("monday at 24:00", "HH:MM"),
        ("hour at 15", ":MM"),
        (
            "fortnight",
            "'10 minutes', 'minute', 'hour', '2 hours', 'day', 'day at 07:00' or 'monday at 08:00'",
        ),
    ],
)
def test_bad_every_phrases_say_how_to_fix_them(every, fix):
    with pytest.raises(ScheduleError) as caught:
        EveryTrigger(every, LONDON)
    assert isinstance(caught.value, HeraldError) and isinstance(caught.value, ValueError)
    assert str(caught.value).startswith(f"every: '{every}'")
    assert fix in caught.value.hint


def test_trigger_takes_exactly_one_of_cron_and_every():
    assert trigger("0 7 * * *", None, LONDON).describe() == "0 7 * * * (Europe/London)"
    assert isinstance(trigger(None, "day at 07:00", LONDON), EveryTrigger)
    for cron, every in [(None, None), ("0 7 * * *", "day at 07:00")]:
        with pytest.raises(ScheduleError, match="exactly one of cron and every"):
            trigger(cron, every, LONDON)


def test_bad_cron_and_zone_are_schedule_errors():
    with pytest.raises(ScheduleError, match="not a valid cron schedule"):
        CronTrigger("0 7 * *", LONDON)
    with pytest.raises(ScheduleError, match="unknown time zone 'Europe/Lundon'"):
        CronTrigger("0 7 * * *", "Europe/Lundon")
    with pytest.raises(ScheduleError, match="never fires"):
        CronTrigger("0 7 30 2 *", LONDON).after(utc(2026, 1, 1))


HOURLY = CronTrigger("0 * * * *", "UTC")


def test_due_catches_up_with_only_the_latest_fire_time_in_grace():
    with time_machine.travel(utc(2026, 5, 4, 10, 30), tick=False):
        now = datetime.now(UTC)
    # Down since the 06:00 run: 07:00 and 08:00 are past the two-hour grace, 09:00 is coalesced.
    result = due(HOURLY, last=utc(2026, 5, 4, 6), now=now, grace=2 * HOUR)
    assert result == Due(run=[utc(2026, 5, 4, 10)], missed=[utc(2026, 5, 4, h) for h in (7, 8, 9)])


def test_due_without_coalesce_runs_every_fire_time_in_grace_oldest_first():
    with time_machine.travel(utc(2026, 5, 4, 10, 30), tick=False):
        result = due(HOURLY, last=utc(2026, 5, 4, 6), now=datetime.now(UTC), grace=2 * HOUR, coalesce=False)
    assert result == Due(
        run=[utc(2026, 5, 4, 9), utc(2026, 5, 4, 10)], missed=[utc(2026, 5, 4, h) for h in (7, 8)]
    )


def test_due_is_empty_between_fire_times_and_runs_a_fire_time_equal_to_now():
    assert due(HOURLY, last=utc(2026, 5, 4, 10), now=utc(2026, 5, 4, 10, 59), grace=HOUR) == Due([], [])
    assert due(HOURLY, last=utc(2026, 5, 4, 10), now=utc(2026, 5, 4, 11), grace=HOUR) == Due(
        [utc(2026, 5, 4, 11)], []
    )


def test_a_job_never_run_looks_back_only_as_far_as_grace():
    now = utc(2026, 5, 4, 10, 30)
    assert due(HOURLY, last=None, now=now, grace=2 * HOUR) == Due([utc(2026, 5, 4, 10)], [utc(2026, 5, 4, 9)])
    assert due(HOURLY, last=None, now=now, grace=timedelta(minutes=10)) == Due([], [])
    # A fire time exactly `grace` ago is outside (now - grace, now].
    assert due(HOURLY, last=None, now=utc(2026, 5, 4, 11), grace=HOUR) == Due([utc(2026, 5, 4, 11)], [])


def test_a_daily_job_down_for_days_runs_once_and_reports_the_days_missed():
    daily = CronTrigger("0 7 * * *", LONDON)
    last = datetime(2026, 10, 23, 7, tzinfo=ZoneInfo(LONDON))
    with time_machine.travel(utc(2026, 10, 26, 7, 20), tick=False):
        result = due(daily, last=last, now=datetime.now(UTC), grace=HOUR)
    assert [f.date() for f in result.run] == [date(2026, 10, 26)]
    assert [(f.date(), f.hour) for f in result.missed] == [(date(2026, 10, 24), 7), (date(2026, 10, 25), 7)]


def test_as_of_is_the_local_day_before_even_when_utc_is_still_on_the_previous_day():
    fire = CronTrigger("30 0 * * *", LONDON).after(utc(2026, 7, 15, 12))
    assert fire.astimezone(UTC) == utc(2026, 7, 15, 23, 30)  # 00:30 BST on the 16th
    assert as_of_for(fire, LONDON) == date(2026, 7, 15)
    assert as_of_for(fire.astimezone(UTC), LONDON) == date(2026, 7, 15)
    assert as_of_for(fire, "UTC") == date(2026, 7, 14)
    assert as_of_for(fire, LONDON, days_before=0) == date(2026, 7, 16)
    assert as_of_for(utc(2026, 1, 15, 23, 30), LONDON) == date(2026, 1, 14)  # GMT: London is UTC


def test_sleep_until_returns_false_at_the_moment_without_spinning():
    wall, cpu = time.monotonic(), time.process_time()
    assert sleep_until(datetime.now(UTC) + timedelta(seconds=0.2), threading.Event()) is False
    waited, used = time.monotonic() - wall, time.process_time() - cpu
    assert 0.19 <= waited < 1.0
    assert used < 0.05


def test_sleep_until_returns_true_promptly_when_woken():
    wake = threading.Event()
    threading.Timer(0.1, wake.set).start()
    started = time.monotonic()
    assert sleep_until(datetime.now(UTC) + timedelta(seconds=30), wake) is True
    assert time.monotonic() - started < 1.0
    assert sleep_until(datetime.now(UTC) + timedelta(seconds=30), wake) is True  # already set


def test_sleep_until_notices_a_wall_clock_set_forward_between_chunks(monkeypatch):
    monkeypatch.setattr(timing, "_WAIT_CHUNK", 0.05)
    start = utc(2026, 5, 4, 10)
    readings = iter([start, start, start + 2 * HOUR])  # the clock jumps past the moment mid-wait
    started = time.monotonic()
    assert sleep_until(start + HOUR, threading.Event(), now=lambda: next(readings)) is False
    assert time.monotonic() - started < 1.0
    assert next(readings, None) is None


def test_sleep_until_reads_the_pinned_clock_by_default():
    with time_machine.travel(utc(2030, 1, 1), tick=False):
        assert sleep_until(utc(2029, 12, 31, 23, 59), threading.Event()) is False
