"""Threshold conditions: `above`, `below`, `between` and `outside` fixed bounds."""

from __future__ import annotations

import re
from typing import Annotated, Any

import numpy as np
import pandas as pd
from pydantic import BeforeValidator, model_validator

from reports.config.base import fail
from reports.rules import Condition, RuleContext, hits, register


def _number(value: Any) -> float:
    """Numbers as written; '80%' means 0.8, matching how percentage KPIs hold their values."""
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+(\.\d+)?\s*%\s*", value):
        return float(value.strip().rstrip("%")) / 100
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise fail(f"'{value}' is not a number", "write a number such as 100 or a percentage such as '80%'")
    return float(value)


Number = Annotated[float, BeforeValidator(_number)]


@register
class Threshold(Condition):
    """The period's value against a fixed bound, e.g. `{below: '80%'}` or `{between: [10, 20]}`."""

    kinds = ("above", "below", "between", "outside")

    above: Number | None = None
    below: Number | None = None
    between: tuple[Number, Number] | None = None
    outside: tuple[Number, Number] | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Threshold:
        bounds = self.between or self.outside
        if bounds and bounds[0] > bounds[1]:
            raise fail("the lower bound comes after the upper one", f"write [{bounds[1]}, {bounds[0]}]")
        return self

    def evaluate(self, ctx: RuleContext) -> pd.DataFrame:
        value = ctx.kpi.values(ctx.current).dropna()
        fmt = ctx.fmt
        if self.above is not None:
            met, limit, words = value > self.above, self.above, f"above {fmt(self.above)}"
        elif self.below is not None:
            met, limit, words = value < self.below, self.below, f"below {fmt(self.below)}"
        else:
            low, high = self.between or self.outside  # type: ignore[misc]
            inside = (value >= low) & (value <= high)
            met = inside if self.between else ~inside
            limit = high if self.between else np.where(value < low, low, high)
            words = f"{'between' if self.between else 'outside'} {fmt(low)} and {fmt(high)}"
        value, limit = value[met], limit[met.to_numpy()] if isinstance(limit, np.ndarray) else limit
        label = ctx.kpi.config.label
        messages = [f"{label} is {fmt(v)}, {words}" for v in value]
        return hits(value.index, value.values, float("nan"), limit, messages)
