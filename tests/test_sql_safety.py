"""Config SQL is untrusted: every KPI and entity query runs as exactly one read-only SELECT, on
DuckDB, PostgreSQL (a real server) and BigQuery (the emulator). A refused query changes
nothing: the file is not written, the table not created, the rows not deleted."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import pytest
from sqlalchemy import create_engine, text

from reports import demo
from reports.errors import SourceError
from reports.sources import Source
from reports.sources.bigquery import BigQueryConfig, BigQuerySource
from reports.sources.duckdb import DuckDBConfig, DuckDBSource
from reports.sources.sql import SqlConfig, SqlSource
from reports.sources.statements import LEXICONS, STANDARD, split
from tests.conftest import demo_folder, job_run
from tests.warehouses import DATASET, PROJECT, bigquery_emulator, postgres_server

ONE_SELECT = "a KPI runs exactly one SELECT statement"
REMOVE = f"{ONE_SELECT}; remove the second statement"
ROWS = [("p1", date(2026, 11, 21), 3), ("p2", date(2026, 11, 22), 5)]
END = {"end": date(2026, 11, 22)}


# Each warehouse: a Source over a two-row table `kpi_rows` (and its entry for config.yaml), a
# statement that would leave a trace, and a way to look for that trace and count the rows afterwards.
@dataclass
class Warehouse:
    source: Source
    config: dict
    write: str  # writes a file, or creates the table herald_probe
    written: Callable[[], bool]
    rows: Callable[[], int]


@pytest.fixture(scope="session")
def duckdb_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("duckdb") / "kpis.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE kpi_rows (entity VARCHAR, day DATE, value INTEGER)")
        con.executemany("INSERT INTO kpi_rows VALUES (?, ?, ?)", ROWS)
    return path


@pytest.fixture(scope="session")
def postgresql_kpis() -> Iterator[str]:
    with postgres_server() as url:
        engine = create_engine(url)
        with engine.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE kpi_rows (entity TEXT, day DATE, value INTEGER)")
            connection.execute(text("INSERT INTO kpi_rows VALUES (:e, :d, :v)"), _records())
            connection.exec_driver_sql("CREATE SEQUENCE herald_seq")
        engine.dispose()
        yield url


@pytest.fixture(scope="session")
def bigquery_kpis(tmp_path_factory) -> Iterator[str]:
    with bigquery_emulator(tmp_path_factory.mktemp("bq") / "emulator.log") as url:
        client = _bigquery_client(url)
        client.create_dataset(DATASET, exists_ok=True)
        values = ", ".join(f"('{e}', DATE '{d}', {v})" for e, d, v in ROWS)
        client.query(
            f"CREATE TABLE {DATASET}.kpi_rows AS SELECT * FROM UNNEST("
            f"ARRAY<STRUCT<entity STRING, day DATE, value INT64>>[{values}])"
        ).result()
        client.close()
        yield url


def _records() -> list[dict]:
    return [{"e": e, "d": d, "v": v} for e, d, v in ROWS]


def _bigquery_client(url: str):
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery

    return bigquery.Client(
        project=PROJECT, credentials=AnonymousCredentials(), client_options=ClientOptions(api_endpoint=url)
    )


def _postgresql(url: str) -> Warehouse:
    engine = create_engine(url)

    def scalar(sql: str) -> object:
        with engine.connect() as connection:
            return connection.exec_driver_sql(sql).scalar()

    config = {"type": "sql", "url": url}
    return Warehouse(
        SqlSource("w", SqlConfig(**config), Path()),
        config,
        "CREATE TABLE herald_probe (a INTEGER)",
        lambda: bool(scalar("SELECT to_regclass('herald_probe') IS NOT NULL")),
        lambda: int(scalar("SELECT COUNT(*) FROM kpi_rows")),
    )


@pytest.fixture(params=["duckdb", "postgresql", "bigquery"])
def warehouse(request, tmp_path) -> Iterator[Warehouse]:
    if request.param == "duckdb":
        path = request.getfixturevalue("duckdb_file")
        leak = tmp_path / "leak.csv"

        def count() -> int:
            with duckdb.connect(str(path), read_only=True) as con:
                return con.execute("SELECT COUNT(*) FROM kpi_rows").fetchone()[0]

        config = {"type": "duckdb", "path": str(path)}
        source = DuckDBSource("w", DuckDBConfig(**config), tmp_path)
        found = Warehouse(source, config, f"COPY (SELECT 1 AS a) TO '{leak}'", leak.exists, count)
    elif request.param == "postgresql":
        found = _postgresql(request.getfixturevalue("postgresql_kpis"))
    else:
        url = request.getfixturevalue("bigquery_kpis")
        config = {"type": "bigquery", "project": PROJECT, "dataset": DATASET, "api_endpoint": url}
        config.update(anonymous=True, timeout=60)
        client = _bigquery_client(url)
        found = Warehouse(
            BigQuerySource("w", BigQueryConfig(**config), Path()),
            config,
            f"CREATE TABLE {DATASET}.herald_probe (a INT64)",
            lambda: "herald_probe" in {t.table_id for t in client.list_tables(DATASET)},
            lambda: next(iter(client.query(f"SELECT COUNT(*) FROM {DATASET}.kpi_rows").result()))[0],
        )
    yield found
    found.source.close()


def test_a_second_statement_is_refused_before_anything_runs(warehouse):
    sql = f"SELECT entity, day, value FROM kpi_rows WHERE day <= @end; {warehouse.write}"
    for attempt in (warehouse.source.query, warehouse.source.check):  # a run, and validate --check-sources
        with pytest.raises(SourceError) as refused:
            attempt(sql, END)
        assert refused.value.message.startswith("the SQL holds 2 statements; the second, ")
        assert refused.value.hint == REMOVE
    assert not warehouse.written()


def test_a_semicolon_in_a_string_and_a_closing_one_still_run(warehouse):
    sql = "SELECT entity, 'a;b' AS note FROM kpi_rows WHERE day <= @end ORDER BY entity; -- done"
    frame = warehouse.source.query(sql, END)
    assert frame.values.tolist() == [["p1", "a;b"], ["p2", "a;b"]]
    assert warehouse.source.check(sql, END).columns == ["entity", "note"]


def test_a_statement_that_writes_is_refused(warehouse):
    dialect_free = {
        "DELETE FROM kpi_rows WHERE TRUE": "the SQL starts with DELETE, not SELECT or WITH",
        "INSERT INTO kpi_rows (entity) VALUES ('p3')": "the SQL starts with INSERT, not SELECT or WITH",
        warehouse.write: "the SQL starts with CREATE, not SELECT or WITH",
    }
    if isinstance(warehouse.source, DuckDBSource):  # DuckDB's parser names the statement's type
        dialect_free = {
            "DELETE FROM kpi_rows WHERE TRUE": "the SQL is a DELETE statement, not a SELECT",
            "INSERT INTO kpi_rows (entity) VALUES ('p3')": "the SQL is an INSERT statement, not a SELECT",
            warehouse.write: "the SQL is a COPY statement, not a SELECT",
        }
    for sql, message in dialect_free.items():
        with pytest.raises(SourceError) as refused:
            warehouse.source.query(sql, {})
        assert refused.value.message == message
        assert refused.value.hint.startswith(f"{ONE_SELECT}; ")
    assert warehouse.rows() == 2
    assert not warehouse.written()


@pytest.mark.parametrize(
    ("sql", "refusal"),
    [
        (
            "WITH gone AS (DELETE FROM kpi_rows RETURNING 1) SELECT COUNT(*) AS n FROM gone",
            "cannot execute SELECT in a read-only transaction",  # PostgreSQL's words for it
        ),
        ("SELECT nextval('herald_seq') AS n", "cannot execute nextval() in a read-only transaction"),
    ],
)
def test_a_write_shaped_as_a_select_fails_read_only_on_postgresql(postgresql_kpis, sql, refusal):
    """Such a statement passes the split; the read-only transaction stops it."""
    warehouse = _postgresql(postgresql_kpis)
    assert len(warehouse.source.query("SELECT entity FROM kpi_rows", {})) == 2  # a pooled connection, reused
    with pytest.raises(SourceError) as refused:
        warehouse.source.query(sql, {})
    warehouse.source.close()
    assert refusal in refused.value.message
    assert warehouse.rows() == 2


def test_bigquery_runs_only_what_its_dry_run_calls_a_select(bigquery_kpis, monkeypatch):
    """Behind the local split, the dry run's statement type: tested here with the split switched off."""
    config = BigQueryConfig(
        type="bigquery", project=PROJECT, dataset=DATASET, api_endpoint=bigquery_kpis, anonymous=True
    )
    source = BigQuerySource("w", config, Path())
    monkeypatch.setattr(source, "one_select", lambda sql: sql)
    cases = {
        "INSERT INTO kpi_rows (entity) VALUES ('p3')": "the SQL is an INSERT statement, not a SELECT",
        "DELETE FROM kpi_rows WHERE TRUE": "the SQL is a DELETE statement, not a SELECT",
        # Harmless on purpose: the emulator's dry run executes a script (BigQuery's never does).
        "SELECT 1 AS x; SELECT 2 AS y": "BigQuery reads the SQL as a script of several statements",
    }
    for sql, message in cases.items():
        with pytest.raises(SourceError) as refused:
            source.query(sql, {})
        assert refused.value.message == message
    assert source.query("SELECT COUNT(*) AS n FROM kpi_rows", {})["n"].tolist() == [2]
    source.close()


