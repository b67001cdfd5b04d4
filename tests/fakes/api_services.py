"""Stand-ins for the live race and notification services, for the REST API tests.

They implement the interfaces the API calls (`LiveRaceService`, `NotificationService`) over the real tables,
with the same guild isolation and state-machine refusals, but never call RaceTime.gg: "open" gives the race a
made-up room, "record" marks it finished. The API tests exercise the adapter, not the lifecycle.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.actors import Actor
from bot.errors import Conflict, InvalidTransition, NotFound, ValidationFailed
from bot.services import audit
from bot.services.common import Page, clean_text, decode_cursor, make_page, page_limit, require_aware
from bot.services.eligibility import EligibilityReport, compute_eligibility
from bot.services.room_profiles import profile_or_404, validate_room_settings
from bot.services.tournaments import permalink_in_tournament, pool_or_404, tournament_or_404
from db.models import (
    LiveRace,
    LiveRaceEntrant,
    Notification,
    NotificationStatus,
    Permalink,
    Player,
    Pool,
    RaceStatus,
    Run,
    Tournament,
)
from db.session import Database
from db.types import utcnow

LEAD_MINUTES = 15
ACTIVE = (RaceStatus.SCHEDULED, RaceStatus.ROOM_OPEN, RaceStatus.IN_PROGRESS)


@dataclass(frozen=True)
class LiveRaceView:
    race: LiveRace
    tournament: Tournament
    pool: Pool
    permalink: Permalink | None
    room_opens_at: datetime


@dataclass(frozen=True)
class EntrantView:
    racetime_id: str
    racetime_name: str
    player_id: int | None
    discord_user_id: int | None
    display_name: str | None
    counted: bool
    reason: str | None
    status: str
    place: int | None
    elapsed_us: int | None
    finished_at: datetime | None
    run_id: int | None
    score: float | None


@dataclass(frozen=True)
class RaceResults:
    view: LiveRaceView
    entrants: list[EntrantView]


class FakeLiveRaceService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def _race(self, session: AsyncSession, guild_id: int, race_id: int, tournament_id: int | None) -> LiveRace:
        race = await session.get(LiveRace, race_id)
        if (
            race is None
            or race.guild_id != guild_id
            or (tournament_id is not None and race.tournament_id != tournament_id)
        ):
            raise NotFound(f"live race {race_id} not found", field="race_id")
        return race

    async def _view(self, session: AsyncSession, race: LiveRace) -> LiveRaceView:
        permalink = await session.get(Permalink, race.permalink_id) if race.permalink_id else None
        return LiveRaceView(
            race=race,
            tournament=await session.get(Tournament, race.tournament_id),
            pool=await session.get(Pool, race.pool_id),
            permalink=permalink,
            room_opens_at=race.scheduled_at - timedelta(minutes=LEAD_MINUTES),
        )

    async def _check_fields(self, session: AsyncSession, guild_id: int, tournament_id: int, fields: dict) -> dict:
        if "scheduled_at" in fields:
            fields["scheduled_at"] = require_aware(fields["scheduled_at"], "scheduled_at")
            if fields["scheduled_at"] <= utcnow():
                raise ValidationFailed("scheduled_at must be in the future", field="scheduled_at")
        if fields.get("pool_id") is not None:
            await pool_or_404(session, guild_id, tournament_id, fields["pool_id"])
        if fields.get("permalink_id") is not None:
            _, pool = await permalink_in_tournament(session, guild_id, tournament_id, fields["permalink_id"])
            if "pool_id" in fields and pool.id != fields["pool_id"]:
                raise ValidationFailed("the seed is not in that pool", field="permalink_id")
        if fields.get("room_profile_id") is not None:
            await profile_or_404(session, guild_id, fields["room_profile_id"])
        if "room" in fields:
            fields["room_settings"] = validate_room_settings(fields.pop("room"), field_prefix="room.")
        if fields.get("episode_id") is not None:
            clash = await session.scalar(select(LiveRace.id).where(LiveRace.episode_id == fields["episode_id"]))
            if clash is not None:
                raise Conflict(f"episode {fields['episode_id']!r} is already live race {clash}", field="episode_id")
        return fields

    async def create(
        self,
        guild_id: int,
        tournament_id: int,
        actor: Actor,
        *,
        pool_id: int,
        scheduled_at: datetime,
        title: str | None = None,
        permalink_id: int | None = None,
        episode_id: str | None = None,
        room_profile_id: int | None = None,
        room: dict | None = None,
    ) -> LiveRaceView:
        async with self.db.transaction() as session:
            tournament = await tournament_or_404(session, guild_id, tournament_id)
            if not tournament.active:
                raise ValidationFailed("the tournament is not active", field="tournament_id")
            fields = await self._check_fields(
                session,
                guild_id,
                tournament_id,
                {
                    "pool_id": pool_id,
                    "scheduled_at": scheduled_at,
                    "permalink_id": permalink_id,
                    "episode_id": episode_id,
                    "room_profile_id": room_profile_id,
                    "room": room,
                },
            )
            pool = await session.get(Pool, pool_id)
            race = LiveRace(
                guild_id=guild_id,
                tournament_id=tournament_id,
                title=title or f"{tournament.name} — {pool.name}",
                marker=uuid.uuid4().hex,
                created_by=actor.label,
                **fields,
            )
            session.add(race)
            await session.flush()
            await audit.record(
                session,
                guild_id=guild_id,
                actor=actor,
                action="live_race.create",
                target_type="live_race",
                target_id=race.id,
            )
            return await self._view(session, race)

    async def edit(
        self, guild_id: int, race_id: int, actor: Actor, *, tournament_id: int | None = None, **changes: Any
    ) -> LiveRaceView:
        if not changes:
            raise ValidationFailed("nothing to change", field="changes")
        async with self.db.transaction() as session:
            race = await self._race(session, guild_id, race_id, tournament_id)
            if race.status is RaceStatus.ROOM_OPEN and set(changes) - {"title"}:
                raise InvalidTransition(f"race {race.id} has an open room; only its title can change")
            if race.status not in (RaceStatus.SCHEDULED, RaceStatus.ROOM_OPEN):
                raise InvalidTransition(f"race {race.id} is {race.status.value}; it can no longer change")
            fields = await self._check_fields(session, guild_id, race.tournament_id, dict(changes))
            for key, value in fields.items():
                setattr(race, key, value)
            await audit.record(
                session,
                guild_id=guild_id,
                actor=actor,
                action="live_race.edit",
                target_type="live_race",
                target_id=race.id,
            )
            await session.flush()
            return await self._view(session, race)

    async def cancel(
        self, guild_id: int, race_id: int, actor: Actor, *, reason: str, tournament_id: int | None = None
    ) -> LiveRaceView:
        reason = clean_text(reason, "reason", max_length=500)
        if not reason:
            raise ValidationFailed("a reason is required to cancel a race", field="reason")
        async with self.db.transaction() as session:
            race = await self._race(session, guild_id, race_id, tournament_id)
            if race.status not in ACTIVE:
                raise InvalidTransition(f"race {race.id} is {race.status.value}; it can no longer be cancelled")
            race.status = RaceStatus.CANCELLED
            race.cancel_reason = reason
            race.ended_at = utcnow()
            await audit.record(
                session,
                guild_id=guild_id,
                actor=actor,
                action="live_race.cancel",
                target_type="live_race",
                target_id=race.id,
            )
            await session.flush()
            return await self._view(session, race)

    async def delete(self, guild_id: int, race_id: int, actor: Actor, *, tournament_id: int | None = None) -> None:
        async with self.db.transaction() as session:
            race = await self._race(session, guild_id, race_id, tournament_id)
            if race.status not in (RaceStatus.SCHEDULED, RaceStatus.CANCELLED):
                raise InvalidTransition(f"race {race.id} is {race.status.value}; only scheduled or cancelled races")
            await session.execute(update(Run).where(Run.live_race_id == race.id).values(live_race_id=None))
            await audit.record(
                session,
                guild_id=guild_id,
                actor=actor,
                action="live_race.delete",
                target_type="live_race",
                target_id=race.id,
            )
            await session.delete(race)

    async def open_now(
        self, guild_id: int, race_id: int, actor: Actor, *, tournament_id: int | None = None
    ) -> LiveRaceView:
        async with self.db.transaction() as session:
            race = await self._race(session, guild_id, race_id, tournament_id)
            if race.status is not RaceStatus.SCHEDULED:
                raise InvalidTransition(f"race {race.id} is {race.status.value}; only scheduled races can be opened")
            race.status = RaceStatus.ROOM_OPEN
            race.racetime_category = "alttpr"
            race.racetime_slug = f"fake-room-{race.id:04d}"
            race.racetime_url = f"/alttpr/fake-room-{race.id:04d}"
            race.racetime_status = "open"
            race.room_opened_at = utcnow()
            if race.permalink_id is None:
                race.permalink_id = await session.scalar(
                    select(Permalink.id).where(Permalink.pool_id == race.pool_id).order_by(Permalink.id).limit(1)
                )
            await audit.record(
                session,
                guild_id=guild_id,
                actor=actor,
                action="live_race.open",
                target_type="live_race",
                target_id=race.id,
            )
            await session.flush()
            return await self._view(session, race)

    async def record(
        self, guild_id: int, race_id: int, actor: Actor, *, force: bool = False, tournament_id: int | None = None
    ) -> LiveRaceView:
        async with self.db.transaction() as session:
            race = await self._race(session, guild_id, race_id, tournament_id)
            if race.status is RaceStatus.FINISHED and not force:
                raise InvalidTransition(f"race {race.id} is already recorded")
            if race.status not in (RaceStatus.ROOM_OPEN, RaceStatus.IN_PROGRESS, RaceStatus.FINISHED):
                raise InvalidTransition(f"race {race.id} is {race.status.value}; it has no room to record")
            race.status = RaceStatus.FINISHED
            race.racetime_status = "finished"
            race.ended_at = race.ended_at or utcnow()
            race.results_recorded_at = utcnow()
            await session.flush()
            return await self._view(session, race)

    async def get(self, guild_id: int, race_id: int, *, tournament_id: int | None = None) -> LiveRaceView:
        async with self.db.read() as session:
            return await self._view(session, await self._race(session, guild_id, race_id, tournament_id))

    async def _page(self, guild_id: int, query, limit: int | None, cursor: str | None) -> Page[LiveRaceView]:
        """One joined query for the page, as the real service does."""
        limit = page_limit(limit)
        after = decode_cursor(cursor)
        query = (
            query.add_columns(Tournament, Pool, Permalink)
            .join(Tournament, Tournament.id == LiveRace.tournament_id)
            .join(Pool, Pool.id == LiveRace.pool_id)
            .outerjoin(Permalink, Permalink.id == LiveRace.permalink_id)
            .where(LiveRace.guild_id == guild_id)
            .order_by(LiveRace.id)
            .limit(limit + 1)
        )
        if after is not None:
            query = query.where(LiveRace.id > after)
        async with self.db.read() as session:
            rows = (await session.execute(query)).all()
        views = [
            LiveRaceView(race, tournament, pool, permalink, race.scheduled_at - timedelta(minutes=LEAD_MINUTES))
            for race, tournament, pool, permalink in rows
        ]
        return make_page(views, limit, lambda view: view.race.id)

    async def list(
        self,
        guild_id: int,
        *,
        tournament_id: int | None = None,
        statuses=None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[LiveRaceView]:
        query = select(LiveRace)
        if tournament_id is not None:
            async with self.db.read() as session:
                await tournament_or_404(session, guild_id, tournament_id)
            query = query.where(LiveRace.tournament_id == tournament_id)
        if statuses:
            query = query.where(LiveRace.status.in_([RaceStatus(s) for s in statuses]))
        return await self._page(guild_id, query, limit, cursor)

    async def upcoming(
        self, guild_id: int, *, tournament_id: int | None = None, limit: int | None = None, cursor: str | None = None
    ) -> Page[LiveRaceView]:
        query = select(LiveRace).where(LiveRace.status.in_([RaceStatus.SCHEDULED, RaceStatus.ROOM_OPEN]))
        if tournament_id is not None:
            query = query.where(LiveRace.tournament_id == tournament_id)
        return await self._page(guild_id, query, limit, cursor)

    async def eligibility(self, guild_id: int, race_id: int, *, tournament_id: int | None = None) -> EligibilityReport:
        async with self.db.read() as session:
            view = await self._view(session, await self._race(session, guild_id, race_id, tournament_id))
            return await compute_eligibility(
                session,
                guild_id=guild_id,
                tournament=view.tournament,
                pool=view.pool,
                permalink_id=view.race.permalink_id,
            )

    async def results(self, guild_id: int, race_id: int, *, tournament_id: int | None = None) -> RaceResults:
        async with self.db.read() as session:
            view = await self._view(session, await self._race(session, guild_id, race_id, tournament_id))
            rows = (
                await session.execute(
                    select(LiveRaceEntrant, Player, Run)
                    .outerjoin(Player, Player.id == LiveRaceEntrant.player_id)
                    .outerjoin(Run, Run.id == LiveRaceEntrant.run_id)
                    .where(LiveRaceEntrant.live_race_id == race_id)
                    .order_by(func.coalesce(LiveRaceEntrant.place, 1_000_000), LiveRaceEntrant.id)
                )
            ).all()
        entrants = [
            EntrantView(
                racetime_id=entrant.racetime_id,
                racetime_name=entrant.racetime_name,
                player_id=entrant.player_id,
                discord_user_id=player.discord_user_id if player else None,
                display_name=player.display_name if player else None,
                counted=entrant.counted,
                reason=entrant.reason,
                status=entrant.status,
                place=entrant.place,
                elapsed_us=entrant.elapsed_us,
                finished_at=entrant.finished_at,
                run_id=entrant.run_id,
                score=run.score if run else None,
            )
            for entrant, player, run in rows
        ]
        return RaceResults(view, entrants)


class FakeNotificationService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def delivery_log(
        self,
        guild_id: int,
        race_id: int,
        *,
        status: NotificationStatus | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Notification]:
        limit = page_limit(limit)
        after = decode_cursor(cursor)
        query = (
            select(Notification)
            .where(Notification.guild_id == guild_id, Notification.live_race_id == race_id)
            .order_by(Notification.id)
            .limit(limit + 1)
        )
        if after is not None:
            query = query.where(Notification.id > after)
        if status is not None:
            query = query.where(Notification.status == status)
        async with self.db.read() as session:
            rows = list((await session.scalars(query)).all())
        return make_page(rows, limit, lambda n: n.id)

    async def resend_failed(self, guild_id: int, race_id: int, actor: Actor) -> int:
        async with self.db.transaction() as session:
            result = await session.execute(
                update(Notification)
                .where(
                    Notification.guild_id == guild_id,
                    Notification.live_race_id == race_id,
                    Notification.status == NotificationStatus.FAILED,
                )
                .values(status=NotificationStatus.PENDING, next_attempt_at=utcnow(), attempts=0)
            )
            return result.rowcount or 0
