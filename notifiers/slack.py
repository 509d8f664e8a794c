"""Slack: messages with Block Kit, files in the message's thread, and incoming webhooks.

Channel names and user handles are resolved to IDs once per run (uploads need IDs). Rate limits
are honoured through slack_sdk's retry handler (which waits for Retry-After), and Herald posts
at most one message a second to a channel.
"""

from __future__ import annotations

import json
import re
import threading
import time
from typing import Literal

from pydantic import Field, model_validator

from notifiers import DeliveryError, Message, Notifier, Route, register, safe_name
from reports.config.base import HeraldModel, fail
from reports.logs import remember

# Slack's error codes, in words, with the fix; anything not listed is reported as Slack gave it.
ERRORS = {
    "invalid_auth": ("Slack rejected the bot token (invalid_auth)", "check SLACK_BOT_TOKEN"),
    "not_authed": ("no Slack token was sent (not_authed)", "set channels.slack.token"),
    "token_revoked": ("the Slack token was revoked (token_revoked)", "issue a new bot token"),
    "account_inactive": ("the Slack app's account is inactive (account_inactive)", "reinstall the app"),
    "channel_not_found": (
        "Slack channel {target} was not found (channel_not_found)",
        "check the name; for a private channel, invite the bot first",
    ),
    "not_in_channel": (
        "the Herald bot is not in {target} (not_in_channel)",
        "invite it: type `/invite @Herald` in {target}",
    ),
    "is_archived": ("Slack channel {target} is archived (is_archived)", "deliver to another channel"),
    "msg_too_long": ("the message is too long for Slack (msg_too_long)", "send fewer findings per message"),
    "users_not_found": (
        "Slack user {target} was not found (users_not_found)",
        "check the owner's Slack handle",
    ),
}
TRANSIENT = {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}


class SlackTarget(HeraldModel):
    channel: str | None = Field(None, description="A channel name (`#cs-alerts`) or ID.")
    to: Literal["owner"] | None = Field(None, description="`owner`: a direct message to each entity's owner.")
    webhook: str | None = Field(
        None, description="An incoming-webhook URL (`${SLACK_WEBHOOK_URL}`); no files."
    )

    @model_validator(mode="after")
    def _one_target(self) -> SlackTarget:
        if sum(x is not None for x in (self.channel, self.to, self.webhook)) != 1:
            raise fail("a Slack delivery needs one of `channel`, `to: owner` or `webhook`", "set exactly one")
        return self


class SlackDelivery(HeraldModel):
    slack: SlackTarget


class SlackSettings(HeraldModel):
    token: str | None = Field(None, description="Bot token, from the environment: `${SLACK_BOT_TOKEN}`.")
    base_url: str = Field("https://slack.com/api/", description="The Web API's address.")
    timeout: float = Field(30, gt=0, le=600, description="Seconds to wait for Slack.")
    retries: int = Field(3, ge=0, le=10, description="Retries after a rate limit or a dropped connection.")
    min_interval: float = Field(1.0, ge=0, le=60, description="Seconds between two messages to one channel.")


