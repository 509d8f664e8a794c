"""Delivery channels behind one small interface, registered by name.

A notifier takes finished bytes and addresses; it knows no warehouse, KPI or template.
Each channel module registers the typed config of its `deliver:` entries here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, PlainValidator, WithJsonSchema

from reports.model_base import fail, one_key_union

_CHANNELS: dict[str, type[BaseModel]] = {}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def register_channel(name: str) -> Callable[[type[BaseModel]], type[BaseModel]]:
    def add(model: type[BaseModel]) -> type[BaseModel]:
        _CHANNELS[name] = model
        return model

    return add


def channel_names() -> list[str]:
    return list(_CHANNELS)


def delivery_type() -> Any:
    """The pydantic type of one `deliver:` entry, e.g. `- email: {to: [...]}`."""
    return one_key_union(_CHANNELS, "a delivery")


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

from notifiers import email, outbox, slack  # noqa: E402, F401 — built-in channels register on import
