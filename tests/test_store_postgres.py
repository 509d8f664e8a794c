"""The store on PostgreSQL, as machines sharing it use it: a real server, several processes racing
for one fire time, leases that run out, deliveries resumed from messages kept in the database,
alert state, `run.py run` twice, and faults said in one line. The behaviours every store has run
on SQLite too."""

from __future__ import annotations

import itertools
import multiprocessing
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from notifiers import Message
from notifiers.slack import SlackNotifier, SlackSettings
from reports.alerts.book import AlertBook
from reports.config.load import load_config
from reports.config.models import DeliveryPolicy
from reports.errors import ConfigError
from reports.pipeline.deliver import Delivery, deliver, record, unsent
from reports.scheduler.serve import Server
from reports.store import Store, StoreError, holder_is_dead
from tests.conftest import demo_folder
from tests.servers import SLACK_TOKEN, free_port, slack_server
from tests.test_alerts import Runs, day
from tests.warehouses import postgres_server

PG_PASSWORD = "pg-secret-5d1c9e"  # the `guarded` role's; every other role is trusted on loopback
FIRE = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
_names = itertools.count(1)


class Cluster:
    def __init__(self, url: str) -> None:
        self.url = make_url(url).set(drivername="postgresql")
        self.admin = create_engine(url, isolation_level="AUTOCOMMIT")

    def sql(self, *statements: str) -> None:
        with self.admin.connect() as db:
            for statement in statements:
                db.exec_driver_sql(statement)

    def database(self, user: str = "herald", password: str | None = None) -> str:
        """A new, empty database, and its address."""
        name = f"store{next(_names)}"
        self.sql(f"CREATE DATABASE {name} OWNER {user}")
        url = self.url.set(database=name, username=user, password=password)
        return url.render_as_string(hide_password=False)


def _require_a_password_from(cluster: Cluster, role: str) -> None:
    """The test cluster trusts loopback; make `role` log in with its password, as in production."""
    with cluster.admin.connect() as db:
        hba = db.exec_driver_sql("SHOW hba_file").scalar()
        rules = [
            "local all all trust",
            f"host all {role} 127.0.0.1/32 scram-sha-256",
            "host all all 127.0.0.1/32 trust",
        ]
        listed = ", ".join(f"'{rule}'" for rule in rules)
        db.exec_driver_sql(f"COPY (SELECT unnest(ARRAY[{listed}])) TO '{hba}'")
        db.exec_driver_sql("SELECT pg_reload_conf()")
    wrong = create_engine(cluster.url.set(drivername="postgresql+psycopg", username=role, password="wrong"))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            wrong.connect().close()
        except OperationalError:
            break
        time.sleep(0.1)
    wrong.dispose()


