"""Jobs end to end on the demo warehouse, through the command line."""

import json
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from reports import demo
from reports.commands import next_fire
from reports.config.load import load_config
from reports.kpis import periods
from reports.pipeline.compute import compute_job
from reports.render.outputs import shown
from reports.report.build import build_report
from reports.report.model import EVERYONE
from reports.sources.pool import Sources
from tests.conftest import ROOT, demo_folder, execute_job

INCIDENT_DAY = "2026-11-22"
CLEAN_DAYS = ["2026-10-27", "2026-11-08", "2026-11-16"]


def test_cs_alerts_find_every_planted_incident_and_nothing_else(herald, demo_config):
    result = herald("run", "cs_daily_alerts", "--as-of", INCIDENT_DAY, "--json", "--config", demo_config)
    assert result.code == 0, result.err
    run = json.loads(result.out)
    found = {(f["rule"], f["entity"]) for f in run["findings"]}
    assert found == {(i.rule, i.entity) for i in demo.INCIDENTS}
    assert run["failures"] == [] and run["notes"] == []
    by_rule = {f["rule"]: f for f in run["findings"]}
    assert by_rule["crm_sync_failing"]["severity"] == "critical"
    assert by_rule["crm_sync_failing"]["entity_name"] == "Nimbus Paper"
    assert by_rule["collection_stopped"]["message"].endswith(", on each of the last 2 runs")


@pytest.mark.parametrize("as_of", CLEAN_DAYS)
def test_cs_alerts_are_quiet_on_clean_days(herald, demo_config, as_of):
    result = herald("run", "cs_daily_alerts", "--as-of", as_of, "--json", "--config", demo_config)
    assert result.code == 0
    assert json.loads(result.out)["findings"] == []


def test_the_findings_table(herald, demo_config):
    result = herald("run", "cs_daily_alerts", "--as-of", INCIDENT_DAY, "--config", demo_config)
    lines = result.out.splitlines()
    assert lines[0].startswith("cs_daily_alerts — 2026-11-22 (as of 2026-11-22): 5 findings")
    assert lines[1].split() == ["ALERT", "SEVERITY", "RULE", "ENTITY", "VALUE", "MESSAGE"]
    assert any(line.startswith("new ") and "crm_sync_failing" in line and "15.6%" in line for line in lines)


def test_queries_do_not_grow_with_entities(tmp_path: Path):
    counts = {}
    for projects in (20, 120):
        folder = tmp_path / str(projects)
        demo.build(folder / "data" / "demo.duckdb", projects=projects, days=90)
        (folder / "config.yaml").write_text((ROOT / "config.yaml").read_text())
        config = load_config(folder / "config.yaml")
        sources = Sources(config)
        runs = [compute_job(config, job, datetime(2026, 11, 22).date(), sources) for job in config.reports]
        sources.close()
        counts[projects] = [r.queries for r in runs]
        assert all(r.ok for r in runs)
    assert counts[20] == counts[120]
    config = load_config(ROOT / "config.yaml")
    kpis = {
        job: {*r.kpis, *(config.rule(n).kpi for n in (r.rules or []))} for job, r in config.reports.items()
    }
    assert counts[20] == [len(kpis[job]) + 1 for job in config.reports]  # one per KPI, one for entity names


def test_a_broken_kpi_fails_alone(herald, demo_config):
    text = demo_config.read_text().replace("FROM crm_syncs WHERE", "FROM crm_sync WHERE")
    demo_config.write_text(text)
    result = herald("run", "cs_daily_alerts", "--as-of", INCIDENT_DAY, "--config", demo_config)
    assert result.code == 1
    assert "FAILED: KPI 'crm_sync_rate': Catalog Error: Table with name crm_sync does not exist" in result.out
    assert (
        "FAILED: rule 'crm_sync_failing' was not evaluated: KPI 'crm_sync_rate' could not be computed"
        in result.out
    )
    assert "collection_stopped" in result.out and "usage_drop" in result.out  # the rest went on


def test_a_missing_warehouse_names_the_fix(herald, tmp_path):
    (tmp_path / "config.yaml").write_text((ROOT / "config.yaml").read_text())
    result = herald("run", "cs_daily_alerts", "--config", tmp_path / "config.yaml")
    assert result.code == 1
    assert "demo.duckdb does not exist" in result.err and "run.py demo-data" in result.err
    assert "Traceback" not in result.err


