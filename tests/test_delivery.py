"""Routing, the outbox, failure notices and history, end to end through the command line."""

import email
import json
import subprocess
import sys
from email import policy

from tests.conftest import ROOT, demo_folder
from tests.servers import SLACK_TOKEN, slack_server

INCIDENT_DAY = "2026-11-22"


def test_without_credentials_every_delivery_lands_in_the_outbox(herald, demo_config, tmp_path):
    jobs = ["executive_weekly", "cs_daily_alerts", "analyst_monthly"]
    result = herald("run", *jobs, "--as-of", INCIDENT_DAY, "--config", demo_config)
    assert result.code == 0, result.err
    outbox = tmp_path / "out" / "outbox"
    files = sorted(p.relative_to(outbox).as_posix() for p in outbox.rglob("*") if p.is_file())
    assert files == [
        "analyst_monthly/2026-11-22/email-analysts@example.com.eml",
        "cs_daily_alerts/2026-11-22/slack-@amara.okafor.json",
        "cs_daily_alerts/2026-11-22/slack-@bruno.sato.json",
        "cs_daily_alerts/2026-11-22/slack-@freya.shah.json",
        "cs_daily_alerts/2026-11-22/slack-@hana.becker.json",
        "cs_daily_alerts/2026-11-22/slack-cs-alerts.json",
        "executive_weekly/2026-11-22/email-ceo@example.com.eml",
        "executive_weekly/2026-11-22/email-coo@example.com.eml",
    ]
    workbook = email.message_from_bytes((outbox / files[0]).read_bytes(), policy=policy.default)
    (attachment,) = list(workbook.iter_attachments())
    assert attachment.get_filename() == "analyst_monthly-2026-11-22.xlsx"
    payload = json.loads((outbox / files[1]).read_text())
    assert payload["channel"] == "@amara.okafor" and "Cobalt Radio" in json.dumps(payload["blocks"])


def test_dry_run_sends_nothing_even_with_credentials(herald, tmp_path, demo_db, monkeypatch):
    monkeypatch.setenv("SLACK_BOT_TOKEN", SLACK_TOKEN)
    with slack_server() as (workspace, base):

        def edit(data: dict) -> None:
            data["channels"] = {"slack": {"token": "${SLACK_BOT_TOKEN}", "base_url": f"{base}/api/"}}

        config = demo_folder(tmp_path / "cfg", demo_db, edit)
        result = herald("run", "cs_daily_alerts", "--as-of", INCIDENT_DAY, "--dry-run", "--config", config)
    assert result.code == 0, result.err
    assert workspace.calls == []
    assert (tmp_path / "out" / "outbox" / "cs_daily_alerts" / INCIDENT_DAY / "slack-cs-alerts.json").exists()


def test_a_failing_job_tells_its_owners_and_history_shows_it(herald, tmp_path, demo_db):
    def break_a_kpi(data: dict) -> None:
        data["kpis"]["crm_sync_rate"]["sql"] = "SELECT * FROM crm_sync"

    config = demo_folder(tmp_path / "cfg", demo_db, break_a_kpi)
    result = herald("run", "cs_daily_alerts", "--as-of", INCIDENT_DAY, "--config", config)
    assert result.code == 1
    notice = (
        tmp_path / "out" / "outbox" / "cs_daily_alerts" / INCIDENT_DAY / "email-data-team@example.com.eml"
    )
    mail = email.message_from_bytes(notice.read_bytes(), policy=policy.default)
    assert mail["Subject"] == "Herald: job cs_daily_alerts failed for 2026-11-22"
    assert "KPI 'crm_sync_rate': Catalog Error: Table with name crm_sync does not exist" in mail.get_content()
    history = herald("history", "cs_daily_alerts", "--config", config)
    assert history.code == 0
    lines = history.out.splitlines()
    assert lines[0].split()[:3] == ["run", "1", "cs_daily_alerts"] and lines[0].endswith("findings")
    assert "FAILED" in lines[0] and "started by hand" in lines[0]
    assert any("data-team@example.com" in line and "filed" in line for line in lines)


