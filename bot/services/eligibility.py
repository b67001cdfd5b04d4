"""Who may race a live race (PRODUCT.md §3.2), computed set-wise.

Two queries answer for every player of the guild at once, whatever their number: the candidates, and one
grouped pass over the tournament's runs that gives, per player, the counted runs in the pool, whether a run is
unfinished, and whether the seed was played. The first failing rule is the reason shown.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from sqlalchemy import and_, case, false, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.tournaments import pool_or_404, tournament_or_404
from db.models import GuildPlayer, Permalink, Player, Pool, Run, RunStatus, Tournament
from db.session import Database

REASON_INACTIVE = "The tournament is not active"
REASON_NOT_LINKED = "Link your RaceTime.gg account with /racetime link"
REASON_UNFINISHED = "Has an unfinished run"
REASON_PLAYED_SEED = "Already played this seed"
REASON_NOT_MEMBER = "Not a player of this server"


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
    _reasons: dict[int, str | None] = field(default_factory=dict, init=False, repr=False, compare=False)

    def add(self, candidate: Candidate, reason: str | None) -> None:
        if reason is None:
            self.eligible.append(candidate)
        else:
            self.ineligible.append((candidate, reason))
        self._reasons[candidate.player_id] = reason

    def reason_for(self, player_id: int) -> str | None:
        """None when eligible; the reason otherwise (also for a player who is not a candidate)."""
        return self._reasons.get(player_id, REASON_NOT_MEMBER)

    @property
    def eligible_ids(self) -> set[int]:
        return {candidate.player_id for candidate in self.eligible}


def _reason(
    candidate: Candidate, runs: tuple[int, bool, bool] | None, runs_per_pool: int, pool_name: str
) -> str | None:
    """The first failing rule of §3.2 (rule 1, the tournament being active, is checked by the caller)."""
    if candidate.racetime_id is None:
        return REASON_NOT_LINKED
    if runs is None:
        return None
    counted_in_pool, has_unfinished, played_seed = runs
    if counted_in_pool >= runs_per_pool:
        return reason_pool_full(counted_in_pool, runs_per_pool, pool_name)
    if has_unfinished:
        return REASON_UNFINISHED
    if played_seed:
        return REASON_PLAYED_SEED
    return None


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
    """Evaluate every candidate (or only `player_ids`) in the caller's transaction, in two queries.

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
        for candidate in candidates:
            report.add(candidate, REASON_INACTIVE)
        return report

    runs_by_player = await _run_facts(session, tournament.id, pool.id, permalink_id, exclude_live_race_id, player_ids)
    for candidate in candidates:
        runs = runs_by_player.get(candidate.player_id)
        report.add(candidate, _reason(candidate, runs, tournament.runs_per_pool, pool.name))
    return report


async def _run_facts(
    session: AsyncSession,
    tournament_id: int,
    pool_id: int,
    permalink_id: int | None,
    exclude_live_race_id: int | None,
    player_ids: Collection[int] | None,
) -> dict[int, tuple[int, bool, bool]]:
    """Per player with runs in the tournament: (counted runs in the pool, has an unfinished run, played the seed).

    One grouped pass over the tournament's runs answers rules 3 to 5 for everyone at once.
    """
    in_pool = and_(Permalink.pool_id == pool_id, Run.reattempted.is_(False))
    unfinished = Run.status.in_([RunStatus.PENDING, RunStatus.IN_PROGRESS])
    on_seed = Run.permalink_id == permalink_id if permalink_id is not None else false()
    query = (
        select(
            Run.player_id,
            func.sum(case((in_pool, 1), else_=0)),
            func.max(case((unfinished, 1), else_=0)),
            func.max(case((on_seed, 1), else_=0)),
        )
        .join(Permalink, Permalink.id == Run.permalink_id)
        .where(Run.tournament_id == tournament_id)
        .group_by(Run.player_id)
    )
    if exclude_live_race_id is not None:
        query = query.where(or_(Run.live_race_id.is_(None), Run.live_race_id != exclude_live_race_id))
    if player_ids is not None:
        query = query.where(Run.player_id.in_(list(player_ids)))
    rows = (await session.execute(query)).all()
    return {player_id: (int(counted or 0), bool(open_run), bool(seed)) for player_id, counted, open_run, seed in rows}


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
