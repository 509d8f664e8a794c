"""Reports as their readers get them: figures in the PDF, cells in the workbook, scope, charts."""

import base64
import dataclasses
import io
import json
import re
import subprocess
import sys
from datetime import date

import duckdb
import openpyxl
import pypdf
import pytest

from reports.formatting import format_change, format_change_pct, format_value
from reports.render import renderer
from reports.render.html import email_body
from reports.render.outputs import sections
from reports.render.slack import slack_message
from reports.render.templates import charts, environment
from reports.report.build import build_all, build_report, recipients
from reports.report.model import EVERYONE, KpiCard, Recipient
from tests.conftest import NOW, ROOT, demo_folder, job_run

WEEK = (date(2026, 11, 16), date(2026, 11, 22))
PREVIOUS_WEEK = (date(2026, 11, 9), date(2026, 11, 15))


def pdf_text(data: bytes) -> tuple[int, str]:
    """Page count and text, with line wrapping folded into single spaces."""
    reader = pypdf.PdfReader(io.BytesIO(data))
    return len(reader.pages), " ".join(" ".join(page.extract_text().split()) for page in reader.pages)


@pytest.fixture(scope="module")
def executive(demo_db, tmp_path_factory):
    config, run = job_run(demo_folder(tmp_path_factory.mktemp("exec"), demo_db), "executive_weekly")
    report = build_report(config, run, EVERYONE, NOW)
    return config, run, report


def sql(demo_db, query: str, *params):
    with duckdb.connect(str(demo_db), read_only=True) as con:
        return con.execute(query, list(params)).fetchone()


def test_the_executive_pdf_shows_the_warehouse_figures(executive, demo_db):
    _, _, report = executive
    pages, text = pdf_text(renderer("pdf", environment()).render(report))
    assert 2 <= pages <= 3
    assert f"Page 1 of {pages}" in text and f"Page {pages} of {pages}" in text
    events, sessions, identified, bounced = sql(
        demo_db,
        "SELECT SUM(events), SUM(sessions), SUM(identified_accounts), SUM(bounced_sessions) "
        "FROM daily_project_stats WHERE day BETWEEN ? AND ?",
        *WEEK,
    )
    (previous_events,) = sql(
        demo_db, "SELECT SUM(events) FROM daily_project_stats WHERE day BETWEEN ? AND ?", *PREVIOUS_WEEK
    )
    (dau,) = sql(
        demo_db,
        "SELECT AVG(total) FROM (SELECT day, SUM(daily_active_users) AS total "
        "FROM daily_project_stats WHERE day BETWEEN ? AND ? GROUP BY day)",
        *WEEK,
    )
    (crm,) = sql(
        demo_db,
        "SELECT SUM(syncs_ok) / SUM(syncs_ok + syncs_failed) FROM crm_syncs WHERE day BETWEEN ? AND ?",
        *WEEK,
    )
    expected = [
        f"{events:,}",
        f"{previous_events:,}",
        f"{sessions:,}",
        f"{identified:,}",
        f"{round(dau):,}",
        f"{bounced / sessions * 100:.1f}%",
        f"{crm * 100:.1f}%",
        f"{(events - previous_events) / previous_events * 100:+.1f}%",
    ]
    for figure in expected:
        assert figure in text, f"{figure} is not in the PDF"
    assert "Weekly KPIs" in text and "16 – 22 Nov 2026" in text
    assert "Nimbus Paper" in text and "CRM sync success rate is 38.4%, below 80.0%" in text  # open alerts
    assert "Data through 22 Nov 2026" in text


def test_page_size_comes_from_the_config(executive):
    config, run, report = executive

    def page(report) -> tuple[int, int]:
        box = pypdf.PdfReader(io.BytesIO(renderer("pdf", environment()).render(report))).pages[0].mediabox
        return round(float(box.width)), round(float(box.height))

    letter = dataclasses.replace(run, report=run.report.model_copy(update={"page_size": "Letter"}))
    assert page(build_report(config, letter, EVERYONE, NOW)) == (612, 792)
    assert report.page_size == "A4" and page(report) == (595, 842)


