"""`executor: celery`: a per-project fan-out rendered and delivered by `run.py worker` processes
over a real Redis, one of them killed mid-render, every delivery going out exactly once."""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

import duckdb
import pytest
from pypdf import PdfReader
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from reports.config.load import load_config
from reports.pipeline import fanout, workers
from reports.report.build import recipients
from reports.report.model import Recipient
from reports.store import Store
from tests.brokers import Worker, redis_server
from tests.conftest import demo_folder, execute_job, job_run
from tests.servers import SMTP_PASSWORD, smtp_channel, smtp_server
from tests.warehouses import postgres_server

AS_OF = date(2026, 11, 22)
REDIS_PASSWORD = "redis-secret-4b1d"
SECRETS = {"REDIS_PASSWORD": REDIS_PASSWORD, "SMTP_PASSWORD": SMTP_PASSWORD}
# Celery refuses pickled tasks as root unless told; CI runs as root.
WORKER_ENV = {**SECRETS, "C_FORCE_ROOT": "1"}
FIRST_200 = "WHERE p.project_id <= 'p0200'"
# Projects of the owners with at least 3 of the first 40: every batch is several PDFs long.
SEVERAL_EACH = (
    "WHERE p.project_id <= 'p0040' AND owner_id IN (SELECT owner_id FROM projects "
    "WHERE project_id <= 'p0040' GROUP BY 1 HAVING COUNT(*) >= 3)"
)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory):
    with pytest.MonkeyPatch.context() as env:
        for name, value in SECRETS.items():
            env.setenv(name, value)
        with redis_server(tmp_path_factory.mktemp("redis"), REDIS_PASSWORD) as url:
            yield url


@pytest.fixture(scope="module")
def postgres():
    with postgres_server() as url:
        yield url


_databases = itertools.count(1)


def new_store(server: str) -> str:
    """A new, empty PostgreSQL database for one test's store, shared by its processes; its address."""
    name = f"herald_celery{next(_databases)}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as db:
        db.exec_driver_sql(f"CREATE DATABASE {name}")
    admin.dispose()
    return make_url(server).set(database=name).render_as_string(hide_password=False)


def configure(
    folder: Path,
    demo_db: Path,
    broker: str,
    where: str,
    queue: str,
    smtp: tuple[int, Path] | None = None,
    store: str | None = None,
    task_timeout: str = "60s",
) -> Path:
    """The demo's per-project health job over the projects `where` keeps, sent to Celery workers,
    its runs and deliveries in `store` (PostgreSQL, as on several machines)."""

    def edit(data: dict) -> None:
        entity = data["entities"]["project"]
        entity["sql"] = entity["sql"].rstrip() + f"\n{where}\n"
        job = data["reports"]["project_health"]
        job["kpis"] = ["events", "crm_sync_rate", "job_failure_rate"]  # fewer charts: PDFs twice as fast
        job["trend_periods"] = 4
        job["owners"] = []
        data["executor"] = "celery"
        data["celery"] = {"broker": broker, "queue": queue, "task_timeout": task_timeout}
        if store is not None:
            data["store"] = store
        if smtp is not None:
            port, cert = smtp
            data["channels"] = {"email": {**smtp_channel(port, cert), "timeout": 10}}

    return demo_folder(folder, demo_db, edit)


def projects(demo_db: Path, where: str) -> dict[str, tuple[str, str]]:
    """Project id → (name, owner's email) for the projects the entity query keeps with `where`."""
    with duckdb.connect(str(demo_db), read_only=True) as db:
        rows = db.execute(
            f"SELECT p.project_id, p.name, o.email FROM projects p JOIN cs_owners o USING (owner_id) {where}"
        ).fetchall()
    return {pid: (name, owner) for pid, name, owner in rows}


def exactly_once(rows, messages) -> tuple[Counter, Counter]:
    """How often each (channel, recipient) is in the delivery log, and each address got mail."""
    return Counter((r.channel, r.recipient, r.status) for r in rows), Counter(to for (to,), _ in messages)


def batches_done(worker: Worker) -> list[int]:
    """The size of each batch a worker logged as done."""
    return [
        int(line.split("batch of ")[1].split()[0])
        for line in worker.text().splitlines()
        if " done in " in line
    ]


