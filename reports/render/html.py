"""HTML: the standalone archive page of a report, and the email body with its inline chart."""

from __future__ import annotations

from dataclasses import dataclass, field

import css_inline
import jinja2

from reports.render import Renderer, register
from reports.render.templates import render
from reports.report.model import Report


@register
class HtmlRenderer(Renderer):
    """A self-contained page (charts embedded) for the archive and the browser."""

    format = "html"
    extension = "html"
    media_type = "text/html"
    attached = False

    def render(self, report: Report) -> bytes:
        return render(self.env, f"{report.role}.html", report=report).encode("utf-8")


@dataclass
class EmailBody:
    subject: str
    html: str
    text: str
    inline: dict[str, bytes] = field(default_factory=dict)  # Content-ID → PNG


def email_body(
    env: jinja2.Environment,
    report: Report,
    attachments: list[str],
    subject: str | None = None,
    links: dict[str, str] | None = None,
) -> EmailBody:
    """A short summary with one chart inline by Content-ID; CSS inlined so mail clients keep it."""
    chart = report.charts.get(report.trends[0].chart) if report.trends else None
    context = {"report": report, "attachments": attachments, "chart": chart, "links": links or {}}
    html = render(env, f"email/{report.role}.html", **context)
    text = render(env, f"email/{report.role}.txt", **context)
    title = subject or f"{report.title} — {report.period_label}"
    inline = {chart.cid: chart.png} if chart else {}
    return EmailBody(title, css_inline.inline(html), text, inline)
