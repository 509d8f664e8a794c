"""Evaluate one rule over a KPI, across `for: N runs`, into findings."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from reports.findings import Finding
from reports.formatting import as_number
from reports.kpis.frames import KpiData
from reports.kpis.periods import Clock
from reports.rules import RuleContext

if TYPE_CHECKING:
    from reports.config.models import RuleConfig


def evaluate_rule(rule: RuleConfig, kpi: KpiData, clock: Clock, names: pd.Series) -> list[Finding]:
    """Findings for every entity that met the rule on this run and on the `for - 1` runs before."""
    now = clock.current
    latest: pd.DataFrame | None = None
    for runs_back in range(rule.for_runs):
        then = clock.shift(now, runs_back).end if runs_back else clock.as_of
        found = rule.when.evaluate(RuleContext(kpi, clock.on(then)))
        latest = found if latest is None else latest[latest.index.isin(found.index)]
    assert latest is not None
    suffix = f", on each of the last {rule.for_runs} runs" if rule.for_runs > 1 else ""
    return [
        Finding(
            rule=rule.name,
            severity=rule.severity,
            kpi=kpi.name,
            entity=str(entity),
            entity_name=str(names.get(entity, entity)) if entity else f"all {kpi.config.entity}s",
            value=as_number(row.value),
            reference=as_number(row.reference),
            threshold=as_number(row.threshold),
            unit=getattr(row, "unit", kpi.config.unit),
            message=row.message + suffix,
            as_of=clock.as_of,
            action=rule.action,
            why=rule.description,
        )
        for entity, row in latest.iterrows()
    ]
