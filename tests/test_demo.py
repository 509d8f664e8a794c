"""The demo warehouse: deterministic from its seed, with the incidents where the README says."""

import re
from datetime import date, datetime
from pathlib import Path

import duckdb
import pytest

from reports import demo
from tests.conftest import ROOT

TABLES = ("cs_owners", "projects", "daily_project_stats", "crm_syncs", "background_jobs", "hourly_traffic")


def fingerprint(path: Path) -> dict[str, str]:
    with duckdb.connect(str(path), read_only=True) as con:
        return {
            t: con.execute(
                f"SELECT md5(string_agg(CAST(x AS VARCHAR), '|' ORDER BY CAST(x AS VARCHAR))) FROM {t} x"
            ).fetchone()[0]
            for t in TABLES
        }


def test_same_seed_same_rows_other_seed_other_rows(tmp_path: Path):
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        demo.build(tmp_path / f"{name}.duckdb", projects=25, days=60, seed=seed)
    a, b, c = (fingerprint(tmp_path / f"{n}.duckdb") for n in "abc")
    assert a == b
    assert all(a[t] != c[t] for t in TABLES if t != "cs_owners")  # owners are a fixed roster


def test_too_small_a_warehouse_is_refused_with_the_fix(herald, tmp_path: Path):
    result = herald("demo-data", "--projects", "5", "--out", tmp_path / "x.duckdb")
    assert result.code == 2 and "at least 20 projects" in result.err and "--projects" in result.err
    assert not (tmp_path / "x.duckdb").exists()


def test_demo_size(demo_db: Path):
    with duckdb.connect(str(demo_db), read_only=True) as con:
        assert con.execute("SELECT COUNT(*) FROM projects").fetchone()[0] == 400
        first, last = con.execute("SELECT MIN(day), MAX(day) FROM background_jobs").fetchone()
        assert (first, last) == (date(2026, 7, 26), date(2026, 11, 22))
        owners = con.execute(
            "SELECT COUNT(*), COUNT(DISTINCT email), COUNT(DISTINCT slack_handle) FROM cs_owners"
        )
        assert len(set(owners.fetchone())) == 1


def readme_incidents() -> dict[str, tuple[str, str, date]]:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Planted incidents") :]
    rows = re.findall(r"^\| `(\w+)` \| (.*?) \| `(\w+)` \| (\d{4}-\d\d-\d\d) \|", section, re.M)
    return {rule: (entity, table, date.fromisoformat(day)) for rule, entity, table, day in rows}


def test_readme_lists_every_incident():
    listed = readme_incidents()
    assert set(listed) == {i.rule for i in demo.INCIDENTS}
    for incident in demo.INCIDENTS:
        entity, table, starts = listed[incident.rule]
        assert (incident.table, incident.starts) == (table, starts)
        assert (incident.entity or "—") in entity


@pytest.fixture(scope="module")
def con(demo_db: Path):
    with duckdb.connect(str(demo_db), read_only=True) as connection:
        yield connection


def incident(rule: str) -> demo.Incident:
    return next(i for i in demo.INCIDENTS if i.rule == rule)


def test_collection_stops(con):
    i = incident("collection_stopped")
    last = con.execute(
        "SELECT MAX(day) FROM daily_project_stats WHERE project_id = ?", [i.entity]
    ).fetchone()[0]
    assert last == date(2026, 11, 19) and i.starts == date(2026, 11, 20)


def test_crm_starts_failing(con):
    i = incident("crm_sync_failing")
    before, after = con.execute(
        "SELECT SUM(syncs_failed) FILTER (day < $s) / SUM(syncs_ok + syncs_failed) FILTER (day < $s), "
        "SUM(syncs_failed) FILTER (day >= $s) / SUM(syncs_ok + syncs_failed) FILTER (day >= $s) "
        "FROM crm_syncs WHERE project_id = $p",
        {"s": i.starts, "p": i.entity},
    ).fetchone()
    assert before < 0.02 and after > 0.75


def test_usage_drops(con):
    i = incident("usage_drop")
    before, after = con.execute(
        "SELECT AVG(events) FILTER (day BETWEEN $s - 14 AND $s - 1), AVG(events) FILTER (day >= $s) "
        "FROM daily_project_stats WHERE project_id = $p",
        {"s": i.starts, "p": i.entity},
    ).fetchone()
    assert 0.35 < after / before < 0.55


def test_job_failures_spike(con):
    i = incident("job_failure_spike")
    rows = con.execute(
        "SELECT day, jobs_failed / (jobs_ok + jobs_failed) FROM background_jobs "
        "WHERE project_id = ? AND day >= ? - 3 ORDER BY day",
        [i.entity, i.starts],
    ).fetchall()
    rates = dict(rows)
    assert all(rates[d] < 0.05 for d in rates if d < i.starts)
    assert all(rates[d] > 0.25 for d in rates if d >= i.starts)


def test_traffic_feed_goes_stale(con):
    newest = con.execute("SELECT MAX(hour_utc) FROM hourly_traffic").fetchone()[0]
    assert newest == datetime(2026, 11, 19, 23)