@pytest.fixture(scope="module")
def cluster():
    with postgres_server() as url:
        found = Cluster(url)
        found.sql(f"CREATE ROLE guarded LOGIN PASSWORD '{PG_PASSWORD}'")
        _require_a_password_from(found, "guarded")
        yield found
        found.admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def location(request, tmp_path) -> Path | str:
    """Where a store lives: a SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        return tmp_path / "data" / "herald.sqlite"
    return request.getfixturevalue("cluster").database()


def _claim_every_fire(location: Path | str, owner: str, fires: list[datetime], start, results) -> None:
    try:
        store = Store(location)  # this process's own connections
        store.runs()  # connected: the race is between claims, not between connecting
        start.wait()
        hour = timedelta(hours=1)
        results.put((owner, [f for f in fires if store.claim("race", f, "2026-11-22", owner, hour)]))
    except Exception as exc:  # the test says what went wrong rather than wait for a result
        results.put((owner, f"{type(exc).__name__}: {exc}"))


def _race(location: Path | str, fires: list[datetime], round: int) -> dict[str, list[datetime]]:
    """Three processes claim every fire time, in the same order, starting together; what each won."""
    context = multiprocessing.get_context("fork")
    owners = [f"machine{i}:{round}" for i in range(3)]
    start, results = context.Barrier(len(owners)), context.Queue()
    racers = [
        context.Process(target=_claim_every_fire, args=(location, owner, fires, start, results))
        for owner in owners
    ]
    for racer in racers:
        racer.start()
    won = dict(results.get(timeout=60) for _ in racers)
    for racer in racers:
        racer.join(30)
    assert all(isinstance(got, list) for got in won.values()), won
    return won


def test_processes_racing_for_fire_times_take_each_exactly_once(location):
    store = Store(location)
    fires = [FIRE + timedelta(minutes=n) for n in range(100)]
    for round in (1, 2):  # new runs, then the same runs once their leases ran out
        won = _race(location, fires, round)
        assert sorted(f for got in won.values() for f in got) == fires  # each once, by one process
        holders = {r.scheduled_for: r.lease_owner for r in store.runs("race", limit=100)}
        assert holders == {f.isoformat(): owner for owner, got in won.items() for f in got}
        for run in store.runs("race", limit=100):
            assert store.renew(run.id, run.lease_owner or "", -timedelta(hours=1))
    assert len(store.runs("race", limit=100)) == len(fires)


def test_a_lease_that_ran_out_is_taken_over_and_a_live_one_is_not(location):
    store = Store(location)
    hour = timedelta(hours=1)
    run = store.claim("cs_daily_alerts", FIRE, "2026-11-22", "a:1", hour)
    assert run is not None and run.lease_owner == "a:1"
    assert store.claim("cs_daily_alerts", FIRE, "2026-11-22", "b:2", hour) is None
    assert not store.take_over(run.id, "b:2", hour)
    assert store.renew(run.id, "a:1", -hour)  # its lease has run out: a:1 stopped renewing it
    assert [r.id for r in store.unfinished()] == [run.id]
    taken = store.claim("cs_daily_alerts", FIRE, "2026-11-22", "b:2", hour)
    assert taken is not None and (taken.id, taken.lease_owner) == (run.id, "b:2")
    assert not store.renew(run.id, "a:1", hour)  # a:1 learns it lost the run
    assert store.take_over(run.id, "c:3", hour, force=True)  # b:2 known dead
    store.release(run.id, "c:3")
    assert store.take_over(run.id, "b:2", hour)  # released: at once
    store.finish_run(run.id, "ok", findings=3)
    store.finish_run(run.id, "failed", error="late")  # a finished run keeps its verdict
    assert store.claim("cs_daily_alerts", FIRE, "2026-11-22", "d:4", hour) is None
    assert (store.run(run.id).status, store.run(run.id).findings) == ("ok", 3)
    assert store.ran("cs_daily_alerts", "2026-11-22") and not store.ran("cs_daily_alerts", "2026-11-23")
    later = FIRE + timedelta(days=1)
    store.record_missed("cs_daily_alerts", later, "2026-11-23")
    store.record_missed("cs_daily_alerts", later, "2026-11-23")
    assert [r.status for r in store.runs("cs_daily_alerts")] == ["missed", "ok"]
    assert store.last_fire("cs_daily_alerts") == later
    assert store.start_run("cs_daily_alerts", "2026-11-22") > run.id
    store.close()  # idle connections closed; the next use opens one again
    assert store.run(run.id).status == "ok"


def test_a_lease_holder_is_dead_only_when_it_is_a_gone_process_on_this_host():
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    pid = int(gone.stdout)
    assert holder_is_dead(f"{socket.gethostname()}:{pid}")
    assert not holder_is_dead(f"another-machine:{pid}")  # elsewhere: only its lease running out tells
    assert not holder_is_dead(f"{socket.gethostname()}:{multiprocessing.current_process().pid}")


# What a process on another machine runs to send what a run left pending: open the store by its
# address, list the run's unsent deliveries, read each one's message.
READ_PENDING = """
import sys
from notifiers import Message
from reports.store import Store
store = Store(sys.argv[1])
for row in store.deliveries([int(sys.argv[2])], ("pending", "retrying")):
    print(Message.from_json(store.read_message(row.message)).subject)
