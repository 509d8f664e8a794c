"""The archive's pages: jobs, runs (searchable by job, entity and date), one run with its
findings and files, alerts with the silence forms, the audit log, and the reader's account.
Plain HTML and CSS from templates/web/, no script."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from functools import wraps
from typing import Any
from urllib.parse import parse_qs, urlencode
from zoneinfo import ZoneInfo

import jinja2
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from reports.archive import tokens
from reports.errors import HeraldError
from reports.render.templates import BUILTIN
from reports.web import auth, silences
from reports.web.access import viewer_for
from reports.web.files import findings_download, serve
from reports.web.queries import Reading, RunFilter, output_dict

OUTPUTS_PER_PAGE = 100
_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(BUILTIN / "web"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _when(value: str | None, pattern: str = "%d %b %Y %H:%M", zone: str | None = None) -> str:
    """A stored moment for a reader: in UTC, or in `zone` (a job's schedule is read in its own)."""
    if not value:
        return "—"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    if len(value) == 10:
        pattern = "%d %b %Y"
    if zone and moment.tzinfo and len(value) > 10:
        local = moment.astimezone(ZoneInfo(zone))
        return f"{local.strftime(pattern).lstrip('0')} {local.tzname()}"
    text = moment.strftime(pattern).lstrip("0")
    return text + (" UTC" if moment.tzinfo and len(value) > 10 else "")


def _size(value: int | None) -> str:
    if value is None:
        return "—"
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:,.0f} {unit}" if unit == "bytes" else f"{value:,.1f} {unit}"
        value /= 1024  # type: ignore[assignment]
    return str(value)


_ENV.filters.update(when=_when, size=_size, query=lambda d: urlencode({k: v for k, v in d.items() if v}))


def render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    viewer = getattr(request.state, "viewer", None)
    html = _ENV.get_template(name).render(
        base=auth.base_path(request),
        viewer=viewer,
        csrf=auth.csrf_token(request) if viewer else "",
        path=request.url.path,
        **context,
    )
    return HTMLResponse(html, status_code=status)


def page(handler: Callable[..., Response]) -> Callable[[Request], Any]:
    """A page for a signed-in reader; others get the page saying how to sign in."""

    @wraps(handler)
    async def endpoint(request: Request) -> Response:
        viewer = await run_in_threadpool(auth.current, request)
        if viewer is None:
            return render(request, "signin.html", status=401)
        request.state.viewer = viewer
        if request.method == "POST":
            request.state.form = {
                k: v[-1] for k, v in parse_qs((await request.body()).decode("utf-8", "replace")).items()
            }
            if not auth.csrf_ok(request, request.state.form.get("csrf")):
                return render(
                    request,
                    "message.html",
                    status=403,
                    title="This form has expired",
                    text="Go back, reload the page and send the form again.",
                )
        return await run_in_threadpool(handler, request)

    return endpoint


def _reading(request: Request) -> Reading:
    herald = request.app.state.herald
    return Reading(herald.config(), herald.store, request.state.viewer)