def test_a_failed_kpi_is_shown_as_not_computed(executive):
    config, run, _ = executive
    broken = dataclasses.replace(
        run,
        kpis={k: v for k, v in run.kpis.items() if k != "sessions"},
        failures=["KPI 'sessions': Catalog Error: Table with name x does not exist"],
    )
    report = build_report(config, broken, EVERYONE, NOW)
    card = next(c for c in report.cards if c.kpi == "sessions")
    assert card.value is None and "Catalog Error" in card.error
    _, text = pdf_text(renderer("pdf", environment()).render(report))
    assert "Some numbers could not be computed: Sessions" in text and "Could not be computed" in text
    # The reader learns what is missing; the error itself goes to the job's owners.
    slack = json.dumps(slack_message(report))
    body = email_body(environment(), report, [])
    for output in (text, slack, body.html, body.text):
        assert "Catalog Error" not in output
    assert "Not computed today:* Sessions" in slack and "Could not be computed: Sessions" in body.text


def test_charts_are_drawn_once_per_environment(executive):
    config, run, _ = executive
    env = environment()
    first, second = build_report(config, run, EVERYONE, NOW), build_report(config, run, EVERYONE, NOW)
    assert first.charts.keys() == second.charts.keys() and len(first.charts) >= 3
    html = renderer("html", env).render(first) + renderer("pdf", env).render(second)
    assert charts(env).drawn == len(first.charts)  # as SVG, once for both formats
    pngs = {charts(env).png(chart) for chart in first.charts.values()}  # as the email shows them
    assert len(pngs) == len(first.charts) and all(png.startswith(b"\x89PNG") for png in pngs)
    again = {charts(env).png(chart) for chart in first.charts.values()}
    assert again == pngs and charts(env).drawn == 2 * len(first.charts) and html


