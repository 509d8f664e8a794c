"""The analyst workbook: summary with a native chart, every KPI by entity and day, pivots by
dimension, alerts, definitions and freshness.

Cells are typed (dates as dates, numbers as numbers, rates as percentages, a rate's change in
percentage points); text is always written as text, so a name such as `=HYPERLINK(...)` or
`+Plus Media` is never run as a formula. Every sheet prints landscape, one page wide, with its
header repeated on each page.
The bulk sheet streams rows to disk (XlsxWriter's constant-memory mode), so memory stays flat as
rows grow, and continues on further sheets past Excel's row limit; its rows go out as whole rows of
XML, not cell by cell, which made a large workbook several times slower to write.
"""

from __future__ import annotations

import math
import re
import tempfile
import textwrap
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import xlsxwriter
from xlsxwriter.worksheet import Worksheet

from reports.formatting import format_span, format_through
from reports.render import Renderer, register
from reports.render.xlsx_rows import RowWriter, column_values, write_rows
from reports.report.model import Report

MAX_ROWS = 1_048_576  # Excel's limit, header row included
NUMBER_FORMATS = {"count": "#,##0", "percent": "0.0%", "seconds": "#,##0.0", "currency": "#,##0.00"}
# A rate's absolute change in percentage points (the fraction × 100, as reports/formatting.py counts
# them), to two decimals so that a +0.07 pp change is not rounded to +0.1 or to nothing.
CHANGE_PP = '+0.00" pp";-0.00" pp";0.00" pp"'
PAPER = {"A4": 9, "Letter": 1}  # XlsxWriter's paper codes
TONE_COLOURS = {"good": "#2E7D32", "bad": "#C62828", "neutral": "#9AA5B1"}  # as in the email's CSS
CHART_SCALE = (1.4, 1.1)  # of XlsxWriter's 480 × 288 pixel default


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
        for sheet in book.worksheets():
            sheet.set_paper(PAPER.get(report.page_size, PAPER["A4"]))
        book.close()


class Styles:
    def __init__(self, book: xlsxwriter.Workbook) -> None:
        self.header = book.add_format(
            {"bold": True, "bg_color": "#E4E7EB", "bottom": 1, "text_wrap": True, "valign": "top"}
        )
        self.title = book.add_format({"bold": True, "font_size": 14, "font_color": "#1F4E79"})
        self.muted = book.add_format({"font_color": "#616E7C"})
        self.date = book.add_format({"num_format": "yyyy-mm-dd"})
        self.datetime = book.add_format({"num_format": "yyyy-mm-dd hh:mm"})
        self.wrap = book.add_format(
            {"text_wrap": True, "valign": "top", "font_name": "Consolas", "font_size": 9}
        )
        self.change_pct = book.add_format({"num_format": "+0.0%;-0.0%;0.0%"})
        self.change_pp = book.add_format({"num_format": CHANGE_PP})
        self._numbers = {key: book.add_format({"num_format": fmt}) for key, fmt in NUMBER_FORMATS.items()}
        self._numbers["decimal"] = book.add_format({"num_format": "#,##0.0"})

    def number(self, unit: str) -> Any:
        return self._numbers.get(unit, self._numbers["decimal"])

    def change(self, unit: str) -> Any:
        """An absolute change: percentage points for a rate, the KPI's own format otherwise."""
        return self.change_pp if unit == "percent" else self.number(unit)

    def moment(self, value: Any) -> Any:
        """A date's format, with the time of day when it has one; None for anything else."""
        if isinstance(value, datetime):
            return self.date if (value.hour, value.minute, value.second) == (0, 0, 0) else self.datetime
        return self.date if isinstance(value, date) else None


def _change(value: float | None, unit: str) -> float | None:
    """An absolute change as written: a rate's in percentage points (0.0007 → 0.07 pp)."""
    if value is None or value != value:
        return None
    return value * 100 if unit == "percent" else value


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
        write_text(sheet, row, col, str(value), fmt)


