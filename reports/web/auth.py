"""Signing in: a personal link opens a session (a signed cookie, HttpOnly, SameSite=Lax); an API
client sends `Authorization: Bearer <token>`. Forms carry a CSRF token tied to the session."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from starlette.requests import Request

from reports.archive import tokens
from reports.web.access import Viewer, viewer_for

if TYPE_CHECKING:
    from reports.web.app import Herald

COOKIE = "herald_session"
HOUR = 3600


def base_path(request: Request) -> str:
    """Where the app is mounted (uvicorn's --root-path behind a proxy): links start here."""
    return str(request.scope.get("app_root_path", request.scope.get("root_path", "")))


def client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def current(request: Request) -> Viewer | None:
    """Who is asking: a Bearer API token, else the session cookie; None when neither is valid."""
    herald: Herald = request.app.state.herald
    key, config = herald.secret, herald.config()
    header = request.headers.get("authorization", "")
    if header[:7].lower() == "bearer ":
        claims = tokens.verify(key, "api", header[7:].strip())
        if claims is None or not isinstance(claims.get("sub"), str):
            return None
        viewer = viewer_for(config, claims["sub"])
        request.state.bearer = True
        return _with_handles(herald, viewer)
    claims = tokens.verify(key, "session", request.cookies.get(COOKIE))
    if claims is None or not isinstance(claims.get("sub"), str):
        return None
    request.state.session = claims
    return _with_handles(herald, viewer_for(config, claims["sub"]))


def _with_handles(herald: Herald, viewer: Viewer) -> Viewer:
    """A CS owner known by email also sees the Slack messages sent to them: their handle is the
    one runs recorded beside the reports made for that email. It shows deliveries, never files."""
    if viewer.operator or not viewer.addresses:
        return viewer
    marks = ",".join("?" * len(viewer.addresses))
    with herald.store.transaction(lock=False) as db:
        rows = db.execute(
            f"SELECT DISTINCT slack FROM outputs WHERE lower(email) IN ({marks}) AND slack IS NOT NULL",
            sorted(viewer.addresses),
        ).fetchall()
    handles = frozenset(str(slack).lower() for (slack,) in rows) - viewer.addresses
    return replace(viewer, handles=handles) if handles else viewer


def by_bearer(request: Request) -> bool:
    return bool(getattr(request.state, "bearer", False))


def session_cookie(herald: Herald, who: str) -> tuple[str, int]:
    """A new session for `who`: the cookie's value and lifetime in seconds."""
    seconds = herald.config().web.session_hours * HOUR
    nonce = base64.urlsafe_b64encode(secrets.token_bytes(16)).decode().rstrip("=")
    return tokens.sign(herald.secret, "session", {"sub": who, "n": nonce}, seconds), seconds


def csrf_token(request: Request) -> str:
    """The token a form of this session carries: a MAC of the session's nonce."""
    claims: dict[str, Any] = getattr(request.state, "session", {}) or {}
    herald: Herald = request.app.state.herald
    nonce = str(claims.get("n", ""))
    mac = hmac.new(herald.secret.encode(), f"herald-web:csrf:{nonce}".encode(), hashlib.sha256)
    return mac.hexdigest()


def csrf_ok(request: Request, sent: str | None) -> bool:
    if not getattr(request.state, "session", None) or not sent:
        return False
    origin = request.headers.get("origin")
    if origin and origin != "null" and origin.split("://", 1)[-1] != request.headers.get("host", ""):
        return False  # a form posted from another site
    return hmac.compare_digest(csrf_token(request), sent)


def resolve_subject(herald: Herald, who: str, go: Any = None) -> str:
    """A link naming a scoped report's folder signs in the recipient that folder is for, by
    their address, as recorded beside the report's files (of the run the link came from)."""
    if not who.startswith("folder:"):
        return who
    job, _, folder = who.removeprefix("folder:").partition("/")
    as_of = go.get("as_of") if isinstance(go, dict) else None
    query = (
        "SELECT o.email, o.slack FROM outputs o JOIN runs r ON r.id = o.run_id "
        "WHERE r.job = ? AND o.folder = ? AND o.folder <> ''"
    )
    with herald.store.transaction(lock=False) as db:
        row = None
        if isinstance(as_of, str):
            row = db.execute(
                query + " AND r.as_of = ? ORDER BY o.id DESC LIMIT 1", (job, folder, as_of)
            ).fetchone()
        row = row or db.execute(query + " ORDER BY o.id DESC LIMIT 1", (job, folder)).fetchone()
    if row is None:
        return who
    email, slack = row
    return email or slack or who


def link_target(herald: Herald, viewer: Viewer, go: Any) -> tuple[int, int] | None:
    """(run id, output id) of the output a link opens, if the reader may see it."""
    if not isinstance(go, dict) or not all(
        isinstance(go.get(k), str) for k in ("job", "as_of", "folder", "name")
    ):
        return None
    clause, params = viewer.output_clause()
    with herald.store.transaction(lock=False) as db:
        row = db.execute(
            "SELECT o.run_id, o.id FROM outputs o JOIN runs r ON r.id = o.run_id WHERE r.job = ? "
            f"AND r.as_of = ? AND o.folder = ? AND o.name = ? AND {clause} ORDER BY o.id DESC LIMIT 1",
            [go["job"], go["as_of"], go["folder"], go["name"], *params],
        ).fetchone()
    return (int(row[0]), int(row[1])) if row else None
