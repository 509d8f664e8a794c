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
    from weasyprint.text.fonts import FontConfiguration
    from weasyprint.urls import URLFetcher

# WeasyPrint reports every CSS property it skips; those are expected, not the user's concern.
logging.getLogger("weasyprint").setLevel(logging.ERROR)
logging.getLogger("fontTools").setLevel(logging.ERROR)


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
        document = weasyprint.HTML(string=html, url_fetcher=_only_embedded(), base_url=".")
        return document.write_pdf(font_config=_fonts(os.getpid())) or b""
