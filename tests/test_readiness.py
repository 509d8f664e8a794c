"""Data readiness: a late warehouse load gives one notice per feed, never an alert storm, and an
as-of date Herald cannot report on is refused."""

from __future__ import annotations

import email
import json
import re
from datetime import UTC, date, datetime
from email import policy
from pathlib import Path

import pytest

from reports import demo
from reports.scheduler.serve import Server
from reports.store import Store
from tests.conftest import demo_folder

AS_OF = "2026-11-22"


@pytest.fixture(scope="module")
def late_db(tmp_path_factory) -> Path:
    """The demo warehouse with its last two days not loaded yet."""
    path = tmp_path_factory.mktemp("late") / "demo.duckdb"
    demo.build(path, projects=60, end=date(2026, 11, 20))
    return path


@pytest.fixture(scope="module")
def full_db(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("full") / "demo.duckdb"
    demo.build(path, projects=60)
    return path


def _findings(out: Path, job: str) -> list[dict]:
    return json.loads((out / job / AS_OF / "findings.json").read_text())["findings"]


def test_a_late_load_sends_one_notice_per_feed_not_an_alert_per_project(herald, tmp_path, late_db):
    config = demo_folder(tmp_path / "cfg", late_db)
    result = herald("run", "cs_daily_alerts", "--as-of", AS_OF, "--config", config)
    assert result.code == 0, result.err
    findings = _findings(tmp_path / "out", "cs_daily_alerts")
    assert {(f["rule"], f["kpi"]) for f in findings} == {
        ("data_late", "events"),
        ("data_late", "crm_sync_rate"),
        ("data_late", "job_failure_rate"),
        ("traffic_feed_stale", "business_hours_pageviews"),  # its own freshness rule speaks for it
    }
    assert all(f["entity"] == "" for f in findings)
    assert (
        "rule 'collection_stopped' was held back: KPI 'events' has no data for 2026-11-22 yet" in result.out
    )
    outbox = tmp_path / "out" / "outbox" / "cs_daily_alerts" / AS_OF
    sent = sorted(p.name for p in outbox.iterdir())
    # No owner hears about their accounts; the team channel and the job's owners hear about the feeds.
    assert sent == ["email-data-team@example.com.eml", "slack-cs-alerts.json"]
    notice = email.message_from_bytes(
        (outbox / "email-data-team@example.com.eml").read_bytes(), policy=policy.default
    )
    assert notice["Subject"] == "Herald: data late for job cs_daily_alerts (2026-11-22)"
    text = notice.get_body(("plain",)).get_content()
    assert "Events collected, CRM sync success rate, Background job failure rate" in text
    assert "had no data for 2026-11-22" in text
    herald("run", "cs_daily_alerts", "--as-of", AS_OF, "--config", config)
    rows = Store(config.parent / "data" / "herald.sqlite").deliveries()
    assert [r.status for r in rows if r.recipient.endswith("(data late)")] == ["filed"]  # told once


def test_an_executive_report_on_late_data_is_marked_not_presented_as_current(herald, tmp_path, late_db):
    config = demo_folder(tmp_path / "cfg", late_db)
    assert herald("run", "executive_weekly", "--as-of", AS_OF, "--config", config).code == 0
    folder = tmp_path / "out" / "executive_weekly" / AS_OF
    html = (folder / "executive_weekly-2026-11-22.html").read_text()
    assert "Some data is stale:" in html and "Data is older than its freshness limit" in html
    assert "Some data is late or stale:" in (folder / "email.html").read_text()
    # Every KPI is two days behind: each has its row in the freshness table, none is called up to date.
    section = html.split("<h2>Data freshness</h2>")[1]
    cards = re.findall(r'<div class="label">([^<]+)</div>', html)
    assert re.findall(r"<tr>\s*<td>([^<]+)</td>", section) == cards and len(cards) == 6
    assert "20 Nov 2026" in section and "up to date" not in section


def test_withheld_when_late_sends_the_notice_but_no_report(herald, tmp_path, late_db):
    def withhold(data: dict) -> None:
        data["reports"]["executive_weekly"]["when_late"] = "withhold"

    config = demo_folder(tmp_path / "cfg", late_db, withhold)
    assert herald("run", "executive_weekly", "--as-of", AS_OF, "--config", config).code == 0
    folder = tmp_path / "out" / "executive_weekly" / AS_OF
    assert not list(folder.glob("*.pdf")) and not list(folder.glob("executive_weekly-*.html"))
    raw = (
        tmp_path / "out" / "outbox" / "executive_weekly" / AS_OF / "email-ceo@example.com.eml"
    ).read_bytes()
    mail = email.message_from_bytes(raw, policy=policy.default)
    assert "withheld until the data arrives" in mail.get_body(("html",)).get_content()
    assert not list(mail.iter_attachments())


@pytest.mark.parametrize(
    ("as_of", "message"),
    [
        ("2099-01-01", "the as-of date 2099-01-01 is in the future"),
        ("2024-01-31", "no data at all for job 'executive_weekly' between"),
    ],
)
def test_a_date_herald_cannot_report_on_is_refused(herald, tmp_path, full_db, as_of, message):
    config = demo_folder(tmp_path / "cfg", full_db)
    result = herald("run", "executive_weekly", "--as-of", as_of, "--config", config)
    assert result.code == 2 and message in result.err and "Traceback" not in result.err
    assert not (tmp_path / "out" / "outbox").exists()  # nothing sent: not a report of dashes, no notices


def _server(tmp_path: Path, db: Path, swap_to: Path | None = None):
    """A server whose sleeps move a pinned clock; on its second sleep the load lands (`swap_to`)."""

    def waiting(data: dict) -> None:
        alerts = data["reports"]["cs_daily_alerts"]
        alerts["schedule"] = {"cron": "0 7 * * *", "timezone": "UTC"}
        alerts["wait_for_data"] = {"every": "10m", "until": "09:00"}
        data["reports"] = {"cs_daily_alerts": alerts}

    config = demo_folder(tmp_path / "cfg", db, waiting)
    clock = [datetime(2026, 11, 23, 7, 0, 30, tzinfo=UTC)]
    sleeps: list[datetime] = []

    def sleep(until, wake, now) -> bool:
        sleeps.append(until)
        clock[0] = until
        if swap_to is not None and len(sleeps) == 2:
            link = config.parent / "data" / "demo.duckdb"
            link.unlink()
            link.symlink_to(swap_to)
        return False

    server = Server(config, tmp_path / "out", now=lambda: clock[0], sleep=sleep)
    return server, sleeps, Store(config.parent / "data" / "herald.sqlite")


def test_serve_waits_for_the_load_then_runs_on_fresh_data(tmp_path, late_db, full_db, caplog):
    server, sleeps, store = _server(tmp_path, late_db, swap_to=full_db)
    caplog.set_level("INFO", logger="herald.serve")
    server.tick()
    assert sleeps[:2] == [
        datetime(2026, 11, 23, 7, 10, 30, tzinfo=UTC),
        datetime(2026, 11, 23, 7, 20, 30, tzinfo=UTC),
    ]
    assert "waiting for data for cs_daily_alerts (events, crm_sync_rate" in caplog.text
    (run,) = store.runs()
    assert run.status == "ok"
    findings = _findings(tmp_path / "out", "cs_daily_alerts")
    assert findings and not any(f["rule"] == "data_late" for f in findings)


def test_serve_stops_waiting_at_the_deadline_and_reports_the_feeds_late(tmp_path, late_db):
    server, sleeps, store = _server(tmp_path, late_db)
    server.tick()
    assert sleeps[-1] == datetime(2026, 11, 23, 9, 0, tzinfo=UTC) and len(sleeps) == 12
    rules = {f["rule"] for f in _findings(tmp_path / "out", "cs_daily_alerts")}
    assert rules == {"data_late", "traffic_feed_stale"}
    notices = [d for d in store.deliveries() if d.recipient.endswith("(data late)")]
    assert [(d.recipient, d.status) for d in notices] == [("data-team@example.com (data late)", "filed")]