def test_a_job_that_cannot_run_does_not_stop_the_next(herald, tmp_path, demo_db):
    def break_entities(data: dict) -> None:
        data["kpis"]["accounts"] = {
            "label": "Accounts",
            "source": "demo",
            "entity": "account",
            "sql": "SELECT 1 AS entity, DATE '2026-11-22' AS day, 1 AS value",
        }
        data["entities"]["account"] = {"source": "demo", "sql": "SELECT * FROM accounts"}
        data["reports"]["executive_weekly"].update(kpis=["accounts"], rules=[])

    config = demo_folder(tmp_path / "cfg", demo_db, break_entities)
    result = herald("run", "executive_weekly", "analyst_monthly", "--as-of", INCIDENT_DAY, "--config", config)
    assert result.code == 1
    assert "herald: job executive_weekly failed: entities 'account': Catalog Error" in result.err
    assert (tmp_path / "out" / "analyst_monthly" / INCIDENT_DAY / "analyst_monthly-2026-11-22.xlsx").exists()
    history = herald("history", "--config", config).out
    assert "executive_weekly" in history and "analyst_monthly" in history


def test_history_before_any_run_and_for_an_unknown_job(herald, demo_config):
    assert herald("history", "--config", demo_config).out.strip() == "No runs recorded yet."
    unknown = herald("history", "weekly", "--config", demo_config)
    assert unknown.code == 2 and "there is no job named 'weekly'" in unknown.err


def test_an_outbox_delivery_files_the_report_in_its_folder(herald, tmp_path, demo_db):
    def archive(data: dict) -> None:
        data["reports"]["analyst_monthly"]["deliver"] = [{"outbox": {"path": "shared/analysts"}}]

    config = demo_folder(tmp_path / "cfg", demo_db, archive)
    result = herald("run", "analyst_monthly", "--as-of", INCIDENT_DAY, "--config", config)
    assert result.code == 0, result.err
    folder = tmp_path / "cfg" / "shared" / "analysts"
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["Monthly-KPI-export-November-2026.eml", "analyst_monthly-2026-11-22.xlsx"]
    rendered = tmp_path / "out" / "analyst_monthly" / INCIDENT_DAY / "analyst_monthly-2026-11-22.xlsx"
    assert (folder / names[1]).read_bytes() == rendered.read_bytes()


def test_json_output_keeps_a_job_that_could_not_run(herald, tmp_path, demo_db):
    def break_entities(data: dict) -> None:
        data["entities"]["project"]["sql"] = "SELECT * FROM nowhere"

    config = demo_folder(tmp_path / "cfg", demo_db, break_entities)
    result = herald("run", "cs_daily_alerts", "--as-of", INCIDENT_DAY, "--json", "--config", config)
    assert result.code == 1
    outcome = json.loads(result.out)
    assert (
        outcome["job"] == "cs_daily_alerts" and "Table with name nowhere does not exist" in outcome["error"]
    )


def test_a_run_on_the_embedded_store_never_loads_sqlalchemy(tmp_path, demo_db):
    """SQLAlchemy is for a PostgreSQL store and SQL sources; a run on the SQLite file, and a
    second one, which reads the delivery log back by column name, go without it."""
    config, out = demo_folder(tmp_path, demo_db), tmp_path / "out"
    args = [
        "run",
        "cs_daily_alerts",
        "--as-of",
        INCIDENT_DAY,
        "--config",
        str(config),
        "--out",
        str(out),
        "-q",
    ]
    script = (
        "import sys, run; "
        f"codes = [run.main({args!r}) for _ in range(2)]; "
        "print(codes, sorted(m for m in sys.modules if m.split('.')[0] == 'sqlalchemy')[:3])"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[0, 0] []"
    assert (tmp_path / "data" / "herald.sqlite").exists()
    assert len(list((out / "outbox" / "cs_daily_alerts" / INCIDENT_DAY).glob("*.json"))) == 5
