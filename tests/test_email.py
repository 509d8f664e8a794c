"""Email delivery against a real SMTP server on loopback (aiosmtpd, STARTTLS or TLS, AUTH)."""

import email
import logging
from datetime import date
from email import policy
from pathlib import Path

import pytest

from reports.store import Store
from tests.conftest import demo_folder, execute_job
from tests.servers import SMTP_PASSWORD, SMTP_USER, free_port, smtp_server

AS_OF = date(2026, 11, 22)


def configure(
    folder: Path, demo_db: Path, port: int, cert: Path, security: str = "starttls", **extra
) -> Path:
    def edit(data: dict) -> None:
        data["channels"] = {
            "email": {
                "host": "127.0.0.1",
                "port": port,
                "security": security,
                "username": SMTP_USER,
                "password": "${SMTP_PASSWORD}",
                "from": "herald@example.com",
                "reply_to": "data-team@example.com",
                "ca_file": str(cert),
                "timeout": 5,
                **extra,
            }
        }
        data["delivery"] = {"attempts": 3, "backoff_seconds": 0.01}
        data["reports"]["executive_weekly"]["deliver"] = [
            {"email": {"to": ["ceo@example.com"], "subject": "Weekly KPIs — week of {{ period.start }}"}}
        ]
        data["reports"]["executive_weekly"]["owners"] = []

    return demo_folder(folder, demo_db, edit)


@pytest.fixture(autouse=True)
def smtp_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMTP_PASSWORD", SMTP_PASSWORD)


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_the_report_arrives_as_a_well_formed_email(tmp_path, demo_db, security):
    with smtp_server(tmp_path, implicit_tls=security == "tls") as (box, port, cert):
        outcome, store = execute_job(
            configure(tmp_path / "cfg", demo_db, port, cert, security), "executive_weekly", tmp_path / "out"
        )
    assert outcome.ok, outcome.problems()
    assert box.logins == [SMTP_USER]
    ((recipients, raw),) = box.messages
    assert recipients == ["ceo@example.com"]
    mail = email.message_from_bytes(raw, policy=policy.default)
    assert mail["Subject"] == "Weekly KPIs — week of 2026-11-16"
    assert (mail["From"], mail["To"], mail["Reply-To"]) == (
        "herald@example.com",
        "ceo@example.com",
        "data-team@example.com",
    )
    assert mail["Message-ID"].endswith("@example.com>") and mail["Date"]
    shape = [(part.get_content_type(), part.get_filename()) for part in mail.walk()]
    assert [t for t, _ in shape] == [
        "multipart/mixed",
        "multipart/alternative",
        "text/plain",
        "multipart/related",
        "text/html",
        "image/png",
        "application/pdf",
    ]
    html = next(p for p in mail.walk() if p.get_content_type() == "text/html").get_content()
    image = next(p for p in mail.walk() if p.get_content_type() == "image/png")
    assert f'src="cid:{image["Content-ID"].strip("<>")}"' in html
    assert image.get_content_disposition() == "inline"  # a chart in the body, not a stray attachment
    pdf = next(p for p in mail.walk() if p.get_content_type() == "application/pdf")
    rendered = next(p for r in outcome.rendered for p in r.files if p.suffix == ".pdf")
    assert pdf.get_content() == rendered.read_bytes()
    (row,) = store.deliveries()
    assert (row.channel, row.recipient, row.status, row.attempts) == ("email", "ceo@example.com", "sent", 1)
    assert row.provider_id == mail["Message-ID"]


def test_a_temporary_refusal_is_retried(tmp_path, demo_db):
    with smtp_server(tmp_path) as (box, port, cert):
        box.answers = ["451 4.3.0 Try again later"]
        outcome, store = execute_job(
            configure(tmp_path / "cfg", demo_db, port, cert), "executive_weekly", tmp_path / "out"
        )
    assert outcome.ok and len(box.messages) == 1
    (row,) = store.deliveries()
    assert (row.status, row.attempts) == ("sent", 2)


def test_a_permanent_refusal_is_recorded_as_failed(tmp_path, demo_db, herald):
    with smtp_server(tmp_path) as (box, port, cert):
        box.answers = ["550 5.1.1 Mailbox unavailable"]
        outcome, store = execute_job(
            configure(tmp_path / "cfg", demo_db, port, cert), "executive_weekly", tmp_path / "out"
        )
    assert not outcome.ok and box.messages == []
    (row,) = store.deliveries()
    assert (row.status, row.attempts) == ("failed", 1)
    assert "answered 550 5.1.1 Mailbox unavailable" in row.last_error
    history = herald("history", "--config", tmp_path / "cfg" / "config.yaml")
    assert "failed" in history.out and "550 5.1.1 Mailbox unavailable" in history.out


def test_a_server_that_is_down_is_retried_then_recorded(tmp_path, demo_db):
    from tests.servers import self_signed

    cert, _ = self_signed(tmp_path)
    outcome, store = execute_job(
        configure(tmp_path / "cfg", demo_db, free_port(), cert), "executive_weekly", tmp_path / "out"
    )
    (result,) = outcome.deliveries
    assert (result.status, result.attempts) == ("failed", 3)
    assert "cannot reach SMTP server 127.0.0.1" in result.error
    (row,) = store.deliveries()
    assert (row.status, row.attempts) == ("failed", 3)


