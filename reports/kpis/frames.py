"""The KPI engine: one query per KPI for every entity, then periods, changes, series and roll-ups.

Rows come back as (entity, day, value), or (entity, day, numerator, denominator) for a ratio
KPI, or with `hour` in place of `day` for an hourly KPI. Everything after the query is pandas
over all entities at once; nothing here issues a query per entity.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pandas as pd

from reports.errors import HeraldError, KpiError
from reports.kpis.periods import Clock, Period

if TYPE_CHECKING:
    from reports.config.models import KpiConfig
    from reports.sources import Source

MEASURES = ["value", "numerator", "denominator"]


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
    grouped = frame.groupby(keys, sort=True)
    if how == "ratio":
        sums = grouped[["numerator", "denominator"]].sum(min_count=1)
        return (sums["numerator"] / sums["denominator"].where(sums["denominator"] != 0)).astype(float)
    if how == "sum":
        return grouped["value"].sum(min_count=1).astype(float)
    if how == "mean":
        return grouped["value"].mean().astype(float)
    if how == "max":
        return grouped["value"].max().astype(float)
    # last: the value on each group's latest day that has one
    latest = frame.dropna(subset=["value"]).sort_values("day")
    return latest.groupby(keys, sort=True)["value"].last().astype(float).reindex(grouped.size().index)


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
    keyed = frame.assign(group=frame["entity"].map(groups)).dropna(subset=["group"])
    measures = [c for c in MEASURES if c in keyed]
    folded = keyed.groupby(["group", "day"], sort=True)[measures]
    combined = folded.max() if how == "max" else folded.sum(min_count=1)
    return combined.reset_index().rename(columns={"group": "entity"})


@dataclass
class KpiData:
    """One KPI's daily rows for all entities over a run's window."""

    name: str
    config: KpiConfig
    frame: pd.DataFrame  # entity (str), day (datetime64), value[, numerator, denominator]
    newest: datetime | None  # when the newest row's period ended, in the config's time zone
    window: Period
    infinite: int = 0  # values the query returned as ±infinity, kept as missing

    @property
    def how(self) -> str:
        return self.config.aggregate

    def _within(self, period: Period) -> pd.DataFrame:
        days = self.frame["day"]
        return self.frame[(days >= _ts(period.start)) & (days <= _ts(period.end))]

    def everyone(self) -> pd.Series:
        """Groups that put every entity together, for totals (`rollup`, `series`)."""
        return pd.Series("all", index=self.frame["entity"].unique(), name="all")

    def values(self, period: Period) -> pd.Series:
        """Each entity's value over `period`, indexed by entity."""
        return aggregate(self._within(period), ["entity"], self.how)

    def compare(self, current: Period, previous: Period) -> pd.DataFrame:
        """Each entity's value over `current` against `previous`, with change and change %."""
        return compare(self.values(current), self.values(previous))

    def total(self, period: Period) -> float:
        """All entities together over `period`."""
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
        rows = combine_entities(rows, groups, self.how)
        return aggregate(rows, ["entity"], self.how).rename_axis(groups.name)

    def series(self, periods: list[Period], groups: pd.Series | None = None) -> pd.DataFrame:
        """A value per entity (or group) and period: one row per entity, one column per period."""
        frame = self.frame if groups is None else combine_entities(self.frame, groups, self.how)
        bucket = {}
        for index, period in enumerate(periods):
            for offset in range(period.days):
                bucket[_ts(period.start + timedelta(days=offset))] = index
        keyed = frame.assign(period=frame["day"].map(bucket)).dropna(subset=["period"])
        keyed["period"] = keyed["period"].astype(int)
        table = aggregate(keyed, ["entity", "period"], self.how).unstack("period")
        return table.reindex(columns=range(len(periods)))

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
        return rows[present].groupby("entity")["day"].nunique()

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
    try:
        raw = source.query(sql, params)
    except HeraldError as exc:
        raise KpiError(name, exc.message, exc.hint) from None
    frame = _check_shape(name, config, raw)
    frame, infinite = _finite(frame)
    if config.grain == "hour":
        frame, newest = _hours_to_days(frame, config, clock.tz)
    else:
        newest = clock.midnight(frame["day"].max().date() + timedelta(days=1)) if len(frame) else None
    frame = frame[(frame["day"] >= _ts(window.start)) & (frame["day"] <= _ts(window.end))]
    return KpiData(name, config, frame.reset_index(drop=True), newest, window, infinite)


