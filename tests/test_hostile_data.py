"""Hostile warehouse data and a failing machine: every output escapes, truncates and carries on;
no report reaches the wrong person; nothing is left running or pending."""

from __future__ import annotations

import email
import io
import json
import re
import subprocess
from email import policy
from pathlib import Path

import duckdb
import openpyxl
import pypdf
import pytest

from reports import demo
from reports.store import Store
from tests.conftest import demo_folder, execute_job

NAMES = {
    "p0001": '=HYPERLINK("http://evil.example","click")',
    "p0002": "<script>alert(1)</script><b>bold</b>",
    "p0003": "<!channel> @here <http://evil.example|click>",
    "p0004": "$\\frac{1}{0}$ and $x$",
    "p0005": "\u202eevil\u202c שלום",
    "p0006": "X" * 10_000,
    "p0007": "line one\r\nline two",
    "p0009": "nul\x00byte",
}
WEIRD_VALUES = """
    CASE project_id WHEN 'p0010' THEN 'inf'::DOUBLE WHEN 'p0011' THEN '-inf'::DOUBLE
      WHEN 'p0012' THEN 'nan'::DOUBLE WHEN 'p0013' THEN NULL WHEN 'p0014' THEN -5 ELSE events END
"""


def _strict_json(text: str):
    def refuse(constant: str):
        raise AssertionError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def _small_warehouse(tmp_path_factory, name: str) -> tuple[Path, Path]:
    """A fresh 40-project demo warehouse the test may change."""
    folder = tmp_path_factory.mktemp(name)
    demo.build(folder / "warehouse.duckdb", projects=40)
    return folder, folder / "warehouse.duckdb"


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """A small warehouse with hostile names, infinite and missing values and a bad owner row."""
    folder, db = _small_warehouse(tmp_path_factory, "hostile")
    with duckdb.connect(str(db)) as con:
        for project, name in NAMES.items():
            con.execute("UPDATE projects SET name = ? WHERE project_id = ?", [name, project])
        owner = con.execute("SELECT owner_id FROM projects WHERE project_id = 'p0001'").fetchone()[0]
        con.execute(
            "UPDATE cs_owners SET email = ?, slack_handle = ? WHERE owner_id = ?",
            ["amara@example.com\r\nBcc: evil@example.com", "https://evil.example/hook", owner],
        )
        bad = con.execute("SELECT name FROM cs_owners WHERE owner_id = ?", [owner]).fetchone()[0]

    def edit(data: dict) -> None:
        events = data["kpis"]["events"]
        events["sql"] = events["sql"].replace("events AS value", f"{WEIRD_VALUES} AS value")
        crm = data["kpis"]["crm_sync_rate"]
        crm["sql"] = crm["sql"].replace(
            "syncs_ok + syncs_failed AS denominator",
            "CASE WHEN project_id = 'p0015' THEN 0 ELSE syncs_ok + syncs_failed END AS denominator",
        )
        data["rules"].append({"name": "everyone", "kpi": "events", "when": {"above": -1000}})
        alerts = data["reports"]["cs_daily_alerts"]
        alerts.update(formats=["pdf", "html", "xlsx"], rules=["everyone", "usage_drop"], group_over=1000)
        alerts["deliver"] = [
            {"slack": {"to": "owner"}},
            {"email": {"to": "owner"}},
            {"slack": {"channel": "#cs-alerts"}},
        ]

    config = demo_folder(folder / "cfg", db, edit)
    assert "events AS value" not in (config.read_text()), "the KPI SQL edit did not apply"
    out = folder / "out"
    outcomes = {job: execute_job(config, job, out) for job in ("cs_daily_alerts", "executive_weekly")}
    return config, out, outcomes, bad


