"""Phases (advancement, the eligibility rule inside the same two queries) and seasons (sum, best N of M, ties)."""

from __future__ import annotations

import pytest
from sqlalchemy import event, func, select

from bot.errors import Conflict
from bot.services import Services
from bot.services.eligibility import compute_eligibility
from db.models import PhaseStanding, Run, RunStatus
from tests.conftest import GUILD, MODERATOR
from tests.fakes.lifecycle import add_player, make_world


async def _finished(services: Services, tournament_id: int, player, seed, seconds: int) -> None:
    async with services.db.transaction() as session:
        session.add(
            Run(
                tournament_id=tournament_id,
                seed_id=seed.id,
                player_id=player.id,
                status=RunStatus.FINISHED,
                elapsed_us=seconds * 1_000_000,
            )
        )
    await services.scoring.recompute(GUILD, tournament_id)


async def test_closing_a_phase_advances_its_top_and_gates_the_next_phase(services: Services) -> None:
    world = await make_world(services)
    tid = world.tournament.id
    final_seed = await services.tournaments.add_seed(
        GUILD, tid, world.other_pool.id, MODERATOR, url="https://alttpr.com/h/final"
    )
    qualifier = await services.phases.create(GUILD, tid, MODERATOR, name="Qualifier", pool_ids=[world.pool.id])
    top = await services.phases.create(
        GUILD, tid, MODERATOR, name="Top 2", advance_count=2, pool_ids=[world.other_pool.id]
    )
    players = [await add_player(services, i, f"P{i}", f"aaaaaaaaaaaa000{i}") for i in range(1, 5)]
    for player, seconds in zip(players, (3000, 3100, 3200, 3300), strict=True):
        await _finished(services, tid, player, world.seeds[0], seconds)
    late = await add_player(services, 9, "Late", "aaaaaaaaaaaa0009")

    statements: list[str] = []

    def count(conn, cursor, statement, *args) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    async def report():
        statements.clear()
        event.listen(services.db.engine.sync_engine, "before_cursor_execute", count)
        try:
            async with services.db.read() as session:
                return await compute_eligibility(
                    session,
                    guild_id=GUILD,
                    tournament=world.tournament,
                    pool=world.other_pool,
                    seed_id=final_seed.id,
                )
        finally:
            event.remove(services.db.engine.sync_engine, "before_cursor_execute", count)

    before = await report()
    assert len(statements) == 2
    assert (
        before.reason_for(players[0].id) == "Qualifier is not closed yet: only the players it advances race this phase"
    )
    # The qualifier's own pool is not gated.
    async with services.db.read() as session:
        open_pool = await compute_eligibility(
            session, guild_id=GUILD, tournament=world.tournament, pool=world.pool, seed_id=None
        )
    assert open_pool.reason_for(late.id) is None

    standings = await services.phases.close(GUILD, tid, qualifier.phase.id, MODERATOR, top=2)
    assert [(s.display_name, s.rank, s.advanced) for s in standings] == [
        ("P1", 1, True),
        ("P2", 2, True),
        ("P3", 3, False),
        ("P4", 4, False),
    ]
    with pytest.raises(Conflict, match="already closed"):
        await services.phases.close(GUILD, tid, qualifier.phase.id, MODERATOR, top=3)
    async with services.db.read() as session:
        assert await session.scalar(select(func.count()).select_from(PhaseStanding)) == 4  # unchanged

    after = await report()
    assert len(statements) == 2  # the phase rule lives inside the same two queries
    assert after.reason_for(players[0].id) is None and after.reason_for(players[1].id) is None
    assert after.reason_for(players[2].id) == "Not advanced from Qualifier (ranked 3)"
    assert after.reason_for(late.id) == "Did not place in Qualifier"
    # Scores are per phase: the final's leaderboard has no qualifier runs.
    assert (await services.phases.leaderboard(GUILD, tid, top.phase.id)).entries == []
    assert len((await services.scoring.leaderboard(GUILD, tid)).entries) == 4


async def test_a_moderators_list_advances_exactly_those(services: Services) -> None:
    world = await make_world(services)
    tid = world.tournament.id
    phase = await services.phases.create(GUILD, tid, MODERATOR, name="Qualifier", pool_ids=[world.pool.id])
    await services.phases.create(GUILD, tid, MODERATOR, name="Final", pool_ids=[world.other_pool.id])
    ranked = await add_player(services, 1, "Ranked", "aaaaaaaaaaaa0001")
    wildcard = await add_player(services, 2, "Wildcard", "aaaaaaaaaaaa0002")
    await _finished(services, tid, ranked, world.seeds[0], 3000)
    standings = await services.phases.close(
        GUILD, tid, phase.phase.id, MODERATOR, advance_discord_user_ids=[wildcard.discord_user_id]
    )
    assert [(s.display_name, s.rank, s.advanced) for s in standings] == [("Ranked", 1, False), ("Wildcard", None, True)]
    async with services.db.read() as session:
        report = await compute_eligibility(
            session, guild_id=GUILD, tournament=world.tournament, pool=world.other_pool, seed_id=None
        )
    assert report.reason_for(wildcard.id) is None
    assert report.reason_for(ranked.id) == "Not advanced from Qualifier (ranked 1)"


async def test_season_sum_and_best_of_with_shared_ranks(services: Services) -> None:
    first = await make_world(services, name="Week One")
    second = await make_world(services, name="Week Two")
    third = await make_world(services, name="Week Three")
    a = await add_player(services, 1, "Alice", "aaaaaaaaaaaa0001")
    b = await add_player(services, 2, "bob", "aaaaaaaaaaaa0002")
    c = await add_player(services, 3, "Carol", "aaaaaaaaaaaa0003")
    # Week one: Alice and Bob equal; week two: Carol alone; week three: Bob alone.
    await _finished(services, first.tournament.id, a, first.seeds[0], 3600)
    await _finished(services, first.tournament.id, b, first.seeds[0], 3600)
    await _finished(services, second.tournament.id, c, second.seeds[0], 3600)
    await _finished(services, third.tournament.id, b, third.seeds[0], 3600)
    ids = [first.tournament.id, second.tournament.id, third.tournament.id]
    season = await services.seasons.create(GUILD, MODERATOR, name="2026", tournament_ids=ids)
    board = await services.seasons.leaderboard(GUILD, season.season.id)
    # Each tournament averages over its two pools, so one par run there scores 50.
    assert [(e.rank, e.display_name, round(e.score, 3)) for e in board.entries] == [
        (1, "bob", 100.0),
        (2, "Alice", 50.0),
        (2, "Carol", 50.0),
    ]
    await services.seasons.update(GUILD, season.season.id, MODERATOR, rule="best", best_of=1)
    board = await services.seasons.leaderboard(GUILD, season.season.id)
    # Everyone's best single tournament: a three-way tie, ordered by name as the tournament leaderboard does.
    assert [(e.rank, e.display_name) for e in board.entries] == [(1, "Alice"), (1, "bob"), (1, "Carol")]
    assert board.entries[1].counted in ((first.tournament.id,), (third.tournament.id,))
    with pytest.raises(Conflict):
        await services.seasons.add_tournament(GUILD, season.season.id, first.tournament.id, MODERATOR)
