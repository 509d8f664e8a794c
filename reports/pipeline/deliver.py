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
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import jinja2
from pydantic import BaseModel

from notifiers import NOTIFIERS, Attachment, DeliveryError, Message, Notifier
from notifiers.outbox import OutboxNotifier
from reports.config.models import DeliveryPolicy, HeraldConfig
from reports.formatting import clip
from reports.pipeline.compute import JobRun, Progress
from reports.render.html import Bundled, email_body, email_bundle
from reports.render.outputs import Rendered, archive_link
from reports.render.slack import escape as slack_escape
from reports.render.slack import slack_message
from reports.render.templates import TemplateError
from reports.report.model import EVERYONE, Report
from reports.store import Planned, Store

log = logging.getLogger(__name__)


@dataclass
class Delivery:
    channel: str  # email, slack or outbox
    recipient: str  # what the log and the user see; never a secret
    address: str  # what the notifier sends to
    message: Message
    alerts: tuple[int, ...] = ()  # the alerts it tells of, so a resolve can reply in its thread
    refused: str | None = None  # why it cannot be sent at all: an owner address in the data is not one

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
    status: str  # sent, filed (to the outbox), skipped (went out before) or failed
    attempts: int
    provider_id: str | None = None
    error: str | None = None


def filing(channels: dict[str, Notifier]) -> set[str]:
    """The channels the outbox stands in for."""
    return {name for name, channel in channels.items() if isinstance(channel, OutboxNotifier)}


def channels_for(config: HeraldConfig, outbox: Path, dry_run: bool) -> dict[str, Notifier]:
    """Every registered channel, live where its settings allow; the outbox stands in for the rest."""
    channels: dict[str, Notifier] = {}
    for name, cls in NOTIFIERS.items():
        settings = _paths_from_config(config, getattr(config.channels, name, None))
        live = None if dry_run else cls.connect(settings)
        channels[name] = live or OutboxNotifier(outbox, cls, settings, config.base_dir)
    return channels


def _paths_from_config(config: HeraldConfig, settings: BaseModel | None) -> BaseModel | None:
    """A channel's file settings (a CA bundle) are relative to config.yaml's folder, like every
    other path in it."""
    if settings is None:
        return None
    paths = {k: config.path(v) for k, v in settings if isinstance(v, Path) and not v.is_absolute()}
    return settings.model_copy(update=paths) if paths else settings


def _entry(entry: BaseModel) -> tuple[str, BaseModel]:
    """A `deliver:` entry is a mapping with one key, the channel's name: (channel, its settings)."""
    (channel,) = type(entry).model_fields
    return channel, getattr(entry, channel)


def _attachments(rendered: Rendered) -> list[Attachment]:
    return [Attachment(path.name, path.read_bytes(), media) for path, media in rendered.attached]


def compose(rendered: Rendered, env: jinja2.Environment, subject: str | None = None) -> Message:
    """One report's message, from the body and Slack blocks rendered with it; each channel uses
    what suits it. `subject` is a `deliver:` entry's template, rendered by the report's environment."""
    body = rendered.email or email_body(
        env, rendered.report, [p.name for p, _ in rendered.attached], links=rendered.links
    )
    slack = rendered.slack or slack_message(rendered.report)
    return Message(
        subject_line(rendered.report, env, subject) if subject is not None else body.subject,
        body.text,
        body.html,
        body.inline,
        _attachments(rendered),
        blocks=slack.get("blocks"),
        summary=slack.get("text"),
    )


def subject_line(report: Report, env: jinja2.Environment, subject: str) -> str:
    """A `deliver:` entry's subject template rendered for `report`: plain text (nothing in it is
    HTML-escaped), on one line (a newline in a header would start another)."""
    try:
        template = env.overlay(autoescape=False).from_string(subject)
        line = template.render(report=report, period=report.period)
    except jinja2.TemplateError as exc:
        raise TemplateError(
            f"the email subject {subject!r} cannot be rendered: {exc}",
            "a subject may use {{ report.title }}, {{ period.start }} and the report's other fields",
        ) from None
    return " ".join(line.split())


