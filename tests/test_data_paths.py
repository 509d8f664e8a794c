"""Faster data paths: entity ids held as categoricals, hourly KPIs folded into local days by the
warehouse (DuckDB, the BigQuery emulator, PostgreSQL) exactly as pandas folds them, and the bulk
workbook sheet written as whole rows of XML rather than cell by cell."""

from __future__ import annotations

import math
import os
import time
import zipfile
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import openpyxl
import pandas as pd
import pytest
import xlsxwriter

from reports import demo
from reports.config.models import KpiConfig
from reports.errors import KpiError
from reports.kpis.frames import KpiData, load_kpi
from reports.kpis.periods import Clock, Period
from reports.kpis.rows import _doubled, entity_ids, finite
from reports.render import xlsx_rows
from reports.render.xlsx import Styles, write_table
from reports.render.xlsx_rows import RowWriter
from reports.sources import Source, open_source
from reports.sources.bigquery import BigQueryConfig
from reports.sources.duckdb import DuckDBConfig
from reports.sources.hours import utc_offsets
from reports.sources.sql import SqlConfig
from tests.conftest import demo_folder, job_run
from tests.warehouses import DATASET, PROJECT, bigquery_holding, postgres_holding

LONDON = ZoneInfo("Europe/London")
HOURLY = (
    "SELECT project_id AS entity, hour_utc AS hour, {measures} FROM hourly_traffic"
    " WHERE hour_utc BETWEEN @start AND @end GROUP BY 1, 2"
)
WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday"]
# Windows around 2026's clock changes in London: forward on Sunday 29 March, back on Sunday 25
# October (a 23- and a 25-hour day), and the demo's last hours.
WINDOWS = [
    Period(date(2026, 3, 25), date(2026, 4, 2)),
    Period(date(2026, 10, 21), date(2026, 10, 29)),
    Period(date(2026, 11, 16), date(2026, 11, 22)),
]


def kpi(measures: str = "SUM(pageviews) AS value", **options) -> KpiConfig:
    return KpiConfig(
        label="Page views",
        source="demo",
        grain="hour",
        sql=HOURLY.format(measures=measures),
        **options,
    )


KPIS = {
    "business_hours": kpi(business_hours={"start": "09:00", "end": "18:00", "days": WEEKDAYS}),
    "all_hours": kpi(),
    "half_hours_mean": kpi(
        aggregate="mean", business_hours={"start": "09:30", "end": "17:30", "days": [*WEEKDAYS, "saturday"]}
    ),
    "max": kpi(aggregate="max"),
    "last": kpi(
        aggregate="last",
        business_hours={"start": "07:00", "end": "20:00", "days": ["saturday", "sunday", "monday"]},
    ),
    "ratio": kpi(
        "SUM(CASE WHEN source = 'search' THEN pageviews ELSE 0 END) AS numerator, SUM(pageviews) AS denominator",
        aggregate="ratio",
        unit="percent",
        business_hours={"start": "08:00", "end": "12:00", "days": WEEKDAYS},
    ),
}


@pytest.fixture(scope="module")
def hours_demo(tmp_path_factory) -> Path:
    """A small demo warehouse whose hourly traffic also covers both of 2026's clock changes, with
    `odd_hours` beside it: values that are ±infinity, NaN or missing."""
    path = tmp_path_factory.mktemp("hours") / "demo.duckdb"
    demo.build(path, projects=20, days=60)
    with duckdb.connect(str(path)) as con:
        con.execute("DELETE FROM hourly_traffic WHERE project_id > 'p0006'")  # a small load for the servers
        con.execute("CREATE TEMP TABLE base AS SELECT * FROM hourly_traffic")
        # The demo's hours span 25 days: copies 25 and 225 days earlier cover 25 October and 29 March.
        for days in (25, 225):
            con.execute(
                f"INSERT INTO hourly_traffic SELECT * REPLACE (hour_utc - INTERVAL {days} DAY AS hour_utc) FROM base"
            )
        con.register("odd", odd_frame())
        con.execute("CREATE TABLE odd_hours AS SELECT * FROM odd")
        con.execute(DUCKDB_ODD)
    return path


