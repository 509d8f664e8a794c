"""Herald run as a user runs it: `run.py run JOB --dry-run` on a config.yaml beside the benchmark
warehouse, each run in a fresh folder (its own store and out dir), timed from start to exit.

The warehouse is built once per size by `run.py demo-data` into `bench/.data/` and reused while
the demo generator's code is unchanged. Per-project runs are sized by narrowing the config's
entity query to the first N projects; every KPI is still queried for all of them.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from bench import chromium as browser
from bench.measure import PYTHON, ROOT, BenchError, Child, Trials, run, say

CACHE = Path(__file__).resolve().parent / ".data"
AS_OF = "2026-11-22"
PER_PROJECT = "project_health"
JOBS = ["executive_weekly", "cs_daily_alerts", "analyst_monthly"]
WORKERS = [0, 1, 2]


def warehouse(projects: int, days: int) -> Path:
    """The demo warehouse at this size, built once and reused while reports/demo/ is unchanged."""
    code = hashlib.sha256()
    for source in sorted((ROOT / "reports" / "demo").rglob("*.py")):
        code.update(source.read_bytes())
    stem = f"warehouse-{projects}x{days}"
    path = CACHE / f"{stem}-{code.hexdigest()[:10]}.duckdb"
    if path.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    for stale in CACHE.glob(f"{stem}-*.duckdb"):  # built by an older generator
        stale.unlink()
    say(f"building the {projects:,} × {days} warehouse (once) into {path.relative_to(ROOT)}")
    args = ["run.py", "demo-data", "--projects", str(projects), "--days", str(days), "--out", str(path)]
    run([PYTHON, *args], timeout=1800).check("building the warehouse")
    return path


def folder(parent: Path, db: Path, edit: Callable[[dict], None] | None = None) -> Path:
    """A fresh folder holding config.yaml (edited by `edit`), data/demo.duckdb linked to `db`, and
    its own store, as a user's deployment would have."""
    base = Path(tempfile.mkdtemp(prefix="run-", dir=parent))
    (base / "data").mkdir()
    (base / "data" / "demo.duckdb").symlink_to(db)
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["store"] = "data/herald.sqlite"
    if edit:
        edit(config)
    (base / "config.yaml").write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False))
    return base


def first_projects(count: int | None, formats: list[str] | None = None) -> Callable[[dict], None]:
    """A config edit: the per-project job covers the first `count` projects (all when None)."""

    def edit(config: dict) -> None:
        if count is not None:
            entity = config["entities"]["project"]
            entity["sql"] = f"SELECT * FROM ({entity['sql'].strip()}) AS e ORDER BY entity LIMIT {count}"
        if formats:
            config["reports"][PER_PROJECT]["formats"] = formats

    return edit


def herald(base: Path, *args: str, timeout: float = 1800) -> Child:
    """`run.py ARGS` in `base`, as a user would type it there."""
    return run([PYTHON, str(ROOT / "run.py"), *args], cwd=base, timeout=timeout)


def run_job(base: Path, job: str, workers: int | None = None, timeout: float = 1800) -> tuple[Child, dict]:
    """One dry run of `job` into a new out dir; the child and its `--json` summary."""
    args = ["run", job, "--as-of", AS_OF, "--out", "out", "--dry-run", "-q", "--json"]
    if workers is not None:
        args += ["--workers", str(workers)]
    child = herald(base, *args, timeout=timeout).check(f"run {job}")
    try:
        summary = json.loads(child.out)
    except json.JSONDecodeError as exc:
        raise BenchError(f"run {job} --json printed no JSON: {exc}") from None
    return child, summary


def _queries(result: Jobs, big: Path, small: Path, work: Path) -> None:
    """Queries per run at the small size too; for the per-project job at both sizes with every
    project in it, without rendering thousands of PDFs: `preview` computes the whole run, then
    renders one recipient's report."""
    for job in JOBS:
        if job not in result.failed:
            result.small_queries[job] = _fresh_run(work, small, job)[1].get("queries", -1)
    for db, into in ((big, result.queries), (small, result.small_queries)):
        base = folder(work, db)
        try:
            child = herald(base, "preview", PER_PROJECT, "--as-of", AS_OF, "--recipient", "p0001", "-q")
        finally:
            shutil.rmtree(base, ignore_errors=True)
        found = re.search(r"([\d,]+) quer(?:y|ies)\b", child.check(f"preview {PER_PROJECT}").out)
        into[PER_PROJECT] = int(found.group(1).replace(",", "")) if found else -1