def test_run_all_writes_findings_under_out(herald, demo_config, tmp_path):
    out = tmp_path / "out"
    result = herald("run", "--all", "--as-of", INCIDENT_DAY, "--out", out, "--config", demo_config)
    assert result.code == 0, result.err
    for job in ("executive_weekly", "cs_daily_alerts", "analyst_monthly"):
        saved = json.loads((out / job / INCIDENT_DAY / "findings.json").read_text())
        assert saved["job"] == job and saved["as_of"] == INCIDENT_DAY
    weekly = json.loads((out / "executive_weekly" / INCIDENT_DAY / "findings.json").read_text())
    assert weekly["period"] == {"start": "2026-11-16", "end": "2026-11-22"}
    files = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert {
        "executive_weekly/2026-11-22/executive_weekly-2026-11-22.pdf",
        "executive_weekly/2026-11-22/executive_weekly-2026-11-22.html",
        "executive_weekly/2026-11-22/email.html",
        "analyst_monthly/2026-11-22/analyst_monthly-2026-11-22.xlsx",
        "cs_daily_alerts/2026-11-22/slack.json",
        "cs_daily_alerts/2026-11-22/amara-okafor/slack.json",
        "project_health/2026-11-22/project_health-2026-11-22.pdf",  # the whole portfolio, for the archive
        "project_health/2026-11-22/willow-media/project_health-2026-11-22-willow-media.pdf",
    } <= files
    assert sum(name.startswith("project_health/") and name.endswith(".pdf") for name in files) == 401
    assert not any(name.endswith(".partial") for name in files)
    archived = (out / "executive_weekly" / INCIDENT_DAY / "email.html").read_text()
    assert "data:image/png;base64," in archived and "cid:" not in archived  # opens from disk whole
    # Only owners with something to hear about get a message of their own.
    owners = {
        name.split("/")[2] for name in files if name.startswith("cs_daily_alerts/") and name.count("/") == 3
    }
    assert owners == {"amara-okafor", "bruno-sato", "freya-shah", "hana-becker"}


def test_preview_writes_one_recipients_outputs(herald, demo_config, tmp_path):
    result = herald(
        "preview",
        "cs_daily_alerts",
        "--as-of",
        INCIDENT_DAY,
        "--recipient",
        "Amara Okafor",
        "--config",
        demo_config,
    )
    assert result.code == 0, result.err
    folder = tmp_path / "out" / "preview" / "cs_daily_alerts" / "amara-okafor"
    assert sorted(p.name for p in folder.iterdir()) == ["email.html", "email.txt", "slack.json"]
    assert "Cobalt Radio" in (folder / "slack.json").read_text()
    assert "out/preview/cs_daily_alerts/amara-okafor/slack.json" in result.out.splitlines()
    unknown = herald(
        "preview",
        "cs_daily_alerts",
        "--recipient",
        "Nobody",
        "--as-of",
        INCIDENT_DAY,
        "--config",
        demo_config,
    )
    assert unknown.code == 2 and "no recipient 'Nobody'" in unknown.err and "Amara Okafor" in unknown.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run"], "name the jobs to run, or pass --all"),
        (["run", "cs_daily_alerts", "--all"], "name the jobs to run, or pass --all"),
        (["run", "weekly"], "there is no job named 'weekly'"),
    ],
)
def test_argument_mistakes_exit_2(herald, demo_config, args, message):
    result = herald(*args, "--config", demo_config)
    assert result.code == 2 and message in result.err


def test_bad_dates_exit_2_without_a_traceback():
    process = subprocess.run(
        [sys.executable, "run.py", "run", "cs_daily_alerts", "--as-of", "2026-02-30"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert process.returncode == 2
    assert "'2026-02-30' is not a date; write it as YYYY-MM-DD" in process.stderr
    assert "Traceback" not in process.stderr


def test_the_real_entry_point_runs_a_job(demo_config):
    process = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "run", "cs_daily_alerts", "--as-of", INCIDENT_DAY],
        cwd=demo_config.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    assert process.returncode == 0, process.stderr
    assert "5 findings" in process.stdout


def test_list_shows_next_runs_in_each_jobs_time_zone(herald, demo_config):
    result = herald("list", "--config", demo_config)
    assert result.code == 0
    header, _, *rows = result.out.splitlines()
    assert header.split()[:4] == ["JOB", "ROLE", "SCHEDULE", "NEXT"]
    assert any(r.startswith("executive_weekly") and "email: ceo@example.com" in r for r in rows)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        # The Monday after London leaves summer time: 08:00 GMT is 08:00 UTC.
        (
            datetime(2026, 10, 24, 12, tzinfo=ZoneInfo("UTC")),
            datetime(2026, 10, 26, 8, tzinfo=ZoneInfo("UTC")),
        ),
        # The Monday after it enters summer time: 08:00 BST is 07:00 UTC.
        (datetime(2026, 3, 28, 12, tzinfo=ZoneInfo("UTC")), datetime(2026, 3, 30, 7, tzinfo=ZoneInfo("UTC"))),
        # Monday 08:30 has missed this week's run.
        (
            datetime(2026, 11, 23, 8, 30, tzinfo=ZoneInfo("UTC")),
            datetime(2026, 11, 30, 8, tzinfo=ZoneInfo("UTC")),
        ),
    ],
)
def test_next_fire_time_is_in_the_schedules_time_zone(now, expected):
    config = load_config(ROOT / "config.yaml")
    fire = next_fire(config, "executive_weekly", now)
    assert fire == expected
    assert fire.tzinfo is not None and fire.strftime("%H:%M") == "08:00"


