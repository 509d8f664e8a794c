"""Slack delivery through the real slack_sdk client against a local server speaking the Web API."""

import json
import logging
import time
from datetime import date
from pathlib import Path

import pytest

from notifiers import Message
from notifiers.slack import SlackNotifier, SlackSettings
from reports.render.slack import slack_message
from tests.conftest import demo_folder, execute_job
from tests.servers import SLACK_TOKEN, slack_server

AS_OF = date(2026, 11, 22)


@pytest.fixture
def slack():
    with slack_server() as (workspace, base):
        yield workspace, base


def configure(folder: Path, demo_db: Path, base: str, **reports) -> Path:
    def edit(data: dict) -> None:
        data["channels"] = {
            "slack": {
                "token": "${SLACK_BOT_TOKEN}",
                "base_url": f"{base}/api/",
                "timeout": 5,
                "min_interval": 0,
            }
        }
        data["delivery"] = {"attempts": 2, "backoff_seconds": 0.01}
        for job, deliver in reports.items():
            data["reports"][job]["deliver"] = deliver
            data["reports"][job]["owners"] = []

    return demo_folder(folder, demo_db, edit)


@pytest.fixture(autouse=True)
def token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", SLACK_TOKEN)


def test_alerts_reach_each_owner_and_the_team_channel(tmp_path, demo_db, slack):
    workspace, base = slack
    deliver = [{"slack": {"to": "owner"}}, {"slack": {"channel": "#cs-alerts"}}]
    outcome, store = execute_job(
        configure(tmp_path, demo_db, base, cs_daily_alerts=deliver), "cs_daily_alerts", tmp_path / "out"
    )
    assert outcome.ok, outcome.problems()
    by_channel = {post["channel"]: post for post in workspace.posts}
    assert set(by_channel) == {"U1", "U2", "U3", "U4", "C100"}
    everyone = next(r.report for r in outcome.rendered if r.report.recipient.entities is None)
    assert by_channel["C100"]["blocks"] == slack_message(everyone)["blocks"]
    amara = by_channel["U1"]
    assert "Cobalt Radio" in str(amara["blocks"]) and "Nimbus Paper" not in str(amara["blocks"])
    assert workspace.calls.count("conversations.list") == 1 and workspace.calls.count("users.list") == 1
    rows = {row.recipient: row for row in store.deliveries()}
    assert rows["#cs-alerts"].provider_id.startswith("1700000000.") and rows["#cs-alerts"].status == "sent"


def test_reports_are_uploaded_into_the_messages_thread(tmp_path, demo_db, slack):
    workspace, base = slack
    outcome, _ = execute_job(
        configure(tmp_path, demo_db, base, executive_weekly=[{"slack": {"channel": "#cs-alerts"}}]),
        "executive_weekly",
        tmp_path / "out",
    )
    assert outcome.ok, outcome.problems()
    (_post,) = workspace.posts
    (completed,) = workspace.completed
    assert completed["channel_id"] == "C100" and completed["thread_ts"] == "1700000000.000001"
    assert completed["files"][0]["title"] == "executive_weekly-2026-11-22.pdf"
    pdf = next(p for r in outcome.rendered for p in r.files if p.suffix == ".pdf")
    assert list(workspace.uploads.values()) == [pdf.read_bytes()]


def test_rate_limits_are_waited_out(tmp_path, demo_db, slack):
    workspace, base = slack
    workspace.rate_limit_next = 1
    started = time.monotonic()
    outcome, store = execute_job(
        configure(tmp_path, demo_db, base, cs_daily_alerts=[{"slack": {"channel": "#cs-alerts"}}]),
        "cs_daily_alerts",
        tmp_path / "out",
    )
    assert outcome.ok
    assert time.monotonic() - started >= 1  # Retry-After: 1
    assert workspace.calls.count("chat.postMessage") == 2
    (row,) = store.deliveries()
    assert row.status == "sent"


def test_a_bot_outside_the_channel_is_told_to_invite_itself(tmp_path, demo_db, slack):
    _workspace, base = slack
    deliver = [{"slack": {"channel": "#private-team"}}, {"slack": {"channel": "#cs-alerts"}}]
    outcome, _store = execute_job(
        configure(tmp_path, demo_db, base, cs_daily_alerts=deliver), "cs_daily_alerts", tmp_path / "out"
    )
    failed, sent = outcome.deliveries
    assert failed.status == "failed" and failed.attempts == 1
    assert failed.error == (
        "the Herald bot is not in #private-team (not_in_channel) — "
        "invite it: type `/invite @Herald` in #private-team"
    )
    assert sent.status == "sent"  # one recipient's failure holds up no other


def test_an_unknown_channel_names_the_fix(tmp_path, demo_db, slack):
    _, base = slack
    outcome, _ = execute_job(
        configure(tmp_path, demo_db, base, cs_daily_alerts=[{"slack": {"channel": "#nope"}}]),
        "cs_daily_alerts",
        tmp_path / "out",
    )
    (result,) = outcome.deliveries
    assert "Slack channel #nope was not found" in result.error


