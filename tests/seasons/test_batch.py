"""Batch creation: every line checked first, every error listed, all or nothing, dry_run creates nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bot.errors import ValidationFailed
from bot.services import Services
from db.models import AuditEntry, LiveRace
from db.types import utcnow
from tests.conftest import GUILD, MODERATOR, OTHER_GUILD
from tests.fakes.lifecycle import make_world


def _at(hours: int) -> str:
    return (utcnow() + timedelta(hours=hours)).replace(microsecond=0).isoformat()


async def _count(services: Services) -> tuple[int, int]:
    async with services.db.read() as session:
        races = await session.scalar(select(func.count(LiveRace.id)))
        audits = await session.scalar(select(func.count(AuditEntry.id)).where(AuditEntry.action == "live_race.create"))
    return races, audits


async def test_csv_batch_is_created_whole(services: Services) -> None:
    world = await make_world(services)
    text = (
        "pool,scheduled_at,title,seed,episode_id\n"
        f"Pool A,{_at(5)},Night 1,{world.seeds[0].url},ep-1\n"
        "\n"
        f"pool b,{_at(6)},,,\n"
        f"{world.pool.id},{(utcnow() + timedelta(hours=30)).strftime('%Y-%m-%d %H:%M')},,,\n"
    )
    preview = await services.batch.create_from_csv(
        GUILD, world.tournament.id, MODERATOR, text, timezone="Europe/Berlin", dry_run=True
    )
    assert [(p.line, p.pool.name, p.title) for p in preview.planned] == [
        (2, "Pool A", "Night 1"),
        (4, "Pool B", "Spring Qualifier – Pool B"),
        (5, "Pool A", "Spring Qualifier – Pool A"),
    ]
    assert preview.created == [] and await _count(services) == (0, 0)
    result = await services.batch.create_from_csv(GUILD, world.tournament.id, MODERATOR, text, timezone="Europe/Berlin")
    assert len(result.created) == 3 and await _count(services) == (3, 3)
    assert result.created[0].race.permalink_id == world.seeds[0].id


async def test_every_bad_line_is_listed_and_nothing_is_created(services: Services) -> None:
    world = await make_world(services)
    await services.live_races.create(
        GUILD,
        world.tournament.id,
        MODERATOR,
        pool_id=world.pool.id,
        scheduled_at=utcnow() + timedelta(hours=2),
        episode_id="taken",
    )
    items = [
        {"pool_id": world.pool.id, "scheduled_at": _at(3)},  # fine
        {"pool_id": 999_999, "scheduled_at": _at(3)},  # no such pool
        {"pool_id": world.pool.id, "scheduled_at": _at(-3)},  # in the past
        {"pool_id": world.pool.id, "scheduled_at": _at(4), "episode_id": "taken"},  # used by a race
        {"pool_id": world.pool.id, "scheduled_at": _at(4), "episode_id": "twice"},
        {"pool_id": world.pool.id, "scheduled_at": _at(4), "episode_id": "twice"},  # twice in the batch
        {"pool_id": world.pool.id, "scheduled_at": "2026-13-01T00:00:00Z"},  # not a date
        {"pool_id": world.pool.id, "scheduled_at": _at(4), "room": {"start_delay": 1}},  # out of range
        {"pool_id": world.pool.id, "scheduled_at": _at(4), "bogus": 1},
    ]
    with pytest.raises(ValidationFailed) as refused:
        await services.batch.create(GUILD, world.tournament.id, MODERATOR, items)
    errors = refused.value.details["errors"]
    assert [(e["line"], e["field"]) for e in errors] == [
        (2, "pool"),
        (3, "scheduled_at"),
        (4, "episode_id"),
        (6, "episode_id"),
        (7, "scheduled_at"),
        (8, "room.start_delay"),
        (9, "bogus"),
    ]
    assert "8 of 9 lines" not in refused.value.message and "7 of 9 lines have errors" in refused.value.message
    assert await _count(services) == (1, 1)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("pool,when\nPool A,2030-01-01T00:00Z\n", "unknown column 'when'"),
        ("title\nx\n", "missing column 'pool'"),
        ("pool,pool,scheduled_at\n", "appears twice"),
        ("", "the CSV is empty"),
    ],
)
async def test_a_wrong_header_is_refused(services: Services, text: str, words: str) -> None:
    world = await make_world(services)
    with pytest.raises(ValidationFailed, match=words) as refused:
        await services.batch.create_from_csv(GUILD, world.tournament.id, MODERATOR, text, timezone="UTC")
    assert refused.value.field == "header"
    assert await _count(services) == (0, 0)


async def test_another_guilds_tournament_and_pool_names_are_not_found(services: Services) -> None:
    world = await make_world(services)
    foreign = await make_world(services, guild_id=OTHER_GUILD, name="Theirs")
    with pytest.raises(Exception, match="not found"):
        await services.batch.create(GUILD, foreign.tournament.id, MODERATOR, [{"pool_id": 1, "scheduled_at": _at(3)}])
    with pytest.raises(ValidationFailed) as refused:
        await services.batch.create(
            GUILD, world.tournament.id, MODERATOR, [{"pool_id": foreign.pool.id, "scheduled_at": _at(3)}]
        )
    assert refused.value.details["errors"][0]["field"] == "pool"
