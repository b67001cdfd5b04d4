"""Tournament phases: ordered stages (Qualifier → Top 32), each with its pools and its own leaderboard.

A live race belongs to the phase of its pool, and its runs score in that phase (the phase's leaderboard counts
only its pools). Closing a phase is a compare-and-set from `open` (closing twice is refused and changes nothing):
its leaderboard is frozen into `phase_standings` (every ranked player's rank and score) and the top N (players
tied at the cut all advance) or a moderator's list are marked advanced. Only advanced players are eligible for
the live races of the next phase's pools (`eligibility.py`, with the rank in the reason).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.actors import Actor
from bot.clock import SYSTEM_CLOCK
from bot.errors import Conflict, NotFound, ValidationFailed
from bot.services import audit
from bot.services.common import check_int, check_unique_in_tournament, clean_name
from bot.services.players import roster_entry_of, roster_name
from bot.services.scoring import Leaderboard, leaderboard_in
from bot.services.tournaments import pool_or_404, tournament_or_404
from db.models import (
    GuildPlayer,
    PhasePool,
    PhaseStanding,
    PhaseStatus,
    Player,
    Pool,
    TournamentPhase,
)
from db.session import Database

MAX_ADVANCE = 10_000


@dataclass
class PhaseView:
    phase: TournamentPhase
    pools: list[Pool]


@dataclass
class StandingView:
    player_id: int
    discord_user_id: int
    display_name: str
    rank: int | None
    score: float | None
    advanced: bool


async def phase_or_404(session: AsyncSession, guild_id: int, tournament_id: int, phase_id: int) -> TournamentPhase:
    await tournament_or_404(session, guild_id, tournament_id)
    phase = await session.get(TournamentPhase, phase_id)
    if phase is None or phase.tournament_id != tournament_id:
        raise NotFound(f"phase {phase_id} not found in this tournament", field="phase_id")
    return phase


class PhaseService:
    def __init__(self, db: Database, *, clock: Callable[[], datetime] = SYSTEM_CLOCK) -> None:
        self.db = db
        self.clock = clock

    async def _view(self, session: AsyncSession, phase: TournamentPhase) -> PhaseView:
        pools = (
            await session.scalars(
                select(Pool).join(PhasePool, PhasePool.pool_id == Pool.id).where(PhasePool.phase_id == phase.id)
            )
        ).all()
        return PhaseView(phase, sorted(pools, key=lambda pool: pool.id))

    async def _set_pools(
        self, session: AsyncSession, guild_id: int, phase: TournamentPhase, pool_ids: Collection[int]
    ) -> None:
        for pool_id in pool_ids:
            await pool_or_404(session, guild_id, phase.tournament_id, pool_id)
        await session.execute(delete(PhasePool).where(PhasePool.phase_id == phase.id))
        # A pool belongs to one phase: naming it here takes it from the phase it was in.
        await session.execute(delete(PhasePool).where(PhasePool.pool_id.in_(list(pool_ids))))
        session.add_all(PhasePool(pool_id=pool_id, phase_id=phase.id) for pool_id in dict.fromkeys(pool_ids))
        await session.flush()

    @staticmethod
    def _advance(value: int | None) -> int | None:
        return None if value is None else check_int(value, "advance_count", 1, MAX_ADVANCE)

    async def create(
        self,
        guild_id: int,
        tournament_id: int,
        actor: Actor,
        *,
        name: str,
        advance_count: int | None = None,
        pool_ids: Collection[int] = (),
    ) -> PhaseView:
        """A new phase, after the tournament's last one."""
        name = clean_name(name, "name")
        advance_count = self._advance(advance_count)
        async with self.db.transaction() as session:
            await tournament_or_404(session, guild_id, tournament_id)
            await check_unique_in_tournament(session, TournamentPhase, tournament_id, name, "phase")
            last = await session.scalar(
                select(func.max(TournamentPhase.position)).where(TournamentPhase.tournament_id == tournament_id)
            )
            phase = TournamentPhase(
                tournament_id=tournament_id,
                name=name,
                position=(last or 0) + 1,
                status=PhaseStatus.OPEN,
                advance_count=advance_count,
            )
            session.add(phase)
            await session.flush()
            await self._set_pools(session, guild_id, phase, list(pool_ids))
            await audit.record(
                session,
                guild_id=guild_id,
                actor=actor,
                action="phase.create",
                target_type="tournament_phase",
                target_id=phase.id,
                details={"name": name, "position": phase.position, "pool_ids": list(pool_ids)},
            )
            return await self._view(session, phase)

    async def update(
        self,
        guild_id: int,
        tournament_id: int,
        phase_id: int,
        actor: Actor,
        *,
        name: str | None = None,
        advance_count: int | None = None,
        pool_ids: Collection[int] | None = None,
    ) -> PhaseView:
        """Change a phase's name, advance count or pools (audited); ValidationFailed when nothing is given."""
        if name is None and advance_count is None and pool_ids is None:
            raise ValidationFailed("nothing to change", field="changes")
        async with self.db.transaction() as session:
            phase = await phase_or_404(session, guild_id, tournament_id, phase_id)
            before = {"name": phase.name, "advance_count": phase.advance_count}
            if name is not None:
                phase.name = clean_name(name, "name")
                await check_unique_in_tournament(
                    session, TournamentPhase, tournament_id, phase.name, "phase", own_id=phase.id
                )
            if advance_count is not None:
                phase.advance_count = self._advance(advance_count)
            if pool_ids is not None:
                await self._set_pools(session, guild_id, phase, list(pool_ids))
            await audit.record(
                session,
                guild_id=guild_id,
                actor=actor,
                action="phase.edit",
                target_type="tournament_phase",
                target_id=phase.id,
                details={
                    "before": before,
                    "name": phase.name,
                    "advance_count": phase.advance_count,
                    "pool_ids": pool_ids,
                },
            )
            return await self._view(session, phase)

    async def delete(self, guild_id: int, tournament_id: int, phase_id: int, actor: Actor) -> None:
        """Delete an open phase (its pools stay, outside any phase)."""
        async with self.db.transaction() as session:
            phase = await phase_or_404(session, guild_id, tournament_id, phase_id)
            if phase.status is PhaseStatus.CLOSED:
                raise Conflict(f"phase {phase.name!r} is closed; its standings decide the next phase")
            await session.execute(delete(PhasePool).where(PhasePool.phase_id == phase.id))
            await audit.record(
                session,
                guild_id=guild_id,
                actor=actor,
                action="phase.delete",
                target_type="tournament_phase",
                target_id=phase.id,
                details={"name": phase.name},
            )
            await session.delete(phase)

    async def get(self, guild_id: int, tournament_id: int, phase_id: int) -> PhaseView:
        """One phase of the guild's tournament; NotFound otherwise."""
        async with self.db.read() as session:
            return await self._view(session, await phase_or_404(session, guild_id, tournament_id, phase_id))

    async def list(self, guild_id: int, tournament_id: int) -> list[PhaseView]:
        """The phases of the guild's tournament, in order."""
        async with self.db.read() as session:
            await tournament_or_404(session, guild_id, tournament_id)
            phases = (
                await session.scalars(
                    select(TournamentPhase)
                    .where(TournamentPhase.tournament_id == tournament_id)
                    .order_by(TournamentPhase.position)
                )
            ).all()
            return [await self._view(session, phase) for phase in phases]

    async def leaderboard(self, guild_id: int, tournament_id: int, phase_id: int) -> Leaderboard:
        """The leaderboard of a phase: the tournament's scores over the phase's pools."""
        async with self.db.read() as session:
            await phase_or_404(session, guild_id, tournament_id, phase_id)
            tournament = await tournament_or_404(session, guild_id, tournament_id)
            return await leaderboard_in(session, guild_id, tournament, phase_id=phase_id)

    async def close(
        self,
        guild_id: int,
        tournament_id: int,
        phase_id: int,
        actor: Actor,
        *,
        top: int | None = None,
        advance_discord_user_ids: Collection[int] | None = None,
    ) -> list[StandingView]:
        """Close the phase: freeze its standings and advance its top N (`top`, else the phase's `advance_count`)
        or exactly the players given. Refused (nothing changes) when the phase is already closed."""
        if top is not None and advance_discord_user_ids is not None:
            raise ValidationFailed("give top or a list of players, not both", field="top")
        top = self._advance(top)
        async with self.db.transaction() as session:
            phase = await phase_or_404(session, guild_id, tournament_id, phase_id)
            closed = await session.execute(
                update(TournamentPhase)
                .where(TournamentPhase.id == phase.id, TournamentPhase.status == PhaseStatus.OPEN)
                .values(status=PhaseStatus.CLOSED, closed_at=(now := self.clock()), updated_at=now)
                .execution_options(synchronize_session=False)
            )
            if closed.rowcount != 1:
                raise Conflict(f"phase {phase.name!r} is already closed", field="phase_id")
            tournament = await tournament_or_404(session, guild_id, tournament_id)
            board = await leaderboard_in(session, guild_id, tournament, phase_id=phase.id)
            chosen: set[int] | None = None
            if advance_discord_user_ids is not None:
                chosen = set()
                ids = list(dict.fromkeys(advance_discord_user_ids))
                found = dict(
                    (
                        await session.execute(
                            select(Player.discord_user_id, Player.id)
                            .join(GuildPlayer, roster_entry_of(guild_id))
                            .where(Player.discord_user_id.in_(ids))
                        )
                    ).all()
                )
                missing = [str(user) for user in ids if user not in found]
                if missing:
                    raise NotFound(f"not players of this server: {', '.join(missing)}", field="players")
                chosen = set(found.values())
            else:
                cut = top if top is not None else phase.advance_count
                if cut is None:
                    raise ValidationFailed(
                        f"phase {phase.name!r} has no advance_count; give top or a list of players", field="top"
                    )
            ranked_ids = set()
            for entry in board.entries:
                ranked_ids.add(entry.player_id)
                advanced = entry.player_id in chosen if chosen is not None else entry.rank <= cut
                session.add(
                    PhaseStanding(
                        phase_id=phase.id,
                        player_id=entry.player_id,
                        rank=entry.rank,
                        score=entry.score,
                        advanced=advanced,
                    )
                )
            for player_id in (chosen or set()) - ranked_ids:
                session.add(PhaseStanding(phase_id=phase.id, player_id=player_id, rank=None, score=None, advanced=True))
            await session.flush()
            standings = await self._standings(session, guild_id, phase.id)
            await audit.record(
                session,
                guild_id=guild_id,
                actor=actor,
                action="phase.close",
                target_type="tournament_phase",
                target_id=phase.id,
                details={
                    "name": phase.name,
                    "top": None if chosen is not None else cut,
                    "advanced": sorted(s.player_id for s in standings if s.advanced),
                },
            )
            return standings

    async def standings(self, guild_id: int, tournament_id: int, phase_id: int) -> list[StandingView]:
        """The final standings of a closed phase (who advances); Conflict while it is open."""
        async with self.db.read() as session:
            phase = await phase_or_404(session, guild_id, tournament_id, phase_id)
            if phase.status is not PhaseStatus.CLOSED:
                raise Conflict(f"phase {phase.name!r} is not closed yet; its leaderboard is still moving")
            return await self._standings(session, guild_id, phase.id)

    @staticmethod
    async def _standings(session: AsyncSession, guild_id: int, phase_id: int) -> list[StandingView]:
        rows = (
            await session.execute(
                select(PhaseStanding, Player.discord_user_id, roster_name())
                .join(Player, Player.id == PhaseStanding.player_id)
                .outerjoin(GuildPlayer, roster_entry_of(guild_id, PhaseStanding.player_id))
                .where(PhaseStanding.phase_id == phase_id)
            )
        ).all()
        views = [StandingView(row.player_id, user, name, row.rank, row.score, row.advanced) for row, user, name in rows]
        views.sort(key=lambda view: (view.rank is None, view.rank or 0, view.display_name.lower(), view.player_id))
        return views
