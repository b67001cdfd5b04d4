"""Building blocks for the live race tests: a tournament with pools and seeds, players, a movable clock.

Its fixtures (`rt`, `clock`, `app`) are registered for the whole suite by `tests/conftest.py`; a module or a
folder's conftest that needs another kind of application overrides `app`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio

from bot.app import Application
from bot.services import Services
from bot.services.race_poller import PollReport
from bot.services.room_opener import OpenerReport
from bot.settings import Settings
from db.models import Player, Pool, Seed, Tournament
from racetime.client import RacetimeClient
from tests.conftest import GUILD, MODERATOR
from tests.fakes.racetime_server import FakeRacetime

# RaceTime.gg caches its category listing for 60 s; the tests' fake for 10 s of the test clock (which they move).
LISTING_CACHE_SECONDS = 10.0


@dataclass
class Clock:
    """A settable UTC clock for services that take `clock`."""

    now: datetime = field(default_factory=lambda: datetime.now(UTC).replace(microsecond=0))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@dataclass
class World:
    tournament: Tournament
    pool: Pool
    seeds: list[Seed]
    other_pool: Pool


async def make_world(
    services: Services, *, guild_id: int = GUILD, name: str = "Spring Qualifier", seeds: int = 3, **tournament_fields
) -> World:
    tournaments = services.tournaments
    tournament = await tournaments.create_tournament(guild_id, MODERATOR, name=name, **tournament_fields)
    pool = await tournaments.add_pool(guild_id, tournament.id, MODERATOR, name="Pool A")
    other = await tournaments.add_pool(guild_id, tournament.id, MODERATOR, name="Pool B")
    made = [
        await tournaments.add_seed(
            guild_id, tournament.id, pool.id, MODERATOR, url=f"https://alttpr.com/h/{name[:3]}seed{index}"
        )
        for index in range(seeds)
    ]
    return World(tournament, pool, made, other)


async def add_player(
    services: Services,
    discord_user_id: int,
    name: str,
    racetime_id: str | None = None,
    *,
    guild_id: int = GUILD,
) -> Player:
    player, _ = await services.players.upsert(
        guild_id,
        discord_user_id,
        MODERATOR,
        display_name=name,
        racetime_id=racetime_id,
        racetime_name=name if racetime_id else None,
    )
    return player


def racetime_client(rt: FakeRacetime, *, request_timeout: float = 2.0) -> RacetimeClient:
    """A client of the fake; no automatic GET retries, so a fault shows up in one cycle."""
    return RacetimeClient(rt.base_url, rt.client_id, rt.client_secret, timeout=request_timeout, retries=0)


@asynccontextmanager
async def running_app(
    settings: Settings, rt: FakeRacetime, clock: Clock, *, request_timeout: float = 2.0
) -> AsyncIterator[Application]:
    """An Application on the settings' database file, talking to the fake; jobs are driven by the test."""
    client = racetime_client(rt, request_timeout=request_timeout)
    settings.racetime.listing_cache_seconds = rt.cache_ttl  # the bot waits as long as the fake caches
    app = Application(settings, start_jobs=False, racetime_client=client)
    app.services.live_races.clock = clock
    app.events.keep_history = True
    await app.start()
    try:
        yield app
    finally:
        if app.started:
            await app.stop()
        await client.aclose()


async def open_rooms(app: Application, *, expect_errors: bool = False) -> OpenerReport:
    """One room opener cycle; unless told otherwise, no race may fail."""
    report = await app.services.live_races.opener.run_cycle()
    if not expect_errors:
        assert report.failed == 0, report
    return report


async def poll(app: Application, *, expect_errors: bool = False, fresh: bool = True) -> PollReport:
    """One poller cycle; unless told otherwise, nothing may fail.

    `fresh`: first let the listing cache time pass (the clock moves on), so the cycle sees what changed on the
    fake since the last listing; without it the poller may read a cached listing, as it often does for real.
    """
    if fresh:
        app.services.live_races.clock.advance(seconds=app.settings.racetime.listing_cache_seconds)
    report = await app.services.live_races.poller.run_cycle()
    if not expect_errors:
        assert report.errors == 0, report
    return report


@pytest_asyncio.fixture
async def rt(clock: Clock) -> AsyncIterator[FakeRacetime]:
    """The fake RaceTime.gg on 127.0.0.1 (its slugs and secrets from a fixed seed), with the category listing
    cached like the real site's, for LISTING_CACHE_SECONDS of the test's clock."""
    async with FakeRacetime(seed=7, cache_ttl=LISTING_CACHE_SECONDS, cache_clock=lambda: clock.now.timestamp()) as fake:
        yield fake


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest_asyncio.fixture
async def app(settings: Settings, rt: FakeRacetime, clock: Clock) -> AsyncIterator[Application]:
    """A started Application without the API server, talking to the fake; jobs are driven by the test."""
    settings.api.enabled = False
    async with running_app(settings, rt, clock) as application:
        yield application
