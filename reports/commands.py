"""What each CLI command does. `run.py` parses arguments and calls these; each returns an exit code."""

from __future__ import annotations

import json
import sys
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from croniter import croniter

from reports import demo
from reports.build import recipients
from reports.charts import Charts
from reports.config import HeraldConfig
from reports.configload import load_config
from reports.errors import UsageError
from reports.formatting import format_value
from reports.jobs import JobRun, Progress, Sources, check_jobs, default_as_of, run_job
from reports.outputs import render_run
from reports.reference import config_reference
from reports.tables import table


def validate(config_path: Path) -> int:
    config = load_config(config_path)
    print(
        f"{config_path}: OK — {len(config.sources)} sources, {len(config.kpis)} KPIs, "
        f"{len(config.rules)} rules, {len(config.reports)} jobs"
    )
    return 0


def schema(markdown: bool) -> int:
    if markdown:
        print(config_reference(), end="")
    else:
        print(json.dumps(HeraldConfig.model_json_schema(by_alias=True), indent=2))
    return 0


def next_fire(config: HeraldConfig, job: str, now: datetime) -> datetime:
    schedule = config.reports[job].schedule
    tz = ZoneInfo(schedule.timezone or config.timezone)
    return croniter(schedule.cron, now.astimezone(tz)).get_next(datetime)


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
                report.schedule.cron,
                f"{fire:%a %Y-%m-%d %H:%M %Z}",
                ", ".join(report.formats) or "message",
                "; ".join(recipients) or "—",
            ]
        )
    print(table(["JOB", "ROLE", "SCHEDULE", "NEXT RUN", "FORMATS", "RECIPIENTS"], rows))
    return 0


def run(config_path: Path, jobs: list[str], as_of: date | None, as_json: bool, out: Path) -> int:
    config = load_config(config_path)
    as_of = as_of or default_as_of(config)
    jobs = jobs or list(config.reports)
    check_jobs(config, jobs)
    sources = Sources(config)
    runs: list[JobRun] = []
    try:
        for job in jobs:
            runs.append(run_job(config, job, as_of, sources, _progress(job)))
    finally:
        sources.close()
    charts = Charts()
    for job_run in runs:
        folder = out / job_run.job / as_of.isoformat()
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "findings.json").write_text(json.dumps(_summary(job_run), indent=2) + "\n")
        rendered = render_run(config, job_run, folder, charts)
        if not as_json:
            print(
                f"{job_run.job}: {sum(len(r.files) for r in rendered)} files for {len(rendered)} "
                f"recipient(s) in {folder}",
                file=sys.stderr,
            )
    if as_json:
        summaries = [_summary(r) for r in runs]
        print(json.dumps(summaries[0] if len(summaries) == 1 else summaries, indent=2))
    else:
        print("\n\n".join(_describe(r) for r in runs))
    return 0 if all(r.ok for r in runs) else 1


def preview(config_path: Path, job: str, as_of: date | None, recipient: str | None, out: Path) -> int:
    """Render a job's outputs to out/preview/<job>/ without delivering anything."""
    config = load_config(config_path)
    check_jobs(config, [job])
    as_of = as_of or default_as_of(config)
    sources = Sources(config)
    try:
        job_run = run_job(config, job, as_of, sources, _progress(job))
    finally:
        sources.close()
    folder = out / "preview" / job
    rendered = render_run(config, job_run, folder, recipient=recipient)
    if recipient is not None and not rendered:
        keys = ", ".join(r.key for r in recipients(config, job_run)) or "none (the job is not scoped)"
        raise UsageError(
            f"no recipient '{recipient}' in job '{job}' with anything to show", f"use one of: {keys}"
        )
    for result in rendered:
        for path in result.files:
            print(path)
    print(_describe(job_run))
    return 0 if job_run.ok else 1


def _summary(job_run: JobRun) -> dict:
    return {
        "job": job_run.job,
        "as_of": job_run.as_of.isoformat(),
        "period": {"start": job_run.period.start.isoformat(), "end": job_run.period.end.isoformat()},
        "findings": [f.to_dict() for f in job_run.findings],
        "failures": job_run.failures,
        "notes": job_run.notes,
        "queries": job_run.queries,
    }


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
        lines.append(table(["SEVERITY", "RULE", "ENTITY", "VALUE", "MESSAGE"], rows))
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
