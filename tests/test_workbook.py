"""The analyst workbook read back with openpyxl: sheets, types, formats, panes, filters, text."""

import io
from datetime import datetime

import openpyxl
import pandas as pd
import pytest
import xlsxwriter

from reports.render import renderer
from reports.render.templates import environment
from reports.render.xlsx import MAX_ROWS, Styles, write_table
from reports.report.build import build_report
from reports.report.model import EVERYONE
from tests.conftest import NOW, demo_folder, job_run


@pytest.fixture(scope="module")
def workbook(demo_db, tmp_path_factory):
    config, run = job_run(demo_folder(tmp_path_factory.mktemp("analyst"), demo_db), "analyst_monthly")
    report = build_report(config, run, EVERYONE, NOW)
    data = renderer("xlsx", environment()).render(report)
    return report, openpyxl.load_workbook(io.BytesIO(data))


def test_sheets(workbook):
    _, book = workbook
    assert book.sheetnames == [
        "Summary",
        "Data",
        "By plan",
        "By region",
        "By industry",
        "By owner",
        "Definitions",
        "Freshness",
    ]


def test_summary_is_typed_with_a_native_chart(workbook):
    report, book = workbook
    sheet = book["Summary"]
    assert sheet.freeze_panes == "A6"
    header = [c.value for c in sheet[5]]
    assert header == ["KPI", "Value", "Previous", "Change", "Change %", "Unit", "Status"]
    rows = {row[0].value: row for row in sheet.iter_rows(min_row=6, max_row=5 + len(report.cards))}
    events = rows["Events collected"]
    assert events[1].value == report.cards[0].value and events[1].number_format == "#,##0"
    assert events[4].number_format == "+0.0%;-0.0%;0.0%"
    assert events[4].value == pytest.approx(report.cards[0].change_pct / 100)
    bounce = rows["Bounce rate"]
    assert bounce[1].number_format == "0.0%" and 0 < bounce[1].value < 1
    assert len(sheet._charts) == 1


def test_data_sheet_has_every_kpi_by_entity_and_day(workbook):
    report, book = workbook
    sheet = book["Data"]
    header = [c.value for c in sheet[1]]
    assert header[:7] == ["Day", "Project", "Name", "Plan", "Region", "Industry", "Owner"]
    assert "Events collected" in header and "Bounce rate" in header
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == f"A1:{openpyxl.utils.get_column_letter(len(header))}{sheet.max_row}"
    assert sheet.max_row - 1 == len(report.daily) == 22 * 400  # 22 days of November, 400 projects
    events = header.index("Events collected")
    stopped = [r for r in sheet.iter_rows(min_row=2, values_only=True) if r[1] == "p0007" and r[0].day >= 20]
    assert len(stopped) == 3 and all(r[events] is None for r in stopped)  # no data stays empty, not 0
    first = [c for c in sheet[2]]
    assert isinstance(first[0].value, datetime) and first[0].number_format == "yyyy-mm-dd"
    assert first[header.index("Events collected")].data_type == "n"
    assert first[header.index("Bounce rate")].number_format == "0.0%"
    assert sheet.column_dimensions["C"].width >= 12


def test_formula_like_names_are_stored_as_text(workbook):
    _, book = workbook
    names = [row[2] for row in book["Data"].iter_rows(min_row=2, max_row=401)]
    plus = next(c for c in names if c.value == "+Plus Media")
    assert plus.data_type == "s"


def test_definitions_and_freshness(workbook):
    _report, book = workbook
    rows = list(book["Definitions"].iter_rows(values_only=True))
    assert rows[0] == (
        "KPI",
        "Label",
        "Unit",
        "Aggregation",
        "Higher is better",
        "Source",
        "Description",
        "SQL",
    )
    bounce = next(r for r in rows if r[0] == "bounce_rate")
    assert bounce[2:6] == ("percent", "ratio", False, "demo")
    assert "bounced_sessions AS numerator" in bounce[7]
    fresh = {r[0]: r for r in book["Freshness"].iter_rows(min_row=2, values_only=True)}
    assert fresh["events"][2] == "22 Nov 2026" and fresh["events"][5] == "fresh"
    assert fresh["events"][4] == 48  # a 2-day limit, in hours


def test_pivots_are_pooled_by_dimension(workbook):
    report, book = workbook
    rows = {r[0]: r for r in book["By plan"].iter_rows(min_row=2, values_only=True)}
    header = [c.value for c in book["By plan"][1]]
    events = header.index("Events collected")
    assert sum(r[events] for r in rows.values()) == report.cards[0].value
    bounce = header.index("Bounce rate")
    overall = next(c for c in report.cards if c.kpi == "bounce_rate").value
    assert min(r[bounce] for r in rows.values()) <= overall <= max(r[bounce] for r in rows.values())


def write(frame: pd.DataFrame, per_sheet: int = MAX_ROWS - 1) -> openpyxl.Workbook:
    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer, {"in_memory": True, "strings_to_formulas": False})
    write_table(book, Styles(book), "Data", frame, {}, per_sheet=per_sheet)
    book.close()
    return openpyxl.load_workbook(io.BytesIO(buffer.getvalue()))


def test_any_text_that_looks_like_a_formula_stays_text():
    risky = [
        '=HYPERLINK("http://example.com","click")',
        "+1+2",
        "-3+4",
        "@SUM(A1)",
        "\tTab",
        "\rReturn",
        "=1+1",
    ]
    book = write(pd.DataFrame({"name": risky, "value": range(len(risky))}))
    cells = [row[0] for row in book["Data"].iter_rows(min_row=2)]
    # XLSX stores a carriage return as the escape _x000D_, which Excel decodes and openpyxl leaves as is.
    assert [c.value.replace("_x000D_", "\r") for c in cells] == risky
    assert all(c.data_type == "s" for c in cells)


def test_bulk_rows_continue_on_further_sheets_past_the_row_limit():
    assert MAX_ROWS == 1_048_576
    frame = pd.DataFrame({"day": pd.date_range("2026-01-01", periods=25), "value": range(25)})
    book = write(frame, per_sheet=10)
    assert book.sheetnames == ["Data", "Data (2)", "Data (3)"]
    values = [r[1] for name in book.sheetnames for r in book[name].iter_rows(min_row=2, values_only=True)]
    assert values == list(range(25))
    assert all(book[name]["A1"].value == "day" for name in book.sheetnames)
    assert book["Data (3)"].max_row == 6


def test_missing_numbers_are_empty_cells():
    book = write(pd.DataFrame({"value": [1.0, float("nan"), 3.0]}))
    assert [r[0] for r in book["Data"].iter_rows(min_row=2, values_only=True)] == [1, None, 3]
