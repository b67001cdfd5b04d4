"""The discord.py Bot: the gateway adapter around `Application`."""

from __future__ import annotations

import logging
import pkgutil

import discord
from discord.ext import commands

import cogs
from bot.app import Application
from bot.discord_delivery import DiscordDelivery
from cogs._common.tree import StartlineTree

log = logging.getLogger(__name__)


def cog_extensions() -> list[str]:
    """Every module of the `cogs` package that defines `setup` is loaded as an extension."""
    return [f"cogs.{module.name}" for module in pkgutil.iter_modules(cogs.__path__) if not module.name.startswith("_")]


def intents() -> discord.Intents:
    # Slash commands and DMs need no privileged intents (no members, no message content).
    return discord.Intents.default()


class StartlineBot(commands.Bot):
    def __init__(self, app: Application, *, load_cogs: bool = True, start_app: bool = True) -> None:
        """`start_app=False` leaves the application (API server, jobs) alone: for command tests and `run.py sync`."""
        owner_ids = set(app.settings.discord.owner_ids) or None
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents(),
            owner_ids=owner_ids,
            help_command=None,
            tree_cls=StartlineTree,
            allowed_mentions=discord.AllowedMentions(everyone=False, users=True, roles=True),
            # A longer rate limit wait becomes an error, so a notification is rescheduled instead of blocking.
            max_ratelimit_timeout=30.0,
        )
        self.app = app
        self.load_cogs = load_cogs
        self.start_app = start_app
        app.discord_bot = self

    async def setup_hook(self) -> None:
        if self.start_app:
            self.app.discord_state = "connecting"
            self.app.delivery = DiscordDelivery(
                self,
                rate_limit_per_second=self.app.settings.notifications.rate_limit_per_second,
                is_available=self.gateway_connected,
            )
            await self.app.start()
        if self.load_cogs:
            for extension in cog_extensions():
                await self.load_extension(extension)

    def gateway_connected(self) -> bool:
        # Outbox rows wait while the gateway is down rather than spend their retries on an outage.
        return self.app.discord_state == "connected" and not self.is_closed()

    async def on_ready(self) -> None:
        self.app.discord_state = "connected"
        log.info("connected to Discord as %s (%s guilds)", self.user, len(self.guilds))

    async def on_disconnect(self) -> None:
        self.app.discord_state = "disconnected"

    async def on_resumed(self) -> None:
        self.app.discord_state = "connected"

    async def close(self) -> None:
        try:
            if self.app.started:
                await self.app.stop()
        finally:
            await super().close()
