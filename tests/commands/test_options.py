"""The transformers of options that name things (cogs/_common/options.py), through the real command tree:
resolution stays in the caller's guild, and each value is looked up once per command."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.actors import Actor
from db.types import utcnow
from tests.commands.conftest import MODERATOR_PERMS

SYSTEM = Actor.system()


async def setup_guild(services, guild_id: int, name: str):
    tournament = await services.tournaments.create_tournament(guild_id, SYSTEM, name=name)
    pool = await services.tournaments.add_pool(guild_id, tournament.id, SYSTEM, name="Pool A")
    seed = await services.tournaments.add_seed(
        guild_id, tournament.id, pool.id, SYSTEM, url=f"https://alttpr.com/h/{guild_id}"
    )
    profile = await services.room_profiles.create(guild_id, SYSTEM, name=f"Fast {name}", start_delay=10)
    return {"tournament": tournament, "pool": pool, "seed": seed, "room_profile": profile}


@pytest.mark.parametrize("option", ["tournament", "pool", "seed", "room_profile"])
async def test_ids_of_another_guild_are_not_found_and_nothing_is_made(discord_, option) -> None:
    d = discord_
    mine = await setup_guild(d.services, d.guild.id, "Cup")
    theirs = await setup_guild(d.services, d.other_guild.id, "Theirs")
    values = {name: str(thing.id) for name, thing in mine.items()} | {option: str(theirs[option].id)}
    reply = await d.harness.run("liverace-admin create", d.mod, perms=MODERATOR_PERMS, when="in 1h", **values)
    assert reply.ephemeral and "not found" in reply.text.lower(), reply.text
    assert "Theirs" not in reply.text and "alttpr.com" not in reply.text
    assert (await d.services.live_races.list(d.guild.id)).items == []
    assert (await d.services.live_races.list(d.other_guild.id)).items == []


async def test_each_named_value_is_looked_up_once(discord_, monkeypatch) -> None:
    d = discord_
    made = await setup_guild(d.services, d.guild.id, "Cup")
    tournament, pool, seed = made["tournament"], made["pool"], made["seed"]
    calls: list[str] = []
    tournaments = d.services.tournaments
    for method in ("get_tournament", "get_pool", "get_seed"):
        original = getattr(tournaments, method)

        async def counted(*args, _original=original, _name=method, **kwargs):
            calls.append(_name)
            return await _original(*args, **kwargs)

        monkeypatch.setattr(tournaments, method, counted)
    # the seed option needs the pool, which needs the tournament: each is still read once
    asked = await d.harness.run(
        "seed remove", d.mod, perms=MODERATOR_PERMS, tournament=str(tournament.id), pool=str(pool.id), seed=str(seed.id)
    )
    assert f"Remove seed #{seed.id}" in asked.text
    assert sorted(calls) == ["get_pool", "get_seed", "get_tournament"]


async def test_a_pool_is_read_within_the_races_tournament(discord_) -> None:
    d = discord_
    mine = await setup_guild(d.services, d.guild.id, "Cup")
    tournament, pool = mine["tournament"], mine["pool"]
    other_pool = (await setup_guild(d.services, d.guild.id, "Other Cup"))["pool"]
    view = await d.services.live_races.create(
        d.guild.id, tournament.id, SYSTEM, pool_id=pool.id, scheduled_at=utcnow() + timedelta(hours=1)
    )
    refused = await d.harness.run(
        "liverace-admin edit", d.mod, perms=MODERATOR_PERMS, race=str(view.race.id), pool=str(other_pool.id)
    )
    assert refused.text == f"Pool {other_pool.id} not found in this tournament.", refused.text
    by_name = await d.harness.run(
        "liverace-admin edit", d.mod, perms=MODERATOR_PERMS, race=str(view.race.id), pool="pool a"
    )
    assert "Updated" in by_name.text and (await d.services.live_races.get(d.guild.id, view.race.id)).pool.id == pool.id
