"""Hourly KPIs into local days: folded by the warehouse, in the KPI's one query, where its source
knows how (`reports.sources.hours`), and here in pandas where it does not. Both give the same days.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import pandas as pd

from reports.errors import HeraldError
from reports.kpis.periods import Clock
from reports.kpis.rows import MEASURES, check_shape, measures_of
from reports.sources.hours import (
    COUNTED,
    FAULTS,
    INFINITE,
    NEWEST,
    BusinessWindow,
    fold_hours,
    utc_offsets,
)
from reports.sources.statements import LEXICONS, STANDARD, only_select

if TYPE_CHECKING:
    from reports.config.models import KpiConfig
    from reports.sources import Source

log = logging.getLogger(__name__)


def days_from_warehouse(
    name: str,
    config: KpiConfig,
    source: Source,
    sql: str,
    params: dict[str, Any],
    clock: Clock,
    entities: list[str],
) -> tuple[pd.DataFrame, datetime | None, int] | None:
    """An hourly KPI folded into local days by the warehouse, in the KPI's one query: its days,
    when its newest hour ends, and how many values were infinite. None where the source cannot
    fold, or the rows need the plain query to say what is wrong with them (then that query runs,
    and pandas folds)."""
    dialect = source.hour_sql
    if dialect is None:
        return None
    business = None
    if config.business_hours is not None:
        window = config.business_hours
        business = BusinessWindow(
            window.weekday_numbers(),
            window.start.hour * 60 + window.start.minute,
            window.end.hour * 60 + window.end.minute,
        )
    how = config.aggregate if config.aggregate in ("mean", "max", "last") else "sum"
    try:
        statement = only_select(sql, LEXICONS.get(source.dialect, STANDARD))
        offsets = utc_offsets(clock.tz, params["start"], params["end"])
        wrapped = fold_hours(statement, dialect, offsets, measures_of(config), how, business)
        raw = source.query(wrapped, params)
    except (HeraldError, ValueError) as exc:
        log.info("KPI '%s': folding hours in the warehouse failed, so pandas folds them: %s", name, exc)
        return None
    if len(raw) and raw[FAULTS].fillna(0).iloc[0] > 0:
        return None  # doubled rows, or rows without an entity or hour: the plain rows say which
    newest = None
    if len(raw) and pd.notna(raw[NEWEST].iloc[0]):
        first = pd.Timestamp(int(raw[NEWEST].iloc[0]), unit="us", tz="UTC")
        newest = (first.tz_convert(clock.tz) + pd.Timedelta(hours=1)).to_pydatetime()
    infinite = int(raw[INFINITE].fillna(0).iloc[0]) if len(raw) else 0
    counted = raw[pd.to_numeric(raw[COUNTED]) > 0]
    counted = counted.assign(day=pd.to_datetime(pd.to_numeric(counted["day"]), unit="D"))
    frame = check_shape(name, config, counted, entities, "day")
    # In the order pandas folds them in: by entity (the categories are sorted), then day.
    return frame.sort_values(["entity", "day"], kind="stable"), newest, infinite


def hours_to_days(
    frame: pd.DataFrame, config: KpiConfig, tz: ZoneInfo
) -> tuple[pd.DataFrame, datetime | None]:
    """Hourly rows (UTC unless they say otherwise) into local days, inside business hours if set."""
    if config.aggregate == "last":  # the latest hour's value, whatever order the rows came in
        frame = frame.sort_values("hour", kind="stable")
    hours = frame["hour"]
    hours = hours.dt.tz_localize("UTC") if hours.dt.tz is None else hours
    local = hours.dt.tz_convert(tz)
    newest = (local.max() + pd.Timedelta(hours=1)).to_pydatetime() if len(local) else None
    window = config.business_hours
    if window is not None:
        clock = local.dt.hour * 60 + local.dt.minute
        keep = (
            local.dt.weekday.isin(window.weekday_numbers())
            & (clock >= window.start.hour * 60 + window.start.minute)
            & (clock < window.end.hour * 60 + window.end.minute)
        )
        frame, local = frame[keep], local[keep]
    frame = frame.drop(columns="hour").assign(day=local.dt.tz_localize(None).dt.normalize())
    how = {"mean": "mean", "max": "max", "last": "last"}.get(config.aggregate, "sum")
    measures = [c for c in MEASURES if c in frame]
    folded = frame.groupby(["entity", "day"], sort=True, observed=True)[measures]
    return getattr(folded, how)().reset_index(), newest
