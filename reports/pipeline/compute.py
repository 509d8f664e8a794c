"""Compute a job run: query each KPI once for every entity, then evaluate the job's rules.

A KPI whose query fails is recorded and its rules are not evaluated; the rest of the job goes
on. Rules on a KPI whose data is stale are held back too, so stale numbers never raise or
clear an alert as if they were current; the stale-data rule speaks for them instead.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, timedelta

import numpy as np
import pandas as pd

from reports.config.models import HeraldConfig, ReportConfig, RuleConfig
from reports.errors import HeraldError, JobError, SourceError
from reports.findings import Finding
from reports.kpis.frames import KpiData, load_kpi
from reports.kpis.periods import Clock, Period
from reports.pipeline.readiness import data_late, refuse_no_data, refuse_the_future
from reports.report.model import SECTIONS
from reports.rules.evaluate import evaluate_rule
from reports.sources.pool import Sources

log = logging.getLogger(__name__)
NEWEST_LOOKBACK = timedelta(days=7)
Progress = Callable[[str, int, int], None]


@dataclass
class JobRun:
    job: str
    report: ReportConfig
    clock: Clock
    window: Period  # the widest of its KPIs' query windows
    entities: pd.DataFrame  # indexed by entity: name and dimension columns
    kpis: dict[str, KpiData] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # what could not be computed, and why
    notes: list[str] = field(default_factory=list)  # rules held back on purpose
    late: list[str] = field(default_factory=list)  # KPIs whose feed has no data on the as-of day
    holding: list[Finding] = field(default_factory=list)  # rules' conditions met on this run alone
    held: set[str] = field(default_factory=set)  # rules not evaluated (KPI failed, late or stale)
    queries: int = 0
    # Row positions of each entity in each KPI's frame, found once per run (see `scoped`).
    _rows: dict[str, dict[str, np.ndarray]] = field(default_factory=dict, repr=False, compare=False)
    # The entities this run was narrowed to by `scoped`, if it was: narrowing again to these or
    # more changes nothing (a batch of one owner's report, built from the batch's run).
    _narrowed_to: frozenset[str] | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def as_of(self) -> date:
        return self.clock.as_of

    @property
    def period(self) -> Period:
        return self.clock.current

    @property
    def previous(self) -> Period:
        return self.clock.previous

    def scoped(self, entities: list[str] | None) -> JobRun:
        """This run as one recipient sees it: only their entities' rows, findings and names."""
        if entities is None:
            return self
        keep = frozenset(entities)
        if self._narrowed_to is not None and self._narrowed_to <= keep:
            return self
        kpis = {
            name: replace(kpi, frame=self._rows_of(name, kpi, entities)) for name, kpi in self.kpis.items()
        }
        # Findings about a whole table (stale data) belong to everyone's report, not to each owner's.
        findings = [f for f in self.findings if f.entity in keep]
        return replace(
            self,
            kpis=kpis,
            findings=findings,
            entities=self.entities[self.entities.index.isin(keep)],
            _rows={},  # its frames are new: its own split, if it is narrowed again
            _narrowed_to=keep if self._narrowed_to is None else keep & self._narrowed_to,
        )

    def _rows_of(self, name: str, kpi: KpiData, entities: list[str]) -> pd.DataFrame:
        """One recipient's rows of a KPI: a lookup into the frame split by entity once per run,
        not a filter over every row for every recipient (quadratic across thousands)."""
        if name not in self._rows:
            # observed=True: a categorical entity lists every id of the run, not only this KPI's.
            self._rows[name] = kpi.frame.groupby("entity", sort=False, observed=True).indices
        index = self._rows[name]
        found = [index[e] for e in dict.fromkeys(entities) if e in index]
        positions = np.sort(np.concatenate(found)) if found else np.array([], dtype=np.int64)
        return kpi.frame.iloc[positions].reset_index(drop=True)

    def groups(self, dimension: str) -> pd.Series:
        """Entity → its plan, region, industry or owner, for `KpiData.rollup` and `series`."""
        return self.entities[dimension].rename(dimension)


