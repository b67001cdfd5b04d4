"""The buttons under Startline's messages, end to end: the outbox's messages go through the real dispatcher and
discord.py to the fake Discord REST, which keeps their components as Discord does; the buttons are then pressed as
the member would, through discord.py's gateway path (`parse_interaction_create` → the dynamic items registered at
start-up), with the message as Discord stored it. RSVP on the living announcement; Open the room, Mute this kind and
No more DMs in DMs; a second bot instance (a restart) answering the same buttons; bad and stale presses."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import discord
import discord.ext.test as dpytest
import pytest
from sqlalchemy import select, update

from bot.app import Application
from bot.discord_bot import StartlineBot
from bot.discord_delivery import DiscordDelivery, to_view
from bot.events import (
    LiveRaceFinished,
    LiveRaceRescheduled,
    LiveRaceRoomOpened,
    LiveRaceScheduled,
)
from bot.notifications.dispatcher import DMS_OFF_REASON, NotificationDispatcher
from bot.notifications.render import render
from cogs.buttons import DYNAMIC_ITEMS, LEFT_GUILD, MALFORMED
from db.models import GuildPlayer, LiveRace, Notification, NotificationKind, NotificationStatus, RaceRsvp, RaceStatus
from tests.conftest import MODERATOR
from tests.fakes.discord_interactions import DiscordHarness
from tests.fakes.discord_rest import FakeDiscordRest
from tests.fakes.notifications import add_player, make_world, publish

CHANNEL = 7171
ROOM = "https://racetime.gg/alttpr/brave-fox-1234"


@pytest.fixture
async def fake_discord(monkeypatch):
    fake = await FakeDiscordRest().start()
    fake.add_text_channel(CHANNEL)
    monkeypatch.setattr(discord.http.Route, "BASE", fake.api_base)
    yield fake
    await fake.stop()


@pytest.fixture
async def dispatch(discord_, fake_discord):
    """Run the dispatcher once through discord.py against the fake Discord (a REST-only client, as a process whose
    gateway knows no guild yet: the DM-off button then says "this server")."""
    client = discord.Client(intents=discord.Intents.none())
    await client.login("fake-token")
    delivery = DiscordDelivery(client, rate_limit_per_second=500, is_available=lambda: True)
    dispatcher = NotificationDispatcher(discord_.services.db, discord_.services.settings, lambda: delivery)

    async def run() -> None:
        await dispatcher.run_once()

    yield run
    await client.close()


def buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for row in message.get("components", []) for c in row.get("components", [])]


def labels(message: dict[str, Any]) -> list[str]:
    return [button["label"] for button in buttons(message)]


def post(fake: FakeDiscordRest) -> dict[str, Any]:
    """The race's living announcement as Discord has it now (the first message in the channel)."""
    return next(m for m in fake.messages.values() if int(m["channel_id"]) == CHANNEL)


def dms_to(fake: FakeDiscordRest, user_id: int) -> list[dict[str, Any]]:
    return [fake.messages[d.message_id] for d in fake.delivered if d.recipient_id == user_id]


async def set_race(services, race_id: int, **values: Any) -> None:
    async with services.db.transaction() as session:
        await session.execute(update(LiveRace).where(LiveRace.id == race_id).values(**values))


async def rsvped(services, race_id: int) -> set[int]:
    async with services.db.read() as session:
        return set((await session.scalars(select(RaceRsvp.player_id).where(RaceRsvp.live_race_id == race_id))).all())


