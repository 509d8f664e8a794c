"""What the archive shows, one query each, narrowed to what the reader may see: the pages and
`/api/v1` call the same functions and differ only in how they show the answer.

Field names here are the API's (README, "Archive"); keep them stable.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from reports.alerts.book import Alert, AlertBook, Silence
from reports.config.models import HeraldConfig
from reports.store import RunRow, Store, now_utc
from reports.store.archive import EVERYONE, Archive, OutputRow
from reports.store.schema import RUN_COLUMNS
from reports.web.access import Viewer

MAX_LIMIT = 200
SCAN = 2000  # runs looked through for one page filtered by entity
RECENT = timedelta(days=7)  # "resolved recently"


@dataclass(frozen=True)
class RunFilter:
    job: str | None = None
    entity: str | None = None
    start: date | None = None  # as-of from
    end: date | None = None  # as-of to
    status: str | None = None


@dataclass
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"items": self.items, "next_cursor": self.next_cursor}


@lru_cache(maxsize=512)
def _read_findings(path: str, stamp: tuple[int, int]) -> tuple[dict, ...]:
    try:
        return tuple(json.loads(Path(path).read_text(encoding="utf-8")).get("findings", []))
    except (OSError, ValueError, AttributeError):
        return ()


def findings_file(path: str | None) -> tuple[dict, ...]:
    """The findings a run wrote to its findings.json (cached while the file is unchanged)."""
    if not path:
        return ()
    try:
        info = Path(path).stat()
    except OSError:
        return ()
    return _read_findings(path, (info.st_mtime_ns, info.st_size))


class Reading:
    """The archive as one reader sees it."""

    def __init__(self, config: HeraldConfig, store: Store, viewer: Viewer) -> None:
        self.config, self.store, self.viewer = config, store, viewer
        self.archive = Archive(store)

    # Jobs -------------------------------------------------------------------------------------

    def jobs(self, now: datetime | None = None) -> list[dict[str, Any]]:
        now = now or now_utc()
        visible = self._visible_jobs()
        found = []
        for job, report in self.config.reports.items():
            if job not in visible:
                continue
            latest = self.runs(RunFilter(job=job), limit=1).items
            schedule = report.schedule
            found.append(
                {
                    "job": job,
                    "title": report.title or job,
                    "role": report.role,
                    "schedule": schedule.cron or f"every {schedule.every}",
                    "timezone": schedule.timezone or self.config.timezone,
                    "next_run": schedule.trigger(self.config.timezone).after(now).isoformat(),
                    "formats": list(report.formats),
                    "last_run": latest[0] if latest else None,
                }
            )
        return found

    def _visible_jobs(self) -> set[str]:
        if self.viewer.operator:
            return set(self.config.reports)
        clause, params = self.viewer.run_clause()
        with self.store.transaction(lock=False) as db:
            rows = db.execute(f"SELECT DISTINCT r.job FROM runs r WHERE {clause}", params).fetchall()
        return set(self.viewer.jobs) | {job for (job,) in rows}

    # Runs -------------------------------------------------------------------------------------

    def runs(self, where: RunFilter, limit: int = 50, cursor: int | None = None) -> Page:
        """Runs newest first, `limit` at most, from before `cursor` (a run id)."""
        limit = max(1, min(limit, MAX_LIMIT))
        clause, params = self.viewer.run_clause()
        parts, values = [clause], list(params)
        for sql, value in (
            ("r.job = ?", where.job),
            ("r.as_of >= ?", where.start and where.start.isoformat()),
            ("r.as_of <= ?", where.end and where.end.isoformat()),
            ("r.status = ?", where.status),
        ):
            if value:
                parts.append(sql)
                values.append(value)
        items: list[dict[str, Any]] = []
        scanned, last = 0, cursor
        size = limit + 1 if not where.entity else max(limit * 4, 100)
        while scanned < SCAN:
            batch_where = [*parts, "r.id < ?"] if last is not None else parts
            batch_values = [*values, last] if last is not None else values
            with self.store.transaction(lock=False) as db:
                rows = [
                    RunRow(*row)
                    for row in db.execute(
                        f"SELECT {RUN_COLUMNS} FROM runs r WHERE {' AND '.join(batch_where)} "
                        "ORDER BY r.id DESC LIMIT ?",
                        [*batch_values, size],
                    ).fetchall()
                ]
            for run in rows:
                if where.entity and not self._concerns(run, where.entity):
                    last, scanned = run.id, scanned + 1
                    continue
                if len(items) == limit:  # one more than the page holds: there is a next page
                    return Page(items, str(last))
                items.append(self._run(run))
                last, scanned = run.id, scanned + 1
            if len(rows) < size:
                return Page(items, None)
        return Page(items, str(last) if last is not None else None)  # looked far enough for one page

    def run(self, run_id: int) -> dict[str, Any] | None:
        clause, params = self.viewer.run_clause()
        with self.store.transaction(lock=False) as db:
            row = db.execute(
                f"SELECT {RUN_COLUMNS} FROM runs r WHERE r.id = ? AND {clause}", [run_id, *params]
            ).fetchone()
        return self._run(RunRow(*row)) if row else None

    def _whole(self, run: RunRow) -> bool:
        """Whether the reader sees the whole run (every finding), not only their own part."""
        return self.viewer.sees_job(run.job)

    def _run(self, run: RunRow) -> dict[str, Any]:
        whole = self._whole(run)
        deliveries = [
            {
                "id": d.id,
                "channel": d.channel,
                "recipient": d.recipient,
                "status": d.status,
                "attempts": d.attempts,
                "error": d.last_error,
                "updated_at": d.updated_at,
            }
            for d in self.store.deliveries([run.id])
            if self.viewer.delivery_visible(run.job, d.recipient, d.address)
        ]
        return {
            "id": run.id,
            "job": run.job,
            "scheduled_for": run.scheduled_for,
            "as_of": run.as_of,
            "started_at": run.started_at,
            "finished_at": run.finished_at,
            "status": run.status,
            "findings": run.findings if whole else len(self.findings(run.id, run)),
            "error": run.error if whole else None,
            "deliveries": deliveries,
        }

    def _concerns(self, run: RunRow, entity: str) -> bool:
        """Whether a run is about `entity` (its id, or part of its name): a finding, or a report."""
        wanted = entity.strip().casefold()
        for finding in self.findings(run.id, run):
            if (
                wanted in (finding.get("entity") or "").casefold()
                or wanted in (finding.get("entity_name") or "").casefold()
            ):
                return True
        return any(
            wanted in o.label.casefold() or wanted in (o.entity_ids or [])
            for o in self.outputs(run.id)
            if o.recipient != EVERYONE
        )

    # Outputs and findings ---------------------------------------------------------------------

    def outputs(self, run_id: int) -> list[OutputRow]:
        clause, params = self.viewer.output_clause()
        found = self.archive.select_outputs(f"o.run_id = ? AND {clause}", [run_id, *params])
        return sorted(found, key=lambda o: (o.recipient != EVERYONE, o.label.casefold(), o.name))

    def output(self, output_id: int) -> OutputRow | None:
        clause, params = self.viewer.output_clause()
        found = self.archive.select_outputs(f"o.id = ? AND {clause}", [output_id, *params])
        return found[0] if found else None

    def findings(self, run_id: int, run: RunRow | None = None) -> list[dict[str, Any]]:
        """The run's findings the reader may see: every one for a job of theirs, else only those
        about the entities of the reports made for them."""
        run = run or self.store.run(run_id)
        everyone = self.archive.select_outputs(
            "o.run_id = ? AND o.recipient = ? AND o.name = ?", [run_id, EVERYONE, "findings.json"]
        )
        found = findings_file(everyone[0].path if everyone else None)
        if self._whole(run):
            return list(found)
        mine: set[str] = set()
        for output in self.outputs(run_id):
            mine.update(output.entity_ids or [])
        return [f for f in found if f.get("entity") and f["entity"] in mine]

    # Alerts -----------------------------------------------------------------------------------

    def _entities_by_job(self) -> dict[str, set[str]]:
        """The entities of the reports made for this reader, by job."""
        clause, params = self.viewer.output_clause()
        with self.store.transaction(lock=False) as db:
            rows = db.execute(
                f"SELECT DISTINCT r.job, o.entities FROM outputs o JOIN runs r ON r.id = o.run_id "
                f"WHERE o.recipient <> ? AND {clause}",
                [EVERYONE, *params],
            ).fetchall()
        found: dict[str, set[str]] = {}
        for job, entities in rows:
            found.setdefault(job, set()).update(json.loads(entities) if entities else [])
        return found

    def may_see_alert(self, alert: Alert, mine: dict[str, set[str]] | None = None) -> bool:
        if self.viewer.sees_job(alert.job):
            return True
        mine = self._entities_by_job() if mine is None else mine
        return alert.entity in mine.get(alert.job, set())

    def may_silence(self, rule: str, entity: str | None, mine: dict[str, set[str]] | None = None) -> bool:
        """Operators silence anything; an owner, the alerts about their own entities."""
        if self.viewer.operator:
            return True
        if not entity:
            return False
        mine = self._entities_by_job() if mine is None else mine
        return any(entity in entities for entities in mine.values())

    def alerts(self, job: str | None = None, now: datetime | None = None) -> dict[str, list[dict[str, Any]]]:
        """Alerts in four lists: firing, pending, silenced (firing or pending, held back by a
        silence) and resolved in the last week."""
        now = now or now_utc()
        book = AlertBook(self.store)
        silences = book.silences(now)
        mine = {} if self.viewer.operator else self._entities_by_job()
        recent = (now.date() - RECENT).isoformat()
        found: dict[str, list[dict[str, Any]]] = {"firing": [], "pending": [], "silenced": [], "resolved": []}
        for alert in book.alerts(job, ("firing", "pending", "resolved")):
            if not self.may_see_alert(alert, mine):
                continue
            if alert.state == "resolved" and (alert.resolved or "") < recent:
                continue
            held = next(
                (s for s in silences if s.covers(alert.rule, alert.entity, alert.entity_name, now)), None
            )
            shown = alert_dict(alert, held)
            shown["may_silence"] = self.may_silence(alert.rule, alert.entity or None, mine)
            group = "silenced" if held and alert.state != "resolved" else alert.state
            found[group].append(shown)
        return found

    def silences(self, now: datetime | None = None) -> list[dict[str, Any]]:
        """Silences in force that hold back an alert this reader sees (operators: all)."""
        book = AlertBook(self.store)
        found = book.silences(now)
        if self.viewer.operator:
            return [silence_dict(s, True) for s in found]
        mine = self._entities_by_job()
        alerts = [a for a in book.alerts(None, ("firing", "pending")) if self.may_see_alert(a, mine)]
        moment = now or now_utc()
        shown = [s for s in found if any(s.covers(a.rule, a.entity, a.entity_name, moment) for a in alerts)]
        return [silence_dict(s, self.may_silence(s.rule, s.entity, mine)) for s in shown]


def alert_dict(alert: Alert, held: Silence | None) -> dict[str, Any]:
    return {
        "id": alert.id,
        "job": alert.job,
        "rule": alert.rule,
        "entity": alert.entity,
        "entity_name": alert.entity_name,
        "owner": alert.owner,
        "severity": alert.severity,
        "message": alert.message,
        "state": alert.state,
        "since": alert.since,
        "last_seen": alert.last_seen,
        "notified": alert.notified,
        "resolved": alert.resolved,
        "silenced_by": held.id if held else None,
    }


def silence_dict(silence: Silence, may_lift: bool) -> dict[str, Any]:
    return {
        "id": silence.id,
        "rule": silence.rule,
        "entity": silence.entity,
        "starts": silence.starts,
        "ends": silence.ends,
        "reason": silence.reason,
        "created": silence.created,
        "may_lift": may_lift,
    }


def output_dict(output: OutputRow, run: RunRow | dict[str, Any] | None = None) -> dict[str, Any]:
    job = run.job if isinstance(run, RunRow) else (run or {}).get("job")
    as_of = run.as_of if isinstance(run, RunRow) else (run or {}).get("as_of")
    return {
        "id": output.id,
        "run_id": output.run_id,
        "job": job,
        "as_of": as_of,
        "recipient": output.label if output.recipient != EVERYONE else None,
        "name": output.name,
        "media_type": output.media_type,
        "size": output.size,
        "created": output.created,
        "pruned": output.pruned,
    }
