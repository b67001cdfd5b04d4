"""Crash-proof delivery: stop the whole application after queuing, after sending, in the middle of sending;
start it again; every player gets each DM exactly once (counted at the fake Discord)."""

from __future__ import annotations

import asyncio
from collections import Counter

import discord
import pytest
from sqlalchemy import update

from bot.app import Application
from bot.discord_delivery import DiscordDelivery
from bot.events import LiveRaceRoomOpened, LiveRaceScheduled
from db.models import Notification, NotificationStatus
from tests.fakes.notifications import add_player, make_world, publish, subscribe

PLAYERS = range(3001, 3013)
CHANNEL = 4_000_000_000_000_001


class Process:
    """One run of the bot: the application plus a fresh discord.py client (a restart loses every cache)."""

    def __init__(self, settings) -> None:
        self.app = Application(settings, start_jobs=False)
        self.client = discord.Client(intents=discord.Intents.none())

    async def __aenter__(self) -> Application:
        await self.app.start()
        await self.client.login("fake-token")
        self.app.delivery = DiscordDelivery(self.client, rate_limit_per_second=500, is_available=lambda: True)
        return self.app

    async def __aexit__(self, *exc) -> None:
        await self.app.stop()
        await self.client.close()


async def dispatch(app: Application) -> None:
    await app.jobs.run_once("notification_dispatcher")
    assert app.jobs.status["notification_dispatcher"].last_error is None


@pytest.fixture
def settings(settings):
    return settings.model_copy(update={"api": settings.api.model_copy(update={"enabled": False})})


async def test_each_dm_goes_out_exactly_once_across_restarts(settings, fake_discord):
    async with Process(settings) as app:  # 1: queue, then stop before anything is sent
        world = await make_world(app.services)
        for uid in PLAYERS:
            await add_player(app.services, uid, f"p{uid}")
            await subscribe(app.services, uid)
        scheduled = world.event(LiveRaceScheduled)
        await publish(app.services, scheduled)
    assert fake_discord.delivered == []

    async with Process(settings) as app:  # 2: send, then stop
        await dispatch(app)
    assert fake_discord.dm_counts() == {uid: 1 for uid in PLAYERS}

    async with Process(settings) as app:  # 3: the same event again after a restart, and a new one
        await publish(app.services, scheduled)
        await publish(app.services, world.event(LiveRaceRoomOpened))
        await dispatch(app)

    async with Process(settings) as app:  # 4: nothing is left to send
        await dispatch(app)
        summary = await app.services.notifications.delivery_summary(world.guild_id, world.race.id)
    assert fake_discord.dm_counts() == {uid: 2 for uid in PLAYERS}
    assert summary["sent"] == 2 * len(PLAYERS)
    assert fake_discord.requests["POST /users/@me/channels"] == len(PLAYERS)  # channels survived restarts


async def test_stopping_in_the_middle_of_a_batch_loses_and_repeats_nothing(settings, fake_discord):
    fake_discord.message_delay = 0.02
    async with Process(settings) as app:
        world = await make_world(app.services)
        for uid in PLAYERS:
            await add_player(app.services, uid, f"p{uid}")
            await subscribe(app.services, uid)
        await publish(app.services, world.event(LiveRaceScheduled))
        sending = asyncio.create_task(dispatch(app))
        await asyncio.wait_for(fake_discord.wait_for_deliveries(3), 10)
    await sending  # the stop let the messages in flight finish and released the rest
    first_run = len(fake_discord.delivered)
    assert 3 <= first_run < len(PLAYERS)

    async with Process(settings) as app:
        await dispatch(app)
        log = await app.services.notifications.delivery_log(world.guild_id, world.race.id)
    assert fake_discord.dm_counts() == {uid: 1 for uid in PLAYERS}
    assert Counter(n.status for n in log.items) == {NotificationStatus.SENT: len(PLAYERS)}


async def test_a_message_discord_got_but_whose_outcome_was_lost_is_not_delivered_twice(settings, fake_discord):
    """A SIGKILL between Discord's answer and the outcome's write leaves the rows claimed but unsent; once the
    lease runs out they are sent again, with the same nonces, and Discord makes no second message."""
    fake_discord.add_text_channel(CHANNEL)
    async with Process(settings) as app:
        world = await make_world(app.services, announcement_channel_id=CHANNEL)
        for uid in PLAYERS:
            await add_player(app.services, uid, f"p{uid}")
            await subscribe(app.services, uid)
        await publish(app.services, world.event(LiveRaceScheduled))
        await dispatch(app)
        async with app.db.transaction() as session:  # the outcomes never reached the database
            await session.execute(
                update(Notification).values(status=NotificationStatus.PENDING, attempts=0, sent_at=None)
            )
    assert len(fake_discord.delivered) == len(PLAYERS) + 1

    async with Process(settings) as app:
        await dispatch(app)
        summary = await app.services.notifications.delivery_summary(world.guild_id, world.race.id)
    assert fake_discord.dm_counts() == {uid: 1 for uid in PLAYERS}
    assert len(fake_discord.posts_in(CHANNEL)) == 1
    assert fake_discord.nonce_replays == len(PLAYERS) + 1
    assert summary["sent"] == len(PLAYERS) + 1
