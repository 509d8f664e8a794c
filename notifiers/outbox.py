"""The outbox: deliveries written as files instead of sent. The default without credentials, and
what `--dry-run` uses, so every delivery can be seen without a network."""

from __future__ import annotations

import json
import re
from pathlib import Path

from pydantic import Field

from notifiers import Message, Notifier, register
from notifiers.email import build_mime
from reports.config.base import HeraldModel


class OutboxTarget(HeraldModel):
    path: Path | None = Field(None, description="A folder for these files; the run's outbox when unset.")


class OutboxDelivery(HeraldModel):
    outbox: OutboxTarget


def _safe(name: str) -> str:
    """A file name from an address or subject: letters, digits and -_.@ only."""
    text = "".join(c if c.isalnum() or c in "-_.@" else "-" for c in name)
    return re.sub(r"-{2,}", "-", text).strip("-.") or "recipient"


@register
class OutboxNotifier(Notifier):
    """Writes what a channel would have sent: `.eml` for email, the API payload for Slack."""

    name = "outbox"
    delivery = OutboxDelivery

    def __init__(self, folder: Path, stands_in_for: str = "outbox", sender: str = "herald@localhost") -> None:
        self.folder = folder
        self.stands_in_for = stands_in_for
        self.sender = sender

    def send(self, message: Message, address: str) -> str:
        if self.stands_in_for == "outbox":
            return self._archive(message, Path(address) if address else self.folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        stem = f"{self.stands_in_for}-{_safe(address)}"
        if self.stands_in_for == "slack":
            payload = {"channel": address, "text": message.subject, "blocks": message.blocks}
            path = self.folder / f"{stem}.json"
            path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
            for attachment in message.attachments:
                (self.folder / f"{stem}-{attachment.name}").write_bytes(attachment.data)
            return f"outbox:{path}"
        path = self.folder / f"{stem}.eml"
        path.write_bytes(build_mime(message, self.sender, address).as_bytes())
        return f"outbox:{path}"

    def _archive(self, message: Message, folder: Path) -> str:
        """A `deliver: - outbox:` entry: the report's files, and its email as .eml, in a folder."""
        folder.mkdir(parents=True, exist_ok=True)
        for attachment in message.attachments:
            (folder / attachment.name).write_bytes(attachment.data)
        path = folder / f"{_safe(message.subject)}.eml"
        path.write_bytes(build_mime(message, self.sender, self.sender).as_bytes())
        return f"outbox:{path}"
