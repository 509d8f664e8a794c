"""`run.py web`: the archive as one ASGI app (Starlette under uvicorn): pages and `/api/v1`
answered from the same queries, every response with headers that keep a browser from running
or framing anything it should not."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reports.archive import tokens
from reports.config.load import load_config
from reports.config.models import HeraldConfig
from reports.errors import HeraldError
from reports.store import Store
from reports.store.archive import Archive

log = logging.getLogger("herald.web")
PAGE_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
MAX_BODY = 64 * 1024  # a form or a silence is a few hundred bytes


class Herald:
    """What every request shares: the config (read again when its file changes), the store, the
    out/ folder files are served from, and the signing secret."""

    def __init__(self, config_path: Path, out: Path, secret: str) -> None:
        self.config_path, self.out, self.secret = config_path, out.resolve(), secret
        self._config: HeraldConfig = load_config(config_path)
        self._stamp = _mtime(config_path)
        self.store = Store(self._config.path(self._config.store))
        self.archive = Archive(self.store)
        from reports.alerts.book import AlertBook

        AlertBook(self.store)  # its tables, so a fresh store reads as empty rather than failing

    def config(self) -> HeraldConfig:
        stamp = _mtime(self.config_path)
        if stamp != self._stamp:
            try:
                self._config = load_config(self.config_path)
                log.info("config reloaded")
            except HeraldError as exc:  # a broken edit: keep serving with the last good one
                log.error("config not reloaded: %s", exc)
            self._stamp = stamp
        return self._config


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


class Guard:
    """Headers on every response, and one access-log line without the query string (a sign-in
    link's token is a credential: it never reaches a log)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.monotonic(), [0]

        async def send_guarded(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                extra = {
                    b"x-content-type-options": b"nosniff",
                    b"referrer-policy": b"no-referrer",
                    b"x-frame-options": b"DENY",
                    b"content-security-policy": PAGE_CSP.encode(),
                    b"cache-control": b"private, no-store",
                }
                headers += [(name, value) for name, value in extra.items() if name not in names]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_guarded)
        finally:
            log.info(
                "%s %s %s %.0f ms",
                scope["method"],
                scope.get("root_path", "") + scope["path"],
                status[0] or 500,
                (time.monotonic() - started) * 1000,
            )


def make_app(config_path: Path, out: Path, secret: str | None = None) -> Starlette:
    """The archive's ASGI app for the config at `config_path`, serving files under `out`."""
    from reports.web.api import openapi
    from reports.web.api import routes as api_routes
    from reports.web.pages import errors
    from reports.web.pages import routes as page_routes

    herald = Herald(config_path, out, secret or tokens.secret(required=True) or "")
    app = Starlette(
        routes=[Mount("/api/v1", routes=api_routes()), Route("/openapi.json", openapi), *page_routes()],
        middleware=[Middleware(Guard)],
        exception_handlers=errors(),
        max_body_size=MAX_BODY,
    )
    app.state.herald = herald
    return app
