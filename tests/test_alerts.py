"""The alert lifecycle: pending → firing → resolved across real runs, reminders, mutes, silences,
escalation, and "resolved" replies in the Slack thread of the firing message."""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime, timedelta

import duckdb
import pandas as pd
import pytest

from reports.alerts.book import AlertBook
from reports.alerts.lifecycle import is_muted, mark_escalated, mark_told, track
from reports.config.load import load_config
from reports.findings import Finding
from reports.kpis.periods import Period
from reports.pipeline.compute import JobRun, job_clock
from reports.store import Store
from tests.conftest import demo_folder
from tests.servers import SLACK_TOKEN, slack_server

JOB = "cs_daily_alerts"
MONDAY = date(2026, 11, 16)


class Runs:
    """A job's runs day by day, with the findings the test says its rules made."""

    def __init__(self, config_path, store: Store) -> None:
        self.config = load_config(config_path)
        self.store = store

    def on(self, day: date, *holding: tuple[str, str], moment: datetime | None = None):
        rules = {r.name: r for r in self.config.rules}
        clock = job_clock(self.config, JOB, day)
        run = JobRun(JOB, self.config.reports[JOB], clock, Period(day, day), pd.DataFrame())
        run.holding = [self._finding(rules[rule].severity, rule, entity, day) for rule, entity in holding]
        # With no earlier run to count from, the warehouse's look back finds nothing sustained here.
        run.findings = []
        run_id = self.store.start_run(JOB, day.isoformat())
        life = track(self.config, run, self.store, moment or datetime.combine(day, datetime.min.time(), UTC))
        if any(f.news for f in life.findings):  # as `execute` does once the messages are planned
            mark_told(self.store, life.findings, day)
        self.store.finish_run(run_id, "ok")
        return {(f.rule, f.entity): (f.status, f.news) for f in life.findings}, life

    @staticmethod
    def _finding(severity: str, rule: str, entity: str, day: date) -> Finding:
        return Finding(
            rule,
            severity,
            "events",
            entity,
            f"Project {entity}",
            1.0,
            2.0,
            3.0,
            "count",
            f"{rule} on {entity}",
            day,
            owner="Amara Okafor",
        )


def _runs(folder, demo_db, **job) -> Runs:
    def settings(data: dict) -> None:
        for rule in data["rules"]:
            if rule["name"] == "usage_drop":
                rule["for"] = "2 runs"
                rule["repeat_every"] = "2 days"
        data["reports"][JOB]["escalate"] = {"after": "2 days", "to": ["#cs-leads"]}
        data["reports"][JOB].update(job)

    config = demo_folder(folder, demo_db, settings)
    return Runs(config, Store(folder / "data" / "herald.sqlite"))


@pytest.fixture
def runs(tmp_path, demo_db):
    return _runs(tmp_path / "cfg", demo_db)


def day(n: int) -> date:
    return MONDAY + timedelta(days=n)


def test_for_n_runs_counts_real_runs_then_fires_once_and_resolves(runs):
    drop = ("usage_drop", "p0001")
    assert runs.on(day(0))[0] == {}
    assert runs.on(day(1), drop)[0] == {}  # pending: held on one run of the two it needs
    assert runs.on(day(2), drop)[0] == {drop: ("new", True)}
    assert runs.on(day(3), drop)[0] == {drop: ("ongoing", False)}  # told yesterday: not news
    assert runs.on(day(4), drop)[0] == {drop: ("ongoing", True)}  # repeat_every: 2 days
    assert runs.on(day(4), drop)[0] == {drop: ("ongoing", True)}  # a repeated run reads the same
    view, life = runs.on(day(5))
    assert view == {drop: ("resolved", True)} and [a.entity for a in life.resolved] == ["p0001"]
    assert runs.on(day(6))[0] == {}
    (alert,) = AlertBook(runs.store).alerts(JOB)
    assert (alert.state, alert.since, alert.resolved) == ("resolved", "2026-11-18", "2026-11-21")


def test_a_flapping_condition_never_fires_and_a_gap_restarts_the_count(runs):
    drop = ("usage_drop", "p0002")
    for n in range(6):  # holds every other run: never two in a row
        assert runs.on(day(n), *([drop] if n % 2 else []))[0] == {}
    assert not AlertBook(runs.store).alerts(JOB, ("firing",))


def test_a_pending_alert_that_goes_away_is_never_told_nor_resolved(runs):
    drop = ("usage_drop", "p0003")
    runs.on(day(0))
    runs.on(day(1), drop)
    view, life = runs.on(day(2))
    assert view == {} and life.resolved == []
    assert AlertBook(runs.store).alerts(JOB) == []


def test_silences_hide_an_alert_until_they_end(runs):
    crm = ("crm_sync_failing", "p0012")
    book = AlertBook(runs.store)
    start = datetime(2026, 11, 16, tzinfo=UTC)
    book.silence("crm_sync_failing", "Project p0012", start, start + timedelta(days=2), "CRM vendor outage")
    assert runs.on(day(0), crm)[0] == {}
    assert runs.on(day(1), crm)[0] == {}
    assert runs.on(day(2), crm)[0] == {crm: ("ongoing", True)}  # silence over: never told, so news
    assert [s.reason for s in book.silences(start)] == ["CRM vendor outage"]
    assert book.silences(start + timedelta(days=3)) == []


