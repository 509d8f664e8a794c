"""The alert lifecycle: turn one run's findings into alerts with a history, and decide what is news.

Per (job, rule, entity): `pending` while the condition has held for fewer runs in a row than the
rule's `for:` (counted over the runs Herald made, not recomputed from the warehouse), `firing`
from then on, `resolved` on the first run it no longer holds. A run's report shows what fires
(new or ongoing) and what resolved since the last run; an alert is news when it is new, resolved,
or firing and due for a reminder (`repeat_every`). Silenced alerts are left out; in a mute window
nothing is news, so it is told after the window. Durations run on the as-of calendar: a run
repeated later reads the same.

Where the book has no earlier run of the job to count from (its first run, or after a gap), an
alert starts with the rule's own look back over the warehouse, so a new install does not wait
N runs to see what has plainly been true for N runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from reports.alerts.book import Alert, AlertBook, Silence
from reports.config.models import HeraldConfig, MuteWindow, ReportConfig
from reports.findings import Finding
from reports.pipeline.compute import JobRun
from reports.store import Store

WEEKDAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


@dataclass
class Lifecycle:
    """What one run made of its alerts."""

    findings: list[Finding] = field(default_factory=list)  # firing and just resolved, for the report
    resolved: list[Alert] = field(default_factory=list)  # resolved on this run, after being told
    escalate: list[Finding] = field(default_factory=list)  # critical, firing long enough, not yet escalated
    muted: bool = False
    tracked: bool = True  # False for a run older than the book (a backfill): nothing was changed


def untracked(run: JobRun) -> Lifecycle:
    """A run the book does not follow (a backfill): its findings as they are, all of them news."""
    return Lifecycle(findings=list(run.findings), tracked=False)


def track(config: HeraldConfig, run: JobRun, store: Store, moment: datetime) -> Lifecycle:
    """Update the book with `run` and say what it shows; `moment` is when the run is (for mutes
    and silences): its fire time under `serve`, now from the command line."""
    book = AlertBook(store)
    as_of = run.as_of.isoformat()
    latest = book.latest_evaluation(run.job)
    if latest is not None and latest > as_of:  # older than what the book has seen: leave it be
        return untracked(run)
    previous = run.clock.shift(run.clock.current, 1).end.isoformat()
    counted = store.ran(run.job, previous)
    known = {(a.rule, a.entity): a for a in book.alerts(run.job)}
    sustained = {_key(f) for f in run.findings}
    rules = {r.name: r for r in config.rules}
    changed: list[Alert] = []
    removed: list[int] = []
    holding = {_key(f): f for f in run.holding}
    for key, alert in known.items():
        if key in holding or alert.evaluated == as_of or alert.state == "resolved":
            continue
        if alert.rule in run.held:  # not evaluated this time (its data is late, stale or broken)
            continue
        if alert.state == "firing":
            changed.append(replace(alert, state="resolved", resolved=as_of, streak=0, evaluated=as_of))
        else:
            removed.append(alert.id)  # pending and gone: never told, nothing to resolve
    for key, finding in holding.items():
        alert = known.get(key)
        if alert is not None and alert.evaluated == as_of:
            continue  # this as-of date was counted already: a repeated run changes nothing
        needed = rules[finding.rule].for_runs if finding.rule in rules else 1
        if alert is not None and alert.state != "resolved" and alert.last_seen == previous:
            streak = alert.streak + 1
        elif not counted and key in sustained:
            streak = needed  # no run of ours to count from: the rule's look back stands in
        else:
            streak = 1
        firing = streak >= needed
        fresh = alert is None or alert.state == "resolved"
        base = alert or Alert(0, run.job, *key, "", "", "", "", "", 0, None, as_of, None, None, None, as_of)
        started = firing and (fresh or base.state != "firing")
        changed.append(
            replace(
                base,
                entity_name=finding.entity_name,
                owner=finding.owner,
                severity=finding.severity,
                message=finding.message,
                state="firing" if firing else "pending",
                streak=streak,
                since=as_of if started else (base.since if firing else None),
                last_seen=as_of,
                notified=None if started or fresh else base.notified,
                resolved=None,
                escalated=None if started or fresh else base.escalated,
                evaluated=as_of,
            )
        )
    book.save(changed, removed)
    # Show the sustained finding where there is one: its message says how many runs it held.
    return _view(config, run, book, moment, holding | {_key(f): f for f in run.findings})


def _view(
    config: HeraldConfig,
    run: JobRun,
    book: AlertBook,
    moment: datetime,
    holding: dict[tuple[str, str], Finding],
) -> Lifecycle:
    report = run.report
    as_of = run.as_of
    silences = book.silences(moment)
    muted = is_muted(report, moment, config.timezone)
    rules = {r.name: r for r in config.rules}
    view = Lifecycle(muted=muted)
    for alert in book.alerts(run.job, ("firing", "resolved")):
        if _silenced(alert, silences, moment):
            continue
        if alert.state == "firing" and alert.evaluated == as_of.isoformat():
            since = date.fromisoformat(alert.since or alert.last_seen)
            repeat = rules[alert.rule].repeat_every if alert.rule in rules else timedelta(days=1)
            told = date.fromisoformat(alert.notified) if alert.notified else None
            # Told on this very as-of date: a repeated run shows the same news (delivery skips
            # what went out, and tries again what did not).
            due = told is None or told == as_of or _days(as_of - told) >= repeat
            finding = holding.get((alert.rule, alert.entity)) or _finding(alert, as_of)
            view.findings.append(
                replace(
                    finding,
                    status="new" if since == as_of else "ongoing",
                    since=since,
                    news=due and not muted,
                    alert_id=alert.id,
                )
            )
            after = report.escalate.after if report.escalate else None
            overdue = after is not None and _days(as_of - since) >= after
            if overdue and alert.severity == "critical" and not alert.escalated and not muted:
                view.escalate.append(view.findings[-1])
        elif alert.state == "resolved" and alert.resolved == as_of.isoformat() and alert.notified:
            view.resolved.append(alert)
            view.findings.append(
                replace(_finding(alert, as_of), status="resolved", news=not muted, alert_id=alert.id)
            )
    view.findings.sort(key=lambda f: (f.status == "resolved", *f.sort_key))
    return view


def _key(finding: Finding) -> tuple[str, str]:
    """An alert's identity within its job: the rule and the entity, or `*kpi` for a finding about
    a whole table (a late or stale feed), since one rule may judge several feeds."""
    return finding.rule, finding.entity or f"*{finding.kpi}"


def _days(delta: timedelta) -> timedelta:
    return timedelta(days=delta.days)


def _finding(alert: Alert, as_of: date) -> Finding:
    return Finding(
        rule=alert.rule,
        severity=alert.severity,
        entity="" if alert.entity.startswith("*") else alert.entity,
        kpi=alert.entity[1:] if alert.entity.startswith("*") else "",
        entity_name=alert.entity_name,
        value=None,
        reference=None,
        threshold=None,
        unit="",
        message=alert.message,
        as_of=as_of,
        owner=alert.owner,
        since=date.fromisoformat(alert.since) if alert.since else None,
    )


def _silenced(alert: Alert, silences: list[Silence], moment: datetime) -> bool:
    return any(s.covers(alert.rule, alert.entity, alert.entity_name, moment) for s in silences)


def is_muted(report: ReportConfig, moment: datetime, default_timezone: str) -> bool:
    """Whether `moment` falls in one of the job's mute windows (in its schedule's zone)."""
    local = moment.astimezone(ZoneInfo(report.schedule.timezone or default_timezone))
    return any(_inside(window, local) for window in report.mute)


def _inside(window: MuteWindow, local: datetime) -> bool:
    day, now = WEEKDAY_NAMES[local.weekday()], local.time()
    if window.start <= window.until:
        return day in window.days and window.start <= now <= window.until
    # Over midnight: the evening belongs to a listed day, the small hours to the day after one.
    yesterday = WEEKDAY_NAMES[(local.weekday() - 1) % 7]
    return (day in window.days and now >= window.start) or (yesterday in window.days and now <= window.until)


def mark_told(store: Store, findings: list[Finding], as_of: date) -> None:
    """The firing alerts in messages about to go out were told on `as_of`."""
    ids = [f.alert_id for f in findings if f.alert_id is not None and f.status in ("new", "ongoing")]
    AlertBook(store).mark(sorted(set(ids)), "notified", as_of.isoformat())


def mark_escalated(store: Store, findings: list[Finding], as_of: date) -> None:
    AlertBook(store).mark(
        [f.alert_id for f in findings if f.alert_id is not None], "escalated", as_of.isoformat()
    )
