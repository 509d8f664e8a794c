"""What each CLI command does. `run.py` parses arguments and calls these; each returns an exit code."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from reports import demo
from reports.config.load import load_config
from reports.config.models import HeraldConfig
from reports.config.reference import config_reference
from reports.errors import UsageError
from reports.formatting import format_value, standing, table
from reports.kpis.periods import default_as_of
from reports.pipeline.compute import JobRun, Progress, check_jobs, compute_job, job_clock
from reports.pipeline.execute import JobOutcome, execute, retry_failures, summary
from reports.render.outputs import render_run
from reports.render.templates import environment
from reports.report.build import recipients
from reports.sources.pool import Sources
from reports.sources.preflight import check_all
from reports.store import RunRow, Store


def validate(config_path: Path, check_sources: bool = False) -> int:
    config = load_config(config_path)
    print(
        f"{config_path}: OK — {len(config.sources)} sources, {len(config.kpis)} KPIs, "
        f"{len(config.rules)} rules, {len(config.reports)} jobs"
    )
    if not check_sources:
        return 0
    results = check_all(config)
    rows = [[r.kind, r.name, r.source, "ok" if r.ok else "FAILED", r.detail] for r in results]
    print(table(["WHAT", "NAME", "SOURCE", "STATUS", "DETAIL"], rows))
    return 0 if all(r.ok for r in results) else 1


def schema(markdown: bool) -> int:
    if markdown:
        print(config_reference(), end="")
    else:
        print(json.dumps(HeraldConfig.model_json_schema(by_alias=True), indent=2))
    return 0


def next_fire(config: HeraldConfig, job: str, now: datetime) -> datetime:
    return config.reports[job].schedule.trigger(config.timezone).after(now)


def list_jobs(config_path: Path, now: datetime | None = None) -> int:
    config = load_config(config_path)
    now = now or datetime.now(ZoneInfo("UTC"))
    rows = []
    for job, report in config.reports.items():
        fire = next_fire(config, job, now)
        recipients = []
        for delivery in report.deliver:
            ((channel, target),) = delivery.model_dump(exclude_none=True).items()
            to = target.get("to") or target.get("channel") or target.get("path")
            recipients.append(f"{channel}: {', '.join(to) if isinstance(to, list) else to}")
        rows.append(
            [
                job,
                report.role,
                report.schedule.cron or f"every {report.schedule.every}",
                f"{fire:%a %Y-%m-%d %H:%M %Z}",
                ", ".join(report.formats) or "message",
                "; ".join(recipients) or "—",
            ]
        )
    print(table(["JOB", "ROLE", "SCHEDULE", "NEXT RUN", "FORMATS", "RECIPIENTS"], rows))
    return 0


def run(
    config_path: Path,
    jobs: list[str],
    as_of: date | None,
    as_json: bool,
    out: Path,
    dry_run: bool = False,
    resend: bool = False,
    retry_failed: bool = False,
) -> int:
    config = load_config(config_path)
    as_of = as_of or default_as_of(config.timezone)
    jobs = jobs or list(config.reports)
    check_jobs(config, jobs)
    check_out(out)
    sources = Sources(config)
    env, store = environment(config.templates_dir), Store(config.path(config.store))
    outcomes = []
    try:
        for job in jobs:
            if retry_failed:
                outcomes.append(retry_failures(config, job, as_of, out, store, dry_run))
                continue
            outcomes.append(
                execute(
                    config,
                    job,
                    as_of,
                    out,
                    sources=sources,
                    env=env,
                    store=store,
                    dry_run=dry_run,
                    progress=_progress(job),
                    resend=resend,
                )
            )
    finally:
        sources.close()
    if as_json:
        summaries = [
            (summary(o.run) if o.run else {"job": o.job, "as_of": o.as_of.isoformat()})
            | {"deliveries": _deliveries(o), "error": o.error}
            for o in outcomes
        ]
        print(json.dumps(summaries[0] if len(summaries) == 1 else summaries, indent=2))
    else:
        print("\n\n".join(_describe_outcome(o) for o in outcomes))
    for outcome in outcomes:
        if outcome.error:
            print(f"herald: job {outcome.job} failed: {outcome.error}", file=sys.stderr)
    if any(o.refused for o in outcomes):
        return 2
    return 0 if all(o.ok for o in outcomes) else 1


def backfill(config_path: Path, job: str, start: date, end: date, out: Path, deliver: bool) -> int:
    """Render `job` for each period from `start` to `end` (its last day, or `end`), to the outbox
    unless `deliver`. The alert book is left as it is: a past period is not news."""
    if start > end:
        raise UsageError(f"--from {start} is after --to {end}", "swap them")
    config = load_config(config_path)
    check_jobs(config, [job])
    check_out(out)
    days, clock = [], job_clock(config, job, end)
    while clock.as_of >= start:
        days.append(clock.as_of)
        clock = clock.on(clock.shift(clock.current, 1).end)
    sources = Sources(config)
    env, store = environment(config.templates_dir), Store(config.path(config.store))
    outcomes = []
    try:
        for as_of in reversed(days):
            outcome = execute(
                config,
                job,
                as_of,
                out,
                sources=sources,
                env=env,
                store=store,
                dry_run=not deliver,
                track_alerts=False,
            )
            outcomes.append(outcome)
            sent = sum(o.status in ("sent", "filed") for o in outcome.deliveries)
            state = "could not run: " + outcome.error if outcome.error else f"{sent} deliveries"
            print(f"{job} {as_of}: {len(outcome.run.findings) if outcome.run else 0} findings, {state}")
    finally:
        sources.close()
    return 0 if all(o.ok for o in outcomes) else 1


def check_out(out: Path) -> None:
    """`--out` must be a folder Herald can write (made if missing)."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file, not a folder", "pass a folder for the reports")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".herald-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise UsageError(
            f"cannot write to --out {out}: {exc.strerror or exc}", "pass a folder you can write"
        ) from None


