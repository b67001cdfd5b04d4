"""Where one player stands in a tournament: their runs per pool with scores, their rank, what they may still play
and why not, and any unfinished run (`/tournament me`, the moderators' "Startline profile")."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select

from bot.services.eligibility import compute_eligibility
from bot.services.players import roster_entry_or_404
from bot.services.scoring import ScoringService
from bot.services.tournaments import tournament_or_404
from db.models import Pool, Run, RunStatus, Seed, Tournament
from db.session import Database

UNFINISHED = (RunStatus.PENDING, RunStatus.IN_PROGRESS)


@dataclass(frozen=True)
class RunLine:
    run_id: int
    pool_id: int
    seed_id: int
    status: RunStatus
    elapsed_us: int | None
    score: float | None
    reattempted: bool
    live_race_id: int | None
    started_at: datetime | None


@dataclass(frozen=True)
class PoolStanding:
    pool_id: int
    name: str
    runs: list[RunLine]
    counted: list[float]  # the scores that count: the best `runs_per_pool` not reattempted, highest first
    score: float | None  # the pool's share of the leaderboard score (missing runs count 0); None without runs
    reason: str | None  # why they may not play it now (None: they may)


@dataclass(frozen=True)
class Standing:
    tournament: Tournament
    player_id: int
    display_name: str
    rank: int | None  # None: no scored run yet
    ranked: int  # how many players the leaderboard has
    score: float | None
    runs_per_pool: int
    pools: list[PoolStanding] = field(default_factory=list)

    @property
    def unfinished(self) -> list[RunLine]:
        """The player's runs not finished yet."""
        return [run for pool in self.pools for run in pool.runs if run.status in UNFINISHED]


class StandingService:
    def __init__(self, db: Database, scoring: ScoringService) -> None:
        self.db = db
        self.scoring = scoring

    async def of_player(self, guild_id: int, tournament_id: int, discord_user_id: int) -> Standing:
        """A player's standing in the guild's tournament: rank, score and runs by pool."""
        board = await self.scoring.leaderboard(guild_id, tournament_id)
        async with self.db.read() as session:
            tournament = await tournament_or_404(session, guild_id, tournament_id)
            player, entry_of_roster = await roster_entry_or_404(session, guild_id, discord_user_id)
            pools = list(
                await session.scalars(select(Pool).where(Pool.tournament_id == tournament.id).order_by(Pool.id))
            )
            rows = (
                await session.execute(
                    select(Run, Seed.pool_id)
                    .join(Seed, Seed.id == Run.seed_id)
                    .where(Run.tournament_id == tournament.id, Run.player_id == player.id)
                    .order_by(Run.id)
                )
            ).all()
            reasons = {}
            for pool in pools:  # the rules of eligibility, for this player alone, pool by pool
                report = await compute_eligibility(
                    session, guild_id=guild_id, tournament=tournament, pool=pool, seed_id=None,
                    player_ids=[player.id],
                )  # fmt: skip
                reasons[pool.id] = report.reason_for(player.id)
        runs = [
            RunLine(
                run.id, pool_id, run.seed_id, run.status, run.elapsed_us, run.score, run.reattempted,
                run.live_race_id, run.start_time,
            )
            for run, pool_id in rows
        ]  # fmt: skip
        entry = next((e for e in board.entries if e.player_id == player.id), None)
        per_pool = []
        for pool in pools:
            mine = [run for run in runs if run.pool_id == pool.id]
            counted = entry.pool_scores.get(pool.id, []) if entry else []
            score = sum(counted) / tournament.runs_per_pool if mine else None
            per_pool.append(PoolStanding(pool.id, pool.name, mine, counted, score, reasons[pool.id]))
        return Standing(
            tournament=tournament,
            player_id=player.id,
            display_name=entry_of_roster.display_name,
            rank=entry.rank if entry else None,
            ranked=len(board.entries),
            score=entry.score if entry else None,
            runs_per_pool=tournament.runs_per_pool,
            pools=per_pool,
        )
