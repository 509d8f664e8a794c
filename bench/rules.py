"""Rules at benchmark size, in a child process: `python -m bench.rules --entities 4000`.

KPI frames are built by hand (as `load_kpi` returns them: entity ids as a categorical, days as
timestamps) for a daily job, with planted incidents so that rules of every condition type find
something; then every rule is evaluated over every entity, as a run does, and timed. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from reports.config.models import KpiConfig, RuleConfig
from reports.kpis.frames import KpiData
from reports.kpis.periods import Clock, Period
from reports.rules.evaluate import evaluate_rule

AS_OF = date(2026, 11, 22)
TIMEZONE = "Europe/London"

# One rule per KPI, the condition types in turn: (aggregate, unit, `when`, `for` runs).
KINDS = [
    ("ratio", "percent", {"below": 0.8}, 1),
    ("sum", "count", {"change_pct": {"vs": "same_day_last_week", "below": -40}}, 1),
    (
        "ratio",
        "percent",
        {"anomaly": {"window": 56, "z": 5, "seasonality": "weekly", "direction": "down", "min_delta": 0.1}},
        1,
    ),
    ("sum", "count", {"no_data": {"lookback_days": 7, "min_days": 3}}, 2),
    ("sum", "count", {"change": {"vs": "previous_period", "below": -500}}, 1),
    ("sum", "count", {"change_pct": {"vs": "trailing_avg", "days": 28, "below": -50}}, 1),
    ("mean", "count", {"outside": [20, 20000]}, 1),
    ("sum", "count", {"stale": True}, 1),
]


def build(entities: int, kpis: int, days: int, seed: int = 11) -> tuple[list[tuple], pd.Series]:
    """(rule, KPI data) pairs and the entity names, for `kpis` KPIs over `entities` × `days`."""
    rng = np.random.default_rng(seed)
    ids = pd.Index([f"p{i:04d}" for i in range(1, entities + 1)], dtype=object)
    names = pd.Series([f"Project {i}" for i in range(1, entities + 1)], index=ids)
    day_index = pd.date_range(end=pd.Timestamp(AS_OF), periods=days, freq="D")
    codes = np.repeat(np.arange(entities), days)
    when = np.tile(day_index.to_numpy(), entities)
    last_days = np.tile(np.arange(days) >= days - 2, entities)
    last_week = np.tile(np.arange(days) >= days - 7, entities)
    weekday = np.tile(day_index.dayofweek.to_numpy() < 5, entities)
    pairs = []
    for number in range(kpis):
        how, unit, condition, runs = KINDS[number % len(KINDS)]
        name = f"kpi_{number:02d}"
        base = np.repeat(rng.lognormal(6, 1.2, entities), days) * np.where(weekday, 1.0, 0.6)
        values = base * rng.normal(1, 0.08, entities * days)
        planted = np.repeat(rng.random(entities) < 0.01, days)  # about 1% of entities misbehave
        keep = ~(planted & last_days) if "no_data" in condition else np.ones(len(codes), bool)
        if how == "ratio":
            denominator = np.maximum(np.round(values / 10), 1)
            share = np.clip(rng.normal(0.95, 0.02, len(codes)), 0, 1)
            share = np.where(planted & last_week, share * 0.5, share)
            data = {"numerator": np.round(denominator * share), "denominator": denominator}
        else:
            data = {"value": np.where(planted & last_week, values * 0.4, values)}
        frame = pd.DataFrame(
            {
                "entity": pd.Categorical.from_codes(codes[keep], categories=ids),
                "day": when[keep],
                **{column: array[keep] for column, array in data.items()},
            }
        )
        # The stale rule's KPI stopped loading three days ago: one finding for the whole table.
        newest_day = AS_OF - timedelta(days=3) if "stale" in condition else AS_OF
        newest = datetime.combine(newest_day + timedelta(days=1), datetime.min.time(), ZoneInfo(TIMEZONE))
        config = KpiConfig(
            label=name,
            source="warehouse",
            sql="SELECT 1",
            aggregate=how,
            unit=unit,
            freshness="2 days" if "stale" in condition else None,
        )
        window = Period(day_index[0].date(), AS_OF)
        kpi = KpiData(name=name, config=config, frame=frame, newest=newest, window=window)
        rule = RuleConfig.model_validate(
            {"name": f"rule_{number:02d}", "kpi": name, "when": condition, "for": f"{runs} runs"}
        )
        pairs.append((rule, kpi))
    return pairs, names


def evaluate(pairs: list[tuple], names: pd.Series) -> int:
    """Every rule over every entity, as a daily run evaluates them; the number of findings."""
    clock = Clock(AS_OF, "day", "monday", TIMEZONE)
    return sum(len(evaluate_rule(rule, kpi, clock, names)) for rule, kpi in pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entities", type=int, default=4000)
    parser.add_argument("--kpis", type=int, default=20)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--profile", help="write a cProfile of one evaluation here, instead of timing")
    args = parser.parse_args()
    start = time.perf_counter()
    pairs, names = build(args.entities, args.kpis, args.days)
    built = time.perf_counter() - start
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.runcall(evaluate, pairs, names)
        profiler.dump_stats(args.profile)
        return
    seconds, found = [], 0
    for _ in range(args.trials):
        start = time.perf_counter()
        found = evaluate(pairs, names)
        seconds.append(time.perf_counter() - start)
    kinds = sorted({next(iter(rule.when.model_dump(exclude_none=True))) for rule, _ in pairs})
    print(
        json.dumps(
            {
                "seconds": seconds,
                "findings": found,
                "rules": len(pairs),
                "kinds": kinds,
                "rows": sum(len(kpi.frame) for _, kpi in pairs),
                "build_seconds": built,
            }
        )
    )


if __name__ == "__main__":
    main()
