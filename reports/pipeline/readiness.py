"""Data readiness: whether the warehouse has the as-of date's data, and what a run does when not.

A feed with no data on the as-of day is late: the rules on it are held back and one `data_late`
finding stands for it, instead of an alert for every entity that seems to have gone quiet. A
date in the future, or one with no data at all, is refused rather than reported as dashes.
"""

from __future__ import annotations

from datetime import datetime

from reports.errors import NotReady
from reports.findings import Finding
from reports.kpis.frames import KpiData
from reports.kpis.periods import Clock, Period


def refuse_the_future(clock: Clock, now: datetime | None = None) -> None:
    today = (now or datetime.now(clock.tz)).astimezone(clock.tz).date()
    if clock.as_of > today:
        raise NotReady(
            f"the as-of date {clock.as_of} is in the future (today is {today} in {clock.timezone})",
            "pass an as-of date up to today; yesterday is the default",
        )


def refuse_no_data(job: str, kpis: dict[str, KpiData], window: Period, failed: bool) -> None:
    """No KPI of the job has a single row in the whole query window: nothing to report on."""
    if failed or not kpis or any(len(kpi.frame) for kpi in kpis.values()):
        return
    raise NotReady(
        f"no data at all for job '{job}' between {window.start} and {window.end}",
        "check that the warehouse is loaded, or pass an as-of date its data covers",
    )


def data_late(kpi: KpiData, clock: Clock) -> Finding:
    """One finding for a feed whose load has not landed, instead of an alert per entity."""
    since = kpi.newest.strftime("%Y-%m-%d %H:%M") if kpi.newest else "never"
    age = kpi.age(clock)
    return Finding(
        rule="data_late",
        severity="warning",
        kpi=kpi.name,
        entity="",
        entity_name=f"all {kpi.config.entity}s",
        value=None if age is None else age.total_seconds(),
        reference=None,
        threshold=None,
        unit="seconds",
        message=(
            f"{kpi.config.label}: no data for {clock.as_of} yet (newest data ends {since}); "
            "its alerts are held back until it arrives"
        ),
        as_of=clock.as_of,
    )
