"""The KPI engine: one query per KPI for every entity, then periods, changes, series and roll-ups.

Rows come back as (entity, day, value), or (entity, day, numerator, denominator) for a ratio
KPI, or with `hour` in place of `day` for an hourly KPI. Everything after the query is pandas
over all entities at once; nothing here issues a query per entity.

Entity ids are held as a categorical (`reports.kpis.rows`); what leaves this module (values,
comparisons, series, counts) is indexed by the plain string ids. Hourly rows become local days in
`reports.kpis.hourly`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from reports.kpis.hourly import days_from_warehouse, hours_to_days
from reports.kpis.periods import Clock, Period
from reports.kpis.rows import MEASURES, check_shape, finite, query

if TYPE_CHECKING:
    from reports.config.models import KpiConfig
    from reports.sources import Source


def _ts(day: date) -> pd.Timestamp:
    return pd.Timestamp(day)


def aggregate(frame: pd.DataFrame, keys: list[str], how: str) -> pd.Series:
    """Fold daily rows into one value per group. Ratios are pooled, never averaged."""
    if frame.empty:
        return pd.Series(
            dtype=float,
            index=pd.MultiIndex.from_arrays([[]] * len(keys), names=keys)
            if len(keys) > 1
            else pd.Index([], name=keys[0]),
        )
    # observed=True: a categorical entity has every id of the run as a category, present or not.
    grouped = frame.groupby(keys, sort=True, observed=True)
    if how == "ratio":
        sums = grouped[["numerator", "denominator"]].sum(min_count=1)
        result = sums["numerator"] / sums["denominator"].where(sums["denominator"] != 0)
    elif how == "sum":
        result = grouped["value"].sum(min_count=1)
    elif how == "mean":
        result = grouped["value"].mean()
    elif how == "max":
        result = grouped["value"].max()
    else:  # last: the value on each group's latest day that has one
        latest = frame.dropna(subset=["value"]).sort_values("day")
        last = latest.groupby(keys, sort=True, observed=True)["value"].last()
        result = last.reindex(grouped.size().index)
    return _plain(result.astype(float))


def _fold(rows: pd.DataFrame, how: str) -> float:
    """Every row into one value, as `aggregate` folds a group. A mean or last value of rows
    from more than one entity is not the group's: see `KpiData.total`."""
    if how == "ratio":
        numerator = rows["numerator"].sum(min_count=1)
        denominator = rows["denominator"].sum(min_count=1)
        return float(numerator / denominator) if denominator != 0 else float("nan")
    if how == "last":
        known = rows["value"].notna().to_numpy()
        days = rows["day"].to_numpy()[known]
        return float(rows["value"].to_numpy()[known][days.argmax()]) if len(days) else float("nan")
    value = rows["value"]
    return float(value.sum(min_count=1) if how == "sum" else value.max() if how == "max" else value.mean())


def _plain(result: Any) -> Any:
    """`result` indexed by plain values (string ids) where grouping left a categorical index."""
    index = result.index
    if isinstance(index, pd.MultiIndex):
        if any(isinstance(level, pd.CategoricalIndex) for level in index.levels):
            result.index = index.set_levels(
                [_uncategorical(level) for level in index.levels], verify_integrity=False
            )
    elif isinstance(index, pd.CategoricalIndex):
        result.index = _uncategorical(index)
    return result


def _uncategorical(index: pd.Index) -> pd.Index:
    if not isinstance(index, pd.CategoricalIndex):
        return index
    return pd.Index(np.asarray(index, dtype=object), name=index.name)


def compare(current: pd.Series, reference: pd.Series) -> pd.DataFrame:
    """Value, reference, change and change % per entity, for entities that have a current value.

    A missing reference leaves both changes missing; a zero reference leaves the % change
    missing, since a change from nothing has no size in percent.
    """
    current = current.dropna()
    reference = reference.reindex(current.index)
    change = current - reference
    change_pct = change / reference.abs().where(reference != 0) * 100
    return pd.DataFrame(
        {"value": current, "reference": reference, "change": change, "change_pct": change_pct}
    )


def combine_entities(frame: pd.DataFrame, groups: pd.Series, how: str) -> pd.DataFrame:
    """Add entities together day by day within each group (plan, region, owner, or all)."""
    alone = _one_entity(frame["entity"])
    if alone is not None:  # a per-entity report's frame: its rows are its group's, as they are
        return _as_group(frame, groups.get(alone))
    keyed = frame.assign(group=_group_of(frame["entity"], groups)).dropna(subset=["group"])
    measures = [c for c in MEASURES if c in keyed]
    folded = keyed.groupby(["group", "day"], sort=True, observed=True)[measures]
    combined = folded.max() if how == "max" else folded.sum(min_count=1)
    return _plain(combined).reset_index().rename(columns={"group": "entity"})