@dataclass
class FanOut:
    demo_db: Path
    outcome: object
    rows: list
    messages: list
    workers: list[Worker]


@pytest.fixture(scope="module")
def fan_out_200(tmp_path_factory, demo_db, broker, postgres) -> FanOut:
    """200 projects' reports rendered by two workers (one process each) and emailed per owner."""
    folder = tmp_path_factory.mktemp("fanout")
    with smtp_server(folder) as (box, port, cert):
        store = new_store(postgres)
        config = configure(folder / "cfg", demo_db, broker, FIRST_200, "herald_200", (port, cert), store)
        started = [Worker(config, folder / f"worker{n}.log", WORKER_ENV) for n in (1, 2)]
        try:
            listening(config, 2)  # so that both take batches from the start
            outcome, store = execute_job(config, "project_health", folder / "out")
        finally:
            for worker in started:
                worker.stop()
        return FanOut(demo_db, outcome, store.deliveries(), list(box.messages), started)


def test_two_workers_deliver_a_200_report_fan_out_exactly_once(fan_out_200):
    done = fan_out_200
    assert done.outcome.ok, done.outcome.problems()
    known = projects(done.demo_db, FIRST_200)
    assert len(known) == 200
    scoped = [r for r in done.outcome.rendered if r.report.recipient.entities is not None]
    assert sorted(r.report.recipient.key for r in scoped) == sorted(known)

    owners = {owner for _, owner in known.values()}
    logged, mailed = exactly_once(done.rows, done.messages)
    assert logged == {("email", owner, "sent"): 1 for owner in owners}
    assert mailed == dict.fromkeys(owners, 1)
    assert sorted(o.delivery.recipient for o in done.outcome.deliveries) == sorted(owners)

    sizes = [batches_done(worker) for worker in done.workers]
    assert all(sizes), "each worker rendered some of the batches"
    assert sum(map(sum, sizes)) == 200
    # Owners of 10 or so of these projects: their batches went out as chunks, on either worker,
    # and each owner's one email was sent once all were written.
    assert max(map(max, sizes)) <= fanout.CHUNK < max(Counter(owner for _, owner in known.values()).values())
    for worker in done.workers:
        assert REDIS_PASSWORD not in worker.text() and SMTP_PASSWORD not in worker.text()


def test_each_scoped_pdf_shows_its_own_project_only(fan_out_200):
    known = projects(fan_out_200.demo_db, FIRST_200)
    names = {name for name, _ in known.values()}
    scoped = [r for r in fan_out_200.outcome.rendered if r.report.recipient.entities is not None]
    assert len(scoped) == 200
    for rendered in scoped:
        (pdf,) = [p for p in rendered.files if p.suffix == ".pdf"]
        text = " ".join(" ".join(page.extract_text() for page in PdfReader(pdf).pages).split())
        own = known[rendered.report.recipient.key][0]
        assert own in text, pdf
        others = [n for n in names if n != own and n in text and n not in own]
        assert others == [], f"{pdf.name} shows {others}"


def listening(config: Path, count: int) -> None:
    """Wait until `count` workers answer on the config's broker."""
    app = workers.celery_app(load_config(config))
    try:
        wait_for(lambda: len(app.control.ping(timeout=0.5)) >= count, 90)
    finally:
        app.close()


def wait_for(found, seconds: float):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = found()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"nothing after {seconds} s")


