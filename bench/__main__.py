"""`make bench`: Herald's throughput, speed and memory against its targets, side by side in one run.

    python -m bench            # benchmark size (4,000 projects × 365 days), 3 runs each, ~15 min
    python -m bench --quick    # demo size, 1 run each: a smoke run of the harness

Writes the results (bench/results.md, or bench/.data/results-quick.md with --quick) and prints
them; progress goes to stderr. Exit 1 when a measurement could not be made (a target missed is
a result, not a failure).
"""

from __future__ import annotations

import argparse
import compileall
import ctypes.util
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from bench import export, pipeline
from bench.measure import PYTHON, ROOT, BenchError, elapsed, load_average, profile_line, run, say, summarize
from bench.results import Measured, Plan, figures, markdown

SECTIONS = ["rules", "jobs", "export", "chromium", "pdfs"]
PROFILE_RESERVE = 150.0  # seconds kept back for profiling what misses its target


def parse(argv: list[str] | None) -> Plan:
    parser = argparse.ArgumentParser(prog="python -m bench", description="Herald's benchmarks.")
    parser.add_argument("--quick", action="store_true", help="demo size, 1 run each: a smoke run")
    parser.add_argument("--trials", type=int, help="runs of each figure (3; 1 with --quick)")
    parser.add_argument(
        "--projects",
        type=int,
        help="N, the projects each timed per-project run covers (sized to the time left)",
    )
    parser.add_argument("--rows", type=int, help="rows of the export (1,000,000)")
    parser.add_argument(
        "--full",
        choices=["auto", "yes", "no"],
        default="auto",
        help="the one run of every project: when it fits the budget (auto)",
    )
    parser.add_argument("--budget", type=float, default=15, help="minutes the whole bench should take (15)")
    parser.add_argument("--no-profile", action="store_true", help="do not profile what misses its target")
    parser.add_argument("--only", help=f"comma-separated sections: {', '.join(SECTIONS)}")
    parser.add_argument("--out", type=Path, help="the results file (bench/results.md)")
    args = parser.parse_args(argv)
    only = set(args.only.split(",")) if args.only else set(SECTIONS)
    if only - set(SECTIONS):
        parser.error(f"unknown section {', '.join(sorted(only - set(SECTIONS)))}: use {', '.join(SECTIONS)}")
    quick = args.quick
    default_out = pipeline.CACHE / "results-quick.md" if quick else ROOT / "bench" / "results.md"
    return Plan(
        quick=quick,
        projects=400 if quick else 4000,
        days=120 if quick else 365,
        small_projects=40 if quick else 400,
        small_days=60 if quick else 120,
        trials=args.trials or (1 if quick else 3),
        pdf_projects=args.projects or (10 if quick else None),
        rows=args.rows or (50_000 if quick else 1_000_000),
        rule_entities=400 if quick else 4000,
        rule_kpis=20,
        rule_days=90,
        chromium_files=5 if quick else 40,
        full="no" if quick and args.full == "auto" else args.full,
        budget_seconds=args.budget * 60,
        profile=not args.no_profile,
        only=only,
        out=(args.out or default_out).resolve(),
    )


def machine(plan: Plan) -> list[str]:
    """The header: when, on what, with what, and how."""
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    memory = next(
        (
            int(line.split()[1]) / 1024**2
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        ),
        float("nan"),
    )
    usable = len(os.sched_getaffinity(0))
    harfbuzz = (
        "present"
        if ctypes.util.find_library("harfbuzz-subset")
        else "absent (WeasyPrint falls back to fontTools)"
    )
    python = os.path.relpath(PYTHON, ROOT) if PYTHON.startswith(str(ROOT)) else PYTHON
    command = "make bench" if os.environ.get("MAKELEVEL") else f"{python} -m bench"
    extra = " ".join(sys.argv[1:])
    return [
        f"Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"Machine: {usable} cores ({model}), {memory:.0f} GB RAM; load average at start {load_average()}",
        f"Python {platform.python_version()}, WeasyPrint {_version('weasyprint')}, libharfbuzz-subset {harfbuzz}",
        f"Herald: {_revision()}",
        f"Command: `{command}{_arguments(command, extra)}`"
        + (" (**quick**: demo size, not comparable with the targets)" if plan.quick else ""),
        f"Warehouse: {plan.projects:,} projects × {plan.days} days (`reports.demo.build`, seed 7), "
        f"and {plan.small_projects:,} × {plan.small_days} for queries per run; each figure is the "
        f"median of {plan.trials} run{'s' if plan.trials > 1 else ''}, the runs of each comparison in turn",
    ]


