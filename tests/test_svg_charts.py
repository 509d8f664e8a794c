"""The PDF's and archive page's charts: Herald's own SVG, escaped, honest, and drawn without matplotlib."""

import io
import math
import subprocess
import sys
from xml.etree import ElementTree

from pypdf import PdfReader

from reports.render import renderer
from reports.render.svg import draw_distribution, draw_movers, draw_trend, nice_ticks
from reports.render.templates import environment
from reports.report.build import build_report
from reports.report.model import EVERYONE
from tests.conftest import NOW, ROOT, job_run

SVG = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ElementTree.Element:
    return ElementTree.fromstring(svg)


def test_ticks_are_round_and_cover_the_data():
    assert nice_ticks(0, 118_000) == [0, 50_000, 100_000, 150_000]
    assert nice_ticks(0.42, 0.445) == [0.42, 0.43, 0.44, 0.45]
    assert nice_ticks(5, 5)[0] <= 5 <= nice_ticks(5, 5)[-1]


def test_a_gap_in_the_data_is_a_gap_in_the_line():
    svg = draw_trend("Events", "count", list("abcdef"), [1, 2, None, 4, 5, 6], [None] * 6, axis=[0, 8])
    lines = [e for e in parse(svg).iter(f"{SVG}polyline")]
    assert len(lines) == 2  # before and after the missing day; nothing drawn for the earlier periods


def test_a_count_axis_starts_at_zero_when_the_report_says_so():
    svg = draw_trend("Events", "count", ["Aug", "Sep"], [90_000, 100_000], [None, None], axis=[0, 110_000])
    labels = [t.text for t in parse(svg).iter(f"{SVG}text")]
    assert "0" in labels and "100k" in labels


def test_names_from_the_warehouse_are_text_not_markup():
    hostile = ['<script>alert(1)</script>', 'Smith & Sons "Retail"', "a\u0007bell"]
    svg = draw_movers("Top movers", "count", hostile, [12.0, -3.0, math.nan])
    root = parse(svg)  # well-formed XML
    assert not [e for e in root.iter() if e.tag.endswith("script")]
    labels = [t.text for t in root.iter(f"{SVG}text")]
    assert "<script>alert(1)</script>" in labels and 'Smith & Sons "Retail"' in labels and "abell" in labels
    assert parse(draw_distribution("Spread", [1.0, -2.0, math.inf, 40.0], "change"))


def test_the_pdf_embeds_vector_charts_and_the_email_keeps_png(demo_config):
    config, run = job_run(demo_config, "executive_weekly")
    report = build_report(config, run, EVERYONE, NOW)
    env = environment()
    pdf = PdfReader(io.BytesIO(renderer("pdf", env).render(report)))
    assert sum(len(page.images) for page in pdf.pages) == 0  # no bitmaps: every chart is vector
    forms = [
        x
        for page in pdf.pages
        for x in (page["/Resources"].get("/XObject") or {}).values()
        if x.get_object()["/Subtype"] == "/Form"
    ]
    assert len(forms) >= len(report.trends)  # each chart drawn as vector graphics
    from reports.render.html import email_body

    body = email_body(env, report, [])
    assert body.inline and all(png.startswith(b"\x89PNG") for png in body.inline.values())


def test_rendering_a_pdf_never_loads_the_png_drawing_library(demo_config):
    script = (
        "import sys; from tests.conftest import job_run, NOW; from pathlib import Path; "
        "from reports.render import renderer; from reports.render.templates import environment; "
        "from reports.report.build import build_report; from reports.report.model import EVERYONE; "
        f"config, run = job_run(Path({str(demo_config)!r}), 'executive_weekly'); "
        "renderer('pdf', environment()).render(build_report(config, run, EVERYONE, NOW)); "
        "print('matplotlib.pyplot' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
