"""The analyst workbook read back with openpyxl: sheets, types, formats, panes, filters, text."""

import io
import zipfile
import zlib
from datetime import date, datetime
from xml.etree import ElementTree
from zoneinfo import ZoneInfo

import openpyxl
import pandas as pd
import pytest
import xlsxwriter

from reports.render import renderer
from reports.render.templates import environment
from reports.render.xlsx import CHANGE_PP, MAX_ROWS, TONE_COLOURS, Styles, _through, write_table
from reports.render.xlsx_rows import ZIP_LEVEL
from reports.report.build import build_report
from reports.report.model import EVERYONE
from tests.conftest import NOW, demo_folder, job_run


@pytest.fixture(scope="module")
def workbook(demo_db, tmp_path_factory):
    config, run = job_run(demo_folder(tmp_path_factory.mktemp("analyst"), demo_db), "analyst_monthly")
    report = build_report(config, run, EVERYONE, NOW)
    data = renderer("xlsx", environment()).render(report)
    return report, openpyxl.load_workbook(io.BytesIO(data)), data


@pytest.fixture(scope="module")
def chart_xml(workbook):
    """The Summary's chart as written: openpyxl reads charts back only in part."""
    *_, data = workbook
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return ElementTree.fromstring(archive.read("xl/charts/chart1.xml"))


C = "{http://schemas.openxmlformats.org/drawingml/2006/chart}"
A = "{http://schemas.openxmlformats.org/drawingml/2006/main}"


def test_sheets(workbook):
    _, book, _ = workbook
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
    report, book, _ = workbook
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
    assert events[3].number_format == "#,##0" and events[3].value == report.cards[0].change
    assert len(sheet._charts) == 1


def test_a_rates_change_is_in_percentage_points(workbook):
    """+0.07 points of bounce rate reads "+0.07 pp", not "0.1%" beside the relative Change %."""
    report, book, _ = workbook
    sheet = book["Summary"]
    rows = {row[0].value: row for row in sheet.iter_rows(min_row=6, max_row=5 + len(report.cards))}
    rates = [c for c in report.cards if c.unit == "percent"]
    assert {c.label for c in rates} == {"Bounce rate", "CRM sync success rate", "Background job failure rate"}
    for card in rates:
        change = rows[card.label][3]
        assert change.number_format == CHANGE_PP == '+0.00" pp";-0.00" pp";0.00" pp"'
        assert change.value == pytest.approx(card.change * 100)  # points, as reports/formatting.py
    bounce = rows["Bounce rate"][3].value
    assert 0.05 < bounce < 0.1  # 43.05% against 42.98%: +0.07 pp


def test_pivots_show_a_rates_change_in_percentage_points(workbook):
    _, book, _ = workbook
    for name in ("By plan", "By region", "By industry", "By owner"):
        sheet = book[name]
        header = [c.value for c in sheet[1]]
        assert "Events collected change (pp)" not in header  # counts change in % only
        for label in ("Bounce rate", "CRM sync success rate", "Background job failure rate"):
            value, previous, points, pct = (
                header.index(h)
                for h in (label, f"{label} (previous)", f"{label} change (pp)", f"{label} change %")
            )
            for row in sheet.iter_rows(min_row=2):
                assert row[points].number_format == CHANGE_PP
                assert row[points].value == pytest.approx((row[value].value - row[previous].value) * 100)
                assert row[pct].number_format == "+0.0%;-0.0%;0.0%"


def test_every_sheet_prints_landscape_one_page_wide_with_its_header(workbook):
    report, book, _ = workbook
    assert report.page_size == "A4"
    for sheet in book.worksheets:
        header = 5 if sheet.title == "Summary" else 1
        assert sheet.page_setup.orientation == "landscape", sheet.title
        assert sheet.page_setup.paperSize == 9  # A4
        assert sheet.sheet_properties.pageSetUpPr.fitToPage
        assert sheet.page_setup.fitToWidth in (None, 1)  # absent is the schema's default, 1
        assert sheet.page_setup.fitToHeight == 0  # as many pages down as it takes
        assert sheet.print_title_rows == f"${header}:${header}"
        assert sheet.freeze_panes == f"A{header + 1}"


