"""Build the report model from a job run, for one recipient."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import datetime

import numpy as np
import pandas as pd

from reports.config.models import HeraldConfig, OwnerColumns
from reports.formatting import as_number
from reports.kpis.frames import KpiData, compare
from reports.kpis.periods import Clock
from reports.pipeline.compute import JobRun
from reports.report.model import (
    EVERYONE,
    SECTIONS,
    Chart,
    Definition,
    Freshness,
    KpiCard,
    Mover,
    Movers,
    Recipient,
    Report,
    Rollup,
    Trend,
)


def recipients(config: HeraldConfig, run: JobRun) -> list[Recipient]:
    """Everyone, or one recipient per value of the report's `scope` column, with their entities.

    Scoped by owner, a recipient is one person, known by their email address (or Slack handle)
    rather than their display name: two owners who share a name stay two recipients, each with
    only their own entities and a folder of their own.
    """
    column = run.report.scope
    if column is None:
        return [EVERYONE]
    entities = run.entities
    owner = _owner_columns(config, run)
    if column == "entity":
        return _distinct_folders(_each_entity(entities, owner))
    by_owner = owner is not None and owner.name == column
    identity = column
    if by_owner:
        identity = next(
            (c for c in (owner.email, owner.slack) if c and c in entities and entities[c].notna().all()),
            column,
        )
    found = []
    for key, group in entities.groupby(identity, sort=True):
        first = group.iloc[0]
        email = first.get(owner.email) if by_owner and owner.email else None
        slack = first.get(owner.slack) if by_owner and owner.slack else None
        found.append(Recipient(str(key), str(first[column]), email, slack, tuple(group.index)))
    return _distinct_folders(found)


def _each_entity(entities: pd.DataFrame, owner: OwnerColumns | None) -> list[Recipient]:
    """`scope: entity`: a report per entity (a project's health review), reaching its owner."""
    names = entities["name"] if "name" in entities else pd.Series(entities.index, index=entities.index)

    def contact(column: str | None) -> list:
        if owner is None or column is None or column not in entities:
            return [None] * len(entities)
        return [None if pd.isna(v) else str(v) for v in entities[column]]

    return [
        Recipient(str(key), str(name), email, slack, (str(key),))
        for key, name, email, slack in zip(
            entities.index, names, contact(owner and owner.email), contact(owner and owner.slack), strict=True
        )
    ]


def _distinct_folders(found: list[Recipient]) -> list[Recipient]:
    """Folder names from the recipients' names, made distinct where two would be the same
    ("Ann Lee" and "ann-lee", or two people called Ann Lee) by a short digest of who they are."""
    seen: dict[str, int] = {}
    for recipient in found:
        seen[recipient.slug] = seen.get(recipient.slug, 0) + 1
    return [
        replace(r, folder=f"{r.slug[:50]}-{hashlib.sha256(r.key.encode()).hexdigest()[:8]}")
        if seen[r.slug] > 1
        else r
        for r in found
    ]


def _owner_columns(config: HeraldConfig, run: JobRun) -> OwnerColumns | None:
    kinds = {config.kpis[name].entity for name in run.kpis}
    for kind in sorted(kinds):
        if kind in config.entities:
            return config.entities[kind].owner
    return None


def build_report(
    config: HeraldConfig,
    run: JobRun,
    recipient: Recipient,
    now: datetime | None = None,
    sections: frozenset[str] = SECTIONS,
) -> Report:
    """The report for one recipient: `run` is narrowed to their entities before anything is computed."""
    report_config = run.report
    scoped = run.scoped(list(recipient.entities) if recipient.entities is not None else None)
    clock = run.clock
    kind = next((config.kpis[k].entity for k in report_config.kpis if k in config.kpis), "project")
    report = Report(
        job=run.job,
        role=report_config.role,
        title=_title(report_config.title or run.job, recipient, report_config.scope),
        grain=report_config.period,
        period=run.period,
        previous=run.previous,
        as_of=run.as_of,
        generated_at=(now or datetime.now(clock.tz)).astimezone(clock.tz),
        timezone=config.timezone,
        recipient=recipient,
        entity_label=config.entities[kind].label if kind in config.entities else "Entity",
        page_size=report_config.page_size,
        group_over=report_config.group_over,
        findings=list(scoped.findings),
        failures=list(run.failures),
        notes=list(run.notes),
        entity_count=len(scoped.entities),
    )
    for name in report_config.kpis:
        report.cards.append(_card(config, scoped, name))
        kpi = scoped.kpis.get(name)
        if kpi is None:
            continue
        report.definitions.append(_definition(config, name))
        report.freshness.append(_freshness(kpi, clock))
        wanted = "trends" in sections or ("headline" in sections and not report.trends)
        if wanted and (trend := _trend(report, kpi, report_config.trend_periods, clock)):
            report.trends.append(trend)
    report.freshness += [_freshness(k, clock) for n, k in scoped.kpis.items() if n not in report_config.kpis]
    headline = next((scoped.kpis[n] for n in report_config.kpis if n in scoped.kpis), None)
    # Movers and the spread of changes say nothing about one entity: its report leaves them out.
    if headline is not None and "movers" in sections and len(scoped.entities) > 1:
        _movers_and_health(report, scoped, headline, report_config.top_movers)
    if "rollups" in sections:
        report.rollups = _rollups(config, scoped, report_config.kpis, kind)
    if "daily" in sections:
        report.daily = _daily(scoped, report_config.kpis, config, kind)
    return report


def _title(title: str, recipient: Recipient, scope: str | None) -> str:
    """A report about one entity is titled with its name: "Project health — Willow Media"."""
    return f"{title} — {recipient.label}" if scope == "entity" and recipient is not EVERYONE else title


def _add(report: Report, chart: Chart) -> str:
    report.charts[chart.id] = chart
    return chart.id


def _card(config: HeraldConfig, run: JobRun, name: str) -> KpiCard:
    kpi_config = config.kpis[name]
    base = {
        "kpi": name,
        "label": kpi_config.label,
        "unit": kpi_config.unit,
        "higher_is_better": kpi_config.higher_is_better,
    }
    kpi = run.kpis.get(name)
    if kpi is None:
        reason = next((f for f in run.failures if f"KPI '{name}'" in f), "the query failed")
        return KpiCard(**base, value=None, previous=None, change=None, change_pct=None, error=reason)
    now, before = as_number(kpi.total(run.period)), as_number(kpi.total(run.previous))
    # As `compare` has it: no change without both figures, no change in % from nothing.
    change = now - before if now is not None and before is not None else None
    change_pct = change / abs(before) * 100 if change is not None and before else None
    return KpiCard(
        **base,
        value=now,
        previous=before,
        change=change,
        change_pct=as_number(change_pct),
        stale=kpi.is_stale(run.clock) or name in run.late,
    )


def _trend(report: Report, kpi: KpiData, count: int, clock: Clock) -> Trend | None:
    """The KPI's last `count` periods and the `count` before; None when it has no figure in any
    of them (a project without a CRM integration): an empty chart tells the reader nothing."""
    spans = clock.trailing(2 * count)
    if kpi.window.start > spans[0].start:
        return None  # read only for its card and rules, not as far back as a trend (`shows`)
    table = kpi.series(spans, kpi.everyone())
    values = [as_number(v) for v in (table.iloc[0] if len(table) else [None] * len(spans))]
    # A past period the data only partly covers would plot as a false dip: leave it out.
    covered = np.unique(kpi.frame["day"].to_numpy().astype("datetime64[D]"))  # days, not rows
    for index, span in enumerate(spans[:-1]):
        first, last = np.datetime64(span.start, "D"), np.datetime64(span.end, "D")
        if covered.searchsorted(last, "right") - covered.searchsorted(first) < span.days:
            values[index] = None
    if all(v is None for v in values):
        return None
    labels = [
        f"{p.start.day} {p.start:%b}" if report.grain != "month" else f"{p.start:%b %Y}"
        for p in spans[count:]
    ]
    earlier = values[:count]
    first = next((i for i, v in enumerate(earlier) if v is not None), None)
    short = first is not None and first > 0  # history shorter than the dashed line's span
    spec = {
        "title": kpi.config.label,
        "unit": kpi.config.unit,
        "labels": labels,
        "values": values[count:],
        "earlier": earlier,
        "axis": honest_axis(kpi.config.unit, values),
        "note": f"earlier data starts {spans[first].start.day} {spans[first].start:%b}" if short else None,
    }
    alt = f"{kpi.config.label} over the last {count} periods, with the {count} before dashed"
    chart_id = _add(report, Chart("trend", spec, alt))
    return Trend(
        kpi.name, kpi.config.label, kpi.config.unit, labels, values[count:], values[:count], chart_id
    )


def honest_axis(unit: str, values: list[float | None]) -> list[float] | None:
    """The value axis a reader can trust: counts from zero; a rate over at least 5 points around
    its data, so a 0.2 pp wiggle looks like one."""
    shown = [v for v in values if v is not None]
    if not shown:
        return None
    low, high = min(shown), max(shown)
    if unit == "percent":
        middle, half = (low + high) / 2, max((high - low) / 2 * 1.2, 0.025)
        low, high = max(0.0, middle - half), min(1.0, middle + half)
        return [low, high] if high > low else [0.0, 1.0]
    top = high * 1.1 if high > 0 else 1.0
    return [min(0.0, low * 1.1), top]


def _movers_and_health(report: Report, run: JobRun, kpi: KpiData, count: int) -> None:
    table = kpi.compare(run.period, run.previous).dropna(subset=["change"])
    names = run.entities["name"] if "name" in run.entities else pd.Series(dtype=str)

    def mover(entity: str, row: pd.Series) -> Mover:
        return Mover(
            entity,
            str(names.get(entity, entity)),
            as_number(row["value"]),
            as_number(row["reference"]),
            as_number(row["change"]),
            as_number(row["change_pct"]),
        )

    # Ranked by the relative change, as the chart beside the table draws them.
    ranked = table.dropna(subset=["change_pct"])
    ordered = ranked.sort_values(["change_pct", "value"], ascending=[False, False], kind="stable")
    rising = [mover(e, r) for e, r in ordered[ordered["change_pct"] > 0].head(count).iterrows()]
    falling = [mover(e, r) for e, r in ordered[ordered["change_pct"] < 0].iloc[::-1].head(count).iterrows()]
    chart_id = None
    shown = [m for m in rising + falling if m.change_pct is not None]
    if shown:
        spec = {
            "title": f"Top movers: {kpi.config.label}",
            "unit": kpi.config.unit,
            "names": [m.name for m in shown],
            "changes": [m.change_pct for m in shown],
        }
        alt = f"Change in {kpi.config.label} for the biggest risers and fallers"
        chart_id = _add(report, Chart("movers", spec, alt))
    report.movers = Movers(kpi.name, kpi.config.label, kpi.config.unit, rising, falling, chart_id)
    changes = table["change_pct"].dropna().tolist()
    if changes:
        title = f"How {report.entity_label.lower()}s moved"
        spec = {"title": title, "values": changes, "xlabel": f"change in {kpi.config.label.lower()}"}
        alt = f"Distribution of the change in {kpi.config.label} across {len(changes)} entities"
        report.health_chart = _add(report, Chart("distribution", spec, alt))


def _freshness(kpi: KpiData, clock: Clock) -> Freshness:
    return Freshness(
        kpi.name,
        kpi.config.label,
        kpi.newest,
        kpi.age(clock),
        kpi.config.freshness,
        kpi.is_stale(clock) or kpi.is_late(clock),
    )


def _definition(config: HeraldConfig, name: str) -> Definition:
    kpi = config.kpis[name]
    source = config.sources[kpi.source]
    dialect = source.type if not isinstance(kpi.sql, dict) or source.type in kpi.sql else next(iter(kpi.sql))
    return Definition(
        name,
        kpi.label,
        kpi.unit,
        kpi.aggregate,
        kpi.higher_is_better,
        kpi.source,
        kpi.sql_for(dialect, name).strip(),
        " ".join(filter(None, [kpi.description, AGGREGATES.get(kpi.aggregate, "")])),
    )


# What a period's figure is, for each way of folding days and entities into one.
AGGREGATES = {
    "last": "A period's figure adds up each entity's latest value in it, so one that stopped "
    "reporting before the period ended still counts with what it last reported.",
}


def _rollups(config: HeraldConfig, run: JobRun, names: list[str], kind: str) -> list[Rollup]:
    dimensions = config.entities[kind].dimensions if kind in config.entities else []
    rollups = []
    for dimension in dimensions:
        groups = run.groups(dimension)
        columns = {}
        for name in (n for n in names if n in run.kpis):
            kpi = run.kpis[name]
            table = compare(kpi.rollup(groups, run.period), kpi.rollup(groups, run.previous))
            columns.update(
                {
                    (name, "value"): table["value"],
                    (name, "previous"): table["reference"],
                    (name, "change_pct"): table["change_pct"],
                }
            )
        frame = pd.DataFrame(columns).sort_index()
        frame.index.name = dimension
        rollups.append(Rollup(dimension, [n for n in names if n in run.kpis], frame))
    return rollups


def _daily(run: JobRun, names: list[str], config: HeraldConfig, kind: str) -> pd.DataFrame:
    """One row per entity and day of the period, one column per KPI (ratios as daily ratios)."""
    series = []
    for name in (n for n in names if n in run.kpis):
        kpi = run.kpis[name]
        frame = kpi.frame[
            (kpi.frame["day"] >= pd.Timestamp(run.period.start))
            & (kpi.frame["day"] <= pd.Timestamp(run.period.end))
        ]
        if kpi.how == "ratio":
            values = frame["numerator"] / frame["denominator"].where(frame["denominator"] != 0)
        else:
            values = frame["value"]
        series.append(
            pd.Series(values.to_numpy(), index=pd.MultiIndex.from_frame(frame[["day", "entity"]]), name=name)
        )
    if not series:
        return pd.DataFrame()
    table = pd.concat(series, axis=1).sort_index().reset_index()
    dimensions = config.entities[kind].dimensions if kind in config.entities else []
    details = run.entities[[c for c in ["name", *dimensions] if c in run.entities]]
    table = table.join(details, on="entity")
    return table[["day", "entity", *details.columns, *[s.name for s in series]]]


def build_all(
    config: HeraldConfig,
    run: JobRun,
    now: datetime | None = None,
    only: str | None = None,
    sections: frozenset[str] = SECTIONS,
) -> list[Report]:
    """Every report the run needs: everyone's, plus each scoped recipient's."""
    wanted = recipients(config, run)
    if run.report.scope is not None:
        wanted = [EVERYONE, *wanted]
    if only is not None:
        wanted = [r for r in wanted if only in (r.key, r.label, r.slug, r.email, r.slack)]
    return [build_report(config, run, recipient, now, sections) for recipient in wanted]