def test_no_job_crashes_and_nothing_is_left_pending(hostile):
    config, _, outcomes, bad = hostile
    for outcome, _ in outcomes.values():
        assert outcome.error is None and outcome.run is not None
    store = Store(config.parent / "data" / "herald.sqlite")
    assert {r.status for r in store.runs()} <= {"ok", "failed"}
    rows = store.deliveries()
    assert rows and not [r for r in rows if r.status in ("pending", "retrying")]
    refused = [r for r in rows if r.status == "failed"]
    # The owner whose email holds CR/LF and whose Slack handle is a URL gets nothing sent anywhere.
    assert {r.channel for r in refused} == {"email", "slack"}
    assert all(f"{bad}'s" in r.last_error and "is not one" in r.last_error for r in refused)
    assert not any((r.address or "").startswith("http") for r in rows if r.status != "failed")
    notes = outcomes["cs_daily_alerts"][0].run.notes
    assert any(
        re.fullmatch(r"KPI 'events': \d+ infinite value\(s\) from the warehouse were treated as missing", n)
        for n in notes
    )


def test_findings_json_is_json_and_shows_no_infinity(hostile):
    _, out, _, _ = hostile
    for path in out.glob("*/2026-11-22/findings.json"):
        text = path.read_text()
        _strict_json(text)
        assert "Infinity" not in text and "NaN" not in text


def _pdf(path: Path) -> str:
    reader = pypdf.PdfReader(io.BytesIO(path.read_bytes()))
    return " ".join(page.extract_text() for page in reader.pages)


def test_every_format_escapes_truncates_and_shows_no_garbage_figure(hostile):
    _, out, _, _ = hostile
    folder = out / "cs_daily_alerts" / "2026-11-22"
    html = (folder / "cs_daily_alerts-2026-11-22.html").read_text()
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "X" * 79 + "…" in html and "X" * 81 not in html  # a 10,000-character name is cut
    text = _pdf(folder / "cs_daily_alerts-2026-11-22.pdf")
    squeezed = re.sub(r"\s", "", text)  # the PDF wraps the cut name over lines
    assert "X" * 79 + "…" in squeezed and "X" * 80 not in squeezed  # cut to fit its column
    assert not re.search(r"\binf\b|Infinity|\bnan\b", text)  # no garbage shown as a figure
    assert "<script>alert(1)</script><b>bold</b>" in text  # shown as the text it is
    book = openpyxl.load_workbook(folder / "cs_daily_alerts-2026-11-22.xlsx")
    cells = [c for sheet in book for row in sheet.iter_rows() for c in row if isinstance(c.value, str)]
    formula = [c for c in cells if c.value.startswith("=HYPERLINK")]
    assert formula and all(c.data_type == "s" for c in formula)  # text, never a formula
    assert any(c.value == "X" * 10_000 for c in cells)  # the workbook keeps the full text
    everyone = _strict_json((folder / "slack.json").read_text())
    sections = [b["text"]["text"] for b in everyone["blocks"] if b["type"] == "section"]
    assert all(len(s) <= 3000 for s in sections) and len(everyone["blocks"]) <= 50
    assert "<!channel>" not in json.dumps(everyone) and "&lt;!channel&gt;" in json.dumps(everyone)
    weekly = out / "executive_weekly" / "2026-11-22"
    assert _pdf(weekly / "executive_weekly-2026-11-22.pdf")  # charts with "$x$" names drew


def test_an_email_from_hostile_data_has_no_injected_header(hostile):
    _, out, _, _ = hostile
    for path in (out / "outbox" / "cs_daily_alerts" / "2026-11-22").glob("*.eml"):
        mail = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        assert mail["Bcc"] is None and "\n" not in str(mail["To"])


