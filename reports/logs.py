"""Logging that never prints a secret: Slack tokens, webhook URLs, credentials in URLs, and the
passwords and tokens Herald was configured with are masked in every record, whichever library
logged it (slack_sdk logs request URLs under -v)."""

from __future__ import annotations

import logging
import re
import traceback

_PATTERNS = [
    re.compile(r"xox[abposr]-[A-Za-z0-9-]+"),  # Slack tokens
    re.compile(r"https://hooks\.slack(?:-gov)?\.com/[^\s'\"]+"),  # Slack webhook URLs
    re.compile(r"(?<=://)[^/\s:@'\"]+:[^/\s@'\"]+(?=@)"),  # user:password@ in a URL
]
_SECRETS: set[str] = set()


def remember(secret: str | None) -> None:
    """A configured secret (a password, a token, a webhook URL) to mask wherever it appears."""
    if secret and len(secret) >= 6:
        _SECRETS.add(secret)


def redact(text: str) -> str:
    for secret in sorted(_SECRETS, key=len, reverse=True):
        text = text.replace(secret, "[secret]")
    for pattern in _PATTERNS:
        text = pattern.sub("[secret]", text)
    return text


class Redact(logging.Filter):
    """Masks secrets in a record's message and traceback before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact(record.getMessage()), None
        if record.exc_info:
            record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)).rstrip())
            record.exc_info = None
        return True


def guard(handler: logging.Handler) -> logging.Handler:
    handler.addFilter(Redact())
    return handler