def plan(config: HeraldConfig, results: list[Rendered], env: jinja2.Environment) -> list[Delivery]:
    """Every delivery the job's `deliver:` asks for: fixed recipients get everyone's report,
    an owner route gets each scoped recipient their own, at their address for that channel."""
    told = [r for r in results if not r.quiet]
    everyone = next((r for r in told if r.report.recipient is EVERYONE), None)
    scoped = [r for r in told if r.report.recipient is not EVERYONE]
    report_config = config.reports[results[0].report.job] if results else None
    planned: list[Delivery] = []
    for entry in report_config.deliver if report_config else []:
        channel, target = _entry(entry)
        for route in NOTIFIERS[channel].routes(target):
            if route.owner:
                for address, group in _by_address(scoped, channel).items():
                    if len(group) == 1:
                        message = compose(group[0], env, route.subject)
                    else:  # an owner of many entities gets one message, not one per entity
                        message = compose_bundle(config, group, env, route.subject)
                    alerts = tuple(a for rendered in group for a in _alerts(rendered))
                    delivery = Delivery(channel, _shown(address), address, message, alerts)
                    if not NOTIFIERS[channel].accepts(address):
                        delivery.refused = (
                            f"{group[0].report.recipient.label}'s {channel} address in the warehouse "
                            f"is not one ({_shown(address)}) — fix it in the data the entity query reads"
                        )
                    planned.append(delivery)
            elif everyone is not None:
                message = compose(everyone, env, route.subject)
                planned.append(Delivery(channel, route.label, route.address, message, _alerts(everyone)))
    return planned


def _by_address(scoped: list[Rendered], channel: str) -> dict[str, list[Rendered]]:
    """Scoped reports by where they go on `channel`: one owner may look after many entities."""
    found: dict[str, list[Rendered]] = {}
    for rendered in scoped:
        address = rendered.report.recipient.contact(channel)
        if address:
            found.setdefault(address, []).append(rendered)
    return found


BUNDLE_ATTACHMENTS = 10  # past this many reports in one message, each is linked from the archive


def compose_bundle(
    config: HeraldConfig, group: list[Rendered], env: jinja2.Environment, subject: str | None = None
) -> Message:
    """One message carrying many entities' reports to their owner: attached while they are few
    and small enough together, else filed in the archive and linked, one line per entity."""
    cap = (config.channels.email.max_attachment_mb if config.channels.email else 10) * 1024 * 1024
    # Each report's own file (the PDF): attached when there are few and they fit, else linked.
    group = sorted(group, key=lambda r: (-len(r.report.open_alerts), r.report.recipient.label.casefold()))
    files = [(r, r.attached[0] if r.attached else None) for r in group]
    size = sum(found[0].stat().st_size for _, found in files if found)
    attach = len(group) <= BUNDLE_ATTACHMENTS and size <= cap
    items, attachments = [], []
    for rendered, found in files:
        main = found[0] if found else (rendered.files[0] if rendered.files else None)
        name = main.name if main else ""
        if attach and found:
            items.append(Bundled(rendered.report, name))
            attachments.append(Attachment(found[0].name, found[0].read_bytes(), found[1]))
        else:
            link = rendered.links.get(name) or (archive_link(config, main) if main else None)
            items.append(Bundled(rendered.report, name, link))
    if subject is not None:  # the subject alone: composing the first report's message draws its charts
        subject = subject_line(group[0].report, env, subject)
    job = config.reports[group[0].report.job]
    body = email_bundle(env, job.title or group[0].report.job, items, subject)
    lines = [
        f"• *{slack_escape(clip(i.report.recipient.label, 150))}*"
        + (f" · {len(i.report.open_alerts)} open alerts" if i.report.open_alerts else "")
        + (f" · <{slack_escape(i.link)}|open>" if i.link and i.link.startswith("http") else "")
        for i in items
    ]
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": f"*{slack_escape(body.subject)}*"}}]
    for start in range(0, len(lines), 40):  # a section holds 3,000 characters
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines[start : start + 40])}}
        )
    return Message(
        body.subject, body.text, body.html, {}, attachments, blocks=blocks[:50], summary=body.subject
    )


