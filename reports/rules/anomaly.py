"""Anomaly: a value far from its own recent history, by a robust z-score.

z = 0.6745 · (value − median) / MAD over the trailing `window` periods. With weekly
seasonality a daily value is compared only with the same weekday in earlier weeks, so a quiet
Sunday is not an anomaly. `min_delta` ignores deviations too small to matter in absolute terms.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field

from reports.config.base import HeraldModel
from reports.kpis.periods import GRAIN_DAYS, Grain, Period
from reports.rules import Condition, RuleContext, hits, register
from reports.rules.threshold import Number


class AnomalySpec(HeraldModel):
    window: int = Field(56, ge=3, le=730, description="Earlier periods that make up the history.")
    z: float = Field(3.5, gt=0, description="Robust z-score beyond which a value is an anomaly.")
    seasonality: Literal["none", "weekly"] = Field(
        "none", description="`weekly`: compare a day only with the same weekday (daily jobs)."
    )
    direction: Literal["both", "up", "down"] = Field("both", description="Which deviations count.")
    min_delta: Number = Field(
        0.0, ge=0, description="Smallest absolute deviation from the median that counts."
    )
    min_history: int = Field(4, ge=3, description="Fewer earlier values than this and the entity is skipped.")


@register
class Anomaly(Condition):
    """A value far from its own history by a robust z-score, e.g. `{anomaly: {z: 4, direction: up}}`."""

    kinds = ("anomaly",)
    anomaly: AnomalySpec

    def lookback_days(self, grain: Grain) -> int:
        return self.anomaly.window * GRAIN_DAYS[grain]

    def _history(self, ctx: RuleContext) -> list[Period]:
        spec = self.anomaly
        if ctx.grain == "day" and spec.seasonality == "weekly":
            return [ctx.current.shifted(7 * k) for k in range(spec.window // 7, 0, -1)]
        if ctx.grain == "day":
            return [ctx.current.shifted(k) for k in range(spec.window, 0, -1)]
        return ctx.clock.trailing(spec.window + 1)[:-1]

    def evaluate(self, ctx: RuleContext) -> pd.DataFrame:
        spec = self.anomaly
        current = ctx.kpi.values(ctx.current).dropna()
        history = ctx.kpi.series(self._history(ctx)).reindex(current.index)
        enough = history.notna().sum(axis=1) >= spec.min_history
        current, history = current[enough], history[enough]
        median = history.median(axis=1)
        spread = history.sub(median, axis=0).abs()
        mad = spread.median(axis=1)
        # A flat history has MAD 0; fall back to the mean absolute deviation, then to "any change".
        scale = mad.where(mad > 0, spread.mean(axis=1) * 1.2533 / 0.6745)
        delta = current - median
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(scale > 0, 0.6745 * delta / scale, np.sign(delta) * np.inf)
        z = pd.Series(z, index=current.index).fillna(0.0)
        met = (z.abs() > spec.z) & (delta.abs() >= spec.min_delta)
        if spec.direction == "up":
            met &= z > 0
        elif spec.direction == "down":
            met &= z < 0
        label = ctx.kpi.config.label
        messages = [
            f"{label} is {ctx.fmt(v)}, far {'above' if zz > 0 else 'below'} its usual {ctx.fmt(m)} "
            f"({_how_far(zz, spec.z)})"
            for v, m, zz in zip(current[met], median[met], z[met], strict=True)
        ]
        return hits(current[met].index, current[met].values, median[met].values, spec.z, messages)


def _how_far(z: float, limit: float) -> str:
    """The z-score in a reader's words: how many times its usual variation it moved."""
    if not math.isfinite(z):
        return "it had not varied at all before"
    return f"{abs(z):,.0f} times its usual variation; the rule's limit is {limit:g}"
