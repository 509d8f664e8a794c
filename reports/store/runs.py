"""Runs: started by hand or claimed by a scheduler under a lease, finished once."""

from __future__ import annotations

from datetime import datetime, timedelta

from reports.store.base import Database, _stamp, now_utc
from reports.store.schema import RUN_COLUMNS, RunRow


class Runs(Database):
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
        with self.transaction(lock=False) as db:
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
        with self.transaction(lock=False) as db:
            (value,) = db.execute("SELECT MAX(scheduled_for) FROM runs WHERE job = ?", (job,)).fetchone()
        return datetime.fromisoformat(value) if value else None

    def ran(self, job: str, as_of: str) -> bool:
        """Whether a run of `job` for `as_of` finished (whatever its outcome)."""
        with self.transaction(lock=False) as db:
            row = db.execute(
                "SELECT 1 FROM runs WHERE job = ? AND as_of = ? AND status IN ('ok', 'failed') LIMIT 1",
                (job, as_of),
            ).fetchone()
        return row is not None

    def run(self, run_id: int) -> RunRow:
        with self.transaction(lock=False) as db:
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
        with self.transaction(lock=False) as db:
            rows = db.execute(
                f"SELECT {RUN_COLUMNS} FROM runs r {clause} ORDER BY id DESC LIMIT ?", [*params, limit]
            ).fetchall()
        return [RunRow(*row) for row in rows]
