"""The outbox: deliveries written as files instead of sent. The default without credentials, and
what `--dry-run` uses, so every delivery can be seen without a network."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from notifiers import Message, Notifier, Route, register, safe_name
from notifiers.email import build_mime
from reports.config.base import HeraldModel


class OutboxTarget(HeraldModel):
    path: Path | None = Field(None, description="A folder for these files; the run's outbox when unset.")


class OutboxDelivery(HeraldModel):
    outbox: OutboxTarget


@register
class OutboxNotifier(Notifier):
    """Writes what a channel would have sent (each channel's own `as_files`): `.eml` for email,
    the API payload for Slack; its own `deliver: - outbox:` entries file the report and its email."""

    name = "outbox"
    delivery = OutboxDelivery

    def __init__(
        self,
        folder: Path,
        stands_in_for: type[Notifier] | None = None,
        settings: Any = None,
        base_dir: Path = Path(),
    ) -> None:
        self.folder = folder
        self.stands_in_for = stands_in_for or OutboxNotifier
        self.settings = settings
        self.base_dir = base_dir  # where a relative `path:` of an outbox entry starts

    @classmethod
    def routes(cls, entry: OutboxTarget) -> list[Route]:
        return [Route(str(entry.path or "outbox"), str(entry.path) if entry.path else "")]

    @classmethod
    def as_files(cls, message: Message, address: str, settings: Any) -> dict[str, bytes]:
        mime = build_mime(message, "herald@localhost", "herald@localhost")
        return {f"{safe_name(message.subject)}.eml": mime.as_bytes()} | {
            a.name: a.data for a in message.attachments
        }

    def send(self, message: Message, address: str) -> str:
        folder = self.folder
        if self.stands_in_for is OutboxNotifier and address:
            folder = Path(address) if Path(address).is_absolute() else self.base_dir / address
        folder.mkdir(parents=True, exist_ok=True)
        files = self.stands_in_for.as_files(message, address, self.settings)
        for name, data in files.items():
            (folder / name).write_bytes(data)
        return f"outbox:{folder / next(iter(files))}"