def write_text(sheet: Worksheet, row: int, col: int, text: str, fmt: Any = None) -> None:
    """Text as text. XlsxWriter writes a string shaped `<r>...</r>` into the sheet's XML as it
    is, taking it for rich text it made, so such a name could add cells, even formulas; written as
    three plain runs of rich text, it reads back as the same text."""
    if text.startswith("<r>") and text.endswith("</r>"):
        sheet.write_rich_string(row, col, text[:1], text[1:2], text[2:], *([fmt] if fmt else []))
    else:
        sheet.write_string(row, col, text, fmt)


def _header(sheet: Worksheet, styles: Styles, row: int, names: list[str], widths: list[float]) -> None:
    """The header row, wrapped to the column widths, frozen on screen and repeated on every printed page."""
    # Excel grows a row for wrapped text as it opens a file; LibreOffice does not, so set the height.
    sheet.set_row(row, 15 * max(map(_lines, names, widths), default=1))
    for col, (name, width) in enumerate(zip(names, widths, strict=True)):
        sheet.set_column(col, col, width)
        write_text(sheet, row, col, name, styles.header)
    sheet.freeze_panes(row + 1, 0)
    # Every sheet has one header, so its page setup lives here: landscape, one page wide, any
    # number of pages down (a sheet otherwise prints as a grid of pages a few columns wide).
    sheet.set_landscape()
    sheet.fit_to_pages(1, 0)
    sheet.repeat_rows(row)


def _lines(header: str, width: float) -> int:
    """How many lines a header wraps onto in a column `width` characters wide (bold takes a few more)."""
    return max(len(textwrap.wrap(header, max(1, int(width - 1)))), 1)