def _int(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() and len(value) < 19 else None


def _date(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


# Signing in ---------------------------------------------------------------------------------


def sign_in(request: Request) -> Response:
    herald = request.app.state.herald
    claims = tokens.verify(herald.secret, "link", request.query_params.get("t"))
    if claims is None or not isinstance(claims.get("sub"), str):
        return render(request, "signin.html", status=401, expired=True)
    who = auth.resolve_subject(herald, claims["sub"], claims.get("go"))
    viewer = viewer_for(herald.config(), who)
    target = auth.link_target(herald, viewer, claims.get("go"))
    herald.archive.audit(viewer.who, "signin", "link", None, auth.client(request))
    base = auth.base_path(request)
    where = f"{base}/runs/{target[0]}#output-{target[1]}" if target else f"{base}/jobs"
    response = RedirectResponse(where, status_code=303)
    value, seconds = auth.session_cookie(herald, who)
    secure = request.url.scheme == "https" or (herald.config().archive_url or "").startswith("https://")
    response.set_cookie(
        auth.COOKIE, value, max_age=seconds, path=base or "/", httponly=True, samesite="lax", secure=secure
    )
    return response


@page
def sign_out(request: Request) -> Response:
    base = auth.base_path(request)
    response = render(
        request, "message.html", title="Signed out", text="Open a link from Herald to sign in again."
    )
    response.delete_cookie(auth.COOKIE, path=base or "/")
    return response


# Jobs and runs ------------------------------------------------------------------------------


@page
def jobs(request: Request) -> Response:
    return render(request, "jobs.html", jobs=_reading(request).jobs())


def _filters(request: Request) -> RunFilter:
    q = request.query_params
    return RunFilter(
        job=q.get("job") or None,
        entity=(q.get("entity") or "").strip()[:100] or None,
        start=_date(q.get("from")),
        end=_date(q.get("to")),
        status=q.get("status") or None,
    )


@page
def runs(request: Request) -> Response:
    reading = _reading(request)
    where = _filters(request)
    found = reading.runs(where, limit=25, cursor=_int(request.query_params.get("cursor")))
    shown = {k: request.query_params.get(k, "") for k in ("job", "entity", "from", "to", "status")}
    return render(
        request,
        "runs.html",
        runs=found.items,
        next_cursor=found.next_cursor,
        filters=shown,
        job_names=sorted(j["job"] for j in reading.jobs()),
    )


@page
def run_page(request: Request) -> Response:
    reading = _reading(request)
    run = reading.run(request.path_params["run_id"])
    if run is None:
        raise HTTPException(404)
    outputs = reading.outputs(run["id"])
    wanted = (request.query_params.get("q") or "").strip().casefold()
    if wanted:
        outputs = [o for o in outputs if wanted in o.label.casefold() or wanted in o.name.casefold()]
    start = _int(request.query_params.get("start")) or 0
    shown = outputs[start : start + OUTPUTS_PER_PAGE]
    return render(
        request,
        "run.html",
        run=run,
        findings=reading.findings(run["id"]),
        outputs=[output_dict(o, run) for o in shown],
        total_outputs=len(outputs),
        start=start,
        per_page=OUTPUTS_PER_PAGE,
        q=request.query_params.get("q", ""),
    )


@page
def run_findings(request: Request) -> Response:
    reading = _reading(request)
    run = reading.run(request.path_params["run_id"])
    if run is None or request.path_params["fmt"] not in ("csv", "json"):
        raise HTTPException(404)
    return findings_download(request, run, reading.findings(run["id"]), request.path_params["fmt"])


def _output(request: Request, inline: bool) -> Response:
    output = _reading(request).output(request.path_params["output_id"])
    if output is None:
        raise HTTPException(404)
    if output.pruned:
        return render(
            request,
            "message.html",
            status=410,
            title="No longer kept",
            text=f"{output.name} was deleted by the archive's retention on {_when(output.pruned)}.",
        )
    served = serve(request, output, inline)
    if served is None:
        raise HTTPException(404)
    return served


@page
def download(request: Request) -> Response:
    return _output(request, inline=False)


@page
def view(request: Request) -> Response:
    return _output(request, inline=True)


# Alerts and silences ------------------------------------------------------------------------


@page
def alerts(request: Request) -> Response:
    reading = _reading(request)
    config = request.app.state.herald.config()
    return render(
        request,
        "alerts.html",
        alerts=reading.alerts(request.query_params.get("job") or None),
        silences=reading.silences(),
        timezone=config.timezone,
        default_end=silences.default_end(config).strftime("%Y-%m-%dT%H:%M"),
        done=request.query_params.get("done", ""),
    )


@page
def silence(request: Request) -> Response:
    form = request.state.form
    try:
        silence_id = silences.add(
            request,
            _reading(request),
            form.get("rule", ""),
            form.get("entity") or None,
            form.get("ends", ""),
            form.get("reason", ""),
        )
    except silences.Refused as exc:
        return render(request, "message.html", status=exc.status, title="Not silenced", text=str(exc))
    base = auth.base_path(request)
    return RedirectResponse(f"{base}/alerts?done=silenced-{silence_id}#silences", status_code=303)


@page
def lift(request: Request) -> Response:
    try:
        silences.lift(request, _reading(request), request.path_params["silence_id"])
    except silences.Refused as exc:
        return render(request, "message.html", status=exc.status, title="Not lifted", text=str(exc))
    base = auth.base_path(request)
    return RedirectResponse(f"{base}/alerts?done=lifted#silences", status_code=303)


# Operators and the account ------------------------------------------------------------------


@page
def audit(request: Request) -> Response:
    if not request.state.viewer.operator:
        raise HTTPException(404)
    q = request.query_params
    rows = request.app.state.herald.archive.audit_log(
        51, _int(q.get("before")), q.get("action") or None, q.get("who") or None
    )
    more = rows[50].id + 1 if len(rows) > 50 else None
    return render(
        request,
        "audit.html",
        rows=rows[:50],
        before=more,
        filters={"action": q.get("action", ""), "who": q.get("who", "")},
    )


@page
def account(request: Request) -> Response:
    return render(request, "account.html", token=None, days=request.app.state.herald.config().web.token_days)


@page
def make_token(request: Request) -> Response:
    herald = request.app.state.herald
    viewer, days = request.state.viewer, herald.config().web.token_days
    subject = request.state.session["sub"]
    made = tokens.sign(herald.secret, "api", {"sub": subject}, tokens.DAY * days)
    herald.archive.audit(viewer.who, "token", "api token", f"valid {days} days", auth.client(request))
    return render(request, "account.html", token=made, days=days)


def stylesheet(request: Request) -> Response:
    css = (BUILTIN / "web" / "web.css").read_text(encoding="utf-8")
    return Response(css, media_type="text/css", headers={"Cache-Control": "public, max-age=3600"})


def home(request: Request) -> Response:
    return RedirectResponse(auth.base_path(request) + "/jobs", status_code=303)


def routes() -> list[Route]:
    return [
        Route("/", home),
        Route("/static/web.css", stylesheet),
        Route("/signin", sign_in),
        Route("/signout", sign_out, methods=["POST"]),
        Route("/jobs", jobs),
        Route("/runs", runs),
        Route("/runs/{run_id:int}", run_page),
        Route("/runs/{run_id:int}/findings.{fmt:str}", run_findings),
        Route("/outputs/{output_id:int}", download),
        Route("/outputs/{output_id:int}/view", view),
        Route("/alerts", alerts),
        Route("/alerts/silence", silence, methods=["POST"]),
        Route("/silences/{silence_id:int}/lift", lift, methods=["POST"]),
        Route("/audit", audit),
        Route("/account", account),
        Route("/account/token", make_token, methods=["POST"]),
    ]


def errors() -> dict[Any, Callable]:
    """Errors as a page, or as JSON under /api/."""

    async def http_error(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 500)
        if request.url.path.startswith(auth.base_path(request) + "/api/"):
            return JSONResponse({"error": _said(status)}, status_code=status)
        return render(
            request,
            "message.html",
            status=status,
            title=_said(status),
            text="There is nothing here, or nothing you may see." if status == 404 else "",
        )

    async def herald_error(request: Request, exc: Exception) -> Response:
        text = str(exc)
        if request.url.path.startswith(auth.base_path(request) + "/api/"):
            return JSONResponse({"error": text}, status_code=503)
        return render(request, "message.html", status=503, title="The archive cannot answer", text=text)

    return {HTTPException: http_error, HeraldError: herald_error}


def _said(status: int) -> str:
    return {
        401: "Sign in first",
        403: "Not allowed",
        404: "Not found",
        405: "Method not allowed",
        410: "No longer kept",
        413: "Too large",
    }.get(status, "Something went wrong")
