"""Render a job run's reports and messages to files: the archive under out/ and previews.

Every report is built once per recipient and rendered by each of the job's formats; the email
body and the Slack message are rendered from the same model. Nothing here sends anything.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import jinja2

from notifiers import NOTIFIERS
from reports.config.models import HeraldConfig, ReportConfig
from reports.pipeline.compute import JobRun, Progress
from reports.render import RENDERERS, renderer
from reports.render.html import EmailBody, email_body
from reports.render.slack import slack_message
from reports.render.templates import environment
from reports.report.build import build_all, build_report
from reports.report.model import EVERYONE, Recipient, Report


@dataclass
class Rendered:
    """One recipient's report, its files, and the messages that carry them, each rendered once."""

    report: Report
    folder: Path
    files: list[Path] = field(default_factory=list)
    attached: list[tuple[Path, str]] = field(default_factory=list)  # (file, media type) sent with messages
    links: dict[str, str] = field(default_factory=dict)  # file name → archive link, for files too large
    email: EmailBody | None = None
    slack: dict[str, Any] = field(default_factory=dict)
    quiet: bool = False  # archived, but nothing in it is news: its messages are not sent


def _write(path: Path, data: bytes | str | Callable[[Path], None]) -> Path:
    """Write through a temporary name so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")  # two processes may render one run
    if callable(data):
        data(partial)
    else:
        partial.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    os.replace(partial, path)
    return path


def archive_link(config: HeraldConfig, path: Path) -> str:
    """Where a reader downloads `path`: under `archive_url` when set, else its local path. With
    HERALD_WEB_SECRET set too, a signed personal link for the report's recipient (the one its
    folder, out/JOB/AS_OF/[RECIPIENT/], names) that signs them in to the archive and opens it."""
    from reports.archive.tokens import output_link

    out = path.resolve()
    signed = output_link(config, out)
    if signed:
        return signed
    if config.archive_url:
        for parent in out.parents:
            if parent.name == "out":
                return config.archive_url.rstrip("/") + "/" + out.relative_to(parent).as_posix()
    return str(out)


def shown(report: ReportConfig) -> frozenset[str]:
    """The report sections a job's formats and channels show: the builder computes only these,
    and the run queries its KPIs only as far back as these need."""
    wanted = [RENDERERS[fmt].needs for fmt in report.formats]
    wanted += [NOTIFIERS[channel].shows for channel in report.channels]
    return frozenset().union(*wanted)


def sections(run: JobRun) -> frozenset[str]:
    return shown(run.report)


def render_run(
    config: HeraldConfig,
    run: JobRun,
    folder: Path,
    recipient: str | None = None,
    now: datetime | None = None,
    env: jinja2.Environment | None = None,
    progress: Progress | None = None,
) -> list[Rendered]:
    """Write every output of `run` under `folder` (one sub-folder per scoped recipient)."""
    env = env or environment(config.templates_dir)
    results = []
    reports = build_all(config, run, now, only=recipient, sections=sections(run))
    for number, report in enumerate(reports, start=1):
        if progress:
            progress(f"rendering {report.recipient.label}", number, len(reports))
        done = render_report(config, run, report, folder, env)
        if done is not None:
            results.append(done)
    return results


def render_for(
    config: HeraldConfig,
    run: JobRun,
    recipients: list[Recipient],
    folder: Path,
    env: jinja2.Environment,
    now: datetime | None = None,
) -> list[Rendered]:
    """Build and write the reports of some of a run's recipients: one batch of a fan-out."""
    wanted = sections(run)
    found = [
        render_report(config, run, build_report(config, run, r, now, wanted), folder, env) for r in recipients
    ]
    return [done for done in found if done is not None]


def nothing_to_tell(run: JobRun, recipient: Recipient) -> bool:
    """Whether a job that tells only of news (`only_with_findings`) has none for this scoped
    recipient today: then the fan-out does not even build their report (most owners, most days)."""
    if not run.report.only_with_findings or recipient is EVERYONE or recipient.entities is None:
        return False
    theirs = frozenset(recipient.entities)
    return not any(f.news and f.entity in theirs for f in run.findings)


def render_report(
    config: HeraldConfig, run: JobRun, report: Report, folder: Path, env: jinja2.Environment
) -> Rendered | None:
    """Write one report's files and render the messages that carry it; None when the recipient
    has nothing to be told today (`only_with_findings`)."""
    cap = (config.channels.email.max_attachment_mb if config.channels.email else 10) * 1024 * 1024
    quiet = run.report.only_with_findings and not any(f.news for f in report.findings)
    if quiet and report.recipient is not EVERYONE:
        return None  # nothing to tell this recipient today
    target = folder if report.recipient is EVERYONE else folder / report.recipient.slug
    done = Rendered(report, target, quiet=quiet)
    report.withheld = bool(run.late) and run.report.when_late == "withhold"
    for fmt in [] if report.withheld else run.report.formats:
        output = renderer(fmt, env)
        path = _write(target / f"{report.file_stem}.{output.extension}", partial(output.write, report))
        done.files.append(path)
        if not output.attached:
            continue
        if path.stat().st_size <= cap:
            done.attached.append((path, output.media_type))
        else:
            done.links[path.name] = archive_link(config, path)
    if config.archive_url and done.files:  # messages link to the archived copy of the report
        page = next((p for p in done.files if p.suffix == ".html"), done.files[0])
        report.link = archive_link(config, page)
    if run.report.scope == "entity":
        return done  # its messages are made when it goes out alone (most owners get a bundle)
    done.email = email_body(env, report, [p.name for p, _ in done.attached], links=done.links)
    # The archived copy shows its charts when opened from disk: embedded, not by Content-ID.
    archived = done.email.html
    for cid, png in done.email.inline.items():
        archived = archived.replace(f"cid:{cid}", "data:image/png;base64," + base64.b64encode(png).decode())
    done.files.append(_write(target / "email.html", archived))
    done.files.append(_write(target / "email.txt", done.email.text))
    for cid, png in done.email.inline.items():
        done.files.append(_write(target / f"{cid.split('@')[0]}.png", png))
    if config.archive_url and report.link is None:  # no formats (Slack alerts): the page is the message
        report.link = archive_link(config, target / "email.html")
    done.slack = slack_message(report)
    if "slack" in run.report.channels:
        text = json.dumps(done.slack, indent=2, ensure_ascii=False) + "\n"
        done.files.append(_write(target / "slack.json", text))
    return done