@register
class SlackNotifier(Notifier):
    name = "slack"
    delivery = SlackDelivery
    settings = SlackSettings

    def __init__(self, settings: SlackSettings) -> None:
        # slack_sdk is loaded when a run posts to Slack: a job that only emails goes without it.
        from slack_sdk import WebClient
        from slack_sdk.http_retry.builtin_handlers import (
            ConnectionErrorRetryHandler,
            RateLimitErrorRetryHandler,
        )

        self.config = settings
        remember(settings.token)
        self.client = WebClient(
            token=settings.token, base_url=settings.base_url, timeout=int(settings.timeout)
        )
        self.client.retry_handlers.extend(
            [
                RateLimitErrorRetryHandler(max_retry_count=settings.retries),
                ConnectionErrorRetryHandler(max_retry_count=settings.retries),
            ]
        )
        self._ids: dict[str, str] = {}
        self._last_post: dict[str, float] = {}
        self._lock = threading.Lock()

    @classmethod
    def connect(cls, settings: SlackSettings | None) -> SlackNotifier | None:
        return cls(settings) if settings is not None and settings.token else None

    @classmethod
    def routes(cls, entry: SlackTarget) -> list[Route]:
        if entry.to == "owner":
            return [Route(owner=True)]
        if entry.channel:
            return [Route(entry.channel, entry.channel)]
        remember(entry.webhook)
        return [Route("webhook", entry.webhook or "")]  # the URL is a secret: never its label

    @classmethod
    def accepts(cls, address: str) -> bool:
        """A #channel or @handle, or a user or channel ID; never a URL (webhooks come only from config)."""
        return bool(_ADDRESS.fullmatch(address))

    @classmethod
    def as_files(cls, message: Message, address: str, settings: SlackSettings | None) -> dict[str, bytes]:
        if address.startswith(("https://", "http://")):
            address = "webhook"  # its URL is a secret: never in a file name or payload
        stem = f"slack-{safe_name(address)}"
        payload = {"channel": address, "text": message.summary or message.subject, "blocks": message.blocks}
        if message.thread_ts:
            payload["thread_ts"] = message.thread_ts
            stem += f"-thread-{safe_name(message.thread_ts)}"
        files = {f"{stem}.json": (json.dumps(payload, indent=2, ensure_ascii=False) + "\n").encode()}
        files.update({f"{stem}-{a.name}": a.data for a in message.attachments})
        return files

    def send(self, message: Message, address: str) -> str:
        from slack_sdk.errors import SlackApiError, SlackClientError

        if address.startswith(("https://", "http://")):
            return self._webhook(message, address)
        try:
            channel = self._resolve(address)
            self._pace(channel)
            response = self.client.chat_postMessage(
                channel=channel,
                text=message.summary or message.subject,
                blocks=message.blocks,
                thread_ts=message.thread_ts,
            )
            ts = str(response["ts"])
            for attachment in message.attachments:
                self.client.files_upload_v2(
                    channel=channel,
                    thread_ts=ts,
                    content=attachment.data,
                    filename=attachment.name,
                    title=attachment.name,
                )
            return ts
        except SlackApiError as exc:
            raise _api_error(exc.response.get("error", "unknown_error"), address) from None
        except (SlackClientError, OSError) as exc:
            raise DeliveryError(
                f"cannot reach Slack: {type(exc).__name__}", "check the network to slack.com", transient=True
            ) from None

    def _pace(self, channel: str) -> None:
        with self._lock:
            wait = self._last_post.get(channel, 0) + self.config.min_interval - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            self._last_post[channel] = time.monotonic()

    def _resolve(self, address: str) -> str:
        """`#name` → channel ID, `@handle` → user ID (a DM); IDs pass through. Cached per run."""
        if not address.startswith(("#", "@")):
            return address
        if address not in self._ids:
            finder = self._channel_ids if address.startswith("#") else self._user_ids
            self._ids.update(finder())
            if address not in self._ids:
                code = "channel_not_found" if address.startswith("#") else "users_not_found"
                raise _api_error(code, address)
        return self._ids[address]

    def _channel_ids(self) -> dict[str, str]:
        found = {}
        for page in self.client.conversations_list(
            types="public_channel,private_channel", limit=1000, exclude_archived=True
        ):
            found.update({f"#{c['name']}": c["id"] for c in page["channels"]})
        return found

    def _user_ids(self) -> dict[str, str]:
        found = {}
        for page in self.client.users_list(limit=1000):
            for user in page["members"]:
                for handle in (user.get("name"), user.get("profile", {}).get("display_name")):
                    if handle:
                        found[f"@{handle}"] = user["id"]
        return found

    def _webhook(self, message: Message, url: str) -> str:
        from slack_sdk.errors import SlackClientError
        from slack_sdk.webhook import WebhookClient

        try:
            response = WebhookClient(url, timeout=int(self.config.timeout)).send(
                text=message.summary or message.subject, blocks=message.blocks
            )
        except (OSError, SlackClientError) as exc:  # never the URL in the message: it is a secret
            raise DeliveryError(
                f"cannot reach the Slack webhook: {type(exc).__name__}", "check the network", transient=True
            ) from None
        if response.status_code == 200:
            return "webhook"
        transient = response.status_code == 429 or response.status_code >= 500
        raise DeliveryError(
            f"the Slack webhook answered {response.status_code} {response.body[:80]}",
            "Slack had a problem" if transient else "check the webhook URL",
            transient=transient,
        )


_ADDRESS = re.compile(r"[#@][\w.\-]{1,80}|[UWCGD][A-Z0-9]{6,20}")


def _api_error(code: str, target: str) -> DeliveryError:
    message, hint = ERRORS.get(code, (f"Slack refused the request ({code})", "see Slack's documentation"))
    return DeliveryError(
        message.format(target=target), hint.format(target=target), transient=code in TRANSIENT
    )
