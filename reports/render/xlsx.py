"""The analyst workbook: summary with a native chart, every KPI by entity and day, pivots by
dimension, alerts, definitions and freshness.

Cells are typed (dates as dates, numbers as numbers, rates as percentages); text is always
written as text, so a name such as `=HYPERLINK(...)` or `+Plus Media` is never run as a formula.
The bulk sheet streams rows to disk (XlsxWriter's constant-memory mode), so memory stays flat as
rows grow, and continues on further sheets past Excel's row limit.
"""

from __future__ import annotations

import math
import re
import tempfile
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import xlsxwriter
from xlsxwriter.worksheet import Worksheet

from reports.formatting import format_through
from reports.render import Renderer, register
from reports.report.model import Report

MAX_ROWS = 1_048_576  # Excel's limit, header row included
EXCEL_EPOCH = date(1899, 12, 30)
NUMBER_FORMATS = {"count": "#,##0", "percent": "0.0%", "seconds": "#,##0.0", "currency": "#,##0.00"}


@register
class XlsxRenderer(Renderer):
    format = "xlsx"
    extension = "xlsx"
    media_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    needs = frozenset({"rollups", "daily"})

    def render(self, report: Report) -> bytes:
        with tempfile.TemporaryDirectory(prefix="herald-") as folder:
            path = Path(folder) / "report.xlsx"
            self.write(report, path)
            return path.read_bytes()

    def write(self, report: Report, path: Path) -> None:
        """Stream the workbook to `path`."""
        book = xlsxwriter.Workbook(
            str(path),
            {
                "constant_memory": True,
                "strings_to_formulas": False,
                "strings_to_urls": False,
                "strings_to_numbers": False,
                "nan_inf_to_errors": False,
            },
        )
        book.set_properties({"title": f"{report.title} — {report.period_label}", "author": "Herald"})
        styles = Styles(book)
        _summary(book, styles, report)
        if report.daily is not None:
            _daily_sheet(book, styles, report)
        for rollup in report.rollups:
            _pivot(book, styles, report, rollup)
        if report.findings:
            _alerts(book, styles, report)
        _definitions(book, styles, report)
        _freshness(book, styles, report)
        book.close()


class Styles:
    def __init__(self, book: xlsxwriter.Workbook) -> None:
        self.header = book.add_format(
            {"bold": True, "bg_color": "#E4E7EB", "bottom": 1, "text_wrap": True, "valign": "top"}
        )
        self.title = book.add_format({"bold": True, "font_size": 14, "font_color": "#1F4E79"})
        self.muted = book.add_format({"font_color": "#616E7C"})
        self.date = book.add_format({"num_format": "yyyy-mm-dd"})
        self.wrap = book.add_format(
            {"text_wrap": True, "valign": "top", "font_name": "Consolas", "font_size": 9}
        )
        self.change_pct = book.add_format({"num_format": "+0.0%;-0.0%;0.0%"})
        self._numbers = {key: book.add_format({"num_format": fmt}) for key, fmt in NUMBER_FORMATS.items()}
        self._numbers["decimal"] = book.add_format({"num_format": "#,##0.0"})

    def number(self, unit: str) -> Any:
        return self._numbers.get(unit, self._numbers["decimal"])


def _cell(sheet: Worksheet, row: int, col: int, value: Any, fmt: Any = None) -> None:
    """One typed cell: text stays text, numbers numbers, dates dates; missing stays empty."""
    if value is None or (isinstance(value, float) and (math.isnan(value) or math.isinf(value))):
        return
    if isinstance(value, bool):
        sheet.write_boolean(row, col, value, fmt)
    elif isinstance(value, datetime | pd.Timestamp):
        value = value.replace(tzinfo=None) if value.tzinfo else value
        sheet.write_datetime(row, col, value, fmt)
    elif isinstance(value, date):
        sheet.write_datetime(row, col, datetime.combine(value, datetime.min.time()), fmt)
    elif isinstance(value, int | float):
        sheet.write_number(row, col, value, fmt)
    else:
        sheet.write_string(row, col, str(value), fmt)


def _header(sheet: Worksheet, styles: Styles, row: int, names: list[str], widths: list[float]) -> None:
    for col, (name, width) in enumerate(zip(names, widths, strict=True)):
        sheet.set_column(col, col, width)
        sheet.write_string(row, col, name, styles.header)
    sheet.freeze_panes(row + 1, 0)


def _width(values: list[Any], header: str) -> float:
    longest = max([len(header), *(len(str(v)) for v in values[:500] if v is not None)])
    return min(max(10.0, longest * 1.1 + 2), 60.0)


