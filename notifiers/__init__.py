"""Delivery channels behind one small interface, registered by name.

A notifier takes a finished message (text, HTML, images, files, Slack blocks) and an address;
it knows no warehouse, KPI or template. Each channel module defines the typed config of its
`deliver:` entries, its connection settings under `channels:`, and its notifier class, which
says where an entry sends (`routes`), builds itself from its settings (`connect`), and shows
what it would send as files (`as_files`, which the outbox uses for dry runs). Adding a channel
is one module that calls `register`.
"""

from __future__ import annotations

import base64
import json
import re
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, PlainValidator, WithJsonSchema

from reports.config.base import fail, one_key_union
from reports.errors import HeraldError
from reports.registry import Registry

# One address, nothing else: no display name, no list, no CR/LF (a header injection).
_EMAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})+")


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
    summary: str | None = None  # a one-line notification text (Slack's fallback); the subject when unset
    thread_ts: str | None = None  # Slack: post as a reply in this message's thread

    def to_json(self) -> bytes:
        """The whole message as JSON (binary parts in base64), kept on disk before its first try."""
        data = asdict(self)
        data["inline"] = {cid: _b64(png) for cid, png in self.inline.items()}
        data["attachments"] = [a.__dict__ | {"data": _b64(a.data)} for a in self.attachments]
        return json.dumps(data, ensure_ascii=False).encode("utf-8")

    @classmethod
    def from_json(cls, raw: bytes) -> Message:
        data = json.loads(raw)
        data["inline"] = {cid: base64.b64decode(png) for cid, png in data["inline"].items()}
        data["attachments"] = [
            Attachment(a["name"], base64.b64decode(a["data"]), a["media_type"]) for a in data["attachments"]
        ]
        return cls(**data)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@dataclass(frozen=True)
class Route:
    """Where one `deliver:` entry sends: a fixed address, or each recipient's own (`owner`)."""

    label: str = ""  # what the delivery log shows; never a secret
    address: str = ""  # what `send` gets
    owner: bool = False  # send each scoped recipient their own report, to their address for this channel
    subject: str | None = None  # a Jinja template for the subject, where the channel has one


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
    shows: ClassVar[frozenset[str]] = frozenset()  # report sections its message may show

    @classmethod
    def connect(cls, settings: Any) -> Notifier | None:
        """The channel ready to send, or None when `settings` do not allow it (the outbox stands in)."""
        return None if settings is None else cls(settings)  # type: ignore[call-arg]

    @classmethod
    @abstractmethod
    def routes(cls, entry: Any) -> list[Route]:
        """Where a `deliver:` entry of this channel (the mapping under its key) sends."""

    @classmethod
    def accepts(cls, address: str) -> bool:
        """Whether `address` is one of this channel's (used to tell job owners of failures)."""
        return False

    @classmethod
    @abstractmethod
    def as_files(cls, message: Message, address: str, settings: Any) -> dict[str, bytes]:
        """What would be sent, as files named by suffix (`.eml`, `.json`, `-report.pdf`)."""

    @abstractmethod
    def send(self, message: Message, address: str) -> str:
        """Deliver `message` to `address`; return the provider's id for it (Message-ID, Slack ts)."""

    def close(self) -> None:  # noqa: B027 — most channels hold nothing open
        """Release connections."""


NOTIFIERS: Registry[type[Notifier]] = Registry("channel", lambda cls: cls.name)
register = NOTIFIERS.register  # class decorator: a channel `deliver:` entries can name


def notifier_types() -> dict[str, type[Notifier]]:
    return NOTIFIERS.as_dict()


def delivery_type() -> Any:
    """The pydantic type of one `deliver:` entry, e.g. `- email: {to: [...]}`."""
    return one_key_union({name: cls.delivery for name, cls in NOTIFIERS.items()}, "a delivery")


def safe_name(text: str) -> str:
    """A file name from an address or subject: letters, digits and -_.@ only."""
    name = "".join(c if c.isalnum() or c in "-_.@" else "-" for c in text)
    return re.sub(r"-{2,}", "-", name).strip("-.") or "recipient"


def is_email_address(value: str) -> bool:
    return bool(_EMAIL.fullmatch(value))


def _email_address(value: str) -> str:
    if not _EMAIL.fullmatch(value):
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
