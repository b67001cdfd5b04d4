"""Par times, scores and the leaderboard, through the services and as pure functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.errors import Conflict, NotFound, ValidationFailed
from bot.services.scoring import build_leaderboard, par_time, run_score
from db.models import RunStatus
from tests.conftest import GUILD, MODERATOR


def test_par_is_mean_of_five_fastest() -> None:
    assert par_time([100, 200, 300, 400, 500, 600, 50]) == pytest.approx((50 + 100 + 200 + 300 + 400) / 5)
    assert par_time([300, 100]) == 200  # fewer than five: all of them
    assert par_time([]) is None


@pytest.mark.parametrize(
    ("status", "elapsed", "par", "expected"),
    [
        (RunStatus.FINISHED, 100.0, 100.0, 100.0),
        (RunStatus.FINISHED, 150.0, 100.0, 50.0),
        (RunStatus.FINISHED, 50.0, 100.0, 105.0),  # clamped high
        (RunStatus.FINISHED, 250.0, 100.0, 0.0),  # clamped low
        (RunStatus.FORFEIT, None, 100.0, 0.0),
        (RunStatus.DISQUALIFIED, None, 100.0, 0.0),
        (RunStatus.IN_PROGRESS, None, 100.0, None),
        (RunStatus.PENDING, None, None, None),
        (RunStatus.FINISHED, 100.0, None, None),
    ],
)
def test_run_score(status, elapsed, par, expected) -> None:
    assert run_score(status, elapsed, par) == expected


def test_leaderboard_missing_slots_score_zero_and_ties_share_rank() -> None:
    pools = [(1, "A"), (2, "B")]
    players = {10: (1010, "alice"), 20: (2020, "bob"), 30: (3030, "carol")}
    runs = [(10, 1, 100.0), (10, 1, 80.0), (10, 2, 90.0), (20, 1, 100.0), (20, 2, 100.0), (30, 1, 100.0)]
    board = build_leaderboard(7, 2, pools, runs, players)
    by_name = {entry.display_name: entry for entry in board.entries}
    assert by_name["alice"].score == pytest.approx((100 + 80 + 90 + 0) / 4)
    assert by_name["bob"].score == pytest.approx((100 + 0 + 100 + 0) / 4)
    assert by_name["carol"].score == pytest.approx(100 / 4)
    assert [e.rank for e in board.entries] == [1, 2, 3]
    tied = build_leaderboard(7, 1, [(1, "A")], [(10, 1, 50.0), (20, 1, 50.0), (30, 1, 10.0)], players)
    assert [e.rank for e in tied.entries] == [1, 1, 3]


@pytest.fixture
async def tournament(services):
    t = await services.tournaments.create_tournament(GUILD, MODERATOR, name="Q", runs_per_pool=2, max_reattempts=1)
    pool_a = await services.tournaments.add_pool(GUILD, t.id, MODERATOR, name="A")
    pool_b = await services.tournaments.add_pool(GUILD, t.id, MODERATOR, name="B")
    seeds = [
        await services.tournaments.add_seed(GUILD, t.id, pool.id, MODERATOR, url=f"https://x.test/{pool.name}{n}")
        for pool in (pool_a, pool_b)
        for n in range(2)
    ]
    for user in range(1, 8):
        await services.players.upsert(GUILD, user, MODERATOR, display_name=f"p{user}")
    return t, seeds


async def imported(services, t, user, seed, status="finished", elapsed=None, **kw):
    return await services.runs.import_run(
        GUILD, t.id, MODERATOR, discord_user_id=user, seed_id=seed.id, status=status, elapsed_seconds=elapsed, **kw
    )


async def test_fewer_than_five_finishers_and_forfeits(services, tournament) -> None:
    t, seeds = tournament
    await imported(services, t, 1, seeds[0], elapsed=3000)
    await imported(services, t, 2, seeds[0], elapsed=4000)
    await imported(services, t, 3, seeds[0], status="forfeit")
    await imported(services, t, 4, seeds[0], status="disqualified")
    seed = await services.tournaments.get_seed(GUILD, t.id, seeds[0].pool_id, seeds[0].id)
    assert seed.par_time == pytest.approx(3500)  # forfeits and DQs do not count towards par
    runs = {v.player.discord_user_id: v.run for v in (await services.runs.list_runs(GUILD, t.id)).items}
    assert runs[1].score == 105  # (2 − 3000/3500) × 100 = 114.3, clamped
    assert runs[2].score == pytest.approx((2 - 4000 / 3500) * 100)
    assert runs[3].score == 0 and runs[4].score == 0


async def test_par_uses_five_fastest_and_scores_update_when_a_faster_run_arrives(services, tournament) -> None:
    t, seeds = tournament
    for user, elapsed in zip(range(1, 7), (3600, 3700, 3800, 3900, 4000, 5000), strict=True):
        await imported(services, t, user, seeds[0], elapsed=elapsed)
    seed = await services.tournaments.get_seed(GUILD, t.id, seeds[0].pool_id, seeds[0].id)
    assert seed.par_time == pytest.approx(3800)
    slow = next(v.run for v in (await services.runs.list_runs(GUILD, t.id, discord_user_id=6)).items)
    assert slow.score == pytest.approx((2 - 5000 / 3800) * 100)
    await imported(services, t, 7, seeds[0], elapsed=2000)
    seed = await services.tournaments.get_seed(GUILD, t.id, seeds[0].pool_id, seeds[0].id)
    assert seed.par_time == pytest.approx((2000 + 3600 + 3700 + 3800 + 3900) / 5)
    slow = next(v.run for v in (await services.runs.list_runs(GUILD, t.id, discord_user_id=6)).items)
    assert slow.score == pytest.approx((2 - 5000 / seed.par_time) * 100)


async def test_reattempted_runs_leave_par_and_leaderboard(services, tournament) -> None:
    t, seeds = tournament
    first = await imported(services, t, 1, seeds[0], elapsed=1000)
    await imported(services, t, 2, seeds[0], elapsed=4000)
    await services.runs.mark_reattempted(GUILD, t.id, first.id, MODERATOR)
    seed = await services.tournaments.get_seed(GUILD, t.id, seeds[0].pool_id, seeds[0].id)
    assert seed.par_time == pytest.approx(4000)
    board = await services.scoring.leaderboard(GUILD, t.id)
    assert [e.discord_user_id for e in board.entries] == [2]
    # max_reattempts is 1: a second reattempt is refused, and so is a reattempted import over budget
    second = await imported(services, t, 1, seeds[1], elapsed=3000)
    with pytest.raises(Conflict, match="all 1 reattempts"):
        await services.runs.mark_reattempted(GUILD, t.id, second.id, MODERATOR)
    with pytest.raises(Conflict):
        await services.runs.mark_reattempted(GUILD, t.id, first.id, MODERATOR)


async def test_leaderboard_runs_per_pool_two(services, tournament) -> None:
    t, seeds = tournament
    a1, a2, b1, _ = seeds
    await imported(services, t, 1, a1, elapsed=3000)
    await imported(services, t, 1, a2, elapsed=3000)
    await imported(services, t, 1, b1, elapsed=3000)
    await imported(services, t, 2, a1, elapsed=3000)
    board = await services.scoring.leaderboard(GUILD, t.id)
    top = board.entries[0]
    assert top.discord_user_id == 1
    # three 100-point runs over four slots (2 pools × 2 runs)
    assert top.score == pytest.approx(300 / 4)
    assert board.entries[1].score == pytest.approx(100 / 4)
    assert top.pool_scores[b1.pool_id] == [pytest.approx(100.0)]


async def test_import_validation(services, tournament) -> None:
    t, seeds = tournament
    cases = [
        ({"status": "finished"}, "elapsed_seconds"),
        ({"status": "finished", "elapsed": -5}, "elapsed_seconds"),
        ({"status": "finished", "elapsed": 10**9}, "elapsed_seconds"),
        ({"status": "forfeit", "elapsed": 100}, "elapsed_seconds"),
        ({"status": "won"}, "status"),
    ]
    for kwargs, field in cases:
        with pytest.raises(ValidationFailed) as info:
            await imported(services, t, 1, seeds[0], **kwargs)
        assert info.value.field == field
    with pytest.raises(ValidationFailed) as info:
        await imported(services, t, 1, seeds[0], elapsed=100, finished_at=datetime(2026, 1, 1, 12, 0))  # noqa: DTZ001 (naive on purpose: it must be refused)
    assert info.value.field == "finished_at"
    with pytest.raises(NotFound):
        await imported(services, t, 999, seeds[0], elapsed=100)  # not a player of the guild
    await imported(services, t, 1, seeds[0], elapsed=100)
    with pytest.raises(Conflict):
        await imported(services, t, 1, seeds[0], elapsed=200)  # same seed twice
    assert len((await services.runs.list_runs(GUILD, t.id)).items) == 1


async def test_import_keeps_exact_microseconds_and_times(services, tournament) -> None:
    t, seeds = tournament
    finished_at = datetime(2026, 5, 1, 20, 0, 0, 123456, tzinfo=UTC)
    run = await imported(services, t, 1, seeds[0], elapsed=5025.678901, finished_at=finished_at)
    view = (await services.runs.list_runs(GUILD, t.id)).items[0]
    assert view.run.id == run.id
    assert view.run.elapsed_us == 5_025_678_901
    assert view.run.end_time == finished_at and view.run.end_time.tzinfo is not None
    assert view.run.start_time == finished_at - timedelta(microseconds=5_025_678_901)
