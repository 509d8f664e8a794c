"""Outbox delivery: files on disk, the `deliver: - outbox:` entry."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from notifiers import register_channel
from reports.model_base import HeraldModel


class OutboxTarget(HeraldModel):
    path: Path = Field(Path("out/outbox"), description="The folder deliveries are written to.")


@register_channel("outbox")
class OutboxDelivery(HeraldModel):
    outbox: OutboxTarget
