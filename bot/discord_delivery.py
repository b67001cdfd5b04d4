"""`Delivery` over discord.py: DMs and channel posts as embeds, Discord errors mapped to outbox outcomes.

Requests go through discord.py's HTTP client, which keeps Discord's per-route buckets and waits out 429s; a
client-side limiter (aiolimiter) paces our requests below the global limit in the first place. DM channels
are opened once: the dispatcher stores the id on the player, and a remembered channel that Discord no longer
knows is replaced by a new one. Every message carries the dispatcher's nonce with `enforce_nonce` (discord.py
sets it with any nonce), so Discord answers a repeat within a few minutes with the message it already made.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp
import discord
from aiolimiter import AsyncLimiter

from bot.notifications.delivery import (
    DeliveryError,
    DmReceipt,
    ManageEventsMissing,
    MessageGone,
    PermanentDeliveryError,
    RecipientUnreachable,
    ScheduledEventGone,
    ScheduledEventRef,
    TransientDeliveryError,
)
from bot.notifications.message import LABEL_LIMIT, ActionStyle, MessageAction, NotificationMessage

CANNOT_DM = 50007  # "Cannot send messages to this user": DMs closed, bot blocked or no shared server
OPENING_DMS_TOO_FAST = 40003
MISSING_ACCESS = 50001
UNKNOWN_CHANNEL = 10003
UNKNOWN_MESSAGE = 10008
MISSING_PERMISSIONS = 50013
UNKNOWN_SCHEDULED_EVENT = 10070
# Bursts are kept to a tenth of a second's worth, so pacing stays even under Discord's per-second limit.
BURST_SECONDS = 0.1


def to_embed(message: NotificationMessage) -> discord.Embed:
    embed = discord.Embed(
        title=message.title,
        description=message.description,
        colour=message.colour,
        url=message.url,
        timestamp=message.timestamp,
    )
    for field in message.fields:
        embed.add_field(name=field.name, value=field.value, inline=field.inline)
    if message.footer:
        embed.set_footer(text=message.footer)
    return embed


_STYLES = {
    ActionStyle.PRIMARY: discord.ButtonStyle.primary,
    ActionStyle.SECONDARY: discord.ButtonStyle.secondary,
    ActionStyle.SUCCESS: discord.ButtonStyle.success,
    ActionStyle.DANGER: discord.ButtonStyle.danger,
    ActionStyle.LINK: discord.ButtonStyle.link,
}


def to_view(message: NotificationMessage, guild_name: Callable[[int], str | None] = lambda _: None) -> discord.ui.View:
    """The message's actions as one row of buttons; a pressed one's custom_id is its action key, which the dynamic
    items of `cogs/buttons.py` answer in any process, after any restart (the view keeps no state: nothing is
    registered per message). An empty view removes a message's buttons when it is edited."""
    view = discord.ui.View(timeout=None)
    for action in message.actions:
        view.add_item(_button(action, guild_name))
    # Stopped at once: discord.py keeps a live view per message in memory (one per DM here); this one is only the
    # components of the request, and the presses are answered by the dynamic items' templates.
    view.stop()
    return view


def _button(action: MessageAction, guild_name: Callable[[int], str | None]) -> discord.ui.Button:
    label = action.label
    if "{server}" in label:
        guild_id = action.args[0] if action.args else None
        name = guild_name(guild_id) if isinstance(guild_id, int) else None
        label = label.replace("{server}", name or "this server")
        if len(label) > LABEL_LIMIT:
            label = label[: LABEL_LIMIT - 1] + "…"
    if action.url is not None:
        return discord.ui.Button(label=label, style=discord.ButtonStyle.link, url=action.url)
    return discord.ui.Button(label=label, style=_STYLES[action.style], custom_id=action.key)


