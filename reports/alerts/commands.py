"""`run.py alerts`, `silence`, `silences` and `unsilence`: what fires, and holding alerts back."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from reports.alerts.book import AlertBook
from reports.config.load import load_config
from reports.errors import UsageError
from reports.formatting import table
from reports.store import Store, now_utc

_SPAN = re.compile(r"^(\d+)\s*([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def _book(config_path: Path) -> tuple[AlertBook, set[str]]:
    config = load_config(config_path)
    return AlertBook(Store(config.path(config.store))), {r.name for r in config.rules}


def alerts(config_path: Path, job: str | None = None) -> int:
    """Firing and pending alerts, and whether a silence holds them back."""
    book, _ = _book(config_path)
    silences = book.silences()
    rows = []
    for alert in book.alerts(job, ("firing", "pending")):
        silenced = next(
            (s for s in silences if s.covers(alert.rule, alert.entity, alert.entity_name, now_utc())), None
        )
        state = f"silenced (#{silenced.id})" if silenced else alert.state
        since = (
            alert.since
            if alert.state == "firing"
            else f"{alert.streak} run{'' if alert.streak == 1 else 's'}"
        )
        rows.append(
            [
                alert.job,
                alert.rule,
                alert.severity,
                alert.entity_name,
                alert.owner or "—",
                state,
                since or "—",
                alert.notified or "—",
            ]
        )
    if not rows:
        print("No alerts are firing or pending" + (f" for {job}" if job else "") + ".")
        return 0
    print(table(["JOB", "RULE", "SEVERITY", "ENTITY", "OWNER", "STATE", "SINCE", "LAST TOLD"], rows))
    return 0


def silence(config_path: Path, rule: str, entity: str | None, span: str, reason: str) -> int:
    book, rules = _book(config_path)
    if rule not in rules and rule != "data_late":
        raise UsageError(f"there is no rule named '{rule}'", f"use one of: {', '.join(sorted(rules))}")
    match = _SPAN.match(span.strip())
    if not match:
        raise UsageError(
            f"'{span}' is not a length of time", "write a number and m, h, d or w, e.g. --for 2d"
        )
    length = timedelta(**{_UNITS[match[2]]: int(match[1])})
    start = now_utc()
    silence_id = book.silence(rule, entity, start, start + length, reason)
    what = f"{rule} for {entity}" if entity else f"{rule} for every entity"
    print(f"silence #{silence_id}: {what} until {(start + length):%Y-%m-%d %H:%M} UTC — {reason}")
    return 0


def silences(config_path: Path) -> int:
    book, _ = _book(config_path)
    found = book.silences()
    if not found:
        print("No silences in force.")
        return 0
    rows = [
        [f"#{s.id}", s.rule, s.entity or "every entity", s.ends[:16].replace("T", " "), s.reason]
        for s in found
    ]
    print(table(["ID", "RULE", "ENTITY", "ENDS (UTC)", "REASON"], rows))
    return 0


def unsilence(config_path: Path, silence_id: int) -> int:
    book, _ = _book(config_path)
    if not book.unsilence(silence_id):
        raise UsageError(f"there is no silence #{silence_id}", "see `run.py silences`")
    print(f"silence #{silence_id} removed")
    return 0
