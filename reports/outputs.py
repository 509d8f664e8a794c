"""Render a job run's reports and messages to files: the archive under out/ and previews.

Every report is built once per recipient and rendered by each of the job's formats; the email
body and the Slack message are rendered from the same model. Nothing here sends anything.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import jinja2

from reports.build import build_all
from reports.charts import Charts
from reports.config import HeraldConfig
from reports.jobs import JobRun
from reports.model import EVERYONE, Report
from reports.render import renderer
from reports.render.html import email_body
from reports.render.slack import slack_message
from reports.render.templates import environment


@dataclass
class Rendered:
    report: Report
    folder: Path
    files: list[Path] = field(default_factory=list)


def _write(path: Path, data: bytes | str) -> Path:
    """Write through a temporary name so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    os.replace(partial, path)
    return path


def render_run(
    config: HeraldConfig,
    run: JobRun,
    folder: Path,
    charts: Charts | None = None,
    recipient: str | None = None,
    now: datetime | None = None,
    env: jinja2.Environment | None = None,
) -> list[Rendered]:
    """Write every output of `run` under `folder` (one sub-folder per scoped recipient)."""
    charts = charts or Charts()
    env = env or environment(config.templates_dir)
    results = []
    for report in build_all(config, run, charts, now, only=recipient):
        if report.role == "cs" and report.recipient is not EVERYONE and not report.findings:
            continue  # nothing to tell this owner today
        target = folder if report.recipient is EVERYONE else folder / report.recipient.slug
        done = Rendered(report, target)
        for fmt in run.report.formats:
            output = renderer(fmt, env)
            path = target / f"{report.file_stem}.{output.extension}"
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(path.name + ".partial")
            output.write(report, partial)
            os.replace(partial, path)
            done.files.append(path)
        body = email_body(env, report, [p.name for p in done.files])
        done.files.append(_write(target / "email.html", body.html))
        done.files.append(_write(target / "email.txt", body.text))
        for cid, png in body.inline.items():
            done.files.append(_write(target / f"{cid.split('@')[0]}.png", png))
        if report.role == "cs" or any("slack" in d.model_dump() for d in run.report.deliver):
            done.files.append(
                _write(
                    target / "slack.json",
                    json.dumps(slack_message(report), indent=2, ensure_ascii=False) + "\n",
                )
            )
        results.append(done)
    return results