def map_error(exc: Exception) -> DeliveryError:
    """A discord.py or network exception as the outbox outcome it calls for."""
    if isinstance(exc, discord.RateLimited):
        return TransientDeliveryError(
            f"Rate limited by Discord for {exc.retry_after:.0f} s", retry_after=exc.retry_after, maybe_delivered=False
        )
    if isinstance(exc, discord.NotFound) and exc.code == UNKNOWN_MESSAGE:
        return MessageGone("Discord: the message was deleted (404, code 10008)")
    if isinstance(exc, discord.NotFound) and exc.code == UNKNOWN_CHANNEL:
        return PermanentDeliveryError("Discord: the channel no longer exists (404, code 10003); set another one")
    if isinstance(exc, discord.Forbidden):
        if exc.code == MISSING_PERMISSIONS:
            return PermanentDeliveryError(
                "Discord: the bot lacks a permission in that channel (403, code 50013): give it View Channel, "
                "Send Messages, Embed Links and Read Message History there"
            )
        if exc.code == CANNOT_DM:
            return RecipientUnreachable("Discord: this user does not accept DMs from the bot (403, code 50007)")
        if exc.code == OPENING_DMS_TOO_FAST:
            return TransientDeliveryError("Discord: opening DMs too fast (403, code 40003)", maybe_delivered=False)
        return PermanentDeliveryError(f"Discord refused: {_describe(exc)}")
    if isinstance(exc, discord.HTTPException):
        if exc.status == 429:
            return TransientDeliveryError(
                f"Rate limited by Discord: {_describe(exc)}", retry_after=_retry_after(exc), maybe_delivered=False
            )
        if exc.status >= 500:  # 503: not processed at all; other server errors may have made the message
            return TransientDeliveryError(f"Discord server error: {_describe(exc)}", maybe_delivered=exc.status != 503)
        if exc.status == 400:
            return PermanentDeliveryError(f"Discord rejected the message as malformed: {_describe(exc)}")
        return PermanentDeliveryError(f"Discord refused: {_describe(exc)}")
    if isinstance(exc, (OSError, aiohttp.ClientError, asyncio.TimeoutError)):
        # Only a connection never made certainly sent nothing; a timeout or a dropped connection may have.
        return TransientDeliveryError(
            f"Network error reaching Discord: {type(exc).__name__}: {exc}",
            maybe_delivered=not isinstance(exc, aiohttp.ClientConnectorError),
        )
    raise exc


def _describe(exc: discord.HTTPException) -> str:
    text = exc.text or exc.response.reason or "no details"
    return f"{exc.status}, code {exc.code}: {text}"


def _retry_after(exc: discord.HTTPException) -> float | None:
    value = exc.response.headers.get("Retry-After") if exc.response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _stale_channel(exc: discord.HTTPException) -> bool:
    return isinstance(exc, discord.NotFound) or (isinstance(exc, discord.Forbidden) and exc.code == MISSING_ACCESS)


