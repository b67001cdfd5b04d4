"""Following open rooms on RaceTime.gg until their races finish or are cancelled.

Per cycle: one `/o/{category}/data` request per category that has tracked races (`room_open`, `in_progress`),
and a race detail request only for a race whose status moved to another phase (not started → running → over)
or that left the listing (finished and cancelled rooms leave it). Everything else is answered from the listing.
A category or race that fails is logged and skipped; the next cycle catches up, since all state is in the table.
Each room is applied under the race's lock (`race_locks.lock_race`), so a moderator acting on the race at the
same moment either comes first (and the poller sees their change) or after. The listing also shows rooms that
carry a tracked race's marker but are not its room (a `startrace` RaceTime.gg completed after the opener gave up
on it): those are cancelled on RaceTime.gg, logged and audited; the race keeps the room its players were sent.

Several processes: applying a room is idempotent under the race's lock, so two pollers never record anything twice;
to spare RaceTime.gg the second process's requests, each category is polled under a lease (`leases`, renewed by its
holder every cycle, let go when a poll fails, taken over by another process once it runs out).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select, update

from bot.actors import Actor
from bot.clock import SYSTEM_CLOCK
from bot.events import EventBus
from bot.services.race_locks import lock_race
from bot.services.race_recording import RoomApplier, room_phase
from bot.services.room_opener import WHY_DUPLICATE, StrayRooms, marked_rooms, room_ref
from db.models import LiveRace, Pool, RaceStatus, Tournament
from db.session import Database
from racetime.models import Race, RaceSummary

if TYPE_CHECKING:
    from bot.services.processes import Leases
    from racetime.clients import RacetimeClients

log = logging.getLogger(__name__)

POLLER = Actor.system("race poller")
TRACKED_STATUSES = (RaceStatus.ROOM_OPEN, RaceStatus.IN_PROGRESS)


@dataclass(frozen=True)
class TrackedRace:
    id: int
    guild_id: int
    marker: str
    category: str
    slug: str
    racetime_status: str | None


@dataclass
class PollReport:
    categories: int = 0
    tracked: int = 0
    listing_requests: int = 0
    detail_requests: int = 0
    applied: int = 0
    errors: int = 0
    strays: int = 0


async def apply_room(
    db: Database, events: EventBus, race_id: int, room: Race, *, actor: Actor, now: datetime, force: bool = False
) -> LiveRace | None:
    """Apply a room to its race in one transaction (row locked where the database can)."""
    async with db.transaction() as session:
        race = await lock_race(session, race_id)
        if race is None:
            return None
        tournament = await session.get(Tournament, race.tournament_id)
        pool = await session.get(Pool, race.pool_id)
        assert tournament is not None and pool is not None
        await RoomApplier(session, events, actor, now).apply(race, tournament, pool, room, force=force)
        return race


class RacePoller:
    def __init__(
        self,
        db: Database,
        events: EventBus,
        racetime: RacetimeClients | None,
        clock: Callable[[], datetime] = SYSTEM_CLOCK,
        strays: StrayRooms | None = None,
    ) -> None:
        self.db = db
        self.events = events
        self.racetime = racetime
        self.clock = clock
        self.strays = strays
        # Set by the application: one process polls a category at a time (None: always poll, as in tests).
        self.leases: Leases | None = None
        self.lease_seconds = 60.0

    async def run_cycle(self) -> PollReport:
        """Poll every tracked race once (one listing per category) and apply what changed."""
        report = PollReport()
        if self.racetime is None:
            return report
        by_category: dict[str, list[TrackedRace]] = defaultdict(list)
        for race in await self._tracked():
            by_category[race.category].append(race)
        report.categories = len(by_category)
        for category, races in by_category.items():
            lease = f"race_poller:{category}"
            if self.leases is not None and not await self.leases.take(lease, seconds=self.lease_seconds):
                continue  # another process polls this category now
            report.tracked += len(races)
            try:
                await self._poll_category(category, races, report)
            except Exception:
                report.errors += 1
                log.exception("polling RaceTime.gg category %s failed", category)
                if self.leases is not None:
                    await self.leases.release(lease)  # another process may get through where this one did not
        return report

    async def _tracked(self) -> list[TrackedRace]:
        columns = (LiveRace.guild_id, LiveRace.marker, LiveRace.racetime_category, LiveRace.racetime_slug)
        query = select(LiveRace.id, *columns, LiveRace.racetime_status).where(
            LiveRace.status.in_(TRACKED_STATUSES),
            LiveRace.racetime_slug.is_not(None),
            LiveRace.racetime_category.is_not(None),
        )
        async with self.db.read() as session:
            rows = (await session.execute(query.order_by(LiveRace.id))).all()
        return [TrackedRace(*row) for row in rows]

    async def _poll_category(self, category: str, races: list[TrackedRace], report: PollReport) -> None:
        assert self.racetime is not None
        listed: dict[str, str] = {}
        marked: dict[str, list[RaceSummary]] = {}
        if self.racetime.serves(category):
            # With this category's bot: its listing includes the unlisted rooms Startline opens.
            report.listing_requests += 1
            listing = await self.racetime.category_data(category, include_unlisted=True)
            listed = {summary.slug: summary.status for summary in listing.current_races}
            marked = marked_rooms(listing)
        else:
            # No bot for this category any more (its credentials were removed): rooms are public, follow each.
            log.warning("no RaceTime.gg bot for category %s; following its rooms one by one", category)
        quiet: dict[int, str] = {}
        for race in races:
            strays = [room_ref(summary) for summary in marked.get(race.marker, ()) if summary.slug != race.slug]
            if strays and self.strays is not None:
                report.strays += len(strays)
                try:
                    await self.strays.close(race.id, race.guild_id, strays, why=WHY_DUPLICATE, actor=POLLER)
                except Exception:
                    report.errors += 1
                    log.exception("cancelling stray rooms of live race %s failed", race.id)
            status = listed.get(race.slug)
            if status is not None and room_phase(status) == room_phase(race.racetime_status):
                if status != race.racetime_status:
                    quiet[race.id] = status  # e.g. open -> pending: nothing to record, just remember it
                continue
            try:
                report.detail_requests += 1
                room = await self.racetime.race_detail(category, race.slug)
                await apply_room(self.db, self.events, race.id, room, actor=POLLER, now=self.clock())
                report.applied += 1
            except Exception:
                report.errors += 1
                log.exception("following live race %s (room %s/%s) failed", race.id, category, race.slug)
        if quiet:
            async with self.db.transaction() as session:
                for race_id, status in quiet.items():
                    await session.execute(
                        update(LiveRace)
                        .where(LiveRace.id == race_id, LiveRace.status.in_(TRACKED_STATUSES))
                        .values(racetime_status=status)
                    )
