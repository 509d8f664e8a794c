"""The workbook's bulk rows and its zip file, written faster than XlsxWriter's own calls.

Both lean on XlsxWriter's internals, which is why XlsxWriter is pinned: `RowWriter.fits` checks
that a sheet works the way the row writer relies on (and the tests compare both ways of writing
cell by cell), and `ZIP_LEVEL` takes effect only while XlsxWriter zips with `zipfile.ZipFile`.
A long sheet's rows are formatted by two processes at once on a machine with two cores
(`write_rows`), into the same bytes one process writes.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any, BinaryIO

import numpy as np
import pandas as pd
import xlsxwriter.workbook
from xlsxwriter.utility import xl_col_to_name
from xlsxwriter.worksheet import Worksheet
from xlsxwriter.xmlwriter import XMLwriter

from reports.cores import usable_cores

MAX_TEXT = 32_767  # characters (UTF-16 units) in one cell
EXCEL_EPOCH = date(1899, 12, 30)
# zlib's level for the workbook's parts. XlsxWriter zips at zlib's default (6) and has no setting
# for it; most of a large workbook's write was compressing its bulk sheet. At 3, the 4,000-project
# export zips in 0.5 s rather than 1.3 s and is 14% larger (8.0 MB rather than 7.1 MB).
ZIP_LEVEL = 3
# A sheet of at least this many chunks of rows is written by two processes at once (`write_rows`);
# the helper may take this long, or five times this process's half, before it is given up on.
HELPED_FROM = 2
PATIENCE = 60.0


class _Zip(zipfile.ZipFile):
    """XlsxWriter's zip file, at ZIP_LEVEL unless told otherwise."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("compresslevel", ZIP_LEVEL)
        super().__init__(*args, **kwargs)


if xlsxwriter.workbook.ZipFile is zipfile.ZipFile:  # the one name XlsxWriter opens its zip by
    xlsxwriter.workbook.ZipFile = _Zip  # type: ignore[misc]


def column_values(series: pd.Series) -> tuple[str, list[Any]]:
    """One column's cells as plain Python values: ("number", floats) or ("text", strings or None)."""
    if pd.api.types.is_datetime64_any_dtype(series):
        # Excel serial day numbers: as fast to write as numbers, shown as dates by the cell format.
        return "number", (series - pd.Timestamp(EXCEL_EPOCH)).dt.days.astype("float").tolist()
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        return "number", series.astype(float).tolist()
    return "text", [None if pd.isna(v) else str(v) for v in series]


class RowWriter:
    """Whole rows of a constant-memory sheet as XML, a chunk at a time, in place of XlsxWriter's
    per-cell calls (about 3 µs each: most of a large workbook's time).

    The XML is the cells XlsxWriter itself writes in this mode: numbers as `%.16G`, text as inline
    strings, escaped as it escapes them, an empty cell left out. Each row is one `str.format` of a
    template made for its pattern of present and empty cells; text is escaped once per distinct
    value, not per cell. The rows go to the sheet's own row file, and the sheet's bookkeeping (last
    row written, dimensions) moves on as its own writes would; `fits` checks that the sheet works
    the way this relies on (XlsxWriter is pinned, and the tests compare both ways of writing).
    """

    def __init__(self, sheet: Worksheet, cell_formats: list[Any]) -> None:
        self.sheet = sheet
        # A cell without a format of its own takes its column's, as XlsxWriter writes it.
        columns = [sheet.col_info.get(col) for col in range(len(cell_formats))]
        formats = [
            fmt or (info and info.column_format) for fmt, info in zip(cell_formats, columns, strict=True)
        ]
        self.styles = [f' s="{fmt._get_xf_index()}"' if fmt else "" for fmt in formats]
        self.letters = [xl_col_to_name(col) for col in range(len(cell_formats))]
        self.templates: dict[int, str] = {}
        self.texts: list[dict[str, str]] = [{} for _ in cell_formats]

    @staticmethod
    def fits(sheet: Worksheet) -> bool:
        return bool(getattr(sheet, "constant_memory", False)) and all(
            hasattr(sheet, attr) for attr in ("row_data_fh", "previous_row", "_write_single_row")
        )

    def write(self, top: int, block: pd.DataFrame) -> None:
        """`block`'s rows as sheet rows `top`, `top` + 1, ... (0-based)."""
        if block.empty:
            return
        bottom = self._place(top, len(block))
        self.sheet.row_data_fh.write(self.xml(top, block))
        self.sheet.previous_row = bottom

    def append(self, top: int, rows: int, xml: BinaryIO) -> None:
        """`rows` rows already written as XML (UTF-8, by `xml`) into a file, from sheet row `top`."""
        bottom = self._place(top, rows)
        handle = self.sheet.row_data_fh
        handle.flush()  # what the text layer holds goes first; the rows follow it as bytes
        shutil.copyfileobj(xml, handle.buffer, 1 << 20)
        self.sheet.previous_row = bottom

    def _place(self, top: int, rows: int) -> int:
        """The sheet's bookkeeping for rows `top`... as its own writes would move it: what is
        pending above (the header) goes out first, and the dimensions grow."""
        sheet, bottom = self.sheet, top + rows - 1
        sheet._write_single_row(top)
        sheet._check_dimensions(top, 0)
        sheet._check_dimensions(bottom, len(self.letters) - 1)
        return bottom

    def xml(self, top: int, block: pd.DataFrame) -> str:
        """`block`'s rows as the XML of sheet rows `top`...; the sheet itself is not touched."""
        cells, present, numeric = [], [], []
        for col in range(len(self.letters)):
            kind, values = _text_or_numbers(block.iloc[:, col])
            if kind == "number":
                numbers = np.asarray(values, dtype=float)
                present.append(np.isfinite(numbers))  # NaN and infinities stay empty cells
                cells.append(numbers.tolist())
            else:
                codes, texts = values
                known = self.texts[col]  # escaped once per distinct text across the sheet's chunks
                tails = [known.get(t) or known.setdefault(t, self._text(col, t)) for t in texts]
                present.append(codes >= 0)
                cells.append(np.array([*tails, ""], dtype=object)[codes].tolist())  # -1: the ""
            numeric.append(kind == "number")
        # Which cells each row has, as bits: the key of the row's template.
        kind = np.int64 if len(present) < 63 else object  # a bit per column
        patterns = np.zeros(len(block), dtype=kind)
        for bit, has in enumerate(present):
            patterns = patterns + np.where(has, 1 << bit, 0).astype(kind)
        for pattern in set(patterns.tolist()):
            if pattern not in self.templates:
                self.templates[pattern] = self._template(pattern, numeric)
        templates = self.templates
        rows = zip(patterns.tolist(), range(top + 1, top + len(block) + 1), *cells, strict=True)
        return "".join([templates[row[0]].format(*row) for row in rows])

    def _text(self, col: int, text: str) -> str:
        """A text cell after its reference: style, type and the escaped string."""
        return f'"{self.styles[col]} t="inlineStr"><is>{_inline(text)}</is></c>'

    def _template(self, pattern: int, numeric: list[bool]) -> str:
        """A row's XML with `{1}` its number and `{2}`... its cells, the empty ones left out."""
        parts = ['<row r="{1}">']
        for col, letter in enumerate(self.letters):
            if pattern >> col & 1:
                if numeric[col]:
                    parts.append(f'<c r="{letter}{{1}}"{self.styles[col]}><v>{{{col + 2}:.16G}}</v></c>')
                else:
                    parts.append(f'<c r="{letter}{{1}}{{{col + 2}}}')
        parts.append("</row>")
        return "".join(parts)


