"""The archive in a real browser (Playwright driving Debian's Chromium): a reader signs in from
the link in the email Herald sent, downloads the workbook the run wrote, and a CS owner
silences an alert through the form; every page fits a phone's screen."""

from __future__ import annotations

import email
import json
from email import policy
from pathlib import Path

import pytest

from reports.store.archive import Archive
from tests.conftest import demo_folder, execute_job
from tests.servers import SMTP_PASSWORD, SMTP_USER, free_port, smtp_server
from tests.test_web import OPERATOR, SECRET, archive_server

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
SHOTS = Path("/tmp/herald-web")  # screenshots to look at after a run

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's chromium (make test installs it)"
)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def mailed(tmp_path_factory, demo_db):
    """The analyst workbook sent by email (too large to attach: linked from the archive) and
    the CS alerts filed to the outbox with a page per owner; the archive serving both."""
    folder = tmp_path_factory.mktemp("browser")
    port = free_port()
    with pytest.MonkeyPatch.context() as patch, smtp_server(folder) as (box, smtp_port, cert):
        patch.setenv("HERALD_WEB_SECRET", SECRET)
        patch.setenv("SMTP_PASSWORD", SMTP_PASSWORD)

        def edit(data: dict) -> None:
            data["archive_url"] = f"http://127.0.0.1:{port}"
            data["web"] = {"operators": [OPERATOR]}
            data["channels"] = {
                "email": {
                    "host": "127.0.0.1",
                    "port": smtp_port,
                    "username": SMTP_USER,
                    "password": "${SMTP_PASSWORD}",
                    "from": "herald@example.com",
                    "ca_file": str(cert),
                    "timeout": 5,
                    "max_attachment_mb": 0.01,
                }
            }
            data["reports"]["cs_daily_alerts"]["formats"] = ["html"]

        config = demo_folder(folder / "cfg", demo_db, edit)
        out = folder / "out"
        for job in ("analyst_monthly", "cs_daily_alerts"):
            outcome, store = execute_job(config, job, out)
            assert outcome.ok, outcome.problems()
        with archive_server(config, out, port) as base:
            yield base, box, out, store


def _fits(page, where: str) -> None:
    page.wait_for_load_state()
    width = page.evaluate("document.documentElement.scrollWidth")
    viewport = page.viewport_size["width"]
    assert width <= viewport, f"{where}: the page scrolls sideways ({width} > {viewport} px)"


def _shot(page, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_the_reader_downloads_the_workbook_from_the_link_in_their_email(browser, mailed):
    base, box, out, store = mailed
    ((recipients, raw),) = box.messages
    assert recipients == ["analysts@example.com"]
    text = email.message_from_bytes(raw, policy=policy.default).get_body(("plain",)).get_content()
    line = next(line for line in text.splitlines() if "too large to attach" in line)
    link = line.split("download it from ")[1].strip()
    assert link.startswith(f"{base}/signin?t=h1.")
    written = next(out.rglob("analyst_monthly-2026-11-22.xlsx"))

    context = browser.new_context(viewport=DESKTOP, accept_downloads=True)
    page = context.new_page()
    page.goto(link)  # signs in and opens the run, at the workbook
    assert page.url.startswith(f"{base}/runs/") and "#output-" in page.url
    assert page.locator("h1").inner_text().startswith("analyst_monthly")
    _shot(page, "run-desktop")
    cookie = next(c for c in context.cookies() if c["name"] == "herald_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    # Browse as a reader would: the jobs page, the job's runs, the run, its workbook.
    page.click("text=Jobs")
    assert page.locator("td >> text=Monthly KPI export").count() == 1
    assert page.locator("text=Account alerts").count() == 0  # not theirs
    page.click("text=Monthly KPI export")
    page.click("a:has-text('analyst_monthly #')")
    row = page.locator("tr", has_text="analyst_monthly-2026-11-22.xlsx")
    with page.expect_download() as download:
        row.locator("a:has-text('download')").click()
    assert download.value.suggested_filename == written.name
    assert Path(download.value.path()).read_bytes() == written.read_bytes()
    entry = Archive(store).audit_log(action="download", limit=1)[0]
    assert (entry.who, entry.detail.split(" ")[0]) == ("analysts@example.com", written.name)
    context.close()


def test_an_owner_silences_an_alert_through_the_form_on_a_phone(browser, mailed):
    base, _, out, _ = mailed
    dm = json.loads(next((out / "outbox" / "cs_daily_alerts").rglob("slack-@amara.okafor.json")).read_text())
    link = next(
        b["elements"][0]["text"].split("|")[0].lstrip("<")
        for b in dm["blocks"]
        if "Open the full report" in json.dumps(b)
    )
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.goto(link)
    _fits(page, "the run")
    _shot(page, "run-phone")
    for name in ("Jobs", "Runs", "Alerts", "Account"):
        with page.expect_navigation():
            page.click(f"nav >> text={name}")
        _fits(page, name)
        _shot(page, f"{name.lower()}-phone")
    page.goto(f"{base}/alerts")
    firing = page.locator("#firing + table tbody tr")
    assert firing.count() >= 1
    alert = firing.first
    rule = alert.locator("td[data-label=Rule]").inner_text()
    alert.locator("summary").click()
    alert.locator("input[name=reason]").fill("customer migrating their tracker")
    alert.locator("button[type=submit]").click()
    assert page.locator(".notice").inner_text().startswith("Silenced")
    listed = page.locator("#silences + table tbody tr")
    assert listed.count() == 1
    assert (
        rule in listed.first.inner_text() and "customer migrating their tracker" in listed.first.inner_text()
    )
    assert page.locator("#silenced + table tbody tr").count() == 1
    _fits(page, "alerts after silencing")
    _shot(page, "alerts-silenced-phone")
    listed.first.locator("button:has-text('Lift')").click()
    assert page.locator(".notice").inner_text().startswith("The silence is lifted")
    assert page.locator("#silences + table").count() == 0
    context.close()


def test_the_operators_pages_fit_a_phone_and_a_desktop(browser, mailed):
    from reports.archive.tokens import sign_in_link
    from reports.config.load import load_config

    base, _, out, _ = mailed
    config = load_config(next(out.parent.glob("cfg/config.yaml")))
    link = sign_in_link(config, SECRET, OPERATOR)
    for name, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        context = browser.new_context(viewport=viewport)
        page = context.new_page()
        page.goto(link)
        for path in ("/jobs", "/runs", "/runs/2", "/alerts", "/audit", "/account"):
            page.goto(base + path)
            assert page.locator("h1").count() == 1, path
            _fits(page, f"{path} ({name})")
            _shot(page, f"operator{path.replace('/', '-')}-{name}")
        context.close()
