"""Fixtures for notification tests that run the real discord.py HTTP client against a fake Discord."""

from __future__ import annotations

import discord
import pytest

from bot.discord_delivery import DiscordDelivery
from tests.fakes.discord_rest import FakeDiscordRest


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
