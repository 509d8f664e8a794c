"""Herald's own charts: SVG for the PDF and the archive page, escaped and honest, and the same
drawing as the email's PNG."""

import io
import math
import re
from xml.etree import ElementTree

import numpy as np
import pypdf
import pytest
from PIL import Image

from reports.render import renderer
from reports.render.drawn import Charts
from reports.render.html import email_body
from reports.render.style import BAD, GOOD, PRIMARY
from reports.render.svg import TICK, draw_distribution, draw_movers, draw_trend, text_width, ticks
from reports.render.templates import environment
from reports.report.build import build_report
from reports.report.model import EVERYONE
from tests.conftest import NOW, demo_folder, job_run

NS = "{http://www.w3.org/2000/svg}"
HOSTILE = [
    "<script>alert(1)</script>",
    'Smith & Sons "Retail" <b>',
    "a\u0007bell\x00",
    "line one\r\nline two",
    "\u202eevil\u202c",
    "A name far longer than twenty-eight characters",
]


def parse(svg: str) -> ElementTree.Element:
    return ElementTree.fromstring(svg)  # raises on anything that is not well-formed XML


def placed(svg: str) -> list[tuple[str, float, float]]:
    """Every label with where it starts and its baseline, as a reader sees them: a text element
    whose letters are placed one by one holds several labels, each starting where the letter
    before it did not end."""
    found: list[tuple[str, float, float]] = []
    for element in parse(svg).iter(f"{NS}text"):
        text = element.text or ""
        xs = [float(v) for v in element.get("x", "").split()]
        ys = [float(v) for v in element.get("y", "").split()]
        if len(xs) <= 1:
            found.append((text, xs[0], ys[0]))
            continue
        assert len(xs) == len(ys) == len(text), "a place for every letter"
        for i, c in enumerate(text):
            ends = xs[i - 1] + text_width(text[i - 1], TICK) if i else math.nan
            if ys[i] == ys[i - 1] and abs(xs[i] - ends) <= 0.2:
                label, x, y = found[-1]
                found[-1] = (label + c, x, y)
            else:
                found.append((c, xs[i], ys[i]))
    return found


def texts(svg: str) -> list[str]:
    return [label for label, _, _ in placed(svg)]


def elements(svg: str) -> int:
    return sum(1 for _ in parse(svg).iter(f"{NS}text"))


def lines(svg: str, colour: str) -> list[ElementTree.Element]:
    """The stroked data lines of one colour (not the dots, which have round caps)."""
    return [
        p
        for p in parse(svg).iter(f"{NS}path")
        if p.get("stroke") == colour and p.get("stroke-linecap") is None
    ]


@pytest.fixture(scope="module")
def executive(demo_db, tmp_path_factory):
    config, run = job_run(demo_folder(tmp_path_factory.mktemp("svg"), demo_db), "executive_weekly")
    return build_report(config, run, EVERYONE, NOW)


def test_ticks_are_round_steps_about_four_of_them():
    assert ticks(0, 111_745_608.7, 4) == [0, 50_000_000, 100_000_000]
    assert ticks(0.4048, 0.4548, 4) == [0.41, 0.42, 0.43, 0.44, 0.45]
    assert ticks(0.9689, 1.0, 4) == [0.97, 0.98, 0.99, 1.0]
    for low, high in [(0, 7), (-3.2, 3.1), (12, 12.5), (0, 2.4e9), (0.00213, 0.00298)]:
        marks = ticks(low, high, 4)
        step = marks[1] - marks[0]
        mantissa = step / 10 ** math.floor(math.log10(step))
        assert 3 <= len(marks) <= 6 and low <= marks[0] and marks[-1] <= high
        assert round(mantissa, 6) in (1, 2, 5), (low, high, marks)


def test_the_same_chart_is_the_same_bytes():
    args = ("Events", "count", ["a", "b", "c"], [1.0, None, 3.0], [0.5, 0.7, None], [0, 4], "note")
    assert draw_trend(*args) == draw_trend(*args)
    assert draw_distribution("S", [1.0, -2.0, 3.5], "x") == draw_distribution("S", [1.0, -2.0, 3.5], "x")


