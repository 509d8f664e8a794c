"""What `make bench` measured, checked against Herald's targets, as the Markdown of results.md."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from bench.export import WRITERS, Export
from bench.pipeline import JOBS, PER_PROJECT, Jobs, PerProject, Printing

NOISY = "not projected: runs of N projects took no longer than of one (a busy machine?)"
MODES = {0: "plain loop (`--workers 0`)", 1: "1 worker", 2: "2 workers"}


@dataclass
class Plan:
    """The sizes of one bench run."""

    quick: bool
    projects: int  # the benchmark warehouse
    days: int
    small_projects: int  # the second warehouse, for queries per run
    small_days: int
    trials: int
    pdf_projects: int | None  # N; None sizes it to the time left
    rows: int
    rule_entities: int
    rule_kpis: int
    rule_days: int
    chromium_files: int
    full: str  # auto, yes or no: the one run of every project
    budget_seconds: float
    profile: bool
    only: set[str]
    out: Path


@dataclass
class Measured:
    plan: Plan
    header: list[str] = field(default_factory=list)
    rules: dict | None = None
    export: Export | None = None
    jobs: Jobs | None = None
    pdfs: PerProject | None = None
    printing: Printing | None = None
    errors: dict[str, str] = field(default_factory=dict)  # section → why it has no figures
    why: dict[str, str] = field(default_factory=dict)  # target → what dominates, where missed
    notes: list[str] = field(default_factory=list)


@dataclass
class Figure:
    key: str
    measure: str
    figure: str
    target: str = ""
    met: bool | None = None  # None: no target, or the figure could not be made
    gap: str = ""

    @property
    def verdict(self) -> str:
        if self.met is None:
            return "?" if self.target else ""
        return "✓" if self.met else f"✗ {self.gap}"


def at_least(value: float, goal: float, unit: str = "") -> tuple[bool | None, str]:
    if math.isnan(value):
        return None, ""
    if value >= goal:
        return True, ""
    share, short = f"{value / goal:.0%}", _num(goal - value)
    if share == "100%" or not short.strip("0."):  # a near miss: never "100%, short by 0.00"
        share, short = f"{value / goal:.1%}", f"{goal - value:.3f}"
    return False, f"{share} of the target, short by {short}{unit}"


def at_most(value: float, goal: float, unit: str = "") -> tuple[bool | None, str]:
    if math.isnan(value):
        return None, ""
    if value <= goal:
        return True, ""
    return False, f"over by {_num(value - goal)}{unit}, {value / goal:.1f}× the target"


def _rate(value: float) -> str:
    return "—" if math.isnan(value) else f"{value:,.0f}"


def _num(value: float) -> str:
    if math.isinf(value) or math.isnan(value):
        return "—"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"


def figures(m: Measured) -> list[Figure]:
    """Every summary row, with its target where Herald has one."""
    rows: list[Figure] = []
    plan, pdfs = m.plan, m.pdfs
    if pdfs is not None and 2 in pdfs.modes:
        if pdfs.full is not None:
            rate = pdfs.full_written / pdfs.full.seconds * 60
            where = f"all {pdfs.full_written:,} projects, one run"
        else:
            rate = pdfs.total / pdfs.projected_seconds(2) * 60
            where = f"{pdfs.total:,} projects, projected from runs of {pdfs.projects}"
        met, gap = at_least(rate, 800, " a minute")
        rows.append(
            Figure(
                "pdf_rate",
                f"Per-project PDFs, whole pipeline, 2 workers ({where})",
                f"{_rate(rate)} a minute" if not math.isnan(rate) else NOISY,
                "≥ 800 a minute",
                met,
                gap,
            )
        )
        if 1 in pdfs.modes:
            scale = pdfs.projected_seconds(1) / pdfs.projected_seconds(2)
            met, gap = at_least(scale, 1.8, "×")
            rows.append(
                Figure(
                    "pdf_scaling",
                    f"… from 1 to 2 workers (at {pdfs.total:,} projects, projected)",
                    NOISY if math.isnan(scale) else f"{scale:.2f}×",
                    "≥ 1.8×",
                    met,
                    gap,
                )
            )
    elif "pdfs" in m.errors:
        rows.append(
            Figure("pdf_rate", "Per-project PDFs, whole pipeline", f"not measured: {m.errors['pdfs']}")
        )
    if m.printing is not None:
        if m.printing.trials.seconds:
            rate = m.printing.files / m.printing.trials.median * 60
            figure = f"{rate:,.0f} a minute (printing only, one tab)"
        else:
            figure = m.printing.note
        rows.append(Figure("chromium", "Warm headless Chromium printing the same HTML (reference)", figure))
    elif "chromium" in m.errors:
        rows.append(Figure("chromium", "Warm headless Chromium", f"not measured: {m.errors['chromium']}"))
    if m.export is not None and {"herald", "openpyxl"} <= set(m.export.trials):
        speed = m.export.speedup()
        met, gap = at_least(speed, 4, "×")
        rows.append(
            Figure(
                "xlsx_speed",
                f"XLSX {plan.rows:,} × 10: Herald's writer vs openpyxl write-only",
                f"{speed:.1f}× as fast ({m.export.trials['herald'].median:.1f} s vs "
                f"{m.export.trials['openpyxl'].median:.1f} s)",
                "≥ 4×",
                met,
                gap,
            )
        )
        peak = m.export.trials["herald"].peak_mb
        met, gap = at_most(peak, 500, " MB")
        rows.append(
            Figure("xlsx_memory", "… Herald's writer, peak memory", f"{peak:,.0f} MB", "≤ 500 MB", met, gap)
        )
    elif m.export is not None or "export" in m.errors:
        why = "; ".join(m.export.failed.values()) if m.export else m.errors["export"]
        rows.append(Figure("xlsx_speed", "XLSX export", f"not measured: {why}"))
    if m.rules is not None:
        seconds = statistics.median(m.rules["seconds"])
        met, gap = at_most(seconds, 0.5, " s")
        rows.append(
            Figure(
                "rules",
                f"Rules, {plan.rule_entities:,} entities × {plan.rule_kpis} KPIs × {plan.rule_days} days",
                f"{seconds:.2f} s",
                "≤ 0.5 s",
                met,
                gap,
            )
        )
    elif "rules" in m.errors:
        rows.append(Figure("rules", "Rules", f"not measured: {m.errors['rules']}"))
    if m.jobs is not None:
        for job, goal in (("analyst_monthly", 5.0), ("cs_daily_alerts", 2.0)):
            if job in m.jobs.failed:
                rows.append(Figure(job, f"{job}, end to end", f"not measured: {m.jobs.failed[job]}"))
            elif job in m.jobs.trials:
                seconds = m.jobs.trials[job].median
                met, gap = at_most(seconds, goal, " s")
                rows.append(
                    Figure(job, f"{job}, end to end", f"{seconds:.1f} s", f"≤ {goal:.0f} s", met, gap)
                )
        changed = [
            job
            for job, count in m.jobs.queries.items()
            if job not in m.jobs.failed and (m.jobs.small_queries.get(job) != count or count < 0)
        ]
        if "queries" in m.jobs.failed:
            figure, met, gap = f"not measured: {m.jobs.failed['queries']}", None, ""
        elif changed:
            figure, met, gap = f"differ for {', '.join(changed)}", False, "more entities, more queries"
        else:
            figure, met, gap = "the same", True, ""
        rows.append(
            Figure(
                "queries",
                f"Queries per run, {plan.small_projects:,} vs {plan.projects:,} projects",
                figure,
                "independent of the entity count",
                met,
                gap,
            )
        )
        counts = ", ".join(f"{job} {count}" for job, count in m.jobs.queries.items())
        rows.append(Figure("query_counts", "… queries per run", counts))
    elif "jobs" in m.errors:
        rows.append(Figure("jobs", "Demo jobs end to end", f"not measured: {m.errors['jobs']}"))
    return rows


def markdown(m: Measured) -> str:
    rows = figures(m)
    lines = ["# Herald benchmarks (`make bench`)", "", *[f"- {line}" for line in m.header], ""]
    lines += ["## Summary", "", "| measure | figure | target | met |", "|---|---|---|---|"]
    lines += [f"| {r.measure} | {r.figure} | {r.target} | {r.verdict} |" for r in rows]
    missed = [r for r in rows if r.met is False]
    if missed:
        lines += ["", "## Where targets are missed, and what dominates", ""]
        for row in missed:
            lines.append(f"- **{row.measure}**: {row.figure}, {row.gap}. {m.why.get(row.key, '')}".rstrip())
    lines += _pdf_section(m) + _export_section(m) + _rules_section(m) + _jobs_section(m)
    if m.notes:
        lines += ["", "## Notes", "", *[f"- {note}" for note in m.notes]]
    return "\n".join(lines) + "\n"


def _pdf_section(m: Measured) -> list[str]:
    pdfs = m.pdfs
    if pdfs is None or not pdfs.modes:
        return []
    lines = [
        "",
        "## Per-project PDFs, whole pipeline",
        "",
        f"`run.py run {PER_PROJECT} --as-of 2026-11-22 --out DIR --dry-run --workers N -q` in a folder "
        f"holding a copy of config.yaml beside the {pdfs.total:,}-project warehouse, timed from start to "
        f"exit, a fresh store and out dir each run. Each timed run covers the first "
        f"**N = {pdfs.projects} projects** (the config's entity query narrowed with `ORDER BY entity "
        f"LIMIT N`); every KPI is still queried, and every rule evaluated, for all {pdfs.total:,}. "
        f"The first N ids belong to many owners, each of whom gets one email, so per-owner work "
        f"weighs a little more on a sampled report than in a run of every project; a sample of whole "
        f"owners would be worse, as its few large batches could not keep two workers busy. "
        f"The fixed cost is the same command for one project. Rates count per-project PDFs only; "
        f"each run also writes the portfolio's PDF.",
        "",
        "| run | seconds | per-project PDFs a minute | once the fixed cost is paid | peak MB | runs |",
        "|---|---|---|---|---|---|",
        f"| fixed cost: 1 project, plain loop | {pdfs.fixed.median:.1f} | | | "
        f"{pdfs.fixed.peak_mb:,.0f} | {pdfs.fixed.spread} |",
    ]
    for workers, trials in pdfs.modes.items():
        rate = pdfs.written[workers] / trials.median * 60
        lines.append(
            f"| N = {pdfs.projects}, {MODES[workers]} | {trials.median:.1f} | {rate:,.0f} | "
            f"{_rate(pdfs.marginal(workers))} | {trials.peak_mb:,.0f} | {trials.spread} |"
        )
    if pdfs.full is not None:
        rate = pdfs.full_written / pdfs.full.seconds * 60
        lines.append(
            f"| all {pdfs.full_written:,} projects, 2 workers | {pdfs.full.seconds:.0f} | {rate:,.0f} | | "
            f"{pdfs.full.peak_mb:,.0f} | 1 run |"
        )
    elif 2 in pdfs.modes:
        lines.append(
            f"| all {pdfs.total:,} projects, 2 workers | ~{_rate(pdfs.projected_seconds(2))} projected | "
            f"{_rate(pdfs.total / pdfs.projected_seconds(2) * 60)} projected | | | {pdfs.full_note} |"
        )
    if m.printing is not None and m.printing.trials.seconds:
        p = m.printing
        lines += [
            "",
            f"Reference: one warm headless Chromium (`/usr/bin/chromium --headless`, driven over the "
            f"DevTools protocol on a pipe) printed the same job's per-project HTML (`formats: [html]`, "
            f"rendered by Herald beforehand, not timed) for {p.files} projects, one after another in one "
            f"tab: {p.trials.median:.1f} s median ({p.trials.spread}), "
            f"{p.trials.median / p.files * 1000:.0f} ms a report, {p.files / p.trials.median * 60:,.0f} a minute. "
            f"That is printing alone; Herald's figures above include querying, building and drawing.",
        ]
    return lines


def _export_section(m: Measured) -> list[str]:
    export = m.export
    if export is None or not export.trials:
        return []
    lines = [
        "",
        f"## Export of {export.rows:,} rows × 10 columns",
        "",
        "Each writer in a process of its own (`bench/render.py --child WRITER`), in turn; seconds of "
        "writing alone, peak memory of the whole process (the frame included).",
        "",
        "| writer | seconds | speed vs openpyxl | time vs to_csv | peak MB | MB added while writing | runs |",
        "|---|---|---|---|---|---|---|",
    ]
    base = export.trials.get("openpyxl")
    csv = export.trials.get("csv")
    for writer, trials in export.trials.items():
        added = export.writing_mb.get(writer)
        lines.append(
            f"| {WRITERS[writer]} | {trials.median:.1f} | "
            f"{f'{base.median / trials.median:.1f}×' if base else ''} | "
            f"{f'{trials.median / csv.median:.1f}×' if csv else ''} | {trials.peak_mb:,.0f} | "
            f"{f'{statistics.median(added):,.0f}' if added else '—'} | {trials.spread} |"
        )
    if export.quarter_writing_mb is not None and export.writing_mb.get("herald"):
        lines += [
            "",
            f"Memory Herald's writer adds while writing: {export.quarter_writing_mb:,.0f} MB for "
            f"{export.rows // 4:,} rows, {statistics.median(export.writing_mb['herald']):,.0f} MB for "
            f"{export.rows:,}.",
        ]
    return lines + _rustpy_verdict(export)


def _rustpy_verdict(export: Export) -> list[str]:
    """Whether the Rust writer earns its place, from this run's figures: the workbook would adopt
    it only if it were faster, within the memory limit, and passed the workbook's tests."""
    rust, ours = export.trials.get("rustpy"), export.trials.get("herald")
    if rust is None or ours is None:
        return []
    faster, within = rust.median < ours.median, rust.peak_mb <= 500
    if faster and within:
        verdict = (
            "a candidate, to adopt once the workbook's tests pass on it (typed cells and formats, "
            "split past 1,048,576 rows, text never a formula)"
        )
    else:
        verdict = "so Herald keeps XlsxWriter with its own row writer (reports/render/xlsx_rows.py)"
    return [
        "",
        f"rustpy-xlsxwriter wrote the same frame in {rust.median:.1f} s against Herald's "
        f"{ours.median:.1f} s ({ours.median / rust.median:.2f}× Herald's speed), with a peak of "
        f"{rust.peak_mb:,.0f} MB against {ours.peak_mb:,.0f} MB: {'faster' if faster else 'slower'}, "
        f"{'within' if within else 'over'} the 500 MB limit, {verdict}.",
    ]


