"""Opening RaceTime.gg rooms for live races: exactly one room per race (PRODUCT.md §3.1, §4).

1. Claim: a compare-and-set UPDATE takes the race (status `scheduled`, no live claim) before any HTTP call. Only
   the process whose UPDATE changed the row goes on, so two processes never both call `startrace`.
2. Reconcile: `open_claimed_at` keeps the time of the last claim after it is released, so a race that was ever
   claimed may already have a room (a crash after `startrace`, a timeout after the server created the room).
   Such a race first looks for its marker (`sl:<marker>`, in `info_bot`) in `/o/{category}/data` and adopts
   that room instead of creating another. A stale claim is only taken over after the lease, which is longer
   than the 60 s the listing is cached, so the listing already shows a room the crashed process created.
3. Record: the room, status `room_open` and the RoomOpened event commit together, guarded by the claim.
4. Fail: the claim is released, `open_attempts` grows and the next attempt waits `base × 2^(attempts−1)`
   (at least the listing cache TTL when RaceTime.gg may have created the room). After `open_max_attempts`, or
   at once for an error retrying cannot fix (a 422, an unknown category, credentials refused or missing, no
   seed left), the
   race stays `scheduled` with `last_error` and LiveRaceOpenFailed tells the moderators.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.actors import Actor
from bot.events import EventBus, LiveRaceOpenFailed, LiveRaceRoomOpened
from bot.services import audit
from bot.services.room_profiles import racetime_settings, resolve_for_race
from bot.settings import Settings
from db.models import GuildSettings, LiveRace, Permalink, Pool, RaceStatus, Run, Tournament
from db.session import Database
from db.types import utcnow
from racetime.errors import (
    RacetimeAuthError,
    RacetimeError,
    RacetimeNotFound,
    RacetimeProtocolError,
    RacetimeUnavailable,
    RacetimeValidationError,
)
from racetime.models import CategoryData, RoomRef, StartRaceRequest

if TYPE_CHECKING:
    from racetime.client import RacetimeClient

log = logging.getLogger(__name__)

OPENER = Actor.system("room opener")
MAX_LEAD_MINUTES = 1440  # the highest lead any level accepts
LISTING_CACHE_SECONDS = 60  # RaceTime.gg caches /o/{category}/data this long
NO_CREDENTIALS = "RaceTime.gg credentials are not configured (set STARTLINE_RACETIME__CLIENT_ID and _CLIENT_SECRET)"
MARKER_PREFIX = "sl:"


def room_open_lead(tournament_lead: int | None, guild_lead: int | None, default: int) -> int:
    """Lead minutes: the tournament's, else the guild's, else the configured default."""
    if tournament_lead is not None:
        return tournament_lead
    if guild_lead is not None:
        return guild_lead
    return default


def marker_tag(marker: str) -> str:
    return f"{MARKER_PREFIX}{marker}"


def room_category(tournament: Tournament, settings: Settings) -> str:
    return tournament.racetime_category or settings.racetime.category


def build_request(
    race: LiveRace, tournament: Tournament, pool: Pool, permalink: Permalink, room: dict
) -> StartRaceRequest:
    """The room as §4 describes it: goal, info naming tournament, pool, UTC start and seed, and the marker."""
    goal = tournament.racetime_goal or None
    custom_goal = None if goal else (tournament.custom_goal or race.title)
    starts = race.scheduled_at.strftime("%Y-%m-%d %H:%M UTC")
    info_user = f"{tournament.name} – {pool.name} · starts {starts} · Seed: {permalink.url}"
    return StartRaceRequest(
        settings=racetime_settings(room),
        goal=goal,
        custom_goal=custom_goal,
        info_user=info_user[:1000],
        info_bot=f"Startline live race #{race.id} · {marker_tag(race.marker)}",
    )


def find_marked_room(listing: CategoryData, marker: str) -> RoomRef | None:
    tag = marker_tag(marker)
    for summary in listing.current_races:
        if tag in summary.info:
            return RoomRef(category=summary.category_slug, slug=summary.slug, url=summary.url)
    return None


async def choose_permalink(session: AsyncSession, race: LiveRace) -> Permalink | None:
    """The pool's seed with the fewest runs that no live race has used or reserved (ties: lowest id)."""
    reserved = select(LiveRace.permalink_id).where(
        LiveRace.permalink_id.is_not(None),
        LiveRace.id != race.id,
        LiveRace.status != RaceStatus.CANCELLED,
    )
    run_count = (
        select(func.count(Run.id)).where(Run.permalink_id == Permalink.id).correlate(Permalink).scalar_subquery()
    )
    return await session.scalar(
        select(Permalink)
        .where(
            Permalink.pool_id == race.pool_id,
            Permalink.used_in_live_race.is_(False),
            Permalink.id.not_in(reserved),
        )
        .order_by(run_count, Permalink.id)
        .limit(1)
    )


