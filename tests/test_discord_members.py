"""Members leaving, banned and coming back, through the real bot: discord.py's gateway client reads the fake
gateway's GUILD_MEMBER_REMOVE, GUILD_BAN_ADD and GUILD_MEMBER_ADD, and StartlineBot's handlers hand them to the
PlayerService. Also: the bot asks for the intents these events need, and says so when Discord refuses them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable

import discord
import pytest
import pytest_asyncio
import yarl

from bot.app import Application
from bot.discord_bot import StartlineBot, create_bot
from bot.services.eligibility import REASON_LEFT
from db.models import Base
from tests.conftest import GUILD, MODERATOR, OTHER_GUILD
from tests.fakes.discord_gateway import GUILD_MEMBERS, GUILD_MODERATION
from tests.fakes.discord_rest import FakeDiscordRest, _user
from tests.fakes.notifications import make_world

ALICE, BOB = 310_000_000_000_000_001, 310_000_000_000_000_002
SAFETY_NET_SECONDS = 30.0  # never reached when things work; a hang fails instead of blocking the suite


async def handled(bot: StartlineBot, event: str, send: Awaitable[int]) -> None:
    """Send a gateway event and wait until discord.py dispatched it and StartlineBot's handler ran to its end."""
    dispatched = bot.wait_for(event, timeout=SAFETY_NET_SECONDS)  # listening before the event is sent
    assert await send == 1
    await dispatched
    # dispatch() scheduled the handler, named after the event, before the waiter above could resume
    handlers = [task for task in asyncio.all_tasks() if task.get_name() == f"discord.py: on_{event}"]
    await asyncio.wait_for(asyncio.gather(*handlers), SAFETY_NET_SECONDS)


@pytest.fixture
async def fake(monkeypatch) -> AsyncIterator[FakeDiscordRest]:
    fake = await FakeDiscordRest.with_gateway([GUILD]).start()
    monkeypatch.setattr(discord.http.Route, "BASE", fake.api_base)
    monkeypatch.setattr(discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(fake.gateway_url))
    yield fake
    await fake.stop()


@pytest_asyncio.fixture
async def app(settings) -> AsyncIterator[Application]:
    application = Application(settings, run_migrations=False, start_jobs=False)
    async with application.db.engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    yield application
    await application.db.dispose()


async def test_leaving_a_ban_and_rejoining_reach_the_roster(app, fake) -> None:
    players = app.services.players
    for uid, name in ((ALICE, "alice"), (BOB, "bob")):
        await players.upsert(GUILD, uid, MODERATOR, display_name=name, racetime_id=f"rt{uid}")
        await players.upsert(OTHER_GUILD, uid, MODERATOR, display_name=name)
    world = await make_world(app.services)
    bot = StartlineBot(app, load_cogs=False, start_app=False)
    async with bot:
        runner = asyncio.create_task(bot.start("fake-token"))
        await asyncio.wait_for(bot.wait_until_ready(), SAFETY_NET_SECONDS)
        assert fake.gateway.identified_intents & GUILD_MEMBERS and fake.gateway.identified_intents & GUILD_MODERATION

        async def left(uid: int, guild_id: int = GUILD) -> bool:
            return (await players.get(guild_id, uid)).left_at is not None

        await handled(bot, "raw_member_remove", fake.gateway.member_remove(GUILD, _user(ALICE, "alice")))
        assert await left(ALICE) and not await left(BOB)
        # Discord sends a ban and the removal of the member: either one marks them
        await handled(bot, "member_ban", fake.gateway.member_ban(GUILD, _user(BOB, "bob")))
        assert await left(BOB)
        await handled(bot, "raw_member_remove", fake.gateway.member_remove(GUILD, _user(BOB, "bob")))
        report = await app.services.eligibility.for_pool(GUILD, world.tournament.id, world.pool.id)
        assert {report.reason_for(e.id) for e in (await players.list(GUILD)).items} == {REASON_LEFT}
        assert not await left(ALICE, OTHER_GUILD)

        join = fake.gateway.member_add(GUILD, _user(ALICE, "alice"), nick="alice is back")
        await handled(bot, "member_join", join)
        entry = await players.get(GUILD, ALICE)
        assert (entry.left_at, entry.display_name) == (None, "alice is back")
        assert await left(BOB)
        await bot.close()
        await runner


async def test_the_server_members_intent_refused_by_discord_is_said(app, fake) -> None:
    fake.gateway.privileged_intents = False  # the switch is off in the developer portal
    bot = StartlineBot(app, load_cogs=False, start_app=False)
    async with bot:
        with pytest.raises(discord.PrivilegedIntentsRequired):
            await asyncio.wait_for(bot.start("fake-token"), SAFETY_NET_SECONDS)


@pytest.mark.parametrize(("shards", "expected"), [("auto", 3), (2, 2)])
async def test_discord_shards_run_an_auto_sharded_bot(app, fake, shards, expected) -> None:
    """`discord.shards`: "auto" takes Discord's recommendation, a count is used as given; each shard identifies
    with its id and gets its own guilds (with GUILD_CREATE), and a member event still reaches the roster."""
    guilds = [GUILD, OTHER_GUILD, *(GUILD + (n << 22) for n in range(1, 5))]
    fake.gateway.guild_ids = guilds
    fake.gateway.recommended_shards = 3
    fake.gateway.guild_create = True
    app.settings.discord.shards = shards
    bot = create_bot(app, load_cogs=False, start_app=False)
    assert isinstance(bot, discord.AutoShardedClient)
    await app.services.players.upsert(GUILD, ALICE, MODERATOR, display_name="alice")
    async with bot:
        runner = asyncio.create_task(bot.start("fake-token"))
        await asyncio.wait_for(bot.wait_until_ready(), SAFETY_NET_SECONDS)
        assert bot.shard_count == expected
        assert sorted(fake.gateway.identified_shards) == [(n, expected) for n in range(expected)]
        assert sorted(guild.id for guild in bot.guilds) == sorted(guilds)
        assert all(guild.shard_id == (guild.id >> 22) % expected for guild in bot.guilds)
        assert len(bot.get_guild(GUILD).text_channels) == fake.gateway.guild_channels
        await handled(bot, "raw_member_remove", fake.gateway.member_remove(GUILD, _user(ALICE, "alice")))
        assert (await app.services.players.get(GUILD, ALICE)).left_at is not None
        await bot.close()
        await runner


def test_discord_shards_unset_is_one_connection(app) -> None:
    assert app.settings.discord.shards is None
    bot = create_bot(app, load_cogs=False, start_app=False)
    assert type(bot) is StartlineBot and not isinstance(bot, discord.AutoShardedClient)


@pytest.mark.parametrize("value", ["0", "many", "-2", "4097"])
def test_discord_shards_refuses_a_bad_value(value) -> None:
    from bot.settings import ConfigError, load_settings

    with pytest.raises(ConfigError, match="shards"):
        load_settings(discord={"shards": value})


def test_discord_shards_reads_a_count_from_the_environment(monkeypatch) -> None:
    from bot.settings import load_settings

    monkeypatch.setenv("STARTLINE_DISCORD__SHARDS", "4")
    assert load_settings().discord.shards == 4
    monkeypatch.setenv("STARTLINE_DISCORD__SHARDS", "auto")
    assert load_settings().discord.shards == "auto"
