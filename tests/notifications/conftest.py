"""Fixtures for the notification tests: the application's clock, an in-memory delivery and a dispatcher over them
(`app_clock`, `app_delivery`, `app_dispatcher`), and the real discord.py HTTP client against a fake Discord.

The first three are named apart from the lifecycle fixtures' `clock` (tests/fakes/lifecycle.py, which
test_live_race_service.py uses with a running Application): a fixture of that name here would replace it there."""

from __future__ import annotations

import discord
import pytest

from bot.discord_delivery import DiscordDelivery
from bot.notifications.dispatcher import NotificationDispatcher
from tests.fakes.discord_rest import FakeDiscordRest
from tests.fakes.lifecycle import Clock
from tests.fakes.notifications import RecordingDelivery


@pytest.fixture
def app_clock(services) -> Clock:
    """A settable clock that the services (`services.clock`) and the dispatcher both follow."""
    clock = Clock()
    services.clock.source = clock
    return clock


@pytest.fixture
def app_delivery() -> RecordingDelivery:
    """An in-memory delivery that records every DM, post and edit."""
    return RecordingDelivery()


@pytest.fixture
def app_dispatcher(services, app_clock, app_delivery) -> NotificationDispatcher:
    """The real dispatcher, sending through `app_delivery` at `app_clock`'s time."""
    return NotificationDispatcher(services.db, services.settings, lambda: app_delivery, clock=app_clock)


@pytest.fixture
async def fake_discord(monkeypatch):
    fake = await FakeDiscordRest().start()
    monkeypatch.setattr(discord.http.Route, "BASE", fake.api_base)
    yield fake
    await fake.stop()


@pytest.fixture
async def discord_client(fake_discord):
    """A logged-in discord.py client with no gateway: REST only, as during dispatch."""
    client = discord.Client(intents=discord.Intents.none(), max_ratelimit_timeout=30.0)
    await client.login("fake-token")
    yield client
    await client.close()


@pytest.fixture
def discord_delivery(discord_client):
    return DiscordDelivery(discord_client, rate_limit_per_second=500, is_available=lambda: True)
