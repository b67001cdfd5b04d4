"""Fixtures of the REST API tests: a real Application (SQLite file) with its real services, talking to the fake
RaceTime.gg (tests/fakes/racetime_server/) over HTTP; the aiohttp test server and client; tokens of two
guilds; and the same small world of objects seeded in both guilds."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from bot.api.server import create_api_app
from bot.app import Application
from bot.settings import Settings
from db.models import Base, EventType, Notification, NotificationKind, NotificationStatus, RaceScheduledEvent
from db.types import utcnow
from tests.conftest import GUILD, MODERATOR, OTHER_GUILD, make_settings
from tests.fakes.lifecycle import racetime_client
from tests.fakes.racetime_data import captured_user
from tests.fakes.racetime_server import FakeRacetime

PLAYER_ID = 300_000_000_000_000_001
OTHER_PLAYER_ID = 400_000_000_000_000_001
FOREIGN_MARK = "other-guild-secret"
# The RaceTime.gg accounts of the seeded players (users the fake knows), and of a newcomer tests may add.
PLAYER_RACETIME = captured_user("Carol")
OTHER_PLAYER_RACETIME = captured_user("Bob")
NEWCOMER_RACETIME = captured_user("Alice")


def event_id_of(race_id: int) -> int:
    """The seeded race's (made-up) Discord Scheduled Event id."""
    return 6_000_000_000_000_000_000 + race_id


@dataclass
class World:
    """Ids of the objects seeded in one guild."""

    tid: int
    pid: int
    sid: int
    spare_sid: int
    rid: int
    run_id: int
    profile_id: int
    discord_user_id: int
    template_id: int = 0
    series_id: int = 0
    phase_id: int = 0
    season_id: int = 0


async def seed_world(
    app: Application, guild_id: int, discord_user_id: int, racetime_user: dict[str, Any], label: str
) -> World:
    services = app.services
    # No Discord Scheduled Events here (their own tests cover them): the API's delivery log and queue show messages.
    await services.guilds.update(guild_id, MODERATOR, scheduled_events=False)
    profile = await services.room_profiles.create(guild_id, MODERATOR, name=f"profile {label}", start_delay=20)
    tournament = await services.tournaments.create_tournament(guild_id, MODERATOR, name=f"tournament {label}")
    pool = await services.tournaments.add_pool(guild_id, tournament.id, MODERATOR, name=f"pool {label}")
    seed = await services.tournaments.add_seed(
        guild_id, tournament.id, pool.id, MODERATOR, url=f"https://seeds.example/{label}/1"
    )
    spare = await services.tournaments.add_seed(
        guild_id, tournament.id, pool.id, MODERATOR, url=f"https://seeds.example/{label}/2"
    )
    await services.players.upsert(
        guild_id,
        discord_user_id,
        MODERATOR,
        display_name=f"player {label}",
        racetime_id=racetime_user["id"],
        racetime_name=racetime_user["name"],
    )
    run = await services.runs.import_run(
        guild_id,
        tournament.id,
        MODERATOR,
        discord_user_id=discord_user_id,
        seed_id=spare.id,
        status="finished",
        elapsed_seconds=5400.5,
        finished_at=utcnow() - timedelta(days=1),
    )
    view = await services.live_races.create(
        guild_id,
        tournament.id,
        MODERATOR,
        pool_id=pool.id,
        scheduled_at=utcnow() + timedelta(days=2),
        title=f"race {label}",
        seed_id=seed.id,
    )
    async with app.db.transaction() as session:
        session.add(
            Notification(
                kind=NotificationKind.DM,
                event_type=EventType.LIVE_RACE_SCHEDULED,
                guild_id=guild_id,
                live_race_id=view.race.id,
                dedupe_key=f"test:{guild_id}:{view.race.id}",
                status=NotificationStatus.FAILED,
                attempts=5,
                error="Forbidden",
            )
        )
        # The race's Discord Scheduled Event as the dispatcher records it, so the gateway's Interested reaches it.
        session.add(
            RaceScheduledEvent(guild_id=guild_id, live_race_id=view.race.id, event_id=event_id_of(view.race.id))
        )
    await services.reminders.set_interest(guild_id, event_id_of(view.race.id), discord_user_id, True)
    await services.guilds.update(guild_id, MODERATOR, default_reminder_offsets=[60])
    # Issue 15's objects: a template, a series whose first occurrence lies beyond the job's window (so it makes no
    # race here), a phase holding the pool, a season of the tournament.
    template = await services.templates.create(
        guild_id,
        tournament.id,
        MODERATOR,
        name=f"template {label}",
        pool_ids=[pool.id],
        start_time="20:00",
        timezone="Europe/Berlin",
    )
    series = await services.series.create(
        guild_id,
        tournament.id,
        MODERATOR,
        name=f"series {label}",
        template_id=template.id,
        rrule="FREQ=WEEKLY",
        starts_on=(utcnow() + timedelta(days=60)).date(),
    )
    phase = await services.phases.create(guild_id, tournament.id, MODERATOR, name=f"phase {label}", pool_ids=[pool.id])
    season = await services.seasons.create(guild_id, MODERATOR, name=f"season {label}", tournament_ids=[tournament.id])
    return World(
        template_id=template.id,
        series_id=series.series.id,
        phase_id=phase.phase.id,
        season_id=season.season.id,
        tid=tournament.id,
        pid=pool.id,
        sid=seed.id,
        spare_sid=spare.id,
        rid=view.race.id,
        run_id=run.id,
        profile_id=profile.id,
        discord_user_id=discord_user_id,
    )


