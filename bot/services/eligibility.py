"""Who may race a live race, computed set-wise (the rules, in order: docs/user-guide.md, "Who may race a live race").

Two queries answer for every player of the guild at once, whatever their number: the candidates, and one
statement over the runs that matter (the pool's seeds, the tournament's unfinished runs, the race's seed), each
part read from a covering index. The first failing rule is the reason shown. The candidates are the guild's roster
entries: a member who left the server is not eligible, and "linked" means a link that counts in this guild (their
verified one, else the guild's).

Tournament phases: a pool of a phase after the first is raced only by the players the previous phase advanced
when it closed. The candidates query carries that too (the previous phase, found by scalar subqueries, and each
player's standing in it, by an outer join), so the count of queries does not change.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import NamedTuple

from sqlalchemy import and_, func, literal, or_, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.players import EFFECTIVE_RACETIME_ID, EFFECTIVE_RACETIME_NAME, roster_entry_of
from bot.services.tournaments import pool_or_404, tournament_or_404
from db.models import (
    GuildPlayer,
    LiveRace,
    PhasePool,
    PhaseStanding,
    PhaseStatus,
    Player,
    Pool,
    Run,
    RunStatus,
    Seed,
    Tournament,
    TournamentPhase,
)
from db.session import Database

REASON_INACTIVE = "The tournament is not active"
REASON_NOT_LINKED = "Link your RaceTime.gg account with /racetime link"
REASON_UNFINISHED = "Has an unfinished run"
REASON_PLAYED_SEED = "Already played this seed"
REASON_NOT_MEMBER = "Not a player of this server"
REASON_LEFT = "Left the server"


def reason_pool_full(done: int, allowed: int, pool_name: str) -> str:
    return f"Already ran {done} of {allowed} in pool {pool_name}"


def reason_phase(phase: str, closed: bool, rank: int | None, placed: bool) -> str:
    """Not advanced to this pool's phase by the previous phase (`phase`), with the player's rank there."""
    if not closed:
        return f"{phase} is not closed yet: only the players it advances race this phase"
    if not placed:
        return f"Did not place in {phase}"
    if rank is None:
        return f"Not advanced from {phase}"
    return f"Not advanced from {phase} (ranked {rank})"


class Candidate(NamedTuple):
    """A player of the guild as the guild sees them: its name for them, their effective link (the verified one,
    else the guild's), whether they left (a tuple: ten thousand of them are built per evaluation)."""

    player_id: int
    discord_user_id: int
    display_name: str
    racetime_id: str | None
    racetime_name: str | None
    left: bool
    # The pool's phase rule: the previous phase's name (None: no such rule), whether it is closed, and the
    # player's standing there (None when they have no row).
    previous_phase: str | None = None
    previous_closed: bool = False
    phase_rank: int | None = None
    advanced: bool | None = None


@dataclass
class EligibilityReport:
    tournament_id: int
    pool_id: int
    seed_id: int | None
    eligible: list[Candidate] = field(default_factory=list)
    ineligible: list[tuple[Candidate, str]] = field(default_factory=list)
    _reasons: dict[int, str | None] = field(default_factory=dict, init=False, repr=False, compare=False)

    def reason_for(self, player_id: int) -> str | None:
        """None when eligible; the reason otherwise (also for a player who is not a candidate)."""
        return self._reasons.get(player_id, REASON_NOT_MEMBER)

    @property
    def eligible_ids(self) -> set[int]:
        """The player ids of the eligible candidates."""
        return {candidate.player_id for candidate in self.eligible}


async def compute_eligibility(
    session: AsyncSession,
    *,
    guild_id: int,
    tournament: Tournament,
    pool: Pool,
    seed_id: int | None,
    exclude_live_race_id: int | None = None,
    player_ids: Collection[int] | None = None,
) -> EligibilityReport:
    """Evaluate every candidate (or only `player_ids`) in the caller's transaction, in two queries.

    `exclude_live_race_id` leaves out the runs of that race, so re-checking a race that already gave runs
    (an idempotent re-record) judges players as they stood before it.
    """
    previous = _previous_phase(tournament.id, pool.id)
    candidates_query = (
        select(
            Player.id,
            Player.discord_user_id,
            GuildPlayer.display_name,
            EFFECTIVE_RACETIME_ID,
            EFFECTIVE_RACETIME_NAME,
            GuildPlayer.left_at.is_not(None),
            select(TournamentPhase.name).where(TournamentPhase.id == previous).scalar_subquery(),
            select(TournamentPhase.status == PhaseStatus.CLOSED)
            .where(TournamentPhase.id == previous)
            .scalar_subquery(),
            PhaseStanding.rank,
            PhaseStanding.advanced,
        )
        .join(GuildPlayer, roster_entry_of(guild_id))
        .outerjoin(PhaseStanding, and_(PhaseStanding.player_id == Player.id, PhaseStanding.phase_id == previous))
        .order_by(GuildPlayer.display_name, Player.id)
    )
    if player_ids is not None:
        candidates_query = candidates_query.where(Player.id.in_(list(player_ids)))
    # Plain rows through the connection: no ORM entity processing for thousands of tuples.
    connection = await session.connection()
    candidates = list(map(Candidate._make, (await connection.execute(candidates_query)).all()))
    report = EligibilityReport(tournament.id, pool.id, seed_id)
    if not tournament.active:
        _fill(report, [(candidate, REASON_INACTIVE) for candidate in candidates])
        return report

    facts = await _run_facts(session, tournament.id, pool.id, seed_id, exclude_live_race_id, player_ids)
    allowed = tournament.runs_per_pool
    verdicts: list[tuple[Candidate, str | None]] = []
    for candidate in candidates:
        # The first failing eligibility rule (rule 1, the tournament being active, was checked above).
        runs = facts.get(candidate.player_id)
        if candidate.left:
            reason: str | None = REASON_LEFT
        elif candidate.racetime_id is None:
            reason = REASON_NOT_LINKED
        elif candidate.previous_phase is not None and not (candidate.previous_closed and candidate.advanced):
            reason = reason_phase(
                candidate.previous_phase,
                bool(candidate.previous_closed),
                candidate.phase_rank,
                candidate.advanced is not None,
            )
        elif runs is None:
            reason = None
        elif runs[0] >= allowed:
            reason = reason_pool_full(runs[0], allowed, pool.name)
        elif runs[1]:
            reason = REASON_UNFINISHED
        elif runs[2]:
            reason = REASON_PLAYED_SEED
        else:
            reason = None
        verdicts.append((candidate, reason))
    _fill(report, verdicts)
    return report


async def race_eligibility(
    session: AsyncSession,
    race: LiveRace,
    tournament: Tournament,
    pool: Pool,
    *,
    player_ids: Collection[int] | None = None,
) -> EligibilityReport:
    """`compute_eligibility` for a live race: its guild and seed, with the race's own runs left out."""
    return await compute_eligibility(
        session,
        guild_id=race.guild_id,
        tournament=tournament,
        pool=pool,
        seed_id=race.seed_id,
        exclude_live_race_id=race.id,
        player_ids=player_ids,
    )


def _fill(report: EligibilityReport, verdicts: list[tuple[Candidate, str | None]]) -> None:
    report.eligible = [candidate for candidate, reason in verdicts if reason is None]
    report.ineligible = [(candidate, reason) for candidate, reason in verdicts if reason is not None]
    report._reasons = {candidate.player_id: reason for candidate, reason in verdicts}


def _previous_phase(tournament_id: int, pool_id: int):
    """The phase before the pool's phase (a scalar subquery; NULL when the pool has no phase or it is the first)."""
    position = (
        select(TournamentPhase.position)
        .join(PhasePool, PhasePool.phase_id == TournamentPhase.id)
        .where(PhasePool.pool_id == pool_id)
        .scalar_subquery()
    )
    return (
        select(TournamentPhase.id)
        .where(TournamentPhase.tournament_id == tournament_id, TournamentPhase.position < position)
        .order_by(TournamentPhase.position.desc())
        .limit(1)
        .scalar_subquery()
    )


_POOL, _UNFINISHED, _SEED = 1, 2, 3


async def _run_facts(
    session: AsyncSession,
    tournament_id: int,
    pool_id: int,
    seed_id: int | None,
    exclude_live_race_id: int | None,
    player_ids: Collection[int] | None,
) -> dict[int, tuple[int, bool, bool]]:
    """Per player with runs that matter: (counted runs in the pool, has an unfinished run, played the seed).

    One statement of three parts, each answered from its own covering index on `runs` (the pool's seeds;
    the tournament's unfinished runs; the seed), so only the few runs that matter are read, never every run
    of the tournament.
    """

    def scoped(query):
        if exclude_live_race_id is not None:
            query = query.where(or_(Run.live_race_id.is_(None), Run.live_race_id != exclude_live_race_id))
        if player_ids is not None:
            query = query.where(Run.player_id.in_(list(player_ids)))
        return query

    pool_seeds = select(Seed.id).where(Seed.pool_id == pool_id)
    parts = [
        scoped(
            select(Run.player_id, literal(_POOL), func.count())
            .where(Run.seed_id.in_(pool_seeds), Run.reattempted.is_(False))
            .group_by(Run.player_id)
        ),
        scoped(
            select(Run.player_id, literal(_UNFINISHED), literal(1)).where(
                Run.tournament_id == tournament_id, Run.status.in_([RunStatus.PENDING, RunStatus.IN_PROGRESS])
            )
        ),
    ]
    if seed_id is not None:
        parts.append(scoped(select(Run.player_id, literal(_SEED), literal(1)).where(Run.seed_id == seed_id)))
    facts: dict[int, tuple[int, bool, bool]] = {}
    for player_id, kind, count in (await session.execute(union_all(*parts))).all():
        counted, unfinished, played = facts.get(player_id, (0, False, False))
        if kind == _POOL:
            counted = int(count)
        elif kind == _UNFINISHED:
            unfinished = True
        else:
            played = True
        facts[player_id] = (counted, unfinished, played)
    return facts


class EligibilityService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def for_pool(
        self, guild_id: int, tournament_id: int, pool_id: int, *, seed_id: int | None = None
    ) -> EligibilityReport:
        """Who may race a pool of the guild's tournament (with `seed_id`: that seed), and why others may not."""
        async with self.db.read() as session:
            tournament = await tournament_or_404(session, guild_id, tournament_id)
            pool = await pool_or_404(session, guild_id, tournament_id, pool_id)
            return await compute_eligibility(
                session, guild_id=guild_id, tournament=tournament, pool=pool, seed_id=seed_id
            )