def odd_frame() -> pd.DataFrame:
    hours = pd.date_range("2026-10-23 00:00", "2026-10-27 23:00", freq="h")
    rows = [
        (entity, hour.to_pydatetime(), float((n * 7 + int(entity[-1]) * 13) % 50))
        for n, hour in enumerate(hours)
        for entity in ("p0001", "p0002", "p0003")
    ]
    frame = pd.DataFrame(rows, columns=["project_id", "hour_utc", "views"])
    return frame.assign(other=frame["views"] + 1)


# ±infinity at 10:00 UTC for p0002, NaN at 11:00 and nothing at 12:00 for p0003, and a whole day
# of nothing for p0001: a sum of no values is 0 and a mean or maximum missing, as in pandas.
ODD_VALUES = """
UPDATE odd_hours SET views = CASE
    WHEN project_id = 'p0002' AND EXTRACT(HOUR FROM hour_utc) = 10
        THEN CASE WHEN EXTRACT(DAY FROM hour_utc) IN (23, 25, 27) THEN {inf} ELSE -{inf} END
    WHEN project_id = 'p0003' AND EXTRACT(HOUR FROM hour_utc) = 11 THEN {nan}
    WHEN project_id = 'p0003' AND EXTRACT(HOUR FROM hour_utc) = 12 THEN NULL
    WHEN project_id = 'p0001' AND EXTRACT(DAY FROM hour_utc) = 26 THEN NULL
    ELSE views END
"""
DUCKDB_ODD = ODD_VALUES.format(inf="CAST('inf' AS DOUBLE)", nan="CAST('nan' AS DOUBLE)")
ODD_KPIS = {
    f"odd_{how}": KpiConfig(
        label="Odd",
        source="demo",
        grain="hour",
        aggregate=how,
        sql="SELECT project_id AS entity, hour_utc AS hour, "
        + ("views AS numerator, other AS denominator" if how == "ratio" else "views AS value")
        + " FROM odd_hours WHERE hour_utc BETWEEN @start AND @end",
        business_hours={"start": "08:00", "end": "20:00", "days": [*WEEKDAYS, "sunday"]}
        if how in ("sum", "last")
        else None,
    )
    for how in ("sum", "mean", "max", "last", "ratio")
}
ODD_WINDOW = Period(date(2026, 10, 23), date(2026, 10, 27))


@pytest.fixture(scope="module")
def bigquery_url(hours_demo, tmp_path_factory):
    with bigquery_holding(hours_demo, tmp_path_factory.mktemp("bq") / "emulator.log") as url:
        yield url


@pytest.fixture(scope="module")
def postgres_url(hours_demo):
    from sqlalchemy import create_engine, text

    with postgres_holding(hours_demo) as url:
        engine = create_engine(url)
        with duckdb.connect(str(hours_demo), read_only=True) as con:
            odd = con.execute("SELECT * FROM odd_hours").df()
        with engine.begin() as connection:
            odd.to_sql("odd_hours", connection, index=False)
            connection.execute(text(ODD_VALUES.format(inf="'Infinity'::float8", nan="'NaN'::float8")))
        engine.dispose()
        yield url


def open_warehouse(request, kind: str, path: Path) -> Source:
    if kind == "duckdb":
        return open_source("demo", DuckDBConfig(type="duckdb", path=path), path.parent)
    if kind == "bigquery":
        url = request.getfixturevalue("bigquery_url")
        config = BigQueryConfig(
            type="bigquery", project=PROJECT, dataset=DATASET, api_endpoint=url, anonymous=True, timeout=60
        )
        return open_source("demo", config, path.parent)
    return open_source(
        "demo", SqlConfig(type="sql", url=request.getfixturevalue("postgres_url")), path.parent
    )


