"""Serving an output: by its id in the store, from where Herald wrote it, never from a path in
the request; with its media type, a Content-Disposition naming the file, and HTML under a
Content-Security-Policy that runs no script. Each one served is written to the audit log."""

from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, Response

from reports.archive.record import inside
from reports.store.archive import OutputRow
from reports.web.auth import client

log = logging.getLogger("herald.web")
OUTPUT_CSP = "default-src 'none'; img-src data: 'self'; style-src 'unsafe-inline'"
INLINE = ("application/pdf", "text/html", "text/plain", "application/json", "image/png", "text/csv")
FORMULA = ("=", "+", "-", "@", "\t", "\r")


def serve(request: Request, output: OutputRow, inline: bool) -> Response | None:
    """The file of `output` (one the reader may see); None when it is not on disk under out/."""
    herald = request.app.state.herald
    found = inside(Path(output.path), herald.out)
    if found is None:
        log.warning("output %s: its file %s is missing or outside %s", output.id, output.path, herald.out)
        return None
    viewer = request.state.viewer
    inline = inline and output.media_type.split(";")[0] in INLINE
    herald.archive.audit(
        viewer.who,
        "view" if inline else "download",
        f"output {output.id}",
        f"{output.name} (run {output.run_id})",
        client(request),
    )
    headers = {"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"}
    if output.media_type.startswith(("text/html", "image/svg")):
        headers["Content-Security-Policy"] = OUTPUT_CSP
    return FileResponse(
        found,
        headers=headers,
        media_type=output.media_type,
        filename=output.name,
        content_disposition_type="inline" if inline else "attachment",
    )


def findings_download(request: Request, run: dict[str, Any], findings: list[dict], fmt: str) -> Response:
    """The findings of a run, as the reader sees them, as CSV or JSON."""
    viewer = request.state.viewer
    name = f"{run['job']}-{run['as_of']}-findings.{fmt}"
    request.app.state.herald.archive.audit(
        viewer.who, "download", f"run {run['id']} findings", name, client(request)
    )
    if fmt == "json":
        body = json.dumps(
            {"run_id": run["id"], "job": run["job"], "as_of": run["as_of"], "findings": findings}, indent=2
        )
        media = "application/json"
    else:
        body, media = findings_csv(findings), "text/csv; charset=utf-8"
    return Response(
        body,
        media_type=media,
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "private, no-store",
        },
    )


CSV_COLUMNS = (
    "severity",
    "rule",
    "kpi",
    "entity",
    "entity_name",
    "owner",
    "value",
    "reference",
    "threshold",
    "unit",
    "status",
    "since",
    "message",
)


def findings_csv(findings: list[dict]) -> str:
    """CSV a spreadsheet opens safely: a cell that would start a formula is written as text."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for finding in findings:
        writer.writerow([_cell(finding.get(column)) for column in CSV_COLUMNS])
    return buffer.getvalue()


def _cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA):
        return "'" + value
    return "" if value is None else value
