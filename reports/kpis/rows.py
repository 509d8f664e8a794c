"""A KPI query's rows, checked and typed: entity ids as a categorical, days or hours as
timestamps, measures as numbers, and infinities kept as missing values.

Entity ids are held as a categorical (a small integer per row, each id's text once), not as a
Python string per row: at 4,000 projects × a year, the strings were most of a run's memory.
"""

from __future__ import annotations

import logging
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from reports.errors import HeraldError, KpiError
from reports.sources.statements import LEXICONS, STANDARD, only_select

if TYPE_CHECKING:
    from reports.config.models import KpiConfig
    from reports.sources import Source

log = logging.getLogger(__name__)
MEASURES = ["value", "numerator", "denominator"]


def query(
    name: str, source: Source, sql: str, params: dict[str, Any], known: list[str] | None = None
) -> pd.DataFrame:
    """The KPI's rows; a source's error is the KPI's, named after it. Where the source can type
    the ids as the `known` entities, it does, in the same one query; should the rows name an id
    it does not know (or have no entity), the plain query runs and `check_shape` takes them."""
    if known:
        try:
            wrapped = source.known_entities(only_select(sql, LEXICONS.get(source.dialect, STANDARD)), known)
            if wrapped is not None:
                return source.query(wrapped, params)
        except HeraldError as exc:
            log.debug("KPI '%s': reading its ids as the known entities failed: %s", name, exc)
    try:
        return source.query(sql, params)
    except HeraldError as exc:
        raise KpiError(name, exc.message, exc.hint) from None


def measures_of(config: KpiConfig) -> list[str]:
    """The columns a KPI's rows carry its figures in."""
    return ["numerator", "denominator"] if config.aggregate == "ratio" else ["value"]


def entity_ids(known: list[str], found: pd.Series) -> pd.Categorical:
    """Entity ids as text, held as a categorical whose categories are the run's known ids and any
    others the rows name, sorted, so every KPI of a run shares one set and groups sort as text."""
    codes, uniques = pd.factorize(found, sort=False)
    texts = pd.Index(uniques).astype(str)
    # Two values may read the same as text (1 and "1"): they are one entity.
    remap, names = pd.factorize(texts, sort=False)
    categories = pd.Index(sorted(set(known).union(names)), dtype=object)
    position = categories.get_indexer(names)[remap]
    position = np.append(position, -1)  # a missing id (code -1) stays missing
    return pd.Categorical.from_codes(position[codes], categories=categories)


def finite(frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Infinite measures (a division by zero upstream) are missing values, never figures."""
    measures = [c for c in MEASURES if c in frame]
    numbers = {c: pd.to_numeric(frame[c], errors="coerce").astype(float) for c in measures}
    infinite = {c: np.isinf(numbers[c].to_numpy()) for c in measures}
    count = int(sum(found.sum() for found in infinite.values()))
    if count:
        frame = frame.assign(**{c: numbers[c].mask(infinite[c]) for c in measures})
    return frame, count


def check_shape(
    name: str, config: KpiConfig, raw: pd.DataFrame, entities: list[str], period: str
) -> pd.DataFrame:
    """The rows as (entity, `period`, measures...) with typed columns, or KpiError saying what to fix."""
    measures = measures_of(config)
    wanted = ["entity", period, *measures]
    missing = [c for c in wanted if c not in raw.columns]
    if missing:
        got = ", ".join(map(str, raw.columns)) or "no columns"
        raise KpiError(
            name,
            f"the query returned {got}, without {', '.join(missing)}",
            f"select exactly {', '.join(wanted)} (alias them with AS)",
        )
    ids = entity_ids(entities, raw["entity"])
    if (ids.codes < 0).any():
        raise KpiError(
            name,
            f"{int((ids.codes < 0).sum())} rows have no entity",
            "filter out rows whose entity is NULL",
        )
    # A new frame of the typed columns: the query's own columns are neither copied nor changed.
    frame = pd.DataFrame(
        {
            "entity": ids,
            period: _as_timestamps(name, period, raw[period]),
            **{column: _as_numbers(name, column, raw[column]) for column in measures},
        },
        index=raw.index,
    )
    doubled = _doubled(frame["entity"], frame[period])
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


def _doubled(entity: pd.Series, moment: pd.Series) -> np.ndarray:
    """Rows that share their entity and day (or hour) with another. Whole days or hours are
    numbered and paired with the entity's code in one integer, far quicker to check than the
    two columns; other moments (a time of day on a `day`) are checked as they are."""
    codes = entity.cat.codes.to_numpy().astype(np.int64)
    if moment.isna().any() or moment.dt.tz is not None or not len(moment):
        return moment.to_frame().assign(entity=codes).duplicated(keep=False).to_numpy()
    ticks = moment.to_numpy().astype("datetime64[ns]").view(np.int64)
    for unit in (86_400 * 10**9, 3_600 * 10**9):
        steps, rest = np.divmod(ticks, unit)  # few passes over the rows: each new array costs
        if rest.any():
            continue
        steps -= steps.min()
        span = int(steps.max()) + 1
        keys = span * (int(codes.max()) + 1)
        if keys >= 2**62:
            break
        codes *= span
        codes += steps  # each row's key: its entity's code and its day (or hour) in one integer
        if keys <= max(4 * len(codes), 1 << 20):  # few enough keys to count each in an array
            return np.bincount(codes, minlength=keys)[codes] > 1
        return pd.Series(codes).duplicated(keep=False).to_numpy()
    return moment.to_frame().assign(entity=codes).duplicated(keep=False).to_numpy()


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
