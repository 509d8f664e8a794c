"""Slack delivery: the `deliver: - slack:` entry."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from notifiers import register_channel
from reports.model_base import HeraldModel, fail


class SlackTarget(HeraldModel):
    channel: str | None = Field(None, description="A channel name (`#cs-alerts`) or ID.")
    to: Literal["owner"] | None = Field(None, description="`owner`: a DM to each entity's owner.")

    @model_validator(mode="after")
    def _one_target(self) -> SlackTarget:
        if (self.channel is None) == (self.to is None):
            raise fail("a Slack delivery needs either `channel` or `to: owner`", "set exactly one of them")
        return self


@register_channel("slack")
class SlackDelivery(HeraldModel):
    slack: SlackTarget
