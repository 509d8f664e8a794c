"""PDF: the role's HTML page laid out for paper by WeasyPrint."""

from __future__ import annotations

import logging

import weasyprint
from weasyprint.urls import URLFetcher

from reports.render import Renderer, register
from reports.render.templates import render
from reports.report.model import Report

# WeasyPrint reports every CSS property it skips; those are expected, not the user's concern.
logging.getLogger("weasyprint").setLevel(logging.ERROR)
logging.getLogger("fontTools").setLevel(logging.ERROR)


def _only_embedded() -> URLFetcher:
    """Reports embed their images; nothing in one may make the renderer fetch a file or URL."""
    return URLFetcher(allowed_protocols={"data"}, allow_redirects=False)


@register
class PdfRenderer(Renderer):
    format = "pdf"
    extension = "pdf"
    media_type = "application/pdf"

    def render(self, report: Report) -> bytes:
        html = render(self.env, f"{report.role}.html", report=report)
        document = weasyprint.HTML(string=html, url_fetcher=_only_embedded(), base_url=".")
        return document.write_pdf() or b""