async def test_the_living_announcement_takes_rsvps_until_the_room_opens_and_loses_its_buttons_at_the_end(
    discord_, fake_discord, dispatch
) -> None:
    services, harness = discord_.services, discord_.harness
    world = await make_world(services, guild_id=discord_.guild.id, announcement_channel_id=CHANNEL)
    await publish(services, world.event(LiveRaceScheduled))
    await dispatch()
    assert labels(post(fake_discord)) == ["I'm racing", "Not this time"]  # on the message the outbox posted
    assert buttons(post(fake_discord))[0]["custom_id"] == f"sl:rsvp:{world.race.id}:yes"

    # alice is not linked to RaceTime.gg: recorded, and told at once, privately, why she may not race it and the fix
    reply = await harness.press(post(fake_discord), "I'm racing", discord_.alice)
    assert reply.ephemeral and "You RSVP'd" in reply.text
    assert "may not race it yet" in reply.text and "/racetime link" in reply.text
    alice = (await services.players.get(discord_.guild.id, discord_.alice.id)).id
    assert await rsvped(services, world.race.id) == {alice}
    again = await harness.press(post(fake_discord), "I'm racing", discord_.alice)  # twice: no second RSVP
    assert "already RSVP'd" in again.text and await rsvped(services, world.race.id) == {alice}

    # the start moves: the edit keeps the buttons
    old = world.race.scheduled_at
    await set_race(services, world.race.id, scheduled_at=old + timedelta(hours=1))
    await publish(services, world.event(LiveRaceRescheduled, previous_scheduled_at=old))
    await dispatch()
    assert fake_discord.edits and labels(post(fake_discord)) == ["I'm racing", "Not this time"]

    reply = await harness.press(post(fake_discord), "Not this time", discord_.alice)
    assert reply.ephemeral and "withdrawn" in reply.text and await rsvped(services, world.race.id) == set()
    reply = await harness.press(post(fake_discord), "Not this time", discord_.alice)
    assert "had not RSVP'd" in reply.text and await rsvped(services, world.race.id) == set()

    # the room opens: RSVPs close, the post links the room; the end removes every button
    await set_race(services, world.race.id, status=RaceStatus.ROOM_OPEN, racetime_url=ROOM)
    await publish(services, world.event(LiveRaceRoomOpened))
    await dispatch()
    assert [(b["label"], b["style"], b.get("url")) for b in buttons(post(fake_discord))] == [("Open the room", 5, ROOM)]
    await set_race(services, world.race.id, status=RaceStatus.FINISHED)
    await publish(services, world.event(LiveRaceFinished))
    await dispatch()
    assert post(fake_discord)["embeds"][0]["title"].startswith("🏁") and buttons(post(fake_discord)) == []


async def test_an_eligible_player_is_not_warned_and_a_race_that_moved_on_refuses(discord_) -> None:
    services = discord_.services
    world = await make_world(services, guild_id=discord_.guild.id)
    await add_player(services, discord_.bob.id, "bob", guild_id=discord_.guild.id)  # linked: eligible
    message = _message_with(f"sl:rsvp:{world.race.id}:yes", "I'm racing")
    reply = await discord_.harness.press(message, "I'm racing", discord_.bob)
    assert "You RSVP'd" in reply.text and "may not race" not in reply.text
    await set_race(services, world.race.id, status=RaceStatus.IN_PROGRESS)  # a stale post (its edit is on its way)
    reply = await discord_.harness.press(message, "I'm racing", discord_.alice)
    assert reply.ephemeral and "already in_progress" in reply.text
    assert len(await rsvped(services, world.race.id)) == 1


def _message_with(custom_id: str, label: str = "Press", *, channel_id: int = CHANNEL) -> dict[str, Any]:
    """A message as Discord would hand it back, carrying one button (as an older version of the bot may have sent)."""
    return {
        "id": "1300000000000000001",
        "channel_id": str(channel_id),
        "type": 0,
        "content": "",
        "author": {"id": "900000000000000999", "username": "startline", "discriminator": "0", "bot": True},
        "timestamp": "2026-12-07T00:00:00+00:00",
        "edited_timestamp": None,
        "tts": False,
        "mention_everyone": False,
        "mentions": [],
        "mention_roles": [],
        "attachments": [],
        "embeds": [],
        "pinned": False,
        "flags": 0,
        "components": [{"type": 1, "components": [{"type": 2, "style": 2, "label": label, "custom_id": custom_id}]}],
    }


@pytest.mark.parametrize(
    "custom_id",
    ["sl:rsvp:abc:yes", "sl:rsvp:12:maybe", "sl:rsvp:12", "sl:mute:1:999", "sl:mute:x", "sl:dmsoff:", "sl:bogus:1"],
)
async def test_a_malformed_button_is_answered_and_changes_nothing(discord_, custom_id: str) -> None:
    reply = await discord_.harness.press(_message_with(custom_id), "Press", discord_.alice)
    assert reply.ephemeral and reply.text == MALFORMED
    async with discord_.services.db.read() as session:
        assert (await session.scalars(select(RaceRsvp))).all() == []