async def mark_seed_published(session: AsyncSession, permalink_id: int | None) -> None:
    """The seed was shown in a room: `choose_permalink` never picks it for another live race by itself."""
    if permalink_id is None:
        return
    permalink = await session.get(Permalink, permalink_id)
    if permalink is not None:
        permalink.used_in_live_race = True


class OpenFailure(Exception):
    """Opening did not succeed; `retryable` says whether the opener tries again by itself.

    `validation`: RaceTime.gg refused the room's settings or goal. `conflict`: the race itself cannot open as
    it stands (no seed left in its pool). Neither is RaceTime.gg being unavailable.
    """

    def __init__(self, message: str, *, retryable: bool, validation: bool = False, conflict: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.validation = validation
        self.conflict = conflict


class ClaimRefused(Exception):
    """The race is not (or no longer) ours to open: another process holds it, or its status changed.

    `status` is the race's status then (None when the race is gone).
    """

    def __init__(self, status: RaceStatus | None, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class OpenPlan:
    race_id: int
    claim_id: str
    category: str
    marker: str
    request: StartRaceRequest
    reconcile: bool


@dataclass
class OpenerReport:
    due: int = 0
    opened: int = 0
    adopted: int = 0
    failed: int = 0
    skipped: int = 0


@dataclass(frozen=True)
class OpenOutcome:
    race_id: int
    adopted: bool
    room: RoomRef


class RoomOpener:
    def __init__(
        self,
        db: Database,
        events: EventBus,
        settings: Settings,
        racetime: RacetimeClient | None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.events = events
        self.settings = settings
        self.racetime = racetime
        self.clock = clock

    def _client(self) -> RacetimeClient:
        # A claim without a client fails at once ("credentials are not configured"), so past it one exists.
        assert self.racetime is not None
        return self.racetime

    @property
    def _lease(self) -> timedelta:
        return timedelta(seconds=self.settings.scheduler.open_claim_lease_seconds)

    # ---- the job ---------------------------------------------------------------------------------------
    async def run_cycle(self) -> OpenerReport:
        """Open every race whose open time has come. One race failing never stops the others."""
        report = OpenerReport()
        listings: dict[str, CategoryData] = {}
        for race_id in await self.due_race_ids():
            report.due += 1
            try:
                outcome = await self.open(race_id, actor=OPENER, listings=listings)
            except ClaimRefused:
                report.skipped += 1
            except OpenFailure as failure:
                report.failed += 1
                log.warning("room for live race %s not opened: %s", race_id, failure.message)
            except Exception:
                report.failed += 1
                log.exception("room opener failed on live race %s", race_id)
            else:
                if outcome.adopted:
                    report.adopted += 1
                else:
                    report.opened += 1
        return report

    async def due_race_ids(self) -> list[int]:
        now = self.clock()
        scheduler = self.settings.scheduler
        horizon = now + timedelta(minutes=max(MAX_LEAD_MINUTES, scheduler.room_open_lead_minutes))
        query = (
            select(
                LiveRace.id,
                LiveRace.scheduled_at,
                Tournament.room_open_lead_minutes,
                GuildSettings.room_open_lead_minutes,
            )
            .join(Tournament, Tournament.id == LiveRace.tournament_id)
            .outerjoin(GuildSettings, GuildSettings.guild_id == LiveRace.guild_id)
            .where(
                LiveRace.status == RaceStatus.SCHEDULED,
                LiveRace.scheduled_at <= horizon,
                LiveRace.open_attempts < scheduler.open_max_attempts,
                or_(LiveRace.next_open_attempt_at.is_(None), LiveRace.next_open_attempt_at <= now),
                or_(LiveRace.open_claim_id.is_(None), LiveRace.open_claimed_at < now - self._lease),
            )
            .order_by(LiveRace.scheduled_at, LiveRace.id)
        )
        async with self.db.read() as session:
            rows = (await session.execute(query)).all()
        default = scheduler.room_open_lead_minutes
        return [
            race_id
            for race_id, scheduled_at, tournament_lead, guild_lead in rows
            if scheduled_at - timedelta(minutes=room_open_lead(tournament_lead, guild_lead, default)) <= now
        ]

    # ---- one race --------------------------------------------------------------------------------------
    async def open(
        self, race_id: int, *, actor: Actor, manual: bool = False, listings: dict[str, CategoryData] | None = None
    ) -> OpenOutcome:
        """Claim, open (or adopt) and record one race's room.

        Raises ClaimRefused when the race is not ours to open, OpenFailure when opening failed (already
        recorded on the race).
        """
        plan = await self._claim(race_id, actor=actor, manual=manual)
        racetime = self._client()
        listings = {} if listings is None else listings
        phase = "listing"
        try:
            room = None
            if plan.reconcile:
                room = await self._find_room(plan.category, plan.marker, listings)
            adopted = room is not None
            if room is None:
                phase = "startrace"
                room = await racetime.start_race(plan.category, plan.request)
        except RacetimeError as exc:
            # A startrace that timed out or was answered oddly may still have created the room.
            maybe_created = phase == "startrace" and isinstance(exc, (RacetimeUnavailable, RacetimeProtocolError))
            raise await self._record_failure(plan, actor, exc, maybe_created=maybe_created) from exc
        except Exception as exc:
            log.exception("unexpected error while opening the room of live race %s", race_id)
            raise await self._record_failure(plan, actor, exc, maybe_created=phase == "startrace") from exc
        await self._record_opened(plan, room, actor=actor, adopted=adopted)
        return OpenOutcome(race_id, adopted, room)

    async def _find_room(self, category: str, marker: str, listings: dict[str, CategoryData]) -> RoomRef | None:
        if category not in listings:
            listings[category] = await self._client().category_data(category, include_unlisted=True)
        return find_marked_room(listings[category], marker)

    async def _claim(self, race_id: int, *, actor: Actor, manual: bool) -> OpenPlan:
        now = self.clock()
        scheduler = self.settings.scheduler
        async with self.db.transaction() as session:
            race = await session.get(LiveRace, race_id, populate_existing=True)
            if race is None:
                raise ClaimRefused(None, f"live race {race_id} no longer exists")
            if race.status is not RaceStatus.SCHEDULED:
                raise ClaimRefused(
                    race.status, f"race {race.id} is {race.status.value}; only a scheduled race can be opened"
                )
            if not manual and (
                race.open_attempts >= scheduler.open_max_attempts
                or (race.next_open_attempt_at is not None and race.next_open_attempt_at > now)
            ):
                raise ClaimRefused(race.status, f"race {race.id} is not due for another attempt")
            reconcile = race.open_claimed_at is not None
            claim_id = uuid.uuid4().hex
            values: dict = {"open_claim_id": claim_id, "open_claimed_at": now}
            if manual:
                values.update(open_attempts=0, next_open_attempt_at=None)
            claimed = await session.execute(
                update(LiveRace)
                .where(
                    LiveRace.id == race.id,
                    LiveRace.status == RaceStatus.SCHEDULED,
                    LiveRace.open_attempts == race.open_attempts,
                    or_(LiveRace.open_claim_id.is_(None), LiveRace.open_claimed_at < now - self._lease),
                )
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            if claimed.rowcount != 1:
                raise ClaimRefused(race.status, f"the room of race {race.id} is being opened right now")
            await session.refresh(race)
            tournament = await session.get(Tournament, race.tournament_id)
            pool = await session.get(Pool, race.pool_id)
            assert tournament is not None and pool is not None
            permalink = await session.get(Permalink, race.permalink_id) if race.permalink_id else None
            failure: str | None = None
            no_seed = False
            if self.racetime is None:
                failure = NO_CREDENTIALS
            elif permalink is None:
                permalink = await choose_permalink(session, race)
                if permalink is None:
                    no_seed = True
                    failure = (
                        f"pool {pool.name} has no seed left that no live race has used; "
                        "add a seed to the pool or pick one for this race"
                    )
                else:
                    # Kept from the first claim on, so a retry sends (and an adopted room shows) the same seed.
                    race.permalink_id = permalink.id
            if failure is not None:
                await self._fail(session, race, actor, failure, retryable=False, maybe_created=False)
            else:
                assert permalink is not None
                room = await resolve_for_race(session, race, tournament)
                plan = OpenPlan(
                    race_id=race.id,
                    claim_id=claim_id,
                    category=room_category(tournament, self.settings),
                    marker=race.marker,
                    request=build_request(race, tournament, pool, permalink, room),
                    reconcile=reconcile,
                )
        if failure is not None:  # raised after the commit, so the failure stays recorded
            raise OpenFailure(failure, retryable=False, conflict=no_seed)
        return plan

    async def _record_opened(self, plan: OpenPlan, room: RoomRef, *, actor: Actor, adopted: bool) -> None:
        now = self.clock()
        async with self.db.transaction() as session:
            recorded = await session.execute(
                update(LiveRace)
                .where(
                    LiveRace.id == plan.race_id,
                    LiveRace.status == RaceStatus.SCHEDULED,
                    LiveRace.open_claim_id == plan.claim_id,
                )
                .values(
                    status=RaceStatus.ROOM_OPEN,
                    racetime_category=room.category,
                    racetime_slug=room.slug,
                    racetime_url=room.url,
                    racetime_status="invitational" if plan.request.settings.invitational else "open",
                    room_opened_at=now,
                    open_claim_id=None,
                    next_open_attempt_at=None,
                    last_error=None,
                )
                .execution_options(synchronize_session=False)
            )
            race = await session.get(LiveRace, plan.race_id, populate_existing=True)
            if recorded.rowcount != 1:
                lost_to = race.status.value if race is not None else "deleted"
                log.warning("live race %s changed (%s) while its room %s opened", plan.race_id, lost_to, room.slug)
            else:
                assert race is not None
                await mark_seed_published(session, race.permalink_id)
                await audit.record(
                    session,
                    guild_id=race.guild_id,
                    actor=actor,
                    action="live_race.open",
                    target_type="live_race",
                    target_id=race.id,
                    details={
                        "racetime_category": room.category,
                        "racetime_slug": room.slug,
                        "adopted": adopted,
                        "permalink_id": race.permalink_id,
                    },
                )
                await self.events.publish(
                    session,
                    LiveRaceRoomOpened(
                        guild_id=race.guild_id,
                        tournament_id=race.tournament_id,
                        live_race_id=race.id,
                        occurred_at=now,
                    ),
                )
                return
        if race is None or race.status is RaceStatus.CANCELLED:
            # Cancelled (or deleted) while the room was being created: do not leave an orphan room behind.
            await self._cancel_orphan(room)

    async def _cancel_orphan(self, room: RoomRef) -> None:
        try:
            await self._client().cancel_race(room.category, room.slug)
        except RacetimeError as exc:
            log.warning("could not cancel orphan room %s/%s: %s", room.category, room.slug, exc)

    async def _record_failure(
        self, plan: OpenPlan, actor: Actor, exc: Exception, *, maybe_created: bool
    ) -> OpenFailure:
        if isinstance(exc, RacetimeValidationError):
            message, retryable = f"RaceTime.gg refused to open the room: {exc}", False
        elif isinstance(exc, RacetimeNotFound):
            message, retryable = f"RaceTime.gg does not know category {plan.category!r}", False
        elif isinstance(exc, RacetimeAuthError):
            message, retryable = (
                f"RaceTime.gg refused the bot in category {plan.category!r}: a bot's credentials work in its own "
                "category only (check the tournament's category and the configured credentials)",
                False,  # the same credentials fail the same way: retrying only delays the alert
            )
        elif isinstance(exc, RacetimeError):
            message, retryable = f"RaceTime.gg did not open the room: {exc}", True
        else:
            message, retryable = f"opening the room failed: {type(exc).__name__}: {exc}", True
        async with self.db.transaction() as session:
            race = await session.get(LiveRace, plan.race_id, populate_existing=True)
            if race is not None and race.open_claim_id == plan.claim_id:
                await self._fail(session, race, actor, message, retryable=retryable, maybe_created=maybe_created)
        return OpenFailure(message, retryable=retryable, validation=isinstance(exc, RacetimeValidationError))

    async def _fail(
        self, session: AsyncSession, race: LiveRace, actor: Actor, message: str, *, retryable: bool, maybe_created: bool
    ) -> None:
        """Release the claim and schedule the next attempt, or give up and tell the moderators (once)."""
        now = self.clock()
        scheduler = self.settings.scheduler
        attempts = race.open_attempts + 1 if retryable else max(race.open_attempts + 1, scheduler.open_max_attempts)
        delay = scheduler.open_backoff_base_seconds * 2 ** (attempts - 1)
        if maybe_created:
            delay = max(delay, LISTING_CACHE_SECONDS)
        gave_up = attempts >= scheduler.open_max_attempts
        race.open_claim_id = None
        race.open_attempts = attempts
        race.last_error = message[:2000]
        race.next_open_attempt_at = None if gave_up else now + timedelta(seconds=delay)
        await audit.record(
            session,
            guild_id=race.guild_id,
            actor=actor,
            action="live_race.open_failed" if gave_up else "live_race.open_retry",
            target_type="live_race",
            target_id=race.id,
            details={"attempts": attempts, "error": message, "next_attempt_at": race.next_open_attempt_at},
        )
        if gave_up:
            await self.events.publish(
                session,
                LiveRaceOpenFailed(
                    guild_id=race.guild_id,
                    tournament_id=race.tournament_id,
                    live_race_id=race.id,
                    occurred_at=now,
                    error=message,
                    attempts=attempts,
                ),
            )
