"""Real servers on loopback for delivery tests: SMTP (aiosmtpd, STARTTLS or TLS, AUTH) and an HTTP
server speaking the Slack Web API methods Herald calls."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

SMTP_USER, SMTP_PASSWORD = "herald", "smtp-secret-7f3a"
SLACK_TOKEN = "xoxb-test-secret-91c2"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1, made now; it is also the CA the client trusts."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


@dataclass
class Mailbox:
    """What the SMTP server received, and the answers it gives to DATA, in order."""

    messages: list[tuple[list[str], bytes]] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)

    delay: float = 0.0  # seconds to take over each message, as a busy server would

    async def handle_DATA(self, server, session, envelope) -> str:
        if self.delay:
            await asyncio.sleep(self.delay)
        answer = self.answers.pop(0) if self.answers else "250 OK"
        if answer.startswith("250"):
            self.messages.append((list(envelope.rcpt_tos), envelope.original_content or envelope.content))
        return answer

    def authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        ok = auth_data.login == SMTP_USER.encode() and auth_data.password == SMTP_PASSWORD.encode()
        self.logins.append(auth_data.login.decode())
        return AuthResult(success=ok, handled=False)


def smtp_channel(port: int, cert: Path) -> dict:
    """config.yaml's `channels.email` for the test SMTP server (password from $SMTP_PASSWORD)."""
    return {
        "host": "127.0.0.1",
        "port": port,
        "username": SMTP_USER,
        "password": "${SMTP_PASSWORD}",
        "from": "herald@example.com",
        "ca_file": str(cert),
        "timeout": 5,
    }


@contextmanager
def smtp_server(folder: Path, implicit_tls: bool = False) -> Iterator[tuple[Mailbox, int, Path]]:
    cert, key = self_signed(folder)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    box, port = Mailbox(), free_port()
    # Over implicit TLS the whole session is encrypted; aiosmtpd only counts STARTTLS as TLS for AUTH.
    options = (
        {"ssl_context": context, "auth_require_tls": False}
        if implicit_tls
        else {"tls_context": context, "require_starttls": True}
    )
    controller = Controller(
        box, hostname="127.0.0.1", port=port, authenticator=box.authenticate, auth_required=True, **options
    )
    controller.start()
    try:
        yield box, port, cert
    finally:
        controller.stop()


@dataclass
class SlackWorkspace:
    """The fake Slack's state: channels, users, what arrived, and scripted failures."""

    channels: dict[str, str] = field(default_factory=lambda: {"cs-alerts": "C100", "private-team": "C200"})
    members: dict[str, str] = field(default_factory=dict)  # channel ID → whether the bot is in it
    users: dict[str, str] = field(
        default_factory=lambda: {
            "amara.okafor": "U1",
            "bruno.sato": "U2",
            "freya.shah": "U3",
            "hana.becker": "U4",
        }
    )
    posts: list[dict] = field(default_factory=list)
    uploads: dict[str, bytes] = field(default_factory=dict)
    completed: list[dict] = field(default_factory=list)
    webhook_posts: list[dict] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    rate_limit_next: int = 0  # answer this many chat.postMessage calls with 429
    outside: set[str] = field(default_factory=lambda: {"C200"})  # channels the bot was not invited to
    authorization: list[str] = field(default_factory=list)


def _handler(workspace: SlackWorkspace, base: list[str]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            return

        def _reply(self, status: int, body: dict | str, headers: dict | None = None) -> None:
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json" if isinstance(body, dict) else "text/plain")
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            path = self.path.split("?")[0]
            if path.startswith("/upload/"):
                workspace.uploads[path.rsplit("/", 1)[1]] = raw
                return self._reply(200, "OK")
            if path == "/webhook":
                workspace.webhook_posts.append(json.loads(raw))
                return self._reply(200, "ok")
            method = path.removeprefix("/api/")
            workspace.calls.append(method)
            if "json" in self.headers.get("Content-Type", ""):
                args = json.loads(raw or b"{}")
            else:
                args = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
            token = self.headers.get("Authorization", "").removeprefix("Bearer ")
            workspace.authorization.append(token)
            if token != SLACK_TOKEN:
                return self._reply(200, {"ok": False, "error": "invalid_auth"})
            if method == "conversations.list":
                channels = [{"id": i, "name": n} for n, i in workspace.channels.items()]
                return self._reply(
                    200, {"ok": True, "channels": channels, "response_metadata": {"next_cursor": ""}}
                )
            if method == "users.list":
                members = [
                    {"id": i, "name": n, "profile": {"display_name": n}} for n, i in workspace.users.items()
                ]
                return self._reply(
                    200, {"ok": True, "members": members, "response_metadata": {"next_cursor": ""}}
                )
            if method == "chat.postMessage":
                if workspace.rate_limit_next > 0:
                    workspace.rate_limit_next -= 1
                    return self._reply(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "1"})
                if args.get("channel") in workspace.outside:
                    return self._reply(200, {"ok": False, "error": "not_in_channel"})
                blocks = args.get("blocks")
                args["blocks"] = json.loads(blocks) if isinstance(blocks, str) else blocks
                workspace.posts.append(args)
                return self._reply(
                    200,
                    {"ok": True, "channel": args["channel"], "ts": f"1700000000.{len(workspace.posts):06d}"},
                )
            if method == "files.getUploadURLExternal":
                file_id = f"F{len(workspace.uploads) + len(workspace.completed) + 1:03d}"
                return self._reply(
                    200, {"ok": True, "upload_url": f"{base[0]}/upload/{file_id}", "file_id": file_id}
                )
            if method == "files.completeUploadExternal":
                files = json.loads(args["files"]) if isinstance(args["files"], str) else args["files"]
                workspace.completed.append({**args, "files": files})
                return self._reply(
                    200, {"ok": True, "files": [{"id": f["id"], "title": f.get("title")} for f in files]}
                )
            return self._reply(200, {"ok": False, "error": "unknown_method"})

    return Handler


@contextmanager
def slack_server() -> Iterator[tuple[SlackWorkspace, str]]:
    workspace, base = SlackWorkspace(), [""]
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(workspace, base))
    base[0] = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield workspace, base[0]
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def bigquery_billing_limits(dry_run_bytes: int) -> Iterator[str]:
    """A BigQuery endpoint whose dry runs estimate `dry_run_bytes` and whose real queries are refused
    for exceeding the bytes-billed cap: the emulator enforces no cap, so this stands in for it."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            return

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            reference = body.get("jobReference", {"projectId": "p", "jobId": "j"})
            if body.get("configuration", {}).get("dryRun"):
                answer, status = (
                    {
                        "kind": "bigquery#job",
                        "jobReference": reference,
                        "status": {"state": "DONE"},
                        "configuration": body["configuration"],
                        "statistics": {
                            "totalBytesProcessed": str(dry_run_bytes),
                            "query": {"totalBytesProcessed": str(dry_run_bytes)},
                        },
                    },
                    200,
                )
            else:
                message = "Query exceeded limit for bytes billed: 1000. 10485760 or higher required."
                answer = {
                    "error": {
                        "code": 400,
                        "message": message,
                        "status": "INVALID_ARGUMENT",
                        "errors": [{"reason": "bytesBilledLimitExceeded", "message": message}],
                    }
                }
                status = 400
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