async def test_stale_presses_a_deleted_race_and_a_guild_the_bot_left(discord_) -> None:
    services, harness = discord_.services, discord_.harness
    world = await make_world(services, guild_id=discord_.guild.id)
    message = _message_with(f"sl:rsvp:{world.race.id}:yes", "I'm racing")
    await services.live_races.delete(discord_.guild.id, world.race.id, MODERATOR)
    reply = await harness.press(message, "I'm racing", discord_.alice)
    assert reply.ephemeral and f"live race {world.race.id} not found" in reply.text.lower()

    # a race of the other guild, pressed in this one: not found here, nothing revealed
    other = await make_world(services, guild_id=discord_.other_guild.id, name="Other Cup")
    reply = await harness.press(_message_with(f"sl:rsvp:{other.race.id}:yes", "I'm"), "I'm", discord_.alice)
    assert "not found" in reply.text and await rsvped(services, other.race.id) == set()

    # the bot left the guild: the press is told so, and nothing is written
    discord_.bot._connection._remove_guild(discord_.guild)
    try:
        home = await make_world(services, guild_id=discord_.guild.id, name="Home Cup")
        reply = await harness.press(_message_with(f"sl:rsvp:{home.race.id}:yes", "I'm"), "I'm", discord_.alice)
        assert reply.ephemeral and reply.text == LEFT_GUILD and await rsvped(services, home.race.id) == set()
        reply = await harness.press(
            _message_with(f"sl:dmsoff:{discord_.guild.id}"), "Press", discord_.alice, in_dm=True
        )
        assert reply.text == LEFT_GUILD
    finally:
        discord_.bot._connection._add_guild(discord_.guild)


async def test_a_second_bot_instance_answers_the_same_button(discord_, fake_discord, dispatch, settings) -> None:
    """A restart: a new process (application, bot, discord.py state) has nothing of the first in memory, and the
    press on the post the first one made is answered all the same."""
    services = discord_.services
    world = await make_world(services, guild_id=discord_.guild.id, announcement_channel_id=CHANNEL)
    await publish(services, world.event(LiveRaceScheduled))
    await dispatch()
    message = post(fake_discord)

    app = Application(settings, run_migrations=False, start_jobs=False)
    second = StartlineBot(app, start_app=False)
    await second._async_setup_hook()
    await second.setup_hook()
    try:
        second._connection._intents.members = True
        second._connection.member_cache_flags = discord.MemberCacheFlags.all()
        registered = second._connection._view_store._dynamic_items
        assert {item.__name__ for item in registered.values()} == {
            item.__name__ for item in DYNAMIC_ITEMS
        }  # registered by its start-up, not by the test
        dpytest.configure(second, guilds=["Home again"], members=["carol"])
        second._connection._view_store._dynamic_items.update(registered)
        second._connection.loop = discord_.bot._connection.loop
        second._connection.application_id = second.user.id
        second._connection._add_guild(discord_.guild)  # the same server, seen by the new process
        assert second._connection._view_store is not discord_.bot._connection._view_store
        harness = DiscordHarness(second)
        reply = await harness.press(message, "I'm racing", discord_.bob)
        assert reply.ephemeral and "You RSVP'd" in reply.text
        bob = (await services.players.get(discord_.guild.id, discord_.bob.id)).id
        assert await rsvped(services, world.race.id) == {bob}
    finally:
        for extension in list(second.extensions):
            await second.unload_extension(extension)
        await app.db.dispose()
        DiscordHarness(discord_.bot)  # the recording adapter of the test's own bot again


async def subscribed_everywhere(discord_, user_id: int) -> None:
    services = discord_.services
    for guild in (discord_.guild, discord_.other_guild):
        await add_player(services, user_id, "alice", guild_id=guild.id)
        await services.notifications.set_all(user_id, True, guild_id=guild.id, actor=MODERATOR)