def test_a_gap_in_the_data_is_a_gap_in_the_line():
    svg = draw_trend("Events", "count", list("abcdef"), [1, 2, None, 4, 5, 6], [None] * 6, axis=[0, 8])
    assert len(lines(svg, PRIMARY)) == 2  # before and after the missing period
    assert lines(svg, "#9aa5b1") == []  # no earlier periods: no dashed line
    nan = draw_trend("Events", "count", list("abcd"), [1, math.nan, math.inf, 4], [1, 2, 3, 4], axis=[0, 8])
    assert len(lines(nan, PRIMARY)) == 0  # two lone points: dots, no line through the gap
    dashed = lines(nan, "#9aa5b1")
    assert len(dashed) == 1 and dashed[0].get("stroke-dasharray")


def test_the_axis_from_the_report_is_the_axis_drawn():
    svg = draw_trend("Events", "count", ["Aug", "Sep"], [90_000, 100_000], [None, None], axis=[0, 110_000])
    assert texts(svg)[1:4] == ["0", "50k", "100k"]  # a count starts at zero, not at the data
    root = parse(svg)
    level = {label: y - 2.9 for label, _, y in placed(svg)}  # labels sit on their line
    (dots,) = [p.get("d") for p in root.iter(f"{NS}path") if p.get("stroke-linecap") == "round"]
    points = [float(y) for y in re.findall(r"M[\d.]+ ([\d.]+)h0", dots)]
    scale = (level["100k"] - level["0"]) / 100_000
    assert points == pytest.approx([level["0"] + 90_000 * scale, level["0"] + 100_000 * scale], abs=0.15)
    rate = texts(
        draw_trend("Bounce", "percent", ["a", "b"], [0.429, 0.43], [None] * 2, axis=[0.4048, 0.4548])
    )
    assert [t for t in rate if t.endswith("%")] == ["41%", "42%", "43%", "44%", "45%"]


def test_tick_labels_are_one_text_element_with_each_letter_placed():
    svg = draw_trend(
        "Events", "count", ["Aug 2026", "Sep 2026"], [90_000, 100_000], [None, None], [0, 110_000]
    )
    root = parse(svg)
    assert len(list(root.iter(f"{NS}text"))) == 2  # the title, and every tick label in one
    where = {label: (x, y) for label, x, y in placed(svg)}
    assert list(where) == ["Events", "0", "50k", "100k", "Aug 2026", "Sep 2026"]
    ends = {label: where[label][0] + text_width(label, TICK) for label in ("0", "50k", "100k")}
    assert len({round(end, 1) for end in ends.values()}) == 1  # the value labels end on one line
    (dots,) = [p.get("d") for p in root.iter(f"{NS}path") if p.get("stroke-linecap") == "round"]
    centres = [float(x) for x in re.findall(r"M([\d.]+) [\d.]+h0", dots)]
    middles = [where[m][0] + text_width(m, TICK) / 2 for m in ("Aug 2026", "Sep 2026")]
    assert middles == pytest.approx(centres, abs=0.15)  # each period's label centred on its point
    # A label beyond ASCII keeps an element of its own, laid out by the font itself.
    movers = draw_movers("m", "count", ["Zoë Ltd", "株式会社", "Acme"], [1.0, -1.0, 2.0])
    assert len(list(parse(movers).iter(f"{NS}text"))) == 4  # title, two names, the rest in one
    assert {"Zoë Ltd", "株式会社", "Acme"} <= set(texts(movers))


def test_names_from_the_warehouse_are_text_not_markup():
    svg = draw_movers("Top movers: <i>events</i>", "count", HOSTILE, [12.0, -3.0, math.nan, None, 0.0, 5.0])
    root = parse(svg)
    assert not [e for e in root.iter() if not e.tag.startswith(NS)]  # only SVG elements: no <script>, <b>
    assert "<script" not in svg and "<b>" not in svg
    labels = texts(svg)
    assert labels[0] == "Top movers: <i>events</i>"
    assert "<script>alert(1)</script>" in labels and 'Smith & Sons "Retail" <b>' in labels
    assert "abell" in labels and "line one line two" in labels and "evil" in labels
    assert "A name far longer than twen…" in labels  # 28 characters at most, as in the PNG
    assert not any(c for label in labels for c in label if not c.isprintable())
    # Bars: green up, red down, none for a change that could not be computed.
    bars = {
        p.get("fill"): p.get("d").count("z") for p in root.iter(f"{NS}path") if p.get("fill") in (GOOD, BAD)
    }
    assert bars == {GOOD: 3, BAD: 1}


