"""Silencing from the archive: the alert book's own silences (as `run.py silence` makes them),
with an end time and a reason, and lifting one; each is written to the audit log."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from starlette.requests import Request

from reports.alerts.book import AlertBook
from reports.config.models import HeraldConfig
from reports.store import now_utc
from reports.web.auth import client
from reports.web.queries import Reading

LONGEST = timedelta(days=90)
MAX_REASON = 300


class Refused(Exception):
    """A silence that cannot be made or lifted; `status` is the HTTP answer."""

    def __init__(self, text: str, status: int = 400) -> None:
        super().__init__(text)
        self.status = status


def default_end(config: HeraldConfig) -> datetime:
    """What the form offers: a day from now, in the config's time zone."""
    return (now_utc() + timedelta(days=1)).astimezone(ZoneInfo(config.timezone))


def parse_end(text: str, config: HeraldConfig) -> datetime:
    """An end time from a form (`2026-11-24T10:00`, the config's zone) or the API (ISO 8601,
    with an offset or in UTC)."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise Refused(f"'{text[:40]}' is not a date and time; write e.g. 2026-11-24T10:00") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(config.timezone))
    return moment


def add(request: Request, reading: Reading, rule: str, entity: str | None, ends: str, reason: str) -> int:
    """Silence `rule` (for `entity`, or every entity) until `ends`; the new silence's id."""
    config = reading.config
    rules = {r.name for r in config.rules} | {"data_late"}
    if rule not in rules:
        raise Refused(f"there is no rule named '{rule[:60]}'", 404)
    if not reading.may_silence(rule, entity):
        raise Refused("there is no such alert among yours", 404)
    reason = " ".join(reason.split())
    if not reason:
        raise Refused("say why, for whoever wonders later: the reason is required")
    if len(reason) > MAX_REASON:
        raise Refused(f"the reason is longer than {MAX_REASON} characters")
    start, end = now_utc(), parse_end(ends, config)
    if end <= start:
        raise Refused("the end time has passed; choose one in the future")
    if end - start > LONGEST:
        raise Refused("a silence lasts 90 days at most; set a nearer end time")
    silence_id = AlertBook(reading.store).silence(rule, entity, start, end, reason)
    what = f"{rule} for {entity}" if entity else f"{rule} for every entity"
    reading.archive.audit(
        reading.viewer.who,
        "silence",
        f"silence {silence_id}",
        f"{what} until {end.isoformat(timespec='minutes')}: {reason}",
        client(request),
    )
    return silence_id


def lift(request: Request, reading: Reading, silence_id: int) -> None:
    """End a silence in force, if the reader may."""
    shown = {s["id"]: s for s in reading.silences()}
    silence = shown.get(silence_id)
    if silence is None or not silence["may_lift"]:
        raise Refused(f"there is no silence #{silence_id} among yours", 404)
    AlertBook(reading.store).unsilence(silence_id)
    reading.archive.audit(
        reading.viewer.who,
        "unsilence",
        f"silence {silence_id}",
        f"{silence['rule']} for {silence['entity'] or 'every entity'}: {silence['reason']}",
        client(request),
    )