def _shown(address: str) -> str:
    """An address from the data as the log shows it: control characters visible, length capped."""
    text = address.encode("unicode_escape").decode("ascii")
    return text if len(text) <= 80 else text[:79] + "…"


def _alerts(rendered: Rendered) -> tuple[int, ...]:
    """The firing alerts a message tells of: a later "resolved" replies in its thread."""
    return tuple(
        f.alert_id for f in rendered.report.findings if f.alert_id is not None and f.status != "resolved"
    )


def failure_notice(job: str, as_of: str, owners: list[str], problems: list[str]) -> list[Delivery]:
    """Tell the job's owners what went wrong, each on the channel their address belongs to."""
    text = (
        f"Herald's job '{job}' for {as_of} did not complete cleanly.\n\n"
        + "\n".join(f"- {p}" for p in problems)
        + "\n\nReports went out marked where numbers could not be computed; see `run.py history`."
    )
    subject = f"Herald: job {job} failed for {as_of}"
    message = Message(subject, text, blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": text}}])
    return [Delivery(owner_channel(owner), owner, owner, message) for owner in owners]


def late_notice(run: JobRun, owners: list[str]) -> list[Delivery]:
    """Tell the job's owners which feeds had no data for the as-of date, and what was held back."""
    labels = [run.kpis[f.kpi].config.label for f in run.findings if f.rule == "data_late"]
    text = (
        f"Herald's job '{run.job}' for {run.as_of} ran before its data arrived: "
        + ", ".join(labels)
        + f" had no data for {run.as_of}.\n\nAlerts on "
        + ("that feed" if len(labels) == 1 else "those feeds")
        + " were held back and reports mark the figures as not current."
        + "".join(f"\n- {note}" for note in run.notes)
    )
    subject = f"Herald: data late for job {run.job} ({run.as_of})"
    message = Message(subject, text, blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": text}}])
    return [Delivery(owner_channel(owner), f"{owner} (data late)", owner, message) for owner in owners]


def owner_channel(address: str) -> str:
    """The channel an owner's address belongs to (config validation makes sure one does)."""
    return next(name for name, cls in NOTIFIERS.items() if cls.accepts(address))


def record(
    deliveries: list[Delivery],
    store: Store,
    run_id: int,
    job: str,
    as_of: str,
    resend: bool = False,
    filing: set[str] | frozenset[str] = frozenset(),
) -> tuple[list[tuple[int, Delivery]], list[Outcome]]:
    """Keep each delivery's message on disk and record its row, before any is tried.

    A delivery that already went out for the same (job, as-of, channel, recipient), or that
    another unfinished run is sending, is not recorded again unless `resend`: it comes back as a
    `skipped` outcome. For the channels in `filing` (the outbox stands in for them) a filed copy
    counts as gone out; for a live channel only a sent one does.
    """
    planned = [
        Planned(
            d.channel,
            d.recipient,
            d.address,
            d.content_hash,
            store.keep_message(d.content_hash, d.message.to_json()),
            d.alerts,
        )
        for d in deliveries
    ]
    pending, skipped = [], []
    for delivery, result in zip(
        deliveries, store.add_deliveries(run_id, job, as_of, planned, resend, filing), strict=True
    ):
        if isinstance(result, int) and delivery.refused:  # recorded as failed, never tried
            store.update_delivery(result, "failed", attempts=0, error=delivery.refused)
            skipped.append(Outcome(delivery, "failed", 0, error=delivery.refused))
        elif isinstance(result, int):
            pending.append((result, delivery))
        else:
            gone = result.status in ("sent", "filed")
            reason = (
                f"already {result.status} (run {result.run_id})"
                if gone
                else f"being sent by run {result.run_id}"
            )
            skipped.append(Outcome(delivery, "skipped", 0, result.provider_id, reason))
    return pending, skipped


def unsent(
    store: Store, run_ids: list[int], statuses: tuple[str, ...] = ("pending", "retrying")
) -> list[tuple[int, Delivery]]:
    """Recorded deliveries of `run_ids` in `statuses`, with the messages kept for them."""
    found = []
    for row in store.deliveries(run_ids, statuses):
        message = Message.from_json(store.read_message(row.message)) if row.message else None
        if message is not None and row.address is not None:
            found.append((row.id, Delivery(row.channel, row.recipient, row.address, message)))
    return found


def _send(channel: Notifier, delivery: Delivery) -> str:
    """Send, turning any other fault into a permanent delivery failure: a delivery ends sent or
    failed, never left pending by an exception."""
    try:
        return channel.send(delivery.message, delivery.address)
    except DeliveryError:
        raise
    except Exception as exc:
        log.debug("%s to %s", delivery.channel, delivery.recipient, exc_info=True)
        raise DeliveryError(
            f"{delivery.channel} could not send it: {type(exc).__name__}: {str(exc)[:200]}",
            "see `run.py -v` for the details",
            transient=False,
        ) from None


class Interrupted(Exception):
    """Herald is stopping: the delivery in flight finished, the rest stay recorded for the next start."""


def deliver(
    pending: list[tuple[int, Delivery]],
    channels: dict[str, Notifier],
    store: Store,
    policy: DeliveryPolicy,
    sleep: Callable[[float], None] = time.sleep,
    stop: threading.Event | None = None,
    progress: Progress | None = None,
) -> list[Outcome]:
    """Send recorded deliveries, retrying transient failures in rounds; every attempt lands in the
    store. An outbox stand-in files a message rather than sending it, and says so: `filed`.
    When `stop` is set, the delivery in flight finishes and `Interrupted` is raised."""
    outcomes: dict[int, Outcome] = {}
    waiting = list(pending)
    if progress and pending:
        progress("delivering", 0, len(pending))
    for attempt in range(1, policy.attempts + 1):
        retry = []
        for row, delivery in waiting:
            if stop is not None and stop.is_set():
                raise Interrupted
            channel = channels[delivery.channel]
            try:
                provider_id = _send(channel, delivery)
            except DeliveryError as exc:
                last = attempt == policy.attempts or not exc.transient
                gave_up = last and exc.transient
                error = f"{exc} (gave up after {attempt} tries)" if gave_up else str(exc)
                status = "failed" if last else "retrying"
                store.update_delivery(row, status, attempts=attempt, error=error)
                log.warning(
                    "%s to %s: %s (attempt %d, %s)",
                    delivery.channel,
                    delivery.recipient,
                    error,
                    attempt,
                    status,
                    extra={"event": "delivery", "status": status},
                )
                if last:
                    outcomes[row] = Outcome(delivery, "failed", attempt, error=error)
                    if progress:
                        progress("delivering", len(outcomes), len(pending))
                else:
                    retry.append((row, delivery))
                continue
            status = "filed" if isinstance(channel, OutboxNotifier) else "sent"
            store.update_delivery(row, status, attempts=attempt, provider_id=provider_id)
            log.info(
                "%s to %s: %s",
                delivery.channel,
                delivery.recipient,
                status,
                extra={"event": "delivery", "status": status},
            )
            outcomes[row] = Outcome(delivery, status, attempt, provider_id)
            if progress:
                progress("delivering", len(outcomes), len(pending))
        if not retry:
            break
        wait = min(policy.max_backoff_seconds, policy.backoff_seconds * 2 ** (attempt - 1))
        sleep(wait * random.uniform(0.5, 1.0))  # jitter, so retries from many runs do not line up
        waiting = retry
    return [outcomes[row] for row, _ in pending]
