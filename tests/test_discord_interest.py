"""Interested on a race's Discord Scheduled Event, through the real bot against the fake Discord: discord.py's
gateway client reads GUILD_SCHEDULED_EVENT_USER_ADD / _REMOVE (intent GUILD_SCHEDULED_EVENTS) and
GUILD_MEMBER_REMOVE, StartlineBot hands them to the ReminderService; at READY the bot reads the upcoming events' user
lists again (paginated), which is how interest pressed during an outage is found. The race's event is made by the
dispatcher through discord.py, as in production."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import discord
import pytest
import pytest_asyncio
import yarl
from sqlalchemy import select

from bot.app import Application
from bot.discord_bot import StartlineBot
from bot.discord_delivery import DiscordDelivery
from bot.discord_interest import USERS_PAGE
from bot.events import LiveRaceScheduled
from bot.notifications.dispatcher import NotificationDispatcher
from db.models import Base, RaceInterest
from db.types import utcnow
from tests.conftest import GUILD, MODERATOR, OTHER_GUILD
from tests.fakes.discord_gateway import GUILD_SCHEDULED_EVENTS
from tests.fakes.discord_rest import FakeDiscordRest, _user
from tests.fakes.notifications import RaceWorld, make_world, publish
from tests.test_discord_members import SAFETY_NET_SECONDS, handled

ALICE, BOB, CAROL = 320_000_000_000_000_001, 320_000_000_000_000_002, 320_000_000_000_000_003


@pytest.fixture
async def fake(monkeypatch) -> AsyncIterator[FakeDiscordRest]:
    fake = await FakeDiscordRest.with_gateway([GUILD, OTHER_GUILD]).start()
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


async def mirrored_race(
    app: Application, fake: FakeDiscordRest, name: str = "Spring Qualifier"
) -> tuple[RaceWorld, int]:
    """A race whose scheduled event the dispatcher made in the fake through discord.py; (world, event id)."""
    world = await make_world(app.services, name=name, scheduled_events=None, scheduled_at=utcnow() + timedelta(hours=6))
    await publish(app.services, world.event(LiveRaceScheduled))
    client = discord.Client(intents=discord.Intents.none())
    await client.login("fake-token")
    try:
        delivery = DiscordDelivery(client, rate_limit_per_second=500, is_available=lambda: True)
        await NotificationDispatcher(app.db, app.settings, lambda: delivery).run_once()
    finally:
        await client.close()
    [event] = [e for e in fake.events_of(GUILD) if f"[startline-race:{world.race.id}]" in e["description"]]
    return world, int(event["id"])


async def interested(app: Application, race_id: int) -> list[int]:
    return sorted(uid for uid, _ in await app.services.reminders.interested(GUILD, race_id))


async def interest_row_count(app: Application) -> int:
    async with app.db.read() as session:
        return len((await session.scalars(select(RaceInterest.id))).all())


async def started(app: Application) -> tuple[StartlineBot, asyncio.Task]:
    bot = StartlineBot(app, load_cogs=False, start_app=False)
    await bot.__aenter__()
    runner = asyncio.create_task(bot.start("fake-token"))
    await asyncio.wait_for(bot.wait_until_ready(), SAFETY_NET_SECONDS)
    return bot, runner


async def stopped(bot: StartlineBot, runner: asyncio.Task) -> None:
    await bot.close()
    await runner


async def test_pressing_interested_and_taking_it_back_reach_the_race(app, fake) -> None:
    world, event_id = await mirrored_race(app, fake)
    bot, runner = await started(app)
    try:
        assert fake.gateway.identified_intents & GUILD_SCHEDULED_EVENTS
        assert await asyncio.wait_for(bot.interest_resynced(), SAFETY_NET_SECONDS) == 0  # nobody yet

        await handled(bot, "raw_scheduled_event_user_add", fake.press_interested(GUILD, event_id, _user(ALICE, "a")))
        await handled(bot, "raw_scheduled_event_user_add", fake.press_interested(GUILD, event_id, _user(BOB, "b")))
        assert await interested(app, world.race.id) == [ALICE, BOB]
        await handled(bot, "raw_scheduled_event_user_remove", fake.take_back_interested(GUILD, event_id, BOB))
        assert await interested(app, world.race.id) == [ALICE]

        # The same event id in another guild, and an event that is no race's: ignored, nothing written.
        rows = await interest_row_count(app)
        await handled(
            bot, "raw_scheduled_event_user_add", fake.gateway.scheduled_event_user_add(OTHER_GUILD, event_id, CAROL)
        )
        await handled(bot, "raw_scheduled_event_user_add", fake.gateway.scheduled_event_user_add(GUILD, 4242, CAROL))
        assert await interest_row_count(app) == rows and await interested(app, world.race.id) == [ALICE]

        # Leaving the server withdraws it.
        await handled(bot, "raw_member_remove", fake.member_leaves(GUILD, _user(ALICE, "a")))
        assert await interested(app, world.race.id) == []
    finally:
        await stopped(bot, runner)


async def test_interest_pressed_during_an_outage_is_read_again_at_start(app, fake) -> None:
    """Nobody is connected while users press Interested (the bot is down); at READY it reads the event's user list,
    page after page, and keeps only users still in the server. Interest it had recorded that was taken back during
    the outage is withdrawn."""
    world, event_id = await mirrored_race(app, fake)
    assert await app.services.reminders.set_interest(GUILD, event_id, CAROL, True)  # before the outage
    users = [330_000_000_000_000_000 + n for n in range(USERS_PAGE + 30)]
    for uid in users:
        assert await fake.press_interested(GUILD, event_id, _user(uid, f"u{uid}")) == 0  # no session hears it
    await fake.member_leaves(GUILD, _user(users[-1], "gone"))  # left since: no member object, no interest
    await fake.press_interested(GUILD, event_id, _user(users[0] - 1, "a bot") | {"bot": True})
    bot, runner = await started(app)
    try:
        changed = await asyncio.wait_for(bot.interest_resynced(), SAFETY_NET_SECONDS)
    finally:
        await stopped(bot, runner)
    assert await interested(app, world.race.id) == users[:-1]
    assert changed == len(users) - 1 + 1  # everyone still a member in, Carol out
    pages = fake.event_user_requests
    listed = sorted([users[0] - 1, *users])  # the bot's entry is in Discord's list too
    assert [page.get("after") for page in pages] == [None, str(listed[USERS_PAGE - 1])]
    assert all(page["limit"] == str(USERS_PAGE) and page["with_member"] in ("1", "true") for page in pages)


@pytest.mark.parametrize("change", ["delete", "reschedule"])
async def test_a_user_list_read_while_the_race_changes_leaves_a_consistent_state(app, fake, change) -> None:
    """The user list request is held by the fake while a moderator deletes or moves the race: a deleted race gets
    no interest rows (and no error), a moved one keeps them for its new start."""
    world, event_id = await mirrored_race(app, fake)
    await fake.press_interested(GUILD, event_id, _user(ALICE, "a"))
    hold = fake.hold_event_users()
    bot, runner = await started(app)
    try:
        await asyncio.wait_for(hold.arrived.wait(), SAFETY_NET_SECONDS)
        if change == "delete":
            assert await app.services.live_races.delete(GUILD, world.race.id, MODERATOR) is False
        else:
            moved = world.race.scheduled_at + timedelta(hours=2)
            await app.services.live_races.edit(GUILD, world.race.id, MODERATOR, scheduled_at=moved)
        hold.release()
        changed = await asyncio.wait_for(bot.interest_resynced(), SAFETY_NET_SECONDS)
    finally:
        await stopped(bot, runner)
    if change == "delete":
        assert changed == 0 and await interest_row_count(app) == 0
    else:
        assert changed == 1 and await interested(app, world.race.id) == [ALICE]
