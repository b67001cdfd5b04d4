"""Batch creation: every line checked first, every error listed, all or nothing, dry_run creates nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import delete, func, select

from bot.errors import ValidationFailed
from bot.events import LiveRaceScheduled
from bot.services import Services
from db.models import AuditEntry, EventType, LiveRace, Notification, NotificationKind
from db.types import utcnow
from tests.conftest import GUILD, MODERATOR, OTHER_GUILD
from tests.fakes.lifecycle import add_player, make_world
from tests.fakes.notifications import outbox_shape


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
    assert result.created[0].race.seed_id == world.seeds[0].id


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


async def test_a_batch_queues_exactly_the_rows_one_race_at_a_time_would(services: Services) -> None:
    """The batch's set-wise outbox (`OutboxWriter.write_many`) against `write` per race: the same DMs (eligible
    subscribers only, per pool and seed), payloads, dedupe keys and announcements."""
    world = await make_world(services)
    await services.guilds.update(GUILD, MODERATOR, announcement_channel_id=555)
    linked = [await add_player(services, 700 + i, f"P{i}", f"rtbatch{i:04d}") for i in range(3)]
    await add_player(services, 799, "Unlinked")  # subscribed but not eligible: no racetime account
    for discord_id in [700, 701, 702, 799]:
        await services.notifications.set_preference(
            discord_id, EventType.LIVE_RACE_SCHEDULED, True, guild_id=None, actor=MODERATOR
        )
    # P0 already raced a seed of Pool A (one run per pool): eligible for the Pool B race only.
    await services.runs.import_run(
        GUILD,
        world.tournament.id,
        MODERATOR,
        discord_user_id=700,
        seed_id=world.seeds[0].id,
        status="finished",
        elapsed_seconds=3600,
    )
    items = [
        {"pool_id": world.pool.id, "scheduled_at": _at(5), "seed_id": world.seeds[0].id},
        {"pool_id": world.pool.id, "scheduled_at": _at(6)},
        {"pool_id": world.other_pool.id, "scheduled_at": _at(7)},
        {"pool_id": world.pool.id, "scheduled_at": _at(8)},
    ]
    result = await services.batch.create(GUILD, world.tournament.id, MODERATOR, items)
    ids = [view.race.id for view in result.created]

    async with services.db.read() as session:
        batched = outbox_shape((await session.scalars(select(Notification))).all())
    async with services.db.transaction() as session:
        await session.execute(delete(Notification))
        for race_id in ids:
            event = LiveRaceScheduled(
                guild_id=GUILD, tournament_id=world.tournament.id, live_race_id=race_id, occurred_at=utcnow()
            )
            await services.notifications.outbox.write(session, event)
    async with services.db.read() as session:
        one_by_one = outbox_shape((await session.scalars(select(Notification))).all())
    assert batched == one_by_one
    dms = [row for row in batched if row[0] == NotificationKind.DM]
    # The linked subscribers of each race (P0 only for Pool B's), never the unlinked one.
    assert len(dms) == 3 * len(ids) - 3
    assert {row[1] for row in dms} == {player.id for player in linked}
    assert len([row for row in batched if row[0] == NotificationKind.CHANNEL]) == len(ids)
    # Each new race's Discord Scheduled Event, as for a race made alone.
    assert len([row for row in batched if row[0] == NotificationKind.SCHEDULED_EVENT]) == len(ids)
