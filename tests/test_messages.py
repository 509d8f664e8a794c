"""HTML pages, email bodies and Slack messages: golden files, Slack's limits, untrusted text."""

import io
import json
import re
from dataclasses import replace
from datetime import date

import openpyxl
import pypdf
import pytest

from reports.findings import Finding
from reports.render import renderer
from reports.render.html import email_body
from reports.render.slack import MAX_BLOCKS, MAX_HEADER, MAX_SECTION, slack_message
from reports.render.templates import environment
from reports.report.build import build_all, build_report
from reports.report.model import EVERYONE
from tests.conftest import NOW, demo_folder, job_run

EVIL = "Evil <script>alert(1)</script> & \"Q\" 'S' שלום"


def without_images(html: str) -> str:
    """Chart pixels differ between font builds; the golden files pin everything else."""
    return re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "data:image/png;base64,…", html)


@pytest.fixture(scope="module")
def reports(demo_db, tmp_path_factory):
    config_path = demo_folder(tmp_path_factory.mktemp("golden"), demo_db)
    built = {}
    for job in ("executive_weekly", "cs_daily_alerts", "analyst_monthly"):
        config, run = job_run(config_path, job)
        built[job] = build_all(config, run, NOW)
    return built


@pytest.mark.parametrize("job", ["executive_weekly", "cs_daily_alerts", "analyst_monthly"])
def test_html_page_matches_golden(reports, golden, job):
    report = reports[job][0]
    golden(f"{job}.html", without_images(renderer("html", environment()).render(report).decode()))


@pytest.mark.parametrize("job", ["executive_weekly", "cs_daily_alerts", "analyst_monthly"])
def test_email_body_matches_golden(reports, golden, job):
    report = reports[job][0]
    body = email_body(environment(), report, [f"{report.file_stem}.pdf"])
    golden(f"{job}.email.html", body.html)
    golden(f"{job}.email.txt", body.text)
    # The template picks its inline charts: exactly those it refers to are attached, drawn.
    referred = set(re.findall(r'src="cid:([^"]+)"', body.html))
    assert referred == set(body.inline) and len(referred) == (0 if job == "cs_daily_alerts" else 1)
    assert all(png.startswith(b"\x89PNG") for png in body.inline.values())
    assert "<style" not in body.html and 'style="' in body.html  # CSS inlined for mail clients


def test_slack_messages_match_golden(reports, golden):
    everyone, *owners = reports["cs_daily_alerts"]
    golden("cs_daily_alerts.slack.json", json.dumps(slack_message(everyone), indent=2, ensure_ascii=False))
    amara = next(r for r in owners if r.recipient.label == "Amara Okafor")
    golden(
        "cs_daily_alerts.amara-okafor.slack.json",
        json.dumps(slack_message(amara), indent=2, ensure_ascii=False),
    )
    assert {f.entity for f in amara.findings} == {"p0003"}  # Cobalt Radio's usage drop only


def test_slack_limits_with_hundreds_of_findings(reports):
    report = reports["cs_daily_alerts"][0]
    many = [
        Finding(
            rule="usage_drop",
            severity="critical" if i % 3 == 0 else "warning",
            kpi="events",
            entity=f"p{i % 240:04d}",
            entity_name=f"Account {i % 240} " + "x" * 40,
            value=1.0,
            reference=2.0,
            threshold=-40.0,
            unit="count",
            message="Events fell " + "a long way " * 30,
            as_of=date(2026, 11, 22),
        )
        for i in range(600)
    ]
    big = replace(report, findings=many, title="T" * 400, group_over=10_000)
    message = slack_message(big)
    blocks = message["blocks"]
    assert len(blocks) <= MAX_BLOCKS
    assert len(blocks[0]["text"]["text"]) <= MAX_HEADER
    sections = [b["text"]["text"] for b in blocks if b["type"] == "section"]
    assert all(len(text) <= MAX_SECTION for text in sections)
    shown = sum(text.count("\n•") for text in sections)
    (hidden,) = map(int, re.findall(r"…and (\d+) more findings", blocks[-1]["elements"][0]["text"]))
    assert shown + hidden == 600
    assert "200 critical, 400 warning on 240 accounts" in blocks[1]["elements"][0]["text"]


def test_one_long_account_is_split_within_the_section_limit(reports):
    report = reports["cs_daily_alerts"][0]
    findings = [replace(report.findings[0], message=f"finding {i} " + "y" * 300) for i in range(30)]
    blocks = slack_message(replace(report, findings=findings, group_over=100))["blocks"]
    texts = [b["text"]["text"] for b in blocks if b["type"] == "section" and "finding" in b["text"]["text"]]
    assert len(texts) >= 3 and all(len(t) <= MAX_SECTION for t in texts)
    assert texts[1].split("\n")[0].endswith("(continued)")
    assert sum(t.count("\n•") for t in texts) == 30


