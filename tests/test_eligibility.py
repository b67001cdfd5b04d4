"""Eligibility: each rule's reason, the first failing rule wins, and a fixed number of queries."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import event

from bot.services import Services
from bot.services.eligibility import (
    REASON_INACTIVE,
    REASON_NOT_LINKED,
    REASON_NOT_MEMBER,
    REASON_PLAYED_SEED,
    REASON_UNFINISHED,
    compute_eligibility,
)
from db.models import Run, RunStatus
from db.types import utcnow
from tests.conftest import GUILD, MODERATOR, OTHER_GUILD
from tests.fakes.lifecycle import add_player, make_world


async def _run(services: Services, world, player, seed, status=RunStatus.FINISHED, **fields) -> Run:
    async with services.db.transaction() as session:
        run = Run(
            tournament_id=world.tournament.id,
            seed_id=seed.id,
            player_id=player.id,
            status=status,
            elapsed_us=3_600_000_000 if status is RunStatus.FINISHED else None,
            **fields,
        )
        session.add(run)
    return run


async def _report(services: Services, world, seed_id=None, **kwargs):
    async with services.db.read() as session:
        return await compute_eligibility(
            session, guild_id=GUILD, tournament=world.tournament, pool=world.pool, seed_id=seed_id, **kwargs
        )


def _reasons(report) -> dict[str, str | None]:
    reasons = {candidate.display_name: reason for candidate, reason in report.ineligible}
    reasons.update({candidate.display_name: None for candidate in report.eligible})
    return reasons


async def test_each_rule_gives_its_reason(services: Services) -> None:
    world = await make_world(services, runs_per_pool=2)
    seed, other_seed, third = world.seeds
    pool_b_seed = await services.tournaments.add_seed(
        GUILD, world.tournament.id, world.other_pool.id, MODERATOR, url="https://alttpr.com/h/poolb"
    )
    free = await add_player(services, 1, "Free", "aaaaaaaaaaaa0001")
    unlinked = await add_player(services, 2, "Unlinked")
    full = await add_player(services, 3, "Full", "aaaaaaaaaaaa0003")
    unfinished = await add_player(services, 4, "Unfinished", "aaaaaaaaaaaa0004")
    played = await add_player(services, 5, "Played", "aaaaaaaaaaaa0005")
    reattempter = await add_player(services, 6, "Reattempter", "aaaaaaaaaaaa0006")
    elsewhere = await add_player(services, 7, "Elsewhere", "aaaaaaaaaaaa0007")
    await add_player(services, 8, "Foreigner", "aaaaaaaaaaaa0008", guild_id=OTHER_GUILD)

    await _run(services, world, full, other_seed)
    await _run(services, world, full, third, status=RunStatus.FORFEIT)  # any status counts
    await _run(services, world, unfinished, pool_b_seed, status=RunStatus.PENDING)  # anywhere in the tournament
    await _run(services, world, played, seed, reattempted=True)  # reattempted: not counted, but the seed was played
    await _run(services, world, reattempter, other_seed, reattempted=True)
    await _run(services, world, reattempter, third)
    await _run(services, world, elsewhere, pool_b_seed)
    await _run(services, world, elsewhere, pool_b_seed, reattempted=True)
    await _run(services, world, unlinked, other_seed)  # not linked is checked first

    report = await _report(services, world, seed_id=seed.id)
    assert _reasons(report) == {
        "Free": None,
        "Unlinked": REASON_NOT_LINKED,
        "Full": "Already ran 2 of 2 in pool Pool A",
        "Unfinished": REASON_UNFINISHED,
        "Played": REASON_PLAYED_SEED,
        "Reattempter": None,
        "Elsewhere": None,
    }
    assert report.eligible_ids == {free.id, reattempter.id, elsewhere.id}
    assert report.reason_for(full.id) == "Already ran 2 of 2 in pool Pool A"
    assert report.reason_for(free.id) is None
    assert report.reason_for(999_999) == REASON_NOT_MEMBER
    # Before a seed is chosen, rule 5 cannot fail.
    assert _reasons(await _report(services, world))["Played"] is None


async def test_pool_full_is_reported_before_an_unfinished_run_and_played_seed(services: Services) -> None:
    world = await make_world(services)
    player = await add_player(services, 1, "Busy", "aaaaaaaaaaaa0001")
    await _run(services, world, player, world.seeds[0], status=RunStatus.IN_PROGRESS)
    report = await _report(services, world, seed_id=world.seeds[0].id)
    assert report.reason_for(player.id) == "Already ran 1 of 1 in pool Pool A"


async def test_inactive_tournament_makes_everyone_ineligible(services: Services) -> None:
    world = await make_world(services)
    await add_player(services, 1, "A", "aaaaaaaaaaaa0001")
    await add_player(services, 2, "B")
    world.tournament.active = False
    report = await _report(services, world)
    assert _reasons(report) == {"A": REASON_INACTIVE, "B": REASON_INACTIVE}


async def test_subset_and_excluding_a_live_race(services: Services) -> None:
    world = await make_world(services)
    racer = await add_player(services, 1, "Racer", "aaaaaaaaaaaa0001")
    other = await add_player(services, 2, "Other", "aaaaaaaaaaaa0002")
    view = await services.live_races.create(
        GUILD, world.tournament.id, MODERATOR, pool_id=world.pool.id, scheduled_at=utcnow() + timedelta(hours=1)
    )
    await _run(services, world, racer, world.seeds[0], status=RunStatus.IN_PROGRESS, live_race_id=view.race.id)
    report = await _report(services, world, seed_id=world.seeds[0].id, player_ids=[racer.id])
    assert [c.player_id for c, _ in report.ineligible] == [racer.id] and report.eligible == []
    again = await _report(
        services, world, seed_id=world.seeds[0].id, player_ids=[racer.id], exclude_live_race_id=view.race.id
    )
    assert again.eligible_ids == {racer.id}
    assert other.id not in again.eligible_ids | {c.player_id for c, _ in again.ineligible}


async def test_query_count_does_not_grow_with_players(services: Services) -> None:
    world = await make_world(services)
    statements: list[str] = []

    def count(conn, cursor, statement, *args) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    async def queries() -> int:
        statements.clear()
        event.listen(services.db.engine.sync_engine, "before_cursor_execute", count)
        try:
            await _report(services, world, seed_id=world.seeds[0].id)
        finally:
            event.remove(services.db.engine.sync_engine, "before_cursor_execute", count)
        return len(statements)

    await add_player(services, 1, "One", "aaaaaaaaaaaa0001")
    few = await queries()
    for index in range(2, 40):
        player = await add_player(services, index, f"P{index}", f"aaaaaaaaaaaa{index:04d}")
        await _run(services, world, player, world.seeds[index % 3])
    many = await queries()
    assert few == many == 2


async def test_service_eligibility_uses_the_race_seed(services: Services) -> None:
    world = await make_world(services, runs_per_pool=3)
    player = await add_player(services, 1, "Seeded", "aaaaaaaaaaaa0001")
    await _run(services, world, player, world.seeds[1])
    view = await services.live_races.create(
        GUILD,
        world.tournament.id,
        MODERATOR,
        pool_id=world.pool.id,
        seed_id=world.seeds[1].id,
        scheduled_at=utcnow() + timedelta(hours=1),
    )
    report = await services.live_races.eligibility(GUILD, view.race.id, tournament_id=world.tournament.id)
    assert report.reason_for(player.id) == REASON_PLAYED_SEED
    assert report.seed_id == world.seeds[1].id
