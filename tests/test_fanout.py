"""Per-entity fan-out: one report per project, bundled per owner, rendered by a pool of workers."""

import email
import logging
import os
import signal
import subprocess
import sys
import time
from datetime import date
from email import policy
from pathlib import Path

import duckdb
import pytest
from pypdf import PdfReader

from reports.pipeline import deliver as delivery
from reports.pipeline import fanout
from reports.pipeline.fanout import batches
from reports.report.model import Recipient
from reports.store import Store
from tests.conftest import ROOT, demo_folder, execute_job
from tests.servers import SMTP_PASSWORD, smtp_channel, smtp_server

AS_OF = date(2026, 11, 22)
PROJECTS = 30


def configure(
    folder: Path, demo_db: Path, port: int | None = None, cert: Path | None = None, **extra
) -> Path:
    """The demo config with its per-project health job over the first PROJECTS projects."""

    def edit(data: dict) -> None:
        entity = data["entities"]["project"]
        entity["sql"] = entity["sql"].rstrip() + f"\nWHERE p.project_id <= 'p{PROJECTS:04d}'\n"
        data.update(extra)
        if port is not None:
            data["channels"] = {"email": smtp_channel(port, cert)}
        data["reports"]["project_health"]["owners"] = []

    return demo_folder(folder, demo_db, edit)


def projects(demo_db: Path) -> dict[str, tuple[str, str]]:
    """Project id → (name, owner's email) for the projects the test config keeps."""
    with duckdb.connect(str(demo_db), read_only=True) as db:
        rows = db.execute(
            "SELECT p.project_id, p.name, o.email FROM projects p JOIN cs_owners o USING (owner_id) "
            "WHERE p.project_id <= ? ORDER BY 1",
            [f"p{PROJECTS:04d}"],
        ).fetchall()
    return {pid: (name, owner) for pid, name, owner in rows}


def pdf_text(path: Path) -> str:
    return " ".join(page.extract_text() for page in PdfReader(path).pages)


@pytest.fixture(autouse=True)
def smtp_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMTP_PASSWORD", SMTP_PASSWORD)


@pytest.mark.parametrize(("workers", "chunk"), [(0, None), (2, None), (2, 1)])
def test_each_project_gets_its_own_report_and_each_owner_one_email(
    tmp_path, demo_db, monkeypatch, workers, chunk
):
    """chunk 1: the pool renders each owner's projects one by one, on either worker, and the
    owner's one email goes out once all are written."""
    if chunk is not None:
        monkeypatch.setattr(fanout, "CHUNK", chunk)
    known = projects(demo_db)
    with smtp_server(tmp_path) as (box, port, cert):
        config = configure(tmp_path / "cfg", demo_db, port, cert, workers=workers)
        outcome, store = execute_job(config, "project_health", tmp_path / "out")
    assert outcome.ok, outcome.problems()

    scoped = [r for r in outcome.rendered if r.report.recipient.entities is not None]
    assert sorted(r.report.recipient.key for r in scoped) == sorted(known)
    names = {name for name, _ in known.values()}
    for rendered in scoped:  # every PDF: its own project's name, and no other project's
        (pdf,) = [p for p in rendered.files if p.suffix == ".pdf"]
        text = " ".join(pdf_text(pdf).split())
        own = known[rendered.report.recipient.key][0]
        assert own in text, pdf
        others = [n for n in names if n != own and n in text and n not in own]
        assert others == [], f"{pdf.name} shows {others}"
        assert "Top movers" not in text  # nothing to rank within one project

    owners = sorted({owner for _, owner in known.values()})
    assert sorted(to for (to,), _ in box.messages) == owners  # one email per owner, not per project
    for (to,), raw in box.messages:
        mail = email.message_from_bytes(raw, policy=policy.default)
        assert mail["Subject"] == "Project health — November 2026"  # the job's subject template
        theirs = sorted(name for name, owner in known.values() if owner == to)
        attached = sorted(p.get_filename() for p in mail.iter_attachments())
        assert len(attached) == len(theirs)  # few enough: each project's PDF attached
        text = mail.get_body(("plain",)).get_content()
        assert all(name in text for name in theirs)
        others = [n for n, owner in known.values() if owner != to and n in text]
        assert others == []
    rows = store.deliveries()
    assert sorted(r.recipient for r in rows) == owners and {r.status for r in rows} == {"sent"}


def test_an_owner_of_many_projects_gets_links_not_attachments(tmp_path, demo_db, monkeypatch):
    monkeypatch.setattr(delivery, "BUNDLE_ATTACHMENTS", 1)
    config = configure(tmp_path / "cfg", demo_db, archive_url="https://reports.example.com/out")
    outcome, _ = execute_job(config, "project_health", tmp_path / "out")
    assert outcome.ok, outcome.problems()
    owners = [owner for _, owner in projects(demo_db).values()]
    many = {owner for owner in owners if owners.count(owner) > 1}
    filed = (tmp_path / "out" / "outbox" / "project_health" / "2026-11-22").glob("*.eml")
    mails = [email.message_from_bytes(path.read_bytes(), policy=policy.default) for path in filed]
    bundles = [mail for mail in mails if mail["To"] in many]
    assert len(bundles) == len(many) > 0
    for mail in bundles:
        text = mail.get_body(("plain",)).get_content()
        assert list(mail.iter_attachments()) == []
        links = [line for line in text.splitlines() if "download: " in line]
        assert len(links) == owners.count(mail["To"])
        assert all("https://reports.example.com/out/project_health/2026-11-22/" in line for line in links)