def test_a_chart_refers_to_nothing_outside_itself():
    svgs = [
        draw_trend("<a href='x'>t</a>", "count", ["javascript:x"], [1.0], [None], None, "url(http://evil)"),
        draw_movers("m", "count", HOSTILE, [1.0] * len(HOSTILE)),
        draw_distribution("d", [1.0, math.inf, -math.inf, math.nan, None], "<image href='x'/>"),
    ]
    for svg in svgs:
        for element in parse(svg).iter():
            assert element.tag[len(NS) :] in {"svg", "text", "path"}
            assert not [a for a in element.attrib if "href" in a or a.startswith("on")]
            assert "url(" not in "".join(element.attrib.values())


def test_the_distribution_bins_every_value_once():
    values = [i / 10 for i in range(-70, 71)] + [250.0, -3.3, math.nan, None]  # the bulk: ±7
    svg = draw_distribution("How projects moved", values, "change in events")
    labels = texts(svg)
    assert [t for t in labels if t.endswith("%")] == ["-10%", "-5%", "0%", "+5%", "+10%"]  # ±7 to ±10
    assert "entities" in labels and "change in events" in labels
    (bins,) = [p.get("d") for p in parse(svg).iter(f"{NS}path") if p.get("fill") == PRIMARY]
    heights = [float(h) for h in re.findall(r"v([\d.]+)", bins)]
    known = [v for v in values if v is not None and not math.isnan(v)]
    counts, _ = np.histogram(np.clip(known, -10, 10), bins=24, range=(-10, 10))
    assert counts[-1] == 1  # +250 piled into the last bin
    drawn = [c for c in counts if c]
    assert len(heights) == len(drawn)
    assert [h / heights[0] for h in heights] == pytest.approx([c / drawn[0] for c in drawn], abs=0.02)


def test_the_pdf_carries_vector_charts_with_text_and_the_email_keeps_png(executive):
    env = environment()
    pdf = pypdf.PdfReader(io.BytesIO(renderer("pdf", env).render(executive)))
    assert [len(page.images) for page in pdf.pages] == [0] * len(pdf.pages)  # no bitmap anywhere
    text = " ".join(" ".join(page.extract_text().split()) for page in pdf.pages)
    events = next(t for t in executive.trends if t.kpi == "events")
    svg = Charts().svg(executive.charts[events.chart])
    assert {"0", "50M", "100M", "16 Nov"} <= set(texts(svg))
    for chart in executive.charts.values():  # every label of every chart is text in the PDF
        for label in texts(Charts().svg(chart)):
            assert " ".join(label.split()) in text, f"{label!r} of {chart.kind} is not text in the PDF"
    html = renderer("html", env).render(executive).decode()
    assert "data:image/svg+xml;base64," in html and "data:image/png" not in html
    assert html.count("<img ") == len(executive.charts) and html.count(' alt="') == len(executive.charts)
    body = email_body(env, executive, [])
    assert body.inline and all(png.startswith(b"\x89PNG") for png in body.inline.values())


def test_the_emails_png_is_the_svg_drawn_on_white(executive):
    """The email's chart is the PDF's drawing as a bitmap: 720 px wide (3.6 in at 200 dpi),
    opaque for mail clients in dark mode, the trend's line in the house colour."""
    chart = executive.charts[executive.trends[0].chart]
    png = Charts().png(chart)
    image = Image.open(io.BytesIO(png))
    svg = parse(Charts().svg(chart))
    height = float(svg.get("viewBox").split()[3]) / float(svg.get("viewBox").split()[2]) * 720
    assert image.format == "PNG" and image.width == 720 and abs(image.height - height) <= 1
    pixels = image.convert("RGBA")
    assert pixels.getpixel((0, 0)) == (255, 255, 255, 255) and pixels.getextrema()[3] == (255, 255)
    primary = tuple(int(PRIMARY[i : i + 2], 16) for i in (1, 3, 5))
    colours = {rgb for _, rgb in pixels.convert("RGB").getcolors(720 * 720)}
    assert primary in colours  # the line, drawn solid
    assert Charts().png(chart) == png  # the same numbers, the same bytes