def test_a_worker_killed_mid_render_has_its_batch_taken_over_and_nothing_sent_twice(
    tmp_path, demo_db, broker, postgres
):
    folder = tmp_path / "out" / "project_health" / AS_OF.isoformat()
    with smtp_server(tmp_path) as (box, port, cert):
        address = new_store(postgres)
        # A short time limit: the killed worker's batch goes to the other after 18 s.
        config = configure(
            tmp_path / "cfg", demo_db, broker, SEVERAL_EACH, "herald_takeover", (port, cert), address, "8s"
        )
        known = projects(demo_db, SEVERAL_EACH)
        store = Store(address)
        first, second = Worker(config, tmp_path / "first.log", WORKER_ENV), None
        ran: dict = {}
        parent = threading.Thread(
            target=lambda: ran.update(result=execute_job(config, "project_health", tmp_path / "out"))
        )
        parent.start()
        try:
            # The only worker holds one batch at a time: kill it once that batch's first PDF is written.
            pdf = wait_for(lambda: next(folder.glob("*/*.pdf"), None), 90)
            first.kill()
            recorded_at_kill = store.deliveries()
            second = Worker(config, tmp_path / "second.log", WORKER_ENV)
            parent.join(120)
        finally:
            first.stop()
            if second is not None:
                second.stop()
    assert not parent.is_alive()
    outcome, _ = ran["result"]
    assert outcome.ok, outcome.problems()

    killed = next(o for pid, (name, o) in known.items() if Recipient(pid, name).slug == pdf.parent.name)
    assert sum(owner == killed for _, owner in known.values()) >= 3  # a batch of several PDFs...
    assert recorded_at_kill == []  # ...killed before it was done rendering them
    assert batches_done(first) == []
    assert "taken over from a worker that died (try 2)" in second.text()
    assert sum(batches_done(second)) == len(known)  # every batch, the killed one too

    owners = {owner for _, owner in known.values()}
    logged, mailed = exactly_once(store.deliveries(), box.messages)
    assert logged == {("email", owner, "sent"): 1 for owner in owners}
    assert mailed == dict.fromkeys(owners, 1)


class Killed(BaseException):
    """A worker dying between recording a batch's deliveries and sending them."""


def test_a_batch_done_twice_sends_only_what_its_first_try_did_not(
    tmp_path, demo_db, broker, postgres, monkeypatch
):
    with smtp_server(tmp_path) as (box, port, cert):
        address = new_store(postgres)
        config_path = configure(
            tmp_path / "cfg", demo_db, broker, SEVERAL_EACH, "herald_twice", (port, cert), address
        )
        config, run = job_run(config_path, "project_health", AS_OF)
        store = Store(config.path(config.store))
        run_id = store.start_run("project_health", AS_OF.isoformat())
        out = tmp_path / "out"
        work = fanout.Fanout(config, run, out / "project_health" / "2026-11-22", out / "outbox", run_id)
        groups = fanout.batches(recipients(config, run), per_entity=True)
        workers.prepare_worker(config_path, config)
        pending, sent = (workers.order_for(work, g, workers.digest(config)) for g in groups[:2])

        def die(*args, **kwargs):
            raise Killed

        with monkeypatch.context() as patch:
            patch.setattr(fanout, "deliver", die)
            with pytest.raises(Killed):
                workers.render_order(pending)  # recorded, never sent
        assert [r.status for r in store.deliveries([run_id])] == ["pending"]
        again = workers.render_order(pending, tries=2)
        assert [o.status for o in again.outcomes] == ["sent"]

        elsewhere = workers.render_order(replace(sent, config="another"))  # a worker with another config
        assert elsewhere.outcomes == [] and "reads another config.yaml" in elsewhere.error
        first = workers.render_order(sent)
        assert [o.status for o in first.outcomes] == ["sent"]
        again = workers.render_order(sent, tries=2)  # its worker died before acknowledging it
        assert [(o.status, o.error) for o in again.outcomes] == [("skipped", f"already sent (run {run_id})")]

    logged, mailed = exactly_once(store.deliveries([run_id]), box.messages)
    assert sorted(logged.values()) == [1, 1] and {status for _, _, status in logged} == {"sent"}
    assert sorted(mailed.values()) == [1, 1]


def test_a_worker_needs_executor_celery(tmp_path, demo_db, broker, herald):
    config = configure(tmp_path / "cfg", demo_db, broker, FIRST_200, "herald")
    config.write_text(config.read_text().replace("executor: celery", "executor: local"))
    result = herald("--config", config, "worker")
    assert result.code == 2 and "executor: celery" in result.err and "Traceback" not in result.err


def test_an_unreachable_broker_fails_the_run_without_its_password(tmp_path, demo_db, broker):
    closed = "redis://:${REDIS_PASSWORD}@127.0.0.1:1/0"  # nothing listens on port 1
    config = configure(tmp_path / "cfg", demo_db, closed, SEVERAL_EACH, "herald")
    outcome, _ = execute_job(config, "project_health", tmp_path / "out")
    assert not outcome.ok
    assert "the Celery broker redis://127.0.0.1:1/0 cannot be reached" in outcome.error
    assert REDIS_PASSWORD not in outcome.error