def _width(values: list[Any], header: str) -> float:
    """Room for the longest value as shown, and for the header wrapped onto up to three lines."""
    words = max((len(word) for word in header.split()), default=0)
    shown = (len(f"{v:,.2f}") if isinstance(v, float) else len(str(v)) for v in values[:500] if v is not None)
    longest = max([words, math.ceil(len(header) / 3), *shown])
    return min(max(10.0, longest * 1.1 + 2), 60.0)


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

    Only one chunk of rows is ever held as Python values, so memory stays flat as rows grow. In
    constant-memory mode each chunk goes to the sheet as whole rows of XML (`RowWriter`); a
    workbook held in memory takes its cells one by one.
    """
    columns = list(frame.columns)
    headers = [str(c) for c in columns]
    cell_formats = [formats.get(c) for c in columns]
    sample = [column_values(frame[c].iloc[:500])[1] for c in columns]
    widths = [_width(values, header) for values, header in zip(sample, headers, strict=True)]
    sheets: list[str] = []
    total = len(frame)
    for part, first in enumerate(range(0, max(total, 1), per_sheet), start=1):
        title = name if part == 1 else f"{name} ({part})"
        sheet = book.add_worksheet(title)
        sheets.append(title)
        _header(sheet, styles, 0, headers, widths)
        last = min(first + per_sheet, total)
        if RowWriter.fits(sheet):
            write_rows(RowWriter(sheet, cell_formats), frame, first, last, chunk)
        else:
            for start in range(first, last, chunk):
                _cells(sheet, start - first + 1, frame.iloc[start : min(start + chunk, last)], cell_formats)
        sheet.autofilter(0, 0, max(last - first, 1), len(columns) - 1)
    return sheets


def _cells(sheet: Worksheet, top: int, block: pd.DataFrame, cell_formats: list[Any]) -> None:
    """`block`'s rows from sheet row `top` on, cell by cell."""
    cells = [column_values(block[column]) for column in block.columns]
    numeric = [kind == "number" for kind, _ in cells]
    write_number = sheet.write_number
    for offset, row in enumerate(zip(*(values for _, values in cells), strict=True)):
        for col, value in enumerate(row):
            if numeric[col]:
                if value - value == 0:  # NaN and infinities stay empty cells
                    write_number(top + offset, col, value, cell_formats[col])
            elif value is not None:
                write_text(sheet, top + offset, col, value, cell_formats[col])


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
    write_text(sheet, 0, 0, report.title, styles.title)
    write_text(
        sheet,
        1,
        0,
        f"{report.period_label}: {report.period.start} to {report.period.end}, "
        f"compared with {report.previous.start} to {report.previous.end}",
        styles.muted,
    )
    through = format_through(report.data_as_of)
    write_text(
        sheet,
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
        write_text(sheet, row, 0, card.label)
        _cell(sheet, row, 1, card.value, number)
        _cell(sheet, row, 2, card.previous, number)
        _cell(sheet, row, 3, _change(card.change, card.unit), styles.change(card.unit))
        _cell(sheet, row, 4, None if card.change_pct is None else card.change_pct / 100, styles.change_pct)
        write_text(sheet, row, 5, card.unit)
        status = card.error or ("stale: older than its freshness limit" if card.stale else "ok")
        write_text(sheet, row, 6, status)
    last = 4 + len(report.cards)
    sheet.autofilter(4, 0, max(last, 5), len(headers) - 1)
    bottom = last
    if report.cards:
        sheet.insert_chart(
            last + 2,
            0,
            _change_chart(book, report, 5),
            {"x_scale": CHART_SCALE[0], "y_scale": CHART_SCALE[1]},
        )
        bottom = last + 2 + math.ceil(288 * CHART_SCALE[1] / 20)  # 20-pixel rows under the chart
    sheet.print_area(0, 0, bottom, len(headers) - 1)


def _change_chart(book: xlsxwriter.Workbook, report: Report, first: int) -> Any:
    """Bars of each KPI's change %, green where the change is good for that KPI, red where bad."""
    last = first + len(report.cards) - 1
    chart = book.add_chart({"type": "bar"})
    chart.add_series(
        {
            "name": "Change vs previous period",
            "categories": ["Summary", first, 0, last, 0],
            "values": ["Summary", first, 4, last, 4],
            "points": [{"fill": {"color": TONE_COLOURS[card.tone]}} for card in report.cards],
            "data_labels": {"value": True, "position": "outside_end", "num_format": "+0.0%;-0.0%;0.0%"},
            "gap": 60,
        }
    )
    since = format_span(report.previous.start, report.previous.end)
    chart.set_title({"name": f"Change vs {since} (green: better, red: worse)", "name_font": {"size": 11}})
    chart.set_legend({"none": True})
    chart.set_x_axis({"num_format": "0%", "major_gridlines": {"visible": False}})  # labels give values
    # Names at the plot's left edge, not at zero, where falling bars and their labels would cover them.
    chart.set_y_axis({"reverse": True, "label_position": "low"})
    return chart


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
            _cell(sheet, r, c, value, formats[c] or styles.moment(value))
    sheet.autofilter(0, 0, max(len(rows), 1), len(headers) - 1)
    return sheet


def _pivot(book: xlsxwriter.Workbook, styles: Styles, report: Report, rollup: Any) -> None:
    units = {card.kpi: card.unit for card in report.cards}
    labels = {card.kpi: card.label for card in report.cards}
    headers, formats = [rollup.dimension.capitalize()], [None]
    for kpi in rollup.kpis:
        headers += [labels[kpi], f"{labels[kpi]} (previous)"]
        formats += [styles.number(units[kpi]), styles.number(units[kpi])]
        if units[kpi] == "percent":  # a rate's change in points beside its relative change
            headers.append(f"{labels[kpi]} change (pp)")
            formats.append(styles.change_pp)
        headers.append(f"{labels[kpi]} change %")
        formats.append(styles.change_pct)
    rows = []
    for group, values in rollup.rows.iterrows():
        row: list[Any] = [str(group)]
        for kpi in rollup.kpis:
            value, previous, pct = (values[(kpi, part)] for part in ("value", "previous", "change_pct"))
            row += [value, previous]
            if units[kpi] == "percent":
                row.append(_change(value - previous, "percent"))
            row.append(None if pd.isna(pct) else pct / 100)
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
            _through(f.newest),
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


def _through(moment: datetime | None) -> date | datetime | None:
    """The last day data covers when it ends at midnight, else the moment it ends (as format_through)."""
    if moment is None:
        return None
    last = moment - timedelta(microseconds=1)
    return last.date() if (last.hour, last.minute) == (23, 59) else moment