def test_the_summary_prints_its_table_and_chart_on_one_page(workbook):
    report, book, _ = workbook
    sheet = book["Summary"]
    area = sheet.print_area.split("!")[1].replace("$", "")
    first, last = area.split(":")
    assert first == "A1" and last.startswith("G")  # every column of the table
    (chart,) = sheet._charts
    assert chart.anchor._from.row > 5 + len(report.cards)  # below the table
    assert int(last[1:]) > chart.anchor.to.row + 1  # and the chart's bottom edge inside the area


def test_summary_chart_bars_are_coloured_by_whether_the_change_is_good(workbook, chart_xml):
    report, _, _ = workbook
    colours = {
        int(point.find(f"{C}idx").get("val")): point.find(f".//{A}srgbClr").get("val")
        for point in chart_xml.iter(f"{C}dPt")
    }
    assert colours == {i: TONE_COLOURS[c.tone].lstrip("#") for i, c in enumerate(report.cards)}
    tones = {c.label: c.tone for c in report.cards}
    # Bounce rate rose and lower is better; events rose and higher is better.
    assert tones["Bounce rate"] == "bad" and tones["Events collected"] == "good"
    assert {"2E7D32", "C62828"} <= set(colours.values())


def test_summary_chart_labels_sit_outside_the_bars_away_from_the_names(chart_xml):
    (labels,) = chart_xml.iter(f"{C}dLbls")
    assert labels.find(f"{C}showVal").get("val") == "1"
    position = labels.find(f"{C}dLblPos")
    # XlsxWriter leaves out a bar chart's default position, outside the bar's end.
    assert position is None or position.get("val") == "outEnd"
    # Category names at the plot's left edge, not at zero where falling bars end.
    (names,) = chart_xml.iter(f"{C}catAx")
    assert names.find(f"{C}tickLblPos").get("val") == "low"


def test_data_sheet_has_every_kpi_by_entity_and_day(workbook):
    report, book, _ = workbook
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
    _, book, _ = workbook
    names = [row[2] for row in book["Data"].iter_rows(min_row=2, max_row=401)]
    plus = next(c for c in names if c.value == "+Plus Media")
    assert plus.data_type == "s"


def test_definitions_and_freshness(workbook):
    _report, book, _ = workbook
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
    assert fresh["events"][2] == datetime(2026, 11, 22) and fresh["events"][5] == "fresh"
    assert fresh["events"][4] == 48  # a 2-day limit, in hours
    through = book["Freshness"]["C2"]
    assert through.data_type == "d" and through.is_date and through.number_format == "yyyy-mm-dd"


LONDON = ZoneInfo("Europe/London")


@pytest.mark.parametrize(
    ("newest", "through"),
    [
        (datetime(2026, 11, 23, tzinfo=LONDON), date(2026, 11, 22)),  # a whole day: the day
        (datetime(2026, 11, 22, 14, tzinfo=LONDON), datetime(2026, 11, 22, 14, tzinfo=LONDON)),
        (None, None),
    ],
)
def test_data_through_is_the_day_or_the_moment_the_data_ends(newest, through):
    assert _through(newest) == through


def test_dates_get_a_date_format_and_moments_a_time_too():
    styles = Styles(xlsxwriter.Workbook(io.BytesIO(), {"in_memory": True}))
    assert styles.moment(date(2026, 11, 22)) is styles.date
    assert styles.moment(datetime(2026, 11, 22)) is styles.date
    assert styles.moment(datetime(2026, 11, 22, 14)) is styles.datetime
    assert styles.moment("22 Nov 2026") is None and styles.moment(3.0) is None


def test_pivots_are_pooled_by_dimension(workbook):
    report, book, _ = workbook
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


def test_the_workbook_is_zipped_at_herald_s_level(workbook):
    """XlsxWriter has no setting for it: each part is deflated at ZIP_LEVEL, and reads back whole."""
    *_, data = workbook
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        (bulk,) = [i for i in archive.infolist() if i.filename == "xl/worksheets/sheet2.xml"]
        xml = archive.read(bulk)
        raw = data[bulk.header_offset + 30 + len(bulk.filename) + len(bulk.extra) :][: bulk.compress_size]
    assert bulk.compress_type == zipfile.ZIP_DEFLATED and b"<sheetData>" in xml
    packer = zlib.compressobj(ZIP_LEVEL, zlib.DEFLATED, -15)
    assert raw == packer.compress(xml) + packer.flush()
    assert ZIP_LEVEL != 6  # zlib's default, which XlsxWriter would use