def test_duckdb_says_why_a_pivot_counts_as_two_statements(duckdb_file, tmp_path):
    source = DuckDBSource("w", DuckDBConfig(type="duckdb", path=duckdb_file), tmp_path)
    with pytest.raises(SourceError) as refused:
        source.query("PIVOT kpi_rows ON entity USING sum(value)", {})  # DuckDB first creates a type
    assert refused.value.message.endswith("as it does a PIVOT without an IN list")
    assert "ON column IN ('a', 'b')" in refused.value.hint
    frame = source.query("PIVOT kpi_rows ON entity IN ('p1', 'p2') USING sum(value) ORDER BY day", {})
    assert frame.columns.tolist() == ["day", "p1", "p2"]
    source.close()


@pytest.mark.parametrize(
    ("dialect", "sql", "count"),
    [
        ("postgresql", "SELECT ';' AS a;", 1),
        ("postgresql", "SELECT 1; DELETE FROM t", 2),
        ("postgresql", "SELECT 1;; -- only a comment\n;", 1),
        ("postgresql", "SELECT $$;$$ AS a, $q$ ; $q$ AS b", 1),
        ("postgresql", "SELECT E'\\'; DELETE FROM t; --' AS a", 1),  # E'' strings take backslashes
        ("postgresql", "SELECT '\\'; DELETE FROM t; --'", 2),  # plain ones do not
        ("postgresql", "SELECT 1 /* a /* b */ ; */ AS x", 1),  # comments nest
        ("postgresql", "SELECT a$b$ FROM t; DELETE FROM t; SELECT $b$", 3),  # `$` inside a name
        ("postgresql", 'SELECT "a;b" FROM t -- ;\n', 1),
        ("bigquery", "SELECT 'it\\'s; fine' AS x;", 1),
        ("bigquery", "SELECT '''a;\nb''' AS x # c; d\n", 1),
        ("bigquery", "SELECT `a;b` FROM t; DROP TABLE t", 2),
        ("mysql", "SELECT 1 # '\n; DELETE FROM t; -- '", 2),
        ("mysql", "SELECT 1--1; DELETE FROM t", 2),  # `--` needs a blank after it
        ("mysql", "SELECT 1 /*!; DELETE FROM t */", 2),  # MySQL runs /*! ... */
        ("standard", "SELECT 'a;b' AS x; ", 1),
        ("standard", "-- nothing here\n", 0),
    ],
)
def test_statements_split_as_the_warehouse_reads_them(dialect, sql, count):
    assert len(split(sql, LEXICONS.get(dialect, STANDARD))) == count