def _finite(frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Infinite measures (a division by zero upstream) are missing values, never figures."""
    measures = [c for c in MEASURES if c in frame]
    numbers = frame[measures].apply(pd.to_numeric, errors="coerce")
    infinite = numbers.isin([float("inf"), float("-inf")])
    count = int(infinite.to_numpy().sum())
    if count:
        frame = frame.assign(**{c: numbers[c].mask(infinite[c]) for c in measures})
    return frame, count


def _check_shape(name: str, config: KpiConfig, raw: pd.DataFrame) -> pd.DataFrame:
    period = "hour" if config.grain == "hour" else "day"
    measures = ["numerator", "denominator"] if config.aggregate == "ratio" else ["value"]
    wanted = ["entity", period, *measures]
    missing = [c for c in wanted if c not in raw.columns]
    if missing:
        got = ", ".join(map(str, raw.columns)) or "no columns"
        raise KpiError(
            name,
            f"the query returned {got}, without {', '.join(missing)}",
            f"select exactly {', '.join(wanted)} (alias them with AS)",
        )
    frame = raw[wanted].copy()
    if frame["entity"].isna().any():
        raise KpiError(
            name,
            f"{int(frame['entity'].isna().sum())} rows have no entity",
            "filter out rows whose entity is NULL",
        )
    frame["entity"] = frame["entity"].astype(str)
    frame[period] = _as_timestamps(name, period, frame[period])
    for column in measures:
        frame[column] = _as_numbers(name, column, frame[column])
    doubled = frame.duplicated(["entity", period], keep=False)
    if doubled.any():
        row = frame[doubled].iloc[0]
        count = int(((frame["entity"] == row["entity"]) & (frame[period] == row[period])).sum())
        raise KpiError(
            name,
            f"entity '{row['entity']}' has {count} rows for {period} {row[period]}",
            f"GROUP BY entity, {period} so each has one row",
        )
    if period == "day":
        frame["day"] = frame["day"].dt.normalize()
    return frame


def _as_timestamps(name: str, column: str, values: pd.Series) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(values):
        return values
    if values.empty:
        return pd.to_datetime(values)
    sample = values.dropna().iloc[0] if values.notna().any() else None
    if isinstance(sample, date | datetime | pd.Timestamp):
        return pd.to_datetime(values, utc=isinstance(sample, datetime) and sample.tzinfo is not None)
    raise KpiError(
        name,
        f"column '{column}' holds {type(sample).__name__} values, not dates",
        f"select a DATE or TIMESTAMP as {column} (CAST it if needed)",
    )


def _as_numbers(name: str, column: str, values: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(values) or not (
        pd.api.types.is_numeric_dtype(values) or values.dtype == object
    ):
        raise KpiError(
            name, f"column '{column}' is {values.dtype}, not a number", f"select a numeric {column}"
        )
    try:
        return pd.to_numeric(values).astype(float)
    except (TypeError, ValueError):
        bad = next(v for v in values if not _numeric(v))
        raise KpiError(
            name,
            f"column '{column}' holds {bad!r}, which is not a number",
            f"select a numeric {column} (CAST it if needed)",
        ) from None


def _numeric(value: object) -> bool:
    try:
        float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return True


def _hours_to_days(
    frame: pd.DataFrame, config: KpiConfig, tz: ZoneInfo
) -> tuple[pd.DataFrame, datetime | None]:
    """Hourly rows (UTC unless they say otherwise) into local days, inside business hours if set."""
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
    measures = [c for c in MEASURES if c in frame]
    folded = frame.groupby(["entity", "day"], sort=True)[measures]
    how = {"mean": "mean", "max": "max", "last": "last"}.get(config.aggregate, "sum")
    return getattr(folded, how)().reset_index(), newest
