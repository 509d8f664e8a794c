"""Signed, expiring tokens: the personal links in messages, API tokens and the session cookie.

A token is `h1.<payload>.<signature>`: the payload is JSON (base64url), the signature its
HMAC-SHA256 under a key derived from HERALD_WEB_SECRET for the token's purpose, so a session
cookie is never accepted as an API token nor a link as a cookie. Nothing is stored: rotating
the secret ends every link, token and session at once. The secret is never logged or shown.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from reports.errors import UsageError
from reports.logs import remember

if TYPE_CHECKING:
    from reports.config.models import HeraldConfig

SECRET_ENV = "HERALD_WEB_SECRET"
MIN_SECRET = 32  # characters: `python -c "import secrets; print(secrets.token_urlsafe(32))"` gives 43
PURPOSES = ("link", "api", "session")
MAX_TOKEN = 4096
DAY = 86400


def secret(required: bool = False) -> str | None:
    """The signing secret from the environment; None when unset (links stay plain)."""
    value = os.environ.get(SECRET_ENV, "")
    if len(value) >= MIN_SECRET:
        remember(value)
        return value
    if required:
        said = "is not set" if not value else f"is shorter than {MIN_SECRET} characters"
        raise UsageError(
            f"{SECRET_ENV} {said}: the archive signs its links and sessions with it",
            f'export {SECRET_ENV}="$(python -c "import secrets; print(secrets.token_urlsafe(32))")"',
        )
    return None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _key(key: str, purpose: str) -> bytes:
    return hmac.new(key.encode(), f"herald-web:{purpose}".encode(), hashlib.sha256).digest()


def sign(key: str, purpose: str, claims: dict[str, Any], seconds: float, now: float | None = None) -> str:
    """A token for `purpose` carrying `claims`, valid for `seconds`."""
    assert purpose in PURPOSES
    payload = {**claims, "p": purpose, "exp": int((now or time.time()) + seconds)}
    body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
    mac = hmac.new(_key(key, purpose), body.encode(), hashlib.sha256).digest()
    return f"h1.{body}.{_b64(mac)}"


def verify(key: str, purpose: str, token: str | None, now: float | None = None) -> dict[str, Any] | None:
    """The claims of a genuine, unexpired token for `purpose`; None for anything else."""
    if not token or len(token) > MAX_TOKEN or token.count(".") != 2:
        return None
    version, body, mac = token.split(".")
    if version != "h1":
        return None
    expected = hmac.new(_key(key, purpose), body.encode(), hashlib.sha256).digest()
    try:
        if not hmac.compare_digest(expected, _unb64(mac)):
            return None
        claims = json.loads(_unb64(body))
    except (ValueError, TypeError):
        return None
    if not isinstance(claims, dict) or claims.get("p") != purpose:
        return None
    expires = claims.get("exp")
    if not isinstance(expires, int) or expires <= (now or time.time()):
        return None
    return claims


def sign_in_link(
    config: HeraldConfig, key: str, who: str, go: dict[str, str] | None = None, days: int | None = None
) -> str:
    """A personal link under `archive_url` that signs `who` in (and opens `go`, an output)."""
    claims: dict[str, Any] = {"sub": who}
    if go:
        claims["go"] = go
    token = sign(key, "link", claims, DAY * (days or config.web.link_days))
    base = (config.archive_url or "http://127.0.0.1:8080").rstrip("/")
    return f"{base}/signin?t={quote(token)}"


def output_link(config: HeraldConfig, path: Path) -> str | None:
    """The signed link a message carries to the archived output `path`, written under
    OUT/JOB/AS_OF/[FOLDER/]NAME; None without `archive_url` and the secret, or for a file
    outside a job's folder. The link is for the report's recipient: a scoped report's folder
    names them (the archive resolves it to their address when the link is opened); everyone's
    report is for the job's one fixed recipient, or for its fixed recipients as a group."""
    key = secret()
    if not key or not config.archive_url:
        return None
    parts = path.parts
    for depth in (3, 4):  # JOB/AS_OF/NAME or JOB/AS_OF/FOLDER/NAME
        if len(parts) < depth:
            continue
        job, as_of = parts[-depth], parts[-depth + 1]
        if job in config.reports and _is_date(as_of):
            folder = parts[-2] if depth == 4 else ""
            break
    else:
        return None
    go = {"job": job, "as_of": as_of, "folder": folder, "name": path.name}
    who = f"folder:{job}/{folder}" if folder else _fixed_recipient(config, job)
    return sign_in_link(config, key, who, go)


def _is_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _fixed_recipient(config: HeraldConfig, job: str) -> str:
    """Who everyone's report of `job` goes to: its one fixed address, or the group of them."""
    from reports.web.access import fixed_routes

    routes = fixed_routes(config, job)
    return next(iter(routes)) if len(routes) == 1 else f"job:{job}"
