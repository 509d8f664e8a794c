"""`run.py serve` as an operator runs it: real processes, killed at random, on one store."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reports.config.load import load_config
from reports.scheduler.serve import Server
from reports.store import Store
from tests.conftest import ROOT, demo_folder
from tests.servers import SMTP_PASSWORD, smtp_channel, smtp_server

FANOUT = 200


def _daily_cron_just_fired() -> str:
    """A daily cron whose fire time was a minute ago (UTC), so a fresh `serve` runs it at once."""
    fired = datetime.now(UTC) - timedelta(minutes=1)
    return f"{fired.minute} {fired.hour} * * *"


def _start(
    config: Path, out: Path, log: Path, env: dict | None = None, json_logs: bool = False
) -> subprocess.Popen:
    command = [sys.executable, str(ROOT / "run.py"), "serve", "--config", str(config), "--out", str(out)]
    with open(log, "ab") as sink:
        return subprocess.Popen(
            command + (["--log-format", "json"] if json_logs else []),
            stdout=sink,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=config.parent,
        )


def _runs(config: Path) -> list[tuple]:
    """(job, scheduled_for, status, lease_owner) of every run; none before a server made the store."""
    try:
        with sqlite3.connect(config.parent / "data" / "herald.sqlite") as db:
            return db.execute(
                "SELECT job, scheduled_for, status, lease_owner FROM runs ORDER BY id"
            ).fetchall()
    except sqlite3.OperationalError:
        return []


def _until(condition, seconds: float, step: float = 0.02) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


def _emailing(port: int, cert: Path, addresses: list[str]) -> Callable[[dict], None]:
    """The config edit for one job, due now, that emails `addresses` through the test server."""

    def edit(data: dict) -> None:
        data["channels"] = {"email": smtp_channel(port, cert)}
        alerts = data["reports"]["cs_daily_alerts"]
        alerts.update(
            schedule={"cron": _daily_cron_just_fired(), "timezone": "UTC", "grace": "1 hour"},
            kpis=["events"],
            rules=[],
            scope=None,
            deliver=[{"email": {"to": addresses}}],
            owners=[],
        )
        data["reports"] = {"cs_daily_alerts": alerts}

    return edit


def _exit_code(process: subprocess.Popen, log: Path, seconds: float = 30) -> int:
    """How `process` ended; one still running after `seconds` is killed and its log shown."""
    try:
        return process.wait(seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        pytest.fail(f"serve still running {seconds:.0f} s after SIGTERM:\n{log.read_text()[-3000:]}")


def test_killed_at_random_serve_delivers_everything_once(tmp_path, demo_db):
    """SIGKILL during a fan-out of 200 emails, 20 times: every email arrives, and at most the
    one in flight at each kill arrives twice."""
    addresses = [f"reader{i:03d}@example.com" for i in range(FANOUT)]
    with smtp_server(tmp_path) as (box, port, cert):
        box.delay = 0.02  # about 50 a second: each trial is killed some way into the fan-out

        config = demo_folder(tmp_path / "cfg", demo_db, _emailing(port, cert, addresses))
        out, log = tmp_path / "out", tmp_path / "serve.log"
        env = {"SMTP_PASSWORD": SMTP_PASSWORD}
        rng = random.Random(20261125)
        kills = 0
        for _ in range(20):
            before = len({rcpt for (rcpt,), _ in box.messages})
            process = _start(config, out, log, env)
            # Kill once this process has sent someone new. Its first email may be the one in
            # flight at the last kill, sent again; a kill during that one too (likely on a busy
            # machine) would have it sent a third time, as no store can tell a send cut off
            # before the server's reply from one the server never got.
            _until(
                lambda p=process, n=before: (
                    len({rcpt for (rcpt,), _ in box.messages}) > n or p.poll() is not None
                ),
                30,
            )
            time.sleep(rng.uniform(0, 0.15))
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                kills += 1
            process.wait()
        interrupted = len({rcpt for (rcpt,), _ in box.messages})  # what the killed processes got out
        # SIGTERM: the delivery in flight finishes, the process stops cleanly, the rest wait.
        polite = _start(config, out, log, env)
        # Until it sends someone new: its first message may be the one in flight at the last kill.
        _until(lambda: len({rcpt for (rcpt,), _ in box.messages}) > interrupted, 30)
        polite.send_signal(signal.SIGTERM)
        assert _exit_code(polite, log) == 0
        stopped_at = len({rcpt for (rcpt,), _ in box.messages})
        last = _start(config, out, log, env)
        done = _until(lambda: any(r[2] == "ok" for r in _runs(config)), 60, 0.1)
        last.send_signal(signal.SIGTERM)
        assert _exit_code(last, log) == 0
        arrived = Counter(rcpt for (rcpt,), _ in box.messages)
    duplicates = sum(n - 1 for n in arrived.values())
    lost = FANOUT - len(arrived)
    print(
        f"\ncrash test: {kills} kills ({interrupted} of {FANOUT} out before the last start), "
        f"{len(arrived)} delivered, {duplicates} duplicates, {lost} lost"
    )
    assert done, log.read_text()[-3000:]
    assert kills >= 20 and 0 < interrupted < stopped_at < FANOUT
    assert "SIGTERM: finishing the delivery in flight, then stopping" in log.read_text()
    assert lost == 0 and set(arrived) == set(addresses)
    assert duplicates <= kills and max(arrived.values()) <= 2
    (run,) = _runs(config)  # one fire time, one run, however many processes worked on it
    assert run[2] == "ok"
    rows = Store(config.parent / "data" / "herald.sqlite").deliveries()
    assert len(rows) == FANOUT and {r.status for r in rows} == {"sent"}


def test_a_second_signal_stops_serve_at_once_and_the_run_waits_for_the_next_start(tmp_path, demo_db):
    """The second SIGTERM lands while an email is in flight to a slow server: serve stops then,
    not once the server answers, and the run stays for the next start to take over."""
    addresses = [f"reader{i:03d}@example.com" for i in range(20)]
    with smtp_server(tmp_path) as (box, port, cert):
        box.delay = 3  # each email takes 3 s to be accepted

        config = demo_folder(tmp_path / "cfg", demo_db, _emailing(port, cert, addresses))
        out, log = tmp_path / "out", tmp_path / "serve.log"
        process = _start(config, out, log, {"SMTP_PASSWORD": SMTP_PASSWORD})
        # Once the first email is logged as sent, the second is in flight.
        assert _until(lambda: ": sent" in log.read_text(), 60), log.read_text()[-3000:]
        process.send_signal(signal.SIGTERM)
        assert _until(lambda: "finishing the delivery in flight" in log.read_text(), 10)
        asked = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert _exit_code(process, log, 10) == 130
        took = time.monotonic() - asked
    text = log.read_text()
    assert "second signal: stopping now" in text and "Traceback" not in text
    assert took < 2, f"stopped {took:.1f} s after the second signal, as the email in flight ended"
    assert text.count(": sent") == 1
    ((job, _, status, _),) = _runs(config)
    assert (job, status) == ("cs_daily_alerts", "running")  # the next start takes it over


def _signalled(body: str) -> subprocess.CompletedProcess:
    """`body` run in a process of its own set up as serve sets itself up for signals (`server`,
    logging to stderr); what it printed and how it ended."""
    script = f"""