@pytest.fixture(scope="module")
def evil(demo_db, tmp_path_factory):
    """The CS job with one project's name, straight from the warehouse, full of markup."""

    def rename(data: dict) -> None:
        sql = data["entities"]["project"]["sql"]
        quoted = EVIL.replace("'", "''")
        data["entities"]["project"]["sql"] = sql.replace(
            "p.name,", f"CASE WHEN p.project_id = 'p0012' THEN '{quoted}' ELSE p.name END AS name,"
        )
        data["reports"]["cs_daily_alerts"]["formats"] = ["pdf", "xlsx", "html"]

    config, run = job_run(demo_folder(tmp_path_factory.mktemp("evil"), demo_db, rename), "cs_daily_alerts")
    return build_report(config, run, EVERYONE, NOW)


def test_untrusted_text_is_escaped_in_html_and_email(evil):
    assert any(f.entity_name == EVIL for f in evil.findings)
    env = environment()
    body = email_body(env, evil, [])
    for html in (renderer("html", env).render(evil).decode(), body.html):
        assert "<script>" not in html
        # Quotes in text need no escaping (the email's CSS inliner re-serialises them); markup does.
        assert re.search(r"<bdi>Evil &lt;script&gt;alert\(1\)&lt;/script&gt; &amp; (&#34;|\")Q", html)
        assert "שלום</bdi>" in html  # right-to-left text intact, isolated from its neighbours
    assert EVIL in body.text  # plain text needs no escaping


def test_untrusted_text_is_intact_in_pdf_and_workbook(evil):
    env = environment()
    text = " ".join(
        p.extract_text() for p in pypdf.PdfReader(io.BytesIO(renderer("pdf", env).render(evil))).pages
    )
    assert "<script>alert(1)</script> & \"Q\" 'S'" in " ".join(text.split())
    book = openpyxl.load_workbook(io.BytesIO(renderer("xlsx", env).render(evil)))
    cells = [c for row in book["Alerts"].iter_rows() for c in row if c.value == EVIL]
    assert cells and all(c.data_type == "s" for c in cells)


def test_untrusted_text_is_escaped_in_slack(evil):
    blob = json.dumps(slack_message(evil), ensure_ascii=False)
    assert "<script>" not in blob
    assert "Evil &lt;script&gt;alert(1)&lt;/script&gt; &amp; \\\"Q\\\" 'S' שלום" in blob


def test_a_storm_of_one_rule_is_one_line_with_the_count(reports):
    report = reports["cs_daily_alerts"][0]
    storm = [
        replace(report.findings[0], rule="usage_drop", entity=f"p{i:04d}", entity_name=f"Account {i}")
        for i in range(47)
    ]
    blocks = slack_message(replace(report, findings=storm, group_over=10))["blocks"]
    sections = [b["text"]["text"] for b in blocks if b["type"] == "section"]
    (line,) = [s for s in sections if "usage_drop" in s]
    assert "fired for 47 projects at once" in line and "the full list is in the archived report" in line
    assert not any("Account 12" in s for s in sections)
    quiet = slack_message(replace(report, findings=storm[:10], group_over=10))["blocks"]
    assert sum(b["text"]["text"].startswith("*Account ") for b in quiet if b["type"] == "section") == 10


def test_a_storm_is_one_line_in_the_email_too(reports):
    report = reports["cs_daily_alerts"][0]
    storm = [
        replace(report.findings[0], rule="usage_drop", entity=f"p{i:04d}", entity_name=f"Account {i}")
        for i in range(47)
    ]
    body = email_body(environment(), replace(report, findings=storm, group_over=10), [])
    assert "usage_drop fired for 47 projects at once" in body.text and "Account 12" not in body.text
    assert "fired for 47 projects at once" in body.html and "Account 12" not in body.html


def test_an_alert_says_what_to_do_next(reports):
    everyone = reports["cs_daily_alerts"][0]
    text = json.dumps(slack_message(everyone))
    assert "_Next:_ Ask the customer to reconnect their CRM" in text
    assert "<https://wiki.example.com/runbooks/crm-sync>" in text  # the runbook is a link
    body = email_body(environment(), everyone, [])
    assert "Next: Ask the customer to reconnect their CRM" in body.text and "Next: Ask" in body.html