def test_wrong_password_fails_without_showing_it(tmp_path, demo_db, monkeypatch, caplog):
    monkeypatch.setenv("SMTP_PASSWORD", "wrong-password-1234")
    caplog.set_level(logging.DEBUG)
    with smtp_server(tmp_path) as (_box, port, cert):
        outcome, store = execute_job(
            configure(tmp_path / "cfg", demo_db, port, cert), "executive_weekly", tmp_path / "out"
        )
    (result,) = outcome.deliveries
    assert result.status == "failed" and result.attempts == 1
    assert "refused the login" in result.error
    everything = caplog.text + str(store.deliveries()) + "\n".join(outcome.problems())
    assert "wrong-password-1234" not in everything and SMTP_PASSWORD not in everything


def test_no_secret_reaches_the_logs_on_success(tmp_path, demo_db, caplog):
    caplog.set_level(logging.DEBUG)
    with smtp_server(tmp_path) as (_box, port, cert):
        outcome, store = execute_job(
            configure(tmp_path / "cfg", demo_db, port, cert), "executive_weekly", tmp_path / "out"
        )
    assert outcome.ok and caplog.records
    assert SMTP_PASSWORD not in caplog.text and SMTP_PASSWORD not in str(store.deliveries())


def test_an_attachment_over_the_cap_is_linked_from_the_archive(tmp_path, demo_db):
    def tiny_cap(data: dict) -> None:
        data["archive_url"] = "https://reports.example.com/herald"

    with smtp_server(tmp_path) as (box, port, cert):
        path = configure(tmp_path / "cfg", demo_db, port, cert, max_attachment_mb=0.01)
        text = path.read_text() + "archive_url: https://reports.example.com/herald\n"
        path.write_text(text)
        outcome, _ = execute_job(path, "executive_weekly", tmp_path / "out")
    assert outcome.ok
    ((_, raw),) = box.messages
    mail = email.message_from_bytes(raw, policy=policy.default)
    assert "application/pdf" not in [p.get_content_type() for p in mail.walk()]
    body = mail.get_body(("plain",)).get_content()
    assert (
        "executive_weekly-2026-11-22.pdf is too large to attach; download it from "
        "https://reports.example.com/herald/executive_weekly/2026-11-22/executive_weekly-2026-11-22.pdf"
    ) in body


def test_one_recipients_retry_does_not_hold_up_the_others(tmp_path, demo_db):
    with smtp_server(tmp_path) as (box, port, cert):
        box.answers = ["451 4.3.0 Try again later"]  # the first message only
        path = configure(tmp_path / "cfg", demo_db, port, cert)
        path.write_text(
            path.read_text().replace("- ceo@example.com", "- ceo@example.com\n        - coo@example.com")
        )
        outcome, store = execute_job(path, "executive_weekly", tmp_path / "out")
    assert outcome.ok
    assert [to for to, _ in box.messages] == [["coo@example.com"], ["ceo@example.com"]]
    assert {row.recipient: row.attempts for row in store.deliveries()} == {
        "ceo@example.com": 2,
        "coo@example.com": 1,
    }


def test_backoff_doubles_with_jitter_up_to_the_cap(tmp_path):
    from notifiers import Message
    from notifiers.email import EmailNotifier, EmailSettings
    from reports.config.models import DeliveryPolicy
    from reports.pipeline.deliver import Delivery, deliver, record

    settings = EmailSettings.model_validate(
        {
            "host": "127.0.0.1",
            "port": free_port(),
            "security": "none",
            "from": "herald@example.com",
            "timeout": 2,
        }
    )
    store = Store(tmp_path / "state.sqlite")
    run_id = store.start_run("job", "2026-11-22")
    waits: list[float] = []
    policy = DeliveryPolicy(attempts=5, backoff_seconds=2, max_backoff_seconds=5)
    pending, _ = record(
        [Delivery("email", "a@example.com", "a@example.com", Message("s", "t"))],
        store,
        run_id,
        "job",
        "2026-11-22",
    )
    (outcome,) = deliver(pending, {"email": EmailNotifier(settings)}, store, policy, sleep=waits.append)
    assert outcome.status == "failed" and outcome.attempts == 5
    assert "gave up after 5 tries" in outcome.error and "will retry" not in outcome.error
    (row,) = store.deliveries()
    assert row.status == "failed" and "gave up after 5 tries" in row.last_error
    assert len(waits) == 4
    for wait, ceiling in zip(waits, [2, 4, 5, 5], strict=True):
        assert ceiling * 0.5 <= wait <= ceiling


def test_a_relative_ca_file_is_found_beside_the_config(tmp_path, demo_db):
    with smtp_server(tmp_path) as (box, port, cert):
        config = configure(tmp_path / "cfg", demo_db, port, cert)
        (config.parent / "ca.pem").write_bytes(cert.read_bytes())
        config.write_text(config.read_text().replace(str(cert), "ca.pem"))
        outcome, _ = execute_job(config, "executive_weekly", tmp_path / "out")
    assert outcome.ok, outcome.problems()
    assert len(box.messages) == 1
