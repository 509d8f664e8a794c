"""The store: the one place Herald remembers runs and deliveries (a SQLite file).

A run is identified by (job, scheduled_for) when the scheduler starts it, and claimed by one
process at a time with a lease it renews while it works; a lease that runs out lets another
process take the run over. A delivery is identified by (job, as-of date, channel, recipient):
its message is written to disk before its first try, so a restarted Herald sends exactly what
the crashed one meant to, and one that already went out is not sent again.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from reports.errors import HeraldError

VERSION = 2
SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    job TEXT NOT NULL,
    as_of TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    status TEXT NOT NULL,            -- running, ok, failed, missed
    findings INTEGER,
    error TEXT,
    scheduled_for TEXT,              -- the nominal fire time (UTC) of a scheduled run, NULL from the CLI
    lease_owner TEXT,                -- the process working on it
    lease_until TEXT,                -- another process may take the run over after this
    planned INTEGER NOT NULL DEFAULT 0  -- 1 once every delivery of the run is recorded
);
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs(id),
    channel TEXT NOT NULL,
    recipient TEXT NOT NULL,
    status TEXT NOT NULL,            -- pending, sending, sent, filed, retrying, failed
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    provider_id TEXT,                -- Slack ts, SMTP Message-ID, outbox file
    content_hash TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    address TEXT,                    -- where it is sent (the log shows `recipient`)
    message TEXT,                    -- the file holding the rendered message
    alerts TEXT,                     -- JSON ids of the alerts the message told of (for Slack threads)
    UNIQUE (run_id, channel, recipient)
);
"""
INDEXES = "CREATE UNIQUE INDEX IF NOT EXISTS runs_by_fire_time ON runs (job, scheduled_for);"
# Columns added since the first store, for stores written by an earlier Herald.
ADDED = {
    "runs": [
        "scheduled_for TEXT",
        "lease_owner TEXT",
        "lease_until TEXT",
        "planned INTEGER NOT NULL DEFAULT 0",
    ],
    "deliveries": ["address TEXT", "message TEXT", "alerts TEXT"],
}
DONE = ("sent", "filed")  # a delivery in one of these states is never sent again on its own


class StoreError(HeraldError):
    """The store cannot be read or written: the disk is full, the file is not a store..."""


@contextmanager
def _faults(path: Path) -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as exc:
        raise _fault(path, exc) from None
    except OSError as exc:
        raise StoreError(
            f"the store {path} cannot be written: {exc.strerror or exc}",
            "free disk space, fix its folder's permissions, or set `store:` to another file",
        ) from None


def _fault(path: Path, exc: sqlite3.Error) -> StoreError:
    text = str(exc)
    if "not a database" in text or "malformed" in text:
        return StoreError(
            f"{path} is not a Herald store ({text})", "move the file away, or set `store:` to another file"
        )
    return StoreError(
        f"the store {path} cannot be used: {text}",
        "free disk space or fix the file's permissions; nothing was sent that it did not record",
    )