def _rules_section(m: Measured) -> list[str]:
    rules = m.rules
    if rules is None:
        return []
    seconds = rules["seconds"]
    return [
        "",
        "## Rules",
        "",
        f"{m.plan.rule_entities:,} entities × {rules['rules']} KPIs × {m.plan.rule_days} days "
        f"({rules['rows']:,} rows, KPI frames built by hand as `load_kpi` returns them), one rule per "
        f"KPI of each condition type in turn ({', '.join(rules['kinds'])}), evaluated for a daily run by "
        f"`evaluate_rule` as a run does: {statistics.median(seconds):.2f} s median of {len(seconds)} "
        f"({min(seconds):.2f}–{max(seconds):.2f} s), {rules['findings']:,} findings.",
    ]


def _jobs_section(m: Measured) -> list[str]:
    jobs = m.jobs
    if jobs is None:
        return []
    plan = m.plan
    lines = [
        "",
        "## Demo jobs end to end",
        "",
        f"`run.py run JOB --as-of 2026-11-22 --dry-run -q --json` on the {plan.projects:,}-project warehouse, "
        f"timed from start to exit; peak memory of the largest process. Queries per run from `--json` "
        f"(for {PER_PROJECT}, from `preview {PER_PROJECT} --recipient p0001`, which computes the whole "
        f"run for every project and renders one report).",
        "",
        f"| job | seconds | peak MB | runs | queries at {plan.small_projects:,} projects | "
        f"at {plan.projects:,} | findings |",
        "|---|---|---|---|---|---|---|",
    ]
    for job in JOBS:
        if job in jobs.trials:
            t = jobs.trials[job]
            lines.append(
                f"| {job} | {t.median:.1f} | {t.peak_mb:,.0f} | {t.spread} | "
                f"{jobs.small_queries.get(job, '—')} | {jobs.queries.get(job, '—')} | {jobs.findings.get(job, '—')} |"
            )
    pdfs = m.pdfs
    if pdfs is not None and 2 in pdfs.modes:
        t = pdfs.modes[2]
        lines.append(
            f"| {PER_PROJECT} (first {pdfs.projects} projects, 2 workers) | {t.median:.1f} | {t.peak_mb:,.0f} | "
            f"{t.spread} | {jobs.small_queries.get(PER_PROJECT, '—')} | {jobs.queries.get(PER_PROJECT, '—')} | |"
        )
        if pdfs.full is not None:
            lines.append(
                f"| {PER_PROJECT} (all {pdfs.full_written:,} projects, 2 workers) | {pdfs.full.seconds:.0f} | "
                f"{pdfs.full.peak_mb:,.0f} | 1 run | | | |"
            )
    return lines