def job_clock(config: HeraldConfig, job: str, as_of: date) -> Clock:
    """The run's one clock: as-of date, the job's period, the config's week start and time zone."""
    return Clock(as_of, config.reports[job].period, config.week_start, config.timezone)


def query_windows(
    config: HeraldConfig, job: str, clock: Clock, shows: frozenset[str] = SECTIONS
) -> dict[str, Period]:
    """The days each KPI of the job is queried over, still one query per KPI: the current period
    and the one before (its card compares them), the trend's periods when the job's outputs
    (`shows`, the report sections they show) draw one for it, each of its rules' lookback, and at
    least a week or twice its freshness limit, so a feed that stopped lately still says when it
    last loaded. A KPI read only for a rule on yesterday is not read for a year of trend charts."""
    report = config.reports[job]
    rules = config.rules_for(job)
    names = list(dict.fromkeys([*report.kpis, *(rule.kpi for rule in rules)]))
    # Trend charts draw the periods before the trend too, for comparison; the email's headline
    # chart is the first KPI's.
    trended = report.kpis if "trends" in shows else report.kpis[:1] if "headline" in shows else []
    now = clock.current
    windows = {}
    for name in names:
        newest = max(NEWEST_LOOKBACK, 2 * (config.kpis[name].freshness or timedelta()))
        starts = [clock.previous.start, clock.as_of - timedelta(days=math.ceil(newest / timedelta(days=1)))]
        if name in trended:
            starts.append(clock.trailing(2 * report.trend_periods)[0].start)
        for rule in (r for r in rules if r.kpi == name):
            lookback = timedelta(days=rule.when.lookback_days(clock.grain))
            for runs_back in range(rule.for_runs):
                starts.append(clock.shift(now, runs_back).start - lookback - timedelta(days=1))
        windows[name] = Period(min(starts), clock.as_of)
    return windows


def late_feeds(config: HeraldConfig, job: str, as_of: date, sources: Sources) -> list[str]:
    """The job's KPIs whose feed has no data on the as-of day yet: one small query each, for
    waiting on a load before the run (`wait_for_data`)."""
    clock = job_clock(config, job, as_of)
    names = list(dict.fromkeys([*config.reports[job].kpis, *(r.kpi for r in config.rules_for(job))]))
    entities = load_entities(config, {config.kpis[n].entity for n in names}, sources)
    late = []
    for name in names:
        kpi = config.kpis[name]
        try:
            data = load_kpi(
                name, kpi, sources[kpi.source], Period(as_of, as_of), clock, entities.index.tolist()
            )
        except HeraldError:
            continue  # a broken query is the run's to report, not a reason to wait
        if data.is_late(clock):
            late.append(name)
    return late


def check_jobs(config: HeraldConfig, jobs: list[str]) -> None:
    for job in jobs:
        if job not in config.reports:
            known = ", ".join(config.reports) or "none"
            raise JobError(f"there is no job named '{job}'", f"run one of: {known} (see `run.py list`)")