"""


def _message(n: int) -> Message:
    return Message(
        f"Alert {n}", f"text {n}", blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": f"{n}"}}]
    )


def test_deliveries_are_recorded_once_and_a_restart_sends_only_what_was_pending(location, tmp_path):
    store = Store(location)
    run_id = store.start_run("cs_daily_alerts", "2026-11-22")
    planned = [
        Delivery("slack", address, address, _message(n))
        for n, address in enumerate(["#cs-alerts", "@amara.okafor", "@bruno.sato"])
    ]
    pending, skipped = record(planned, store, run_id, "cs_daily_alerts", "2026-11-22")
    assert len(pending) == 3 and skipped == []
    first, *rest = pending
    store.update_delivery(first[0], "sent", attempts=1, provider_id="1700000000.000001")
    # The same run recording them again (a batch whose worker died, done twice) gets the one it
    # sent back as held, and the same rows for the two it has not sent yet.
    again_pending, again_skipped = record(planned, store, run_id, "cs_daily_alerts", "2026-11-22")
    assert [row for row, _ in again_pending] == [row for row, _ in rest]
    assert [(o.status, o.delivery.recipient) for o in again_skipped] == [("skipped", "#cs-alerts")]
    # Herald stopped here. Another process (on another machine, for PostgreSQL) resumes the run
    # from the store alone: the messages come back from where they were kept.
    elsewhere = subprocess.run(
        [sys.executable, "-c", READ_PENDING, str(location), str(run_id)], capture_output=True, text=True
    )
    assert elsewhere.stdout.split("\n")[:-1] == ["Alert 1", "Alert 2"], elsewhere.stderr
    again = Store(location)
    resumed = unsent(again, [run_id])
    assert [(row, d.recipient, d.message) for row, d in resumed] == [
        (row, d.recipient, d.message) for row, d in rest
    ]
    assert (again.messages is None) == isinstance(location, str)  # PostgreSQL: no folder at all
    with slack_server() as (workspace, base):
        slack = SlackNotifier(SlackSettings(token=SLACK_TOKEN, base_url=f"{base}/api/", min_interval=0))
        outcomes = deliver(resumed, {"slack": slack}, again, DeliveryPolicy())
    assert [o.status for o in outcomes] == ["sent", "sent"]
    assert [p["text"] for p in workspace.posts] == ["Alert 1", "Alert 2"]
    assert again.delivered("cs_daily_alerts", "2026-11-22") == {("slack", d.recipient) for d in planned}
    # A second run of the same day holds every one of them back.
    second = again.start_run("cs_daily_alerts", "2026-11-22")
    pending, skipped = record(planned, again, second, "cs_daily_alerts", "2026-11-22")
    assert pending == [] and [o.status for o in skipped] == ["skipped"] * 3
    assert [d.status for d in again.deliveries([run_id])] == ["sent"] * 3
    assert again.deliveries([]) == []


def test_the_alert_book_keeps_its_state(location, tmp_path, demo_db):
    def settings(data: dict) -> None:
        data["store"] = str(location)
        for rule in data["rules"]:
            if rule["name"] == "usage_drop":
                rule["for"] = "2 runs"

    config = demo_folder(tmp_path / "cfg", demo_db, settings)
    runs = Runs(config, Store(location))
    drop = ("usage_drop", "p0001")
    assert runs.on(day(0), drop)[0] == {}  # pending
    assert runs.on(day(1), drop)[0] == {drop: ("new", True)}
    assert runs.on(day(2), drop)[0] == {drop: ("ongoing", False)}
    assert runs.on(day(3))[0] == {drop: ("resolved", True)}
    book = AlertBook(Store(location))  # opened afresh: the state was kept, not remembered
    (alert,) = book.alerts("cs_daily_alerts")
    assert (alert.state, alert.since, alert.resolved, alert.notified) == (
        "resolved",
        "2026-11-17",
        "2026-11-19",
        "2026-11-17",
    )
    start = datetime(2026, 11, 16, tzinfo=UTC)
    silence = book.silence("usage_drop", "p0002", start, start + timedelta(days=2), "migration, 50% done?")
    assert [(s.id, s.reason) for s in book.silences(start)] == [(silence, "migration, 50% done?")]
    assert book.unsilence(silence) and not book.unsilence(silence)


def test_a_schema_in_sqlite_words_is_made_on_either_database(location):
    """A table added later (the audit log's, say) needs no second copy for PostgreSQL."""
    store = Store(location)
    store.create_tables(
        "CREATE TABLE IF NOT EXISTS audit_entries (\n"
        "    id INTEGER PRIMARY KEY,\n"
        "    actor TEXT NOT NULL,      -- who; '%' and '?' in comments are left alone\n"
        "    body BLOB,\n"
        "    UNIQUE (actor)\n"
        ");"
    )
    store.create_tables("CREATE TABLE IF NOT EXISTS audit_entries (id INTEGER PRIMARY KEY);")  # made: kept
    with store.transaction() as db:
        ids = [
            db.execute("INSERT INTO audit_entries (actor, body) VALUES (?, ?)", (actor, b"\x00")).lastrowid
            for actor in ("ana", "ben")
        ]
        db.execute("INSERT OR IGNORE INTO audit_entries (actor) VALUES (?)", ("ana",))
        rows = db.execute("SELECT id, actor FROM audit_entries WHERE actor LIKE 'a%' OR actor = ?", ("ben",))
        assert [tuple(row) for row in rows] == [(1, "ana"), (2, "ben")]
    assert ids == [1, 2] and "audit_entries" in store.tables()


def test_a_fire_time_runs_once_from_two_servers_on_one_postgres_store(cluster, tmp_path, demo_db):
    url = cluster.database()

    def only_alerts(data: dict) -> None:
        alerts = data["reports"]["cs_daily_alerts"]
        alerts["schedule"] = {"cron": "0 7 * * *", "timezone": "Europe/London", "grace": "6 hours"}
        data["reports"] = {"cs_daily_alerts": alerts}
        data["store"] = url

    config = demo_folder(tmp_path / "cfg", demo_db, only_alerts)
    clock = [datetime(2026, 11, 23, 7, 5, tzinfo=UTC)]
    servers = [Server(config, tmp_path / f"out{i}", now=lambda: clock[0]) for i in range(2)]
    for server in servers:
        server.tick()
    (run,) = Store(url).runs()
    assert (run.scheduled_for, run.as_of, run.status) == ("2026-11-23T07:00:00+00:00", "2026-11-22", "ok")
    assert not (tmp_path / "cfg" / "data" / "herald.sqlite").exists()


def test_run_twice_on_postgres_sends_nothing_the_second_time(herald, cluster, tmp_path, demo_db, monkeypatch):
    url = make_url(cluster.database("guarded", PG_PASSWORD)).set(password="PASSWORD")
    address = url.render_as_string(hide_password=False).replace("PASSWORD", "${PG_PASSWORD}")
    monkeypatch.setenv("PG_PASSWORD", PG_PASSWORD)
    monkeypatch.setenv("SLACK_BOT_TOKEN", SLACK_TOKEN)
    with slack_server() as (workspace, base):

        def edit(data: dict) -> None:
            data["channels"] = {
                "slack": {"token": "${SLACK_BOT_TOKEN}", "base_url": f"{base}/api/", "min_interval": 0}
            }
            data["store"] = address

        config = demo_folder(tmp_path / "cfg", demo_db, edit)
        first = herald("-v", "run", "cs_daily_alerts", "--as-of", "2026-11-22", "--config", config)
        assert first.code == 0, first.err
        sent = len(workspace.posts)
        assert sent == 5  # the team channel and each of four owners
        second = herald("-v", "run", "cs_daily_alerts", "--as-of", "2026-11-22", "--config", config)
        assert second.code == 0, second.err
        assert len(workspace.posts) == sent
    assert "already sent" in second.out
    history = herald("history", "--config", config)
    assert history.code == 0
    heads = [line for line in history.out.splitlines() if line.startswith("run ")]
    assert [line.split()[:3] for line in heads] == [
        ["run", "2", "cs_daily_alerts"],
        ["run", "1", "cs_daily_alerts"],
    ]
    assert history.out.count(" sent ") >= 5
    for said in (first, second, history):
        assert PG_PASSWORD not in said.out + said.err
    assert not list((tmp_path / "cfg").rglob("*.messages"))  # every message is in the database


def _said(herald, tmp_path, demo_db, address: str, monkeypatch) -> str:
    monkeypatch.setenv("PG_PASSWORD", "not-the-password-4e1f")
    config = demo_folder(tmp_path / f"cfg{next(_names)}", demo_db, lambda data: data.update(store=address))
    result = herald("history", "--config", config)
    assert result.code == 1 and result.out == ""
    assert result.err.count("\n") == 1 and "Traceback" not in result.err
    assert "not-the-password-4e1f" not in result.err and PG_PASSWORD not in result.err
    return result.err


def test_a_store_that_cannot_be_used_is_said_in_one_line_with_its_fix(
    herald, cluster, tmp_path, demo_db, monkeypatch
):
    host = f"127.0.0.1:{cluster.url.port}"
    refused = _said(
        herald, tmp_path, demo_db, f"postgresql://herald@127.0.0.1:{free_port()}/herald", monkeypatch
    )
    assert (
        "cannot reach the store postgresql://herald@127.0.0.1:" in refused and "start PostgreSQL" in refused
    )
    login = _said(
        herald, tmp_path, demo_db, f"postgresql://guarded:${{PG_PASSWORD}}@{host}/guarded", monkeypatch
    )
    assert "postgresql://guarded:***@" in login and "refused Herald's login" in login
    assert "check the user and password" in login
    missing = _said(herald, tmp_path, demo_db, f"postgresql://herald@{host}/nowhere", monkeypatch)
    assert "does not exist" in missing and "createdb" in missing
    foreign = cluster.database()
    with create_engine(make_url(foreign).set(drivername="postgresql+psycopg")).begin() as db:
        db.exec_driver_sql("CREATE TABLE orders (id INTEGER)")
    other = _said(herald, tmp_path, demo_db, foreign, monkeypatch)
    assert "is not a Herald store: it holds other tables (orders)" in other
    assert "give Herald an empty database of its own" in other
    with pytest.raises(StoreError, match="is not a Herald store"):
        Store(foreign)


def test_store_is_a_file_or_a_postgres_address_and_an_address_is_never_echoed(tmp_path, demo_db):
    for address in (
        "mysql://herald:hunter2-secret@db/herald",
        "postgresql://herald:hunter2-secret@/herald",
        "postgresql://db.internal",
    ):
        config = demo_folder(
            tmp_path / f"cfg{next(_names)}", demo_db, lambda data, a=address: data.update(store=a)
        )
        with pytest.raises(ConfigError) as caught:
            load_config(config)
        assert "the store is a file path or a postgresql:// address" in str(caught.value)
        assert "hunter2" not in str(caught.value)
    config = demo_folder(tmp_path / "path", demo_db, lambda data: data.update(store="state/herald.sqlite"))
    loaded = load_config(config)
    assert loaded.path(loaded.store) == tmp_path / "path" / "state" / "herald.sqlite"
    address = "postgresql://herald@db.internal:5432/herald"
    config = demo_folder(tmp_path / "url", demo_db, lambda data: data.update(store=address))
    loaded = load_config(config)
    assert loaded.path(loaded.store) == address