def _deliveries(outcome: JobOutcome) -> list[dict]:
    return [
        {
            "channel": o.delivery.channel,
            "recipient": o.delivery.recipient,
            "status": o.status,
            "attempts": o.attempts,
            "error": o.error,
        }
        for o in outcome.deliveries
    ]


def _describe_outcome(outcome: JobOutcome) -> str:
    if outcome.run is None and outcome.error:
        return f"{outcome.job} (as of {outcome.as_of}): could not run"
    text = (
        _describe(outcome.run) if outcome.run else f"{outcome.job} (as of {outcome.as_of}): failed deliveries"
    )
    if not outcome.deliveries:
        return text + ("" if outcome.run else "\nNo failed deliveries to retry.")
    rows = [
        [o.delivery.channel, o.delivery.recipient, o.status, str(o.attempts), o.error or o.provider_id or ""]
        for o in outcome.deliveries
    ]
    text += "\n" + table(["CHANNEL", "RECIPIENT", "STATUS", "TRIES", "DETAIL"], rows)
    if all(o.status == "skipped" for o in outcome.deliveries):
        text += (
            f"\nNothing sent: every delivery of {outcome.job} for {outcome.as_of} went out before. "
            "--resend sends them again."
        )
    failed = [o for o in outcome.deliveries if o.status == "failed"]
    text += "".join(f"\nFAILED: {o.delivery.channel} to {o.delivery.recipient}: {o.error}" for o in failed)
    if failed:
        text += f"\n--retry-failed sends only these again: run.py run {outcome.job} --as-of {outcome.as_of} --retry-failed"
    return text


