"""Opening RaceTime.gg rooms for live races: exactly one room per race.

Every step locks the race (`race_locks.lock_race`) for its database work and makes no RaceTime.gg call while it
holds the lock:

1. Claim: under the lock, a scheduled race without a live claim is taken (`open_claim_id`, `open_claimed_at`), its
   seed chosen and `room_search_after` set to the moment the listing is sure to show any room this claim creates
   (claim + `Settings.open_claim_budget_seconds` + `racetime.listing_cache_seconds`). A race whose start passed more
   than `scheduler.max_late_open_minutes` ago is not claimed by the job: it keeps `last_error` and the moderators
   are told once (LiveRaceOpenFailed).
2. Reconcile: a race whose `room_search_after` was set before the claim may have a room already (a crash after
   `startrace`, an answer lost to a timeout). It first reads `/o/{category}/data` and adopts the earliest room with
   its marker (`sl:<marker>`, in `info_bot`) that shows its seed; any other marked room is a stray and is cancelled.
3. Open: `startrace`, all of the claim's HTTP work bounded by the claim budget, so a crashed claim's room is in the
   listing when the lease (validated against that worst case) lets another claim take over.
4. Record: under the lock again, the room, status `room_open` and RoomOpened commit together, only if the race is
   still scheduled, still ours, and still has the seed and pool the room was created with. Otherwise the room is
   not the race's: a cancelled or deleted race, a race that has another room, or a changed seed gets its room
   cancelled on RaceTime.gg (logged and audited); a race claimed by another process keeps it for that claim to adopt.
5. Fail: the claim is released, `open_attempts` grows and the next attempt waits `base × 2^(attempts−1)`, at least
   the listing cache time from the end of an attempt whose `startrace` may have reached RaceTime.gg. After
   `open_max_attempts`, or at once for an error retrying cannot fix (a 422, an unknown category, credentials
   refused or missing, no seed left), the race stays `scheduled` with `last_error` and LiveRaceOpenFailed tells the
   moderators.

Each cycle also sweeps cancelled races whose `room_search_after` has come: a room a claim created after the race
was cancelled (or that a cancel could not close) is found by its marker and cancelled.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import uuid
from collections import Counter, defaultdict, deque
from collections.abc import AsyncIterator, Callable, Collection, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import islice
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.actors import Actor
from bot.clock import SYSTEM_CLOCK
from bot.events import EventBus, LiveRaceOpenFailed, LiveRaceRoomOpened
from bot.logs import bind_log_context
from bot.services import audit
from bot.services.race_locks import lock_race, lock_races
from bot.services.room_profiles import racetime_settings, resolve_for_race
from bot.services.session_cache import guild_settings_once, hold
from bot.settings import Settings
from db.models import AuditEntry, GuildSettings, LiveRace, Pool, RaceStatus, Run, Seed, Tournament
from db.session import Database
from racetime.errors import (
    RacetimeAuthError,
    RacetimeConflict,
    RacetimeError,
    RacetimeNoCredentials,
    RacetimeNotFound,
    RacetimeUnavailable,
    RacetimeValidationError,
)
from racetime.models import CategoryData, RaceSummary, RoomRef, StartRaceRequest

if TYPE_CHECKING:
    from racetime.clients import RacetimeClients

log = logging.getLogger(__name__)

OPENER = Actor.system("room opener")
MAX_LEAD_MINUTES = 1440  # the highest lead any level accepts
NO_CREDENTIALS = (
    "RaceTime.gg credentials are not configured (set STARTLINE_RACETIME__CLIENT_ID and _CLIENT_SECRET, or a "
    "category's STARTLINE_RACETIME__CATEGORIES__<SLUG>__CLIENT_ID and __CLIENT_SECRET)"
)
MARKER_PREFIX = "sl:"
_MARKER_RE = re.compile(re.escape(MARKER_PREFIX) + r"([0-9a-f]+)")
SEED_LABEL = "Seed: "
_SEED_RE = re.compile(re.escape(SEED_LABEL) + r"(\S+)")
STRAY_ROOM_CANCELLED = "live_race.stray_room_cancelled"
ROOM_NOT_CANCELLED = "The RaceTime.gg room could not be cancelled"
# Why a room is not its race's (the audit entry's `reason`).
WHY_CANCELLED = "the race was cancelled while its room was being opened"
WHY_DELETED = "the race was deleted while its room was being opened"
WHY_DUPLICATE = "a second room with the race's marker"
WHY_SEED = "the room shows another seed than the race"
WHY_SWEEP = "the race is cancelled"


def room_not_cancelled(error: str) -> str:
    """A cancelled race's `last_error` while its room may still be open on RaceTime.gg."""
    return f"{ROOM_NOT_CANCELLED} ({error}); the bot keeps trying, or cancel it on RaceTime.gg"[:2000]


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


def build_request(race: LiveRace, tournament: Tournament, pool: Pool, seed: Seed, room: dict) -> StartRaceRequest:
    """The room a live race gets: goal, info naming tournament, pool, UTC start and seed, and the marker."""
    goal = tournament.racetime_goal or None
    custom_goal = None if goal else (tournament.custom_goal or race.title)
    starts = race.scheduled_at.strftime("%Y-%m-%d %H:%M UTC")
    reveal = room.get("seed_reveal", "at_open")
    # Names (100 + 100) and the URL (500) always fit in the 1000 characters, so the seed is never cut off.
    if reveal == "at_open":
        info_user = f"{tournament.name} – {pool.name} · starts {starts} · {SEED_LABEL}{seed.url}"
        seed_mark = ""
    else:
        minutes = room["seed_reveal_minutes"]
        when = f"{minutes} min before the start" if reveal == "before_start" else "when the race starts"
        info_user = f"{tournament.name} – {pool.name} · starts {starts} · the seed is shown here {when}"
        seed_mark = f" · {seed_tag(seed.url)}"  # lets a retry recognise its room without showing the seed
    return StartRaceRequest(
        settings=racetime_settings(room),
        goal=goal,
        custom_goal=custom_goal,
        info_user=info_user[:1000],
        info_bot=(
            f"Startline live race #{race.id} · starts {starts} · "
            + (f"counts for {tournament.name}" if tournament.active else "does not count (tournament not active)")
            + f"{seed_mark} · {marker_tag(race.marker)}"
        ),
    )


