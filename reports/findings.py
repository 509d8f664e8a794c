"""Findings: what a rule found about one entity on one run, in plain words."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import pandas as pd

from reports import periods
from reports.formatting import as_number
from reports.kpis import KpiData
from reports.periods import Grain
from reports.rules import RuleContext

if TYPE_CHECKING:
    from reports.config import RuleConfig

SEVERITY_ORDER = {"critical": 0, "warning": 1}


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: str
    kpi: str
    entity: str  # "" when the finding is about the KPI's whole table (stale data)
    entity_name: str
    value: float | None
    reference: float | None
    threshold: float | None
    unit: str
    message: str
    as_of: date

    @property
    def sort_key(self) -> tuple[int, str, str, str]:
        return (SEVERITY_ORDER.get(self.severity, 9), self.rule, self.entity_name, self.entity)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["as_of"] = self.as_of.isoformat()
        return data  # numbers are already None where missing (evaluate_rule cleans them)


def evaluate_rule(
    rule: RuleConfig, kpi: KpiData, as_of: date, grain: Grain, week_start: str, tz: ZoneInfo, names: pd.Series
) -> list[Finding]:
    """Findings for every entity that met the rule on this run and on the `for - 1` runs before."""
    now = periods.current(as_of, grain, week_start)
    latest: pd.DataFrame | None = None
    for runs_back in range(rule.for_runs):
        then = periods.shift(now, grain, runs_back).end if runs_back else as_of
        found = rule.when.evaluate(RuleContext(kpi, then, grain, week_start, tz))
        latest = found if latest is None else latest[latest.index.isin(found.index)]
    assert latest is not None
    suffix = f" (for {rule.for_runs} runs)" if rule.for_runs > 1 else ""
    return [
        Finding(
            rule=rule.name,
            severity=rule.severity,
            kpi=kpi.name,
            entity=str(entity),
            entity_name=str(names.get(entity, entity)) if entity else "all entities",
            value=as_number(row.value),
            reference=as_number(row.reference),
            threshold=as_number(row.threshold),
            unit=getattr(row, "unit", kpi.config.unit),
            message=row.message + suffix,
            as_of=as_of,
        )
        for entity, row in latest.iterrows()
    ]
