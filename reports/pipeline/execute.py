"""One job, start to finish: query and evaluate, render, deliver, record. The CLI's `run` and
the scheduler both call `execute`; a job that fails never stops the next one."""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import jinja2

from notifiers import Notifier
from reports.alerts.lifecycle import mark_escalated, mark_told, track, untracked
from reports.alerts.notices import escalations, thread_replies
from reports.archive.record import record_outputs
from reports.config.models import HeraldConfig
from reports.errors import HeraldError, NotReady
from reports.pipeline.compute import JobRun, Progress, compute_job
from reports.pipeline.deliver import (
    Delivery,
    Outcome,
    channels_for,
    deliver,
    failure_notice,
    filing,
    late_notice,
    plan,
    record,
    unsent,
)
from reports.pipeline.fanout import Fanout, batches, fan_out, worker_count
from reports.render.outputs import Rendered, nothing_to_tell, render_for, shown
from reports.report.build import recipients
from reports.report.model import EVERYONE
from reports.sources.pool import Sources
from reports.store import Store, now_utc, process_id

log = logging.getLogger(__name__)
DONE = ("sent", "filed", "skipped")  # a delivery in one of these states needs nothing more


@dataclass
class JobOutcome:
    job: str
    as_of: date
    folder: Path
    run: JobRun | None = None
    rendered: list[Rendered] = field(default_factory=list)
    deliveries: list[Outcome] = field(default_factory=list)
    error: str | None = None  # why the job could not run at all
    refused: bool = False  # the as-of date cannot be reported on (future, or no data): exit 2

    @property
    def ok(self) -> bool:
        return (
            self.error is None
            and (self.run is None or self.run.ok)
            and all(o.status in DONE for o in self.deliveries)
        )

    def problems(self) -> list[str]:
        found = [self.error] if self.error else []
        found += self.run.failures if self.run else []
        found += [
            f"{o.delivery.channel} to {o.delivery.recipient}: {o.error}"
            for o in self.deliveries
            if o.status not in DONE
        ]
        return found


def summary(run: JobRun) -> dict:
    return {
        "job": run.job,
        "as_of": run.as_of.isoformat(),
        "period": {"start": run.period.start.isoformat(), "end": run.period.end.isoformat()},
        "findings": [f.to_dict() for f in run.findings],
        "failures": run.failures,
        "notes": run.notes,
        "queries": run.queries,
    }


def execute(
    config: HeraldConfig,
    job: str,
    as_of: date,
    out: Path,
    *,
    sources: Sources,
    env: jinja2.Environment,
    store: Store,
    dry_run: bool = False,
    progress: Progress | None = None,
    channels: dict[str, Notifier] | None = None,
    run_id: int | None = None,
    resend: bool = False,
    stop: threading.Event | None = None,
    moment: datetime | None = None,
    track_alerts: bool = True,
) -> JobOutcome:
    """Run `job` for `as_of`: compute, update its alerts, render, record every delivery, then send.
    `run_id` is a run the scheduler claimed (and `moment` its fire time); without it the run is
    recorded as started by hand, now."""
    folder = out / job / as_of.isoformat()
    outcome = JobOutcome(job, as_of, folder)
    owned = channels is None  # close only what this call opened
    channels = channels or channels_for(config, out / "outbox" / job / as_of.isoformat(), dry_run)
    timeout = config.reports[job].schedule.timeout
    scheduled = run_id
    run_id = run_id or store.start_run(job, as_of.isoformat(), process_id(), timeout)
    try:
        outcome.run = compute_job(config, job, as_of, sources, progress, shown(config.reports[job]))
        life = (
            track(config, outcome.run, store, moment or now_utc()) if track_alerts else untracked(outcome.run)
        )
        outcome.run.findings = life.findings
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "findings.json").write_text(json.dumps(summary(outcome.run), indent=2) + "\n")
        # Everyone's report (fixed recipients, the archive) here; the scoped ones fanned out.
        outcome.rendered = render_for(config, outcome.run, [EVERYONE], folder, env)
        planned = plan(config, outcome.rendered, env)
        owners = config.reports[job].owners
        if owners and any(f.rule == "data_late" for f in outcome.run.findings):
            planned += late_notice(outcome.run, owners)  # once per as-of date: a re-run skips it
        escalated = life.escalate if config.reports[job].escalate else []
        if life.tracked and not life.muted:
            planned += thread_replies(store, life.resolved)
            planned += escalations(job, escalated, config.reports[job].escalate.to if escalated else [])
        pending, outcome.deliveries = record(
            planned, store, run_id, job, as_of.isoformat(), resend, filing(channels)
        )
        told = _fan_out(config, outcome, run_id, out, env, store, channels, dry_run, resend, progress, stop)
        record_outputs(store, run_id, folder, outcome.rendered)  # the archive serves them by id
        if life.tracked and (planned or told):
            mark_told(store, life.findings, as_of)
            mark_escalated(store, escalated, as_of)
        store.mark_planned(run_id)
        outcome.deliveries += deliver(pending, channels, store, config.delivery, stop=stop, progress=progress)
    except NotReady as exc:
        log.warning("job %s: %s", job, exc)
        outcome.error, outcome.refused = str(exc), True
    except HeraldError as exc:
        log.warning("job %s: %s", job, exc)
        outcome.error = str(exc)
    except OSError as exc:  # the machine: a full disk, a folder that cannot be written
        where = exc.filename or out
        outcome.error = (
            f"cannot write {where}: {exc.strerror or exc} — free disk space or choose another --out"
        )
        log.warning("job %s: %s", job, outcome.error)
    except BaseException:  # stopping (Interrupted) or a fault: the run stays recorded as unfinished
        if owned:
            _close(channels)
        raise
    # A refused date from the command line is the user's to fix; under the scheduler, the owners'.
    finish(config, outcome, run_id, channels, store, notify=not (outcome.refused and scheduled is None))
    if owned:
        _close(channels)
    return outcome


