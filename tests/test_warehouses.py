"""The same KPIs on DuckDB, BigQuery (the emulator, through the real client) and PostgreSQL
(a real server, through SQLAlchemy): the findings and figures must agree."""

import json
import math
from datetime import date
from pathlib import Path

import pytest

from reports import demo
from reports.errors import SourceError
from reports.report.build import build_report
from reports.report.model import EVERYONE
from reports.sources.bigquery import BigQueryConfig, BigQuerySource
from tests.conftest import NOW, demo_folder, job_run
from tests.warehouses import DATASET, PROJECT, bigquery_holding, postgres_holding

DAYS = [date(2026, 11, 22), date(2026, 11, 8)]


@pytest.fixture(scope="session")
def small_demo(tmp_path_factory):
    path = tmp_path_factory.mktemp("small") / "demo.duckdb"
    demo.build(path, projects=24, days=70)
    return path


@pytest.fixture(scope="session")
def bigquery_url(small_demo, tmp_path_factory):
    with bigquery_holding(small_demo, tmp_path_factory.mktemp("bq") / "emulator.log") as url:
        yield url


@pytest.fixture(scope="session")
def postgres_url(small_demo):
    with postgres_holding(small_demo) as url:
        yield url


def source_config(kind: str, url: str) -> dict:
    if kind == "bigquery":
        return {
            "type": "bigquery",
            "project": PROJECT,
            "dataset": DATASET,
            "api_endpoint": url,
            "anonymous": True,
            "timeout": 60,
        }
    return {"type": "sql", "url": url}


def config_for(tmp_path, small_demo, source: dict | None, edit=None):
    def change(data: dict) -> None:
        if source is not None:
            data["sources"]["demo"] = source
        if edit:
            edit(data)

    return demo_folder(tmp_path, small_demo, change)


def comparable(run) -> tuple:
    findings = sorted(
        (f.rule, f.entity, round(f.value or 0, 6), round(f.reference or 0, 6)) for f in run.findings
    )
    return findings, run.failures


def cards(config, run) -> dict:
    report = build_report(config, run, EVERYONE, NOW)
    return {c.kpi: (c.value, c.previous) for c in report.cards}


@pytest.mark.parametrize("warehouse", ["bigquery", "postgresql"])
@pytest.mark.parametrize("job", ["cs_daily_alerts", "executive_weekly"])
def test_findings_and_figures_equal_duckdb(request, tmp_path, small_demo, warehouse, job):
    url = request.getfixturevalue("bigquery_url" if warehouse == "bigquery" else "postgres_url")
    local = config_for(tmp_path / "duckdb", small_demo, None)
    remote = config_for(tmp_path / warehouse, small_demo, source_config(warehouse, url))
    for as_of in DAYS:
        config, expected = job_run(local, job, as_of)
        remote_config, actual = job_run(remote, job, as_of)
        assert actual.ok, actual.failures
        assert comparable(actual) == comparable(expected)
        ours, theirs = cards(remote_config, actual), cards(config, expected)
        assert ours.keys() == theirs.keys()
        for kpi, (value, previous) in theirs.items():
            assert math.isclose(ours[kpi][0] or 0, value or 0, rel_tol=1e-9), kpi
            assert math.isclose(ours[kpi][1] or 0, previous or 0, rel_tol=1e-9), kpi
    if job == "cs_daily_alerts":
        assert {f.rule for f in actual.findings} == set()  # the clean day came last
        _, incident = job_run(remote, job, DAYS[0])
        assert {f.rule for f in incident.findings} == {i.rule for i in demo.INCIDENTS}


@pytest.mark.parametrize("warehouse", ["bigquery", "postgresql"])
def test_check_sources_plans_every_query(request, tmp_path, small_demo, warehouse, herald):
    url = request.getfixturevalue("bigquery_url" if warehouse == "bigquery" else "postgres_url")

    def break_one(data: dict) -> None:
        data["kpis"]["sessions"]["sql"] = "SELECT project_id AS entity, day FROM daily_project_stats"
        data["kpis"]["events"]["sql"] = (
            "SELECT project_id AS entity, day, events AS value FORM daily_project_stats"
        )

    path = config_for(tmp_path, small_demo, source_config(warehouse, url), break_one)
    result = herald("validate", "--check-sources", "--config", path)
    assert result.code == 1, result.out + result.err
    rows = {line.split()[1]: line for line in result.out.splitlines()[3:]}
    assert (
        " ok " in rows["bounce_rate"] and "columns entity, day, numerator, denominator" in rows["bounce_rate"]
    )
    assert "FAILED" in rows["sessions"] and "without value" in rows["sessions"]
    assert "FAILED" in rows["events"]
    assert " ok " in rows["project"]


