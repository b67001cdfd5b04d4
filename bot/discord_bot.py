"""The discord.py Bot: the gateway adapter around `Application`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pkgutil

import aiohttp
import discord
from discord.ext import commands
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_random_exponential

import cogs
from bot.app import Application
from bot.discord_delivery import DiscordDelivery
from bot.discord_interest import RawScheduledEventUser, install_raw_parsers, resync_interest
from cogs._common.tree import StartlineTree

log = logging.getLogger(__name__)

LOGIN_RETRY_MAX_SECONDS = 60.0
LOGIN_RETRYABLE = (discord.DiscordServerError, discord.RateLimited, aiohttp.ClientError, OSError, TimeoutError)


def cog_extensions() -> list[str]:
    """Every module of the `cogs` package that defines `setup` is loaded as an extension."""
    return [f"cogs.{module.name}" for module in pkgutil.iter_modules(cogs.__path__) if not module.name.startswith("_")]


def intents() -> discord.Intents:
    """Slash commands and DMs need no privileged intent. Members leaving and joining (GUILD_MEMBER_REMOVE and
    GUILD_MEMBER_ADD) come only with the privileged Server Members intent, which must be switched on for the bot in
    the Discord developer portal; bans (GUILD_BAN_ADD) come with the default moderation intent, and who presses
    Interested on a race's scheduled event (GUILD_SCHEDULED_EVENT_USER_ADD and _REMOVE) with the default
    GUILD_SCHEDULED_EVENTS intent, asked for by name. No message content, no presences."""
    chosen = discord.Intents.default()
    chosen.members = True
    chosen.guild_scheduled_events = True
    return chosen


def create_bot(app: Application, *, load_cogs: bool = True, start_app: bool = True) -> StartlineBot:
    """The bot for the settings: `discord.shards` unset is one gateway connection; "auto" or a count runs an
    AutoShardedBot (one process, several shards: "auto" asks Discord how many)."""
    shards = app.settings.discord.shards
    if shards is None:
        return StartlineBot(app, load_cogs=load_cogs, start_app=start_app)
    return ShardedStartlineBot(
        app, load_cogs=load_cogs, start_app=start_app, shard_count=None if shards == "auto" else shards
    )


class StartlineBot(commands.Bot):
    def __init__(self, app: Application, *, load_cogs: bool = True, start_app: bool = True, **client_options) -> None:
        """`start_app=False` leaves the application (API server, jobs) alone: for command tests and `run.py sync`."""
        owner_ids = set(app.settings.discord.owner_ids) or None
        super().__init__(
            **client_options,
            command_prefix=commands.when_mentioned,
            intents=intents(),
            owner_ids=owner_ids,
            help_command=None,
            tree_cls=StartlineTree,
            allowed_mentions=discord.AllowedMentions(everyone=False, users=True, roles=True),
            # A longer rate limit wait becomes an error, so a notification is rescheduled instead of blocking.
            max_ratelimit_timeout=30.0,
            # Only the member events are needed, not the member lists: no download of every member at start, no cache.
            chunk_guilds_at_startup=False,
            member_cache_flags=discord.MemberCacheFlags.none(),
        )
        self.app = app
        self.load_cogs = load_cogs
        self.start_app = start_app
        install_raw_parsers(self)  # Interested on a scheduled event, without discord.py's member cache
        self._interest_resync: asyncio.Task[int] | None = None

    async def start(self, token: str, *, reconnect: bool = True) -> None:
        """Run the application at once, then log in and connect.

        The API and the jobs do not wait for Discord: when it cannot be reached at start-up (an outage, a
        restart during one) rooms still open and results are still recorded while the login is retried, and
        notifications wait in the outbox. Only a refused token ends the process.
        """
        await self.start_application()
        try:
            await self._log_in(token)
        except LOGIN_RETRYABLE:
            if self.is_closed():  # stopped (SIGTERM) while Discord could not be reached: nothing left to do
                return
            raise
        await self.connect(reconnect=reconnect)

    async def start_application(self) -> None:
        if not self.start_app or self.app.started:
            return
        self.app.discord_state = "connecting"
        self.app.delivery = DiscordDelivery(
            self,
            rate_limit_per_second=self.app.settings.notifications.rate_limit_per_second,
            is_available=self.gateway_connected,
        )
        await self.app.start()

    async def _log_in(self, token: str) -> None:
        """Log in, retrying with capped, jittered backoff while Discord cannot be reached (a refused token is final)."""
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(LOGIN_RETRYABLE),
            wait=wait_random_exponential(multiplier=2.0, max=LOGIN_RETRY_MAX_SECONDS),
            before_sleep=self._before_login_retry,
            stop=lambda _state: self.is_closed(),  # the process is stopping: no more attempts
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                await self.login(token)

    async def _before_login_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        delay = state.next_action.sleep if state.next_action else 0.0
        log.warning("Discord cannot be reached (%s); logging in again in %.0f s", _describe(exc), delay)
        # The next login opens a new HTTP session; closing this one closed its connector too.
        await self.http.close()
        self.http.connector = discord.utils.MISSING

    async def setup_hook(self) -> None:
        await self.start_application()
        if self.load_cogs:
            for extension in cog_extensions():
                await self.load_extension(extension)

    def gateway_connected(self) -> bool:
        # Outbox rows wait while the gateway is down rather than spend their retries on an outage.
        return self.app.discord_state == "connected" and not self.is_closed()

    async def on_ready(self) -> None:
        self.app.discord_state = "connected"
        log.info("connected to Discord as %s (%s guilds)", self.user, len(self.guilds))
        # A new session (start-up, or one Discord would not resume) missed who pressed Interested meanwhile.
        if self._interest_resync is None or self._interest_resync.done():
            self._interest_resync = asyncio.create_task(self._resync_interest(), name="startline: interest resync")

    async def _resync_interest(self) -> int:
        try:
            return await resync_interest(self, self.app.services.reminders)
        except Exception:  # never the gateway's problem: the next READY tries again
            log.exception("reading who is interested in the scheduled events failed")
            return 0

    async def interest_resynced(self) -> int:
        """Wait for the resync the last READY started (tests); how many interests it changed."""
        return await self._interest_resync if self._interest_resync is not None else 0

    async def on_disconnect(self) -> None:
        self.app.discord_state = "disconnected"

    async def on_resumed(self) -> None:
        self.app.discord_state = "connected"

    # ---- members leaving and coming back: the guild's roster follows (PlayerService) ------------------
    async def on_raw_member_remove(self, payload: discord.RawMemberRemoveEvent) -> None:
        # The raw event comes whether or not the member was cached (nothing is cached here).
        await self.app.services.players.member_left(payload.guild_id, payload.user.id)
        await self.app.services.reminders.member_left(payload.guild_id, payload.user.id)

    async def on_member_ban(self, guild: discord.Guild, user: discord.User | discord.Member) -> None:
        await self.app.services.players.member_left(guild.id, user.id, banned=True)
        await self.app.services.reminders.member_left(guild.id, user.id)

    # ---- Interested on a race's Discord Scheduled Event: that race's reminders (ReminderService) --------------
    async def on_raw_scheduled_event_user_add(self, payload: RawScheduledEventUser) -> None:
        await self.app.services.reminders.set_interest(payload.guild_id, payload.event_id, payload.user_id, True)

    async def on_raw_scheduled_event_user_remove(self, payload: RawScheduledEventUser) -> None:
        await self.app.services.reminders.set_interest(payload.guild_id, payload.event_id, payload.user_id, False)

    async def on_member_join(self, member: discord.Member) -> None:
        await self.app.services.players.member_returned(member.guild.id, member.id, member.display_name)

    async def close(self) -> None:
        if self._interest_resync is not None and not self._interest_resync.done():
            self._interest_resync.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._interest_resync
        try:
            if self.app.started:
                await self.app.stop()
        finally:
            await super().close()


class ShardedStartlineBot(StartlineBot, commands.AutoShardedBot):
    """The same bot over several shards (`discord.shards`): discord.py's AutoShardedBot runs them in this process.
    `on_ready` comes once every shard is ready; a shard's disconnect and resume also dispatch `on_disconnect` and
    `on_resumed`, so the gateway state is the last thing any shard did."""


def _describe(exc: BaseException | None) -> str:
    if isinstance(exc, discord.HTTPException):
        return f"HTTP {exc.status}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
