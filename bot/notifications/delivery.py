"""What the dispatcher needs from a messaging platform, and the typed outcomes it maps to outbox states.

`Application.delivery` holds an implementation (`bot/discord_delivery.py` in Discord mode) or None when there
is no gateway; the dispatcher then leaves rows waiting.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from bot.notifications.message import NotificationMessage


class DeliveryError(Exception):
    """A message could not be delivered; `reason` goes into the delivery log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RecipientUnreachable(DeliveryError):
    """The user does not accept DMs from the bot (Discord 403, code 50007): do not try again."""


class PermanentDeliveryError(DeliveryError):
    """Trying again cannot help: a malformed message (400), a channel the bot cannot see or post in."""


class MessageGone(PermanentDeliveryError):
    """The message to edit no longer exists (Discord 404, code 10008: someone deleted it)."""


class ScheduledEventGone(PermanentDeliveryError):
    """The guild scheduled event no longer exists (Discord 404, code 10070: someone deleted it)."""


class ManageEventsMissing(PermanentDeliveryError):
    """The bot lacks Manage Events in the guild (Discord 403, code 50013): nothing more is tried there."""


class TransientDeliveryError(DeliveryError):
    """Rate limited, a Discord server error or a network problem: try again later.

    `maybe_delivered`: Discord may have made the message anyway (the answer was lost: a timeout, a dropped
    connection, a server error), so the row must never be reported `expired`: it is sent again with its nonce.
    False only when Discord's answer says it made nothing (a rate limit, 503 Service Unavailable).
    """

    def __init__(self, reason: str, *, retry_after: float | None = None, maybe_delivered: bool = True) -> None:
        super().__init__(reason)
        self.retry_after = retry_after
        self.maybe_delivered = maybe_delivered


@dataclass(frozen=True)
class ScheduledEventRef:
    """A guild scheduled event as Discord has it: its id and status (1 scheduled, 2 active, 3 completed,
    4 cancelled)."""

    event_id: int
    status: int


@dataclass(frozen=True)
class DmReceipt:
    """The DM channel the message went through, to be remembered for the next one."""

    channel_id: int


class Delivery(Protocol):
    @property
    def available(self) -> bool:
        """False while the gateway is down: rows wait instead of burning their retries."""
        ...

    async def send_dm(
        self, user_id: int, message: NotificationMessage, *, dm_channel_id: int | None = None, nonce: str | None = None
    ) -> DmReceipt:
        """DM a user, through `dm_channel_id` when known. Raises a `DeliveryError`.

        `nonce` names the message across attempts: a message already created with it is not created again.
        """
        ...

    async def send_channel(
        self,
        channel_id: int,
        message: NotificationMessage,
        *,
        nonce: str | None = None,
        reply_to: int | None = None,
    ) -> int | None:
        """Post in a guild channel (with `message.content` above the embed), as a reply to the message `reply_to`
        when given; returns the new message's id. Raises a `DeliveryError`."""
        ...

    async def edit_channel_message(self, channel_id: int, message_id: int, message: NotificationMessage) -> None:
        """Replace a message the bot posted (an edit pings nobody). Raises `MessageGone` when it was deleted,
        another `DeliveryError` otherwise."""
        ...

    async def find_scheduled_event(self, guild_id: int, marker: str) -> ScheduledEventRef | None:
        """The guild's scheduled event whose description contains `marker`, if any (Discord has no idempotency key
        for events: this is how one made before a crash is found instead of made twice). Raises a
        `DeliveryError`."""
        ...

    async def create_scheduled_event(self, guild_id: int, fields: dict[str, Any]) -> ScheduledEventRef:
        """Create an external guild scheduled event from Discord's fields. Raises `ManageEventsMissing` without
        the permission, another `DeliveryError` otherwise."""
        ...

    async def edit_scheduled_event(self, guild_id: int, event_id: int, fields: dict[str, Any]) -> ScheduledEventRef:
        """Change an event's fields or status. Raises `ScheduledEventGone` when it was deleted,
        `ManageEventsMissing` without the permission, another `DeliveryError` otherwise."""
        ...
