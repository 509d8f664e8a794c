"""Delivery channels behind one small interface, registered by name.

A notifier takes a finished message (text, HTML, images, files, Slack blocks) and an address;
it knows no warehouse, KPI or template. Each channel module defines the typed config of its
`deliver:` entries, its connection settings under `channels:`, and its notifier class.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, PlainValidator, WithJsonSchema

from reports.config.base import fail, one_key_union
from reports.errors import HeraldError

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True)
class Attachment:
    name: str
    data: bytes
    media_type: str


@dataclass
class Message:
    """Everything any channel may need; each uses what suits it."""

    subject: str
    text: str
    html: str | None = None
    inline: dict[str, bytes] = field(default_factory=dict)  # Content-ID → PNG, for the HTML
    attachments: list[Attachment] = field(default_factory=list)
    blocks: list[dict[str, Any]] | None = None  # Slack Block Kit


class DeliveryError(HeraldError):
    """A delivery failed; `transient` ones are worth retrying."""

    def __init__(self, message: str, hint: str = "", *, transient: bool) -> None:
        super().__init__(message, hint)
        self.transient = transient


class Notifier(ABC):
    """Sends messages over one channel. Registered by `name`; built from its `settings` model."""

    name: ClassVar[str]
    delivery: ClassVar[type[BaseModel]]  # a `deliver:` entry, e.g. `- email: {to: [...]}`
    settings: ClassVar[type[BaseModel] | None] = None  # connection settings under `channels:`

    @abstractmethod
    def send(self, message: Message, address: str) -> str:
        """Deliver `message` to `address`; return the provider's id for it (Message-ID, Slack ts)."""

    def close(self) -> None:  # noqa: B027 — most channels hold nothing open
        """Release connections."""


_NOTIFIERS: dict[str, type[Notifier]] = {}


def register(cls: type[Notifier]) -> type[Notifier]:
    _NOTIFIERS[cls.name] = cls
    return cls


def notifier_types() -> dict[str, type[Notifier]]:
    return dict(_NOTIFIERS)


def delivery_type() -> Any:
    """The pydantic type of one `deliver:` entry, e.g. `- email: {to: [...]}`."""
    return one_key_union({name: cls.delivery for name, cls in _NOTIFIERS.items()}, "a delivery")


def _email_address(value: str) -> str:
    if not _EMAIL.match(value):
        raise fail(f"'{value}' is not an email address", "write it as name@example.com")
    return value


def _recipients(value: Any) -> list[str] | str:
    if value == "owner":
        return value
    addresses = [value] if isinstance(value, str) else value
    if not isinstance(addresses, list) or not addresses:
        raise fail("`to` must be `owner` or a list of email addresses", "write to: [ceo@example.com]")
    return [_email_address(str(address)) for address in addresses]


EmailAddress = Annotated[str, AfterValidator(_email_address)]
Recipients = Annotated[
    list[str] | str,
    PlainValidator(_recipients),
    WithJsonSchema({"anyOf": [{"const": "owner"}, {"type": "array", "items": {"type": "string"}}]}),
]

import notifiers.email  # noqa: E402
import notifiers.outbox  # noqa: E402
import notifiers.slack  # noqa: E402, F401 — built-in channels register on import