def test_building_a_report_draws_nothing():
    """The model carries charts as data: building thousands of reports draws and typesets nothing."""
    script = (
        "import sys; from tests.conftest import job_run, demo_folder, NOW; "
        "from pathlib import Path; import tempfile; "
        "from reports.report.build import build_all; from reports import demo; "
        "base = Path(tempfile.mkdtemp()); demo.build(base / 'demo.duckdb', projects=30); "
        "config, run = job_run(demo_folder(base, base / 'demo.duckdb'), 'executive_weekly'); "
        "reports = build_all(config, run, NOW); "
        "assert reports[0].charts, 'no charts built'; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('resvg_py', 'weasyprint')))"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.fixture(scope="module")
def scoped(demo_db, tmp_path_factory):
    """The executive job scoped per owner, in every format."""

    def per_owner(data: dict) -> None:
        data["reports"]["executive_weekly"].update(scope="owner", formats=["pdf", "xlsx", "html"])

    config, run = job_run(
        demo_folder(tmp_path_factory.mktemp("scoped"), demo_db, per_owner), "executive_weekly"
    )
    owner = next(r for r in recipients(config, run) if "p0012" in r.entities)  # owns the CRM incident
    return config, run, owner, build_report(config, run, owner, NOW)


def test_a_scoped_recipient_sees_only_their_entities(scoped):
    _config, run, owner, report = scoped
    theirs = set(run.entities.loc[list(owner.entities), "name"])
    others = set(run.entities["name"]) - theirs
    assert owner.email and owner.slack and theirs and others
    env = environment()
    _, pdf = pdf_text(renderer("pdf", env).render(report))
    html = renderer("html", env).render(report).decode()
    book = openpyxl.load_workbook(io.BytesIO(renderer("xlsx", env).render(report)))
    cells = {
        str(c) for sheet in book for row in sheet.iter_rows(values_only=True) for c in row if c is not None
    }
    slack = str(slack_message(report))
    for output in (pdf, html, slack, "\n".join(cells)):
        leaked = [name for name in others if name in output]
        assert not leaked, f"other owners' entities leaked: {leaked[:5]}"
    assert "Nimbus Paper" in pdf and "Nimbus Paper" in cells
    assert {f.entity for f in report.findings} <= set(owner.entities)


def test_scoped_charts_are_drawn_from_scoped_numbers(scoped):
    config, run, owner, report = scoped
    everyone = build_report(config, run, EVERYONE, NOW)
    mine = report.trends[0]
    assert mine.values[-1] == pytest.approx(report.cards[0].value)
    assert mine.values[-1] < everyone.trends[0].values[-1]
    assert mine.chart != everyone.trends[0].chart
    assert {m.entity for m in report.movers.rising + report.movers.falling} <= set(owner.entities)


def test_every_recipient_gets_a_report(scoped):
    config, run, _, _ = scoped
    reports = build_all(config, run, NOW)
    owners = set(run.entities["owner"])
    assert reports[0].recipient is EVERYONE
    assert {r.recipient.label for r in reports[1:]} == owners


def test_pdf_renderer_refuses_to_fetch_anything(executive, tmp_path):
    _config, _run, report = executive
    env = environment(tmp_path)
    secret = tmp_path / "secret.png"
    secret.write_bytes(charts(env).png(next(iter(report.charts.values()))))
    opened: list[str] = []
    sys.addaudithook(
        lambda event, args: event == "open" and str(args[0]) == str(secret) and opened.append(event)
    )

    def images_in_pdf(src: str) -> int:
        (tmp_path / "executive.html").write_text(
            '{% extends "base.html" %}{% block content %}<img src="' + src + '">{% endblock %}'
        )
        reader = pypdf.PdfReader(io.BytesIO(renderer("pdf", env).render(report)))
        return sum(len(page.images) for page in reader.pages)

    embedded = "data:image/png;base64," + base64.b64encode(secret.read_bytes()).decode()
    opened.clear()
    assert images_in_pdf(embedded) == 1  # the same image, embedded, does show
    assert images_in_pdf(secret.as_uri()) == 0 and images_in_pdf(str(secret)) == 0
    assert not opened, "the PDF renderer opened a local file a template referred to"


def test_the_house_stylesheet_is_parsed_once_and_lays_out_the_same_page(executive, tmp_path, monkeypatch):
    """Each PDF takes the house stylesheet parsed once per process, and every page draws byte for
    byte as it does with the stylesheet inline. A job's own template keeps the last word."""
    from reports.render import pdf

    _, _, report = executive
    output = renderer("pdf", environment(tmp_path))
    pdf._parsed.cache_clear()
    apart = [output.render(report) for _ in range(2)]
    assert (pdf._parsed.cache_info().misses, pdf._parsed.cache_info().hits) == (1, 1)
    with monkeypatch.context() as patch:
        patch.setattr(pdf, "_house_style_apart", lambda html, style, process: (html, []))
        inline = output.render(report)

    def drawn(data: bytes) -> list[bytes]:
        return [page.get_contents().get_data() for page in pypdf.PdfReader(io.BytesIO(data)).pages]

    assert drawn(apart[0]) == drawn(apart[1]) == drawn(inline) and len(drawn(inline)) >= 2
    (tmp_path / "executive.html").write_text(
        '<html><head><style>{% include "report.css" %} h1 { color: #ff0000; }</style></head>'
        "<body><h1>{{ report.title }}</h1></body></html>"
    )
    (page,) = drawn(renderer("pdf", environment(tmp_path)).render(report))
    assert b"1 0 0 rg" in page  # the template's red title, not the house style's blue


def test_user_templates_override_by_name_and_typos_name_the_line(executive, tmp_path):
    _, _, report = executive
    (tmp_path / "executive.html").write_text('{% extends "base.html" %}{% block content %}Ours{% endblock %}')
    assert b"Ours" in renderer("html", environment(tmp_path)).render(report)
    (tmp_path / "executive.html").write_text("<p>{{ report.title }}</p>\n<p>{{ report.titel }}</p>\n")
    from reports.render.templates import TemplateError

    with pytest.raises(TemplateError) as caught:
        renderer("html", environment(tmp_path)).render(report)
    assert re.search(r"executive\.html, line 2: .*titel", caught.value.message)
    (tmp_path / "executive.html").write_text("{% if %}")
    with pytest.raises(TemplateError) as caught:
        renderer("html", environment(tmp_path)).render(report)
    assert "line 1" in caught.value.message


def test_number_formats():
    assert format_value(1234567, "count") == "1,234,567"
    assert format_value(0.4302, "percent") == "43.0%"
    assert format_value(95.4, "seconds") == "1m 35s"
    assert format_value(99.53, "seconds") == "1m 40s"  # rounded, not cut
    assert format_value(None, "count") == "—"


def test_a_change_that_rounds_away_reads_as_none():
    """A rate that moved 0.004 pp reads "0.0 pp", uncoloured and without an arrow, not a red
    "−0.0 pp"; a change that shows keeps its sign and its tone."""
    assert format_change(-0.00004, "percent") == "0.0 pp" and format_change_pct(-0.04) == "0.0%"
    assert format_change(0.0012, "percent") == "+0.1 pp" and format_change_pct(-12.34) == "−12.3%"
    assert format_change(-3) == "−3" and format_change(0.001) == "0.00"
    still = KpiCard("crm", "CRM sync", "percent", True, 0.995, 0.99504, -0.00004, -0.004)
    assert (still.direction, still.tone) == ("flat", "neutral")
    count = KpiCard("events", "Events", "count", True, 1e9 + 10, 1e9, 10.0, 1e-6)  # 0.0%: flat
    assert (count.direction, count.tone) == ("flat", "neutral")
    fell = KpiCard("bounce", "Bounce", "percent", False, 0.43, 0.42, 0.01, 2.4)
    assert (fell.direction, fell.tone) == ("up", "bad")


def test_trend_axes_are_honest(executive):
    _, _, report = executive
    axes = {t.kpi: report.charts[t.chart].spec["axis"] for t in report.trends}
    assert axes["events"][0] == 0  # counts start from zero
    low, high = axes["bounce_rate"]  # a rate that moves 0.2 pp gets at least 5 points of axis
    assert high - low >= 0.05 - 1e-9 and 0 <= low < high <= 1
    values = [v for t in report.trends if t.kpi == "bounce_rate" for v in t.values if v is not None]
    assert low <= min(values) and max(values) <= high


def test_narrowing_a_run_gives_exactly_the_recipients_rows(scoped):
    _config, run, owner, _ = scoped
    mine = run.scoped(list(owner.entities))
    for name, kpi in run.kpis.items():
        expected = kpi.frame[kpi.frame["entity"].isin(owner.entities)].reset_index(drop=True)
        assert mine.kpis[name].frame.equals(expected)
    one = sorted(owner.entities)[0]
    again = mine.scoped([one])  # narrowing a narrowed run looks up its own rows
    assert set(again.kpis["events"].frame["entity"]) == {one}


def test_a_report_file_is_named_for_its_recipient_or_else_by_their_id():
    assert Recipient("p0005", 'Smith & Sons "<Retail>"').slug == "smith-sons-retail"
    assert Recipient("p0009", "חנות הספרים").slug == "p0009"  # no Latin letters: the id, not "recipient"
    assert Recipient("ש", "ש").slug == "recipient"


def test_a_project_without_a_crm_gets_its_card_but_no_empty_chart(demo_db, tmp_path):
    config, run = job_run(demo_folder(tmp_path, demo_db), "project_health")
    (without,) = sql(
        demo_db,
        "SELECT MIN(project_id) FROM projects WHERE project_id NOT IN (SELECT project_id FROM crm_syncs)",
    )
    (using,) = sql(demo_db, "SELECT MIN(project_id) FROM crm_syncs")
    each = {r.key: r for r in recipients(config, run)}
    bare, synced = (build_report(config, run, each[p], NOW) for p in (without, using))
    assert [c.value for c in bare.cards if c.kpi == "crm_sync_rate"] == [None]  # the card says "—"
    assert "crm_sync_rate" not in {t.kpi for t in bare.trends}
    assert len(bare.trends) == len(synced.trends) - 1 and len(bare.charts) == len(bare.trends)
    _, text = pdf_text(renderer("pdf", environment()).render(bare))
    assert "CRM SYNC SUCCESS RATE" in text and "CRM sync success rate" not in text  # card, no chart


def test_an_email_with_a_workbook_computes_only_the_trend_its_body_shows(demo_db, tmp_path):
    config, run = job_run(demo_folder(tmp_path, demo_db), "analyst_monthly")  # xlsx, by email
    assert sections(run) == {"rollups", "daily", "headline"}
    report = build_report(config, run, EVERYONE, NOW, sections(run))
    everything = build_report(config, run, EVERYONE, NOW)
    assert len(everything.trends) == len(config.reports["analyst_monthly"].kpis)
    assert report.trends == everything.trends[:1] and list(report.charts) == [report.trends[0].chart]
    body = email_body(environment(), report, [])
    assert len(body.inline) == 1 and f'alt="{report.charts[report.trends[0].chart].alt}"' in body.html