def both_ways(monkeypatch, source: Source, name: str, config: KpiConfig, window: Period, timezone: str):
    """The KPI folded by the warehouse and by pandas, and the queries each took."""
    clock = Clock(window.end, "day", "monday", timezone)
    entities = ["p0001", "p0002", "p0003", "p0004", "p0005", "p0006"]
    before = source.queries_run
    folded = load_kpi(name, config, source, window, clock, entities)
    queries = source.queries_run - before
    with monkeypatch.context() as patch:
        patch.setattr(type(source), "hour_sql", None)
        before = source.queries_run
        in_pandas = load_kpi(name, config, source, window, clock, entities)
        assert source.queries_run - before == 1
    return folded, in_pandas, queries


def assert_same(folded: KpiData, in_pandas: KpiData) -> None:
    def rows(data: KpiData) -> pd.DataFrame:
        frame = data.frame.assign(entity=data.frame["entity"].astype(str))
        return frame.assign(day=frame["day"].astype("datetime64[ns]"))

    pd.testing.assert_frame_equal(rows(folded), rows(in_pandas))
    assert folded.newest == in_pandas.newest
    assert folded.infinite == in_pandas.infinite
    assert folded.frame["entity"].dtype == "category"


@pytest.mark.parametrize("warehouse", ["duckdb", "bigquery", "postgresql"])
def test_the_warehouse_folds_hours_into_local_days_as_pandas_does(
    request, monkeypatch, hours_demo, warehouse
):
    source = open_warehouse(request, warehouse, hours_demo)
    try:
        for timezone in ("Europe/London", "America/St_Johns"):  # St John's is 3½ hours behind UTC
            for window in WINDOWS:
                for name, config in KPIS.items():
                    folded, in_pandas, queries = both_ways(
                        monkeypatch, source, name, config, window, timezone
                    )
                    assert queries == 1, "folding in the warehouse adds no query"
                    assert len(folded.frame) > 0, (name, window)
                    assert_same(folded, in_pandas)
    finally:
        source.close()


@pytest.mark.parametrize("warehouse", ["duckdb", "postgresql"])
def test_infinite_nan_and_missing_values_fold_as_in_pandas(request, monkeypatch, hours_demo, warehouse):
    source = open_warehouse(request, warehouse, hours_demo)
    try:
        for name, config in ODD_KPIS.items():
            folded, in_pandas, queries = both_ways(
                monkeypatch, source, name, config, ODD_WINDOW, "Europe/London"
            )
            assert queries == 1
            assert_same(folded, in_pandas)
            assert folded.infinite == 5  # p0002's views at 10:00 UTC on each of the five days
    finally:
        source.close()


@pytest.mark.parametrize("warehouse", ["duckdb", "postgresql"])
def test_two_rows_inside_one_hour_are_not_taken_for_a_doubled_hour(
    request, monkeypatch, hours_demo, warehouse
):
    """Rows at 10:00 and 10:30 share the hour the fold's check for doubled rows looks at: the
    warehouse hands them to pandas, which folds them, rather than calling them doubled."""
    source = open_warehouse(request, warehouse, hours_demo)
    config = KpiConfig(
        label="Half hours",
        source="demo",
        grain="hour",
        sql="SELECT project_id AS entity, CASE WHEN source = 'direct' THEN hour_utc"
        " ELSE hour_utc + INTERVAL '30 minutes' END AS hour, SUM(pageviews) AS value"
        " FROM hourly_traffic WHERE hour_utc BETWEEN @start AND @end"
        " GROUP BY 1, 2",
    )
    try:
        window = Period(date(2026, 11, 16), date(2026, 11, 18))
        folded, in_pandas, queries = both_ways(monkeypatch, source, "half", config, window, "Europe/London")
        assert queries == 2  # the folded query saw two rows in an hour; the plain rows were folded
        assert_same(folded, in_pandas)
        whole = kpi()
        both, _, _ = both_ways(monkeypatch, source, "whole", whole, window, "Europe/London")
        assert folded.frame["value"].sum() == both.frame["value"].sum()
    finally:
        source.close()