def _fresh_run(work: Path, db: Path, job: str) -> tuple[Child, dict]:
    base = folder(work, db)
    try:
        return run_job(base, job)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def pdfs(base: Path) -> tuple[int, int]:
    """Per-project PDFs and whole-portfolio PDFs the per-project job wrote under `base`/out."""
    day = base / "out" / PER_PROJECT / AS_OF
    every = list(day.rglob("*.pdf")) if day.exists() else []
    portfolio = sum(1 for path in every if path.parent == day)
    return len(every) - portfolio, portfolio


@dataclass
class Jobs:
    """Each demo job end to end at one warehouse size, and each job's queries per run."""

    trials: dict[str, Trials] = field(default_factory=dict)
    queries: dict[str, int] = field(default_factory=dict)
    small_queries: dict[str, int] = field(default_factory=dict)
    findings: dict[str, int] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)  # job → why it has no figures


def jobs(big: Path, small: Path, small_projects: int, trials: int, work: Path) -> Jobs:
    """The demo jobs at benchmark size, run in turn `trials` times; queries also at the small size.
    A job that fails is named in the results; the others are still measured."""
    result = Jobs()
    for trial in range(1, trials + 1):
        for job in JOBS:
            if job in result.failed:
                continue
            try:
                child, summary = _fresh_run(work, big, job)
            except BenchError as exc:
                result.failed[job] = str(exc)
                say(f"{job}: not measured: {exc}")
                continue
            result.trials.setdefault(job, Trials()).add(child)
            result.queries[job] = summary.get("queries", -1)
            result.findings[job] = len(summary.get("findings", []))
            say(f"{job}: {child.seconds:.1f} s, {child.peak_mb:.0f} MB peak (run {trial} of {trials})")
    try:
        _queries(result, big, small, work)
    except BenchError as exc:  # the timings stand; the counts are named as not measured
        result.failed["queries"] = str(exc)
    say(
        f"queries per run: {result.small_queries} at {small_projects:,} projects, {result.queries} at benchmark size"
    )
    return result


@dataclass
class PerProject:
    """Per-project PDFs, whole pipeline: a run of one project (the fixed cost), then N projects
    by a plain loop, 1 and 2 workers, in turn."""

    projects: int  # N, the projects each timed run covers
    total: int  # projects in the warehouse
    fixed: Trials = field(default_factory=Trials)
    modes: dict[int, Trials] = field(default_factory=dict)
    written: dict[int, int] = field(default_factory=dict)  # per-project PDFs of each mode's last run
    full: Child | None = None  # one run of every project with 2 workers
    full_written: int = 0
    full_note: str = ""

    def marginal(self, workers: int) -> float:
        """Per-project PDFs a minute once the fixed cost is paid: (N − 1) / (t(N) − t(1))."""
        extra = self.modes[workers].median - self.fixed.median
        # Not above the fixed cost: the machine was too noisy (or N too small) to tell them apart.
        return (self.projects - 1) / extra * 60 if extra > 0 else float("nan")

    def projected_seconds(self, workers: int, projects: int | None = None) -> float:
        """A run of every project in the warehouse, from the fixed cost and the marginal rate."""
        count = self.total if projects is None else projects
        return self.fixed.median + (count - 1) / self.marginal(workers) * 60


def one_run(
    work: Path, db: Path, count: int | None, workers: int, timeout: float = 3600
) -> tuple[Child, int]:
    """One timed run of the per-project job; the child and the per-project PDFs it wrote."""
    base = folder(work, db, first_projects(count))
    try:
        child, _ = run_job(base, PER_PROJECT, workers, timeout=timeout)
        written, _ = pdfs(base)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    if count is not None and written != count:
        raise BenchError(f"{PER_PROJECT} for {count} projects wrote {written} per-project PDFs")
    return child, written


