"""`Database.rows` on a SQLite file reads on the event loop with a plain pysqlite connection and the column types'
own result processors: the rows must be exactly what SQLAlchemy itself returns, for every list query, and a read
the loop's connection cannot do (a busy database, a broken connection) is done by SQLAlchemy instead."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from bot.actors import Actor
from bot.services.live_race_views import listing_query
from db.models import LiveRace, RaceStatus
from tests.databases import TEST_DATABASE_URL

pytestmark = pytest.mark.skipif(bool(TEST_DATABASE_URL), reason="the loop reader is SQLite's (PostgreSQL reads async)")

GUILD = 424_242
MODERATOR = Actor.player(7, "mod")
START = datetime(2026, 12, 24, 18, 0, tzinfo=UTC)


async def _seed_races(services, db) -> int:
    """Races that fill every kind of column: nulls and values, JSON room settings, each status, equal start times."""
    tournaments = services.tournaments
    tournament = await tournaments.create_tournament(GUILD, MODERATOR, name="Page Cup")
    pool = await tournaments.add_pool(GUILD, tournament.id, MODERATOR, name="Main")
    seed = await tournaments.add_seed(GUILD, tournament.id, pool.id, MODERATOR, url="https://seeds.example/1")
    statuses = list(RaceStatus)
    async with db.transaction() as session:
        for index in range(30):
            status = statuses[index % len(statuses)]
            session.add(
                LiveRace(
                    guild_id=GUILD,
                    tournament_id=tournament.id,
                    pool_id=pool.id,
                    seed_id=seed.id if index % 3 else None,
                    title=f"Race {index} — ünïcode",
                    scheduled_at=START + timedelta(hours=index // 2),  # pairs tie: the id orders them
                    status=status,
                    marker=f"page-{index}",
                    created_by=MODERATOR.label,
                    room_settings={"goal": "Beat the game", "invitational": bool(index % 2)} if index % 4 else None,
                    racetime_slug=f"cool-race-{index:04d}" if index % 5 else None,
                    racetime_url=f"https://racetime.gg/ootr/cool-race-{index:04d}" if index % 5 else None,
                    room_opened_at=START + timedelta(minutes=index, microseconds=123_456) if index % 5 else None,
                    room_open_lead_minutes=index if index % 7 == 0 else None,
                    entrant_count=index,
                )
            )
    return tournament.id


def _queries(tournament_id: int):
    after = (START + timedelta(hours=7), 10**9)
    for newest_first, tournament, statuses, cursor in itertools.product((True, False), repeat=4):
        params = {"guild_id": GUILD, "limit": 11}
        if tournament:
            params["tournament_id"] = tournament_id
        if statuses:
            params["statuses"] = [RaceStatus.SCHEDULED, RaceStatus.FINISHED]
        if cursor:
            params["after_at"], params["after_id"] = after
        query = listing_query(newest_first=newest_first, tournament=tournament, statuses=statuses, after=cursor)
        yield query, params


async def test_the_loop_reader_returns_what_sqlalchemy_returns(services, db) -> None:
    tournament_id = await _seed_races(services, db)
    compared = 0
    for query, params in _queries(tournament_id):
        for limit in (1, 11, 100):
            params["limit"] = limit
            loop_rows = await db.rows(query, params)
            sqlalchemy_rows = await db._threaded_rows(query, params)
            assert loop_rows, params
            assert loop_rows == sqlalchemy_rows
            for ours, theirs in zip(loop_rows, sqlalchemy_rows, strict=True):
                assert ours._fields == theirs._fields
                assert [type(value) for value in ours] == [type(value) for value in theirs]
                assert ours.scheduled_at.tzinfo is UTC
            compared += 1
    assert compared == 48
    # a status list of another length compiles its own placeholders; an empty one matches nothing
    query = listing_query(newest_first=True, tournament=False, statuses=True, after=False)
    for statuses in ([RaceStatus.CANCELLED], list(RaceStatus), []):
        params = {"guild_id": GUILD, "limit": 100, "statuses": statuses}
        assert await db.rows(query, params) == await db._threaded_rows(query, params)
    assert await db.rows(query, {"guild_id": GUILD, "limit": 100, "statuses": []}) == []


async def test_a_missing_parameter_is_an_error_not_a_silent_null(services, db) -> None:
    await _seed_races(services, db)
    query = listing_query(newest_first=True, tournament=True, statuses=False, after=False)
    with pytest.raises(Exception, match="tournament_id"):
        await db.rows(query, {"guild_id": GUILD, "limit": 5})


async def test_the_loop_reader_sees_each_commit_at_once(services, db) -> None:
    tournament_id = await _seed_races(services, db)
    query = listing_query(newest_first=False, tournament=True, statuses=False, after=False)
    params = {"guild_id": GUILD, "tournament_id": tournament_id, "limit": 1}
    (first,) = await db.rows(query, params)
    async with db.transaction() as session:
        await session.execute(update(LiveRace).where(LiveRace.id == first.id).values(title="Renamed"))
    (again,) = await db.rows(query, params)
    assert again.title == "Renamed"


async def test_a_broken_loop_connection_falls_back_to_sqlalchemy(services, db) -> None:
    tournament_id = await _seed_races(services, db)
    query = listing_query(newest_first=True, tournament=True, statuses=False, after=False)
    params = {"guild_id": GUILD, "tournament_id": tournament_id, "limit": 5}
    expected = await db.rows(query, params)
    db._loop_reader.connection.close()
    assert await db.rows(query, params) == expected
