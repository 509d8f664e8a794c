"""The embedded demo warehouse: a SaaS analytics platform's projects, generated from a seed.

The same seed and size always give the same rows. Planted incidents (`INCIDENTS`) make the
demo's rules fire on known projects and dates; the README lists them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from reports.demo.names import FIRST, LAST, NAME_A, NAME_B

DEMO_END = date(2026, 11, 22)
HOURLY_DAYS = 28
SOURCES = ("direct", "search", "social", "referral")
PLANS = {"free": 0.45, "pro": 0.40, "enterprise": 0.15}
PLAN_EVENTS = {"free": 1_500, "pro": 15_000, "enterprise": 120_000}
REGIONS = ("eu-west", "us-east", "us-west", "apac")
INDUSTRIES = ("retail", "media", "saas", "finance", "travel", "education", "health")
WEEKDAY_FACTOR = np.array([1.0, 1.02, 1.03, 1.0, 0.95, 0.72, 0.65])
# Names that test escaping end to end: markup characters, quotes, right-to-left text, a formula.
AWKWARD_NAMES = {5: 'Smith & Sons "<Retail>"', 9: "חנות הספרים", 11: "+Plus Media"}


@dataclass(frozen=True)
class Incident:
    rule: str
    entity: str
    table: str
    starts: date
    what: str


INCIDENTS = (
    Incident(
        "collection_stopped",
        "p0007",
        "daily_project_stats",
        date(2026, 11, 20),
        "the project's tracker stops sending: no rows from this day on",
    ),
    Incident(
        "crm_sync_failing",
        "p0012",
        "crm_syncs",
        date(2026, 11, 18),
        "the CRM integration starts failing: about 85% of syncs fail",
    ),
    Incident(
        "usage_drop",
        "p0003",
        "daily_project_stats",
        date(2026, 11, 17),
        "events and sessions fall to about 45% of normal",
    ),
    Incident(
        "job_failure_spike",
        "p0016",
        "background_jobs",
        date(2026, 11, 21),
        "about 35% of background jobs fail",
    ),
    Incident(
        "traffic_feed_stale",
        "",
        "hourly_traffic",
        date(2026, 11, 20),
        "the hourly traffic feed stops loading: no rows after 2026-11-19 23:00 UTC",
    ),
)
MIN_PROJECTS = 20
# pandas holds every time as nanoseconds; the warehouse stores days as DATE and hours as TIMESTAMP.
COLUMN_TYPES = {"day": "DATE", "created_at": "DATE", "hour_utc": "TIMESTAMP"}


def _incident(rule: str) -> Incident:
    return next(i for i in INCIDENTS if i.rule == rule)


def _index(entity: str) -> int:
    return int(entity[1:])


def build(path: Path, projects: int = 400, days: int = 120, seed: int = 7, end: date = DEMO_END) -> None:
    """Write the warehouse to `path`, replacing any file there only once it is complete."""
    if projects < MIN_PROJECTS:
        raise ValueError(f"the demo needs at least {MIN_PROJECTS} projects to hold its incidents")
    if days < 60:
        raise ValueError("the demo needs at least 60 days of history for its trend and anomaly rules")
    rng = np.random.default_rng(seed)
    days_index = pd.date_range(end=pd.Timestamp(end), periods=days, freq="D")
    owners = _owners(max(4, projects // 35))
    dim = _projects(rng, projects, owners)
    tables = {"cs_owners": owners, "projects": dim}
    tables.update(_daily(rng, dim, days_index))
    tables["hourly_traffic"] = _hourly(rng, dim, end)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    with duckdb.connect(str(partial)) as con:
        for name, frame in tables.items():
            con.register("frame", frame)
            casts = [f"CAST({c} AS {t}) AS {c}" for c, t in COLUMN_TYPES.items() if c in frame]
            replace = f" REPLACE ({', '.join(casts)})" if casts else ""
            con.execute(f"CREATE TABLE {name} AS SELECT *{replace} FROM frame")
            con.unregister("frame")
    os.replace(partial, path)


def _owners(count: int) -> pd.DataFrame:
    names = [f"{FIRST[i % len(FIRST)]} {LAST[(i * 7) % len(LAST)]}" for i in range(count)]
    handles = [n.lower().replace(" ", ".") for n in names]
    return pd.DataFrame(
        {
            "owner_id": [f"o{i + 1:03d}" for i in range(count)],
            "name": names,
            "email": [f"{h}@example.com" for h in handles],
            "slack_handle": [f"@{h}" for h in handles],
        }
    )


def _projects(rng: np.random.Generator, count: int, owners: pd.DataFrame) -> pd.DataFrame:
    combos = [f"{a} {b}" for a in NAME_A for b in NAME_B]
    order = rng.permutation(len(combos))
    names = [
        combos[order[i % len(combos)]] + (f" {i // len(combos) + 1}" if i >= len(combos) else "")
        for i in range(count)
    ]
    for index, name in AWKWARD_NAMES.items():
        names[index - 1] = name
    plans = rng.choice(list(PLANS), size=count, p=list(PLANS.values()))
    has_crm = rng.random(count) < np.where(plans == "free", 0.4, 0.85)
    has_crm[_index(_incident("crm_sync_failing").entity) - 1] = True
    return pd.DataFrame(
        {
            "project_id": [f"p{i + 1:04d}" for i in range(count)],
            "name": names,
            "plan": plans,
            "region": rng.choice(REGIONS, size=count, p=[0.35, 0.3, 0.15, 0.2]),
            "industry": rng.choice(INDUSTRIES, size=count),
            "owner_id": owners["owner_id"].to_numpy()[rng.integers(0, len(owners), size=count)],
            "has_crm": has_crm,
            "created_at": pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 900, size=count), "D"),
        }
    )


def _daily(rng: np.random.Generator, dim: pd.DataFrame, days: pd.DatetimeIndex) -> dict[str, pd.DataFrame]:
    n, d = len(dim), len(days)
    plan = dim["plan"].to_numpy()
    base = np.array([PLAN_EVENTS[p] for p in plan]) * rng.lognormal(0, 0.6, n)
    base = np.maximum(base, 600)
    growth = rng.normal(0.0015, 0.001, n)
    t = np.arange(d)
    weekday = WEEKDAY_FACTOR[days.weekday.to_numpy()]
    level = base[:, None] * weekday[None, :] * np.exp(growth[:, None] * t[None, :])
    usage = _incident("usage_drop")
    drop = np.asarray(days >= pd.Timestamp(usage.starts))
    level[_index(usage.entity) - 1, drop] *= 0.45
    events = np.round(level * rng.lognormal(0, 0.06, (n, d))).astype(np.int64)
    per_session = rng.uniform(6, 14, n)
    sessions = np.maximum(np.round(events / per_session[:, None] * rng.lognormal(0, 0.03, (n, d))), 1)
    sessions = sessions.astype(np.int64)
    bounced = rng.binomial(sessions, rng.uniform(0.25, 0.6, n)[:, None])
    dau = np.round(sessions * rng.uniform(0.55, 0.8, n)[:, None] * rng.lognormal(0, 0.03, (n, d)))
    mau = np.round(base * rng.uniform(0.35, 0.6, n) / per_session)[:, None] * np.exp(growth[:, None] * t)
    identified = rng.poisson(sessions * rng.uniform(0.002, 0.01, n)[:, None])
    stats = _long(
        dim,
        days,
        events=events,
        sessions=sessions,
        bounced_sessions=bounced,
        daily_active_users=dau.astype(np.int64),
        monthly_active_users=np.round(mau).astype(np.int64),
        identified_accounts=identified,
    )
    stopped = _incident("collection_stopped")
    stats = stats[~((stats["project_id"] == stopped.entity) & (stats["day"] >= pd.Timestamp(stopped.starts)))]

    syncs = np.where(plan == "free", 24, 96)[:, None] * np.ones((1, d), dtype=np.int64)
    fail_rate = np.full((n, d), 0.005)
    crm = _incident("crm_sync_failing")
    fail_rate[_index(crm.entity) - 1, np.asarray(days >= pd.Timestamp(crm.starts))] = 0.85
    failed = rng.binomial(syncs, fail_rate)
    crm_frame = _long(dim, days, syncs_ok=syncs - failed, syncs_failed=failed)
    crm_frame = crm_frame[crm_frame["project_id"].isin(dim.loc[dim["has_crm"], "project_id"])]

    jobs = rng.poisson(rng.uniform(80, 400, n)[:, None] * np.ones((1, d)))
    job_fail = np.full((n, d), 0.008)
    spike = _incident("job_failure_spike")
    job_fail[_index(spike.entity) - 1, np.asarray(days >= pd.Timestamp(spike.starts))] = 0.35
    jobs_failed = rng.binomial(jobs, job_fail)
    seconds = jobs * rng.uniform(20, 180, n)[:, None] * rng.lognormal(0, 0.1, (n, d))
    jobs_frame = _long(
        dim,
        days,
        jobs_ok=jobs - jobs_failed,
        jobs_failed=jobs_failed,
        duration_seconds_total=np.round(seconds, 1),
        duration_seconds_max=np.round(seconds / np.maximum(jobs, 1) * rng.uniform(3, 8, (n, d)), 1),
    )
    return {
        "daily_project_stats": stats.reset_index(drop=True),
        "crm_syncs": crm_frame.reset_index(drop=True),
        "background_jobs": jobs_frame,
    }


def _long(dim: pd.DataFrame, days: pd.DatetimeIndex, **measures: np.ndarray) -> pd.DataFrame:
    """Project × day matrices into rows (project_id, day, measure...)."""
    n, d = len(dim), len(days)
    frame = pd.DataFrame(
        {
            "project_id": np.repeat(dim["project_id"].to_numpy(), d),
            "day": np.tile(days.to_numpy(), n),
        }
    )
    for name, values in measures.items():
        frame[name] = np.asarray(values).reshape(n * d)
    return frame


def _hourly(rng: np.random.Generator, dim: pd.DataFrame, end: date) -> pd.DataFrame:
    """Pageviews per project, UTC hour and traffic source, for the last weeks of the range."""
    stale = _incident("traffic_feed_stale")
    last = datetime.combine(stale.starts, time()) - timedelta(hours=1)
    hours = pd.date_range(end=last, periods=HOURLY_DAYS * 24 - (end - stale.starts).days * 24 - 24, freq="h")
    n, h, s = len(dim), len(hours), len(SOURCES)
    profile = np.exp(-((hours.hour.to_numpy() - 13) ** 2) / 18) + 0.08  # a midday peak, in UTC
    weekday = WEEKDAY_FACTOR[hours.weekday.to_numpy()]
    scale = np.array([PLAN_EVENTS[p] for p in dim["plan"]]) / 60
    share = np.array([0.35, 0.4, 0.15, 0.1])
    rate = scale[:, None, None] * (profile * weekday)[None, :, None] * share[None, None, :]
    views = rng.poisson(rate)
    return pd.DataFrame(
        {
            "project_id": np.repeat(dim["project_id"].to_numpy(), h * s),
            "hour_utc": np.tile(np.repeat(hours.to_numpy(), s), n),
            "source": np.tile(np.array(SOURCES), n * h),
            "pageviews": views.reshape(n * h * s),
        }
    )