def compute_job(
    config: HeraldConfig,
    job: str,
    as_of: date,
    sources: Sources,
    progress: Progress | None = None,
    shows: frozenset[str] = SECTIONS,
) -> JobRun:
    """Query the job's KPIs once each for every entity and evaluate its rules into findings;
    `shows` are the report sections the job's outputs show (every one unless told)."""
    check_jobs(config, [job])
    report, clock = config.reports[job], job_clock(config, job, as_of)
    refuse_the_future(clock)
    sources.labels = {"herald_job": job, "herald_run": f"{job}-{as_of.isoformat()}"}
    rules = config.rules_for(job)
    windows = query_windows(config, job, clock, shows)
    names = list(windows)  # the report's KPIs, then its rules'
    before = sources.queries
    entities = load_entities(config, {config.kpis[n].entity for n in names}, sources)
    widest = Period(min(w.start for w in windows.values()), clock.as_of) if windows else clock.current
    run = JobRun(job, report, clock, window=widest, entities=entities)
    for step, name in enumerate(names, start=1):
        if progress:
            progress(f"querying {name}", step, len(names))
        kpi = config.kpis[name]
        try:
            run.kpis[name] = load_kpi(
                name, kpi, sources[kpi.source], windows[name], clock, entities.index.tolist()
            )
        except HeraldError as exc:
            log.warning("%s", exc)
            run.failures.append(str(exc))
    for name, kpi in run.kpis.items():
        if kpi.infinite:
            run.notes.append(
                f"KPI '{name}': {kpi.infinite} infinite value(s) from the warehouse were treated as missing"
            )
    refuse_no_data(job, run.kpis, run.window, bool(run.failures))
    run.late = [name for name, kpi in run.kpis.items() if kpi.is_late(clock)]
    judged = {rule.kpi for rule in rules if rule.when.judges_freshness}
    run.findings += [data_late(run.kpis[name], clock) for name in run.late if name not in judged]
    run.holding += run.findings
    owners = _owners(config, names, entities)
    for rule in rules:
        found = _evaluate(run, rule, entities["name"])
        run.findings += found
        # The alert lifecycle counts `for: N runs` over the runs it saw: it needs this run alone.
        alone = rule.model_copy(update={"for_runs": 1})
        run.holding += _evaluate(run, alone, entities["name"], quiet=True) if rule.for_runs > 1 else found
    run.findings = sorted((_owned(f, owners) for f in run.findings), key=lambda f: f.sort_key)
    run.holding = [_owned(f, owners) for f in run.holding]
    run.queries = sources.queries - before
    return run


def _owners(config: HeraldConfig, names: list[str], entities: pd.DataFrame) -> pd.Series:
    """Entity → the name of its owner, when the entity query has an owner column."""
    for kind in sorted({config.kpis[n].entity for n in names}):
        owner = config.entities[kind].owner if kind in config.entities else None
        if owner is not None and owner.name in entities:
            return entities[owner.name].astype(str)
    return pd.Series(dtype=str)


def _owned(finding: Finding, owners: pd.Series) -> Finding:
    owner = owners.get(finding.entity, "") if finding.entity else ""
    return replace(finding, owner=str(owner)) if owner else finding


def _evaluate(run: JobRun, rule: RuleConfig, names: pd.Series, quiet: bool = False) -> list[Finding]:
    """The rule's findings; a rule that cannot or should not be evaluated says why (unless `quiet`)."""
    kpi = run.kpis.get(rule.kpi)
    if kpi is None:
        reason = f"rule '{rule.name}' was not evaluated: KPI '{rule.kpi}' could not be computed"
        run.held.add(rule.name)
        if not quiet:
            run.failures.append(reason)
        return []
    held = None
    if not rule.when.judges_freshness and kpi.is_stale(run.clock):
        held = f"rule '{rule.name}' was held back: the data of KPI '{rule.kpi}' is stale"
    elif not rule.when.judges_freshness and rule.kpi in run.late:
        held = f"rule '{rule.name}' was held back: KPI '{rule.kpi}' has no data for {run.as_of} yet"
    if held is not None:
        run.held.add(rule.name)
        if not quiet:
            run.notes.append(held)
        return []
    return evaluate_rule(rule, kpi, run.clock, names)


def load_entities(config: HeraldConfig, kinds: set[str], sources: Sources) -> pd.DataFrame:
    """Names and dimensions of every entity the job's KPIs are about: one query per kind."""
    frames = []
    for kind in sorted(kinds):
        if kind not in config.entities:
            frames.append(pd.DataFrame(columns=["name"]).rename_axis("entity"))
            continue
        entity = config.entities[kind]
        try:
            frame = sources[entity.source].query(entity.sql, {})
        except HeraldError as exc:
            raise SourceError(f"entities '{kind}': {exc.message}", exc.hint) from None
        wanted = ["entity", "name", *entity.dimensions]
        missing = [c for c in wanted if c not in frame.columns]
        if missing:
            raise SourceError(
                f"entities '{kind}': the query returned no {', '.join(missing)} column",
                f"select {', '.join(wanted)} (alias them with AS)",
            )
        frame["entity"] = frame["entity"].astype(str)
        frames.append(frame.set_index("entity"))
    return pd.concat(frames) if frames else pd.DataFrame(columns=["name"]).rename_axis("entity")
