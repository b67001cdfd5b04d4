"""Who may race a live race (PRODUCT.md §3.2), computed set-wise.

A fixed number of queries answers for every player of the guild at once, whatever their number: the
candidates, counted runs in the pool, unfinished runs in the tournament, and players of the seed. The first
failing rule is the reason shown.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.tournaments import pool_or_404, tournament_or_404
from db.models import GuildPlayer, Permalink, Player, Pool, Run, RunStatus, Tournament
from db.session import Database

REASON_INACTIVE = "The tournament is not active"
REASON_NOT_LINKED = "Link your RaceTime.gg account with /racetime link"
REASON_UNFINISHED = "Has an unfinished run"
REASON_PLAYED_SEED = "Already played this seed"


def reason_pool_full(done: int, allowed: int, pool_name: str) -> str:
    return f"Already ran {done} of {allowed} in pool {pool_name}"


@dataclass(frozen=True, slots=True)
class Candidate:
    player_id: int
    discord_user_id: int
    display_name: str
    racetime_id: str | None
    racetime_name: str | None


@dataclass
class EligibilityReport:
    tournament_id: int
    pool_id: int
    permalink_id: int | None
    eligible: list[Candidate] = field(default_factory=list)
    ineligible: list[tuple[Candidate, str]] = field(default_factory=list)

    def reason_for(self, player_id: int) -> str | None:
        """None when eligible; the reason otherwise (also for a player who is not a candidate)."""
        for candidate in self.eligible:
            if candidate.player_id == player_id:
                return None
        for candidate, reason in self.ineligible:
            if candidate.player_id == player_id:
                return reason
        return "Not a player of this server"

    @property
    def eligible_ids(self) -> set[int]:
        return {candidate.player_id for candidate in self.eligible}


async def compute_eligibility(
    session: AsyncSession,
    *,
    guild_id: int,
    tournament: Tournament,
    pool: Pool,
    permalink_id: int | None,
    exclude_live_race_id: int | None = None,
    player_ids: Collection[int] | None = None,
) -> EligibilityReport:
    """Evaluate every candidate (or only `player_ids`) in the caller's transaction.

    `exclude_live_race_id` leaves out the runs of that race, so re-checking a race that already gave runs
    (an idempotent re-record) judges players as they stood before it.
    """
    candidates_query = (
        select(Player.id, Player.discord_user_id, Player.display_name, Player.racetime_id, Player.racetime_name)
        .join(GuildPlayer, GuildPlayer.player_id == Player.id)
        .where(GuildPlayer.guild_id == guild_id)
        .order_by(Player.display_name, Player.id)
    )
    if player_ids is not None:
        candidates_query = candidates_query.where(Player.id.in_(list(player_ids)))
    candidates = [Candidate(*row) for row in (await session.execute(candidates_query)).all()]
    report = EligibilityReport(tournament.id, pool.id, permalink_id)
    if not tournament.active:
        report.ineligible = [(candidate, REASON_INACTIVE) for candidate in candidates]
        return report

    def own_runs(query):
        query = query.where(Run.tournament_id == tournament.id)
        if exclude_live_race_id is not None:
            query = query.where((Run.live_race_id.is_(None)) | (Run.live_race_id != exclude_live_race_id))
        return query

    counted_in_pool = dict(
        (
            await session.execute(
                own_runs(
                    select(Run.player_id, func.count(Run.id))
                    .join(Permalink, Permalink.id == Run.permalink_id)
                    .where(Permalink.pool_id == pool.id, Run.reattempted.is_(False))
                    .group_by(Run.player_id)
                )
            )
        ).all()
    )
    unfinished = set(
        (
            await session.scalars(
                own_runs(
                    select(Run.player_id).where(Run.status.in_([RunStatus.PENDING, RunStatus.IN_PROGRESS])).distinct()
                )
            )
        ).all()
    )
    played_seed: set[int] = set()
    if permalink_id is not None:
        played_seed = set(
            (
                await session.scalars(
                    own_runs(select(Run.player_id).where(Run.permalink_id == permalink_id).distinct())
                )
            ).all()
        )

    for candidate in candidates:
        reason: str | None = None
        done = counted_in_pool.get(candidate.player_id, 0)
        if candidate.racetime_id is None:
            reason = REASON_NOT_LINKED
        elif done >= tournament.runs_per_pool:
            reason = reason_pool_full(done, tournament.runs_per_pool, pool.name)
        elif candidate.player_id in unfinished:
            reason = REASON_UNFINISHED
        elif candidate.player_id in played_seed:
            reason = REASON_PLAYED_SEED
        if reason is None:
            report.eligible.append(candidate)
        else:
            report.ineligible.append((candidate, reason))
    return report


class EligibilityService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def for_pool(
        self, guild_id: int, tournament_id: int, pool_id: int, *, permalink_id: int | None = None
    ) -> EligibilityReport:
        async with self.db.read() as session:
            tournament = await tournament_or_404(session, guild_id, tournament_id)
            pool = await pool_or_404(session, guild_id, tournament_id, pool_id)
            return await compute_eligibility(
                session, guild_id=guild_id, tournament=tournament, pool=pool, permalink_id=permalink_id
            )
