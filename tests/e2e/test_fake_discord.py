"""The fake Discord speaks enough of the gateway for the real discord.py client: ready, an outage, a resume."""

from __future__ import annotations

import asyncio

import aiohttp
import discord
import pytest
import yarl

from tests.fakes.discord_rest import BOT_USER_ID, FakeDiscordRest

GUILD = 123_456_789_012_345_678


@pytest.fixture
async def fake(monkeypatch):
    fake = await FakeDiscordRest.with_gateway([GUILD]).start()
    monkeypatch.setattr(discord.http.Route, "BASE", fake.api_base)
    monkeypatch.setattr(discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(fake.gateway_url))
    yield fake
    await fake.stop()


class Client(discord.Client):
    def __init__(self) -> None:
        super().__init__(intents=discord.Intents.default(), guild_ready_timeout=0.1)
        self.seen: asyncio.Queue[str] = asyncio.Queue()

    async def on_ready(self) -> None:
        self.seen.put_nowait("ready")

    async def on_disconnect(self) -> None:
        self.seen.put_nowait("disconnect")

    async def on_resumed(self) -> None:
        self.seen.put_nowait("resumed")


async def next_event(client: Client, expected: str) -> None:
    """Skip to `expected` (a safety net of 30 s, not a measurement)."""
    while await asyncio.wait_for(client.seen.get(), 30) != expected:
        pass


async def test_discord_py_gets_ready_survives_an_outage_and_resumes(fake):
    async with aiohttp.ClientSession() as session, session.get(f"{fake.api_base}/gateway/bot") as response:
        assert (await response.json())["url"] == fake.gateway_url

    client = Client()
    async with client:
        runner = asyncio.create_task(client.start("fake-token"))
        await next_event(client, "ready")
        assert client.user.id == BOT_USER_ID and client.application_id == BOT_USER_ID
        assert [guild.id for guild in client.guilds] == [GUILD]
        assert fake.gateway.connections == 1

        await fake.down()
        await next_event(client, "disconnect")
        channel = client.get_partial_messageable(1)
        with pytest.raises(discord.DiscordServerError):
            await channel.send("during the outage")
        fake.up()
        await next_event(client, "resumed")
        assert (fake.gateway.identifies, fake.gateway.resumes) == (1, 1)
        assert fake.gateway.refused >= 1 and fake.unavailable_answers == 1

        await client.close()
        await runner


async def test_a_repeated_nonce_makes_no_second_message(fake):
    fake.add_text_channel(42)
    client = discord.Client(intents=discord.Intents.none())
    async with client:
        await client.login("fake-token")
        channel = client.get_partial_messageable(42)
        first = await channel.send("hello", nonce="startline-1")
        again = await channel.send("hello", nonce="startline-1")
        other = await channel.send("hello", nonce="startline-2")
    assert again.id == first.id != other.id
    assert len(fake.posts_in(42)) == 2 and fake.nonce_replays == 1
