"""PDF: the role's HTML page laid out for paper by WeasyPrint."""

from __future__ import annotations

import functools
import logging
import os
from typing import TYPE_CHECKING

from reports.render import Renderer, register
from reports.render.templates import render
from reports.report.model import Report

if TYPE_CHECKING:
    from weasyprint import CSS
    from weasyprint.text.fonts import FontConfiguration
    from weasyprint.urls import URLFetcher

# WeasyPrint reports every CSS property it skips; those are expected, not the user's concern.
logging.getLogger("weasyprint").setLevel(logging.ERROR)
logging.getLogger("fontTools").setLevel(logging.ERROR)
HOUSE_STYLE = "report.css"  # every report page's stylesheet, included by base.html
# A job's own report.css shorter than this (empty, say) could match other text of a page: such
# a stylesheet stays inline, where the page put it.
MIN_STYLE = 64


def _only_embedded() -> URLFetcher:
    """Reports embed their images; nothing in one may make the renderer fetch a file or URL."""
    from weasyprint.urls import URLFetcher

    return URLFetcher(allowed_protocols={"data"}, allow_redirects=False)


@functools.lru_cache(maxsize=1)
def _fonts(process: int) -> FontConfiguration:
    """The fonts a process lays reports out with, set up once: WeasyPrint would load Fontconfig's
    fonts and a Pango font map again for every document (about a tenth of a per-project PDF's
    time) and keeps the strut and font-feature caches on it. Keyed by the process, so a worker
    forked from a process that has rendered builds its own rather than sharing one."""
    from weasyprint.text.fonts import FontConfiguration

    return FontConfiguration()


@register
class PdfRenderer(Renderer):
    format = "pdf"
    extension = "pdf"
    media_type = "application/pdf"
    needs = frozenset({"trends", "movers"})

    def render(self, report: Report) -> bytes:
        import weasyprint  # on first use: loading it costs a second, and validating config needs none of it

        html = render(self.env, f"{report.role}.html", report=report)
        process = os.getpid()
        html, sheets = _house_style_apart(html, render(self.env, HOUSE_STYLE), process)
        document = weasyprint.HTML(string=html, url_fetcher=_only_embedded(), base_url=".")
        return document.write_pdf(font_config=_fonts(process), stylesheets=sheets) or b""


def _house_style_apart(html: str, style: str, process: int) -> tuple[str, list[CSS]]:
    """The page without the house stylesheet it includes, and that stylesheet parsed once per
    process rather than once per report. It applies as the reader's (user) stylesheet, so the
    page's own rules still win over it, as when they followed it; a page that does not include
    it (a template of the job's own) is left whole."""
    if len(style.strip()) < MIN_STYLE or style not in html:
        return html, []
    return html.replace(style, "", 1), [_parsed(style, process)]


@functools.lru_cache(maxsize=4)
def _parsed(style: str, process: int) -> CSS:
    import weasyprint

    return weasyprint.CSS(string=style, font_config=_fonts(process), url_fetcher=_only_embedded())