def marked_rooms(listing: CategoryData) -> dict[str, list[RaceSummary]]:
    """The listed rooms by the race marker in their info, oldest first (one pass, whatever the number of races)."""
    rooms: dict[str, list[RaceSummary]] = defaultdict(list)
    for summary in listing.current_races:
        for marker in set(_MARKER_RE.findall(summary.info)):
            rooms[marker].append(summary)
    for found in rooms.values():
        found.sort(key=lambda summary: (summary.opened_at is None, summary.opened_at, summary.slug))
    return rooms


def room_ref(summary: RaceSummary) -> RoomRef:
    return RoomRef(category=summary.category_slug, slug=summary.slug, url=summary.url)


def room_seed_url(info: str) -> str | None:
    match = _SEED_RE.search(info)
    return match.group(1) if match else None


def seed_tag(url: str) -> str:
    """A seed's fingerprint for a room whose seed is not shown yet (`sd:` and 12 hex digits of its SHA-256)."""
    return "sd:" + hashlib.sha256(url.encode()).hexdigest()[:12]


def pick_room(found: Iterable[RaceSummary], seed_url: str) -> tuple[RoomRef | None, list[RoomRef]]:
    """The room to adopt (the earliest showing the race's seed, or its fingerprint) and the strays (every other
    marked room)."""
    adopt: RoomRef | None = None
    strays: list[RoomRef] = []
    tag = seed_tag(seed_url)
    for summary in found:
        if adopt is None and (room_seed_url(summary.info) == seed_url or tag in summary.info.split()):
            adopt = room_ref(summary)
        else:
            strays.append(room_ref(summary))
    return adopt, strays


async def choose_seed(session: AsyncSession, race: LiveRace, *, also_reserved: Collection[int] = ()) -> Seed | None:
    """The pool's seed with the fewest runs that no live race has used or reserved (ties: lowest id).
    `also_reserved`: seeds the caller reserved in this transaction and has not flushed yet."""
    chosen = await choose_seeds(session, race, 1, also_reserved=also_reserved)
    return chosen[0] if chosen else None


async def choose_seeds(
    session: AsyncSession, race: LiveRace, count: int, *, also_reserved: Collection[int] = ()
) -> list[Seed]:
    """`choose_seed` for `count` races of the race's pool claimed one after another in one transaction: the
    first `count` seeds in its order, which are the seeds those races would choose one at a time (a seed chosen
    is reserved, and nothing else changes the order within the transaction)."""
    reserved = select(LiveRace.seed_id).where(
        LiveRace.seed_id.is_not(None),
        LiveRace.id != race.id,
        LiveRace.status != RaceStatus.CANCELLED,
    )
    run_count = select(func.count(Run.id)).where(Run.seed_id == Seed.id).correlate(Seed).scalar_subquery()
    chosen = await session.scalars(
        select(Seed)
        .where(
            Seed.pool_id == race.pool_id,
            Seed.used_in_live_race.is_(False),
            Seed.id.not_in(reserved),
            *([Seed.id.not_in(list(also_reserved))] if also_reserved else []),
        )
        .order_by(run_count, Seed.id)
        .limit(count)
    )
    return list(chosen.all())


async def mark_seed_published(session: AsyncSession, seed_id: int | None) -> None:
    """The seed was shown in a room: `choose_seed` never picks it for another live race by itself."""
    if seed_id is None:
        return
    seed = await session.get(Seed, seed_id)
    if seed is not None:
        seed.used_in_live_race = True


async def mark_seeds_published(session: AsyncSession, seed_ids: Collection[int]) -> None:
    """`mark_seed_published` for many seeds, in one UPDATE (the rooms of a record batch)."""
    if seed_ids:
        await session.execute(update(Seed).where(Seed.id.in_(sorted(seed_ids))).values(used_in_live_race=True))