def _one_entity(entity: pd.Series) -> str | None:
    """The entity every row is of, when there is one (each has one row a day: see rows.py)."""
    if not len(entity):
        return None
    if isinstance(entity.dtype, pd.CategoricalDtype):
        codes = entity.cat.codes.to_numpy()
        return entity.cat.categories[codes[0]] if codes[0] >= 0 and (codes == codes[0]).all() else None
    first = entity.iloc[0]
    return first if isinstance(first, str) and (entity == first).all() else None


def _as_group(frame: pd.DataFrame, group: Any) -> pd.DataFrame:
    """One entity's daily rows as its group's (`combine_entities` without grouping)."""
    days = frame["day"].to_numpy()
    if group is None or pd.isna(group):
        chosen = np.arange(0)
    elif frame["day"].is_monotonic_increasing:
        chosen = np.arange(len(days))
    else:
        chosen = np.argsort(days, kind="stable")
    columns = {"entity": np.full(len(chosen), group, dtype=object), "day": days[chosen]}
    for measure in (c for c in MEASURES if c in frame):
        columns[measure] = frame[measure].to_numpy(dtype=float)[chosen]
    return pd.DataFrame(columns)


@functools.lru_cache(maxsize=64)
def _buckets(periods: tuple[Period, ...]) -> pd.Series:
    """Each day of `periods` → the index of its period, for `series` (the same few sets of
    periods come back for every KPI and every report of a run)."""
    days, index = [], []
    for position, period in enumerate(periods):
        days += [_ts(period.start + timedelta(days=offset)) for offset in range(period.days)]
        index += [position] * period.days
    found = pd.Series(index, index=pd.DatetimeIndex(days), dtype=float)
    return found[~found.index.duplicated(keep="last")]  # overlapping periods: the later one, as before


def _series(frame: pd.DataFrame, periods: list[Period], how: str) -> pd.DataFrame:
    """`series` grouped by entity and period."""
    keyed = frame.assign(period=frame["day"].map(_buckets(tuple(periods)))).dropna(subset=["period"])
    keyed["period"] = keyed["period"].astype(int)
    table = aggregate(keyed, ["entity", "period"], how).unstack("period")
    return _plain(table.reindex(columns=range(len(periods))))


def _one_series(frame: pd.DataFrame, entity: Any, periods: tuple[Period, ...], how: str) -> pd.DataFrame:
    """`series` for rows that make one line (one entity's, or a group's added up): each period's
    sum, mean, max or pooled ratio, as `aggregate` folds them, without grouping. Rows in no
    period are left out; with none left, there is no line."""
    count = len(periods)
    found = _period_of(frame["day"], periods)
    inside = found >= 0
    period = found[inside]

    def fold(column: str, kind: str) -> np.ndarray:
        values = frame[column].to_numpy(dtype=float)[inside]
        known = ~np.isnan(values)
        seen = np.bincount(period[known], minlength=count)
        if kind == "max":
            result = np.full(count, -np.inf)
            np.maximum.at(result, period[known], values[known])
        else:
            result = np.bincount(period[known], weights=values[known], minlength=count)
            if kind == "mean":
                result = result / np.maximum(seen, 1)
        return np.where(seen > 0, result, np.nan)  # a period without a value has none (min_count=1)

    if not inside.any():
        lines, names = np.empty((0, count)), []
    elif how == "ratio":
        numerator, denominator = fold("numerator", "sum"), fold("denominator", "sum")
        with np.errstate(divide="ignore", invalid="ignore"):
            lines, names = [np.where(denominator != 0, numerator / denominator, np.nan)], [entity]
    else:
        lines, names = [fold("value", how)], [entity]
    table = pd.DataFrame(lines, index=pd.Index(names, dtype=object, name="entity"))
    table.columns = pd.RangeIndex(count, name="period")
    return table


def _period_of(day: pd.Series, periods: tuple[Period, ...]) -> np.ndarray:
    """Each row's period (as `_buckets` numbers them), -1 for a day in none: looked up in a table
    of the periods' days by the day's number, not by hashing each timestamp."""
    low, table = _day_table(periods)
    days = day.to_numpy().astype("datetime64[D]").view(np.int64) - low
    inside = (days >= 0) & (days < len(table))
    found = np.full(len(days), -1, dtype=np.intp)
    found[inside] = table[days[inside]]
    return found


@functools.lru_cache(maxsize=64)
def _day_table(periods: tuple[Period, ...]) -> tuple[int, np.ndarray]:
    """`_buckets(periods)` as the first day's number and each following day's period, -1 for a
    day in none."""
    buckets = _buckets(periods)
    days = buckets.index.to_numpy().astype("datetime64[D]").view(np.int64)
    if not len(days):
        return 0, np.zeros(0, dtype=np.intp)
    low = int(days.min())
    table = np.full(int(days.max()) - low + 1, -1, dtype=np.intp)
    table[days - low] = buckets.to_numpy().astype(np.intp)
    return low, table


