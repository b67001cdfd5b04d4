"""A StartlineBot with every cog loaded on a dpytest state, over a temporary SQLite database.

The application is built but not started (no API server, no jobs); commands are driven through the real
command tree by `DiscordHarness` (tests/fakes/discord_interactions.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import SimpleNamespace

import discord
import discord.ext.test as dpytest
import pytest_asyncio

from bot.app import Application
from bot.discord_bot import StartlineBot
from bot.settings import Settings
from db.models import Base
from tests.fakes import dpytest_compat
from tests.fakes.discord_interactions import DiscordHarness

dpytest_compat.apply()

MODERATOR_PERMS = discord.Permissions(manage_guild=True)


@pytest_asyncio.fixture
async def app(settings: Settings) -> AsyncIterator[Application]:
    application = Application(settings, run_migrations=False, start_jobs=False)
    async with application.db.engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    yield application
    await application.db.dispose()


@pytest_asyncio.fixture
async def bot(app: Application) -> AsyncIterator[StartlineBot]:
    startline = StartlineBot(app, start_app=False)
    await startline._async_setup_hook()
    await startline.setup_hook()  # loads every cog; the application stays stopped
    # dpytest hands out members through the member cache, which the production intents leave off.
    startline._connection._intents.members = True
    startline._connection.member_cache_flags = discord.MemberCacheFlags.all()
    registered = startline._connection._view_store._dynamic_items  # what the extensions' setup registered
    dpytest.configure(startline, guilds=["Home", "Elsewhere"], members=["mod", "alice", "bob"])
    # dpytest swaps in a new connection state: it keeps the dynamic items setup_hook registered on the old one.
    startline._connection._view_store._dynamic_items.update(registered)
    startline._connection.loop = asyncio.get_running_loop()  # dpytest 0.7.0 leaves it unset
    startline._connection.application_id = startline.user.id
    yield startline
    await dpytest.empty_queue()
    for extension in list(startline.extensions):
        await startline.unload_extension(extension)


@pytest_asyncio.fixture
async def discord_(bot: StartlineBot, tmp_path) -> SimpleNamespace:
    """The harness plus the cast: a guild, another guild, a moderator and two players."""
    home, elsewhere = bot.guilds
    cast = dpytest.get_config().members
    members = {member.name: member for member in cast if member.guild == home}
    return SimpleNamespace(
        bot=bot,
        harness=DiscordHarness(bot, uploads=tmp_path),
        services=bot.app.services,
        guild=home,
        other_guild=elsewhere,
        mod=members["mod"],
        alice=members["alice"],
        bob=members["bob"],
        stranger=next(m for m in cast if m.guild == elsewhere and m.name == "alice"),
    )