def _fan_out(
    config: HeraldConfig,
    outcome: JobOutcome,
    run_id: int,
    out: Path,
    env: jinja2.Environment,
    store: Store,
    channels: dict[str, Notifier],
    dry_run: bool,
    resend: bool,
    progress: Progress | None,
    stop: threading.Event | None,
) -> bool:
    """Render and deliver each scoped recipient's report, batch by batch (see pipeline/fanout.py);
    whether any delivery was planned for them."""
    run = outcome.run
    assert run is not None
    if run.report.scope is None:
        return False
    told_of = [r for r in recipients(config, run) if not nothing_to_tell(run, r)]
    groups = batches(told_of, per_entity=run.report.scope == "entity")
    work = Fanout(
        config, run, outcome.folder, out / "outbox" / run.job / run.as_of.isoformat(), run_id, resend, dry_run
    )
    workers = worker_count(config, sum(len(g) for g in groups))
    errors, told = [], False
    for batch in fan_out(
        work, groups, workers=workers, env=env, channels=channels, store=store, progress=progress, stop=stop
    ):
        outcome.rendered += batch.rendered
        outcome.deliveries += batch.outcomes
        told = told or bool(batch.outcomes)
        if batch.error:
            errors.append(batch.error)
    if errors:
        more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        outcome.error = "some reports could not be made: " + "; ".join(errors[:3]) + more
    return told


def _close(channels: dict[str, Notifier]) -> None:
    for channel in channels.values():
        channel.close()


def finish(
    config: HeraldConfig,
    outcome: JobOutcome,
    run_id: int,
    channels: dict[str, Notifier],
    store: Store,
    notify: bool = True,
) -> None:
    """Tell the job's owners what went wrong, if anything did, then record how the run ended."""
    problems = outcome.problems()
    owners = config.reports[outcome.job].owners
    if problems and owners and notify:
        notices = failure_notice(outcome.job, outcome.as_of.isoformat(), owners, problems)
        pending, _ = record(notices, store, run_id, outcome.job, outcome.as_of.isoformat(), resend=True)
        outcome.deliveries += deliver(pending, channels, store, config.delivery)
    findings = len(outcome.run.findings) if outcome.run else None
    store.finish_run(run_id, "ok" if not problems else "failed", findings, "\n".join(problems) or None)


def send_recorded(
    config: HeraldConfig,
    job: str,
    as_of: date,
    run_id: int,
    pending: list[tuple[int, Delivery]],
    *,
    channels: dict[str, Notifier],
    store: Store,
    stop: threading.Event | None = None,
) -> JobOutcome:
    """Send deliveries recorded earlier, from the messages kept for them, without computing
    anything again: a resumed run, or `run --retry-failed`."""
    outcome = JobOutcome(job, as_of, Path())
    outcome.deliveries = deliver(pending, channels, store, config.delivery, stop=stop)
    finish(config, outcome, run_id, channels, store)
    return outcome


def retry_failures(
    config: HeraldConfig, job: str, as_of: date, out: Path, store: Store, dry_run: bool = False
) -> JobOutcome:
    """`run --retry-failed`: send again, from the messages kept for them, only the deliveries of
    (job, as-of) that finally failed and have not gone out since."""
    done = store.delivered(job, as_of.isoformat())
    runs = [r.id for r in store.runs(job, limit=1000) if r.as_of == as_of.isoformat()]
    latest: dict[tuple[str, str], int] = {}
    for row in store.deliveries(runs, ("failed",)):
        if (row.channel, row.recipient) not in done:
            latest[(row.channel, row.recipient)] = row.id
    pending = [p for p in unsent(store, runs, ("failed",)) if p[0] in latest.values()]
    channels = channels_for(config, out / "outbox" / job / as_of.isoformat(), dry_run)
    outcome = JobOutcome(job, as_of, out / job / as_of.isoformat())
    try:
        outcome.deliveries = deliver(pending, channels, store, config.delivery)
    finally:
        _close(channels)
    return outcome
