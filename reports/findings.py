"""Findings: what a rule found about one entity on one run, in plain words.

A value type shared by the rules that make findings and the reports that show them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

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
    owner: str = ""  # the entity's owner (a CS person), named in channel messages
    action: str = ""  # what to do next (the rule's `action`), shown with the alert
    why: str = ""  # why the rule exists (its `description`)
    # Set by the alert lifecycle (reports/alerts/); an untracked finding (a preview) has none.
    status: str = ""  # new, ongoing or resolved
    since: date | None = None  # firing since this as-of date
    news: bool = True  # worth telling about on this run (new, resolved, or due for a reminder)
    alert_id: int | None = None

    @property
    def sort_key(self) -> tuple[int, str, str, str]:
        return (SEVERITY_ORDER.get(self.severity, 9), self.rule, self.entity_name, self.entity)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["as_of"] = self.as_of.isoformat()
        data["since"] = self.since.isoformat() if self.since else None
        return data  # numbers are already None where missing (evaluate_rule cleans them)
