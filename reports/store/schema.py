"""The store's tables, and the rows Herald reads back from them.

Written once, in SQLite's words; a PostgreSQL store translates them (reports/store/backends.py),
so a table added here, `id INTEGER PRIMARY KEY` and all, is made on both.
"""

from __future__ import annotations

from dataclasses import dataclass

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
    message TEXT,                    -- where the rendered message is kept (Deliveries.read_message)
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


@dataclass(frozen=True)
class Planned:
    """A delivery about to be recorded: where it goes and where its message is kept."""

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
