"""Par times, scores and the leaderboard.

- Par of a seed: the mean of its 5 fastest finished, non-reattempted runs (all of them when fewer).
- Score of a run: clamp((2 − elapsed/par) × 100, 0, 105); forfeit and disqualified score 0.
- Leaderboard: per player and pool the best `runs_per_pool` counted runs (missing slots score 0), averaged
  over every slot of every pool.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.players import roster_entry_of, roster_name
from bot.services.race_locks import lock_seed
from bot.services.tournaments import tournament_or_404
from db.models import GuildPlayer, PhasePool, Player, Pool, Run, RunStatus, Seed, Tournament
from db.session import Database

if TYPE_CHECKING:
    from bot.services.processes import Leases

PAR_SAMPLE_SIZE = 5
UPKEEP_LEASE = "score_upkeep"
# A process holds the upkeep this long at most: a crashed one's upkeep is taken over after it.
UPKEEP_LEASE_SECONDS = 600.0
MAX_SCORE = 105.0


def par_time(elapsed_seconds: Iterable[float]) -> float | None:
    fastest = sorted(elapsed_seconds)[:PAR_SAMPLE_SIZE]
    if not fastest:
        return None
    return sum(fastest) / len(fastest)


def run_score(status: RunStatus, elapsed_seconds: float | None, par: float | None) -> float | None:
    if status in (RunStatus.FORFEIT, RunStatus.DISQUALIFIED):
        return 0.0
    if status is not RunStatus.FINISHED or elapsed_seconds is None or not par:
        return None
    return min(MAX_SCORE, max(0.0, (2 - elapsed_seconds / par) * 100))


def counts_for_par(run: Run) -> bool:
    return run.status is RunStatus.FINISHED and not run.reattempted and run.elapsed_us is not None


async def recompute_seed(session: AsyncSession, seed_id: int) -> float | None:
    """Refresh a seed's par and the score of each of its runs, in the caller's transaction (the seed's row locked
    first, unless the caller locked it before writing its runs)."""
    await lock_seed(session, seed_id)
    seed = await session.get(Seed, seed_id)
    if seed is None:
        return None
    runs = list((await session.scalars(select(Run).where(Run.seed_id == seed_id))).all())
    par = par_time(run.elapsed_us / 1_000_000 for run in runs if counts_for_par(run))
    seed.par_time = par
    for run in runs:
        score = run_score(run.status, run.elapsed_seconds, par)
        if run.score != score:
            run.score = score
    return par


async def recompute_tournament(session: AsyncSession, tournament_id: int) -> int:
    ids = (
        await session.scalars(
            select(Seed.id)
            .join(Pool, Pool.id == Seed.pool_id)
            .where(Pool.tournament_id == tournament_id)
            .order_by(Seed.id)  # one order for every writer that locks several seeds
        )
    ).all()
    for seed_id in ids:
        await recompute_seed(session, seed_id)
    return len(ids)


@dataclass(frozen=True)
class LeaderboardEntry:
    rank: int
    player_id: int
    discord_user_id: int
    display_name: str
    score: float
    pool_scores: dict[int, list[float]] = field(default_factory=dict)
    runs_counted: int = 0


@dataclass(frozen=True)
class Leaderboard:
    tournament_id: int
    runs_per_pool: int
    pools: list[tuple[int, str]]
    entries: list[LeaderboardEntry]


def build_leaderboard(
    tournament_id: int,
    runs_per_pool: int,
    pools: list[tuple[int, str]],
    scored_runs: Iterable[tuple[int, int, float]],
    players: dict[int, tuple[int, str]],
) -> Leaderboard:
    """`scored_runs` holds (player_id, pool_id, score) of counted runs (not reattempted, with a score)."""
    by_player: dict[int, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for player_id, pool_id, score in scored_runs:
        by_player[player_id][pool_id].append(score)
    slots = max(1, len(pools) * runs_per_pool)
    unranked: list[tuple[float, str, int, dict[int, list[float]], int]] = []
    for player_id, per_pool in by_player.items():
        best = {pool_id: sorted(per_pool.get(pool_id, []), reverse=True)[:runs_per_pool] for pool_id, _ in pools}
        total = sum(sum(scores) for scores in best.values())
        counted = sum(len(scores) for scores in best.values())
        unranked.append((total / slots, players[player_id][1], player_id, best, counted))
    entries = [
        LeaderboardEntry(rank, player_id, players[player_id][0], name, score, best, counted)
        for rank, (score, name, player_id, best, counted) in ranked(unranked)
    ]
    return Leaderboard(tournament_id, runs_per_pool, pools, entries)


R = TypeVar("R", bound=tuple)


def ranked(rows: Iterable[R]) -> list[tuple[int, R]]:
    """Rows of (score, name, player_id, …) best first, with their rank: the tie-break of every leaderboard (the
    tournament's, a phase's, a season's). Equal scores (to 6 decimals) share a rank (1, 2, 2, 4); among them the
    order is by name, case-insensitively, then by player id."""
    order = sorted(rows, key=lambda row: (-row[0], row[1].lower(), row[2]))
    out: list[tuple[int, R]] = []
    previous: float | None = None
    rank = 0
    for position, row in enumerate(order, start=1):
        rounded = round(row[0], 6)
        if rounded != previous:
            rank = position
            previous = rounded
        out.append((rank, row))
    return out


async def leaderboard_in(
    session: AsyncSession, guild_id: int, tournament: Tournament, *, phase_id: int | None = None
) -> Leaderboard:
    """A tournament's leaderboard in the caller's transaction; with `phase_id`, only that phase's pools count."""
    pool_query = select(Pool.id, Pool.name).where(Pool.tournament_id == tournament.id).order_by(Pool.id)
    if phase_id is not None:
        pool_query = pool_query.join(PhasePool, PhasePool.pool_id == Pool.id).where(PhasePool.phase_id == phase_id)
    pools = [(row.id, row.name) for row in await session.execute(pool_query)]
    query = (
        select(
            Run.player_id,
            Seed.pool_id,
            Run.score,
            Player.discord_user_id,
            roster_name().label("display_name"),
        )
        .join(Seed, Seed.id == Run.seed_id)
        .join(Player, Player.id == Run.player_id)
        .outerjoin(GuildPlayer, roster_entry_of(guild_id, Run.player_id))
        .where(
            Run.tournament_id == tournament.id,
            Run.reattempted.is_(False),
            Run.score.is_not(None),
        )
    )
    if phase_id is not None:
        query = query.where(Seed.pool_id.in_([pool_id for pool_id, _ in pools]))
    rows = (await session.execute(query)).all()
    players = {row.player_id: (row.discord_user_id, row.display_name) for row in rows}
    return build_leaderboard(
        tournament.id,
        tournament.runs_per_pool,
        pools,
        ((row.player_id, row.pool_id, row.score) for row in rows),
        players,
    )


class ScoringService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def leaderboard(self, guild_id: int, tournament_id: int, *, phase_id: int | None = None) -> Leaderboard:
        """The tournament's leaderboard, or a phase's: the runs of that phase's pools only."""
        async with self.db.read() as session:
            tournament = await tournament_or_404(session, guild_id, tournament_id)
            return await leaderboard_in(session, guild_id, tournament, phase_id=phase_id)

    async def recompute(self, guild_id: int, tournament_id: int) -> int:
        """Recompute every par time and score of the guild's tournament; returns the number of runs scored."""
        async with self.db.transaction() as session:
            await tournament_or_404(session, guild_id, tournament_id)
            return await recompute_tournament(session, tournament_id)

    async def upkeep(self, leases: Leases | None = None, *, every_seconds: float = 0.0) -> int:
        """Score upkeep job: recompute every seed of the active tournaments (repairs anything an import got wrong);
        returns how many seeds.

        One seed per transaction, its row locked first like every writer of its runs, so the upkeep never holds
        many locks and never deadlocks with a result being recorded. With `leases`, it happens once per
        `every_seconds` across all processes: whoever takes the lease first does it, and a crashed holder's lease
        runs out (`UPKEEP_LEASE_SECONDS`)."""
        if leases is not None and not await leases.take(
            UPKEEP_LEASE, seconds=UPKEEP_LEASE_SECONDS, due_every=every_seconds * 0.9
        ):
            return 0
        async with self.db.read() as session:
            ids = (
                await session.scalars(
                    select(Seed.id)
                    .join(Pool, Pool.id == Seed.pool_id)
                    .join(Tournament, Tournament.id == Pool.tournament_id)
                    .where(Tournament.active.is_(True))
                    .order_by(Seed.id)
                )
            ).all()
        for seed_id in ids:
            async with self.db.transaction() as session:
                await recompute_seed(session, seed_id)
        if leases is not None:
            await leases.done(UPKEEP_LEASE)
        return len(ids)
