"""`make bench`'s harness: its smallest run writes and prints the results table with its targets,
gaps are said in numbers, and profiles name where the time went."""

from __future__ import annotations

import cProfile
import subprocess
import sys
from pathlib import Path

from bench.measure import summarize
from bench.results import at_least, at_most
from reports.formatting import format_value
from tests.conftest import ROOT


def test_quick_run_writes_and_prints_the_results_table(tmp_path: Path):
    out = tmp_path / "results.md"
    args = ["--quick", "--only", "rules,export", "--rows", "2000", "--no-profile", "--out", str(out)]
    done = subprocess.run(
        [sys.executable, "-m", "bench", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    text = out.read_text(encoding="utf-8")
    assert done.stdout.strip() == text.strip()  # printed as written
    for header in ("- Date: ", "- Machine: ", "- Python 3.11", "- Command: "):
        assert f"\n{header}" in text
    assert "WeasyPrint " in text and "libharfbuzz-subset " in text
    summary = text.split("## Summary", 1)[1]
    rules = next(line for line in summary.splitlines() if line.startswith("| Rules, 400 entities"))
    assert rules.split("|")[3].strip() == "≤ 0.5 s"
    assert rules.split("|")[4].strip()[0] in "✓✗"
    for writer in ("Herald's workbook writer", "rustpy-xlsxwriter", "openpyxl write-only", "pandas to_csv"):
        assert f"| {writer} |" in text
    assert "rustpy-xlsxwriter wrote the same frame in " in text  # and whether it earns its place
    assert "| XLSX 2,000 × 10: Herald's writer vs openpyxl write-only |" in summary


def test_a_missed_target_says_by_how_much():
    assert at_least(190, 800, " a minute") == (False, "24% of the target, short by 610 a minute")
    assert at_least(1.797, 1.8, "×") == (False, "99.8% of the target, short by 0.003×")  # a near miss
    assert at_most(8.2, 5, " s") == (False, "over by 3.20 s, 1.6× the target")
    assert at_least(900, 800) == (True, "")
    assert at_most(0.3, 0.5) == (True, "")
    assert at_least(float("nan"), 800) == (None, "")


def test_a_profile_names_the_package_that_took_the_time(tmp_path: Path):
    profiler = cProfile.Profile()
    profiler.runcall(lambda: [format_value(n * 1.5, "count") for n in range(30_000)])
    profiler.dump_stats(tmp_path / "stats")
    line = summarize(tmp_path / "stats")
    assert line.startswith("own time by package: ")
    assert "reports/formatting" in line.split(";")[0]
    assert "formatting.py:" in line.split("heaviest functions: ")[1]
