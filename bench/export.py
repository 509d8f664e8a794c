"""The 1,000,000 × 10 export: Herald's workbook writer, rustpy-xlsxwriter, openpyxl's write-only
mode and pandas' `to_csv`, each run by `bench/render.py --child WRITER` in a process of its own, in turn."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field

from bench.measure import PYTHON, ROOT, BenchError, Trials, run, say

WRITERS = {
    "herald": "Herald's workbook writer",
    "rustpy": "rustpy-xlsxwriter",
    "openpyxl": "openpyxl write-only",
    "csv": "pandas to_csv",
}
HARNESS = ROOT / "bench" / "render.py"


@dataclass
class Export:
    rows: int
    trials: dict[str, Trials] = field(default_factory=dict)  # seconds as the harness times the writing
    writing_mb: dict[str, list[float]] = field(default_factory=dict)  # memory added while writing
    quarter_writing_mb: float | None = None  # Herald's writer at a quarter of the rows
    failed: dict[str, str] = field(default_factory=dict)  # writer → why it has no figures

    def speedup(self) -> float:
        """How many times faster Herald's writer is than openpyxl's write-only mode."""
        return self.trials["openpyxl"].median / self.trials["herald"].median


def write_once(writer: str, rows: int) -> tuple[float, float, float | None]:
    """Seconds writing, the process's peak MB and the MB added while writing, for one writer."""
    with tempfile.TemporaryDirectory(prefix="herald-bench-export-") as folder:
        args = [PYTHON, str(HARNESS), "--child", writer, "--rows", str(rows), "--dir", folder]
        child = run(args, timeout=3600).check(f"the {writer} export")
    try:
        figures = json.loads(child.out.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        raise BenchError(f"the {writer} export printed no JSON figures") from None
    # The harness's own figures where it gives them; the child's as the kernel saw it otherwise.
    seconds = float(figures.get("seconds", child.seconds))
    peak = float(figures.get("peak_mb", child.peak_mb))
    writing = figures.get("writing_mb")
    return seconds, max(peak, child.peak_mb), None if writing is None else float(writing)


def export(rows: int, trials: int) -> Export:
    result = Export(rows)
    for trial in range(1, trials + 1):
        for writer in WRITERS:
            if writer in result.failed:
                continue
            try:
                seconds, peak, writing = write_once(writer, rows)
            except BenchError as exc:  # the others are still measured
                result.failed[writer] = str(exc)
                say(f"export, {WRITERS[writer]}: not measured: {exc}")
                continue
            result.trials.setdefault(writer, Trials()).seconds.append(seconds)
            result.trials[writer].peaks_mb.append(peak)
            if writing is not None:
                result.writing_mb.setdefault(writer, []).append(writing)
            say(f"export, {WRITERS[writer]}: {seconds:.1f} s, {peak:.0f} MB peak (run {trial} of {trials})")
    if "herald" not in result.failed:
        *_, result.quarter_writing_mb = write_once("herald", rows // 4)
    return result
