"""Storage rules that hold at the database level, whatever code path writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import delete, select, text
from sqlalchemy.exc import IntegrityError, StatementError

from db.models import LiveRace, Player, Pool, RaceStatus, Run, RunStatus, Seed, Tournament
from tests.conftest import GUILD


async def seed_run(db) -> tuple[int, int, int, int]:
    async with db.transaction() as session:
        tournament = Tournament(guild_id=GUILD, name="T")
        session.add(tournament)
        await session.flush()
        pool = Pool(tournament_id=tournament.id, name="P")
        player = Player(discord_user_id=5)
        session.add_all([pool, player])
        await session.flush()
        seed = Seed(pool_id=pool.id, url="https://x.test/1")
        session.add(seed)
        await session.flush()
        race = LiveRace(
            guild_id=GUILD,
            tournament_id=tournament.id,
            pool_id=pool.id,
            seed_id=seed.id,
            title="r",
            scheduled_at=datetime(2026, 1, 1, tzinfo=UTC),
            marker="m1",
            status=RaceStatus.FINISHED,
        )
        session.add(race)
        await session.flush()
        run = Run(
            tournament_id=tournament.id,
            seed_id=seed.id,
            player_id=player.id,
            live_race_id=race.id,
            status=RunStatus.FINISHED,
            elapsed_us=1,
        )
        session.add(run)
        await session.flush()
        return tournament.id, seed.id, race.id, run.id


async def test_datetimes_come_back_aware_utc(db) -> None:
    berlin = timezone(timedelta(hours=1))
    moment = datetime(2026, 6, 1, 20, 30, 15, 123456, tzinfo=berlin)
    tournament_id, _, race_id, _ = await seed_run(db)
    async with db.transaction() as session:
        race = await session.get(LiveRace, race_id)
        race.scheduled_at = moment
    async with db.read() as session:
        stored = await session.scalar(select(LiveRace.scheduled_at).where(LiveRace.id == race_id))
        created = await session.scalar(select(Tournament.created_at).where(Tournament.id == tournament_id))
    assert stored == moment and stored.tzinfo is UTC and stored.hour == 19
    assert created.tzinfo is UTC


@pytest.mark.parametrize(
    ("stored_text", "expected"),
    [
        ("2026-06-01 19:30:15.123456", datetime(2026, 6, 1, 19, 30, 15, 123456, tzinfo=UTC)),  # this type's own
        ("2026-06-01 19:30:15", datetime(2026, 6, 1, 19, 30, 15, tzinfo=UTC)),  # SQLite's CURRENT_TIMESTAMP
        ("2026-06-01T21:30:15+02:00", datetime(2026, 6, 1, 19, 30, 15, tzinfo=UTC)),  # written with an offset
        ("2026-06-01 19:30:15Z", datetime(2026, 6, 1, 19, 30, 15, tzinfo=UTC)),
    ],
)
async def test_stored_datetime_text_comes_back_aware_utc(db, stored_text, expected) -> None:
    if db.dialect != "sqlite":
        pytest.skip("the text forms are SQLite's")
    _, _, race_id, _ = await seed_run(db)
    async with db.transaction() as session:
        await session.execute(
            text("UPDATE live_races SET scheduled_at = :at WHERE id = :id"), {"at": stored_text, "id": race_id}
        )
    async with db.read() as session:
        stored = await session.scalar(select(LiveRace.scheduled_at).where(LiveRace.id == race_id))
    assert stored == expected and stored.tzinfo is UTC


async def test_naive_datetimes_are_refused(db) -> None:
    _, _, race_id, _ = await seed_run(db)
    with pytest.raises(StatementError, match="naive datetime"):
        async with db.transaction() as session:
            race = await session.get(LiveRace, race_id)
            race.scheduled_at = datetime(2026, 6, 1, 20, 30)  # noqa: DTZ001 (naive on purpose: it must be refused)


async def test_recorded_runs_survive_deletes(db) -> None:
    tournament_id, seed_id, race_id, run_id = await seed_run(db)
    for statement in (
        delete(Tournament).where(Tournament.id == tournament_id),
        delete(Seed).where(Seed.id == seed_id),
        delete(Player),
    ):
        with pytest.raises(IntegrityError):
            async with db.transaction() as session:
                await session.execute(statement)
    async with db.transaction() as session:
        await session.execute(delete(LiveRace).where(LiveRace.id == race_id))
    async with db.read() as session:
        run = await session.get(Run, run_id)
    assert run is not None and run.live_race_id is None


async def test_unique_constraints(db) -> None:
    tournament_id, *_ = await seed_run(db)
    async with db.read() as session:
        pool_id = await session.scalar(select(Pool.id))
    duplicates = [
        Tournament(guild_id=GUILD, name="T"),
        Pool(tournament_id=tournament_id, name="P"),
        Seed(pool_id=pool_id, url="https://x.test/1"),
        LiveRace(
            guild_id=GUILD,
            tournament_id=tournament_id,
            pool_id=pool_id,
            title="x",
            scheduled_at=datetime(2026, 1, 1, tzinfo=UTC),
            marker="m1",
        ),
    ]
    for row in duplicates:
        with pytest.raises(IntegrityError):
            async with db.transaction() as session:
                session.add(row)