@pytest.fixture(scope="session")
def small_warehouse(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("small") / "demo.duckdb"
    demo.build(path, projects=24, days=70)
    return path


def test_a_kpi_with_two_statements_fails_by_name_and_the_rest_goes_on(tmp_path, small_warehouse):
    leak = tmp_path / "leak.csv"

    def two_statements(data: dict) -> None:
        data["kpis"]["events"]["sql"] += f"; COPY (SELECT 1 AS a) TO '{leak}'"

    _, run = job_run(demo_folder(tmp_path, small_warehouse, two_statements), "cs_daily_alerts")
    assert all("KPI 'events'" in failure for failure in run.failures)  # its rules wait for it
    assert run.failures[0].startswith("KPI 'events': the SQL holds 2 statements; the second, `COPY")
    assert run.failures[0].endswith(f" — {REMOVE}")
    assert "crm_sync_rate" in run.kpis
    assert not leak.exists()


def test_check_sources_fails_such_queries_with_the_same_message(warehouse, tmp_path, small_warehouse, herald):
    def two_statements(data: dict) -> None:
        data["sources"]["demo"] = warehouse.config
        data["kpis"]["events"]["sql"] = f"SELECT entity, day, value FROM kpi_rows; {warehouse.write}"
        data["entities"]["project"]["sql"] = f"SELECT entity, entity AS name FROM kpi_rows; {warehouse.write}"

    path = demo_folder(tmp_path, small_warehouse, two_statements)
    result = herald("validate", "--check-sources", "--config", path)
    assert result.code == 1
    rows = {tuple(line.split()[:2]): line for line in result.out.splitlines()}
    for row in (rows["kpi", "events"], rows["entities", "project"]):
        assert row.split()[3] == "FAILED"
        assert f"the SQL holds 2 statements; the second, `{warehouse.write.split()[0]}" in row
        assert row.endswith(f" — {REMOVE}")
    assert not warehouse.written()
