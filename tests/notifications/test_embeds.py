"""The messages as Discord shows them: dpytest runs the Discord adapter and captures the embeds it sends."""

from __future__ import annotations

import asyncio
import re

import discord
import discord.ext.test as dpytest
import pytest
from discord.ext import commands

from bot.discord_delivery import DiscordDelivery
from bot.events import (
    LiveRaceCancelled,
    LiveRaceFinished,
    LiveRaceOpenFailed,
    LiveRaceRoomOpened,
    LiveRaceScheduled,
    LiveRaceStarted,
)
from bot.notifications.dispatcher import NotificationDispatcher
from db.models import LiveRace, RaceStatus, RunStatus
from tests.conftest import GUILD, MODERATOR
from tests.fakes.notifications import add_player, add_run, make_world, publish, subscribe

TIMESTAMPS = re.compile(r"<t:(\d+):F> \(<t:\1:R>\)")
COLOURS = {"📅": 0x3498DB, "🔓": 0x2ECC71, "🚦": 0xE67E22, "🏁": 0xF1C40F, "❌": 0xE74C3C, "⚠️": 0x992D22}


@pytest.fixture
async def bot():
    intents = discord.Intents.default()
    intents.members = True
    client = commands.Bot(command_prefix="!", intents=intents)
    await client._async_setup_hook()
    dpytest.configure(client, members=["alice", "bob"])
    client._connection.loop = asyncio.get_running_loop()  # dpytest 0.7.0 leaves it unset
    yield client
    await dpytest.empty_queue()


@pytest.fixture
async def world(services, bot):
    guild = bot.guilds[0]
    channel = guild.text_channels[0]
    world = await make_world(
        services,
        guild_id=GUILD,
        announcement_channel_id=channel.id,
        announcement_role_id=4343,
        racetime_url="https://racetime.gg/alttpr/quick-fox-1234",
        seed_notes="Standard, no glitches",
    )
    members = [m for m in guild.members if not m.bot]
    world.players = {}
    for member in members:
        world.players[member.name] = await add_player(services, member.id, member.name)
        await subscribe(services, member.id)
    world.members = {m.name: m for m in members}
    world.channel = channel
    return world


@pytest.fixture
def dispatcher(services, bot):
    delivery = DiscordDelivery(bot, rate_limit_per_second=1000, is_available=lambda: True)
    return NotificationDispatcher(services.db, services.settings, lambda: delivery)


async def sent_messages() -> list[discord.Message]:
    messages = []
    while not dpytest.sent_queue.empty():
        messages.append(await dpytest.sent_queue.get())
    return messages


def assert_discord_accepts(embed: discord.Embed) -> None:
    assert embed.title and len(embed.title) <= 256
    assert embed.description and len(embed.description) <= 4096
    assert 0 < len(embed.fields) <= 25
    for field in embed.fields:
        assert field.name and field.name.strip() and len(field.name) <= 256
        assert field.value and field.value.strip() and len(field.value) <= 1024
    assert len(embed) <= 6000
    assert embed.timestamp is not None and embed.footer.text.startswith("Startline · race #")
    assert embed.colour.value == COLOURS[embed.title.split()[0]]


def recipient(bot: commands.Bot, message: discord.Message) -> str:
    # dpytest's copy of the channel on the message has no recipients; the bot's DM channel cache has them.
    return bot.get_channel(message.channel.id).recipient.name


def fields(embed: discord.Embed) -> dict[str, str]:
    return {field.name: field.value for field in embed.fields}


async def test_scheduled(services, world, dispatcher, bot):
    await publish(services, world.event(LiveRaceScheduled))
    await dispatcher.run_once()
    messages = await sent_messages()
    dms = [m for m in messages if isinstance(m.channel, discord.DMChannel)]
    assert sorted(recipient(bot, m) for m in dms) == ["alice", "bob"]
    embed = dms[0].embeds[0]
    assert_discord_accepts(embed)
    assert embed.title == "📅 Live race scheduled: Weekly race"
    assert "Spring Qualifier" in embed.description and "Pool A" in embed.description
    starts = TIMESTAMPS.fullmatch(fields(embed)["Starts"])
    opens = TIMESTAMPS.fullmatch(fields(embed)["Room opens"])
    assert int(starts[1]) == int(world.race.scheduled_at.timestamp())
    assert int(starts[1]) - int(opens[1]) == 15 * 60
    assert embed.url is None  # no room yet
    [post] = [m for m in messages if m.channel == world.channel]
    assert post.content == "<@&4343>"
    assert_discord_accepts(post.embeds[0])
    assert "Why you get this" not in fields(post.embeds[0])