@pytest.fixture(scope="module")
def namesakes(tmp_path_factory):
    """Two owners called Ann Lee, and one ann-lee: three people, three recipients."""
    folder, db = _small_warehouse(tmp_path_factory, "namesakes")
    with duckdb.connect(str(db)) as con:
        owners = [r[0] for r in con.execute("SELECT owner_id FROM cs_owners ORDER BY owner_id").fetchall()]
        for owner, name in zip(owners[:3], ["Ann Lee", "Ann Lee", "ann-lee"], strict=True):
            con.execute("UPDATE cs_owners SET name = ? WHERE owner_id = ?", [name, owner])
        projects = {
            email: {
                r[0]
                for r in con.execute(
                    "SELECT p.name FROM projects p JOIN cs_owners o USING (owner_id) WHERE o.email = ?",
                    [email],
                ).fetchall()
            }
            for (email,) in con.execute(
                "SELECT email FROM cs_owners WHERE owner_id IN (?, ?, ?)", owners[:3]
            ).fetchall()
        }

    def per_owner(data: dict) -> None:
        data["reports"]["executive_weekly"].update(
            scope="owner", formats=["pdf", "xlsx"], deliver=[{"email": {"to": "owner"}}]
        )

    config = demo_folder(folder / "cfg", db, per_owner)
    outcome, _ = execute_job(config, "executive_weekly", folder / "out")
    return folder / "out", outcome, projects


def test_owners_who_share_a_name_each_get_only_their_own_accounts(namesakes):
    out, outcome, projects = namesakes
    mine = {r.report.recipient.email: r for r in outcome.rendered if r.report.recipient.email in projects}
    assert set(mine) == set(projects)
    folders = [r.folder for r in mine.values()]
    assert len(set(folders)) == 3  # no two share a folder, so none gets another's files
    for address, rendered in mine.items():
        others = set().union(*(p for a, p in projects.items() if a != address)) - projects[address]
        pdf = next(p for p in rendered.files if p.suffix == ".pdf")
        text = _pdf(pdf)
        assert not [name for name in others if name in text], f"{address} sees another owner's accounts"
        box = out / "outbox" / "executive_weekly" / "2026-11-22" / f"email-{address}.eml"
        mail = email.message_from_bytes(box.read_bytes(), policy=policy.default)
        (attached,) = [a.get_filename() for a in mail.iter_attachments() if a.get_filename().endswith(".pdf")]
        assert attached == pdf.name


def test_an_out_folder_that_is_a_file_or_a_store_that_is_not_one_is_said_plainly(herald, tmp_path, demo_db):
    config = demo_folder(tmp_path / "cfg", demo_db)
    (tmp_path / "taken").write_text("")
    result = herald(
        "run", "cs_daily_alerts", "--as-of", "2026-11-22", "--out", tmp_path / "taken", "--config", config
    )
    assert result.code == 2 and "--out" in result.err and "is a file, not a folder" in result.err
    store = config.parent / "data" / "herald.sqlite"
    store.write_bytes(b"this is not a database" * 100)
    result = herald("run", "cs_daily_alerts", "--as-of", "2026-11-22", "--config", config)
    assert result.code == 1 and "is not a Herald store" in result.err and "Traceback" not in result.err