def test_a_rerun_renders_again_but_sends_nothing(tmp_path, demo_db):
    config = configure(tmp_path / "cfg", demo_db, workers=2)
    first, _ = execute_job(config, "project_health", tmp_path / "out")
    again, store = execute_job(config, "project_health", tmp_path / "out")
    assert first.ok and again.ok
    assert {o.status for o in first.deliveries} == {"filed"}
    assert {o.status for o in again.deliveries} == {"skipped"}
    assert len(store.deliveries()) == len(first.deliveries)


def test_the_pool_logs_its_progress(tmp_path, demo_db, caplog):
    config = configure(tmp_path / "cfg", demo_db, workers=2)
    with caplog.at_level(logging.INFO, logger="reports.pipeline.fanout"):
        outcome, _ = execute_job(config, "project_health", tmp_path / "out")
    assert outcome.ok
    lines = [r.getMessage() for r in caplog.records if r.name == "reports.pipeline.fanout"]
    assert lines[-1].startswith(f"job project_health: {PROJECTS} of {PROJECTS} reports rendered")


def test_workers_beyond_reason_are_refused(tmp_path, demo_db, herald):
    config = configure(tmp_path / "cfg", demo_db, workers=500)
    result = herald("--config", config, "validate")
    assert result.code == 2 and "workers" in result.err and "Traceback" not in result.err
    result = herald("--config", configure(tmp_path / "c2", demo_db), "run", "--workers", "many")
    assert result.code == 2 and "not a number of workers" in result.err


def test_entities_sharing_any_address_go_out_in_one_batch():
    """An owner with one email but two Slack handles in the data still gets one email: a batch
    per address would record two messages under the same name, and the second would be lost."""
    found = batches(
        [
            Recipient("p1", "One", "ann@example.com", "@ann"),
            Recipient("p2", "Two", "ann@example.com", "@ann.lee"),
            Recipient("p3", "Three", "bo@example.com", "@ann.lee"),
            Recipient("p4", "Four", "cy@example.com", None),
            Recipient("p5", "Five", None, None),
        ],
        per_entity=True,
    )
    assert [[r.key for r in batch] for batch in found] == [["p1", "p2", "p3"], ["p4"], ["p5"]]
    alone = batches([Recipient("a", "A"), Recipient("b", "B")], per_entity=False)
    assert [[r.key for r in batch] for batch in alone] == [["a"], ["b"]]


def _workers_of(pid: int) -> list[int]:
    """The pool's workers: children of `pid` forked from it (the same command line)."""
    proc = Path("/proc")
    try:
        children = (proc / str(pid) / "task" / str(pid) / "children").read_text().split()
        own = (proc / str(pid) / "cmdline").read_bytes()
        return [int(c) for c in children if (proc / c / "cmdline").read_bytes() == own]
    except FileNotFoundError:
        return []


def test_a_worker_killed_mid_run_fails_the_run_in_one_line_and_a_rerun_sends_the_rest(tmp_path, demo_db):
    """A worker killed (out of memory, by an operator) must not leave `run` waiting for ever; what
    it held goes out on the next run, and nothing that went out goes out twice."""
    config = configure(tmp_path / "cfg", demo_db, workers=2)
    out = tmp_path / "out"
    command = [sys.executable, str(ROOT / "run.py"), "--config", str(config), "run", "project_health"]
    command += ["--as-of", AS_OF.isoformat(), "--out", str(out), "--workers", "2"]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and first.poll() is None:
        rendered = list(out.glob("project_health/**/*.pdf")) if out.exists() else []
        workers = _workers_of(first.pid)
        if len(rendered) >= 3 and workers:
            try:
                os.kill(workers[0], signal.SIGKILL)
                break
            except ProcessLookupError:  # it ended between the listing and the kill: look again
                pass
        time.sleep(0.05)
    else:
        pytest.fail("the run ended before a worker could be killed")
    try:
        _, err = first.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        first.kill()
        pytest.fail("`run` still waits for the killed worker")
    assert first.returncode == 1 and "Traceback" not in err, err
    assert "a worker rendering the reports died" in err and "run the job again" in err

    second = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    store = Store(config.parent / "data" / "herald.sqlite")
    rows = store.deliveries()
    owners = sorted({owner for _, owner in projects(demo_db).values()})
    filed = sorted(r.recipient for r in rows if r.status == "filed")
    assert filed == owners  # each owner's email filed once, across both runs
    mails = list((out / "outbox" / "project_health" / AS_OF.isoformat()).glob("*.eml"))
    assert sorted(email.message_from_bytes(p.read_bytes())["To"] for p in mails) == owners
