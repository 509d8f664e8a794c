"""`validate --check-sources`: connect to each source and plan every query without running it, so
shape and permission problems show before any schedule fires."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from reports.config.models import HeraldConfig
from reports.errors import HeraldError
from reports.kpis.periods import default_as_of
from reports.sources.pool import Sources


@dataclass(frozen=True)
class Check:
    kind: str  # kpi or entities
    name: str
    source: str
    ok: bool
    detail: str


def _wanted(config: HeraldConfig, kpi: str) -> list[str]:
    spec = config.kpis[kpi]
    measures = ["numerator", "denominator"] if spec.aggregate == "ratio" else ["value"]
    return ["entity", "hour" if spec.grain == "hour" else "day", *measures]


def check_all(config: HeraldConfig, as_of: date | None = None) -> list[Check]:
    as_of = as_of or default_as_of(config.timezone)
    params = {"start": as_of - timedelta(days=7), "end": as_of, "as_of": as_of, "entities": ["herald-check"]}
    sources = Sources(config)
    results = []
    try:
        for kind, entity in config.entities.items():
            wanted = ["entity", "name", *entity.dimensions]
            results.append(_check(sources, "entities", kind, entity.source, entity.sql, {}, wanted))
        for name, kpi in config.kpis.items():
            try:
                sql = kpi.sql_for(sources[kpi.source].dialect, name)
            except HeraldError as exc:
                results.append(Check("kpi", name, kpi.source, False, str(exc)))
                continue
            results.append(_check(sources, "kpi", name, kpi.source, sql, params, _wanted(config, name)))
    finally:
        sources.close()
    return results


def _check(
    sources: Sources, kind: str, name: str, source: str, sql: str, params: dict, wanted: list[str]
) -> Check:
    try:
        planned = sources[source].check(sql, params)
    except HeraldError as exc:
        return Check(kind, name, source, False, str(exc))
    missing = [c for c in wanted if c not in planned.columns]
    if missing:
        return Check(
            kind,
            name,
            source,
            False,
            f"returns {', '.join(planned.columns)}, without {', '.join(missing)} — "
            f"select {', '.join(wanted)} (alias them with AS)",
        )
    scanned = f"; would scan {planned.bytes_scanned:,} bytes" if planned.bytes_scanned is not None else ""
    return Check(kind, name, source, True, f"columns {', '.join(planned.columns)}{scanned}")