def test_a_bad_token_fails_without_showing_any_token(tmp_path, demo_db, slack, monkeypatch, caplog):
    workspace, base = slack
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-wrong-token-5555")
    caplog.set_level(logging.DEBUG)
    outcome, store = execute_job(
        configure(tmp_path, demo_db, base, cs_daily_alerts=[{"slack": {"channel": "C100"}}]),
        "cs_daily_alerts",
        tmp_path / "out",
    )
    (result,) = outcome.deliveries
    assert result.status == "failed" and result.attempts == 1
    assert result.error == "Slack rejected the bot token (invalid_auth) — check SLACK_BOT_TOKEN"
    assert workspace.authorization == ["xoxb-wrong-token-5555"]  # it was sent, to Slack only
    seen = caplog.text + str(store.deliveries()) + "\n".join(outcome.problems())
    assert "xoxb-wrong-token-5555" not in seen and SLACK_TOKEN not in seen


def test_webhooks_carry_the_blocks(tmp_path, demo_db, slack, monkeypatch):
    workspace, base = slack
    monkeypatch.setenv("SLACK_WEBHOOK_URL", f"{base}/webhook")
    deliver = [{"slack": {"webhook": "${SLACK_WEBHOOK_URL}"}}]
    outcome, store = execute_job(
        configure(tmp_path, demo_db, base, cs_daily_alerts=deliver), "cs_daily_alerts", tmp_path / "out"
    )
    assert outcome.ok
    (post,) = workspace.webhook_posts
    assert post["text"].startswith("Account alerts — 22 Nov 2026") and post["blocks"][0]["type"] == "header"
    (row,) = store.deliveries()
    assert row.recipient == "webhook"  # the URL is a secret and is not recorded


def test_one_message_a_second_per_channel(slack):
    workspace, base = slack
    notifier = SlackNotifier(SlackSettings(token=SLACK_TOKEN, base_url=f"{base}/api/", min_interval=0.5))
    message = Message(
        "hello", "hello", blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": "hi"}}]
    )
    started = time.monotonic()
    notifier.send(message, "C100")
    notifier.send(message, "C100")
    assert time.monotonic() - started >= 0.5
    other = time.monotonic()
    notifier.send(message, "U1")
    assert time.monotonic() - other < 0.4, "another channel is held back by C100's pacing"
    assert len(workspace.posts) == 3


def test_a_rerun_sends_nothing_twice_and_resend_and_retry_failed_do_what_they_say(
    herald, tmp_path, demo_db, slack
):
    workspace, base = slack
    deliver = [{"slack": {"to": "owner"}}, {"slack": {"channel": "#cs-alerts"}}]
    config = configure(tmp_path / "cfg", demo_db, base, cs_daily_alerts=deliver)
    run = ("run", "cs_daily_alerts", "--as-of", str(AS_OF), "--config", config)
    workspace.outside = {"C100"}  # the bot is not in #cs-alerts yet: that one delivery fails
    first = herald(*run)
    assert first.code == 1 and len(workspace.posts) == 4
    assert "FAILED: slack to #cs-alerts: " in first.out and "--retry-failed" in first.out

    again = herald(*run)  # the owners' messages went out: nothing is sent to them twice
    assert len(workspace.posts) == 4 + 0 and "skipped" in again.out
    assert again.out.count("already sent (run 1)") == 4

    workspace.outside = set()  # the bot was invited: send only what failed, as it was recorded
    retried = herald(*run, "--retry-failed")
    assert retried.code == 0, retried.out + retried.err
    assert [p["channel"] for p in workspace.posts[4:]] == ["C100"]
    quiet = herald(*run)
    assert quiet.code == 0 and len(workspace.posts) == 5
    assert "Nothing sent: every delivery of cs_daily_alerts for 2026-11-22 went out before" in quiet.out
    assert herald(*run, "--retry-failed").out.strip().endswith("No failed deliveries to retry.")

    herald(*run, "--resend")  # on purpose: everyone gets it again
    assert len(workspace.posts) == 10
    assert sorted(p["channel"] for p in workspace.posts[5:]) == ["C100", "U1", "U2", "U3", "U4"]


def test_messages_link_to_the_archived_report(tmp_path, demo_db):
    def archived(data: dict) -> None:
        data["archive_url"] = "https://reports.example.com/herald"
        data["reports"]["cs_daily_alerts"]["formats"] = ["html"]

    outcome, _ = execute_job(demo_folder(tmp_path, demo_db, archived), "cs_daily_alerts", tmp_path / "out")
    everyone = next(r for r in outcome.rendered if r.report.recipient.entities is None)
    (link,) = [b for b in everyone.slack["blocks"] if "Open the full report" in json.dumps(b)]
    url = "https://reports.example.com/herald/cs_daily_alerts/2026-11-22/cs_daily_alerts-2026-11-22.html"
    assert link["elements"][0]["text"] == f"<{url}|Open the full report>"
