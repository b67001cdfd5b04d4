"""Notifications of a whole live race driven by the real LiveRaceService, room opener and poller (against the
fake RaceTime.gg), delivered through the real discord.py client to the fake Discord: each DM exactly once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import discord
import pytest
import pytest_asyncio

from bot.app import Application
from bot.discord_delivery import DiscordDelivery
from db.models import EventType
from tests.conftest import GUILD, MODERATOR
from tests.fakes.lifecycle import Clock, add_player, make_world, open_rooms, poll, running_app
from tests.fakes.racetime_data import captured_user
from tests.fakes.racetime_server import FakeRacetime

ALICE, BOB, CAROL = (captured_user(name) for name in ("Alice", "Bob", "Carol"))
ALICE_ID, BOB_ID, CAROL_ID = 801, 802, 803  # Discord users
CHANNEL = 4242


class Gateway:
    """Whether the bot is connected to Discord: while it is not, the dispatcher leaves every row waiting."""

    connected = True


@pytest.fixture
def gateway() -> Gateway:
    return Gateway()


@pytest_asyncio.fixture
async def app(settings, rt: FakeRacetime, clock: Clock, fake_discord, gateway) -> AsyncIterator[Application]:
    settings.api.enabled = False
    async with running_app(settings, rt, clock) as application:
        client = discord.Client(intents=discord.Intents.none())
        await client.login("fake-token")
        application.delivery = DiscordDelivery(
            client, rate_limit_per_second=500, is_available=lambda: gateway.connected
        )
        try:
            yield application
        finally:
            await client.close()


async def dispatch(app: Application) -> None:
    await app.jobs.run_once("notification_dispatcher")
    assert app.jobs.status["notification_dispatcher"].last_error is None


def titles(fake_discord, user_id: int) -> list[str]:
    return [dm["embeds"][0]["title"].split(":")[0] for dm in fake_discord.dms_to(user_id)]


async def test_a_live_race_from_schedule_to_results(app: Application, rt: FakeRacetime, clock, fake_discord) -> None:
    services, live = app.services, app.services.live_races
    world = await make_world(services, announcement_channel_id=CHANNEL)
    fake_discord.add_text_channel(CHANNEL)
    await add_player(services, ALICE_ID, "Alice", ALICE["id"])
    await add_player(services, BOB_ID, "Bob", BOB["id"])
    await add_player(services, CAROL_ID, "Carol", CAROL["id"])
    for user in (ALICE_ID, BOB_ID):  # Carol races but never opted in
        await services.notifications.set_all(user, True, guild_id=GUILD, actor=MODERATOR)

    view = await live.create(
        GUILD, world.tournament.id, MODERATOR, pool_id=world.pool.id, scheduled_at=clock.now + timedelta(minutes=5)
    )
    await dispatch(app)
    await open_rooms(app)
    await dispatch(app)
    slug = (await live.get(GUILD, view.race.id)).race.racetime_slug
    for user in (ALICE, BOB, CAROL):
        rt.add_entrant(slug, user)
    rt.start(slug)
    await poll(app)
    await dispatch(app)
    rt.finish_entrant(slug, ALICE["id"], timedelta(hours=1, minutes=2, seconds=3))
    rt.finish_entrant(slug, CAROL["id"], timedelta(hours=1, minutes=5))
    rt.dnf(slug, BOB["id"])
    await poll(app)
    await poll(app)  # nothing new: no second notification
    await dispatch(app)

    expected = ["📅 Live race scheduled", "🔓 Race room open", "🚦 Race started", "🏁 Race finished"]
    assert titles(fake_discord, ALICE_ID) == expected
    assert titles(fake_discord, BOB_ID) == expected
    assert fake_discord.dms_to(CAROL_ID) == []
    # One living announcement, edited at each step, and the room-open ping as a reply to it.
    _, reply = fake_discord.posts_in(CHANNEL)
    announcement_id = fake_discord.post_ids(CHANNEL)[0]
    assert int(reply["message_reference"]["message_id"]) == announcement_id
    assert len(fake_discord.edits) == 3 and {message for _, message, _ in fake_discord.edits} == {announcement_id}
    assert fake_discord.message(announcement_id)["embeds"][0]["title"].startswith("🏁 Race finished")
    alice_result = {f["name"]: f["value"] for f in fake_discord.dms_to(ALICE_ID)[-1]["embeds"][0]["fields"]}
    assert (alice_result["Your place"], alice_result["Your time"]) == ("1st of 2", "1:02:03.0")
    bob_result = {f["name"]: f["value"] for f in fake_discord.dms_to(BOB_ID)[-1]["embeds"][0]["fields"]}
    assert bob_result["Your result"] == "Forfeit (score 0)"
    summary = await services.notifications.delivery_summary(GUILD, view.race.id)
    # 13 messages and edits, and the race's Discord Scheduled Event at each of its 4 steps (on by default).
    assert summary == {"pending": 0, "retrying": 0, "sent": 17, "failed": 0, "skipped": 0, "expired": 0}
    assert [event["status"] for event in fake_discord.events_of(GUILD)] == [3]


async def test_a_moderator_cancel_tells_eligible_subscribers_once(app: Application, clock, fake_discord) -> None:
    services, live = app.services, app.services.live_races
    world = await make_world(services)
    await add_player(services, ALICE_ID, "Alice", ALICE["id"])
    await add_player(services, BOB_ID, "Bob")  # not linked: not eligible
    for user in (ALICE_ID, BOB_ID):
        await services.notifications.set_preference(user, 419, True, guild_id=None, actor=MODERATOR)
    view = await live.create(
        GUILD, world.tournament.id, MODERATOR, pool_id=world.pool.id, scheduled_at=clock.now + timedelta(hours=3)
    )
    await live.cancel(GUILD, view.race.id, MODERATOR, reason="Host unavailable")
    await dispatch(app)
    await dispatch(app)
    [dm] = fake_discord.dms_to(ALICE_ID)
    fields = {f["name"]: f["value"] for f in dm["embeds"][0]["fields"]}
    assert fields["Reason"] == "Host unavailable"
    assert fake_discord.dms_to(BOB_ID) == []


async def test_after_a_long_discord_outage_only_what_is_still_true_goes_out(
    app: Application, rt: FakeRacetime, clock, fake_discord, gateway
) -> None:
    """Discord is unreachable from before the race is scheduled until after it finished: the scheduled, room-open
    and started messages went stale meanwhile and expire; the results still go out, each once."""
    services, live = app.services, app.services.live_races
    world = await make_world(services, announcement_channel_id=CHANNEL)
    fake_discord.add_text_channel(CHANNEL)
    await add_player(services, ALICE_ID, "Alice", ALICE["id"])
    await add_player(services, BOB_ID, "Bob", BOB["id"])
    for user in (ALICE_ID, BOB_ID):
        await services.notifications.set_all(user, True, guild_id=GUILD, actor=MODERATOR)
    gateway.connected = False

    view = await live.create(
        GUILD, world.tournament.id, MODERATOR, pool_id=world.pool.id, scheduled_at=clock.now + timedelta(minutes=5)
    )
    await open_rooms(app)
    slug = (await live.get(GUILD, view.race.id)).race.racetime_slug
    for user in (ALICE, BOB):
        rt.add_entrant(slug, user)
    rt.start(slug)
    await poll(app)
    await dispatch(app)  # still down: nothing is taken
    rt.finish_entrant(slug, ALICE["id"], timedelta(hours=1))
    rt.finish_entrant(slug, BOB["id"], timedelta(hours=1, minutes=1))
    await poll(app)
    assert fake_discord.delivered == []

    gateway.connected = True
    await dispatch(app)
    await dispatch(app)  # nothing left to take: no second message
    assert titles(fake_discord, ALICE_ID) == ["🏁 Race finished"]
    assert titles(fake_discord, BOB_ID) == ["🏁 Race finished"]
    assert [post["embeds"][0]["title"].split(":")[0] for post in fake_discord.posts_in(CHANNEL)] == ["🏁 Race finished"]
    summary = await services.notifications.delivery_summary(GUILD, view.race.id)
    # Sent: the two finished DMs and the living announcement (posted once, showing the result); the earlier edits
    # of it were replaced by the last one (skipped).
    # The race's Discord Scheduled Event rows never go stale, but the race finished before its event could be made:
    # the create is skipped (no event is made late for a race that is over), and so are its 3 later steps.
    assert (summary["sent"], summary["expired"], summary["skipped"], summary["pending"]) == (3, 8, 6, 0)
    assert fake_discord.events_of(GUILD) == []
    expired = (await services.notifications.delivery_log(GUILD, view.race.id, status="expired")).items
    room_open = [n for n in expired if n.event_type is EventType.LIVE_RACE_ROOM_OPENED]
    assert len(room_open) == 3  # two DMs and the ping
    assert all(n.error.startswith("Expired unsent: the race was already finished") for n in expired)
    [entry] = (await services.audit.list(GUILD, action="notification.expire")).items
    assert (entry.target_id, entry.actor_name) == (view.race.id, "notification dispatcher")
    assert entry.details == {
        "expired": 8,
        "race_status": "finished",
        "types": {"live_race_scheduled": 3, "live_race_room_opened": 3, "live_race_started": 2},
    }
