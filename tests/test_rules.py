"""Each condition type on small hand-made frames, edge cases included."""

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from reports.config.models import RuleConfig
from reports.kpis.periods import Clock
from reports.rules.evaluate import evaluate_rule
from tests.conftest import kpi_data

LONDON = ZoneInfo("Europe/London")


def findings(when, kpi, as_of, grain="day", runs=1, week_start="monday"):
    rule = RuleConfig.model_validate({"name": "r", "kpi": "events", "when": when, "for": runs})
    return {
        f.entity: f
        for f in evaluate_rule(rule, kpi, Clock(as_of, grain, week_start, LONDON.key), pd.Series(dtype=str))
    }


def days(start: date, count: int) -> list[date]:
    return [start + timedelta(days=i) for i in range(count)]


# --- threshold ------------------------------------------------------------------------------


def test_threshold_above_below_between_outside():
    day = date(2026, 3, 2)
    kpi = kpi_data([("a", day, 5), ("b", day, 15), ("c", day, 25), ("d", day, float("nan"))])
    assert set(findings({"above": 20}, kpi, day)) == {"c"}
    assert set(findings({"below": 10}, kpi, day)) == {"a"}
    assert set(findings({"between": [10, 20]}, kpi, day)) == {"b"}
    outside = findings({"outside": [10, 20]}, kpi, day)
    assert set(outside) == {"a", "c"}  # NaN is no value, not a breach
    assert outside["a"].threshold == 10 and outside["c"].threshold == 20


def test_threshold_on_a_ratio_pools_the_period_and_reads_percent_strings():
    # Day 1: 1/100 ok; day 2: 90/100 ok. Averaging daily rates says 45.5%; pooling says 45.5% too,
    # so weight the days unevenly: 1/10 then 90/100 → pooled 91/110 = 82.7%, averaged 50%.
    d1, d2 = date(2026, 3, 2), date(2026, 3, 3)
    kpi = kpi_data([("a", d1, 1, 10), ("a", d2, 90, 100)], aggregate="ratio", unit="percent")
    assert findings({"below": "80%"}, kpi, d2, grain="week") == {}
    assert set(findings({"below": "85%"}, kpi, d2, grain="week")) == {"a"}


def test_ratio_with_zero_denominator_is_missing_not_zero():
    day = date(2026, 3, 2)
    kpi = kpi_data([("a", day, 0, 0)], aggregate="ratio", unit="percent")
    assert findings({"below": "80%"}, kpi, day) == {}


# --- change ---------------------------------------------------------------------------------


def test_change_pct_vs_previous_period_handles_zero_and_missing_references():
    d0, d1 = date(2026, 3, 1), date(2026, 3, 2)
    kpi = kpi_data(
        [
            ("drop", d0, 100),
            ("drop", d1, 50),
            ("zero", d0, 0),
            ("zero", d1, 50),  # % change from zero has no size: skipped
            ("new", d1, 10),  # nothing to compare with: skipped
            ("flat", d0, 100),
            ("flat", d1, 100),
            ("gone", d0, 100),  # no value now: the no-data rule's job
        ]
    )
    found = findings({"change_pct": {"vs": "previous_period", "below": -40}}, kpi, d1)
    assert set(found) == {"drop"}
    assert found["drop"].value == 50 and found["drop"].reference == 100
    assert "fell 50.0%" in found["drop"].message


def test_absolute_change_catches_growth_from_zero():
    d0, d1 = date(2026, 3, 1), date(2026, 3, 2)
    kpi = kpi_data([("zero", d0, 0), ("zero", d1, 50)])
    found = findings({"change": {"vs": "previous_period", "above": 40}}, kpi, d1)
    assert set(found) == {"zero"} and found["zero"].threshold == 40


def test_change_vs_same_day_last_week_ignores_the_weekend_dip():
    start = date(2026, 3, 2)  # Monday
    rows = [("a", d, 100 if d.weekday() < 5 else 30) for d in days(start, 14)]
    kpi = kpi_data(rows)
    sunday = date(2026, 3, 15)
    assert findings({"change_pct": {"vs": "same_day_last_week", "below": -40}}, kpi, sunday) == {}
    # Saturday vs Friday does look like a drop: the same data, compared with the day before.
    dropped = findings({"change_pct": {"vs": "previous_period", "below": -40}}, kpi, date(2026, 3, 14))
    assert set(dropped) == {"a"}
    assert (dropped["a"].value, dropped["a"].reference) == (30, 100)


def test_change_vs_trailing_average_scales_sums_to_the_period_length():
    start = date(2026, 2, 1)
    rows = [("a", d, 100) for d in days(start, 28)] + [("a", date(2026, 3, 1), 100)]
    rows += [("b", d, 100) for d in days(start, 28)] + [("b", date(2026, 3, 1), 20)]
    kpi = kpi_data(rows)
    found = findings({"change_pct": {"vs": "trailing_avg", "days": 28, "below": -50}}, kpi, date(2026, 3, 1))
    assert set(found) == {"b"}
    assert found["b"].reference == pytest.approx(100)


