"""The CS alert message as Slack Block Kit: grouped by severity and account, within Slack's limits.

Block Kit is data with hard limits (50 blocks a message, 3,000 characters a section), so it is
built here as data rather than from a text template; findings that do not fit are summarised
with a count instead of being cut off silently. Warehouse text is escaped for mrkdwn.
"""

from __future__ import annotations

import re
from itertools import groupby
from typing import Any

from reports.findings import Finding
from reports.formatting import clip, format_span, format_through, standing
from reports.report.model import Report

MAX_BLOCKS = 50
MAX_SECTION = 3000
MAX_HEADER = 150
ICONS = {"critical": ":red_circle:", "warning": ":large_orange_circle:"}


def escape(text: str) -> str:
    """Slack's three control characters; this also defuses `<!channel>` and `<url|label>` in data."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def _chunks(title: str, lines: list[str]) -> list[str]:
    """An account's lines as section texts, each under the section limit."""
    texts, current = [], title
    for line in lines:
        line = (
            line if len(line) <= MAX_SECTION - len(title) - 2 else line[: MAX_SECTION - len(title) - 3] + "…"
        )
        if len(current) + 1 + len(line) > MAX_SECTION:
            texts.append(current)
            current = title + " (continued)"
        current += "\n" + line
    texts.append(current)
    return texts


def _linked(text: str) -> str:
    """Config text for Slack: escaped, with an http(s) link in it made clickable."""
    return re.sub(
        r"&lt;(https?://[^\s|&]+)&gt;|(https?://[^\s|&<>]+)", lambda m: f"<{m[1] or m[2]}>", escape(text)
    )


def _marker(finding: Finding) -> str:
    """How an open alert stands: new on this run, or firing since an earlier one."""
    text = standing(finding)
    return f" _({text})_" if text and text != "resolved" else ""


def slack_message(report: Report) -> dict[str, Any]:
    """`{"text": fallback, "blocks": [...]}` for chat.postMessage."""
    counts = {s: len(f) for s, f in report.findings_by_severity().items()}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items()) or "no alerts"
    span = format_span(report.period.start, report.period.end)
    header = f"{report.title} — {span}"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": header[:MAX_HEADER]}}
    ]
    who = (
        f"For *{escape(clip(report.recipient.label, 80))}* · "
        if report.recipient.entities is not None
        else ""
    )
    open_alerts = [f for f in report.findings if f.status != "resolved"]
    accounts = len({f.entity for f in open_alerts if f.entity})
    blocks.append(
        _context(
            f"{who}{summary} on {accounts} account{'s' if accounts != 1 else ''} · "
            f"data through {escape(format_through(report.data_as_of))}"
        )
    )
    if report.withheld:
        blocks.append(_context(":hourglass: Data is late: the report is withheld until it arrives."))
    if report.failures:
        missing = escape(clip(", ".join(report.not_computed), 500))
        blocks.append(_section(f":warning: *Not computed today:* {missing}; alerts on it may be missing."))
    body: list[tuple[dict[str, Any], int]] = []  # (block, findings it carries)
    channel = report.recipient.entities is None  # the team's channel: name each account's owner
    for severity, findings in report.findings_by_severity().items():
        body.append((_section(f"*{ICONS.get(severity, '')} {severity.capitalize()} ({len(findings)})*"), 0))
        storms = report.storms(findings)
        for rule, items in storms.items():
            line = (
                f"*{escape(rule)}* fired for {len(items)} {escape(report.entity_label.lower())}s at once"
                f"{_marker(items[0])}: {escape(clip(items[0].message, 500))} and more like it; "
                "the full list is in the archived report."
            )
            body.append((_section(line[:MAX_SECTION]), len(items)))
        ordered = sorted(
            (f for f in findings if f.rule not in storms), key=lambda f: (f.entity_name, f.entity)
        )
        for _, group in groupby(ordered, key=lambda f: f.entity):
            items = list(group)
            owner = f" · {escape(clip(items[0].owner, 80))}" if channel and items[0].owner else ""
            title = f"*{escape(clip(items[0].entity_name, 150))}*{owner}"
            lines = [
                f"• {escape(clip(f.message, 500))}{_marker(f)}"
                + (f"\n    _{escape(clip(f.why, 300))}_" if f.why else "")
                + (f"\n    _Next:_ {_linked(f.action)}" if f.action else "")
                for f in items
            ]
            for index, text in enumerate(_chunks(title, lines)):
                body.append((_section(text), len(items) if index == 0 else 0))
    if report.resolved:
        lines = [
            f"• *{escape(clip(f.entity_name, 150))}*: {escape(clip(f.message, 500))}" for f in report.resolved
        ]
        for index, text in enumerate(
            _chunks(f"*:white_check_mark: Resolved ({len(report.resolved)})*", lines)
        ):
            body.append((_section(text), len(report.resolved) if index == 0 else 0))
    room = MAX_BLOCKS - len(blocks)
    if len(body) > room:
        shown = body[: room - 1]
        hidden = sum(n for _, n in body[room - 1 :])
        blocks += [block for block, _ in shown]
        blocks.append(
            _context(
                f"…and {hidden} more finding{'s' if hidden != 1 else ''} not shown here; "
                f"the full list is in the emailed and archived report."
            )
        )
    else:
        blocks += [block for block, _ in body]
    if not report.findings:
        blocks.append(_section("No alerts for your accounts today. :white_check_mark:"))
    if report.link and len(blocks) < MAX_BLOCKS:
        blocks.append(_context(f"<{escape(report.link)}|Open the full report>"))
    return {"text": f"{header}: {summary}", "blocks": blocks}