def test_a_job_run_rolls_up_by_dimension(demo_config):
    config = load_config(demo_config)
    sources = Sources(config)
    run = compute_job(config, "executive_weekly", datetime(2026, 11, 22).date(), sources)
    sources.close()
    events = run.kpis["events"]
    by_plan = events.rollup(run.groups("plan"), run.period)
    assert set(by_plan.index) == {"free", "pro", "enterprise"}
    assert by_plan.sum() == pytest.approx(events.total(run.period))
    bounce = run.kpis["bounce_rate"]
    by_region = bounce.rollup(run.groups("region"), run.period)
    assert by_region.min() <= bounce.total(run.period) <= by_region.max()  # pooled, so in between
    cards = events.compare(run.period, run.previous)
    assert {"value", "reference", "change", "change_pct"} <= set(cards.columns)
    trend = events.series(periods.trailing(run.as_of, "week", 12), run.groups("owner"))
    assert trend.shape[1] == 12 and set(trend.index) == set(run.entities["owner"])


def test_each_kpi_is_read_only_as_far_back_as_its_uses_need(demo_config):
    """One query per KPI still, but not a year of rows for a KPI shown only as this period's card:
    the hourly feed behind a stale-data rule is read for a week, not for the 56 days the failure
    spike's baseline needs; the analyst's email draws one headline chart, so only its KPI is read
    for a trend."""
    config = load_config(demo_config)
    sources = Sources(config)
    as_of = datetime(2026, 11, 22).date()
    try:
        cs = compute_job(
            config, "cs_daily_alerts", as_of, sources, shows=shown(config.reports["cs_daily_alerts"])
        )
        analyst = compute_job(
            config, "analyst_monthly", as_of, sources, shows=shown(config.reports["analyst_monthly"])
        )
    finally:
        sources.close()
    hourly = cs.kpis["business_hours_pageviews"]
    assert (hourly.window.start, hourly.window.end) == (
        date(2026, 11, 15),
        as_of,
    )  # a week, for its newest row
    assert hourly.frame["day"].min() >= pd.Timestamp("2026-11-15")
    assert cs.kpis["job_failure_rate"].window.start <= date(2026, 9, 26)  # the 56-day baseline
    assert cs.window.start == cs.kpis["job_failure_rate"].window.start  # the widest, for messages
    assert cs.findings and {f.rule for f in cs.findings} >= {"traffic_feed_stale", "job_failure_spike"}
    assert analyst.kpis["events"].window.start <= date(2024, 12, 1)  # 12 months and the 12 before
    assert analyst.kpis["sessions"].window.start == date(2026, 10, 1)  # this month and the last
    report = build_report(config, analyst, EVERYONE, datetime(2026, 11, 23, 6, tzinfo=ZoneInfo("UTC")))
    assert [t.kpi for t in report.trends] == ["events"]  # every section asked: still no short trend
    assert {c.kpi for c in report.cards if c.value is not None} == set(config.reports["analyst_monthly"].kpis)


def test_an_internal_fault_is_one_line_unless_verbose(herald, demo_config, monkeypatch):
    import reports.commands

    def broken(*args, **kwargs):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(reports.commands, "list_jobs", broken)
    result = herald("list", "--config", demo_config)
    assert result.code == 1
    assert result.err == (
        "herald: internal error: ZeroDivisionError: division by zero (run again with -v for the traceback)\n"
    )
    with pytest.raises(ZeroDivisionError):
        herald("list", "-v", "--config", demo_config)


def test_every_scoped_recipient_hears_unless_the_job_is_for_findings_only(demo_db, tmp_path):
    def tell_everyone(data: dict) -> None:
        data["reports"]["cs_daily_alerts"]["only_with_findings"] = False

    config_path = demo_folder(tmp_path / "all", demo_db, tell_everyone)
    outcome, _ = execute_job(config_path, "cs_daily_alerts", tmp_path / "out")
    told = {r.report.recipient.label for r in outcome.rendered if r.report.recipient.entities is not None}
    assert told == set(outcome.run.entities["owner"]) and len(told) > 4
    assert all((r.folder / "slack.json").exists() for r in outcome.rendered)


def test_a_findings_only_job_leaves_owners_without_news_alone(demo_db, tmp_path):
    config_path = demo_folder(tmp_path / "news", demo_db)
    outcome, _ = execute_job(config_path, "cs_daily_alerts", tmp_path / "out")
    run = outcome.run
    with_news = {
        run.entities.loc[f.entity, "owner"] for f in run.findings if f.news and f.entity in run.entities.index
    }
    told = {r.report.recipient.label for r in outcome.rendered if r.report.recipient.entities is not None}
    assert told == with_news and 0 < len(told) < len(set(run.entities["owner"]))
    (everyone,) = [r for r in outcome.rendered if r.report.recipient.entities is None]
    folders = {p.name for p in everyone.folder.iterdir() if p.is_dir()}
    assert folders == {r.folder.name for r in outcome.rendered if r.report.recipient.entities is not None}