def test_a_mute_window_holds_news_until_it_ends(tmp_path, demo_db):
    runs = _runs(tmp_path / "cfg", demo_db, mute=[{"days": ["saturday", "sunday"]}])
    crm = ("crm_sync_failing", "p0012")
    saturday = datetime(2026, 11, 21, 7, tzinfo=UTC)
    view, life = runs.on(day(5), crm, moment=saturday)
    assert life.muted and view == {crm: ("new", False)}
    view, life = runs.on(day(7), crm, moment=saturday + timedelta(days=2))
    assert not life.muted and view == {crm: ("ongoing", True)}  # never told: Monday tells
    assert is_muted(runs.config.reports[JOB], saturday + timedelta(days=1), "UTC")


def test_a_critical_alert_firing_too_long_escalates_once(runs):
    crm = ("crm_sync_failing", "p0012")
    assert runs.on(day(0), crm)[1].escalate == []
    assert runs.on(day(1), crm)[1].escalate == []
    (escalated,) = runs.on(day(2), crm)[1].escalate
    assert escalated.entity == "p0012"
    mark_escalated(runs.store, [escalated], day(2))
    assert runs.on(day(3), crm)[1].escalate == []


def _load_a_quiet_monday(db_path) -> None:
    """Load Monday 23 Nov as a copy of the Monday before, when nothing was wrong."""
    with duckdb.connect(str(db_path)) as con:
        for table in ("daily_project_stats", "crm_syncs", "background_jobs"):
            con.execute(
                f"INSERT INTO {table} SELECT * REPLACE (day + INTERVAL 7 DAY AS day) FROM {table} "
                "WHERE day = DATE '2026-11-16'"
            )


def test_a_resolved_alert_is_posted_in_the_thread_of_its_firing_message(
    herald, tmp_path, demo_db, monkeypatch
):
    db = tmp_path / "warehouse.duckdb"
    shutil.copy(demo_db, db)
    monkeypatch.setenv("SLACK_BOT_TOKEN", SLACK_TOKEN)
    with slack_server() as (workspace, base):

        def edit(data: dict) -> None:
            data["channels"] = {
                "slack": {"token": "${SLACK_BOT_TOKEN}", "base_url": f"{base}/api/", "min_interval": 0}
            }
            data["reports"][JOB]["owners"] = []

        config = demo_folder(tmp_path / "cfg", db, edit)
        assert herald("run", JOB, "--as-of", "2026-11-22", "--config", config).code == 0
        firing = {p["channel"]: p for p in workspace.posts}
        ts = {
            channel: f"1700000000.{i + 1:06d}"
            for i, channel in enumerate(p["channel"] for p in workspace.posts)
        }
        assert "Nimbus Paper" in str(firing["C100"]["blocks"]) and "Nimbus Paper" in str(
            firing["U2"]["blocks"]
        )
        _load_a_quiet_monday(db)
        before = len(workspace.posts)
        assert herald("run", JOB, "--as-of", "2026-11-23", "--config", config).code == 0
        later = workspace.posts[before:]
    replies = [p for p in later if p.get("thread_ts")]
    assert {(p["channel"], p["thread_ts"]) for p in replies} >= {("C100", ts["C100"]), ("U2", ts["U2"])}
    bruno = next(p for p in replies if p["channel"] == "U2")
    assert "Resolved" in str(bruno["blocks"]) and "Nimbus Paper" in str(bruno["blocks"])
    digest = next(p for p in later if p["channel"] == "C100" and not p.get("thread_ts"))
    text = str(digest["blocks"])
    assert "Resolved (4)" in text and "Nimbus Paper" in text
    # The page-view feed is still stale: marked as firing since the first run, not as new.
    assert "Business-hours page views" in text and "_(since 22 Nov)_" in text


def test_alerts_silence_and_backfill_from_the_command_line(herald, demo_config, tmp_path):
    assert herald("run", JOB, "--as-of", "2026-11-22", "--config", demo_config).code == 0
    listed = herald("alerts", "--config", demo_config).out
    assert "crm_sync_failing" in listed and "Nimbus Paper" in listed and "Bruno Sato" in listed
    told = herald(
        "silence",
        "crm_sync_failing",
        "Nimbus Paper",
        "--for",
        "2d",
        "--reason",
        "vendor outage",
        "--config",
        demo_config,
    )
    assert told.code == 0 and told.out.startswith("silence #1: crm_sync_failing for Nimbus Paper until ")
    assert "vendor outage" in herald("silences", "--config", demo_config).out
    line = next(row for row in herald("alerts", "--config", demo_config).out.splitlines() if "Nimbus" in row)
    assert "silenced (#1)" in line
    assert herald("unsilence", "1", "--config", demo_config).code == 0
    assert herald("silences", "--config", demo_config).out.strip() == "No silences in force."
    bad = herald("silence", "crm_sync_failing", "--for", "soon", "--reason", "x", "--config", demo_config)
    assert bad.code == 2 and "e.g. --for 2d" in bad.err

    done = herald(
        "backfill", "executive_weekly", "--from", "2026-11-01", "--to", "2026-11-22", "--config", demo_config
    )
    assert done.code == 0, done.err
    assert [line.split(":")[0] for line in done.out.splitlines()] == [
        f"executive_weekly 2026-11-{d:02d}" for d in (1, 8, 15, 22)
    ]
    assert (tmp_path / "out" / "executive_weekly" / "2026-11-08" / "executive_weekly-2026-11-08.pdf").exists()
    assert (
        tmp_path / "out" / "outbox" / "executive_weekly" / "2026-11-08" / "email-ceo@example.com.eml"
    ).exists()
    assert {a.job for a in AlertBook(Store(demo_config.parent / "data" / "herald.sqlite")).alerts()} == {JOB}