@dataclass
class Api:
    app: Application
    client: TestClient
    rt: FakeRacetime
    tokens: dict[str, str]
    mine: World
    foreign: World

    async def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = "manage",
        json: Any = None,
        data: Any = None,
        headers: dict[str, str] | None = None,
        params: Any = None,
    ) -> tuple[int, Any, Any]:
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {self.tokens[token]}"
        response = await self.client.request(method, path, json=json, data=data, headers=sent, params=params)
        body = await response.json() if response.content_type == "application/json" else await response.read()
        return response.status, body, response

    async def close(self) -> None:
        await self.client.close()
        await self.app.db.dispose()
        if self.app.racetime is not None:
            await self.app.racetime.aclose()
        await self.rt.stop()


async def start_api(settings: Settings) -> Api:
    """The API of a real Application on `settings`' database, its rooms on a fake RaceTime.gg; jobs stay off."""
    rt = FakeRacetime(seed=7)
    await rt.serve()
    app = Application(settings, run_migrations=False, start_jobs=False, racetime_client=racetime_client(rt))
    async with app.db.engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    tokens = {
        "manage": (await app.services.tokens.create(GUILD, MODERATOR, name="manage", scope="manage")).secret,
        "read": (await app.services.tokens.create(GUILD, MODERATOR, name="read", scope="read")).secret,
        "other": (await app.services.tokens.create(OTHER_GUILD, MODERATOR, name="other", scope="manage")).secret,
    }
    mine = await seed_world(app, GUILD, PLAYER_ID, PLAYER_RACETIME, "mine")
    foreign = await seed_world(app, OTHER_GUILD, OTHER_PLAYER_ID, OTHER_PLAYER_RACETIME, FOREIGN_MARK)
    client = TestClient(TestServer(create_api_app(app), host="127.0.0.1"))
    await client.start_server()
    return Api(app, client, rt, tokens, mine, foreign)


@pytest_asyncio.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    started = await start_api(settings)
    try:
        yield started
    finally:
        await started.close()


@pytest.fixture
def settings_with(settings: Settings, tmp_path):
    """Settings with overrides, for tests that need another rate limit or body size (the environment is cleared
    as for `settings`)."""

    def build(**overrides: Any) -> Settings:
        return make_settings(tmp_path, **overrides)

    return build
