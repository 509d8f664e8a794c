"""The archive's part of the store: every output file a run wrote (so the archive serves files by
id, never by a path from a request), and the audit log of who downloaded or silenced what.

The tables are made on first use, like the alert book's; the SQL is SQLite's words with `?`
placeholders, which a PostgreSQL store translates.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from reports.store.base import Database, _stamp

SCHEMA = """
CREATE TABLE IF NOT EXISTS outputs (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs(id),
    recipient TEXT NOT NULL,         -- the recipient's key; 'all' for everyone's report
    label TEXT NOT NULL,             -- the recipient's name, as reports show it
    folder TEXT NOT NULL,            -- the recipient's sub-folder of the run's; '' for everyone's
    email TEXT,                      -- where the recipient is reached (lower case), for who may see it
    slack TEXT,
    entities TEXT,                   -- JSON list of the recipient's entities; NULL: every entity
    name TEXT NOT NULL,              -- the file's name
    path TEXT NOT NULL,              -- where Herald wrote it (never taken from a request)
    media_type TEXT NOT NULL,
    size INTEGER,
    created TEXT NOT NULL,
    pruned TEXT                      -- when retention deleted the file; the row stays
);
CREATE INDEX IF NOT EXISTS outputs_by_run ON outputs (run_id);
CREATE INDEX IF NOT EXISTS outputs_by_email ON outputs (email);
CREATE INDEX IF NOT EXISTS outputs_by_slack ON outputs (slack);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    who TEXT NOT NULL,               -- the signed-in address, or 'herald' for its own work
    action TEXT NOT NULL,            -- signin, view, download, silence, unsilence, token, prune
    target TEXT NOT NULL,            -- what it was done to, e.g. 'output 12'
    detail TEXT,
    client TEXT                      -- the address the request came from
);
CREATE INDEX IF NOT EXISTS audit_by_action ON audit (action, at);
"""
EVERYONE = "all"  # the recipient key of everyone's report


@dataclass(frozen=True)
class OutputRow:
    id: int
    run_id: int
    recipient: str
    label: str
    folder: str
    email: str | None
    slack: str | None
    entities: str | None
    name: str
    path: str
    media_type: str
    size: int | None
    created: str
    pruned: str | None

    @property
    def entity_ids(self) -> list[str] | None:
        return None if self.entities is None else list(json.loads(self.entities))


@dataclass(frozen=True)
class AuditRow:
    id: int
    at: str
    who: str
    action: str
    target: str
    detail: str | None
    client: str | None


@dataclass(frozen=True)
class NewOutput:
    """An output file about to be recorded."""

    recipient: str
    label: str
    folder: str
    email: str | None
    slack: str | None
    entities: Sequence[str] | None
    name: str
    path: str
    media_type: str
    size: int | None


OUTPUT_COLUMNS = ", ".join(f"o.{f.name}" for f in fields(OutputRow))
AUDIT_COLUMNS = ", ".join(f.name for f in fields(AuditRow))


class Archive:
    """Outputs and the audit log, in a store's database."""

    def __init__(self, store: Database) -> None:
        self.store = store
        store.create_tables(SCHEMA)

    def record_outputs(self, run_id: int, outputs: Iterable[NewOutput]) -> int:
        """Record a run's output files, in one transaction; how many were recorded."""
        created, count = _stamp(), 0
        with self.store.transaction() as db:
            for o in outputs:
                db.execute(
                    "INSERT INTO outputs (run_id, recipient, label, folder, email, slack, entities, name, "
                    "path, media_type, size, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        run_id,
                        o.recipient,
                        o.label,
                        o.folder,
                        o.email.lower() if o.email else None,
                        o.slack.lower() if o.slack else None,
                        None if o.entities is None else json.dumps(list(o.entities)),
                        o.name,
                        o.path,
                        o.media_type,
                        o.size,
                        created,
                    ),
                )
                count += 1
        return count

    def select_outputs(self, where: str = "", params: Sequence[Any] = (), limit: int | None = None) -> list:
        """Outputs joined with their run (`r`), filtered by a clause on `o` and `r`; newest first."""
        clause = f"WHERE {where}" if where else ""
        tail = " LIMIT ?" if limit else ""
        with self.store.transaction(lock=False) as db:
            rows = db.execute(
                f"SELECT {OUTPUT_COLUMNS} FROM outputs o JOIN runs r ON r.id = o.run_id {clause} "
                f"ORDER BY o.id DESC{tail}",
                [*params, limit] if limit else list(params),
            ).fetchall()
        return [OutputRow(*row) for row in rows]

    def output(self, output_id: int) -> OutputRow | None:
        found = self.select_outputs("o.id = ?", (output_id,))
        return found[0] if found else None

    def output_ids(self) -> list[int]:
        with self.store.transaction(lock=False) as db:
            return [int(i) for (i,) in db.execute("SELECT id FROM outputs ORDER BY id").fetchall()]

    def older_than(self, moment: datetime) -> list[OutputRow]:
        """Outputs recorded before `moment` whose files retention has not deleted yet."""
        return self.select_outputs("o.created < ? AND o.pruned IS NULL", (_stamp(moment),))

    def mark_pruned(self, output_ids: list[int]) -> None:
        if not output_ids:
            return
        with self.store.transaction() as db:
            for start in range(0, len(output_ids), 500):
                chunk = output_ids[start : start + 500]
                db.execute(
                    f"UPDATE outputs SET pruned = ? WHERE id IN ({','.join('?' * len(chunk))})",
                    [_stamp(), *chunk],
                )

    # The audit log ----------------------------------------------------------------------------

    def audit(
        self,
        who: str,
        action: str,
        target: str,
        detail: str | None = None,
        client: str | None = None,
        at: datetime | None = None,
    ) -> None:
        with self.store.transaction(lock=False) as db:
            db.execute(
                "INSERT INTO audit (at, who, action, target, detail, client) VALUES (?, ?, ?, ?, ?, ?)",
                (_stamp(at), who, action, target, detail, client),
            )

    def audit_log(
        self,
        limit: int = 50,
        before: int | None = None,
        action: str | None = None,
        who: str | None = None,
    ) -> list[AuditRow]:
        """The audit log, newest first; `before` is an id to page from."""
        where, params = [], []
        for column, value in (("action", action), ("who", who)):
            if value:
                where.append(f"{column} = ?")
                params.append(value)
        if before is not None:
            where.append("id < ?")
            params.append(before)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        with self.store.transaction(lock=False) as db:
            rows = db.execute(
                f"SELECT {AUDIT_COLUMNS} FROM audit {clause} ORDER BY id DESC LIMIT ?", [*params, limit]
            ).fetchall()
        return [AuditRow(*row) for row in rows]

    def last(self, action: str) -> str | None:
        """When `action` was last logged."""
        with self.store.transaction(lock=False) as db:
            (value,) = db.execute("SELECT MAX(at) FROM audit WHERE action = ?", (action,)).fetchone()
        return value