@pytest.mark.parametrize("warehouse", ["bigquery", "postgresql"])
def test_a_syntax_error_names_the_kpi_and_the_rest_goes_on(request, tmp_path, small_demo, warehouse, herald):
    url = request.getfixturevalue("bigquery_url" if warehouse == "bigquery" else "postgres_url")

    def typo(data: dict) -> None:
        data["kpis"]["crm_sync_rate"]["sql"] = "SELEC project_id FROM crm_syncs"

    path = config_for(tmp_path, small_demo, source_config(warehouse, url), typo)
    result = herald("run", "cs_daily_alerts", "--as-of", "2026-11-22", "--json", "--config", path)
    assert result.code == 1
    run = json.loads(result.out)
    assert run["failures"][0].startswith("KPI 'crm_sync_rate': ")
    assert {f["rule"] for f in run["findings"]} == {
        "collection_stopped",
        "usage_drop",
        "job_failure_spike",
        "traffic_feed_stale",
    }


def test_a_refused_connection_fails_one_kpi_and_the_other_jobs_go_on(tmp_path, small_demo, herald):
    from tests.servers import free_port

    def split(data: dict) -> None:
        data["sources"]["crm"] = {
            "type": "sql",
            "url": f"postgresql+psycopg://herald@127.0.0.1:{free_port()}/x",
            "connect_timeout": 2,
        }
        data["kpis"]["crm_sync_rate"]["source"] = "crm"

    path = config_for(tmp_path, small_demo, None, split)
    result = herald(
        "run", "cs_daily_alerts", "analyst_monthly", "--as-of", "2026-11-22", "--json", "--config", path
    )
    assert result.code == 1
    cs, analyst = json.loads(result.out)
    assert analyst["job"] == "analyst_monthly" and all("crm_sync_rate" in f for f in analyst["failures"])
    assert "KPI 'crm_sync_rate': source 'crm': cannot connect" in cs["failures"][0]
    assert "usage_drop" in {f["rule"] for f in cs["findings"]}
    assert (tmp_path / "out" / "analyst_monthly" / "2026-11-22" / "analyst_monthly-2026-11-22.xlsx").exists()


@pytest.mark.parametrize(
    ("estimate", "message"),
    [
        (
            5_000_000_000_000,
            "the query would scan 5,000,000,000,000 bytes, over maximum_bytes_billed (1,000)",
        ),
        (10, "BigQuery refused the query: Query exceeded limit for bytes billed: 1000."),
    ],
)
def test_maximum_bytes_billed_refuses_the_query(estimate, message):
    from tests.servers import bigquery_billing_limits

    with bigquery_billing_limits(estimate) as url:
        source = BigQuerySource(
            "prod",
            BigQueryConfig(
                type="bigquery", project="p", api_endpoint=url, anonymous=True, maximum_bytes_billed=1000
            ),
            Path(),
        )
        with pytest.raises(SourceError) as caught:
            source.query("SELECT 1 AS x WHERE @day = @day", {"day": date(2026, 11, 22)})
    assert message in caught.value.message
    assert "maximum_bytes_billed" in caught.value.hint


def test_jobs_carry_labels_for_cost_attribution(tmp_path, small_demo, bigquery_url):
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery

    path = config_for(tmp_path, small_demo, source_config("bigquery", bigquery_url))
    job_run(path, "cs_daily_alerts")
    client = bigquery.Client(
        project=PROJECT,
        credentials=AnonymousCredentials(),
        client_options=ClientOptions(api_endpoint=bigquery_url),
    )
    labels = [job.labels for job in client.list_jobs(max_results=200) if job.labels]
    assert {"herald_job": "cs_daily_alerts", "herald_run": "cs_daily_alerts-2026-11-22"} in labels


def test_missing_credentials_name_the_fix(monkeypatch, tmp_path):
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "no-such-key.json"))
    source = BigQuerySource("prod", BigQueryConfig(type="bigquery", project="p"), Path())
    with pytest.raises(SourceError) as caught:
        source.query("SELECT 1", {})
    assert (
        "no usable Google credentials in the file named by GOOGLE_APPLICATION_CREDENTIALS"
        in caught.value.message
    )
    assert "service-account key file" in caught.value.hint


def test_per_dialect_sql_picks_the_sources_own(tmp_path, small_demo, postgres_url):
    def dialects(data: dict) -> None:
        plain = data["kpis"]["events"]["sql"]
        data["kpis"]["events"]["sql"] = {
            "postgresql": plain.replace("SELECT", "SELECT /* pg */"),
            "duckdb": "SELECT broken",
        }
        data["kpis"]["sessions"]["sql"] = {"bigquery": "SELECT 1"}

    path = config_for(tmp_path, small_demo, source_config("postgresql", postgres_url), dialects)
    _, run = job_run(path, "executive_weekly")
    assert "events" in run.kpis
    assert (
        run.failures[0]
        == "KPI 'sessions': no SQL for postgresql (it has bigquery) — add `postgresql:` under the KPI's `sql:`"
    )
