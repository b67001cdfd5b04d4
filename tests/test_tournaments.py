"""Tournaments, pools and seeds: validation, uniqueness, guild isolation, audit, safe deletion."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from bot.errors import Conflict, NotFound, ValidationFailed
from db.models import AuditEntry
from tests.conftest import GUILD, MODERATOR, OTHER_GUILD


async def audit_actions(services, guild_id=GUILD) -> list[str]:
    page = await services.audit.list(guild_id, limit=200, newest_first=False)
    return [entry.action for entry in page.items]


async def test_create_and_edit_tournament_with_audit(services) -> None:
    tournament = await services.tournaments.create_tournament(
        GUILD, MODERATOR, name="  Spring Qualifier ", runs_per_pool=2, racetime_goal="Beat the game"
    )
    assert tournament.name == "Spring Qualifier"
    assert tournament.active and tournament.max_reattempts == -1
    edited = await services.tournaments.update_tournament(
        GUILD, tournament.id, MODERATOR, custom_goal="Any% seed race", description="Round 1"
    )
    # choosing a custom goal replaces the category goal
    assert edited.custom_goal == "Any% seed race" and edited.racetime_goal is None
    entries = (await services.audit.list(GUILD, target_type="tournament", target_id=tournament.id)).items
    assert [e.action for e in entries] == ["tournament.update", "tournament.create"]
    assert entries[0].actor_type == "player" and entries[0].actor_name == "moderator"
    assert entries[0].details["after"]["custom_goal"] == "Any% seed race"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": "ok", "runs_per_pool": 0}, "runs_per_pool"),
        ({"name": "ok", "runs_per_pool": 21}, "runs_per_pool"),
        ({"name": "ok", "runs_per_pool": True}, "runs_per_pool"),
        ({"name": "ok", "max_reattempts": -2}, "max_reattempts"),
        ({"name": "ok", "racetime_category": "not a slug!"}, "racetime_category"),
        ({"name": "ok", "racetime_goal": "Beat", "custom_goal": "Other"}, "custom_goal"),
        ({"name": "ok", "room_open_lead_minutes": 5000}, "room_open_lead_minutes"),
        ({"name": "ok", "colour": "red"}, "colour"),
    ],
)
async def test_invalid_tournament_fields_change_nothing(services, fields, field) -> None:
    name = fields.pop("name")
    with pytest.raises(ValidationFailed) as info:
        await services.tournaments.create_tournament(GUILD, MODERATOR, name=name, **fields)
    assert info.value.field == field
    assert (await services.tournaments.list_tournaments(GUILD)).items == []
    async with services.db.read() as session:
        assert await session.scalar(select(func.count(AuditEntry.id))) == 0


async def test_names_are_unique_per_guild_case_insensitively(services) -> None:
    await services.tournaments.create_tournament(GUILD, MODERATOR, name="Qualifier")
    with pytest.raises(Conflict):
        await services.tournaments.create_tournament(GUILD, MODERATOR, name="qualifier")
    # another guild may use the same name
    other = await services.tournaments.create_tournament(OTHER_GUILD, MODERATOR, name="Qualifier")
    assert other.guild_id == OTHER_GUILD


async def test_pools_and_seeds(services) -> None:
    t = await services.tournaments.create_tournament(GUILD, MODERATOR, name="Q")
    pool = await services.tournaments.add_pool(GUILD, t.id, MODERATOR, name="Open", description="open mode")
    with pytest.raises(Conflict):
        await services.tournaments.add_pool(GUILD, t.id, MODERATOR, name="OPEN")
    seed = await services.tournaments.add_seed(GUILD, t.id, pool.id, MODERATOR, url="https://alttpr.com/h/abc")
    with pytest.raises(Conflict):
        await services.tournaments.add_seed(GUILD, t.id, pool.id, MODERATOR, url="https://alttpr.com/h/abc")
    for bad in ("", "alttpr.com/h/abc", "javascript:alert(1)", "https://" + "a" * 600):
        with pytest.raises(ValidationFailed):
            await services.tournaments.add_seed(GUILD, t.id, pool.id, MODERATOR, url=bad)
    assert [p.id for p in await services.tournaments.list_seeds(GUILD, t.id, pool.id)] == [seed.id]
    updated = await services.tournaments.update_seed(GUILD, t.id, pool.id, seed.id, MODERATOR, notes="fast")
    assert updated.notes == "fast"
    await services.tournaments.remove_seed(GUILD, t.id, pool.id, seed.id, MODERATOR)
    await services.tournaments.remove_pool(GUILD, t.id, pool.id, MODERATOR)
    assert await services.tournaments.list_pools(GUILD, t.id) == []
    assert await audit_actions(services) == [
        "tournament.create",
        "pool.create",
        "seed.create",
        "seed.update",
        "seed.delete",
        "pool.delete",
    ]


async def test_another_guilds_ids_behave_as_missing(services) -> None:
    t = await services.tournaments.create_tournament(GUILD, MODERATOR, name="Q")
    pool = await services.tournaments.add_pool(GUILD, t.id, MODERATOR, name="A")
    seed = await services.tournaments.add_seed(GUILD, t.id, pool.id, MODERATOR, url="https://x.test/1")
    calls = [
        services.tournaments.get_tournament(OTHER_GUILD, t.id),
        services.tournaments.update_tournament(OTHER_GUILD, t.id, MODERATOR, name="stolen"),
        services.tournaments.delete_tournament(OTHER_GUILD, t.id, MODERATOR),
        services.tournaments.add_pool(OTHER_GUILD, t.id, MODERATOR, name="B"),
        services.tournaments.list_pools(OTHER_GUILD, t.id),
        services.tournaments.get_pool(OTHER_GUILD, t.id, pool.id),
        services.tournaments.remove_pool(OTHER_GUILD, t.id, pool.id, MODERATOR),
        services.tournaments.add_seed(OTHER_GUILD, t.id, pool.id, MODERATOR, url="https://x.test/2"),
        services.tournaments.list_seeds(OTHER_GUILD, t.id, pool.id),
        services.tournaments.remove_seed(OTHER_GUILD, t.id, pool.id, seed.id, MODERATOR),
        services.runs.list_runs(OTHER_GUILD, t.id),
        services.scoring.leaderboard(OTHER_GUILD, t.id),
        services.eligibility.for_pool(OTHER_GUILD, t.id, pool.id),
    ]
    for call in calls:
        with pytest.raises(NotFound):
            await call
    assert (await services.tournaments.list_tournaments(OTHER_GUILD)).items == []
    assert (await services.tournaments.get_tournament(GUILD, t.id)).name == "Q"
    # a pool of one tournament is missing under another tournament of the same guild
    t2 = await services.tournaments.create_tournament(GUILD, MODERATOR, name="Q2")
    with pytest.raises(NotFound):
        await services.tournaments.get_pool(GUILD, t2.id, pool.id)


async def test_recorded_runs_block_deletion(services) -> None:
    t = await services.tournaments.create_tournament(GUILD, MODERATOR, name="Q")
    pool = await services.tournaments.add_pool(GUILD, t.id, MODERATOR, name="A")
    seed = await services.tournaments.add_seed(GUILD, t.id, pool.id, MODERATOR, url="https://x.test/1")
    await services.players.upsert(GUILD, 42, MODERATOR, display_name="alice")
    await services.runs.import_run(
        GUILD, t.id, MODERATOR, discord_user_id=42, seed_id=seed.id, status="finished", elapsed_seconds=5000
    )
    for call in (
        services.tournaments.remove_seed(GUILD, t.id, pool.id, seed.id, MODERATOR),
        services.tournaments.remove_pool(GUILD, t.id, pool.id, MODERATOR),
        services.tournaments.delete_tournament(GUILD, t.id, MODERATOR),
        services.tournaments.update_seed(GUILD, t.id, pool.id, seed.id, MODERATOR, url="https://x.test/2"),
    ):
        with pytest.raises(Conflict):
            await call
    assert len((await services.runs.list_runs(GUILD, t.id)).items) == 1


async def test_list_pagination_and_filters(services) -> None:
    for index in range(5):
        await services.tournaments.create_tournament(GUILD, MODERATOR, name=f"T{index}", active=index % 2 == 0)
    first = await services.tournaments.list_tournaments(GUILD, limit=2)
    second = await services.tournaments.list_tournaments(GUILD, limit=2, cursor=first.next_cursor)
    third = await services.tournaments.list_tournaments(GUILD, limit=2, cursor=second.next_cursor)
    names = [t.name for page in (first, second, third) for t in page.items]
    assert names == ["T0", "T1", "T2", "T3", "T4"] and third.next_cursor is None
    active = await services.tournaments.list_tournaments(GUILD, active=True)
    assert [t.name for t in active.items] == ["T0", "T2", "T4"]
    assert [t.name for t in (await services.tournaments.list_tournaments(GUILD, search="3")).items] == ["T3"]
    for bad_cursor in ("!!", "aWQ6eA", "Zm9vOjE"):
        with pytest.raises(ValidationFailed):
            await services.tournaments.list_tournaments(GUILD, cursor=bad_cursor)
    for bad_limit in (0, 201):
        with pytest.raises(ValidationFailed):
            await services.tournaments.list_tournaments(GUILD, limit=bad_limit)
