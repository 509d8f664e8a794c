"""The export harness of `make bench` (`python -m bench`): a 1,000,000-row × 10-column frame
written by Herald's workbook writer, by rustpy-xlsxwriter (the Rust writer the workbook could
adopt), by openpyxl's write-only mode and by pandas' to_csv.
`--child WRITER` writes once and prints its figures as JSON; each writer runs in its own process
so its peak memory is its own. Run alone, this prints the three side by side.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def frame(rows: int):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(1)
    return pd.DataFrame(
        {
            "day": pd.Timestamp("2026-01-01") + pd.to_timedelta(np.arange(rows) % 365, "D"),
            "entity": [f"p{i % 4000:04d}" for i in range(rows)],
            "name": [f"Project {i % 4000}" for i in range(rows)],
            **{f"kpi_{k}": rng.random(rows) * 10_000 for k in range(7)},
        }
    )


def _status(field: str) -> float:
    """A memory figure of this process from /proc, in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def write(writer: str, rows: int, folder: Path) -> dict:
    data = frame(rows)
    Path("/proc/self/clear_refs").write_text("5")  # restart the peak count: measure the writing alone
    before = _status("VmRSS")
    start = time.perf_counter()
    if writer == "herald":
        import xlsxwriter

        from reports.render.xlsx import Styles, write_table

        book = xlsxwriter.Workbook(
            str(folder / "out.xlsx"), {"constant_memory": True, "strings_to_formulas": False}
        )
        styles = Styles(book)
        write_table(book, styles, "Data", data, {"day": styles.date})
        book.close()
    elif writer == "rustpy":
        import rustpy_xlsxwriter

        excel = rustpy_xlsxwriter.FastExcel(str(folder / "out.xlsx")).format(datetime_format="yyyy-mm-dd")
        excel.sheet("Data", data).save()
    elif writer == "openpyxl":
        from openpyxl import Workbook

        book = Workbook(write_only=True)
        sheet = book.create_sheet("Data")
        sheet.append(list(data.columns))
        for row in data.itertuples(index=False):
            sheet.append([row[0].to_pydatetime(), *row[1:]])
        book.save(folder / "out.xlsx")
    elif writer == "csv":
        data.to_csv(folder / "out.csv", index=False)
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "writing_mb": _status("VmHWM") - before,
    }


def measure(writer: str, rows: int) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        output = subprocess.run(
            [sys.executable, __file__, "--child", writer, "--rows", str(rows), "--dir", folder],
            capture_output=True,
            text=True,
            check=True,
        )
        return json.loads(output.stdout)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dir", type=Path)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(write(args.child, args.rows, args.dir)))
        return
    print(f"Export of {args.rows:,} rows × 10 columns, each writer in its own process")
    print(f"{'writer':<38}{'seconds':>8}{'vs csv':>8}{'peak MB':>9}{'MB added while writing':>24}")
    results = {w: measure(w, args.rows) for w in ("herald", "rustpy", "openpyxl", "csv")}
    names = {
        "herald": "Herald (XlsxWriter, constant memory)",
        "rustpy": "rustpy-xlsxwriter",
        "openpyxl": "openpyxl write-only",
        "csv": "pandas to_csv",
    }
    for writer, result in results.items():
        ratio = result["seconds"] / results["csv"]["seconds"]
        print(
            f"{names[writer]:<38}{result['seconds']:>8.1f}{ratio:>7.1f}×{result['peak_mb']:>9.0f}"
            f"{result['writing_mb']:>24.0f}"
        )
    small = measure("herald", args.rows // 4)
    print(
        f"\nMemory Herald's writer adds while writing: {small['writing_mb']:.0f} MB for {args.rows // 4:,} rows, "
        f"{results['herald']['writing_mb']:.0f} MB for {args.rows:,}"
    )


if __name__ == "__main__":
    main()