async def test_dm_buttons_mute_one_type_for_one_guild_and_undo(discord_, fake_discord, dispatch) -> None:
    services, harness, alice = discord_.services, discord_.harness, discord_.alice
    await subscribed_everywhere(discord_, alice.id)
    world = await make_world(services, guild_id=discord_.guild.id)
    await publish(services, world.event(LiveRaceScheduled))
    await dispatch()
    (scheduled,) = dms_to(fake_discord, alice.id)
    assert labels(scheduled) == ["Mute this kind", "No more DMs from this server"]  # no room yet: no link
    await set_race(services, world.race.id, status=RaceStatus.ROOM_OPEN, racetime_url=ROOM)
    await publish(services, world.event(LiveRaceRoomOpened))
    await dispatch()
    opened = dms_to(fake_discord, alice.id)[-1]
    assert (buttons(opened)[0]["label"], buttons(opened)[0].get("url")) == ("Open the room", ROOM)
    assert buttons(opened)[1]["custom_id"] == f"sl:mute:{discord_.guild.id}:416"

    reply = await harness.press(opened, "Mute this kind", alice, in_dm=True)
    assert reply.ephemeral and "**Room opened** DMs from **Home** are off" in reply.text and "/notify" in reply.text
    prefs = {p.code: p.effective for p in await services.notifications.preferences(alice.id, discord_.guild.id)}
    assert prefs[416] is False and all(on for code, on in prefs.items() if code != 416)
    elsewhere = await services.notifications.preferences(alice.id, discord_.other_guild.id)
    assert all(p.effective for p in elsewhere)  # the other server is untouched
    again = await harness.press(opened, "Mute this kind", alice, in_dm=True)
    assert "were already off. Nothing changed." in again.text

    undo = await harness.press(reply.last, "Undo", alice, in_dm=True)
    assert undo.ephemeral and "are on again" in undo.text
    prefs = {p.code: p.effective for p in await services.notifications.preferences(alice.id, discord_.guild.id)}
    assert prefs[416] is True


async def test_no_more_dms_stops_one_guild_only(discord_, fake_discord, dispatch) -> None:
    services, harness, alice = discord_.services, discord_.harness, discord_.alice
    await subscribed_everywhere(discord_, alice.id)
    home = await make_world(services, guild_id=discord_.guild.id)
    await publish(services, home.event(LiveRaceScheduled))
    await dispatch()
    (first,) = dms_to(fake_discord, alice.id)

    queued = await make_world(services, guild_id=discord_.guild.id, name="Queued Cup")
    await publish(services, queued.event(LiveRaceScheduled))  # queued before the press, sent after it
    reply = await harness.press(first, "No more DMs", alice, in_dm=True)
    assert reply.ephemeral and "No more DMs from **Home**" in reply.text and "Undo" in reply.text
    assert "Nothing changed" in (await harness.press(first, "No more DMs", alice, in_dm=True)).text

    later = await make_world(services, guild_id=discord_.guild.id, name="Later Cup")
    await publish(services, later.event(LiveRaceScheduled))
    other = await make_world(services, guild_id=discord_.other_guild.id, name="Other Cup")
    await publish(services, other.event(LiveRaceScheduled))
    await dispatch()
    async with services.db.read() as session:
        rows = (await session.scalars(select(Notification).where(Notification.kind == NotificationKind.DM))).all()
    by_race = {row.live_race_id: row for row in rows}
    assert later.race.id not in by_race  # nothing queued for her from Home any more
    assert by_race[queued.race.id].status is NotificationStatus.SKIPPED
    assert by_race[queued.race.id].error == DMS_OFF_REASON
    assert by_race[other.race.id].status is NotificationStatus.SENT  # the other server still DMs her
    assert len(dms_to(fake_discord, alice.id)) == 2

    undo = await harness.press(reply.last, "Undo", alice, in_dm=True)
    assert "are back" in undo.text
    again = await make_world(services, guild_id=discord_.guild.id, name="Again Cup")
    await publish(services, again.event(LiveRaceScheduled))
    await dispatch()
    assert len(dms_to(fake_discord, alice.id)) == 3


async def test_dm_buttons_for_a_server_the_member_is_not_on_change_nothing(discord_) -> None:
    """bob never used Startline in the other server: a (forged or stale) button naming it makes no roster entry."""
    reply = await discord_.harness.press(
        _message_with(f"sl:dmsoff:{discord_.other_guild.id}"), "Press", discord_.bob, in_dm=True
    )
    assert reply.ephemeral and "no record of you there" in reply.text
    reply = await discord_.harness.press(
        _message_with(f"sl:mute:{discord_.other_guild.id}:415"), "Press", discord_.bob, in_dm=True
    )
    assert "no record of you there" in reply.text
    async with discord_.services.db.read() as session:
        assert (
            await session.scalars(select(GuildPlayer).where(GuildPlayer.guild_id == discord_.other_guild.id))
        ).all() == []


async def test_the_view_names_the_server_and_keeps_nothing_in_memory(discord_) -> None:
    world = await make_world(discord_.services, guild_id=discord_.guild.id)
    payload = {"v": 1, "event": "live_race_scheduled", "occurred_at": 0, "race": {"id": world.race.id}}
    message = render(payload, guild_id=discord_.guild.id)
    view = to_view(message, lambda guild_id: "Home" if guild_id == discord_.guild.id else None)
    assert [item.label for item in view.children] == ["Mute this kind", "No more DMs from Home"]
    assert view.is_finished()  # sent, never stored: discord.py keeps no view per message
    long_name = to_view(message, lambda _: "x" * 200)
    assert len(long_name.children[1].label) == 80


