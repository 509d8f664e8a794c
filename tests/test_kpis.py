"""The KPI engine against real DuckDB files: shapes, bound parameters, ratios, roll-ups, hours."""

from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pandas as pd
import pytest

from reports.config.models import KpiConfig, RuleConfig
from reports.errors import KpiError
from reports.kpis.frames import _buckets, _period_of, _series, aggregate, combine_entities, load_kpi
from reports.kpis.periods import Clock, Period
from reports.kpis.rows import entity_ids
from reports.rules.evaluate import evaluate_rule
from reports.sources.duckdb import DuckDBConfig, DuckDBSource
from tests.conftest import kpi_data

LONDON = ZoneInfo("Europe/London")
WEEK = Period(date(2026, 3, 2), date(2026, 3, 8))


@pytest.fixture
def warehouse(tmp_path: Path) -> DuckDBSource:
    path = tmp_path / "w.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("""
            CREATE TABLE stats AS SELECT * FROM (VALUES
                ('a', DATE '2026-03-02', 10, 1, 10, 'free'),
                ('a', DATE '2026-03-03', 20, 90, 100, 'free'),
                ('b', DATE '2026-03-02', 5, 5, 10, 'pro'),
                ('b', DATE '2026-03-03', 7, 0, 0, 'pro'),
                ('c', DATE '2026-03-03', 1, 1, 1, 'pro')
            ) t(entity, day, value, ok, total, plan)
        """)
        # Every UTC hour from Monday 12 Oct to Wednesday 28 Oct 2026; London leaves summer time
        # at 01:00 UTC on Sunday 25 Oct, so that local day has 25 hours.
        con.execute("""
            CREATE TABLE hourly AS SELECT 'a' AS entity, h AS hour, 1 AS value
            FROM range(TIMESTAMP '2026-10-11 23:00', TIMESTAMP '2026-10-29 00:00', INTERVAL 1 HOUR) r(h)
        """)
    return DuckDBSource("w", DuckDBConfig(type="duckdb", path=path), tmp_path)


def kpi(sql: str, **fields) -> KpiConfig:
    return KpiConfig(label="Test KPI", source="w", sql=sql, **fields)


def load(source, config, window=WEEK, entities=("a", "b", "c")):
    return load_kpi("test", config, source, window, Clock(window.end, timezone=LONDON.key), list(entities))


@pytest.mark.parametrize(
    ("sql", "fields", "message", "hint"),
    [
        ("SELECT entity, day FROM stats", {}, "without value", "select exactly entity, day, value"),
        (
            "SELECT entity, day, value FROM stats",
            {"aggregate": "ratio"},
            "without numerator, denominator",
            "numerator, denominator",
        ),
        (
            "SELECT entity, CAST(day AS VARCHAR) AS day, value FROM stats",
            {},
            "holds str values, not dates",
            "select a DATE",
        ),
        (
            "SELECT entity, day, plan AS value FROM stats",
            {},
            "holds 'free', which is not a number",
            "numeric value",
        ),
        (
            "SELECT 'x' AS entity, DATE '2026-03-02' AS day, 1 AS value FROM stats",
            {},
            "entity 'x' has 5 rows for day 2026-03-02",
            "GROUP BY entity, day",
        ),
        ("SELECT NULL AS entity, day, value FROM stats", {}, "5 rows have no entity", "filter out"),
        ("SELECT entity, day, value FORM stats", {}, "syntax error", "fix the SQL"),
        ("SELECT entity, day, value FROM stats WHERE day = @today", {}, "uses @today", "use only @start"),
        ("SELECT entity, day, value FROM no_such_table", {}, "no_such_table", "fix the SQL"),
    ],
)
def test_bad_queries_name_the_kpi_and_the_fix(warehouse, sql, fields, message, hint):
    with pytest.raises(KpiError) as caught:
        load(warehouse, kpi(sql, **fields))
    assert caught.value.message.startswith("KPI 'test': ")
    assert message in caught.value.message
    assert hint in caught.value.hint


def test_parameters_are_bound_not_formatted(warehouse):
    sneaky = "a'); DROP TABLE stats; --"
    config = kpi(
        "SELECT entity, day, value FROM stats "
        "WHERE day BETWEEN @start AND @end AND entity IN (SELECT UNNEST(@entities)) "
        "AND '@start' = '@start' -- @nothing here is a parameter"
    )
    data = load(warehouse, config, entities=["a", sneaky])
    assert set(data.frame["entity"]) == {"a"}
    assert warehouse.query("SELECT COUNT(*) AS n FROM stats", {})["n"].iloc[0] == 5


def test_rows_outside_the_window_are_clipped_even_when_the_sql_ignores_it(warehouse):
    data = load(
        warehouse,
        kpi("SELECT entity, day, value FROM stats"),
        window=Period(date(2026, 3, 3), date(2026, 3, 3)),
    )
    assert sorted(data.frame["day"].dt.date.unique()) == [date(2026, 3, 3)]


def test_ratios_are_pooled_in_values_totals_and_rollups(warehouse):
    data = load(
        warehouse,
        kpi(
            "SELECT entity, day, ok AS numerator, total AS denominator FROM stats",
            aggregate="ratio",
            unit="percent",
        ),
    )
    values = data.values(WEEK)
    assert values["a"] == pytest.approx(91 / 110)  # not the mean of 10% and 90%
    assert values["b"] == pytest.approx(5 / 10)  # a day with no attempts adds nothing
    assert data.total(WEEK) == pytest.approx(97 / 121)
    plans = pd.Series({"a": "free", "b": "pro", "c": "pro"}, name="plan")
    by_plan = data.rollup(plans, WEEK)
    assert by_plan["pro"] == pytest.approx(6 / 11)


def test_sums_means_and_last_values(warehouse):
    sql = "SELECT entity, day, value FROM stats"
    assert load(warehouse, kpi(sql)).values(WEEK).to_dict() == {"a": 30, "b": 12, "c": 1}
    assert load(warehouse, kpi(sql, aggregate="mean")).values(WEEK)["a"] == 15
    assert load(warehouse, kpi(sql, aggregate="last")).values(WEEK)["b"] == 7
    assert load(warehouse, kpi(sql, aggregate="max")).total(WEEK) == 20  # the largest of any entity, any day


def test_series_gives_a_value_per_period(warehouse):
    data = load(warehouse, kpi("SELECT entity, day, value FROM stats"))
    table = data.series(
        [Period(date(2026, 3, 2), date(2026, 3, 2)), Period(date(2026, 3, 3), date(2026, 3, 3))]
    )
    assert table.loc["a"].tolist() == [10, 20]
    assert pd.isna(table.loc["c", 0]) and table.loc["c", 1] == 1


def test_hourly_rows_fold_into_local_days_across_a_dst_change(warehouse):
    week = Period(date(2026, 10, 22), date(2026, 10, 28))
    data = load(
        warehouse,
        kpi("SELECT entity, hour, value FROM hourly WHERE hour BETWEEN @start AND @end", grain="hour"),
        window=week,
    )
    per_day = data.series([Period(d, d) for d in (week.start + timedelta(days=i) for i in range(7))])
    assert per_day.loc["a"].tolist() == [24, 24, 24, 25, 24, 24, 24]
    assert data.values(week)["a"] == 7 * 24 + 1
    assert data.newest == datetime(2026, 10, 29, 0, tzinfo=ZoneInfo("UTC"))


def test_business_hours_follow_local_time_across_a_dst_change(warehouse):
    week = Period(date(2026, 10, 22), date(2026, 10, 28))
    config = kpi(
        "SELECT entity, hour, value FROM hourly",
        grain="hour",
        business_hours={"start": "09:00", "end": "18:00", "days": ["thursday", "monday"]},
    )
    data = load(warehouse, config, window=week)
    per_day = data.frame.set_index("day")["value"]
    # Thursday (summer time) and Monday (winter time) each count their nine local business hours.
    assert per_day.to_dict() == {pd.Timestamp("2026-10-22"): 9, pd.Timestamp("2026-10-26"): 9}


def test_freshness_and_age(warehouse):
    config = kpi("SELECT entity, day, value FROM stats", freshness="1 day")
    data = load(warehouse, config, window=Period(date(2026, 3, 2), date(2026, 3, 5)))
    assert data.newest == datetime(2026, 3, 4, tzinfo=LONDON)  # the end of the newest day, the 3rd
    assert data.age(Clock(date(2026, 3, 5), timezone=LONDON.key)) == timedelta(days=2)
    assert data.is_stale(Clock(date(2026, 3, 5), timezone=LONDON.key))
    assert not data.is_stale(Clock(date(2026, 3, 4), timezone=LONDON.key))


def test_a_weekly_rule_over_a_week_that_leaves_summer_time(warehouse):
    # Monday 19 to Sunday 25 October has 169 local hours; the week before has 168.
    week = Period(date(2026, 10, 12), date(2026, 10, 25))
    data = load(warehouse, kpi("SELECT entity, hour, value FROM hourly", grain="hour"), window=week)
    rule = RuleConfig.model_validate(
        {"name": "more_hours", "kpi": "test", "when": {"change": {"vs": "previous_period", "above": 0}}}
    )
    clock = Clock(date(2026, 10, 25), "week", "monday", LONDON.key)
    (finding,) = evaluate_rule(rule, data, clock, pd.Series(dtype=str))
    assert (finding.value, finding.reference, finding.threshold) == (169, 168, 0)


def test_a_last_kpi_totals_each_entitys_own_latest_value():
    """Monthly active users: a project that stopped reporting two days before the end still
    counts, with what it last reported."""
    data = kpi_data(
        [("a", "2026-11-20", 10), ("a", "2026-11-22", 12), ("b", "2026-11-20", 5)], aggregate="last"
    )
    period = Period(date(2026, 11, 16), date(2026, 11, 22))
    assert data.total(period) == 17
    owners = pd.Series({"a": "Ann", "b": "Bo"}, name="owner")
    assert data.rollup(owners, period).to_dict() == {"Ann": 12.0, "Bo": 5.0}


@pytest.mark.parametrize("how", ["sum", "mean", "max", "last", "ratio"])
def test_one_entitys_rows_combine_as_the_grouped_path_does(how):
    """A per-entity report combines one entity's rows without grouping; the figures must be those
    the grouping gives when another entity, in another group, is beside it."""
    days = [date(2026, 11, d) for d in (3, 1, 2, 5)]  # out of order, with gaps and missing values
    values = [4.0, None, 2.5, 0.0]
    measure = (lambda v: (v, 10.0)) if how == "ratio" else (lambda v: (v,))
    rows = [("p1", d, *measure(v)) for d, v in zip(days, values, strict=True)]
    other = [("p2", d, *measure(7.0)) for d in days[:2]]
    aggregate = "ratio" if how == "ratio" else how
    both, alone = kpi_data(rows + other, aggregate), kpi_data(rows, aggregate)
    for data in (both, alone):
        data.frame["entity"] = entity_ids(["p1", "p2"], data.frame["entity"])
    groups = pd.Series({"p1": "north", "p2": "south"}, name="region")
    grouped = combine_entities(both.frame, groups, how)
    expected = grouped[grouped["entity"] == "north"].reset_index(drop=True)
    pd.testing.assert_frame_equal(combine_entities(alone.frame, groups, how), expected)
    assert combine_entities(alone.frame, pd.Series({"p2": "south"}), how).empty  # in no group
    week = Period(date(2026, 11, 1), date(2026, 11, 7))
    for period in (
        week,
        Period(date(2026, 11, 1), date(2026, 11, 1)),
        Period(date(2026, 12, 1), date(2026, 12, 7)),
    ):
        rolled = both.rollup(groups, period)  # 1 Nov: a row without a value; December: no rows
        expected = rolled["north"] if "north" in rolled else float("nan")
        assert alone.total(period) == pytest.approx(expected, nan_ok=True), period
    pd.testing.assert_frame_equal(
        alone.series([week], alone.everyone()),
        both.series([week], groups).loc[["north"]].rename({"north": "all"}),
    )


@pytest.mark.parametrize("how", ["sum", "mean", "max", "last", "ratio"])
def test_a_total_is_the_rollup_of_everyone(how):
    """`total` folds every row at once where that equals adding up each day first."""
    measure = (lambda v: (v, None if v is None else 4.0)) if how == "ratio" else (lambda v: (v,))
    rows = [
        (entity, date(2026, 11, day), *measure(value))
        for entity, day, value in [
            ("a", 1, 3.0),
            ("b", 1, None),
            ("c", 1, 7.5),
            ("a", 2, None),
            ("b", 2, None),
            ("a", 3, 0.0),
            ("c", 3, 2.0),
            ("b", 4, 5.0),
        ]
    ]
    data = kpi_data(rows, how)
    data.frame["entity"] = entity_ids(["a", "b", "c"], data.frame["entity"])
    for period in (
        Period(date(2026, 11, 1), date(2026, 11, 4)),
        Period(date(2026, 11, 2), date(2026, 11, 2)),
        Period(date(2026, 12, 1), date(2026, 12, 2)),
    ):
        rolled = data.rollup(data.everyone(), period)
        expected = float(rolled.iloc[0]) if len(rolled) else float("nan")
        assert data.total(period) == pytest.approx(expected, nan_ok=True), (how, period)


@pytest.mark.parametrize("how", ["sum", "mean", "max", "ratio"])
def test_a_rollup_is_each_groups_entities_added_up_day_by_day(how):
    """A sum or ratio rollup folds every row of a group at once; the same as adding up each day first."""
    measure = (lambda v: (v, None if v is None else 4.0)) if how == "ratio" else (lambda v: (v,))
    rows = [
        (entity, date(2026, 11, day), *measure(value))
        for entity, day, value in [
            ("a", 1, 3.0), ("b", 1, None), ("c", 1, 7.5), ("a", 2, None), ("b", 2, None),
            ("a", 3, 0.0), ("c", 3, 2.0), ("b", 4, 5.0), ("d", 4, 1.0),
        ]
    ]  # fmt: skip
    data = kpi_data(rows, how)
    data.frame["entity"] = entity_ids(["a", "b", "c", "d"], data.frame["entity"])
    groups = pd.Series({"a": "north", "b": "south", "c": "north"}, name="region")  # d is in none
    for period in (
        Period(date(2026, 11, 1), date(2026, 11, 4)),
        Period(date(2026, 11, 2), date(2026, 11, 2)),
        Period(date(2026, 12, 1), date(2026, 12, 2)),
    ):
        rows_in = data.frame[
            (data.frame["day"] >= pd.Timestamp(period.start))
            & (data.frame["day"] <= pd.Timestamp(period.end))
        ]
        expected = aggregate(combine_entities(rows_in, groups, how), ["entity"], how).rename_axis("region")
        pd.testing.assert_series_equal(data.rollup(groups, period), expected, check_names=False)
        assert data.rollup(groups, period).index.name == "region"


@pytest.mark.parametrize("how", ["sum", "mean", "max", "last", "ratio"])
def test_one_entitys_series_is_folded_as_grouping_folds_it(how):
    """A per-entity report's trend folds its periods in numpy: the figures are the grouped path's."""
    measure = (lambda v: (v, None if v is None else 4.0 + v)) if how == "ratio" else (lambda v: (v,))
    days = [(1, 3.0), (2, None), (3, 7.5), (9, 0.0), (10, 2.0), (11, None), (12, None), (20, 5.0), (21, 0.1)]
    rows = [("a", date(2026, 11, day), *measure(value)) for day, value in days]
    rows.append(("a", date(2025, 1, 1), *measure(9.0)))  # in no period
    weeks = [Period(date(2026, 10, 26), date(2026, 11, 1))]
    weeks += [Period(date(2026, 11, 2 + 7 * i), date(2026, 11, 8 + 7 * i)) for i in range(3)]
    weeks += [Period(date(2026, 11, 28), date(2026, 12, 4))]  # no rows at all
    data = kpi_data(rows, how)
    data.frame["entity"] = entity_ids(["a", "z"], data.frame["entity"])
    for periods in (weeks, weeks[1:2], weeks[4:]):
        expected = _series(data.frame, periods, how)
        pd.testing.assert_frame_equal(data.series(periods), expected)
        for group in (
            pd.Series({"a": "all"}),
            pd.Series({"z": "elsewhere"}),
            pd.Series({"a": None, "z": "x"}),
        ):
            expected = _series(combine_entities(data.frame, group, how), periods, how)
            pd.testing.assert_frame_equal(data.series(periods, group), expected)
    assert data.series(weeks[4:]).empty  # rows, but none in any period: no row, as grouped


@pytest.mark.parametrize("how", ["sum", "mean", "max", "last", "ratio"])
def test_everyones_series_is_each_days_total_folded_by_period(how):
    """A sum or ratio over everyone folds all rows per period at once: the same line as adding up
    each day's entities first, the grouped way."""
    measure = (lambda v: (v, None if v is None else 4.0 + v)) if how == "ratio" else (lambda v: (v,))
    rows = [
        (entity, date(2026, 11, day), *measure(value))
        for entity, day, value in [
            ("a", 1, 3.0), ("b", 1, None), ("c", 1, 7.5), ("a", 2, None), ("b", 2, None),
            ("a", 9, 0.0), ("c", 10, 2.0), ("b", 11, 5.0), ("d", 12, 1.0), ("d", 20, None),
        ]
    ]  # fmt: skip
    data = kpi_data(rows, how)
    data.frame["entity"] = entity_ids(["a", "b", "c", "d"], data.frame["entity"])
    weeks = [Period(date(2026, 10, 26), date(2026, 11, 1))]
    weeks += [Period(date(2026, 11, 2 + 7 * i), date(2026, 11, 8 + 7 * i)) for i in range(3)]
    for groups in (
        data.everyone(),
        pd.Series({"a": "north", "c": "north"}, name="region"),  # b and d in no group
        pd.Series({"a": "north", "b": None, "c": "north", "d": None}, name="region"),
    ):
        for periods in (weeks, weeks[3:], [Period(date(2026, 12, 1), date(2026, 12, 7))]):
            expected = _series(combine_entities(data.frame, groups, how), periods, how)
            pd.testing.assert_frame_equal(data.series(periods, groups), expected)


def test_each_day_finds_its_period_as_the_buckets_map_it():
    """Overlapping periods: a day in both belongs to the later one, as `_buckets` has it."""
    periods = (Period(date(2026, 11, 1), date(2026, 11, 7)), Period(date(2026, 11, 5), date(2026, 11, 10)))
    days = pd.Series(pd.to_datetime(["2026-10-31", "2026-11-01", "2026-11-06", "2026-11-10", "2026-11-11"]))
    expected = days.map(_buckets(periods)).fillna(-1).astype(int).tolist()
    assert _period_of(days, periods).tolist() == expected == [-1, 0, 1, 1, -1]
    assert _period_of(days, ()).tolist() == [-1] * 5