def history(
    config_path: Path, job: str | None, limit: int, status: str | None = None, as_json: bool = False
) -> int:
    """Each run once, newest first, with its deliveries beneath it."""
    config = load_config(config_path)
    if job is not None:
        check_jobs(config, [job])
    store = Store(config.path(config.store))
    runs = store.runs(job, limit, status)
    deliveries: dict[int, list] = {}
    for row in store.deliveries([r.id for r in runs]):
        deliveries.setdefault(row.run_id, []).append(row)
    if as_json:
        print(json.dumps([_run_json(r, deliveries.get(r.id, [])) for r in runs], indent=2))
        return 0
    if not runs:
        print(
            "No runs recorded yet"
            + (f" for {job}" if job else "")
            + (f" with status {status}" if status else "")
            + "."
        )
        return 0
    blocks = []
    for r in runs:
        fire = f"scheduled for {r.scheduled_for}" if r.scheduled_for else "started by hand"
        head = (
            f"run {r.id}  {r.job}  as of {r.as_of}  {fire}  started {r.started_at}  "
            f"finished {r.finished_at or '—'}  {r.status.upper()}"
            + ("" if r.findings is None else f"  {r.findings} findings")
        )
        lines = [head]
        if r.error and r.status != "ok":
            lines += [f"  {line}" for line in r.error.splitlines()]
        rows = [
            [d.channel, d.recipient, d.status, str(d.attempts), d.last_error or d.provider_id or ""]
            for d in deliveries.get(r.id, [])
        ]
        if rows:
            lines += [
                "  " + line
                for line in table(["CHANNEL", "RECIPIENT", "STATUS", "TRIES", "DETAIL"], rows).splitlines()
            ]
        blocks.append("\n".join(lines))
    print("\n\n".join(blocks))
    return 0


def _run_json(run: RunRow, deliveries: list) -> dict:
    return asdict(run) | {"deliveries": [asdict(d) for d in deliveries]}


def preview(config_path: Path, job: str, as_of: date | None, recipient: str | None, out: Path) -> int:
    """Render a job's outputs to out/preview/<job>/ without delivering anything."""
    config = load_config(config_path)
    check_jobs(config, [job])
    as_of = as_of or default_as_of(config.timezone)
    sources = Sources(config)
    try:
        job_run = compute_job(config, job, as_of, sources, _progress(job))
    finally:
        sources.close()
    folder = out / "preview" / job
    rendered = render_run(config, job_run, folder, recipient=recipient)
    if recipient is not None and not rendered:
        keys = ", ".join(r.label for r in recipients(config, job_run)) or "none (the job is not scoped)"
        raise UsageError(
            f"no recipient '{recipient}' in job '{job}' with anything to show", f"use one of: {keys}"
        )
    for result in rendered:
        for path in result.files:
            print(path)
    print(_describe(job_run))
    return 0 if job_run.ok else 1


def _describe(job_run: JobRun) -> str:
    head = (
        f"{job_run.job} — {job_run.period.label(job_run.report.period)} "
        f"(as of {job_run.as_of}): {len(job_run.findings)} findings, {job_run.queries} queries"
    )
    lines = [head]
    if job_run.findings:
        rows = [
            [f.severity, f.rule, f.entity_name, format_value(f.value, f.unit), f.message]
            for f in job_run.findings
        ]
        headers = ["SEVERITY", "RULE", "ENTITY", "VALUE", "MESSAGE"]
        if any(f.status for f in job_run.findings):  # tracked as alerts: say how each stands
            rows = [[standing(f), *row] for f, row in zip(job_run.findings, rows, strict=True)]
            headers = ["ALERT", *headers]
        lines.append(table(headers, rows))
    lines += [f"note: {n}" for n in job_run.notes]
    lines += [f"FAILED: {f}" for f in job_run.failures]
    return "\n".join(lines)


def _progress(job: str) -> Progress | None:
    if not sys.stderr.isatty():
        return None

    def show(step: str, done: int, total: int) -> None:
        end = "\n" if done == total else ""
        print(f"\r\033[K{job}: {step} ({done}/{total})", end=end, file=sys.stderr, flush=True)

    return show


def demo_data(out: Path, projects: int, days: int, seed: int) -> int:
    start = datetime.now()
    demo.build(out, projects=projects, days=days, seed=seed)
    seconds = (datetime.now() - start).total_seconds()
    print(f"{out}: {projects} projects × {days} days (seed {seed}) in {seconds:.1f}s")
    return 0
