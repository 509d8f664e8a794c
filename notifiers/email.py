"""Email delivery: the `deliver: - email:` entry."""

from __future__ import annotations

from pydantic import Field

from notifiers import EmailAddress, Recipients, register_channel
from reports.model_base import HeraldModel


class EmailTarget(HeraldModel):
    to: Recipients = Field(
        description="Addresses, or `owner` for each entity's owner (with the report scoped to them)."
    )
    cc: list[EmailAddress] = Field(default_factory=list, description="Copied on every message.")
    subject: str | None = Field(None, description="A Jinja template; the report's title when unset.")


@register_channel("email")
class EmailDelivery(HeraldModel):
    email: EmailTarget