def test_the_25_hour_day_counts_25_hours(monkeypatch, hours_demo):
    """25 October 2026 in London runs from 00:00 BST (23:00 UTC the day before) to 00:00 GMT."""
    source = open_warehouse(None, "duckdb", hours_demo)
    config = KpiConfig(
        label="Hours",
        source="demo",
        grain="hour",
        sql="SELECT project_id AS entity, hour_utc AS hour, COUNT(*) AS value FROM hourly_traffic "
        "WHERE hour_utc BETWEEN @start AND @end AND source = 'direct' GROUP BY 1, 2",
    )
    window = Period(date(2026, 10, 24), date(2026, 10, 26))
    folded, in_pandas, _ = both_ways(monkeypatch, source, "hours", config, window, "Europe/London")
    assert_same(folded, in_pandas)
    one = folded.frame[folded.frame["entity"] == "p0001"]
    assert one["value"].tolist() == [24, 25, 24]
    source.close()


def test_a_day_without_business_hours_still_says_how_fresh_the_data_is(monkeypatch, hours_demo):
    """A Sunday alone (as waiting for a late feed asks) has no business hours, yet has data."""
    source = open_warehouse(None, "duckdb", hours_demo)
    sunday = Period(date(2026, 11, 15), date(2026, 11, 15))
    folded, in_pandas, queries = both_ways(
        monkeypatch, source, "business_hours", KPIS["business_hours"], sunday, "Europe/London"
    )
    assert queries == 1 and folded.frame.empty
    # The query's hours run to @end, Monday 00:00 UTC, inclusive: data through 01:00.
    assert folded.newest == in_pandas.newest == datetime(2026, 11, 16, 1, tzinfo=LONDON)
    source.close()