def _fold_groups(rows: pd.DataFrame, group: pd.Categorical, how: str) -> pd.Series:
    """A sum or pooled ratio per group of `rows`, as `aggregate` folds them (a group whose values
    are all missing has none; a group without rows is left out), added up by numpy over the
    groups' codes: a workbook's roll-ups by four dimensions of nine KPIs are 76 of these."""
    codes = np.asarray(group.codes)
    count = len(group.categories)
    keep = codes >= 0

    def total(column: str) -> np.ndarray:
        values = rows[column].to_numpy(dtype=float)
        known = keep & ~np.isnan(values)
        sums = np.bincount(codes[known], weights=values[known], minlength=count)
        return np.where(np.bincount(codes[known], minlength=count) > 0, sums, np.nan)

    if how == "ratio":
        numerator, denominator = total("numerator"), total("denominator")
        with np.errstate(divide="ignore", invalid="ignore"):
            values = np.where(denominator != 0, numerator / denominator, np.nan)
    else:
        values = total("value")
    present = np.bincount(codes[keep], minlength=count) > 0
    names = np.asarray(group.categories, dtype=object)[present]
    return pd.Series(values[present], index=pd.Index(names, dtype=object), name="value")


def _group_of(entity: pd.Series, groups: pd.Series) -> Any:
    """Each row's group: looked up once per distinct entity, not once per row."""
    if not isinstance(entity.dtype, pd.CategoricalDtype):
        return entity.map(groups)
    rows = entity.cat.codes.to_numpy()
    categories = entity.cat.categories
    if len(rows) < len(categories) and (rows >= 0).all():
        # A narrowed frame (one report's entities) keeps every entity of the run as a category:
        # look up only those it has rows of.
        used, rows = np.unique(rows, return_inverse=True)
        categories = categories.take(used)
    found = pd.Index(categories).map(groups)
    try:
        codes, names = pd.factorize(found, sort=True)  # entities in no group get -1: missing
    except TypeError:  # groups of mixed kinds cannot be sorted as one: group them as objects
        return np.asarray(found, dtype=object)[rows]
    return pd.Categorical.from_codes(codes[rows], categories=names)


