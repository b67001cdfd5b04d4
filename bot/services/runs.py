"""Runs: listing, importing runs done outside a live race, and reattempts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.actors import Actor
from bot.errors import Conflict, NotFound, ValidationFailed
from bot.services import audit
from bot.services.common import Keyset, Page, require_aware
from bot.services.players import member_or_404, roster_entry_of, roster_name
from bot.services.race_locks import lock_seed
from bot.services.scoring import recompute_seed
from bot.services.tournaments import seed_in_tournament, tournament_or_404
from db.models import GuildPlayer, Player, Pool, Run, RunStatus, Seed
from db.session import Database

MAX_ELAPSED_SECONDS = 7 * 24 * 3600  # RaceTime.gg's own limit is 72 h; a week leaves room for offline runs


class RunPlayer(NamedTuple):
    """Whose run it is, named as the run's guild names them."""

    id: int
    discord_user_id: int
    display_name: str


@dataclass(frozen=True)
class RunView:
    run: Run
    player: RunPlayer
    seed: Seed
    pool: Pool


def _run_views(guild_id: int):
    """Runs with their player (as this guild names them), seed and pool; filter with `.where`."""
    return (
        select(Run, Player.id, Player.discord_user_id, roster_name(), Seed, Pool)
        .join(Player, Player.id == Run.player_id)
        .outerjoin(GuildPlayer, roster_entry_of(guild_id, Run.player_id))
        .join(Seed, Seed.id == Run.seed_id)
        .join(Pool, Pool.id == Seed.pool_id)
    )


def _view(row) -> RunView:
    run, player_id, discord_user_id, display_name, seed, pool = row
    return RunView(run, RunPlayer(player_id, discord_user_id, display_name), seed, pool)


def _check_status(status: str | RunStatus) -> RunStatus:
    try:
        return RunStatus(status)
    except ValueError:
        allowed = ", ".join(s.value for s in RunStatus)
        raise ValidationFailed(f"status must be one of {allowed}", field="status") from None