class DiscordDelivery:
    def __init__(
        self,
        client: discord.Client,
        *,
        rate_limit_per_second: float,
        is_available: Callable[[], bool] | None = None,
    ) -> None:
        self.client = client
        burst = max(1.0, rate_limit_per_second * BURST_SECONDS)
        self._limiter = AsyncLimiter(burst, burst / rate_limit_per_second)
        self._is_available = is_available or (lambda: client.is_ready() and not client.is_closed())

    @property
    def available(self) -> bool:
        return self._is_available()

    def _guild_name(self, guild_id: int) -> str | None:
        guild = self.client.get_guild(guild_id)
        return guild.name if guild is not None else None

    def _view(self, message: NotificationMessage) -> discord.ui.View:
        return to_view(message, self._guild_name)

    async def send_dm(
        self, user_id: int, message: NotificationMessage, *, dm_channel_id: int | None = None, nonce: str | None = None
    ) -> DmReceipt:
        embed = to_embed(message)
        view = self._view(message)
        try:
            if dm_channel_id is None:
                channel = await self._open_dm(user_id)
            else:
                try:
                    await self._post(self._known_dm_channel(dm_channel_id), embed, nonce, view)
                    return DmReceipt(dm_channel_id)
                except discord.HTTPException as exc:
                    if not _stale_channel(exc):
                        raise
                channel = await self._reopen_dm(user_id)
            await self._post(channel, embed, nonce, view)
            return DmReceipt(channel.id)
        except DeliveryError:
            raise
        except Exception as exc:
            raise map_error(exc) from exc

    async def send_channel(
        self,
        channel_id: int,
        message: NotificationMessage,
        *,
        nonce: str | None = None,
        reply_to: int | None = None,
    ) -> int | None:
        channel = self.client.get_channel(channel_id) or self.client.get_partial_messageable(channel_id)
        mentions = discord.AllowedMentions(
            everyone=False,
            users=False,
            roles=[discord.Object(role_id) for role_id in message.mention_role_ids],
            replied_user=False,
        )
        reference = (
            discord.MessageReference(message_id=reply_to, channel_id=channel_id, fail_if_not_exists=False)
            if reply_to is not None
            else None
        )
        try:
            async with self._limiter:
                sent = await channel.send(  # type: ignore[union-attr]
                    content=message.content,
                    embed=to_embed(message),
                    allowed_mentions=mentions,
                    nonce=nonce,
                    **({"view": self._view(message)} if message.actions else {}),
                    **({"reference": reference} if reference is not None else {}),
                )
        except Exception as exc:
            raise map_error(exc) from exc
        return sent.id if sent is not None else None

    async def edit_channel_message(self, channel_id: int, message_id: int, message: NotificationMessage) -> None:
        channel = self.client.get_partial_messageable(channel_id)
        try:
            async with self._limiter:
                # Always with its view: an edit without actions removes the buttons (the race finished or was
                # cancelled); one with actions puts them back as they are now.
                await channel.get_partial_message(message_id).edit(
                    content=message.content,
                    embed=to_embed(message),
                    allowed_mentions=discord.AllowedMentions.none(),
                    view=self._view(message),
                )
        except Exception as exc:
            raise map_error(exc) from exc

    def _known_dm_channel(self, channel_id: int) -> discord.abc.Messageable:
        cached = self.client.get_channel(channel_id)
        if isinstance(cached, discord.DMChannel):
            return cached
        return self.client.get_partial_messageable(channel_id, type=discord.ChannelType.private)

    async def _open_dm(self, user_id: int) -> discord.DMChannel:
        async with self._limiter:
            user = self.client.get_user(user_id)
            if user is not None:  # a cached user keeps discord.py's own DM channel cache
                return await user.create_dm()
            return await self.client.create_dm(discord.Object(user_id))

    async def _reopen_dm(self, user_id: int) -> discord.PartialMessageable:
        """A new DM channel from Discord itself, past discord.py's cache, which may hold the stale one."""
        async with self._limiter:
            data = await self.client.http.start_private_message(user_id)
        return self.client.get_partial_messageable(int(data["id"]), type=discord.ChannelType.private)

    async def _post(
        self, channel: discord.abc.Messageable, embed: discord.Embed, nonce: str | None, view: discord.ui.View
    ) -> None:
        async with self._limiter:
            await channel.send(embed=embed, nonce=nonce, **({"view": view} if view.children else {}))

    # ---- guild scheduled events ----------------------------------------------------------------------
    async def find_scheduled_event(self, guild_id: int, marker: str) -> ScheduledEventRef | None:
        try:
            async with self._limiter:
                events = await self.client.http.get_scheduled_events(guild_id, False)
        except Exception as exc:
            raise _event_error(exc) from exc
        for event in events:
            if marker in (event.get("description") or ""):
                return ScheduledEventRef(int(event["id"]), int(event["status"]))
        return None

    async def create_scheduled_event(self, guild_id: int, fields: dict[str, Any]) -> ScheduledEventRef:
        try:
            async with self._limiter:
                event = await self.client.http.create_guild_scheduled_event(guild_id, **fields)
        except Exception as exc:
            raise _event_error(exc) from exc
        return ScheduledEventRef(int(event["id"]), int(event["status"]))

    async def edit_scheduled_event(self, guild_id: int, event_id: int, fields: dict[str, Any]) -> ScheduledEventRef:
        try:
            async with self._limiter:
                event = await self.client.http.edit_scheduled_event(guild_id, event_id, **fields)
        except Exception as exc:
            raise _event_error(exc) from exc
        return ScheduledEventRef(int(event["id"]), int(event["status"]))


def _event_error(exc: Exception) -> DeliveryError:
    """A scheduled-event request's failure: a missing Manage Events and a deleted event are told apart."""
    if isinstance(exc, discord.Forbidden) and exc.code == MISSING_PERMISSIONS:
        return ManageEventsMissing(
            "Discord: the bot lacks the Manage Events permission (403, code 50013); give it, then turn scheduled "
            "events on again with /startline config"
        )
    if isinstance(exc, discord.NotFound) and exc.code == UNKNOWN_SCHEDULED_EVENT:
        return ScheduledEventGone("Discord: the scheduled event was deleted (404, code 10070)")
    if isinstance(exc, discord.HTTPException) and exc.status == 400:
        return PermanentDeliveryError(f"Discord rejected the scheduled event: {_describe(exc)}")
    return map_error(exc)