def process_id() -> str:
    """Who holds a lease: this host and process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def holder_is_dead(owner: str | None) -> bool:
    """Whether a lease's holder is a process on this host that no longer exists."""
    host, _, pid = (owner or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def now_utc() -> datetime:
    return datetime.now(UTC)


def _stamp(moment: datetime | None = None) -> str:
    return (moment or now_utc()).astimezone(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Planned:
    """A delivery about to be recorded: where it goes and the file its message is kept in."""

    channel: str
    recipient: str
    address: str
    content_hash: str
    message: str
    alerts: tuple[int, ...] = ()


@dataclass(frozen=True)
class DeliveryRow:
    id: int
    run_id: int
    job: str
    as_of: str
    channel: str
    recipient: str
    status: str
    attempts: int
    last_error: str | None
    provider_id: str | None
    content_hash: str
    updated_at: str
    address: str | None
    message: str | None


@dataclass(frozen=True)
class RunRow:
    id: int
    job: str
    as_of: str
    started_at: str
    finished_at: str | None
    status: str
    findings: int | None
    error: str | None
    scheduled_for: str | None
    lease_owner: str | None
    lease_until: str | None
    planned: int


RUN_COLUMNS = ", ".join(f"r.{name}" for name in RunRow.__dataclass_fields__)
DELIVERY_COLUMNS = (
    "d.id, d.run_id, r.job, r.as_of, d.channel, d.recipient, d.status, d.attempts, d.last_error, "
    "d.provider_id, d.content_hash, d.updated_at, d.address, d.message"
)


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.messages = path.with_name(path.name + ".messages")  # rendered messages, by content
        with _faults(path):
            path.parent.mkdir(parents=True, exist_ok=True)
            self._make()

    def _make(self) -> None:
        with closing(sqlite3.connect(self.path, timeout=30, isolation_level=None)) as db:
            (version,) = db.execute("PRAGMA user_version").fetchone()
            if version >= VERSION:
                return  # made already; many processes open it, and only a writer may change it
            if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                db.execute("PRAGMA journal_mode=WAL")  # persistent: readers never wait for a writer
            db.execute("BEGIN IMMEDIATE")
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            for table, columns in ADDED.items():
                have = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
                for column in columns:
                    if column.split()[0] not in have:
                        db.execute(f"ALTER TABLE {table} ADD COLUMN {column}")
            db.execute(INDEXES)
            db.execute(f"PRAGMA user_version = {VERSION}")
            db.execute("COMMIT")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One transaction; BEGIN IMMEDIATE so a read-then-write (a claim) is atomic between processes."""
        with _faults(self.path):
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            db.execute("PRAGMA synchronous=FULL")
            db.execute("BEGIN IMMEDIATE")
            try:
                with _faults(self.path):
                    yield db
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            with _faults(self.path):
                db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise _fault(self.path, exc) from None
        finally:
            db.close()

    # Runs -------------------------------------------------------------------------------------

    def start_run(
        self, job: str, as_of: str, owner: str | None = None, lease: timedelta | None = None
    ) -> int:
        """A run started by hand (`run.py run`): no fire time, so nothing else can claim it."""
        with self.transaction() as db:
            cursor = db.execute(
                "INSERT INTO runs (job, as_of, started_at, status, lease_owner, lease_until) "
                "VALUES (?, ?, ?, 'running', ?, ?)",
                (job, as_of, _stamp(), owner, _stamp(now_utc() + lease) if lease else None),
            )
            return int(cursor.lastrowid or 0)

    def claim(
        self, job: str, scheduled_for: datetime, as_of: str, owner: str, lease: timedelta
    ) -> RunRow | None:
        """Take (job, scheduled_for) for `owner`: a new run, or one whose holder's lease ran out.
        None when another process holds it or it has finished."""
        fire, now = _stamp(scheduled_for), now_utc()
        with self.transaction() as db:
            row = db.execute(
                f"SELECT {RUN_COLUMNS} FROM runs r WHERE job = ? AND scheduled_for = ?", (job, fire)
            ).fetchone()
            if row is None:
                db.execute(
                    "INSERT INTO runs (job, as_of, started_at, status, scheduled_for, lease_owner, "
                    "lease_until) VALUES (?, ?, ?, 'running', ?, ?, ?)",
                    (job, as_of, _stamp(now), fire, owner, _stamp(now + lease)),
                )
            else:
                run = RunRow(*row)
                if run.status != "running" or (run.lease_until or "") > _stamp(now):
                    return None
                db.execute(
                    "UPDATE runs SET lease_owner = ?, lease_until = ? WHERE id = ?",
                    (owner, _stamp(now + lease), run.id),
                )
            return RunRow(
                *db.execute(
                    f"SELECT {RUN_COLUMNS} FROM runs r WHERE job = ? AND scheduled_for = ?", (job, fire)
                ).fetchone()
            )

    def record_missed(self, job: str, scheduled_for: datetime, as_of: str) -> None:
        """A fire time that passed while no Herald was running, too long ago to catch up."""
        with self.transaction() as db:
            db.execute(
                "INSERT INTO runs (job, as_of, started_at, finished_at, status, scheduled_for, error) "
                "VALUES (?, ?, ?, ?, 'missed', ?, 'Herald was not running; past the grace period') "
                "ON CONFLICT (job, scheduled_for) DO NOTHING",
                (job, as_of, _stamp(), _stamp(), _stamp(scheduled_for)),
            )

    def renew(self, run_id: int, owner: str, lease: timedelta) -> bool:
        """Extend `owner`'s lease on a run; False when it has lost the run to another process."""
        with self.transaction() as db:
            cursor = db.execute(
                "UPDATE runs SET lease_until = ? WHERE id = ? AND lease_owner = ? AND status = 'running'",
                (_stamp(now_utc() + lease), run_id, owner),
            )
            return cursor.rowcount == 1

    def take_over(self, run_id: int, owner: str, lease: timedelta, force: bool = False) -> bool:
        """Claim a running run whose holder's lease ran out (or, with `force`, whose holder is
        known to be dead); False when another process got there first."""
        with self.transaction() as db:
            cursor = db.execute(
                "UPDATE runs SET lease_owner = ?, lease_until = ? WHERE id = ? AND status = 'running' "
                "AND (? OR lease_until IS NULL OR lease_until <= ?)",
                (owner, _stamp(now_utc() + lease), run_id, force, _stamp()),
            )
            return cursor.rowcount == 1

    def release(self, run_id: int, owner: str) -> None:
        """Give a run up unfinished (Herald is stopping): the next process resumes it at once."""
        with self.transaction() as db:
            db.execute(
                "UPDATE runs SET lease_until = ? WHERE id = ? AND lease_owner = ? AND status = 'running'",
                (_stamp(), run_id, owner),
            )

    def unfinished(self) -> list[RunRow]:
        """Every run still marked running, oldest first."""
        with self.transaction() as db:
            rows = db.execute(
                f"SELECT {RUN_COLUMNS} FROM runs r WHERE status = 'running' ORDER BY id"
            ).fetchall()
        return [RunRow(*row) for row in rows]

    def mark_planned(self, run_id: int) -> None:
        with self.transaction() as db:
            db.execute("UPDATE runs SET planned = 1 WHERE id = ?", (run_id,))

    def finish_run(
        self, run_id: int, status: str, findings: int | None = None, error: str | None = None
    ) -> None:
        with self.transaction() as db:
            db.execute(  # a run already ended (marked failed as stuck) keeps that verdict
                "UPDATE runs SET finished_at = ?, status = ?, findings = ?, error = ?, lease_until = NULL "
                "WHERE id = ? AND status = 'running'",
                (_stamp(), status, findings, error, run_id),
            )

    def last_fire(self, job: str) -> datetime | None:
        """The newest fire time of `job` that any process claimed or recorded."""
        with self.transaction() as db:
            (value,) = db.execute("SELECT MAX(scheduled_for) FROM runs WHERE job = ?", (job,)).fetchone()
        return datetime.fromisoformat(value) if value else None

    def ran(self, job: str, as_of: str) -> bool:
        """Whether a run of `job` for `as_of` finished (whatever its outcome)."""
        with self.transaction() as db:
            row = db.execute(
                "SELECT 1 FROM runs WHERE job = ? AND as_of = ? AND status IN ('ok', 'failed') LIMIT 1",
                (job, as_of),
            ).fetchone()
        return row is not None

    def run(self, run_id: int) -> RunRow:
        with self.transaction() as db:
            return RunRow(*db.execute(f"SELECT {RUN_COLUMNS} FROM runs r WHERE id = ?", (run_id,)).fetchone())

    def runs(self, job: str | None = None, limit: int = 20, status: str | None = None) -> list[RunRow]:
        where, params = [], []
        if job:
            where.append("job = ?")
            params.append(job)
        if status:
            where.append("status = ?")
            params.append(status)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        with self.transaction() as db:
            rows = db.execute(
                f"SELECT {RUN_COLUMNS} FROM runs r {clause} ORDER BY id DESC LIMIT ?", [*params, limit]
            ).fetchall()
        return [RunRow(*row) for row in rows]

    # Deliveries -------------------------------------------------------------------------------

    def keep_message(self, content_hash: str, data: bytes) -> str:
        """Write a rendered message durably (fsynced, then renamed into place); returns its file."""
        with _faults(self.messages):
            return self._keep(content_hash, data)

    def _keep(self, content_hash: str, data: bytes) -> str:
        self.messages.mkdir(parents=True, exist_ok=True)
        path = self.messages / f"{content_hash}.json"
        if not path.exists():
            partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
            with open(partial, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(partial, path)
        return str(path)

    def add_deliveries(
        self,
        run_id: int,
        job: str,
        as_of: str,
        planned: list[Planned],
        resend: bool = False,
        filing: frozenset[str] | set[str] = frozenset(),
    ) -> list[int | DeliveryRow]:
        """Record a run's deliveries before any is tried, in one transaction, so that two processes
        working on one (job, as-of) cannot both take the same delivery. For each planned delivery:
        its row id, or the row that holds it back — one that went out (sent; filed, where the outbox
        stands in for the channel) or one another unfinished run is sending. `resend` skips none."""
        with self.transaction() as db:
            holding: dict[tuple[str, str], DeliveryRow] = {}
            if not resend:
                rows = db.execute(
                    f"SELECT {DELIVERY_COLUMNS} FROM deliveries d JOIN runs r ON r.id = d.run_id "
                    "WHERE r.job = ? AND r.as_of = ? AND d.run_id != ? AND (d.status IN ('sent', 'filed') "
                    "OR (r.status = 'running' AND d.status IN ('pending', 'retrying'))) ORDER BY d.id",
                    (job, as_of, run_id),
                ).fetchall()
                for row in (DeliveryRow(*r) for r in rows):
                    key = (row.channel, row.recipient)
                    if row.status == "filed" and row.channel not in filing:
                        continue  # a dry run's copy never holds back the real delivery
                    if key not in holding or row.status == "sent":
                        holding[key] = row
            results: list[int | DeliveryRow] = []
            for item in planned:
                held = holding.get((item.channel, item.recipient))
                if held is not None:
                    results.append(held)
                    continue
                db.execute(
                    "INSERT INTO deliveries (run_id, channel, recipient, status, content_hash, updated_at, "
                    "address, message, alerts) VALUES (?, ?, ?, 'pending', ?, ?, ?, ?, ?) "
                    "ON CONFLICT (run_id, channel, recipient) DO NOTHING",
                    (
                        run_id,
                        item.channel,
                        item.recipient,
                        item.content_hash,
                        _stamp(),
                        item.address,
                        item.message,
                        json.dumps(list(item.alerts)) if item.alerts else None,
                    ),
                )
                (row_id,) = db.execute(
                    "SELECT id FROM deliveries WHERE run_id = ? AND channel = ? AND recipient = ?",
                    (run_id, item.channel, item.recipient),
                ).fetchone()
                results.append(int(row_id))
            return results

    def update_delivery(
        self,
        delivery_id: int,
        status: str,
        *,
        attempts: int,
        error: str | None = None,
        provider_id: str | None = None,
    ) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE deliveries SET status = ?, attempts = ?, last_error = ?, provider_id = ?, "
                "updated_at = ? WHERE id = ?",
                (status, attempts, error, provider_id, _stamp(), delivery_id),
            )

    def delivered(self, job: str, as_of: str) -> set[tuple[str, str]]:
        """(channel, recipient) of what went out for (job, as-of), from any run."""
        with self.transaction() as db:
            rows = db.execute(
                "SELECT d.channel, d.recipient FROM deliveries d JOIN runs r ON r.id = d.run_id "
                f"WHERE r.job = ? AND r.as_of = ? AND d.status IN {DONE}",
                (job, as_of),
            ).fetchall()
        return {(channel, recipient) for channel, recipient in rows}

    def deliveries(
        self, run_ids: list[int] | None = None, statuses: tuple[str, ...] | None = None
    ) -> list[DeliveryRow]:
        where, params = [], []
        if run_ids is not None:
            where.append(f"d.run_id IN ({','.join('?' * len(run_ids))})")
            params += run_ids
        if statuses:
            where.append(f"d.status IN ({','.join('?' * len(statuses))})")
            params += statuses
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        with self.transaction() as db:
            rows = db.execute(
                f"SELECT {DELIVERY_COLUMNS} FROM deliveries d JOIN runs r ON r.id = d.run_id "
                f"{clause} ORDER BY d.id",
                params,
            ).fetchall()
        return [DeliveryRow(*row) for row in rows]
