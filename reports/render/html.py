"""HTML: the standalone archive page of a report, and the email body with its inline chart."""

from __future__ import annotations

from dataclasses import dataclass, field

import css_inline
import jinja2

from reports.render import Renderer, register
from reports.render.templates import charts, render
from reports.report.model import Chart, Report


@register
class HtmlRenderer(Renderer):
    """A self-contained page (charts embedded) for the archive and the browser."""

    format = "html"
    extension = "html"
    media_type = "text/html"
    needs = frozenset({"trends", "movers"})
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
    """A short summary, CSS inlined so mail clients keep it. The template picks which charts to
    show inline: `inline(chart)` draws one, attaches it by Content-ID and returns its `src`."""
    inline: dict[str, bytes] = {}

    def embed(chart: Chart) -> str:
        inline[chart.cid] = charts(env).png(chart)
        return f"cid:{chart.cid}"

    context = {"report": report, "attachments": attachments, "links": links or {}, "inline": embed}
    html = render(env, f"email/{report.role}.html", **context)
    text = render(env, f"email/{report.role}.txt", **context)
    title = subject or f"{report.title} — {report.period_label}"
    return EmailBody(title, css_inline.inline(html), text, inline)


@dataclass
class Bundled:
    """One report in a bundle: its recipient's report, the file that carries it, and its
    archive link when it is not attached."""

    report: Report
    file: str
    link: str | None = None

    def __getattr__(self, name: str) -> object:  # the template reads the report's fields through it
        return getattr(self.report, name)


def email_bundle(
    env: jinja2.Environment, title: str, items: list[Bundled], subject: str | None = None
) -> EmailBody:
    """One message for an owner of many entities (`scope: entity`): a line per report, each
    attached or, past the attachment limits, linked from the archive."""
    first = items[0].report
    context = {
        "title": title,
        "report": first,
        "reports": items,
        "attachments": [i.file for i in items if i.link is None],
        "links": {},
        "bundle_links": {i.file: i.link for i in items if i.link is not None},
    }
    html = render(env, "email/bundle.html", **context)
    text = render(env, "email/bundle.txt", **context)
    subject = subject or f"{title} — {first.period_label}: {len(items)} {first.entity_label.lower()}s"
    return EmailBody(subject, css_inline.inline(html), text)