import os, signal, sys, time
from pathlib import Path
sys.path.insert(0, {str(ROOT)!r})
from reports.scheduler.serve import Server, configure_logging
configure_logging("text")
server = Server(Path("config.yaml"), Path("out"))
server._handle_signals()
{body}"""
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=False
    )


def test_a_signal_landing_while_the_loop_holds_its_wake_event_still_stops_serve():
    """A signal handler runs in the main thread, wherever it is. Caught inside the wake event's
    own lock (the loop clearing it, or a sleep starting), the stop must still get through
    rather than the handler waiting on that lock for ever."""
    done = _signalled("""
with server.wake._cond:
    os.kill(os.getpid(), signal.SIGTERM)
print("stopping" if server.stop.wait(5) and server.wake.wait(5) else "still running")
""")
    assert done.stdout.strip() == "stopping", done.stderr
    assert "SIGTERM: finishing the delivery in flight, then stopping" in done.stderr


def test_a_process_forked_from_serve_has_its_own_signals():
    """A pool worker forked from serve ends on SIGTERM, as the pool expects when it ends its
    workers, and that signal is not taken for one sent to serve itself."""
    done = _signalled("""
ready, started = os.pipe()
child = os.fork()
if child == 0:
    os.write(started, b"!")  # after Python's at-fork work, as a pool's worker is
    time.sleep(30)
    os._exit(0)