async def test_room_opened(services, world, dispatcher):
    async with services.db.transaction() as session:
        race = await session.get(LiveRace, world.race.id)
        race.status = RaceStatus.ROOM_OPEN
        race.room_settings = {"start_delay": 30, "auto_start": False, "time_limit": 6}
    await publish(services, world.event(LiveRaceRoomOpened))
    await dispatcher.run_once()
    embed = (await sent_messages())[0].embeds[0]
    assert_discord_accepts(embed)
    assert embed.url == "https://racetime.gg/alttpr/quick-fox-1234"
    assert "(https://racetime.gg/alttpr/quick-fox-1234)" in embed.description
    values = fields(embed)
    assert (values["Start delay"], values["Auto-start"], values["Time limit"]) == ("30 s", "No", "6 h")
    assert "Standard, no glitches" in values["Seed"]
    assert TIMESTAMPS.fullmatch(values["Starts"])


async def test_started(services, world, dispatcher, bot):
    async with services.db.transaction() as session:
        race = await session.get(LiveRace, world.race.id)
        race.started_at = race.scheduled_at
        race.participant_count = 7
    await publish(services, world.event(LiveRaceStarted, participant_player_ids=(world.players["alice"],)))
    await dispatcher.run_once()
    messages = await sent_messages()
    [dm] = [m for m in messages if isinstance(m.channel, discord.DMChannel)]
    assert recipient(bot, dm) == "alice"
    embed = dm.embeds[0]
    assert_discord_accepts(embed)
    assert fields(embed)["Participants"] == "7"
    assert TIMESTAMPS.fullmatch(fields(embed)["Started"])


async def test_finished_shows_the_players_own_place_time_and_score(services, world, dispatcher, bot):
    alice, bob = world.players["alice"], world.players["bob"]
    zed = await add_player(services, 999, "zed")  # not subscribed
    await add_run(services, world, zed, place=1, elapsed_us=4_900_000_000, score=102.5)
    await add_run(services, world, alice, place=2, elapsed_us=5_025_400_000, score=97.26)
    await add_run(services, world, bob, status=RunStatus.FORFEIT, score=0.0)
    await publish(services, world.event(LiveRaceFinished, participant_player_ids=(alice, bob)))
    await dispatcher.run_once()
    messages = await sent_messages()
    by_name = {recipient(bot, m): m.embeds[0] for m in messages if isinstance(m.channel, discord.DMChannel)}
    for embed in by_name.values():
        assert_discord_accepts(embed)
    alice_fields = fields(by_name["alice"])
    assert (alice_fields["Your place"], alice_fields["Your time"], alice_fields["Your score"]) == (
        "2nd of 2",
        "1:23:45.4",
        "97.3",
    )
    assert fields(by_name["bob"])["Your result"] == "Forfeit (score 0)"
    assert "Your place" not in fields(by_name["bob"])
    [post] = [m for m in messages if m.channel == world.channel]
    assert fields(post.embeds[0])["Podium"].splitlines() == ["1st **zed** — 1:21:40.0", "2nd **alice** — 1:23:45.4"]
    assert fields(post.embeds[0])["Finishers"] == "2 of 3"


async def test_cancelled(services, world, dispatcher):
    await publish(services, world.event(LiveRaceCancelled, reason="", previous_status="scheduled"))
    await dispatcher.run_once()
    embed = (await sent_messages())[0].embeds[0]
    assert_discord_accepts(embed)
    assert fields(embed)["Reason"] == "No reason given"  # an empty reason never makes an empty field


async def test_moderator_alert(services, world, dispatcher):
    await services.guilds.update(GUILD, MODERATOR, moderator_channel_id=world.channel.id, organizer_role_id=77)
    await publish(services, world.event(LiveRaceOpenFailed, error="RaceTime.gg answered 503", attempts=6))
    await dispatcher.run_once()
    [post] = await sent_messages()
    assert post.content == "<@&77>"
    embed = post.embeds[0]
    assert_discord_accepts(embed)
    assert "6 attempts" in embed.description
    assert fields(embed)["Last error"] == "RaceTime.gg answered 503"
