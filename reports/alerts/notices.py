"""Messages the alert lifecycle adds to a run: "resolved" replies in the Slack threads where the
alerts were first posted, and escalations of critical alerts that have fired too long."""

from __future__ import annotations

from notifiers import Message
from reports.alerts.book import Alert, AlertBook
from reports.findings import Finding
from reports.pipeline.deliver import Delivery, owner_channel
from reports.render.slack import escape
from reports.store import Store


def thread_replies(store: Store, resolved: list[Alert]) -> list[Delivery]:
    """One reply per Slack message that told of alerts now resolved, in that message's thread."""
    threads = AlertBook(store).threads([a.id for a in resolved])
    by_thread: dict[tuple[str, str], list[Alert]] = {}
    for alert in resolved:
        for place in threads.get(alert.id, []):
            by_thread.setdefault(place, []).append(alert)
    replies = []
    for (address, ts), alerts in sorted(by_thread.items()):
        lines = [f"• *{escape(a.entity_name)}*: {escape(a.message)}" for a in alerts]
        text = ":white_check_mark: *Resolved*\n" + "\n".join(lines)
        summary = f"Resolved: {len(alerts)} alert{'s' if len(alerts) != 1 else ''}"
        message = Message(summary, text, blocks=[_section(text)], summary=summary, thread_ts=ts)
        replies.append(Delivery("slack", f"{address} (thread {ts})", address, message))
    return replies


def escalations(job: str, findings: list[Finding], to: list[str]) -> list[Delivery]:
    """Critical alerts that have fired longer than the job's `escalate.after`, to its `escalate.to`."""
    if not findings or not to:
        return []
    lines = [
        f"• *{escape(f.entity_name)}*"
        + (f" (owner: {escape(f.owner)})" if f.owner else "")
        + f": {escape(f.message)} — firing since {f.since}"
        for f in findings
    ]
    text = f":rotating_light: *Escalated from {escape(job)}*\n" + "\n".join(lines)
    subject = f"Herald: {len(findings)} critical alert{'s' if len(findings) != 1 else ''} escalated ({job})"
    plain = text.replace("*", "").replace(":rotating_light: ", "")
    message = Message(subject, plain, blocks=[_section(text)], summary=subject)
    return [Delivery(owner_channel(a), f"{a} (escalation)", a, message) for a in to]


def _section(text: str) -> dict:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}
