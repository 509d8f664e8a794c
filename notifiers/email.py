"""Email over SMTP: STARTTLS (587), implicit TLS (465) or plain for a local relay, with AUTH."""

from __future__ import annotations

import smtplib
import socket
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Literal

from pydantic import Field

from notifiers import (
    DeliveryError,
    EmailAddress,
    Message,
    Notifier,
    Recipients,
    Route,
    is_email_address,
    register,
    safe_name,
)
from reports.config.base import HeraldModel
from reports.logs import remember


class EmailTarget(HeraldModel):
    to: Recipients = Field(
        description="Addresses, or `owner` for each entity's owner (with the report scoped to them)."
    )
    subject: str | None = Field(
        None,
        description="A Jinja template (`{{ report.title }}`, `{{ period.start }}`); the title when unset.",
    )


class EmailDelivery(HeraldModel):
    email: EmailTarget


class EmailSettings(HeraldModel):
    host: str = Field(description="SMTP server.")
    port: int = Field(
        587, ge=1, le=65535, description="587 for STARTTLS, 465 for implicit TLS, 25 for a local relay."
    )
    security: Literal["starttls", "tls", "none"] = Field(
        "starttls", description="How the connection is secured."
    )
    username: str | None = Field(None, description="AUTH user; no AUTH when unset.")
    password: str | None = Field(None, description="AUTH password, from the environment: `${SMTP_PASSWORD}`.")
    sender: EmailAddress = Field(alias="from", description="The From address.")
    reply_to: EmailAddress | None = Field(None, description="Where replies go.")
    timeout: float = Field(30, gt=0, le=600, description="Seconds to wait for the server.")
    ca_file: Path | None = Field(None, description="CA bundle to verify the server's certificate against.")
    max_attachment_mb: float = Field(
        10, gt=0, le=100, description="Larger files are linked from the archive instead."
    )


def build_mime(message: Message, sender: str, to: str, reply_to: str | None = None) -> EmailMessage:
    """mixed[alternative[text, related[html, inline images]], attachments]."""
    mail = EmailMessage()
    mail["Subject"] = message.subject
    mail["From"] = sender
    mail["To"] = to
    if reply_to:
        mail["Reply-To"] = reply_to
    mail["Date"] = formatdate(localtime=True)
    mail["Message-ID"] = make_msgid(domain=sender.rsplit("@", 1)[-1])
    mail.set_content(message.text)
    if message.html is not None:
        mail.add_alternative(message.html, subtype="html")
        html = mail.get_payload()[-1]
        for cid, png in message.inline.items():
            html.add_related(
                png, "image", "png", cid=f"<{cid}>", filename=f"{cid.split('@')[0]}.png", disposition="inline"
            )
    for attachment in message.attachments:
        maintype, subtype = attachment.media_type.split("/", 1)
        mail.add_attachment(attachment.data, maintype=maintype, subtype=subtype, filename=attachment.name)
    return mail


@register
class EmailNotifier(Notifier):
    name = "email"
    delivery = EmailDelivery
    settings = EmailSettings
    shows = frozenset({"headline"})  # the body's one chart: the first KPI's trend

    def __init__(self, settings: EmailSettings) -> None:
        self.config = settings
        remember(settings.password)

    @classmethod
    def routes(cls, entry: EmailTarget) -> list[Route]:
        if entry.to == "owner":
            return [Route(owner=True, subject=entry.subject)]
        return [Route(address, address, subject=entry.subject) for address in entry.to]

    @classmethod
    def accepts(cls, address: str) -> bool:
        return is_email_address(address)

    @classmethod
    def as_files(cls, message: Message, address: str, settings: EmailSettings | None) -> dict[str, bytes]:
        sender = settings.sender if settings else "herald@localhost"
        reply_to = settings.reply_to if settings else None
        return {f"email-{safe_name(address)}.eml": build_mime(message, sender, address, reply_to).as_bytes()}

    def _context(self) -> ssl.SSLContext:
        cafile = str(self.config.ca_file) if self.config.ca_file else None
        return ssl.create_default_context(cafile=cafile)

    def _connect(self) -> smtplib.SMTP:
        c = self.config
        if c.security == "tls":
            server: smtplib.SMTP = smtplib.SMTP_SSL(
                c.host, c.port, timeout=c.timeout, context=self._context()
            )
        else:
            server = smtplib.SMTP(c.host, c.port, timeout=c.timeout)
            if c.security == "starttls":
                server.starttls(context=self._context())
        if c.username:
            server.login(c.username, c.password or "")
        return server

    def send(self, message: Message, address: str) -> str:
        mail = build_mime(message, self.config.sender, address, self.config.reply_to)
        where = f"{self.config.host}:{self.config.port}"
        try:
            server = self._connect()
            try:
                server.send_message(mail, to_addrs=[address])
            finally:
                try:
                    server.quit()
                except smtplib.SMTPException:
                    server.close()
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(
                f"SMTP server {where} refused the login ({exc.smtp_code})",
                "check the username and the password's environment variable",
                transient=False,
            ) from None
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            raise DeliveryError(
                f"SMTP server {where} refused {address}: {code} {_text(text)}",
                "check the address",
                transient=400 <= code < 500,
            ) from None
        except smtplib.SMTPResponseException as exc:
            raise DeliveryError(
                f"SMTP server {where} answered {exc.smtp_code} {_text(exc.smtp_error)}",
                "the server will be asked again"
                if exc.smtp_code < 500
                else "check the message and the server's limits",
                transient=400 <= exc.smtp_code < 500,
            ) from None
        except smtplib.SMTPNotSupportedError as exc:
            raise DeliveryError(
                f"SMTP server {where} does not offer what Herald asked for: {exc}",
                "check `security` (starttls, tls, none) and whether the server takes AUTH",
                transient=False,
            ) from None
        except ssl.SSLError as exc:
            raise DeliveryError(
                f"TLS with {where} failed: {exc.reason}",
                "check `security`, `port` and `ca_file`",
                transient=False,
            ) from None
        except (OSError, smtplib.SMTPException) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
            if isinstance(exc, socket.timeout):
                reason = "timed out"
            raise DeliveryError(
                f"cannot reach SMTP server {where}: {reason}",
                "check host and port",
                transient=True,
            ) from None
        return str(mail["Message-ID"])


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