CHOSEN_SEEDS = "room_opener.chosen_seeds"  # session.info: the seeds chosen by the claims of this transaction
SEED_DEMAND = "room_opener.seed_demand"  # session.info: the races of each pool of a claim batch without a seed
SEED_CANDIDATES = "room_opener.seed_candidates"  # session.info: the seeds read for them, in the order to take them


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

    `status` is the race's status then (None when the race is gone); `search_after` is set when a room from an
    earlier attempt may exist and the listing is not sure to show it before that time.
    """

    def __init__(self, status: RaceStatus | None, message: str, *, search_after: datetime | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.search_after = search_after


@dataclass(frozen=True)
class OpenPlan:
    race_id: int
    guild_id: int
    claim_id: str
    category: str
    marker: str
    seed_id: int
    pool_id: int
    seed_url: str
    request: StartRaceRequest
    seed_reveal: str  # the seed policy the room opens with
    reconcile: bool  # a room of an earlier attempt may exist: look for it first
    earlier_search_after: datetime | None  # room_search_after before this claim
    search_after: datetime  # room_search_after for the room this claim may create
    deadline: float  # the event loop's time by which the claim's RaceTime.gg work ends (claim + budget)


Claimed = OpenPlan | ClaimRefused | OpenFailure
# A record's outcome: the ClaimRefused to raise (None: recorded), why the room is to be cancelled, its `settles`.
Recorded = tuple[ClaimRefused | None, str | None, datetime | None]


@dataclass
class OpenerReport:
    due: int = 0
    opened: int = 0
    adopted: int = 0
    failed: int = 0
    skipped: int = 0
    swept: int = 0


@dataclass(frozen=True)
class OpenOutcome:
    race_id: int
    adopted: bool
    room: RoomRef


class StrayRooms:
    """Cancels rooms with a race's marker that are not the race's room, and says so in the log and the audit."""

    def __init__(
        self, db: Database, settings: Settings, racetime: RacetimeClients | None, clock: Callable[[], datetime]
    ) -> None:
        self.db = db
        self.settings = settings
        self.racetime = racetime
        self.clock = clock

    async def close(
        self,
        race_id: int,
        guild_id: int,
        rooms: list[RoomRef],
        *,
        why: str,
        actor: Actor,
        settles: datetime | None = None,
    ) -> bool:
        """Cancel `rooms` on RaceTime.gg; True when none is left open.

        `settles`: every room the race's `room_search_after` stood for is among `rooms` (a complete listing read
        at that time, or the one room a claim created), so once they are cancelled a `room_search_after` not
        later than it is cleared. A room that could not be cancelled is tried again by the sweep.
        """
        done = await self._cancelled_before(race_id)  # a cached listing shows a room cancelled a moment ago
        rooms = [room for room in rooms if room.slug not in done]
        errors: dict[str, str] = {}
        for room in rooms:
            try:
                if self.racetime is None:
                    raise RacetimeError(NO_CREDENTIALS)
                await self.racetime.cancel_race(room.category, room.slug)
            except RacetimeConflict as exc:  # over there already (finished): nothing is open any more
                log.warning("stray room %s of live race %s is already over: %s", room.name, race_id, exc)
            except RacetimeError as exc:
                errors[room.slug] = str(exc)
        now = self.clock()
        async with self.db.transaction() as session:
            race = await lock_race(session, race_id)
            # Another process may have cancelled the same room meanwhile (two pollers, two sweeps): audit it once.
            recorded = await _cancelled_slugs(session, race_id)
            for room in rooms:
                error = errors.get(room.slug)
                if error is None and room.slug in recorded:
                    continue
                log.warning(
                    "live race %s: %s room %s (%s)%s",
                    race_id,
                    "could not cancel" if error else "cancelled",
                    room.name,
                    why,
                    f": {error}" if error else "",
                )
                await audit.record(
                    session,
                    guild_id=guild_id,
                    actor=actor,
                    action=STRAY_ROOM_CANCELLED,
                    target_type="live_race",
                    target_id=race_id,
                    details={
                        "racetime_category": room.category,
                        "racetime_slug": room.slug,
                        "reason": why,
                        "cancelled": error is None,
                        "error": error,
                    },
                )
            if race is None:
                return not errors
            if errors:
                # The sweep (cancelled races) or the next claim's reconcile (scheduled ones) tries again.
                retry_at = now + timedelta(seconds=self.settings.racetime.listing_cache_seconds)
                race.room_search_after = max(race.room_search_after or retry_at, retry_at)
                if race.status is RaceStatus.CANCELLED:
                    race.last_error = room_not_cancelled(next(iter(errors.values())))
            elif settles is not None and race.room_search_after is not None and race.room_search_after <= settles:
                race.room_search_after = None
                if race.status is RaceStatus.CANCELLED and (race.last_error or "").startswith(ROOM_NOT_CANCELLED):
                    race.last_error = None
        return not errors

    async def _cancelled_before(self, race_id: int) -> set[str]:
        async with self.db.read() as session:
            return await _cancelled_slugs(session, race_id)


async def _cancelled_slugs(session: AsyncSession, race_id: int) -> set[str]:
    """The rooms of a race the bot has cancelled on RaceTime.gg (their audit entries say so)."""
    entries = await session.scalars(
        select(AuditEntry.details).where(
            AuditEntry.target_type == "live_race",
            AuditEntry.target_id == race_id,
            AuditEntry.action == STRAY_ROOM_CANCELLED,
        )
    )
    return {details["racetime_slug"] for details in entries if details.get("cancelled")}


class RoomOpener:
    def __init__(
        self,
        db: Database,
        events: EventBus,
        settings: Settings,
        racetime: RacetimeClients | None,
        clock: Callable[[], datetime] = SYSTEM_CLOCK,
    ) -> None:
        self.db = db
        self.events = events
        self.settings = settings
        self.racetime = racetime
        self.clock = clock
        self.strays = StrayRooms(db, settings, racetime, clock)
        self._listing_locks: dict[str, asyncio.Lock] = {}
        self._sqlite_writes = asyncio.Lock() if db.dialect == "sqlite" else None
        self._recording = asyncio.Lock()  # one record batch at a time; the openings finished meanwhile wait
        self._to_record: list[tuple[OpenPlan, RoomRef, Actor, bool, asyncio.Future[Recorded]]] = []

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[AsyncSession]:
        """The opener's write transactions (claims, records, failures). On SQLite the concurrent openings of a
        cycle queue for its one writer here, first come first served, instead of in SQLite's busy handler, which
        retries with sleeps of up to 100 ms, so that a writer lock freed meanwhile may stay unused (the wall-time gain
        measured was small: docs/benchmarks.md). On PostgreSQL the transactions run side by side."""
        if self._sqlite_writes is None:
            async with self.db.transaction() as session:
                yield session
        else:
            async with self._sqlite_writes, self.db.transaction() as session:
                yield session

    def _client(self) -> RacetimeClients:
        # A claim without a client fails at once ("credentials are not configured"), so past it one exists.
        assert self.racetime is not None
        return self.racetime

    @property
    def _lease(self) -> timedelta:
        return timedelta(seconds=self.settings.scheduler.open_claim_lease_seconds)

    @property
    def _listing_cache(self) -> timedelta:
        return timedelta(seconds=self.settings.racetime.listing_cache_seconds)

    def claim_is_live(self, race: LiveRace, now: datetime) -> bool:
        """An opener holds the race (a claim older than the lease is a crashed one's: it may be taken over)."""
        return (
            race.open_claim_id is not None
            and race.open_claimed_at is not None
            and (race.open_claimed_at >= now - self._lease)
        )

    def too_late(self, scheduled_at: datetime, now: datetime) -> bool:
        """Past `scheduler.max_late_open_minutes` after the start, only a moderator opens a room."""
        return now - scheduled_at > timedelta(minutes=self.settings.scheduler.max_late_open_minutes)

    # ---- the job ---------------------------------------------------------------------------------------
    async def run_cycle(self) -> OpenerReport:
        """Close what cancelled races left open, then open every race whose open time has come, soonest first and
        at most `scheduler.open_concurrency` at once (each opening waits on RaceTime.gg for most of its time; one
        after another, 500 rooms at RaceTime.gg's latency would open minutes late). One race failing never stops
        the others.

        Claims are made in batches, one transaction each (`_claim_batch`): a worker that finds no claimed race
        waiting claims the next `open_concurrency` races in due order, one for itself and the rest for the workers
        that finish next (a round ahead), so on SQLite, whose one writer serialises every transaction, a round of
        races shares one claim transaction instead of one each. A claimed race waits for a worker about one round
        (a `startrace` and a record); its RaceTime.gg work still ends by its claim's deadline, and a claim that
        waited so long that less than one request timeout of its budget is left is released unused
        (`_release`) for the next cycle instead of being spent on a request it could not finish. Every race is
        still claimed under its lock with the same checks as one at a time, so batching changes nothing about
        exactly once."""
        report = OpenerReport()
        listings: dict[str, tuple[datetime, CategoryData]] = {}
        try:
            report.swept = await self.sweep(listings)
        except Exception:
            log.exception("room opener: sweeping cancelled races failed")
        due = await self.due_race_ids()
        report.due = len(due)
        queue = iter(due)  # soonest first
        workers = min(self.settings.scheduler.open_concurrency, len(due))
        pending: deque[OpenPlan] = deque()  # claimed, in due order, for the next workers
        # One claimer at a time, in due order, so the soonest race still gets the pool's best seed.
        claims = asyncio.Lock()
        loop = asyncio.get_running_loop()
        least_budget = self.settings.racetime.request_timeout_seconds  # left to a claim a worker takes up

        async def next_plan() -> OpenPlan | None:
            async with claims:
                while True:
                    while not pending:
                        race_ids = list(islice(queue, workers))
                        if not race_ids:
                            return None
                        await self._claim_for_cycle(race_ids, report, pending)
                    plan = pending.popleft()
                    if plan.deadline - loop.time() >= least_budget:
                        return plan
                    await self._release_for_cycle(plan, report)

        async def worker() -> None:
            while (plan := await next_plan()) is not None:
                await self._open_for_cycle(plan, listings, report)

        await asyncio.gather(*(worker() for _ in range(workers)))
        return report

    async def _claim_for_cycle(self, race_ids: list[int], report: OpenerReport, pending: deque[OpenPlan]) -> None:
        try:
            claimed = await self._claim_batch(race_ids, actor=OPENER)
        except Exception:  # rolled back: none of these races is claimed; the next cycle tries them again
            report.failed += len(race_ids)
            log.exception("room opener failed to claim live races %s", race_ids)
            return
        for race_id, result in claimed:
            if isinstance(result, OpenPlan):
                pending.append(result)
            elif isinstance(result, ClaimRefused):
                report.skipped += 1
            else:
                report.failed += 1
                log.warning("room for live race %s not opened: %s", race_id, result.message)

    async def _release_for_cycle(self, plan: OpenPlan, report: OpenerReport) -> None:
        report.skipped += 1
        log.warning("live race %s waited too long for a worker: its claim is released for the next cycle", plan.race_id)
        try:
            await self._release(plan)
        except Exception:  # its claim then runs out as a crashed process's would
            log.exception("room opener failed to release the claim of live race %s", plan.race_id)

    async def _release(self, plan: OpenPlan) -> None:
        """Give a claim up before any RaceTime.gg request was made for it: the race is as before the claim (no
        attempt counted, `room_search_after` as it was, since this claim cannot have made a room), its seed kept."""
        async with self._transaction() as session:
            race = await lock_race(session, plan.race_id)
            if race is not None and race.open_claim_id == plan.claim_id:
                race.open_claim_id = None
                race.room_search_after = plan.earlier_search_after

    async def _open_for_cycle(
        self, plan: OpenPlan, listings: dict[str, tuple[datetime, CategoryData]], report: OpenerReport
    ) -> None:
        try:
            outcome = await self._open_claimed(plan, actor=OPENER, listings=listings)
        except ClaimRefused:
            report.skipped += 1
        except OpenFailure as failure:
            report.failed += 1
            log.warning("room for live race %s not opened: %s", plan.race_id, failure.message)
        except Exception:
            report.failed += 1
            log.exception("room opener failed on live race %s", plan.race_id)
        else:
            if outcome.adopted:
                report.adopted += 1
            else:
                report.opened += 1

    async def due_race_ids(self) -> list[int]:
        """The ids of the scheduled races whose room is due to open now, soonest first."""
        now = self.clock()
        scheduler = self.settings.scheduler
        horizon = now + timedelta(minutes=max(MAX_LEAD_MINUTES, scheduler.room_open_lead_minutes))
        query = (
            select(
                LiveRace.id,
                LiveRace.scheduled_at,
                # The race's own lead (from its template), else the tournament's.
                func.coalesce(LiveRace.room_open_lead_minutes, Tournament.room_open_lead_minutes),
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
                or_(LiveRace.room_search_after.is_(None), LiveRace.room_search_after <= now),
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
        self,
        race_id: int,
        *,
        actor: Actor,
        manual: bool = False,
        listings: dict[str, tuple[datetime, CategoryData]] | None = None,
    ) -> OpenOutcome:
        """Claim, open (or adopt) and record one race's room.

        Raises ClaimRefused when the race is not ours to open, OpenFailure when opening failed (already
        recorded on the race).
        """
        plan = await self._claim(race_id, actor=actor, manual=manual)
        return await self._open_claimed(plan, actor=actor, listings=listings)

    async def _open_claimed(
        self, plan: OpenPlan, *, actor: Actor, listings: dict[str, tuple[datetime, CategoryData]] | None = None
    ) -> OpenOutcome:
        """Open (or adopt) and record the room of a claimed race (see `open`)."""
        race_id = plan.race_id
        racetime = self._client()
        listings = {} if listings is None else listings
        phase, searched, sent_before = "listing", False, 0
        strays: list[RoomRef] = []
        try:
            async with asyncio.timeout_at(plan.deadline):
                room = None
                if plan.reconcile:
                    assert plan.earlier_search_after is not None
                    _, listing = await self._listing(plan.category, listings, plan.earlier_search_after)
                    room, strays = pick_room(marked_rooms(listing).get(plan.marker, ()), plan.seed_url)
                    searched = True
                adopted = room is not None
                if room is None:
                    sent_before = racetime.stats["startrace"]  # counts the POSTs that went out
                    phase = "startrace"
                    room = await racetime.start_race(plan.category, plan.request)
        except Exception as exc:
            if not isinstance(exc, (RacetimeError, TimeoutError)):
                log.exception("unexpected error while opening the room of live race %s", race_id)
            elif isinstance(exc, TimeoutError):
                exc = RacetimeUnavailable(
                    f"no answer within {self.settings.open_claim_budget_seconds:g} s (the claim's time budget)"
                )
            # Only a refusal, or a failure before the POST went out (the token), proves no room was made: a
            # timeout or an odd answer to startrace may hide one.
            refused = isinstance(exc, (RacetimeValidationError, RacetimeNotFound, RacetimeAuthError))
            maybe_created = phase == "startrace" and not refused and racetime.stats["startrace"] != sent_before
            failure = await self._record_failure(
                plan, actor, exc, maybe_created=maybe_created, earlier_room_possible=plan.reconcile and not searched
            )
            await self._close_strays(plan, strays, actor)
            raise failure from exc
        refused = await self._record_opened(plan, room, actor=actor, adopted=adopted)
        await self._close_strays(plan, strays, actor)
        if refused is not None:
            raise refused
        return OpenOutcome(race_id, adopted, room)

    async def _listing(
        self, category: str, listings: dict[str, tuple[datetime, CategoryData]], not_before: datetime
    ) -> tuple[datetime, CategoryData]:
        """The category's listing and when it was asked for: once per cycle, unless the one read earlier in the
        cycle was asked for before `not_before` (it might not show a room the caller looks for)."""
        async with self._listing_locks.setdefault(category, asyncio.Lock()):  # concurrent openings ask once
            if category not in listings or listings[category][0] < not_before:
                asked = self.clock()
                listings[category] = (asked, await self._client().category_data(category, include_unlisted=True))
            return listings[category]

    async def _close_strays(self, plan: OpenPlan, strays: list[RoomRef], actor: Actor) -> None:
        if strays:
            await self.strays.close(plan.race_id, plan.guild_id, strays, why=WHY_SEED, actor=actor)

    async def _claim(self, race_id: int, *, actor: Actor, manual: bool) -> OpenPlan:
        """Claim one race (an opening a moderator asked for, a test): `_claim_locked` in a transaction of its own."""
        now, started = self.clock(), asyncio.get_running_loop().time()
        async with self._transaction() as session:
            race = await lock_race(session, race_id)
            claimed = await self._claim_locked(session, race_id, race, now, started, actor=actor, manual=manual)
            if isinstance(claimed, ClaimRefused):
                raise claimed  # nothing was written
        if isinstance(claimed, OpenFailure):  # raised after the commit, so the failure stays recorded
            raise claimed
        return claimed

    async def _claim_batch(self, race_ids: list[int], *, actor: Actor) -> list[tuple[int, Claimed]]:
        """Claim several due races in one transaction, in the order given (soonest first, so the soonest race
        still gets the pool's best seed): every race locked (`lock_races`) and checked exactly as `_claim` does
        one; a failure is recorded in the same transaction. One transaction instead of one a race, and the
        tournament, pool, guild settings and room profiles the races share are read once (the session's identity
        map). A race that another transaction holds on PostgreSQL, or that is gone, is refused for this cycle."""
        now, started = self.clock(), asyncio.get_running_loop().time()
        results: list[tuple[int, Claimed]] = []
        async with self._transaction() as session:
            # The races' tournaments, pools, seeds and guild settings come with the lock (one statement).
            races = await lock_races(session, race_ids, with_context=True)
            # How many races of each pool may need a seed chosen (`_choose_seed`).
            session.info[SEED_DEMAND] = Counter(race.pool_id for race in races.values() if race.seed_id is None)
            for race_id in race_ids:
                race = races.get(race_id)
                if race is None:
                    claimed: Claimed = ClaimRefused(None, f"live race {race_id} is gone or held by another writer")
                else:
                    bind_log_context(race_id=race_id, guild_id=race.guild_id)
                    claimed = await self._claim_locked(session, race_id, race, now, started, actor=actor, manual=False)
                results.append((race_id, claimed))
        return results

    async def _claim_locked(
        self,
        session: AsyncSession,
        race_id: int,
        race: LiveRace | None,
        now: datetime,
        started: float,
        *,
        actor: Actor,
        manual: bool,
    ) -> Claimed:
        """Claim a race the caller has locked: the plan, a ClaimRefused (nothing written), or an OpenFailure (the
        failure is written to the race; the caller commits it). `started`: the event loop's time when `now` was
        read; the claim's RaceTime.gg work ends by `started` + the claim budget, wherever it waited meanwhile."""
        scheduler = self.settings.scheduler
        if race is None:
            return ClaimRefused(None, f"live race {race_id} no longer exists")
        if race.status is not RaceStatus.SCHEDULED:
            return ClaimRefused(
                race.status, f"race {race.id} is {race.status.value}; only a scheduled race can be opened"
            )
        if self.claim_is_live(race, now):
            return ClaimRefused(race.status, f"the room of race {race.id} is being opened right now")
        if race.room_search_after is not None and race.room_search_after > now:
            return ClaimRefused(
                race.status,
                f"a room of race {race.id} may exist that RaceTime.gg does not list yet",
                search_after=race.room_search_after,
            )
        if not manual:
            if race.open_attempts >= scheduler.open_max_attempts or (
                race.next_open_attempt_at is not None and race.next_open_attempt_at > now
            ):
                return ClaimRefused(race.status, f"race {race.id} is not due for another attempt")
            if self.too_late(race.scheduled_at, now):
                failure = (
                    f"not opened automatically: the race was to start at "
                    f"{race.scheduled_at:%Y-%m-%d %H:%M} UTC, more than {scheduler.max_late_open_minutes} "
                    "minutes ago (scheduler.max_late_open_minutes); open it with /liverace-admin open if it should "
                    "still run, or reschedule or cancel it"
                )
                await self._fail(session, race, actor, failure, retryable=False, search_after=race.room_search_after)
                return OpenFailure(failure, retryable=False)
        earlier = race.room_search_after
        budget = self.settings.open_claim_budget_seconds
        race.open_claim_id = uuid.uuid4().hex
        race.open_claimed_at = now
        race.room_search_after = now + timedelta(seconds=budget) + self._listing_cache
        if manual:
            race.open_attempts = 0
            race.next_open_attempt_at = None
        # The reads below need none of the claim's changes, so they do not flush them: a race's claim is one UPDATE,
        # not two (the seeds chosen by the races claimed before in this transaction are named instead).
        with session.no_autoflush:
            tournament = await session.get(Tournament, race.tournament_id)
            pool = await session.get(Pool, race.pool_id)
            assert tournament is not None and pool is not None
            # Held for the transaction (a batch's lock read them already and holds them; a race locked alone did not),
            # so the next race of the batch finds them in the identity map instead of reading them again.
            hold(session, (tournament, pool))
            seed = await session.get(Seed, race.seed_id) if race.seed_id else None
            chosen: set[int] = session.info.setdefault(CHOSEN_SEEDS, set())
            no_seed = False
            category = room_category(tournament, self.settings)
            if self.racetime is None:
                failure = NO_CREDENTIALS
            elif not self.racetime.serves(category):
                failure = str(RacetimeNoCredentials(category, self.racetime.categories))
            elif seed is None:
                seed = await self._choose_seed(session, race, chosen)
                if seed is None:
                    no_seed = True
                    failure = (
                        f"pool {pool.name} has no seed left that no live race has used; "
                        "add a seed to the pool or pick one for this race"
                    )
                else:
                    # Kept from the first claim on, so a retry sends (and an adopted room shows) the same seed.
                    race.seed_id = seed.id
                    chosen.add(seed.id)
                    failure = None
            else:
                failure = None
            room = None
            if failure is None:
                guild = await guild_settings_once(session, race.guild_id)
                room = await resolve_for_race(session, race, tournament, guild)
        if failure is not None:
            await self._fail(session, race, actor, failure, retryable=False, search_after=earlier)
            return OpenFailure(failure, retryable=False, conflict=no_seed)
        assert seed is not None and room is not None
        if not self.settings.racetime.room_presence:
            # Only room presence shows a seed later, and scheduled starts need it too: without it, rooms open as
            # they did before.
            room.update(seed_reveal="at_open", start_mode="auto")
        return OpenPlan(
            race_id=race.id,
            guild_id=race.guild_id,
            claim_id=race.open_claim_id,
            category=category,
            marker=race.marker,
            seed_id=seed.id,
            pool_id=pool.id,
            seed_url=seed.url,
            request=build_request(race, tournament, pool, seed, room),
            seed_reveal=room["seed_reveal"],
            reconcile=earlier is not None,
            earlier_search_after=earlier,
            search_after=race.room_search_after,
            deadline=started + budget,
        )

    @staticmethod
    async def _choose_seed(session: AsyncSession, race: LiveRace, chosen: set[int]) -> Seed | None:
        """`choose_seed` for a race being claimed. In a batch (`_claim_batch` says how many of its races may
        need a seed of each pool) the first race of a pool reads the seeds of all of them in one query, and each
        takes the next in order: the seeds they would choose one at a time."""
        candidates: dict[int, deque[Seed]] = session.info.setdefault(SEED_CANDIDATES, {})
        if race.pool_id not in candidates:
            count = session.info.get(SEED_DEMAND, {}).get(race.pool_id, 1)
            candidates[race.pool_id] = deque(await choose_seeds(session, race, count, also_reserved=chosen))
        waiting = candidates[race.pool_id]
        if not waiting:  # the batch's candidates are used up: a race the demand did not count looks again
            return await choose_seed(session, race, also_reserved=chosen)
        return waiting.popleft()

    async def _record_opened(
        self, plan: OpenPlan, room: RoomRef, *, actor: Actor, adopted: bool
    ) -> ClaimRefused | None:
        """Record the room for the race; when the race is no longer as it was claimed, say why not.

        Openings that finish while another is being recorded wait for it and are then recorded together, in one
        transaction (`_record_batch`): batches form only when recording is the queue, as with hundreds of rooms
        due at once on SQLite. Each race is still locked and checked on its own."""
        waiter: asyncio.Future[Recorded] = asyncio.get_running_loop().create_future()
        self._to_record.append((plan, room, actor, adopted, waiter))
        async with self._recording:
            if not waiter.done():
                batch, self._to_record = self._to_record, []
                try:
                    results = await self._record_batch([(p, r, a, d) for p, r, a, d, _ in batch])
                except BaseException as exc:
                    for *_, other in batch:  # the others fail as this one does; their races keep the claim
                        if other is not waiter and not other.done():
                            other.set_exception(RuntimeError(f"recording the room failed: {exc!r}"))
                    raise
                for (*_, other), result in zip(batch, results, strict=True):
                    if not other.done():
                        other.set_result(result)
        refused, why, settles = await waiter
        if why is not None:
            await self.strays.close(plan.race_id, plan.guild_id, [room], why=why, actor=actor, settles=settles)
        return refused

    async def _record_batch(self, entries: list[tuple[OpenPlan, RoomRef, Actor, bool]]) -> list[Recorded]:
        """`_record_locked` for each opening, in one transaction. The races are locked in id order and waited for
        (no SKIP LOCKED: a moderator's transaction on a race finishes first, and the record sees its result)."""
        now = self.clock()
        async with self._transaction() as session:
            # With their tournaments, pools, seeds and guild settings, which the outbox writer then finds in the
            # session instead of reading them again (`session_cache`).
            races = await lock_races(
                session, [plan.race_id for plan, *_ in entries], skip_locked=False, with_context=True
            )
            results = []
            opened: list[tuple[LiveRaceRoomOpened, Actor, dict[str, Any]]] = []
            for plan, room, actor, adopted in entries:
                race = races.get(plan.race_id)
                bind_log_context(race_id=plan.race_id, guild_id=plan.guild_id)
                results.append(
                    await self._record_locked(
                        session, race, plan, room, actor=actor, adopted=adopted, now=now, opened=opened
                    )
                )
            # The batch's audit entries, seeds and notifications set-wise: the same rows as one race at a time, in
            # fewer statements.
            by_actor: dict[tuple[int, Actor], list[tuple[int | None, dict[str, Any]]]] = defaultdict(list)
            for event, actor, details in opened:
                by_actor[(event.guild_id, actor)].append((event.live_race_id, details))
            for (guild_id, actor), audited in by_actor.items():
                await audit.record_many(
                    session,
                    guild_id=guild_id,
                    actor=actor,
                    action="live_race.open",
                    target_type="live_race",
                    entries=audited,
                )
            await mark_seeds_published(session, {races[event.live_race_id].seed_id for event, *_ in opened})
            await self.events.publish_many(session, [event for event, *_ in opened])
        return results

    async def _record_locked(
        self,
        session: AsyncSession,
        race: LiveRace | None,
        plan: OpenPlan,
        room: RoomRef,
        *,
        actor: Actor,
        adopted: bool,
        now: datetime,
        opened: list[tuple[LiveRaceRoomOpened, Actor, dict[str, Any]]],
    ) -> Recorded:
        """Under the race's lock: record the room if the race is still as claimed (scheduled, ours, on the planned
        seed and pool): its LiveRaceRoomOpened, actor and audit details are added to `opened`, for the caller to write
        the audit entry, mark the seed published and queue the notifications (`_record_batch`, for the whole batch
        at once). Otherwise the ClaimRefused to raise, and why the room is
        to be cancelled (None: kept for another claim to adopt) with the `settles` for `StrayRooms.close`."""
        ours = race is not None and race.open_claim_id == plan.claim_id
        if (
            race is not None
            and race.status is RaceStatus.SCHEDULED
            and ours
            and race.seed_id == plan.seed_id
            and race.pool_id == plan.pool_id
        ):
            race.status = RaceStatus.ROOM_OPEN
            race.racetime_category = room.category
            race.racetime_slug = room.slug
            race.racetime_url = room.url
            race.racetime_status = "invitational" if plan.request.settings.invitational else "open"
            race.room_opened_at = now
            race.seed_reveal = plan.seed_reveal
            race.open_claim_id = None
            race.next_open_attempt_at = None
            race.room_search_after = None
            race.last_error = None
            event = LiveRaceRoomOpened(
                guild_id=race.guild_id, tournament_id=race.tournament_id, live_race_id=race.id, occurred_at=now
            )
            details = {
                "racetime_category": room.category,
                "racetime_slug": room.slug,
                "adopted": adopted,
                "seed_id": race.seed_id,
            }
            opened.append((event, actor, details))
            return None, None, None
        # The race changed while its room was being created: that room is not (or not yet) the race's.
        refused = ClaimRefused(
            None if race is None else race.status, f"live race {plan.race_id} changed while its room was opened"
        )
        why: str | None = None
        if race is None:
            why = WHY_DELETED
        elif race.racetime_slug == room.slug:
            log.info("live race %s: room %s was adopted by another claim", plan.race_id, room.name)
        elif race.status is RaceStatus.CANCELLED:
            why = WHY_CANCELLED
        elif race.status is not RaceStatus.SCHEDULED:
            why = WHY_DUPLICATE
        elif (race.seed_id, race.pool_id) != (plan.seed_id, plan.pool_id):
            why = WHY_SEED
            if ours:
                race.open_claim_id = None  # released: the next claim opens a room with the new seed
        else:
            # Another process took the claim over (ours outlived its lease): its reconcile adopts this room.
            log.warning("live race %s: room %s opened after the claim was taken over", plan.race_id, room.name)
            later = now + self._listing_cache
            race.room_search_after = max(race.room_search_after or later, later)
        # Only this claim's room can be behind the room_search_after it set (an earlier one was searched for),
        # unless another claim took the race over.
        settles = plan.search_after if why in (WHY_CANCELLED, WHY_DELETED) or (why == WHY_SEED and ours) else None
        return refused, why, settles

    async def _record_failure(
        self, plan: OpenPlan, actor: Actor, exc: Exception, *, maybe_created: bool, earlier_room_possible: bool
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
        now = self.clock()
        if maybe_created:
            # Counted from the end of this attempt: the listing shows a room made up to now once its cache expired.
            search_after: datetime | None = now + self._listing_cache
        else:
            search_after = plan.earlier_search_after if earlier_room_possible else None
        async with self._transaction() as session:
            race = await lock_race(session, plan.race_id)
            if race is not None and race.open_claim_id == plan.claim_id:
                await self._fail(session, race, actor, message, retryable=retryable, search_after=search_after)
        return OpenFailure(message, retryable=retryable, validation=isinstance(exc, RacetimeValidationError))

    async def _fail(
        self,
        session: AsyncSession,
        race: LiveRace,
        actor: Actor,
        message: str,
        *,
        retryable: bool,
        search_after: datetime | None,
    ) -> None:
        """Release the claim and schedule the next attempt, or give up and tell the moderators (once)."""
        now = self.clock()
        scheduler = self.settings.scheduler
        attempts = race.open_attempts + 1 if retryable else max(race.open_attempts + 1, scheduler.open_max_attempts)
        next_attempt = now + timedelta(seconds=scheduler.open_backoff_base_seconds * 2 ** (attempts - 1))
        if search_after is not None:
            next_attempt = max(next_attempt, search_after)
        gave_up = attempts >= scheduler.open_max_attempts
        race.open_claim_id = None
        race.open_attempts = attempts
        race.last_error = message[:2000]
        race.next_open_attempt_at = None if gave_up else next_attempt
        race.room_search_after = search_after
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
            # A failure that no retry can fix (too late, no seed, no credentials) is not "gave up after N attempts":
            # the alert says what happened instead of counting attempts that were never made.
            await self.events.publish(
                session,
                LiveRaceOpenFailed(
                    guild_id=race.guild_id,
                    tournament_id=race.tournament_id,
                    live_race_id=race.id,
                    occurred_at=now,
                    error=message,
                    attempts=attempts,
                    summary=None if retryable else f"The bot did not open the RaceTime.gg room: {message}.",
                    headline=None if retryable else "Race room was not opened",
                    action=None,
                ),
            )

    # ---- cancelled races -------------------------------------------------------------------------------
    async def sweep(self, listings: dict[str, tuple[datetime, CategoryData]] | None = None) -> int:
        """Cancel the rooms cancelled races may have left open on RaceTime.gg; returns how many races were
        settled (nothing left to look for)."""
        if self.racetime is None:
            return 0
        listings = {} if listings is None else listings
        now = self.clock()
        query = (
            select(
                LiveRace.id,
                LiveRace.guild_id,
                LiveRace.marker,
                LiveRace.racetime_category,
                LiveRace.room_search_after,
                Tournament,
            )
            .join(Tournament, Tournament.id == LiveRace.tournament_id)
            .where(LiveRace.status == RaceStatus.CANCELLED, LiveRace.room_search_after <= now)
            .order_by(LiveRace.id)
        )
        async with self.db.read() as session:
            rows = (await session.execute(query)).all()
        settled = 0
        for race_id, guild_id, marker, category, search_after, tournament in rows:
            try:
                category = category or room_category(tournament, self.settings)
                settled += await self.close_rooms_of_cancelled(
                    race_id, guild_id, marker, category, search_after, listings
                )
            except RacetimeError as exc:
                log.warning("looking for rooms of cancelled live race %s failed: %s", race_id, exc)
        return settled

    async def close_rooms_of_cancelled(
        self,
        race_id: int,
        guild_id: int,
        marker: str,
        category: str,
        search_after: datetime,
        listings: dict[str, tuple[datetime, CategoryData]] | None = None,
        *,
        actor: Actor = OPENER,
    ) -> bool:
        """Cancel every open room with the race's marker; True when nothing is left to look for (the listing,
        asked for after `search_after`, showed every room the race may have)."""
        asked, listing = await self._listing(category, {} if listings is None else listings, search_after)
        rooms = [room_ref(summary) for summary in marked_rooms(listing).get(marker, ())]
        return await self.strays.close(race_id, guild_id, rooms, why=WHY_SWEEP, actor=actor, settles=asked)