def per_pdf_seconds(work: Path, db: Path, fixed: float) -> float:
    """A first guess at one report's cost in a plain loop, for sizing the timed runs. On a busy
    machine one run can be quicker than another of less work, so the guess is never below 0.1 s
    (600 reports a minute in one process): a run sized on it may be smaller, never much longer."""
    child, _ = one_run(work, db, 10, 0)
    return max((child.seconds - fixed) / 9, 0.1)


def size_projects(per_pdf: float, fixed: float, trials: int, seconds: float, total: int) -> int:
    """The N for which `trials` rounds of the three modes fit in `seconds` (at least 20, at most
    400, a multiple of 10), guessing 2 workers twice as fast as one."""
    per_round = seconds / trials - 3 * fixed
    count = int(per_round / (per_pdf * 2.5)) // 10 * 10
    return max(20, min(count, 400, total))


def per_project(work: Path, db: Path, total: int, count: int, trials: int) -> PerProject:
    result = PerProject(count, total)
    for trial in range(1, trials + 1):
        child, _ = one_run(work, db, 1, 0)
        result.fixed.add(child)
        for workers in WORKERS:
            child, written = one_run(work, db, count, workers)
            result.modes.setdefault(workers, Trials()).add(child)
            result.written[workers] = written
            say(
                f"{PER_PROJECT}, {count} projects, workers {workers}: {child.seconds:.1f} s "
                f"({written / child.seconds * 60:.0f} a minute), {child.peak_mb:.0f} MB peak "
                f"(run {trial} of {trials})"
            )
    say(f"{PER_PROJECT}, 1 project (the fixed cost): {result.fixed.median:.1f} s median")
    return result


def full_run(work: Path, db: Path, result: PerProject) -> None:
    """The headline: every project of the warehouse with 2 workers, once."""
    child, written = one_run(work, db, None, 2, timeout=7200)
    result.full, result.full_written = child, written
    say(f"{PER_PROJECT}, all {written:,} projects, 2 workers: {child.seconds:.0f} s")


@dataclass
class Printing:
    """A warm Chromium printing the per-project reports' HTML."""

    files: int = 0
    trials: Trials = field(default_factory=Trials)
    note: str = ""


def chromium(work: Path, db: Path, count: int, trials: int) -> Printing:
    """Render `count` projects' HTML with Herald (not timed), then print each with one warm
    Chromium, `trials` times over."""
    executable = browser.available()
    if executable is None:
        return Printing(note="skipped: no Chromium at /usr/bin/chromium")
    base = folder(work, db, first_projects(count, formats=["html"]))
    try:
        run_job(base, PER_PROJECT, 2)
        day = base / "out" / PER_PROJECT / AS_OF
        pages = sorted(path for path in day.rglob("*.html") if path.parent != day)
        if len(pages) != count:
            raise BenchError(f"{PER_PROJECT} as HTML for {count} projects wrote {len(pages)} pages")
        result = Printing(files=len(pages))
        printed = base / "printed"
        printed.mkdir()
        try:
            with browser.Chromium(executable) as tab:
                tab.print_pdf(pages[0])  # warm: the first page pays for the renderer's start
                for trial in range(1, trials + 1):
                    child = _printed(tab, pages, printed)
                    result.trials.add(child)
                    say(
                        f"Chromium printed {len(pages)} reports in {child.seconds:.1f} s (run {trial} of {trials})"
                    )
        except (OSError, RuntimeError, TimeoutError) as exc:
            raise BenchError(f"Chromium: {exc}") from None
        return result
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _printed(tab: browser.Chromium, pages: list[Path], into: Path) -> Child:
    start = time.perf_counter()
    for number, page in enumerate(pages):
        pdf = tab.print_pdf(page)
        if not pdf.startswith(b"%PDF"):
            raise BenchError(f"Chromium printed no PDF for {page.name}")
        (into / f"{number}.pdf").write_bytes(pdf)
    return Child(time.perf_counter() - start, float("nan"), 0, "", "")