@pytest.fixture
def small_disk(tmp_path):
    """A 64 KB file system (tmpfs), where this machine lets the tests mount one."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


def test_a_full_disk_for_outputs_fails_the_run_and_leaves_nothing_running(
    herald, tmp_path, demo_db, small_disk
):
    config = demo_folder(tmp_path / "cfg", demo_db)
    result = herald(
        "run", "executive_weekly", "--as-of", "2026-11-22", "--out", small_disk, "--config", config
    )
    assert result.code == 1 and "No space left on device" in result.err + result.out
    store = Store(config.parent / "data" / "herald.sqlite")
    (run,) = store.runs()
    assert run.status == "failed" and "free disk space" in run.error
    assert not [d for d in store.deliveries() if d.status in ("pending", "retrying")]


def test_a_full_disk_for_the_store_is_said_plainly(herald, tmp_path, demo_db, small_disk):
    def store_on_the_small_disk(data: dict) -> None:
        data["store"] = str(small_disk / "herald.sqlite")

    config = demo_folder(tmp_path / "cfg", demo_db, store_on_the_small_disk)
    (small_disk / "filler").write_bytes(b"\0" * 54_000)
    result = herald("run", "cs_daily_alerts", "--as-of", "2026-11-22", "--config", config)
    assert result.code == 1 and "the store" in result.err and "Traceback" not in result.err
    assert "free disk space" in result.err
    (small_disk / "filler").unlink()  # space again: the store opens, and no run is left running
    assert all(r.status != "running" for r in Store(small_disk / "herald.sqlite").runs())


def test_templates_and_subjects_cannot_reach_past_the_report(herald, tmp_path, demo_db):
    def sneaky_subject(data: dict) -> None:
        data["reports"]["executive_weekly"]["deliver"] = [
            {"email": {"to": ["ceo@example.com"], "subject": "{{ cycler.__init__.__globals__.os.environ }}"}}
        ]

    config = demo_folder(tmp_path / "cfg", demo_db, sneaky_subject)
    result = herald("run", "executive_weekly", "--as-of", "2026-11-22", "--config", config)
    assert result.code == 1 and "the email subject" in result.err and "cannot be rendered" in result.err
    assert "PATH" not in result.err + result.out
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "executive.html").write_text("{{ report.__class__.__init__.__globals__ }}")
    config = demo_folder(tmp_path / "cfg2", demo_db, lambda data: data.update(templates=str(templates)))
    result = herald("preview", "executive_weekly", "--as-of", "2026-11-22", "--config", config)
    assert result.code == 1 and "templates may only read the report's own fields" in result.err


def test_secrets_never_reach_the_log_even_verbose(herald, tmp_path, demo_db, caplog, monkeypatch):
    from tests.servers import SLACK_TOKEN, slack_server

    caplog.set_level("DEBUG")
    with slack_server() as (workspace, base):
        hook = f"{base}/webhook?T0SECRET/B0SECRET/abcdefSECRET"
        monkeypatch.setenv("SLACK_BOT_TOKEN", SLACK_TOKEN)
        monkeypatch.setenv("SLACK_WEBHOOK_URL", hook)

        def webhook(data: dict) -> None:
            data["channels"] = {"slack": {"token": "${SLACK_BOT_TOKEN}", "base_url": f"{base}/api/"}}
            data["delivery"] = {"attempts": 2, "backoff_seconds": 0.01}
            data["reports"]["cs_daily_alerts"]["deliver"] = [{"slack": {"webhook": "${SLACK_WEBHOOK_URL}"}}]

        config = demo_folder(tmp_path / "cfg", demo_db, webhook)
        result = herald("run", "cs_daily_alerts", "--as-of", "2026-11-22", "-v", "--config", config)
        assert result.code == 0, result.err
        assert workspace.webhook_posts
    logged = caplog.text + result.out + result.err
    assert "SECRET" not in logged and SLACK_TOKEN not in logged
    assert "[secret]" in caplog.text  # slack_sdk did log the request: masked


def test_an_unreachable_webhook_is_retried_then_fails_plainly(herald, tmp_path, demo_db, monkeypatch):
    from tests.servers import SLACK_TOKEN, free_port

    monkeypatch.setenv("SLACK_BOT_TOKEN", SLACK_TOKEN)
    monkeypatch.setenv("SLACK_WEBHOOK_URL", f"http://127.0.0.1:{free_port()}/hook/SECRET")

    def webhook(data: dict) -> None:
        data["channels"] = {"slack": {"token": "${SLACK_BOT_TOKEN}", "retries": 0, "timeout": 2}}
        data["delivery"] = {"attempts": 2, "backoff_seconds": 0.01}
        data["reports"]["cs_daily_alerts"]["deliver"] = [{"slack": {"webhook": "${SLACK_WEBHOOK_URL}"}}]
        data["reports"]["cs_daily_alerts"]["owners"] = []

    config = demo_folder(tmp_path / "cfg", demo_db, webhook)
    result = herald("run", "cs_daily_alerts", "--as-of", "2026-11-22", "--config", config)
    assert result.code == 1 and "FAILED: slack to webhook: cannot reach the Slack webhook" in result.out
    assert "gave up after 2 tries" in result.out and "SECRET" not in result.out + result.err
