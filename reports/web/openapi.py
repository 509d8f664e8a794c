"""The OpenAPI 3.1 document of `/api/v1`, written out by hand: the field names are a promise to
clients (README, "Archive"), so each is stated here once and the tests check every answer
against it."""

from __future__ import annotations

from typing import Any

S, N, INT, B = {"type": "string"}, {"type": ["string", "null"]}, {"type": "integer"}, {"type": "boolean"}
NUM = {"type": ["number", "null"]}
NI = {"type": ["integer", "null"]}


def _object(**properties: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": sorted(properties),
        "additionalProperties": False,
    }


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _page(item: str) -> dict[str, Any]:
    return _object(items={"type": "array", "items": _ref(item)}, next_cursor=N)


DELIVERY = _object(id=INT, channel=S, recipient=S, status=S, attempts=INT, error=N, updated_at=S)
RUN = _object(
    id=INT,
    job=S,
    scheduled_for=N,
    as_of=S,
    started_at=S,
    finished_at=N,
    status={"type": "string", "enum": ["running", "ok", "failed", "missed"]},
    findings=NI,
    error=N,
    deliveries={"type": "array", "items": _ref("Delivery")},
)
JOB = _object(
    job=S,
    title=S,
    role=S,
    schedule=S,
    timezone=S,
    next_run=S,
    formats={"type": "array", "items": S},
    last_run={"oneOf": [_ref("Run"), {"type": "null"}]},
)
OUTPUT = _object(
    id=INT,
    run_id=INT,
    job=N,
    as_of=N,
    recipient=N,
    name=S,
    media_type=S,
    size=NI,
    created=S,
    pruned=N,
    download_url=S,
    view_url=S,
)
FINDING = {
    "type": "object",
    "properties": {
        "rule": S,
        "severity": S,
        "kpi": S,
        "entity": S,
        "entity_name": S,
        "value": NUM,
        "reference": NUM,
        "threshold": NUM,
        "unit": S,
        "message": S,
        "as_of": S,
        "owner": S,
        "action": S,
        "why": S,
        "status": S,
        "since": N,
        "news": B,
        "alert_id": NI,
    },
    "required": ["rule", "severity", "kpi", "entity", "entity_name", "value", "message", "as_of"],
}
ALERT = _object(
    id=INT,
    job=S,
    rule=S,
    entity=S,
    entity_name=S,
    owner=S,
    severity=S,
    message=S,
    state={"type": "string", "enum": ["pending", "firing", "resolved"]},
    since=N,
    last_seen=S,
    notified=N,
    resolved=N,
    silenced_by=NI,
    may_silence=B,
    group={"type": "string", "enum": ["firing", "pending", "silenced", "resolved"]},
)
SILENCE = _object(id=INT, rule=S, entity=N, starts=S, ends=S, reason=S, created=S, may_lift=B)
NEW_SILENCE = {
    "type": "object",
    "properties": {"rule": S, "entity": N, "ends": S, "reason": S},
    "required": ["rule", "ends", "reason"],
    "additionalProperties": False,
}
AUDIT = _object(id=INT, at=S, who=S, action=S, target=S, detail=N, client=N)
ME = _object(who=S, operator=B, jobs={"type": "array", "items": S})
ERROR = _object(error=S)

SCHEMAS = {
    "Delivery": DELIVERY,
    "Run": RUN,
    "Job": JOB,
    "Output": OUTPUT,
    "Finding": FINDING,
    "Alert": ALERT,
    "Silence": SILENCE,
    "NewSilence": NEW_SILENCE,
    "AuditEntry": AUDIT,
    "Me": ME,
    "Error": ERROR,
    "JobPage": _page("Job"),
    "RunPage": _page("Run"),
    "OutputPage": _page("Output"),
    "FindingPage": _page("Finding"),
    "AlertPage": _page("Alert"),
    "SilencePage": _page("Silence"),
    "AuditPage": _page("AuditEntry"),
}

PAGING = [
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200}},
    {"name": "cursor", "in": "query", "schema": S, "description": "`next_cursor` of the page before"},
]


def _param(name: str, where: str = "path", schema: dict | None = None, text: str = "") -> dict[str, Any]:
    found = {"name": name, "in": where, "schema": schema or (INT if where == "path" else S)}
    if where == "path":
        found["required"] = True
    if text:
        found["description"] = text
    return found