def _text_or_numbers(series: pd.Series) -> tuple[str, Any]:
    """("number", floats) as `column_values` gives them, or ("text", (codes, distinct texts))."""
    kind, values = ("text", None) if _is_text(series) else column_values(series)
    if kind == "number":
        return kind, values
    if isinstance(series.dtype, pd.CategoricalDtype):
        return "text", (series.cat.codes.to_numpy(), [str(v) for v in series.cat.categories])
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    return "text", (codes, [str(v) for v in uniques])


def _is_text(series: pd.Series) -> bool:
    return not (
        pd.api.types.is_datetime64_any_dtype(series)
        or (pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series))
    )


def _inline(text: str) -> str:
    """An inline string's `<t>` element, escaped as XlsxWriter escapes one; never read as markup."""
    if len(text) > MAX_TEXT // 2 and len(text.encode("utf-16-le", "surrogatepass")) > 2 * MAX_TEXT:
        text = text.encode("utf-16-le", "surrogatepass")[: 2 * MAX_TEXT].decode("utf-16-le", "ignore")
    text = XMLwriter._escape_control_characters(text)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    preserve = ' xml:space="preserve"' if text[:1].isspace() or text[-1:].isspace() else ""
    return f"<t{preserve}>{text}</t>"


def write_rows(rows: RowWriter, frame: pd.DataFrame, first: int, last: int, chunk: int) -> None:
    """`frame`'s rows `first`... up to `last` as the rows of `rows`' sheet below its header, a
    chunk at a time.

    Formatting rows of XML is pure Python and holds one core; a sheet of many chunks is written
    by two processes at once where there are two cores: a helper forked here formats the second
    half into a file while this process formats the first, then its file follows on. Should the
    helper fail or stall, this process writes that half itself: no row is ever lost or doubled.
    """

    def blocks(start: int, end: int) -> Iterator[tuple[int, pd.DataFrame]]:
        for top in range(start, end, chunk):
            yield top - first + 1, frame.iloc[top : min(top + chunk, end)]

    if last - first < HELPED_FROM * chunk or not _can_help(rows):
        for top, block in blocks(first, last):
            rows.write(top, block)
        return
    middle = first + (last - first) // 2  # the helper takes the rows from here on

    def helping(out: BinaryIO) -> None:
        for top, block in blocks(middle, last):
            out.write(rows.xml(top, block).encode())

    started = time.monotonic()
    with tempfile.TemporaryFile() as helped:
        helper = _fork(helping, helped)
        try:
            for top, block in blocks(first, middle):
                rows.write(top, block)
        except BaseException:
            if helper is not None:  # this process failed first: the helper's work is not wanted
                _stop(helper)
            raise
        if helper is not None and _finished(helper, max(PATIENCE, 5 * (time.monotonic() - started))):
            helped.seek(0)
            rows.append(middle - first + 1, last - middle, helped)
            return
    for top, block in blocks(middle, last):
        rows.write(top, block)


def _can_help(rows: RowWriter) -> bool:
    return usable_cores() > 1 and hasattr(os, "fork") and hasattr(rows.sheet.row_data_fh, "buffer")


def _fork(work: Callable[[BinaryIO], None], out: BinaryIO) -> int | None:
    """A child process doing `work(out)` and ending; its pid, or None when none could start."""
    out.flush()
    try:
        pid = os.fork()
    except OSError:
        return None
    if pid:
        return pid
    code = 1  # the child: it only formats strings and writes a file, then ends at once
    try:
        work(out)
        out.flush()
        code = 0
    finally:
        os._exit(code)


def _finished(pid: int, patience: float) -> bool:
    """Whether the helper ended well within `patience` seconds; a stalled one is stopped."""
    deadline = time.monotonic() + patience
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status) == 0
        if time.monotonic() > deadline:
            _stop(pid)
            return False
        time.sleep(0.005)


def _stop(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
