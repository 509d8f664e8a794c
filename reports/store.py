"""The store: the one place Herald remembers runs and deliveries (a SQLite file)."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    job TEXT NOT NULL,
    as_of TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    status TEXT NOT NULL,            -- running, ok, failed
    findings INTEGER,
    error TEXT
);
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs(id),
    channel TEXT NOT NULL,
    recipient TEXT NOT NULL,
    status TEXT NOT NULL,            -- pending, sent, retrying, failed
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    provider_id TEXT,                -- Slack ts, SMTP Message-ID, outbox file
    content_hash TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (run_id, channel, recipient)
);
"""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


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


class Store:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        with closing(self._connect()) as db, db:
            db.executescript(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30)
        db.execute("PRAGMA journal_mode=WAL")
        return db

    def start_run(self, job: str, as_of: str) -> int:
        with closing(self._connect()) as db, db:
            cursor = db.execute(
                "INSERT INTO runs (job, as_of, started_at, status) VALUES (?, ?, ?, 'running')",
                (job, as_of, _now()),
            )
            return int(cursor.lastrowid or 0)

    def finish_run(
        self, run_id: int, status: str, findings: int | None = None, error: str | None = None
    ) -> None:
        with closing(self._connect()) as db, db:
            db.execute(
                "UPDATE runs SET finished_at = ?, status = ?, findings = ?, error = ? WHERE id = ?",
                (_now(), status, findings, error, run_id),
            )

    def add_delivery(self, run_id: int, channel: str, recipient: str, content_hash: str) -> int:
        with closing(self._connect()) as db, db:
            cursor = db.execute(
                "INSERT INTO deliveries (run_id, channel, recipient, status, content_hash, updated_at) "
                "VALUES (?, ?, ?, 'pending', ?, ?) ON CONFLICT (run_id, channel, recipient) "
                "DO UPDATE SET content_hash = excluded.content_hash RETURNING id",
                (run_id, channel, recipient, content_hash, _now()),
            )
            return int(cursor.fetchone()[0])

    def update_delivery(
        self,
        delivery_id: int,
        status: str,
        *,
        attempts: int,
        error: str | None = None,
        provider_id: str | None = None,
    ) -> None:
        with closing(self._connect()) as db, db:
            db.execute(
                "UPDATE deliveries SET status = ?, attempts = ?, last_error = ?, provider_id = ?, "
                "updated_at = ? WHERE id = ?",
                (status, attempts, error, provider_id, _now(), delivery_id),
            )

    def runs(self, job: str | None = None, limit: int = 20) -> list[RunRow]:
        where, params = ("WHERE job = ?", [job]) if job else ("", [])
        with closing(self._connect()) as db:
            rows = db.execute(
                f"SELECT id, job, as_of, started_at, finished_at, status, findings, error FROM runs "
                f"{where} ORDER BY id DESC LIMIT ?",
                [*params, limit],
            ).fetchall()
        return [RunRow(*row) for row in rows]

    def deliveries(self, run_ids: list[int] | None = None) -> list[DeliveryRow]:
        where = f"WHERE d.run_id IN ({','.join('?' * len(run_ids))})" if run_ids else ""
        with closing(self._connect()) as db:
            rows = db.execute(
                "SELECT d.id, d.run_id, r.job, r.as_of, d.channel, d.recipient, d.status, d.attempts, "
                f"d.last_error, d.provider_id, d.content_hash, d.updated_at FROM deliveries d "
                f"JOIN runs r ON r.id = d.run_id {where} ORDER BY d.id",
                run_ids or [],
            ).fetchall()
        return [DeliveryRow(*row) for row in rows]