def test_change_across_a_month_boundary_and_leap_day():
    # Feb 2024 to date on the 29th vs January 1–29.
    rows = [("a", d, 10) for d in days(date(2024, 1, 1), 31)] + [
        ("a", d, 5) for d in days(date(2024, 2, 1), 29)
    ]
    kpi = kpi_data(rows)
    found = findings({"change_pct": {"vs": "previous_period", "below": -40}}, kpi, date(2024, 2, 29), "month")
    assert found["a"].reference == 310  # the whole of January, since February ran to its end
    assert found["a"].value == 145


# --- no data --------------------------------------------------------------------------------


def test_no_data_finds_entities_that_went_silent():
    start = date(2026, 3, 1)
    rows = [("steady", d, 5) for d in days(start, 8)]
    rows += [("silent", d, 5) for d in days(start, 7)]  # nothing on day 8
    rows += [("rare", start, 5)]  # one day in the lookback only
    rows += [("nan", d, 5) for d in days(start, 7)] + [("nan", date(2026, 3, 8), float("nan"))]
    kpi = kpi_data(rows)
    as_of = date(2026, 3, 8)
    assert set(findings({"no_data": {"lookback_days": 7}}, kpi, as_of)) == {"silent", "rare", "nan"}
    assert set(findings({"no_data": {"lookback_days": 7, "min_days": 3}}, kpi, as_of)) == {"silent", "nan"}


def test_for_two_runs_needs_the_condition_on_both():
    start = date(2026, 3, 1)
    rows = [("one_day", d, 5) for d in days(start, 7)] + [("one_day", date(2026, 3, 9), 5)]
    rows += [("two_days", d, 5) for d in days(start, 7)]
    kpi = kpi_data(rows)
    as_of = date(2026, 3, 9)
    assert set(findings({"no_data": {}}, kpi, date(2026, 3, 8))) == {"one_day", "two_days"}
    found = findings({"no_data": {}}, kpi, as_of, runs=2)
    assert set(found) == {"two_days"}
    assert found["two_days"].message.endswith(", on each of the last 2 runs")


# --- stale ----------------------------------------------------------------------------------


def test_stale_compares_the_newest_row_with_the_freshness_limit():
    newest = datetime(2026, 3, 6, tzinfo=LONDON)  # the end of March 5th
    kpi = kpi_data([("a", date(2026, 3, 5), 1)], freshness="1 day", newest=newest)
    assert findings({"stale": True}, kpi, date(2026, 3, 6)) == {}  # 1 day old at the end of the 6th
    found = findings({"stale": True}, kpi, date(2026, 3, 7))
    assert set(found) == {""}
    assert found[""].value == 2 * 86400 and found[""].unit == "seconds"
    assert "no new data since 2026-03-06 00:00 (2 days)" in found[""].message


def test_stale_with_no_rows_at_all():
    kpi = kpi_data([], freshness="1 day")
    assert "no data at all" in findings({"stale": True}, kpi, date(2026, 1, 1))[""].message


# --- anomaly --------------------------------------------------------------------------------


def test_anomaly_with_weekly_seasonality():
    start = date(2026, 1, 5)  # Monday; 9 weeks of history, quiet Sundays
    rows = []
    for i, d in enumerate(days(start, 62)):
        base = 20 if d.weekday() == 6 else 100
        rows.append(("steady", d, base + (i % 3)))
        rows.append(("spike", d, base + (i % 3)))
    sunday = date(2026, 3, 8)
    rows += [("steady", sunday, 21), ("spike", sunday, 90)]
    kpi = kpi_data(rows)
    when = {"anomaly": {"window": 56, "z": 4, "seasonality": "weekly"}}
    found = findings(when, kpi, sunday)
    assert set(found) == {"spike"}  # 90 on a Sunday is far from Sundays' 20
    assert found["spike"].reference == pytest.approx(21)
    # Without seasonality a Sunday of 21 looks low against weekdays' 100: that is the false alarm
    # seasonality prevents.
    plain = findings({"anomaly": {"window": 28, "z": 3, "direction": "down"}}, kpi, sunday)
    assert "steady" in plain


def test_anomaly_min_delta_direction_and_flat_history():
    start = date(2026, 1, 1)
    rows = [("flat", d, 10) for d in days(start, 30)] + [("flat", date(2026, 1, 31), 11)]
    rows += [("short", d, 10) for d in days(date(2026, 1, 29), 2)] + [("short", date(2026, 1, 31), 99)]
    kpi = kpi_data(rows)
    as_of = date(2026, 1, 31)
    # A flat history has no spread: any change is infinitely unusual...
    assert set(findings({"anomaly": {"window": 28}}, kpi, as_of)) == {"flat"}
    # ...so min_delta says how much change matters, and direction which way.
    assert findings({"anomaly": {"window": 28, "min_delta": 5}}, kpi, as_of) == {}
    assert findings({"anomaly": {"window": 28, "direction": "down"}}, kpi, as_of) == {}


def test_empty_kpi_finds_nothing_for_every_condition():
    kpi = kpi_data([])
    as_of = date(2026, 3, 1)
    for when in ({"above": 1}, {"change_pct": {"below": -1}}, {"no_data": {}}, {"anomaly": {}}):
        assert findings(when, kpi, as_of) == {}