def _arguments(command: str, extra: str) -> str:
    """The bench's own arguments as the user gave them: to make, through BENCH_ARGS."""
    if not extra:
        return ""
    return f' BENCH_ARGS="{extra}"' if command == "make bench" else f" {extra}"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _revision() -> str:
    """The commit measured, and whether the working tree differed from it (read-only git)."""
    git = shutil.which("git")
    if git is None:
        return "unknown commit"
    try:
        head = subprocess.run(
            [git, "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=30
        )
        dirty = subprocess.run(
            # --no-optional-locks: status only reads, it does not refresh the index
            [git, "--no-optional-locks", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown commit"
    if head.returncode != 0:
        return "unknown commit"
    return f"commit {head.stdout.strip()}" + (" with local changes" if dirty.stdout.strip() else "")


def measure(plan: Plan, m: Measured, work: Path) -> None:
    """Every section in turn, cheapest first; the per-project runs are sized to the time left."""

    def big() -> Path:  # the warehouses are built on first use, and a failed build fails a section
        return pipeline.warehouse(plan.projects, plan.days)

    def small() -> Path:
        return pipeline.warehouse(plan.small_projects, plan.small_days)

    sections = {
        "rules": lambda: _rules(plan, m),
        "jobs": lambda: setattr(
            m, "jobs", pipeline.jobs(big(), small(), plan.small_projects, plan.trials, work)
        ),
        "export": lambda: setattr(m, "export", export.export(plan.rows, plan.trials)),
        "chromium": lambda: setattr(
            m, "printing", pipeline.chromium(work, big(), plan.chromium_files, plan.trials)
        ),
        "pdfs": lambda: _pdfs(plan, m, work, big()),
    }
    for name in SECTIONS:
        if name not in plan.only:
            continue
        say(f"— {name}")
        try:
            sections[name]()
        except BenchError as exc:
            say(f"{name}: not measured: {exc}")
            m.errors[name] = str(exc)
    for job, why in (m.jobs.failed if m.jobs else {}).items():
        m.errors[job] = why
    for writer, why in (m.export.failed if m.export else {}).items():
        m.errors[f"export, {writer}"] = why


def _rule_args(plan: Plan) -> list[str]:
    return [f"--entities={plan.rule_entities}", f"--kpis={plan.rule_kpis}", f"--days={plan.rule_days}"]


def _rules(plan: Plan, m: Measured) -> None:
    args = [PYTHON, "-m", "bench.rules", *_rule_args(plan), f"--trials={plan.trials}"]
    m.rules = json.loads(run(args).check("the rules bench").out)
    say(f"rules: {statistics.median(m.rules['seconds']):.2f} s, {m.rules['findings']:,} findings")


def _pdfs(plan: Plan, m: Measured, work: Path, big: Path) -> None:
    count = plan.pdf_projects
    if count is None:  # as many projects as the time left allows
        fixed, _ = pipeline.one_run(work, big, 1, 0)
        per_pdf = pipeline.per_pdf_seconds(work, big, fixed.seconds)
        left = plan.budget_seconds - elapsed() - PROFILE_RESERVE
        count = pipeline.size_projects(per_pdf, fixed.seconds, plan.trials, left, plan.projects)
        say(f"about {per_pdf:.2f} s a report in a plain loop: timed runs cover the first {count} projects")
    m.pdfs = pdfs = pipeline.per_project(work, big, plan.projects, count, plan.trials)
    if 2 not in pdfs.modes:
        return
    estimate = pdfs.projected_seconds(2) * 1.1
    left = plan.budget_seconds - elapsed() - PROFILE_RESERVE
    if plan.full == "yes" or (plan.full == "auto" and estimate <= left):
        say(f"one run of all {plan.projects:,} projects with 2 workers (about {estimate / 60:.0f} min)")
        pipeline.full_run(work, big, pdfs)
    else:
        reason = (
            "not asked for"
            if plan.full == "no"
            else f"about {estimate / 60:.0f} min, more than the {max(left, 0) / 60:.0f} min left of the budget"
        )
        pdfs.full_note = f"not run: {reason}"


def explain(plan: Plan, m: Measured, work: Path) -> None:
    """For each target missed, what dominates: a profile of the slow thing, in one line."""
    missed = {row.key for row in figures(m) if row.met is False}
    if "pdf_scaling" in missed and m.pdfs is not None:
        p = m.pdfs
        rendered = {w: p.modes[w].median - p.fixed.median for w in (1, 2)}
        m.why["pdf_scaling"] = (
            f"Each run first spends {p.fixed.median:.1f} s alone (starting, querying all {p.total:,} projects, "
            f"evaluating rules): that part does not scale. Rendering the other {p.projects - 1} reports took "
            f"{rendered[1]:.1f} s with 1 worker and {rendered[2]:.1f} s with 2 "
            f"({rendered[1] / rendered[2]:.2f}×); load average when done: {load_average()} on "
            f"{len(os.sched_getaffinity(0))} cores."
        )
    if not plan.profile:
        return
    profiles = {
        "pdf_rate": lambda: _profile_job(plan, work, pipeline.PER_PROJECT, 10 if plan.quick else 30),
        "analyst_monthly": lambda: _profile_job(plan, work, "analyst_monthly"),
        "cs_daily_alerts": lambda: _profile_job(plan, work, "cs_daily_alerts"),
        "xlsx_speed": lambda: profile_line(
            [str(export.HARNESS), "--child=herald", f"--rows={max(plan.rows // 5, 1000)}", f"--dir={work}"]
        ),
        "rules": lambda: _profile_rules(plan, work),
    }
    for key, profile in profiles.items():
        if key not in missed:
            continue
        say(f"profiling {key}")
        try:
            m.why[key] = f"Profile: {profile()}."
        except BenchError as exc:
            m.why[key] = f"(profiling failed: {exc})"
    if "xlsx_memory" in missed and m.export is not None:
        added = m.export.writing_mb.get("herald")
        if added:
            m.why["xlsx_memory"] = (
                f"The writer itself added {statistics.median(added):,.0f} MB; the rest is the process and "
                f"the {m.plan.rows:,}-row frame it writes."
            )


def _profile_job(plan: Plan, work: Path, job: str, projects: int | None = None) -> str:
    db = pipeline.warehouse(plan.projects, plan.days)
    base = pipeline.folder(work, db, pipeline.first_projects(projects))
    args = [str(ROOT / "run.py"), "run", job, f"--as-of={pipeline.AS_OF}", "--out=out", "--dry-run", "-q"]
    args.append("--workers=0")  # in one process, so the profile sees all the work
    try:
        line = profile_line(args, cwd=base)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    what = f"a plain-loop run of the first {projects} projects" if projects else "one run"
    return f"{what}: {line}"


def _profile_rules(plan: Plan, work: Path) -> str:
    stats = work / "rules.prof"
    args = [PYTHON, "-m", "bench.rules", *_rule_args(plan), f"--profile={stats}"]
    run(args).check("profiling the rules")
    return f"one evaluation: {summarize(stats)}"


def compiled() -> None:
    """Herald's modules byte-compiled first, as an install leaves them: a checkout run with
    PYTHONDONTWRITEBYTECODE set would otherwise compile every changed module in every timed run."""
    for package in ("reports", "notifiers"):
        compileall.compile_dir(ROOT / package, quiet=1)


def main(argv: list[str] | None = None) -> int:
    plan = parse(argv)
    m = Measured(plan, header=machine(plan))
    say(f"Herald bench{' (quick)' if plan.quick else ''}: results to {plan.out}")
    pipeline.CACHE.mkdir(parents=True, exist_ok=True)
    compiled()
    with tempfile.TemporaryDirectory(prefix="work-", dir=pipeline.CACHE) as folder:
        work = Path(folder)
        try:
            measure(plan, m, work)
            explain(plan, m, work)
        except KeyboardInterrupt:
            m.errors["interrupted"] = "stopped by Ctrl-C"
            m.notes.append("Stopped by Ctrl-C: the figures are those measured until then.")
            say("stopped: writing what was measured")
    minutes, seconds = divmod(int(elapsed()), 60)
    m.header.append(f"Took {minutes} min {seconds:02d} s; load average at the end {load_average()}")
    text = markdown(m)
    plan.out.parent.mkdir(parents=True, exist_ok=True)
    plan.out.write_text(text, encoding="utf-8")
    print(text)
    return 1 if m.errors else 0


if __name__ == "__main__":
    sys.exit(main())