os.read(ready, 1)
os.kill(child, signal.SIGTERM)
_, status = os.waitpid(child, 0)
ended_by = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
print(ended_by == signal.SIGTERM, server.stop.wait(1))
""")
    assert done.stdout.split() == ["True", "False"], done.stderr


def test_a_second_signal_ends_the_render_workers_too():
    """Stopped at once mid-fan-out, serve takes its pool's workers with it: they ignore Ctrl-C,
    and a worker whose parent is gone would otherwise wait on its queue for ever."""
    done = _signalled("""
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
pool = ProcessPoolExecutor(2, multiprocessing.get_context("fork"))
tasks = [pool.submit(time.sleep, 30) for _ in range(4)]
time.sleep(0.5)
print(*(worker.pid for worker in multiprocessing.active_children()), flush=True)
os.kill(os.getpid(), signal.SIGTERM)
server.stop.wait(5)
os.kill(os.getpid(), signal.SIGTERM)
time.sleep(30)
""")
    workers = [int(pid) for pid in done.stdout.split()]
    assert done.returncode == 130 and len(workers) == 2, done.stderr

    def gone(pid: int) -> bool:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        return state in ("Z", "X")  # ended; only its exit status is left for a parent to read

    assert _until(lambda: all(gone(pid) for pid in workers), 5), workers


def test_two_servers_on_one_store_run_each_fire_time_once(tmp_path, demo_db):
    def every_minute(data: dict) -> None:
        alerts = data["reports"]["cs_daily_alerts"]
        alerts["schedule"] = {"cron": "* * * * *", "timezone": "UTC", "grace": "3 minutes", "coalesce": False}
        data["reports"] = {"cs_daily_alerts": alerts}

    config = demo_folder(tmp_path / "cfg", demo_db, every_minute)
    out = tmp_path / "out"
    servers = [_start(config, out, tmp_path / f"serve{i}.log", json_logs=i == 1) for i in range(2)]
    try:
        assert _until(
            lambda: len(_runs(config)) >= 3 and all(r[2] != "running" for r in _runs(config)), 90, 0.2
        )
    finally:
        for server in servers:
            server.send_signal(signal.SIGTERM)
        codes = [server.wait(30) for server in servers]
    runs = _runs(config)
    fires = [(job, fire) for job, fire, _, _ in runs]
    assert len(fires) == len(set(fires)) >= 3, runs
    assert codes == [0, 0]
    events = [json.loads(line) for line in (tmp_path / "serve1.log").read_text().splitlines()]
    assert {"serve", "stopping", "stopped"} <= {e.get("event") for e in events}
    assert all({"time", "level", "message"} <= e.keys() for e in events)
    # The same as-of date's deliveries went out once, by whichever run came first.
    rows = Store(config.parent / "data" / "herald.sqlite").deliveries()
    filed = Counter((r.channel, r.recipient) for r in rows if r.status == "filed")
    assert filed and max(filed.values()) == 1


@pytest.fixture
def pinned(tmp_path, demo_db):
    """A server in this process with a clock the test moves; jobs deliver to the outbox."""

    def only_alerts(data: dict) -> None:
        alerts = data["reports"]["cs_daily_alerts"]
        alerts["schedule"] = {"cron": "0 7 * * *", "timezone": "Europe/London", "grace": "6 hours"}
        data["reports"] = {"cs_daily_alerts": alerts}

    config = demo_folder(tmp_path / "cfg", demo_db, only_alerts)
    clock = [datetime(2026, 11, 23, 7, 5, tzinfo=UTC)]
    server = Server(config, tmp_path / "out", now=lambda: clock[0])
    return server, clock, Store(config.parent / "data" / "herald.sqlite")


def test_a_stop_asked_for_between_passes_is_not_slept_through(pinned, monkeypatch):
    """SIGTERM just after a pass (here: while the loop reads its config to plan its sleep) cuts
    the sleep short, rather than leaving the server asleep for up to 30 s before it stops."""
    server, _, store = pinned
    real, calls, woken = server.config, [], []

    def config():
        calls.append(1)
        if len(calls) == 3:  # the read after the first pass: what the signal handler does
            server.stop.set()
            server.wake.set()
        return real()

    def sleep(moment, wake, now) -> bool:
        woken.append(wake.is_set())  # set: the sleep ends at once
        return wake.wait(2)

    monkeypatch.setattr(server, "config", config)
    monkeypatch.setattr(server, "sleep", sleep)
    monkeypatch.setattr(server, "_handle_signals", lambda: None)
    assert server.serve() == 0
    assert woken == [True] and len(calls) == 3
    assert [r.status for r in store.runs()] == ["ok"]


def test_a_fire_time_runs_once_with_the_as_of_date_it_was_scheduled_for(pinned):
    server, _, store = pinned
    server.tick()
    server.tick()
    (run,) = store.runs()
    assert (run.job, run.scheduled_for, run.as_of, run.status) == (
        "cs_daily_alerts",
        "2026-11-23T07:00:00+00:00",
        "2026-11-22",
        "ok",
    )


def test_missed_runs_catch_up_within_grace_coalesced_and_older_ones_are_recorded(pinned):
    server, clock, store = pinned
    server.tick()
    clock[0] = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)  # down for three days; back at 09:00
    server.tick()
    runs = {r.scheduled_for[:10]: r for r in store.runs()}
    assert {day: r.status for day, r in runs.items()} == {
        "2026-11-23": "ok",
        "2026-11-24": "missed",
        "2026-11-25": "missed",
        "2026-11-26": "ok",
    }
    assert runs["2026-11-26"].as_of == "2026-11-25"


def test_a_run_stuck_past_its_timeout_is_failed_and_its_owners_told(pinned):
    server, clock, store = pinned
    stuck = store.claim(
        "cs_daily_alerts",
        datetime(2026, 11, 23, 7, 0, tzinfo=UTC),
        "2026-11-22",
        "elsewhere:1",
        timedelta(hours=9),
    )
    assert stuck is not None
    clock[0] = datetime.now(UTC) + timedelta(hours=2)  # its holder still renews its lease, but works on
    server._unfinished(load_config(server.config_path), store)
    run = store.run(stuck.id)
    assert run.status == "failed" and "still working after 1h 00m" in run.error
    notices = store.deliveries([stuck.id])
    assert [(d.recipient, d.status) for d in notices] == [("data-team@example.com", "filed")]
