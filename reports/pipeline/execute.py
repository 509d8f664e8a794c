"""One job, start to finish: query and evaluate, render, deliver, record. The CLI's `run` and
the scheduler both call `execute`; a job that fails never stops the next one."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import jinja2

from notifiers import Notifier
from reports.config.models import HeraldConfig
from reports.errors import HeraldError
from reports.pipeline.compute import JobRun, Progress, compute_job
from reports.pipeline.deliver import Outcome, channels_for, deliver, failure_notice, plan
from reports.render.outputs import Rendered, render_run
from reports.sources.pool import Sources
from reports.store import Store

log = logging.getLogger(__name__)


@dataclass
class JobOutcome:
    job: str
    as_of: date
    folder: Path
    run: JobRun | None = None
    rendered: list[Rendered] = field(default_factory=list)
    deliveries: list[Outcome] = field(default_factory=list)
    error: str | None = None  # why the job could not run at all

    @property
    def ok(self) -> bool:
        return (
            self.error is None
            and self.run is not None
            and self.run.ok
            and all(o.status == "sent" for o in self.deliveries)
        )

    def problems(self) -> list[str]:
        found = [self.error] if self.error else []
        found += self.run.failures if self.run else []
        found += [
            f"{o.delivery.channel} to {o.delivery.recipient}: {o.error}"
            for o in self.deliveries
            if o.status != "sent"
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
) -> JobOutcome:
    folder = out / job / as_of.isoformat()
    outcome = JobOutcome(job, as_of, folder)
    owned = channels is None  # close only what this call opened
    channels = channels or channels_for(config, out / "outbox" / job / as_of.isoformat(), dry_run)
    run_id = store.start_run(job, as_of.isoformat())
    try:
        outcome.run = compute_job(config, job, as_of, sources, progress)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "findings.json").write_text(json.dumps(summary(outcome.run), indent=2) + "\n")
        outcome.rendered = render_run(config, outcome.run, folder, env=env)
        outcome.deliveries = deliver(
            plan(config, outcome.rendered, env), channels, store, run_id, config.delivery
        )
    except HeraldError as exc:
        log.error("job %s: %s", job, exc)
        outcome.error = str(exc)
    problems = outcome.problems()
    findings = len(outcome.run.findings) if outcome.run else None
    store.finish_run(run_id, "ok" if not problems else "failed", findings, "\n".join(problems) or None)
    owners = config.reports[job].owners
    if problems and owners:
        notices = failure_notice(job, as_of.isoformat(), owners, problems)
        outcome.deliveries += deliver(notices, channels, store, run_id, config.delivery)
    if owned:
        for channel in channels.values():
            channel.close()
    return outcome