@dataclass
class KpiData:
    """One KPI's daily rows for all entities over a run's window."""

    name: str
    config: KpiConfig
    frame: pd.DataFrame  # entity (categorical of str), day (datetime64), value[, numerator, denominator]
    newest: datetime | None  # when the newest row's period ended, in the config's time zone
    window: Period
    infinite: int = 0  # values the query returned as ±infinity, kept as missing
    # A report asks for the same few periods' rows again and again (values, roll-ups per
    # dimension, totals): each period's rows are picked out once. Read them; never change them.
    _periods: dict[Period, pd.DataFrame] = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def how(self) -> str:
        return self.config.aggregate

    def _within(self, period: Period) -> pd.DataFrame:
        if period not in self._periods:
            if len(self._periods) >= 4:
                self._periods.pop(next(iter(self._periods)))
            days = self.frame["day"].to_numpy()
            first, last = np.datetime64(period.start, "D"), np.datetime64(period.end + timedelta(days=1), "D")
            self._periods[period] = self.frame[(days >= first) & (days < last)]
        return self._periods[period]

    def everyone(self) -> pd.Series:
        """Groups that put every entity together, for totals (`rollup`, `series`)."""
        present = np.asarray(self.frame["entity"].unique(), dtype=object)
        return pd.Series("all", index=pd.Index(present, dtype=object), name="all")

    def values(self, period: Period) -> pd.Series:
        """Each entity's value over `period`, indexed by entity."""
        return aggregate(self._within(period), ["entity"], self.how)

    def compare(self, current: Period, previous: Period) -> pd.DataFrame:
        """Each entity's value over `current` against `previous`, with change and change %."""
        return compare(self.values(current), self.values(previous))

    def total(self, period: Period) -> float:
        """All entities together over `period`."""
        rows = self._within(period)
        # Adding up each day first changes no sum, max or ratio; one entity's days are everyone's.
        if self.how in ("sum", "max", "ratio") or _one_entity(rows["entity"]) is not None:
            return _fold(rows, self.how)
        result = self.rollup(self.everyone(), period)
        return float(result.iloc[0]) if len(result) else float("nan")

    def rollup(self, groups: pd.Series, period: Period) -> pd.Series:
        """Values by dimension (`groups` maps entity to plan, region, owner...). A `last` KPI
        adds up each entity's own latest value in the period, so an entity that stopped
        reporting a day before the end still counts with what it last reported."""
        rows = self._within(period)
        if self.how == "last":
            latest = aggregate(rows, ["entity"], "last").dropna()
            keyed = latest.groupby(latest.index.map(groups)).sum(min_count=1)
            return keyed.astype(float).rename_axis(groups.name).rename("value")
        if self.how in ("sum", "ratio"):  # adding up each day first changes nothing: fold at once
            group = _group_of(rows["entity"], groups)
            if isinstance(group, pd.Categorical):
                return _fold_groups(rows, group, self.how).rename_axis(groups.name)
            keyed = rows.assign(entity=group).dropna(subset=["entity"])
        else:
            keyed = combine_entities(rows, groups, self.how)
        return aggregate(keyed, ["entity"], self.how).rename_axis(groups.name)

    def series(self, periods: list[Period], groups: pd.Series | None = None) -> pd.DataFrame:
        """A value per entity (or group) and period: one row per entity, one column per period."""
        alone = _one_entity(self.frame["entity"])
        if alone is not None and self.how != "last":  # one entity's rows: one line, folded in numpy
            name = alone if groups is None else groups.get(alone)
            if name is not None and not pd.isna(name):  # (in no group: no line, as grouped)
                return _one_series(self.frame, name, tuple(periods), self.how)
        if groups is not None and self.how in ("sum", "ratio") and groups.nunique() == 1:
            # Everyone (or one group) as one line: adding up each day first changes nothing.
            group = _group_of(self.frame["entity"], groups)
            found = group.codes >= 0 if isinstance(group, pd.Categorical) else pd.notna(group)
            rows = self.frame if found.all() else self.frame[found]
            return _one_series(rows, groups.dropna().iloc[0], tuple(periods), self.how)
        frame = self.frame if groups is None else combine_entities(self.frame, groups, self.how)
        alone = _one_entity(frame["entity"])
        if alone is not None and self.how != "last":  # one group's rows
            return _one_series(frame, alone, tuple(periods), self.how)
        return _series(frame, periods, self.how)

    def typical(self, window: Period, length_days: int) -> pd.Series:
        """A trailing baseline per entity, comparable with a period of `length_days` days."""
        rows = self._within(window)
        if self.how == "ratio":
            return aggregate(rows, ["entity"], "ratio")
        if self.how == "sum":
            return aggregate(rows, ["entity"], "sum") / window.days * length_days
        return aggregate(rows, ["entity"], "mean")

    def days_reported(self, period: Period) -> pd.Series:
        """How many days in `period` each entity has a value for."""
        rows = self._within(period)
        present = rows["value"].notna() if self.how != "ratio" else rows["denominator"].fillna(0) > 0
        return _plain(rows[present].groupby("entity", observed=True)["day"].nunique())

    def age(self, clock: Clock) -> timedelta | None:
        """How old the newest data is at the end of the as-of day; None when there is none."""
        if self.newest is None:
            return None
        return max(clock.end_of_day - self.newest, timedelta())

    def is_late(self, clock: Clock) -> bool:
        """The feed as a whole has no data on the as-of day yet (a load that has not landed)."""
        return self.newest is None or self.newest <= clock.midnight(clock.as_of)

    def is_stale(self, clock: Clock) -> bool:
        limit = self.config.freshness
        if limit is None:
            return False
        age = self.age(clock)
        return age is None or age > limit


def load_kpi(
    name: str,
    config: KpiConfig,
    source: Source,
    window: Period,
    clock: Clock,
    entities: list[str],
) -> KpiData:
    """Run the KPI's one query for every entity over `window` and check the rows' shape."""
    start, end = clock.midnight(window.start), clock.midnight(window.end + timedelta(days=1))
    if config.grain == "hour":  # hourly rows are bounded by the local days' edges, in UTC
        params = {
            "start": start.astimezone(ZoneInfo("UTC")).replace(tzinfo=None),
            "end": end.astimezone(ZoneInfo("UTC")).replace(tzinfo=None),
        }
    else:
        params = {"start": window.start, "end": window.end}
    params.update(as_of=clock.as_of, entities=entities)
    sql = config.sql_for(source.dialect, name)
    if config.grain == "hour":
        folded = days_from_warehouse(name, config, source, sql, params, clock, entities)
        if folded is None:
            frame = check_shape(name, config, query(name, source, sql, params), entities, "hour")
            frame, infinite = finite(frame)
            frame, newest = hours_to_days(frame, config, clock.tz)
        else:
            frame, newest, infinite = folded
    else:
        frame = check_shape(name, config, query(name, source, sql, params, entities), entities, "day")
        frame, infinite = finite(frame)
        newest = clock.midnight(frame["day"].max().date() + timedelta(days=1)) if len(frame) else None
    frame = frame[(frame["day"] >= _ts(window.start)) & (frame["day"] <= _ts(window.end))]
    return KpiData(name, config, frame.reset_index(drop=True), newest, window, infinite)
