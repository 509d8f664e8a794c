"""The alert book: each (job, rule, entity) alert's state, and the silences, kept in the store.

An alert is `pending` while its condition has held for fewer runs than the rule's `for:`, then
`firing`, then `resolved` on the first run it no longer holds. Dates are the runs' as-of dates,
so the book reads the same whenever a run is repeated.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from datetime import datetime

from reports.store import Store, now_utc

SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY,
    job TEXT NOT NULL,
    rule TEXT NOT NULL,
    entity TEXT NOT NULL,            -- "" for an alert about a whole table
    entity_name TEXT NOT NULL,
    owner TEXT NOT NULL DEFAULT '',
    severity TEXT NOT NULL,
    message TEXT NOT NULL,
    state TEXT NOT NULL,             -- pending, firing, resolved
    streak INTEGER NOT NULL,         -- runs in a row its condition held
    since TEXT,                      -- as-of date it started firing
    last_seen TEXT NOT NULL,         -- as-of date its condition last held
    notified TEXT,                   -- as-of date its owners were last told
    resolved TEXT,                   -- as-of date it resolved
    escalated TEXT,                  -- as-of date it was escalated
    evaluated TEXT NOT NULL,         -- as-of date of the last run that looked at it
    UNIQUE (job, rule, entity)
);
CREATE TABLE IF NOT EXISTS silences (
    id INTEGER PRIMARY KEY,
    rule TEXT NOT NULL,
    entity TEXT,                     -- NULL: every entity of the rule
    starts TEXT NOT NULL,
    ends TEXT NOT NULL,
    reason TEXT NOT NULL,
    created TEXT NOT NULL
);
"""


@dataclass
class Alert:
    id: int
    job: str
    rule: str
    entity: str
    entity_name: str
    owner: str
    severity: str
    message: str
    state: str
    streak: int
    since: str | None
    last_seen: str
    notified: str | None
    resolved: str | None
    escalated: str | None
    evaluated: str


@dataclass(frozen=True)
class Silence:
    id: int
    rule: str
    entity: str | None
    starts: str
    ends: str
    reason: str
    created: str

    def covers(self, rule: str, entity: str, entity_name: str, moment: datetime) -> bool:
        if self.rule != rule or self.entity not in (None, entity, entity_name):
            return False
        return datetime.fromisoformat(self.starts) <= moment < datetime.fromisoformat(self.ends)


ALERT_COLUMNS = ", ".join(f.name for f in fields(Alert))
SILENCE_COLUMNS = ", ".join(f.name for f in fields(Silence))


class AlertBook:
    def __init__(self, store: Store) -> None:
        self.store = store
        store.create_tables(SCHEMA)

    # Alerts -----------------------------------------------------------------------------------

    def alerts(self, job: str | None = None, states: tuple[str, ...] | None = None) -> list[Alert]:
        where, params = [], []
        if job:
            where.append("job = ?")
            params.append(job)
        if states:
            where.append(f"state IN ({','.join('?' * len(states))})")
            params += states
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        with self.store.transaction(lock=False) as db:
            rows = db.execute(f"SELECT {ALERT_COLUMNS} FROM alerts {clause} ORDER BY id", params).fetchall()
        return [Alert(*row) for row in rows]

    def latest_evaluation(self, job: str) -> str | None:
        with self.store.transaction(lock=False) as db:
            (value,) = db.execute("SELECT MAX(evaluated) FROM alerts WHERE job = ?", (job,)).fetchone()
        return value

    def save(self, alerts: list[Alert], removed: list[int]) -> list[Alert]:
        """Write alerts (id 0: new) and drop the `removed` ones, in one transaction; the saved
        alerts come back with their ids."""
        names = [f.name for f in fields(Alert) if f.name != "id"]
        saved = []
        with self.store.transaction() as db:
            if removed:
                db.execute(f"DELETE FROM alerts WHERE id IN ({','.join('?' * len(removed))})", removed)
            for alert in alerts:
                values = [getattr(alert, name) for name in names]
                if alert.id:
                    assignments = ", ".join(f"{name} = ?" for name in names)
                    db.execute(f"UPDATE alerts SET {assignments} WHERE id = ?", [*values, alert.id])
                else:
                    cursor = db.execute(
                        f"INSERT INTO alerts ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                        values,
                    )
                    alert.id = int(cursor.lastrowid or 0)
                saved.append(alert)
        return saved

    def mark(self, ids: list[int], column: str, as_of: str) -> None:
        """Record that the `ids` were notified or escalated on `as_of`."""
        assert column in ("notified", "escalated")
        if not ids:
            return
        with self.store.transaction() as db:
            db.execute(
                f"UPDATE alerts SET {column} = ? WHERE id IN ({','.join('?' * len(ids))})", [as_of, *ids]
            )

    def threads(self, alert_ids: list[int]) -> dict[int, list[tuple[str, str]]]:
        """Where each alert's firing message went on Slack: (address, message ts) pairs."""
        found: dict[int, list[tuple[str, str]]] = {}
        if not alert_ids:
            return found
        with self.store.transaction(lock=False) as db:
            rows = db.execute(
                "SELECT address, provider_id, alerts FROM deliveries WHERE channel = 'slack' "
                "AND status = 'sent' AND alerts IS NOT NULL AND provider_id IS NOT NULL ORDER BY id"
            ).fetchall()
        wanted = set(alert_ids)
        for address, ts, carried in rows:
            for alert_id in set(json.loads(carried)) & wanted:
                found.setdefault(alert_id, []).append((address, ts))
        return found

    # Silences ---------------------------------------------------------------------------------

    def silence(self, rule: str, entity: str | None, starts: datetime, ends: datetime, reason: str) -> int:
        with self.store.transaction() as db:
            cursor = db.execute(
                "INSERT INTO silences (rule, entity, starts, ends, reason, created) VALUES (?, ?, ?, ?, ?, ?)",
                (rule, entity, starts.isoformat(), ends.isoformat(), reason, now_utc().isoformat()),
            )
            return int(cursor.lastrowid or 0)

    def silences(self, moment: datetime | None = None) -> list[Silence]:
        """Silences in force at `moment` (now by default)."""
        moment = moment or now_utc()
        with self.store.transaction(lock=False) as db:
            rows = db.execute(f"SELECT {SILENCE_COLUMNS} FROM silences ORDER BY id").fetchall()
        found = [Silence(*row) for row in rows]
        return [
            s for s in found if datetime.fromisoformat(s.starts) <= moment < datetime.fromisoformat(s.ends)
        ]

    def unsilence(self, silence_id: int) -> bool:
        with self.store.transaction() as db:
            return db.execute("DELETE FROM silences WHERE id = ?", (silence_id,)).rowcount == 1
