"""Delivery: route each finished report to its recipients, send, retry, and record every attempt.

At least once and never silently: each (run, channel, recipient) gets a row in the store before
the first try; transient failures are retried with exponential backoff and jitter, in rounds,
so one slow recipient never holds up the others; what still fails is recorded and reported.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import jinja2

from notifiers import Attachment, DeliveryError, Message, Notifier
from notifiers.email import EmailDelivery, EmailNotifier
from notifiers.outbox import OutboxDelivery, OutboxNotifier
from notifiers.slack import SlackDelivery, SlackNotifier
from reports.config.models import DeliveryPolicy, HeraldConfig
from reports.render.outputs import Rendered
from reports.report.model import EVERYONE, Report
from reports.store import Store

log = logging.getLogger(__name__)


@dataclass
class Delivery:
    channel: str  # email, slack or outbox
    recipient: str  # what the log and the user see; never a secret
    address: str  # what the notifier sends to
    message: Message

    @property
    def content_hash(self) -> str:
        digest = hashlib.sha256()
        digest.update(
            json.dumps(
                [self.message.subject, self.message.text, self.message.html, self.message.blocks],
                sort_keys=True,
                default=str,
            ).encode()
        )
        for attachment in self.message.attachments:
            digest.update(attachment.data)
        return digest.hexdigest()[:16]


@dataclass
class Outcome:
    delivery: Delivery
    status: str  # sent or failed
    attempts: int
    provider_id: str | None = None
    error: str | None = None


def channels_for(config: HeraldConfig, outbox: Path, dry_run: bool) -> dict[str, Notifier]:
    """Real channels where credentials are configured; the outbox stands in for the rest."""
    email, slack = config.channels.email, config.channels.slack
    sender = email.sender if email else "herald@localhost"
    return {
        "email": EmailNotifier(email) if email and not dry_run else OutboxNotifier(outbox, "email", sender),
        "slack": SlackNotifier(slack)
        if slack and slack.token and not dry_run
        else OutboxNotifier(outbox, "slack"),
        "outbox": OutboxNotifier(outbox, "outbox", sender),
    }


def _subject(template: str | None, report: Report) -> str | None:
    if template is None:
        return None
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)
    return env.from_string(template).render(report=report, period=report.period).strip()


def _attachments(rendered: Rendered) -> list[Attachment]:
    return [Attachment(path.name, path.read_bytes(), media) for path, media in rendered.attached]


def email_message(rendered: Rendered, subject: str | None) -> Message:
    """The email for one report, from the body rendered with it; `subject` is the entry's template."""
    body = rendered.email
    assert body is not None, "render_run renders every report's email body"
    title = _subject(subject, rendered.report) or body.subject
    return Message(title, body.text, body.html, body.inline, _attachments(rendered))


def slack_message_for(rendered: Rendered, with_files: bool) -> Message:
    payload = rendered.slack
    files = _attachments(rendered) if with_files else []
    return Message(payload["text"], payload["text"], blocks=payload["blocks"], attachments=files)


def plan(config: HeraldConfig, results: list[Rendered]) -> list[Delivery]:
    """Every delivery the job's `deliver:` asks for: fixed recipients get everyone's report,
    `to: owner` gets each owner their own."""
    everyone = next((r for r in results if r.report.recipient is EVERYONE), None)
    scoped = [r for r in results if r.report.recipient is not EVERYONE]
    report_config = config.reports[results[0].report.job] if results else None
    planned: list[Delivery] = []
    for entry in report_config.deliver if report_config else []:
        if isinstance(entry, EmailDelivery):
            target = entry.email
            if target.to == "owner":
                planned += [
                    Delivery(
                        "email",
                        r.report.recipient.email,
                        r.report.recipient.email,
                        email_message(r, target.subject),
                    )
                    for r in scoped
                    if r.report.recipient.email
                ]
            elif everyone:
                message = email_message(everyone, target.subject)
                planned += [Delivery("email", address, address, message) for address in target.to]
        elif isinstance(entry, SlackDelivery):
            target = entry.slack
            if target.to == "owner":
                planned += [
                    Delivery(
                        "slack",
                        r.report.recipient.slack,
                        r.report.recipient.slack,
                        slack_message_for(r, with_files=True),
                    )
                    for r in scoped
                    if r.report.recipient.slack
                ]
            elif everyone and target.channel:
                planned.append(
                    Delivery(
                        "slack", target.channel, target.channel, slack_message_for(everyone, with_files=True)
                    )
                )
            elif everyone and target.webhook:
                planned.append(
                    Delivery(
                        "slack", "webhook", target.webhook, slack_message_for(everyone, with_files=False)
                    )
                )
        elif isinstance(entry, OutboxDelivery) and everyone:
            planned.append(
                Delivery(
                    "outbox",
                    str(entry.outbox.path or "outbox"),
                    str(config.path(entry.outbox.path)) if entry.outbox.path else "",
                    email_message(everyone, None),
                )
            )
    return planned


def failure_notice(job: str, as_of: str, owners: list[str], problems: list[str]) -> list[Delivery]:
    """Tell the job's owners what went wrong: email addresses by email, `#channels` on Slack."""
    text = (
        f"Herald's job '{job}' for {as_of} did not complete cleanly.\n\n"
        + "\n".join(f"- {p}" for p in problems)
        + "\n\nReports went out marked where numbers could not be computed; see `run.py history`."
    )
    subject = f"Herald: job {job} failed for {as_of}"
    message = Message(subject, text, blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": text}}])
    return [
        Delivery("slack" if owner.startswith("#") else "email", owner, owner, message) for owner in owners
    ]


def deliver(
    deliveries: list[Delivery],
    channels: dict[str, Notifier],
    store: Store,
    run_id: int,
    policy: DeliveryPolicy,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Outcome]:
    """Send everything, retrying transient failures in rounds; every attempt lands in the store."""
    rows = {id(d): store.add_delivery(run_id, d.channel, d.recipient, d.content_hash) for d in deliveries}
    outcomes: dict[int, Outcome] = {}
    waiting = list(deliveries)
    for attempt in range(1, policy.attempts + 1):
        retry = []
        for delivery in waiting:
            row = rows[id(delivery)]
            try:
                provider_id = channels[delivery.channel].send(delivery.message, delivery.address)
            except DeliveryError as exc:
                error = str(exc)
                last = attempt == policy.attempts or not exc.transient
                status = "failed" if last else "retrying"
                store.update_delivery(row, status, attempts=attempt, error=error)
                log.warning(
                    "%s to %s: %s (attempt %d, %s)",
                    delivery.channel,
                    delivery.recipient,
                    error,
                    attempt,
                    status,
                )
                if last:
                    outcomes[id(delivery)] = Outcome(delivery, "failed", attempt, error=error)
                else:
                    retry.append(delivery)
                continue
            store.update_delivery(row, "sent", attempts=attempt, provider_id=provider_id)
            outcomes[id(delivery)] = Outcome(delivery, "sent", attempt, provider_id)
        if not retry:
            break
        wait = min(policy.max_backoff_seconds, policy.backoff_seconds * 2 ** (attempt - 1))
        sleep(wait * random.uniform(0.5, 1.0))  # jitter, so retries from many runs do not line up
        waiting = retry
    return [outcomes[id(d)] for d in deliveries]
