"""Building blocks for the live race tests: a tournament with pools and seeds, players, a movable clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from bot.services import Services
from db.models import Permalink, Player, Pool, Tournament
from tests.conftest import GUILD, MODERATOR


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
    seeds: list[Permalink]
    other_pool: Pool


async def make_world(
    services: Services, *, guild_id: int = GUILD, name: str = "Spring Qualifier", seeds: int = 3, **tournament_fields
) -> World:
    tournaments = services.tournaments
    tournament = await tournaments.create_tournament(guild_id, MODERATOR, name=name, **tournament_fields)
    pool = await tournaments.add_pool(guild_id, tournament.id, MODERATOR, name="Pool A")
    other = await tournaments.add_pool(guild_id, tournament.id, MODERATOR, name="Pool B")
    made = [
        await tournaments.add_permalink(
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