def _column_values(series: pd.Series) -> tuple[str, list[Any]]:
    """One column's cells as plain Python values: ("number", floats) or ("text", strings or None)."""
    if pd.api.types.is_datetime64_any_dtype(series):
        # Excel serial day numbers: as fast to write as numbers, shown as dates by the cell format.
        return "number", (series - pd.Timestamp(EXCEL_EPOCH)).dt.days.astype("float").tolist()
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        return "number", series.astype(float).tolist()
    return "text", [None if pd.isna(v) else str(v) for v in series]


def write_table(
    book: xlsxwriter.Workbook,
    styles: Styles,
    name: str,
    frame: pd.DataFrame,
    formats: dict[str, Any],
    per_sheet: int = MAX_ROWS - 1,
    chunk: int = 20_000,
) -> list[str]:
    """A bulk sheet, streamed in chunks of rows, continued on 'Name (2)'... past Excel's limit.

    Only one chunk of rows is ever held as Python values, so memory stays flat as rows grow.
    """
    columns = list(frame.columns)
    headers = [str(c) for c in columns]
    cell_formats = [formats.get(c) for c in columns]
    sample = [_column_values(frame[c].iloc[:500])[1] for c in columns]
    widths = [_width(values, header) for values, header in zip(sample, headers, strict=True)]
    sheets: list[str] = []
    total = len(frame)
    for part, first in enumerate(range(0, max(total, 1), per_sheet), start=1):
        title = name if part == 1 else f"{name} ({part})"
        sheet = book.add_worksheet(title)
        sheets.append(title)
        _header(sheet, styles, 0, headers, widths)
        last = min(first + per_sheet, total)
        write_number, write_string = sheet.write_number, sheet.write_string
        for start in range(first, last, chunk):
            block = frame.iloc[start : min(start + chunk, last)]
            cells = [_column_values(block[column]) for column in columns]
            numeric = [kind == "number" for kind, _ in cells]
            # Constant-memory mode flushes a row once the next begins: write row by row.
            for offset, row in enumerate(zip(*(values for _, values in cells), strict=True)):
                r = start - first + 1 + offset
                for col, value in enumerate(row):
                    if numeric[col]:
                        if value == value:  # NaN stays an empty cell
                            write_number(r, col, value, cell_formats[col])
                    elif value is not None:
                        write_string(r, col, value, cell_formats[col])
        sheet.autofilter(0, 0, max(last - first, 1), len(columns) - 1)
    return sheets


def _number_format(styles: Styles, unit: str, aggregate: str) -> Any:
    return styles.number("decimal" if unit == "count" and aggregate in ("mean", "ratio") else unit)


def _daily_sheet(book: xlsxwriter.Workbook, styles: Styles, report: Report) -> None:
    """Every KPI by entity and day, with column headers in the readers' words."""
    assert report.daily is not None
    definitions = {d.kpi: d for d in report.definitions}
    formats: dict[str, Any] = {"Day": styles.date}
    names = {"day": "Day", "entity": report.entity_label, "name": "Name"}
    for kpi, definition in definitions.items():
        names[kpi] = definition.label
        formats[definition.label] = _number_format(styles, definition.unit, definition.aggregate)
    frame = report.daily.rename(columns=lambda c: names.get(c, str(c).replace("_", " ").capitalize()))
    write_table(book, styles, "Data", frame, formats)


def _summary(book: xlsxwriter.Workbook, styles: Styles, report: Report) -> None:
    sheet = book.add_worksheet("Summary")
    sheet.write_string(0, 0, report.title, styles.title)
    sheet.write_string(
        1,
        0,
        f"{report.period_label}: {report.period.start} to {report.period.end}, "
        f"compared with {report.previous.start} to {report.previous.end}",
        styles.muted,
    )
    through = format_through(report.data_as_of)
    sheet.write_string(
        2,
        0,
        f"Data through {through} ({report.timezone}); generated by Herald "
        f"{report.generated_at:%Y-%m-%d %H:%M}",
        styles.muted,
    )
    headers = ["KPI", "Value", "Previous", "Change", "Change %", "Unit", "Status"]
    _header(sheet, styles, 4, headers, [28, 16, 16, 14, 11, 10, 40])
    for row, card in enumerate(report.cards, start=5):
        number = styles.number(card.unit)
        sheet.write_string(row, 0, card.label)
        _cell(sheet, row, 1, card.value, number)
        _cell(sheet, row, 2, card.previous, number)
        _cell(sheet, row, 3, card.change, number)
        _cell(sheet, row, 4, None if card.change_pct is None else card.change_pct / 100, styles.change_pct)
        sheet.write_string(row, 5, card.unit)
        status = card.error or ("stale: older than its freshness limit" if card.stale else "ok")
        sheet.write_string(row, 6, status)
    last = 4 + len(report.cards)
    sheet.autofilter(4, 0, max(last, 5), len(headers) - 1)
    if report.cards:
        chart = book.add_chart({"type": "bar"})
        chart.add_series(
            {
                "name": "Change vs previous period",
                "categories": ["Summary", 5, 0, last, 0],
                "values": ["Summary", 5, 4, last, 4],
                "fill": {"color": "#1F4E79"},
                "data_labels": {"value": True, "num_format": "+0.0%;-0.0%"},
            }
        )
        chart.set_title({"name": "Change vs previous period"})
        chart.set_legend({"none": True})
        chart.set_x_axis({"num_format": "0%"})
        chart.set_y_axis({"reverse": True})
        sheet.insert_chart(last + 2, 0, chart, {"x_scale": 1.4, "y_scale": 1.1})


