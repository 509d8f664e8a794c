"""`/api/v1`: the archive as JSON, from the same queries as the pages. Reads take a Bearer API
token or the session cookie; writes (silences) take a Bearer token only, so no other site can
make a signed-in browser send one. Lists are paged: `?limit=` and the `next_cursor` of the page
before as `?cursor=`."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from reports.web import auth, silences
from reports.web.files import serve
from reports.web.openapi import document
from reports.web.pages import _date, _int
from reports.web.queries import MAX_LIMIT, Reading, RunFilter, output_dict


def _error(status: int, text: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": text}, status_code=status, headers=headers or None)


def api(handler: Callable[..., Any], write: bool = False) -> Callable[[Request], Any]:
    @wraps(handler)
    async def endpoint(request: Request) -> Response:
        viewer = await run_in_threadpool(auth.current, request)
        if viewer is None:
            return _error(
                401, "sign in: send Authorization: Bearer <token>", **{"WWW-Authenticate": "Bearer"}
            )
        if write and not auth.by_bearer(request):
            return _error(
                401,
                "changes need an API token: send Authorization: Bearer <token>",
                **{"WWW-Authenticate": "Bearer"},
            )
        request.state.viewer = viewer
        if write and request.method == "POST":
            try:
                request.state.body = json.loads(await request.body() or b"{}")
            except ValueError:
                return _error(400, "the body is not JSON")
            if not isinstance(request.state.body, dict):
                return _error(400, "the body is a JSON object")
        found = await run_in_threadpool(handler, request)
        return found if isinstance(found, Response) else JSONResponse(found)

    return endpoint


def _reading(request: Request) -> Reading:
    herald = request.app.state.herald
    return Reading(herald.config(), herald.store, request.state.viewer)


def _limit(request: Request, default: int = 50) -> int:
    return max(1, min(_int(request.query_params.get("limit")) or default, MAX_LIMIT))


def _paged(request: Request, items: list[Any]) -> dict[str, Any]:
    """A list paged by position; its cursor is opaque to clients."""
    start, limit = _int(request.query_params.get("cursor")) or 0, _limit(request)
    end = start + limit
    return {"items": items[start:end], "next_cursor": str(end) if end < len(items) else None}


def me(request: Request) -> dict[str, Any]:
    viewer = request.state.viewer
    return {"who": viewer.who, "operator": viewer.operator, "jobs": sorted(viewer.jobs)}


def jobs(request: Request) -> dict[str, Any]:
    return _paged(request, _reading(request).jobs())


def job(request: Request) -> dict[str, Any]:
    found = next((j for j in _reading(request).jobs() if j["job"] == request.path_params["job"]), None)
    if found is None:
        raise HTTPException(404)
    return found


def runs(request: Request) -> dict[str, Any]:
    q = request.query_params
    where = RunFilter(
        q.get("job") or None,
        (q.get("entity") or "").strip()[:100] or None,
        _date(q.get("from")),
        _date(q.get("to")),
        q.get("status") or None,
    )
    return _reading(request).runs(where, _limit(request), _int(q.get("cursor"))).to_dict()


def _run_or_404(reading: Reading, request: Request) -> dict[str, Any]:
    """The run the path names, if this reader may see it; else 404, as for no such run."""
    found = reading.run(request.path_params["run_id"])
    if found is None:
        raise HTTPException(404)
    return found


def run(request: Request) -> dict[str, Any]:
    return _run_or_404(_reading(request), request)


def run_outputs(request: Request) -> dict[str, Any]:
    reading = _reading(request)
    found = _run_or_404(reading, request)
    return _paged(request, [_output(request, o, found) for o in reading.outputs(found["id"])])


def _output(request: Request, output: Any, run: dict[str, Any] | None) -> dict[str, Any]:
    base = auth.base_path(request)
    shown = output_dict(output, run)
    shown["download_url"] = f"{base}/api/v1/outputs/{output.id}/content"
    shown["view_url"] = f"{base}/outputs/{output.id}/view"
    return shown


def run_findings(request: Request) -> dict[str, Any]:
    reading = _reading(request)
    return _paged(request, reading.findings(_run_or_404(reading, request)["id"]))


def output(request: Request) -> dict[str, Any]:
    reading = _reading(request)
    found = reading.output(request.path_params["output_id"])
    if found is None:
        raise HTTPException(404)
    return _output(request, found, reading.run(found.run_id))


def output_content(request: Request) -> Response:
    found = _reading(request).output(request.path_params["output_id"])
    if found is None:
        raise HTTPException(404)
    if found.pruned:
        return _error(410, f"deleted by the archive's retention on {found.pruned}")
    served = serve(request, found, inline=False)
    if served is None:
        raise HTTPException(404)
    return served


def alerts(request: Request) -> dict[str, Any]:
    q = request.query_params
    grouped = _reading(request).alerts(q.get("job") or None)
    state = q.get("state")
    if state and state not in grouped:
        return _error(400, "state is one of firing, pending, silenced, resolved")  # type: ignore[return-value]
    items = [
        {**a, "group": group}
        for group, found in grouped.items()
        if not state or group == state
        for a in found
    ]
    return _paged(request, items)


def silence_list(request: Request) -> dict[str, Any]:
    return _paged(request, _reading(request).silences())


def silence_add(request: Request) -> Response:
    body: dict[str, Any] = request.state.body
    fields = {k: body.get(k) for k in ("rule", "entity", "ends", "reason")}
    if not all(isinstance(fields[k], str) for k in ("rule", "ends", "reason")) or not isinstance(
        fields["entity"], str | None
    ):
        return _error(400, "send rule, ends and reason as strings (entity: a string or null)")
    reading = _reading(request)
    try:
        made = silences.add(
            request, reading, fields["rule"], fields["entity"] or None, fields["ends"], fields["reason"]
        )
    except silences.Refused as exc:
        return _error(exc.status, str(exc))
    found = next(s for s in reading.silences() if s["id"] == made)
    return JSONResponse(found, status_code=201)


def silence_lift(request: Request) -> Response:
    try:
        silences.lift(request, _reading(request), request.path_params["silence_id"])
    except silences.Refused as exc:
        return _error(exc.status, str(exc))
    return Response(status_code=204)


def audit(request: Request) -> dict[str, Any]:
    if not request.state.viewer.operator:
        raise HTTPException(404)
    q, limit = request.query_params, _limit(request)
    rows = request.app.state.herald.archive.audit_log(
        limit + 1, _int(q.get("cursor")), q.get("action"), q.get("who")
    )
    items = [row.__dict__ for row in rows[:limit]]
    return {"items": items, "next_cursor": str(rows[limit - 1].id) if len(rows) > limit else None}


def openapi(request: Request) -> Response:
    return JSONResponse(document(auth.base_path(request)))


def routes() -> list[Route]:
    return [
        Route("/openapi.json", openapi),
        Route("/me", api(me)),
        Route("/jobs", api(jobs)),
        Route("/jobs/{job:str}", api(job)),
        Route("/runs", api(runs)),
        Route("/runs/{run_id:int}", api(run)),
        Route("/runs/{run_id:int}/outputs", api(run_outputs)),
        Route("/runs/{run_id:int}/findings", api(run_findings)),
        Route("/outputs/{output_id:int}", api(output)),
        Route("/outputs/{output_id:int}/content", api(output_content)),
        Route("/alerts", api(alerts)),
        Route("/silences", api(silence_list), methods=["GET"]),
        Route("/silences", api(silence_add, write=True), methods=["POST"]),
        Route("/silences/{silence_id:int}", api(silence_lift, write=True), methods=["DELETE"]),
        Route("/audit", api(audit)),
    ]
