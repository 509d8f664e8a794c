"""What each CLI command does. `run.py` parses arguments and calls these; each returns an exit code."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from notifiers import NOTIFIERS
from reports import demo
from reports.config.load import load_config
from reports.config.models import HeraldConfig, ReportConfig
from reports.config.reference import config_reference
from reports.errors import UsageError
from reports.findings import Finding
from reports.formatting import format_value, standing, table
from reports.kpis.periods import default_as_of
from reports.pipeline.compute import JobRun, check_jobs, compute_job, job_clock
from reports.pipeline.execute import JobOutcome, execute, retry_failures, summary
from reports.render.outputs import render_run, shown
from reports.render.templates import environment
from reports.report.build import recipients
from reports.report.model import EVERYONE, Recipient
from reports.sources.pool import Sources
from reports.sources.preflight import check_all
from reports.store import RunRow, Store


def validate(config_path: Path, check_sources: bool = False) -> int:
    config = load_config(config_path)
    counts = (
        _count(len(config.sources), "source"),
        _count(len(config.kpis), "KPI"),
        _count(len(config.rules), "rule"),
        _count(len(config.reports), "job"),
    )
    print(f"{config_path}: OK — {', '.join(counts)}")
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


def list_jobs(config_path: Path, now: datetime | None = None, as_json: bool = False) -> int:
    """The jobs, when each runs next (in its schedule's time zone), what it renders and for whom."""
    config = load_config(config_path)
    now = now or datetime.now(ZoneInfo("UTC"))
    jobs = [(job, report, next_fire(config, job, now)) for job, report in config.reports.items()]
    if as_json:
        print(json.dumps([_job_json(config, *entry) for entry in jobs], indent=2))
        return 0
    rows = []
    for job, report, fire in jobs:
        shown: dict[str, list[str]] = {}
        for channel, to in _routes(report):
            shown.setdefault(channel, []).append(to)
        rows.append(
            [
                job,
                report.role,
                report.schedule.cron or f"every {report.schedule.every}",
                f"{fire:%a %Y-%m-%d %H:%M %Z}",
                ", ".join(report.formats) or "message",
                "; ".join(f"{channel}: {', '.join(to)}" for channel, to in shown.items()) or "—",
            ]
        )
    print(table(["JOB", "ROLE", "SCHEDULE", "NEXT RUN", "FORMATS", "RECIPIENTS"], rows))
    return 0


def _job_json(config: HeraldConfig, job: str, report: ReportConfig, fire: datetime) -> dict:
    return {
        "job": job,
        "role": report.role,
        "schedule": report.schedule.cron or f"every {report.schedule.every}",
        "timezone": report.schedule.timezone or config.timezone,
        "next_run": fire.isoformat(),
        "formats": list(report.formats),
        "recipients": [{"channel": channel, "to": to} for channel, to in _routes(report)],
    }


def _routes(report: ReportConfig) -> list[tuple[str, str]]:
    """(channel, recipient) of each `deliver:` route: an address, a #channel, or `owner`."""
    found = []
    for entry in report.deliver:
        (channel,) = type(entry).model_fields
        for route in NOTIFIERS[channel].routes(getattr(entry, channel)):
            found.append((channel, "owner" if route.owner else route.label))
    return found


def run(
    config_path: Path,
    jobs: list[str],
    as_of: date | None,
    as_json: bool,
    out: Path,
    dry_run: bool = False,
    resend: bool = False,
    retry_failed: bool = False,
    talk: int = 0,
    workers: int | str | None = None,
) -> int:
    """Run `jobs` now for `as_of`; `talk` is -1 (-q), 0 or 1 (-v): how much progress to show."""
    config = load_config(config_path)
    if workers is not None:
        config = config.model_copy(update={"workers": workers})
    as_of = as_of or default_as_of(config.timezone)
    jobs = jobs or list(config.reports)
    check_jobs(config, jobs)
    check_out(out)
    if retry_failed:  # from the recorded messages: nothing is queried or rendered again
        store = Store(config.path(config.store))
        outcomes = [retry_failures(config, job, as_of, out, store, dry_run) for job in jobs]
    else:
        runs = [(job, as_of) for job in jobs]
        outcomes = list(_executed(config, runs, out, talk, dry_run=dry_run, resend=resend))
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


def _executed(
    config: HeraldConfig, runs: list[tuple[str, date]], out: Path, talk: int, **options: Any
) -> Iterator[JobOutcome]:
    """Execute each (job, as-of) in turn, sharing one set of sources, templates and store, and
    hand each outcome back as it finishes."""
    progress, sources = Progress(talk), Sources(config)
    env, store = environment(config.templates_dir), Store(config.path(config.store))
    dates = {as_of for _, as_of in runs}
    try:
        for job, as_of in runs:
            progress.start(job if len(dates) == 1 else f"{job} {as_of}")
            outcome = execute(
                config, job, as_of, out, sources=sources, env=env, store=store, progress=progress, **options
            )
            progress.finish()
            yield outcome
    finally:
        progress.finish()
        sources.close()


def backfill(
    config_path: Path, job: str, start: date, end: date, out: Path, deliver: bool, talk: int = 0
) -> int:
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
    outcomes = []
    runs = [(job, as_of) for as_of in reversed(days)]
    for outcome in _executed(config, runs, out, talk, dry_run=not deliver, track_alerts=False):
        outcomes.append(outcome)
        sent = sum(o.status in ("sent", "filed") for o in outcome.deliveries)
        state = "could not run: " + outcome.error if outcome.error else _count(sent, "delivery", "deliveries")
        found = _count(len(outcome.run.findings) if outcome.run else 0, "finding")
        print(f"{outcome.job} {outcome.as_of}: {found}, {state}")
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
            + ("" if r.findings is None else f"  {_count(r.findings, 'finding')}")
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


def preview(
    config_path: Path, job: str, as_of: date | None, recipient: str | None, out: Path, talk: int = 0
) -> int:
    """Render a job's outputs to out/preview/<job>/ without delivering anything; with `recipient`,
    only what that recipient gets (a fixed recipient of the job gets everyone's report)."""
    config = load_config(config_path)
    check_jobs(config, [job])
    as_of = as_of or default_as_of(config.timezone)
    progress, sources = Progress(talk), Sources(config)
    progress.start(job)
    try:
        job_run = compute_job(config, job, as_of, sources, progress, shown(config.reports[job]))
        who = None if recipient is None else _recipient(config, job_run, recipient)
        env = environment(config.templates_dir)
        rendered = render_run(
            config, job_run, out / "preview" / job, recipient=who and who.key, env=env, progress=progress
        )
    finally:
        progress.finish()
        sources.close()
    if who is not None and not rendered:
        raise UsageError(
            f"{who.label} has nothing to hear about from '{job}' for {as_of}",
            "the job tells a recipient only of news (only_with_findings): try another --as-of",
        )
    for result in rendered:
        for path in result.files:
            print(path)
    if who is None:
        print(_describe(job_run))
    else:
        report = rendered[0].report
        print(_describe(job_run, report.findings, who.label if who is not EVERYONE else recipient))
    return 0 if job_run.ok else 1


def _recipient(config: HeraldConfig, run: JobRun, wanted: str) -> Recipient:
    """The recipient `--recipient` names: a scoped recipient by name, email or Slack handle (with
    or without its @), or one of the job's fixed addresses, who get everyone's report."""

    def plain(text: str) -> str:
        return text.strip().lstrip("@#").casefold()

    scoped = [r for r in recipients(config, run) if r is not EVERYONE]
    found = [
        r for r in scoped if plain(wanted) in {plain(n) for n in (r.key, r.label, r.email, r.slack) if n}
    ]
    if len(found) > 1:
        emails = ", ".join(r.email or r.key for r in found)
        raise UsageError(f"'{wanted}' names {len(found)} recipients", f"name one by email: {emails}")
    if found:
        return found[0]
    fixed = [to for _, to in _routes(run.report) if to != "owner"]
    if plain(wanted) in {plain(to) for to in [*fixed, EVERYONE.key, EVERYONE.label]}:
        return EVERYONE
    known = [r.label for r in scoped] + fixed
    shown = ", ".join(known[:12]) + (f" and {len(known) - 12} more" if len(known) > 12 else "")
    raise UsageError(f"no recipient '{wanted}' in job '{run.job}'", f"use one of: {shown or 'none'}")


def _describe(job_run: JobRun, findings: list[Finding] | None = None, recipient: str | None = None) -> str:
    """The run's findings as a table (only `findings`, e.g. one recipient's, when given)."""
    findings = job_run.findings if findings is None else findings
    head = (
        f"{job_run.job} — {job_run.period.label(job_run.report.period)} (as of {job_run.as_of})"
        + (f" for {recipient}" if recipient else "")
        + f": {_count(len(findings), 'finding')}, {_count(job_run.queries, 'query', 'queries')}"
    )
    lines = [head]
    if findings:
        rows = [
            [f.severity, f.rule, f.entity_name, format_value(f.value, f.unit), f.message] for f in findings
        ]
        headers = ["SEVERITY", "RULE", "ENTITY", "VALUE", "MESSAGE"]
        if any(f.status for f in findings):  # tracked as alerts: say how each stands
            rows = [[standing(f), *row] for f, row in zip(findings, rows, strict=True)]
            headers = ["ALERT", *headers]
        lines.append(table(headers, rows))
    lines += [f"note: {n}" for n in job_run.notes]
    lines += [f"FAILED: {f}" for f in job_run.failures]
    return "\n".join(lines)


def _count(amount: int, word: str, plural: str | None = None) -> str:
    """'1 finding', '2 findings'; irregular plurals given: _count(n, "query", "queries")."""
    return f"{amount:,} {word if amount == 1 else plural or word + 's'}"


_NOUNS = {
    "querying": ("KPI", "KPIs"),
    "rendering": ("report", "reports"),
    "delivering": ("delivery", "deliveries"),
}


@dataclass
class _Stage:
    done: int = 0
    total: int | None = None
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None


class Progress:
    """Long work as it goes. On a terminal: one line on stderr, redrawn for each KPI queried,
    report rendered and delivery ended. Elsewhere (a log file, a pipe) and with -v: one line per
    stage when a job is done, with its count and time. Nothing at all with -q. It is
    compute_job's `progress` callback."""

    def __init__(self, talk: int = 0, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.live = talk == 0 and self.stream.isatty()  # a log line would land in the middle of it
        self.summary = talk > 0 or (talk == 0 and not self.live)  # a log file gets a line per stage
        self.job = ""
        self.stages: dict[str, _Stage] = {}

    def start(self, job: str) -> None:
        self.job, self.stages = job, {}

    def __call__(self, step: str, done: int, total: int | None = None) -> None:
        """`step` starts with its stage's name: "querying events", "rendering Amara Okafor"."""
        name, now = step.split(" ", 1)[0], time.monotonic()
        for other in self.stages.values():
            other.ended = other.ended or now
        stage = self.stages.setdefault(name, _Stage())
        stage.done, stage.ended = max(stage.done, done), None
        stage.total = stage.total if total is None else total
        if self.live:
            count = str(stage.done) if stage.total is None else f"{stage.done}/{max(stage.total, stage.done)}"
            print(f"\r\033[K{self.job}: {step} ({count})", end="", file=self.stream, flush=True)

    def finish(self) -> None:
        """The job is done: clear the live line and, with -v, say how each stage went."""
        if self.live and self.stages:
            print("\r\033[K", end="", file=self.stream, flush=True)
        if self.summary:
            for name, stage in self.stages.items():
                took = (stage.ended or time.monotonic()) - stage.started
                amount = _count(stage.done, *_NOUNS.get(name, ("item", "items")))
                print(f"{self.job}: {name}: {amount} in {took:.1f} s", file=self.stream)
        self.stages = {}


def demo_data(out: Path, projects: int, days: int, seed: int) -> int:
    start = datetime.now()
    demo.build(out, projects=projects, days=days, seed=seed)
    seconds = (datetime.now() - start).total_seconds()
    print(f"{out}: {_count(projects, 'project')} × {_count(days, 'day')} (seed {seed}) in {seconds:.1f}s")
    return 0
