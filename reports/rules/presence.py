"""Presence conditions: `no_data` (an entity that should report and did not) and `stale`."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

import pandas as pd
from pydantic import Field

from reports.config.base import HeraldModel
from reports.formatting import format_duration
from reports.kpis.periods import Grain, Period
from reports.rules import Condition, RuleContext, hits, register


class NoDataSpec(HeraldModel):
    lookback_days: int = Field(
        7, ge=1, le=366, description="Days before the period to look for earlier data."
    )
    min_days: int = Field(
        1, ge=1, description="An entity is expected if it reported on at least this many of them."
    )


@register
class NoData(Condition):
    """Entities that reported in the days before the current period but have nothing in it."""

    kinds = ("no_data",)
    no_data: NoDataSpec

    def lookback_days(self, grain: Grain) -> int:
        return self.no_data.lookback_days

    def evaluate(self, ctx: RuleContext) -> pd.DataFrame:
        spec = self.no_data
        now = ctx.current
        before = Period(now.start - timedelta(days=spec.lookback_days), now.start - timedelta(days=1))
        earlier = ctx.kpi.days_reported(before)
        expected = earlier[earlier >= spec.min_days]
        silent = expected[~expected.index.isin(ctx.kpi.days_reported(now).index)]
        span = now.start.isoformat() if now.days == 1 else f"{now.start} to {now.end}"
        messages = [
            f"{ctx.kpi.config.label}: no data for {span}, after data on {n} of the "
            f"{spec.lookback_days} days before"
            for n in silent
        ]
        return hits(silent.index, float("nan"), silent.values.astype(float), float(spec.min_days), messages)


@register
class Stale(Condition):
    """The KPI's newest row is older than its `freshness` limit: one finding for the whole table."""

    kinds = ("stale",)
    judges_freshness = True
    stale: Literal[True]

    def evaluate(self, ctx: RuleContext) -> pd.DataFrame:
        kpi = ctx.kpi
        if not kpi.is_stale(ctx.clock):
            return hits([], [], [], [], [])
        limit = kpi.config.freshness or timedelta()
        age = kpi.age(ctx.clock)
        if age is None:
            message = f"{kpi.config.label}: no data at all since {kpi.window.start}"
        else:
            since = kpi.newest.strftime("%Y-%m-%d %H:%M") if kpi.newest else "never"
            message = (
                f"{kpi.config.label}: no new data since {since} ({format_duration(age)}); "
                f"it must be no older than {format_duration(limit)}"
            )
        seconds = float("nan") if age is None else age.total_seconds()
        found = hits([""], [seconds], [float("nan")], [limit.total_seconds()], [message])
        return found.assign(unit="seconds")  # an age, whatever the KPI's own unit