def test_offsets_change_at_the_clock_change():
    start, end = datetime(2026, 3, 1), datetime(2026, 11, 30)
    hour = 3_600_000_000
    changes = utc_offsets(LONDON, start, end)
    assert changes == [
        (int(datetime(2026, 3, 29, 1, tzinfo=ZoneInfo("UTC")).timestamp()) * 1_000_000, 0),
        (int(datetime(2026, 10, 25, 1, tzinfo=ZoneInfo("UTC")).timestamp()) * 1_000_000, hour),
        (None, 0),
    ]
    assert utc_offsets(ZoneInfo("Asia/Kolkata"), start, end) == [(None, hour * 11 // 2)]


def test_rows_the_fold_cannot_take_are_read_plain_and_named(hours_demo):
    """Doubled hours, or a query without the columns Herald needs: the KPI's own rows say what is wrong."""
    source = open_warehouse(None, "duckdb", hours_demo)
    clock = Clock(date(2026, 11, 19), "day", "monday", "Europe/London")
    window = Period(date(2026, 11, 17), date(2026, 11, 19))
    doubled = KpiConfig(
        label="Doubled",
        source="demo",
        grain="hour",
        sql="SELECT project_id AS entity, hour_utc AS hour, pageviews AS value FROM hourly_traffic",
    )
    with pytest.raises(KpiError, match="GROUP BY entity, hour so each has one row"):
        load_kpi("doubled", doubled, source, window, clock, [])
    assert source.queries_run == 2  # the folded query saw the doubles; the plain one names them
    unnamed = kpi("SUM(pageviews) AS views")
    with pytest.raises(KpiError, match="without value"):
        load_kpi("unnamed", unnamed, source, window, clock, [])
    source.close()


def test_ids_arrive_as_the_known_entities_in_one_query_and_unknown_ones_still_count(tmp_path):
    """DuckDB types a KPI's ids as the entity query's (an ENUM, read as a categorical); rows naming
    an id it does not know are read again as plain strings, and count in the totals as before."""
    path = tmp_path / "ids.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute(
            "CREATE TABLE stats AS SELECT * FROM (VALUES ('p1', DATE '2026-11-02', 1.0),"
            " ('it''s', DATE '2026-11-02', 2.0), ('p1', DATE '2026-11-03', 4.0)) AS t(entity, day, value)"
        )
    source = open_source("demo", DuckDBConfig(type="duckdb", path=path), tmp_path)
    clock = Clock(date(2026, 11, 3), "day", "monday", "UTC")
    window = Period(date(2026, 11, 1), date(2026, 11, 3))
    config = KpiConfig(label="Values", source="demo", sql="SELECT entity, day, value FROM stats;")
    data = load_kpi("values", config, source, window, clock, ["p1", "it's", "p2"])
    assert source.queries_run == 1
    assert list(data.frame["entity"].cat.categories) == ["it's", "p1", "p2"]
    assert data.values(window).to_dict() == {"it's": 2.0, "p1": 5.0}
    mixed = KpiConfig(
        label="Values",
        source="demo",
        sql="SELECT entity, day, value FROM stats UNION ALL SELECT 'p9', DATE '2026-11-03', 8.0",
    )
    data = load_kpi("values", mixed, source, window, clock, ["p1", "it's"])
    assert source.queries_run == 3  # the typed query met p9; the plain one read it
    assert data.values(window).to_dict() == {"it's": 2.0, "p1": 5.0, "p9": 8.0}
    assert data.total(window) == 15.0
    source.close()


def test_entity_ids_are_one_categorical_set_shared_by_every_kpi():
    ids = entity_ids(["p2", "p1"], pd.Series([1, "p3", "1", "p1"], dtype=object))
    assert list(ids.categories) == ["1", "p1", "p2", "p3"]
    assert list(ids.astype(str)) == ["1", "p3", "1", "p1"]


def test_a_missing_id_stays_missing_beside_known_ones():
    ids = entity_ids(["p1"], pd.Series(["p2", None, "p1"], dtype=object))
    assert list(ids.codes) == [1, -1, 0]


@pytest.mark.parametrize(
    "moments",
    [
        pd.to_datetime(["2026-03-01", "2026-03-02", "2026-03-01", "2026-03-03"] * 2),  # whole days
        pd.to_datetime(["2026-03-01 10:00", "2026-03-01 11:00", "2026-03-01 10:00", "2026-03-02 00:00"] * 2),
        pd.to_datetime(["2026-03-01 10:30", "2026-03-01 10:00", "2026-03-01 10:30", "2026-03-01 00:00"] * 2),
        pd.to_datetime(
            ["2026-03-01 10:00", "2026-03-01 11:00", "2026-03-01 10:00", "2026-03-02 00:00"] * 2, utc=True
        ),
        pd.to_datetime(["2026-03-01", None, None, "2026-03-01"] * 2),
        pd.to_datetime(["1969-12-31 23:00", "2100-01-01 00:00", "1969-12-31 23:00", "2026-03-01 00:00"] * 2),
    ],
)
def test_doubled_rows_are_found_as_pandas_finds_them(moments):
    entity = pd.Series(pd.Categorical(list("aabbbbaa"), categories=["a", "b", "c"]))
    moment = pd.Series(moments)
    expected = pd.DataFrame({"entity": entity, "moment": moment}).duplicated(keep=False).to_numpy()
    assert expected.any()
    assert list(_doubled(entity, moment)) == list(expected)


def test_infinities_become_missing_and_are_counted():
    frame = pd.DataFrame({"value": [1.0, math.inf, -math.inf, math.nan], "numerator": [1, 2, 3, 4]})
    kept, count = finite(frame)
    assert count == 2
    assert kept["value"].isna().tolist() == [False, True, True, True]
    assert kept["numerator"].tolist() == [1, 2, 3, 4]


def test_a_run_keeps_ids_as_categoricals_and_shows_plain_strings(demo_db, tmp_path):
    _, run = job_run(demo_folder(tmp_path, demo_db), "cs_daily_alerts")
    assert run.queries == len(run.kpis) + 1  # one per KPI, one for the entities
    for data in run.kpis.values():
        assert isinstance(data.frame["entity"].dtype, pd.CategoricalDtype)
        assert list(data.frame["entity"].cat.categories) == sorted(run.entities.index)
    assert {f.rule for f in run.findings} == {i.rule for i in demo.INCIDENTS}
    assert all(type(f.entity) is str for f in run.findings)
    events = run.kpis["events"]
    values = events.values(run.period)
    assert values.index.dtype == object and "p0007" not in values.index  # p0007 stopped sending
    owner = run.entities.iloc[0]["owner"]
    mine = run.entities.index[run.entities["owner"] == owner].tolist()
    scoped = run.scoped(mine)
    assert set(scoped.kpis["events"].frame["entity"].astype(str)) <= set(mine)
    assert len(scoped.kpis["events"].frame) == events.frame["entity"].isin(mine).sum()
    assert scoped.scoped(mine) is scoped and scoped.scoped([*mine, "p9999"]) is scoped  # nothing to narrow
    one = scoped.scoped(mine[:1])
    assert set(one.kpis["events"].frame["entity"].astype(str)) == {mine[0]}
    assert one.scoped(mine) is one  # narrowing cannot widen it again


# Shaped like the rich text XlsxWriter writes into the sheet unescaped: a cell and a formula would follow.
INJECTION = (
    '<r><t>a</t></r></is></c><c r="Z1"><f>1+1</f><v>2</v></c><c r="Z2" t="inlineStr"><is><r><t>b</t></r>'
)


def awkward_frame() -> pd.DataFrame:
    risky = ['=HYPERLINK("http://example.com","click")', "+1+2", "@SUM(A1)", "\tTab", "\rReturn", "trail "]
    risky += [INJECTION, "A & B <c>", "_x0041_", "x" * 40_000, "line\nbreak", None, "Zoë ✓ 🚀"]
    rows = len(risky) * 2
    return pd.DataFrame(
        {
            "day": pd.date_range("2026-11-01", periods=rows, freq="D"),
            "entity": pd.Categorical([f"p{i % 5:04d}" if i % 7 else None for i in range(rows)]),
            "name": risky * 2,
            "value": [1.5, math.nan, math.inf, -math.inf, 0.0, -0.0, 1e20, 1 / 3, 2**53, -7.25, 1e-9, 42, 3.0]
            * 2,
            "count": range(rows),
            "flag": [True, False] * (rows // 2),
        }
    )


def written(frame: pd.DataFrame, folder: Path) -> openpyxl.Workbook:
    """`frame` as the bulk sheet of a workbook streamed to a file."""
    path = folder / "out.xlsx"
    book = xlsxwriter.Workbook(str(path), {"constant_memory": True, "strings_to_formulas": False})
    styles = Styles(book)
    formats = {"day": styles.date, "value": styles.number("count"), "count": styles.number("decimal")}
    write_table(book, styles, "Data", frame, formats, per_sheet=10, chunk=4)
    book.close()
    return openpyxl.load_workbook(path)


def sheet_xml(frame: pd.DataFrame, folder: Path, name: str) -> list[bytes]:
    """The bulk sheets' XML of `frame` written to a workbook file, in 3-row chunks, 10 rows a sheet."""
    path = folder / f"{name}.xlsx"
    book = xlsxwriter.Workbook(str(path), {"constant_memory": True, "strings_to_formulas": False})
    styles = Styles(book)
    write_table(book, styles, "Data", frame, {"day": styles.date}, per_sheet=10, chunk=3)
    book.close()
    with zipfile.ZipFile(path) as archive:
        return [archive.read(n) for n in sorted(archive.namelist()) if n.startswith("xl/worksheets/sheet")]


def _exits(code: int, after: float = 0.0):
    """In place of the helper: a child that does nothing, waits `after` seconds and ends with `code`."""

    def fork(work, out) -> int:
        pid = os.fork()
        if pid == 0:
            time.sleep(after)
            os._exit(code)
        return pid

    return fork


def test_a_sheet_written_by_two_processes_is_the_sheet_one_writes(tmp_path, monkeypatch):
    """Two cores format a long sheet's rows at once; the file is the same, byte for byte, and
    whatever becomes of the helper (it fails, stalls, or cannot start) every row is there once."""
    frame = awkward_frame()
    assert len(os.sched_getaffinity(0)) > 1, "the helper needs a second core"
    helped = sheet_xml(frame, tmp_path, "helped")
    with monkeypatch.context() as patch:
        patch.setattr(xlsx_rows, "_can_help", lambda rows: False)
        alone = sheet_xml(frame, tmp_path, "alone")
    assert helped == alone and len(alone) == 3 and all(b"<row r=" in xml for xml in alone)
    for fault in (_exits(1), _exits(0, after=30)):
        with monkeypatch.context() as patch:
            patch.setattr(xlsx_rows, "_fork", fault)
            patch.setattr(xlsx_rows, "PATIENCE", 0.5)
            started = time.monotonic()
            assert sheet_xml(frame, tmp_path, "fault") == alone
            assert time.monotonic() - started < 20  # a stalled helper is stopped, not waited for
    with monkeypatch.context() as patch:
        patch.setattr(os, "fork", lambda: (_ for _ in ()).throw(OSError("no more processes")))
        assert sheet_xml(frame, tmp_path, "unforked") == alone


def test_whole_rows_read_back_as_the_cell_by_cell_writer_writes_them(tmp_path, monkeypatch):
    """The streamed sheet written as rows of XML, against XlsxWriter's own cells in the same mode."""
    frame = awkward_frame()
    streamed = written(frame, tmp_path)
    with monkeypatch.context() as patch:
        patch.setattr(RowWriter, "fits", staticmethod(lambda sheet: False))
        by_cell = written(frame, tmp_path)
    assert streamed.sheetnames == by_cell.sheetnames == ["Data", "Data (2)", "Data (3)"]
    for name in streamed.sheetnames:
        ours, theirs = streamed[name], by_cell[name]
        assert ours.dimensions == theirs.dimensions
        assert ours.auto_filter.ref == theirs.auto_filter.ref and ours.freeze_panes == "A2"
        for mine, its in zip(ours.iter_rows(), theirs.iter_rows(), strict=True):
            for cell, other in zip(mine, its, strict=True):
                assert (cell.value, cell.data_type, cell.number_format) == (
                    other.value,
                    other.data_type,
                    other.number_format,
                ), cell.coordinate
    cells = [row for name in streamed.sheetnames for row in streamed[name].iter_rows(min_row=2)]
    assert len(cells) == len(frame)
    assert (
        cells[0][2].value.startswith("=HYPERLINK") and cells[0][2].data_type == "s"
    )  # text, never a formula
    assert cells[6][2].value == INJECTION
    every = [c for name in streamed.sheetnames for row in streamed[name].iter_rows() for c in row]
    assert not [c for c in every if c.data_type == "f" or c.column_letter == "Z"]
    assert len(cells[9][2].value) == 32_767  # Excel's limit on a cell's text
    assert [row[3].value for row in cells[:4]] == [1.5, None, None, None]  # non-finite: empty cells
    assert isinstance(cells[0][0].value, datetime) and cells[0][0].number_format == "yyyy-mm-dd"
    assert cells[0][1].value is None and cells[1][1].value == "p0001"  # a missing id stays empty