class RunService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def list_runs(
        self,
        guild_id: int,
        tournament_id: int,
        *,
        discord_user_id: int | None = None,
        pool_id: int | None = None,
        seed_id: int | None = None,
        live_race_id: int | None = None,
        status: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[RunView]:
        """One page of the runs of the guild's tournament, filtered as given."""
        window = Keyset.of(limit, cursor)
        query = window.select(_run_views(guild_id).where(Run.tournament_id == tournament_id), Run.id)
        if discord_user_id is not None:
            query = query.where(Player.discord_user_id == discord_user_id)
        if pool_id is not None:
            query = query.where(Pool.id == pool_id)
        if seed_id is not None:
            query = query.where(Run.seed_id == seed_id)
        if live_race_id is not None:
            query = query.where(Run.live_race_id == live_race_id)
        if status is not None:
            query = query.where(Run.status == _check_status(status))
        async with self.db.read() as session:
            await tournament_or_404(session, guild_id, tournament_id)
            rows = [_view(row) for row in (await session.execute(query)).all()]
        return window.page(rows, lambda view: view.run.id)

    async def get_run(self, guild_id: int, tournament_id: int, run_id: int) -> RunView:
        """One run of the guild's tournament; NotFound otherwise."""
        async with self.db.read() as session:
            await tournament_or_404(session, guild_id, tournament_id)
            row = (
                await session.execute(_run_views(guild_id).where(Run.id == run_id, Run.tournament_id == tournament_id))
            ).first()
        if row is None:
            raise NotFound(f"run {run_id} not found in this tournament", field="run_id")
        return _view(row)

    async def import_run(
        self,
        guild_id: int,
        tournament_id: int,
        actor: Actor,
        *,
        discord_user_id: int,
        seed_id: int,
        status: str | RunStatus,
        elapsed_seconds: float | None = None,
        finished_at: datetime | None = None,
        reattempted: bool = False,
    ) -> Run:
        """Record a run done outside a live race (an import from another bot, a manual correction)."""
        run_status = _check_status(status)
        elapsed_us: int | None = None
        if run_status is RunStatus.FINISHED:
            if elapsed_seconds is None:
                raise ValidationFailed("a finished run needs elapsed_seconds", field="elapsed_seconds")
            if isinstance(elapsed_seconds, bool) or not 0 < elapsed_seconds <= MAX_ELAPSED_SECONDS:
                raise ValidationFailed(
                    f"elapsed_seconds must be more than 0 and at most {MAX_ELAPSED_SECONDS}", field="elapsed_seconds"
                )
            elapsed_us = round(elapsed_seconds * 1_000_000)
        elif elapsed_seconds is not None:
            raise ValidationFailed("only a finished run has elapsed_seconds", field="elapsed_seconds")
        end_time = require_aware(finished_at, "finished_at") if finished_at is not None else None
        async with self.db.transaction() as session:
            tournament = await tournament_or_404(session, guild_id, tournament_id)
            seed, _pool = await seed_in_tournament(session, guild_id, tournament_id, seed_id)
            player = await member_or_404(session, guild_id, discord_user_id)
            if not reattempted:
                await self._check_not_played(session, player.id, seed.id)
            if reattempted:
                await self._check_reattempt_budget(session, tournament.id, tournament.max_reattempts, player.id)
            start_time = end_time - timedelta(microseconds=elapsed_us) if end_time and elapsed_us else None
            run = Run(
                tournament_id=tournament.id,
                seed_id=seed.id,
                player_id=player.id,
                status=run_status,
                start_time=start_time,
                end_time=end_time,
                elapsed_us=elapsed_us,
                reattempted=reattempted,
                source="import",
            )
            session.add(run)
            await session.flush()
            await recompute_seed(session, seed.id)
            await audit.record(
                session,
                guild_id=guild_id,
                actor=actor,
                action="run.import",
                target_type="run",
                target_id=run.id,
                details={
                    "tournament_id": tournament.id,
                    "discord_user_id": str(discord_user_id),
                    "seed_id": seed.id,
                    "status": run_status.value,
                    "elapsed_us": elapsed_us,
                    "reattempted": reattempted,
                },
            )
            return run

    async def mark_reattempted(self, guild_id: int, tournament_id: int, run_id: int, actor: Actor) -> Run:
        """Flag a run as reattempted: it stops counting, so the player may run the pool again."""
        async with self.db.transaction() as session:
            tournament = await tournament_or_404(session, guild_id, tournament_id)
            run = await session.get(Run, run_id)
            if run is None or run.tournament_id != tournament.id:
                raise NotFound(f"run {run_id} not found in this tournament", field="run_id")
            if run.reattempted:
                raise Conflict("this run is already marked as reattempted")
            if run.status in (RunStatus.PENDING, RunStatus.IN_PROGRESS):
                raise Conflict("an unfinished run cannot be reattempted; finish or forfeit it first")
            await self._check_reattempt_budget(session, tournament.id, tournament.max_reattempts, run.player_id)
            await lock_seed(session, run.seed_id)  # before the run: the order of every writer of runs
            run.reattempted = True
            await recompute_seed(session, run.seed_id)
            await audit.record(
                session,
                guild_id=guild_id,
                actor=actor,
                action="run.reattempt",
                target_type="run",
                target_id=run.id,
                details={"tournament_id": tournament.id},
            )
            return run

    @staticmethod
    async def _check_not_played(session: AsyncSession, player_id: int, seed_id: int) -> None:
        existing = await session.scalar(
            select(Run.id).where(Run.player_id == player_id, Run.seed_id == seed_id, Run.reattempted.is_(False))
        )
        if existing is not None:
            raise Conflict(f"this player already has run {existing} on this seed", field="seed_id")

    @staticmethod
    async def _check_reattempt_budget(
        session: AsyncSession, tournament_id: int, max_reattempts: int, player_id: int
    ) -> None:
        if max_reattempts < 0:
            return
        used = await session.scalar(
            select(func.count(Run.id)).where(
                Run.tournament_id == tournament_id, Run.player_id == player_id, Run.reattempted.is_(True)
            )
        )
        if (used or 0) >= max_reattempts:
            raise Conflict(f"this player has used all {max_reattempts} reattempts of this tournament")
