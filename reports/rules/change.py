"""Change conditions: `change` (absolute) and `change_pct` against a reference value.

The reference is the previous period, the same period a week earlier, or a trailing average
of the `days` before the current period. An entity with no reference value is skipped (the
no-data rule speaks for it); so is a percentage change from zero, which has no size.
"""

from __future__ import annotations

from abc import abstractmethod
from datetime import timedelta
from typing import ClassVar, Literal

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from reports.config.base import HeraldModel, fail
from reports.formatting import format_change, format_change_pct
from reports.kpis.frames import compare
from reports.kpis.periods import GRAIN_DAYS, Grain, Period
from reports.rules import Condition, RuleContext, hits, register
from reports.rules.threshold import Number

_VS_WORDS = {
    "previous_period": "the previous period",
    "same_day_last_week": "the same day last week",
    "trailing_avg": "the {days}-day average",
}


class ChangeSpec(HeraldModel):
    vs: Literal["previous_period", "same_day_last_week", "trailing_avg"] = Field(
        "previous_period", description="What to compare with."
    )
    days: int = Field(28, ge=1, le=366, description="Days in the trailing average (`vs: trailing_avg`).")
    above: Number | None = Field(None, description="Fire when the change is above this.")
    below: Number | None = Field(None, description="Fire when the change is below this.")

    @model_validator(mode="after")
    def _has_limit(self) -> ChangeSpec:
        if self.above is None and self.below is None:
            raise fail("a change condition needs a limit", "add `below: -40` or `above: 50` (or both)")
        return self


def _reference(spec: ChangeSpec, ctx: RuleContext) -> pd.Series:
    now = ctx.current
    if spec.vs == "previous_period":
        return ctx.kpi.values(ctx.previous)
    if spec.vs == "same_day_last_week":
        return ctx.kpi.values(now.shifted(7))
    window = Period(now.start - timedelta(days=spec.days), now.start - timedelta(days=1))
    return ctx.kpi.typical(window, now.days)


class _Change(Condition):
    percent: ClassVar[bool]

    @abstractmethod
    def _spec(self) -> ChangeSpec:
        """The spec, under the field named after the condition's key."""

    def lookback_days(self, grain: Grain) -> int:
        spec = self._spec()
        return {"previous_period": GRAIN_DAYS[grain], "same_day_last_week": 7, "trailing_avg": spec.days}[
            spec.vs
        ]

    def evaluate(self, ctx: RuleContext) -> pd.DataFrame:
        spec = self._spec()
        table = compare(ctx.kpi.values(ctx.current), _reference(spec, ctx))
        change = table["change_pct" if self.percent else "change"].dropna()
        above = change > spec.above if spec.above is not None else pd.Series(False, index=change.index)
        below = change < spec.below if spec.below is not None else pd.Series(False, index=change.index)
        met = table.loc[change.index[above | below]]
        limit = np.where(above[above | below], spec.above or 0.0, spec.below or 0.0)
        vs = _VS_WORDS[spec.vs].format(days=spec.days)
        if spec.vs == "same_day_last_week" and ctx.current.days > 1:
            vs = "the same days a week earlier"
        unit = ctx.kpi.config.unit
        words = format_change_pct if self.percent else (lambda c: format_change(c, unit))
        column = "change_pct" if self.percent else "change"
        messages = [
            f"{ctx.kpi.config.label} {'rose' if c > 0 else 'fell'} {words(c).lstrip('+−')} vs {vs} "
            f"({ctx.fmt(r)} → {ctx.fmt(v)}); limit {words(lim)}"
            for v, r, c, lim in zip(met["value"], met["reference"], met[column], limit, strict=True)
        ]
        return hits(met.index, met["value"].values, met["reference"].values, limit, messages)


@register
class Change(_Change):
    """The absolute change against a reference, e.g. `{change: {vs: previous_period, below: -500}}`."""

    kinds = ("change",)
    percent = False
    change: ChangeSpec

    def _spec(self) -> ChangeSpec:
        return self.change


@register
class ChangePct(_Change):
    """The change in % against a reference, e.g. `{change_pct: {vs: same_day_last_week, below: -40}}`."""

    kinds = ("change_pct",)
    percent = True
    change_pct: ChangeSpec

    def _spec(self) -> ChangeSpec:
        return self.change_pct
