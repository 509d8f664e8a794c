"""Rules: conditions over KPI data that return findings. Rules send nothing.

Each condition type is parsed from the single key of a rule's `when:` mapping and registered
by that key, so a new type is one module that calls `register` and the union below grows.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from datetime import date
from typing import Any, ClassVar

import pandas as pd

from reports.config.base import HeraldModel, one_key_union
from reports.formatting import format_value
from reports.kpis.frames import KpiData
from reports.kpis.periods import Clock, Grain, Period
from reports.registry import Registry


@dataclass(frozen=True)
class RuleContext:
    """What a condition sees: one KPI's data and the run's clock."""

    kpi: KpiData
    clock: Clock

    @property
    def as_of(self) -> date:
        return self.clock.as_of

    @property
    def grain(self) -> Grain:
        return self.clock.grain

    @property
    def week_start(self) -> str:
        return self.clock.week_start

    @property
    def current(self) -> Period:
        return self.clock.current

    @property
    def previous(self) -> Period:
        return self.clock.previous

    def fmt(self, value: float | None) -> str:
        return format_value(value, self.kpi.config.unit)


class Condition(HeraldModel):
    """A rule's `when:`; `evaluate` returns one row per entity that meets it."""

    kinds: ClassVar[tuple[str, ...]]
    # Rules on a KPI whose data is stale are held back, so stale numbers never raise or clear an
    # alert; a condition that judges the staleness itself says so here and still runs.
    judges_freshness: ClassVar[bool] = False

    def lookback_days(self, grain: Grain) -> int:
        """How many days before the current period the condition reads."""
        return 0

    @abstractmethod
    def evaluate(self, ctx: RuleContext) -> pd.DataFrame:
        """Rows indexed by entity with columns value, reference, threshold and message."""


CONDITIONS: Registry[type[Condition]] = Registry("condition", lambda cls: cls.kinds)
register = CONDITIONS.register  # class decorator: selectable by each of its `kinds`


def conditions() -> dict[str, type[Condition]]:
    """Every registered condition type, by the `when:` key that selects it."""
    return CONDITIONS.as_dict()


def condition_type() -> Any:
    """The pydantic type of `when:`: a union of every registered condition, tagged by its key."""
    return one_key_union(CONDITIONS.as_dict(), "`when`")


def hits(index: Any, value: Any, reference: Any, limit: Any, message: Any) -> pd.DataFrame:
    """A condition's result: one row per entity that met it."""
    frame = pd.DataFrame(
        {"value": value, "reference": reference, "threshold": limit, "message": message}, index=index
    )
    frame.index.name = "entity"
    return frame


# Built-in conditions register themselves on import.
import reports.rules.anomaly  # noqa: E402
import reports.rules.change  # noqa: E402
import reports.rules.presence  # noqa: E402
import reports.rules.threshold  # noqa: E402, F401