def _json(schema: str, text: str) -> dict[str, Any]:
    return {"description": text, "content": {"application/json": {"schema": _ref(schema)}}}


def _get(summary: str, schema: str, params: list | None = None, paged: bool = False) -> dict[str, Any]:
    responses = {"200": _json(schema, summary), "401": _json("Error", "not signed in")}
    if any(p["in"] == "path" for p in params or []):
        responses["404"] = _json("Error", "no such thing, or not yours to see")
    return {
        "get": {
            "summary": summary,
            "parameters": (params or []) + (PAGING if paged else []),
            "responses": responses,
        }
    }


RUN_FILTERS = [
    _param("job", "query", text="only this job"),
    _param("entity", "query", text="runs about this entity: its id, or part of its name"),
    _param("from", "query", {"type": "string", "format": "date"}, "as-of dates from"),
    _param("to", "query", {"type": "string", "format": "date"}, "as-of dates to"),
    _param("status", "query", {"type": "string", "enum": ["running", "ok", "failed", "missed"]}),
]


def document(root: str = "") -> dict[str, Any]:
    run_id, output_id = [_param("run_id")], [_param("output_id")]
    paths: dict[str, Any] = {
        "/me": _get("Who the token or session is for", "Me"),
        "/jobs": _get("Jobs you may see, with the next and the last run", "JobPage", paged=True),
        "/jobs/{job}": _get("One job", "Job", [_param("job", schema=S)]),
        "/runs": _get("Runs, newest first", "RunPage", RUN_FILTERS, paged=True),
        "/runs/{run_id}": _get("One run and its deliveries", "Run", run_id),
        "/runs/{run_id}/outputs": _get("The files of a run made for you", "OutputPage", run_id, paged=True),
        "/runs/{run_id}/findings": _get(
            "The findings of a run you may see", "FindingPage", run_id, paged=True
        ),
        "/outputs/{output_id}": _get("One output's details", "Output", output_id),
        "/outputs/{output_id}/content": {
            "get": {
                "summary": "Download an output (its own media type, with Content-Disposition)",
                "parameters": output_id,
                "responses": {
                    "200": {
                        "description": "the file",
                        "content": {
                            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
                        },
                    },
                    "401": _json("Error", "not signed in"),
                    "404": _json("Error", "no such output, or not yours"),
                    "410": _json("Error", "deleted by retention"),
                },
            }
        },
        "/alerts": _get(
            "Alerts: firing, pending, silenced, and resolved in the last week",
            "AlertPage",
            [
                _param("job", "query"),
                _param(
                    "state",
                    "query",
                    {"type": "string", "enum": ["firing", "pending", "silenced", "resolved"]},
                ),
            ],
            paged=True,
        ),
        "/silences": {
            **_get("Silences in force", "SilencePage", paged=True),
            "post": {
                "summary": "Silence a rule (for one entity, or all) until a time; Bearer token only",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("NewSilence")}},
                },
                "responses": {
                    "201": _json("Silence", "the silence made"),
                    "400": _json("Error", "a bad end time or reason"),
                    "401": _json("Error", "no API token"),
                    "404": _json("Error", "no such rule, or not an alert of yours"),
                },
            },
        },
        "/silences/{silence_id}": {
            "delete": {
                "summary": "Lift a silence; Bearer token only",
                "parameters": [_param("silence_id")],
                "responses": {
                    "204": {"description": "lifted"},
                    "401": _json("Error", "no API token"),
                    "404": _json("Error", "no such silence, or not yours"),
                },
            }
        },
        "/audit": _get(
            "The audit log, newest first (operators)",
            "AuditPage",
            [_param("action", "query"), _param("who", "query")],
            paged=True,
        ),
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Herald archive",
            "version": "1",
            "description": "Reports, runs, findings and alerts, each reader seeing only their own. "
            "Sign in with the personal link in a Herald message, or send `Authorization: Bearer <token>` "
            "(make one on the account page, or `run.py web --token ADDRESS`).",
        },
        "servers": [{"url": f"{root}/api/v1"}],
        "security": [{"bearer": []}, {"session": []}],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": "herald_session"},
            },
        },
    }