async def test_notify_shows_no_more_dms_and_a_type_turned_on_there_allows_them_again(discord_) -> None:
    services, harness, alice = discord_.services, discord_.harness, discord_.alice
    await add_player(services, alice.id, "alice", guild_id=discord_.guild.id)
    await harness.press(_message_with(f"sl:dmsoff:{discord_.guild.id}"), "Press", alice, in_dm=True)
    panel = (await harness.run("notify", alice)).with_buttons()
    assert "No DMs from this server at all" in panel.text
    pressed = await harness.click(panel, "Room open", alice)  # turned on here: the server's DMs come again
    assert "No DMs from this server at all" not in pressed.last.text
    assert await services.notifications.guild_dms_off(alice.id, discord_.guild.id) is False


async def test_a_reminder_dm_mutes_the_servers_reminders_and_the_undo_restores_the_choice(
    discord_, fake_discord, dispatch
) -> None:
    """A reminder has no type code: its Mute this kind turns the server's general reminders off for the player (an
    own choice of none, which outweighs the server's default); the undo restores exactly what they had."""
    services, harness, alice = discord_.services, discord_.harness, discord_.alice
    guild_id = discord_.guild.id
    await subscribed_everywhere(discord_, alice.id)
    await services.reminders.set_offsets(alice.id, guild_id, "1h,10m")
    world = await make_world(services, guild_id=guild_id, scheduled_at=services.clock() + timedelta(minutes=30))
    assert await services.reminders.queue_due() == 1
    await dispatch()
    (reminder,) = dms_to(fake_discord, alice.id)
    assert labels(reminder) == ["Mute this kind", "No more DMs from this server"]
    assert buttons(reminder)[0]["custom_id"] == f"sl:mutereminders:{guild_id}"

    reply = await harness.press(reminder, "Mute this kind", alice, in_dm=True)
    assert reply.ephemeral and "Reminders from **Home** are off" in reply.text and "RSVP" in reply.text
    assert await services.reminders.offsets(alice.id, guild_id) == ()
    assert "already off. Nothing changed" in (await harness.press(reminder, "Mute this kind", alice, in_dm=True)).text
    await services.reminders.set_rsvp(guild_id, world.race.id, alice.id, False)
    await set_race(services, world.race.id, scheduled_at=services.clock() + timedelta(minutes=5))
    assert await services.reminders.queue_due() == 0  # the 10 min one is due: muted, nothing queued

    undo = await harness.press(reply.last, "Undo", alice, in_dm=True)
    assert undo.ephemeral and "are back (1 h, 10 min before each race)" in undo.text
    assert await services.reminders.offsets(alice.id, guild_id) == (60, 10)

    # Chosen nothing (the server's default applied): muting writes "none", the undo takes the choice away again.
    await services.guilds.update(guild_id, MODERATOR, default_reminder_offsets=[1440])
    await services.reminders.restore_general(alice.id, guild_id, None)
    reply = await harness.press(reminder, "Mute this kind", alice, in_dm=True)
    assert "Reminders from **Home** are off" in reply.text
    undo = await harness.press(reply.last, "Undo", alice, in_dm=True)
    assert "(24 h before each race)" in undo.text
    assert await services.reminders.offsets(alice.id, guild_id) == ()  # no own choice: the default applies


@pytest.mark.parametrize("custom_id", ["sl:remindersback:1:abc", "sl:remindersback:1", "sl:mutereminders:x"])
async def test_a_malformed_reminder_button_changes_nothing(discord_, custom_id: str) -> None:
    reply = await discord_.harness.press(_message_with(custom_id), "Press", discord_.alice, in_dm=True)
    assert reply.ephemeral and reply.text == MALFORMED


async def test_a_reminder_button_for_a_server_the_member_is_not_on_makes_nothing(discord_) -> None:
    reply = await discord_.harness.press(
        _message_with(f"sl:mutereminders:{discord_.other_guild.id}"), "Press", discord_.bob, in_dm=True
    )
    assert reply.ephemeral and "no record of you there" in reply.text
    async with discord_.services.db.read() as session:
        assert (
            await session.scalars(select(GuildPlayer).where(GuildPlayer.guild_id == discord_.other_guild.id))
        ).all() == []