def _rows(
    book: xlsxwriter.Workbook,
    styles: Styles,
    name: str,
    headers: list[str],
    rows: list[list[Any]],
    formats: list[Any],
) -> Worksheet:
    """A small sheet: header, typed rows, filter, widths from the content."""
    sheet = book.add_worksheet(name)
    widths = [_width([r[i] for r in rows], h) for i, h in enumerate(headers)]
    _header(sheet, styles, 0, headers, widths)
    for r, row in enumerate(rows, start=1):
        for c, value in enumerate(row):
            _cell(sheet, r, c, value, formats[c])
    sheet.autofilter(0, 0, max(len(rows), 1), len(headers) - 1)
    return sheet


def _pivot(book: xlsxwriter.Workbook, styles: Styles, report: Report, rollup: Any) -> None:
    units = {card.kpi: card.unit for card in report.cards}
    labels = {card.kpi: card.label for card in report.cards}
    headers, formats = [rollup.dimension.capitalize()], [None]
    for kpi in rollup.kpis:
        headers += [labels[kpi], f"{labels[kpi]} (previous)", f"{labels[kpi]} change %"]
        formats += [styles.number(units[kpi]), styles.number(units[kpi]), styles.change_pct]
    rows = []
    for group, values in rollup.rows.iterrows():
        row: list[Any] = [str(group)]
        for kpi in rollup.kpis:
            pct = values[(kpi, "change_pct")]
            row += [values[(kpi, "value")], values[(kpi, "previous")], None if pd.isna(pct) else pct / 100]
        rows.append(row)
    name = re.sub(r"[\[\]:*?/\\']", "-", f"By {rollup.dimension}")[:31]  # Excel's limits on sheet names
    _rows(book, styles, name, headers, rows, formats)


def _alerts(book: xlsxwriter.Workbook, styles: Styles, report: Report) -> None:
    headers = ["Severity", "Rule", "Entity", "Name", "KPI", "Value", "Reference", "Message"]
    rows = [
        [f.severity, f.rule, f.entity, f.entity_name, f.kpi, f.value, f.reference, f.message]
        for f in report.findings
    ]
    formats = [None] * 5 + [None, None, None]
    _rows(book, styles, "Alerts", headers, rows, formats)


def _definitions(book: xlsxwriter.Workbook, styles: Styles, report: Report) -> None:
    headers = ["KPI", "Label", "Unit", "Aggregation", "Higher is better", "Source", "Description", "SQL"]
    rows = [
        [d.kpi, d.label, d.unit, d.aggregate, d.higher_is_better, d.source, d.description, d.sql]
        for d in report.definitions
    ]
    sheet = _rows(book, styles, "Definitions", headers, rows, [None] * 7 + [styles.wrap])
    sheet.set_column(7, 7, 80, styles.wrap)


def _freshness(book: xlsxwriter.Workbook, styles: Styles, report: Report) -> None:
    headers = ["KPI", "Label", "Data through", "Behind by (hours)", "Limit (hours)", "Status"]
    rows = [
        [
            f.kpi,
            f.label,
            format_through(f.newest),
            None if f.age is None else f.age.total_seconds() / 3600,
            None if f.limit is None else f.limit.total_seconds() / 3600,
            "stale" if f.stale else "fresh",
        ]
        for f in report.freshness
    ]
    _rows(
        book,
        styles,
        "Freshness",
        headers,
        rows,
        [None, None, None, styles.number("decimal"), styles.number("decimal"), None],
    )
