"""Live races: scheduling and their state machine (what adapters render: live_race_views.py).

`scheduled` → `room_open` → `in_progress` → `finished`, and `cancelled` from any state before `finished`.
Nothing goes backwards. Each public mutating method is one transaction that writes an audit entry and publishes
its domain event through the event bus (whose subscribers write the notification outbox in that transaction).
The room opener and the poller (jobs) live in `room_opener.py` and `race_poller.py`; `race_recording.py` turns
what a room shows into runs.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable, Collection, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import case, exists, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.actors import Actor
from bot.clock import SYSTEM_CLOCK
from bot.errors import Conflict, InvalidTransition, NotFound, UpstreamUnavailable, ValidationFailed
from bot.events import EventBus, LiveRaceCancelled, LiveRaceRescheduled, LiveRaceScheduled
from bot.services import audit, scheduled_events
from bot.services.common import ROOM_OPEN_LEAD_MINUTES, Page, clean_name, clean_text, page_limit, require_aware
from bot.services.eligibility import EligibilityReport, race_eligibility
from bot.services.live_race_views import (
    ENTRANT_ORDER,
    LISTING,
    EntrantView,
    LiveRaceListing,
    LiveRaceView,
    NameRef,
    RaceResults,
    SeedRef,
    decode_race_cursor,
    encode_race_cursor,
    listing_query,
    live_races_table,
    view_query,
)
from bot.services.players import check_discord_id, roster_entry_of, roster_name
from bot.services.race_locks import lock_race
from bot.services.race_poller import RacePoller
from bot.services.race_recording import DONE_STATUSES, RoomApplier
from bot.services.room_opener import (
    NO_CREDENTIALS,
    ClaimRefused,
    OpenFailure,
    RoomOpener,
    room_category,
    room_not_cancelled,
    room_open_lead,
)
from bot.services.room_profiles import profile_or_404, validate_room_settings
from bot.services.tournaments import pool_or_404, tournament_or_404
from bot.settings import Settings
from db.models import (
    GuildPlayer,
    LiveRace,
    LiveRaceEntrant,
    Notification,
    NotificationKind,
    NotificationStatus,
    Player,
    Pool,
    RaceInterest,
    RaceRsvp,
    RaceStatus,
    Run,
    Seed,
    Tournament,
)
from db.session import Database
from racetime.errors import RacetimeConflict, RacetimeError
from racetime.models import Race
from racetime.results import entrant_results

if TYPE_CHECKING:
    from racetime.clients import RacetimeClients

log = logging.getLogger(__name__)

# Called with the new race inside its creating transaction (a series records its occurrence there).
RaceLink = Callable[[AsyncSession, LiveRace], Awaitable[None]]

# The cancelled notice's reason when a moderator deletes a race players were told about.
REMOVED_REASON = "Removed by the moderators"
# A race's own lead time, announcement channel and ping role (a template gives them); None inherits the tournament's.
RACE_DEFAULTS = ("room_open_lead_minutes", "announcement_channel_id", "announcement_role_id")
EDITABLE_FIELDS = (
    "title",
    "scheduled_at",
    "pool_id",
    "seed_id",
    "episode_id",
    "room_profile_id",
    "room",
    *RACE_DEFAULTS,
)
OPEN_ROOM_EDITABLE = ("title",)
MAX_TITLE = 200
MAX_REASON = 500
MAX_EPISODE_ID = 100
ACTIVE_STATUSES = (RaceStatus.SCHEDULED, RaceStatus.ROOM_OPEN, RaceStatus.IN_PROGRESS)
UPCOMING_STATUSES = (RaceStatus.SCHEDULED, RaceStatus.ROOM_OPEN)

_STATUS_WORDS = {
    RaceStatus.SCHEDULED: "scheduled",
    RaceStatus.ROOM_OPEN: "open (its room is open)",
    RaceStatus.IN_PROGRESS: "in progress",
    RaceStatus.FINISHED: "finished",
    RaceStatus.CANCELLED: "cancelled",
}


def check_race_defaults(values: dict[str, Any]) -> dict[str, Any]:
    """A race's (or template's) lead time in minutes, announcement channel and ping role: each a value or None."""
    clean: dict[str, Any] = {}
    for key, value in values.items():
        if key not in RACE_DEFAULTS:
            raise ValidationFailed(f"{key} is not a field", field=key)
        if value is None:
            clean[key] = None
        elif key == "room_open_lead_minutes":
            ROOM_OPEN_LEAD_MINUTES.check(value, key)
            clean[key] = value
        else:
            clean[key] = check_discord_id(value, key)
    return clean


def race_lead(race_lead_minutes: int | None, tournament_lead: int | None) -> int | None:
    """The lead that stands in for the tournament's in `room_open_lead`: the race's own, else the tournament's."""
    return race_lead_minutes if race_lead_minutes is not None else tournament_lead


def _refuse(race: LiveRace, allowed: str, action: str) -> InvalidTransition:
    return InvalidTransition(f"race {race.id} is {_STATUS_WORDS[race.status]}; only {allowed} races can be {action}")


def _statuses(values: Collection[RaceStatus | str] | None) -> list[RaceStatus] | None:
    if values is None:
        return None
    try:
        return [RaceStatus(value) for value in values]
    except ValueError:
        allowed = ", ".join(status.value for status in RaceStatus)
        raise ValidationFailed(f"status must be one of {allowed}", field="status") from None


class LiveRaceService:
    def __init__(
        self,
        db: Database,
        events: EventBus,
        settings: Settings,
        racetime: RacetimeClients | None,
        *,
        clock: Callable[[], datetime] = SYSTEM_CLOCK,
    ) -> None:
        self.db = db
        self.events = events
        self.settings = settings
        self.racetime = racetime
        self.opener = RoomOpener(db, events, settings, racetime, clock=self._now)
        self.poller = RacePoller(db, events, racetime, clock=self._now, strays=self.opener.strays)
        self.clock: Callable[[], datetime] = clock  # the application's; a test may replace it for races alone

    def _now(self) -> datetime:
        return self.clock()

    # ---- jobs ------------------------------------------------------------------------------------------
    async def run_room_opener(self) -> None:
        """One run of the room opener job (opens the rooms that are due)."""
        report = await self.opener.run_cycle()
        if report.due:
            log.info("room opener: %s", report)

    async def run_race_poller(self) -> None:
        """One run of the RaceTime.gg poller job (follows the rooms that are open)."""
        report = await self.poller.run_cycle()
        if report.errors:
            log.warning("race poller: %s", report)

    # ---- views -----------------------------------------------------------------------------------------
    def _opens_at(self, scheduled_at: datetime, tournament_lead: int | None, guild_lead: int | None) -> datetime:
        lead = room_open_lead(tournament_lead, guild_lead, self.settings.scheduler.room_open_lead_minutes)
        return scheduled_at - timedelta(minutes=lead)

    def _view(self, row: Any) -> LiveRaceView:
        race, tournament, pool, seed, guild_lead = row
        lead = race_lead(race.room_open_lead_minutes, tournament.room_open_lead_minutes)
        opens_at = self._opens_at(race.scheduled_at, lead, guild_lead)
        return LiveRaceView(race, tournament, pool, seed, opens_at)

    def _listings(self, rows: Sequence[Any]) -> list[LiveRaceListing]:
        """The listings of list rows. A page makes 50 with four tuples each: they are made with `tuple.__new__`, the C
        constructor a named tuple's `__new__` wraps in Python, and each distinct lead's timedelta once."""
        default = self.settings.scheduler.room_open_lead_minutes
        leads: dict[tuple[int | None, int | None], timedelta] = {}
        new = tuple.__new__
        listings = []
        for row in rows:
            key = (row.tournament_lead, row.guild_lead)
            lead = leads.get(key)
            if lead is None:
                lead = leads[key] = timedelta(minutes=room_open_lead(*key, default))
            seed = None if row.seed_id is None else new(SeedRef, (row.seed_id, row.seed_url))
            tournament = new(NameRef, (row.tournament_id, row.tournament_name))
            pool = new(NameRef, (row.pool_id, row.pool_name))
            listings.append(new(LiveRaceListing, (row, tournament, pool, seed, row.scheduled_at - lead)))
        return listings

    async def _load_view(
        self, session: AsyncSession, guild_id: int, race_id: int, tournament_id: int | None = None
    ) -> LiveRaceView:
        if isinstance(race_id, bool) or not isinstance(race_id, int):
            raise NotFound(f"live race {race_id} not found", field="race_id")
        row = (
            await session.execute(
                view_query()
                .where(LiveRace.id == race_id, LiveRace.guild_id == guild_id)
                .execution_options(populate_existing=True)
            )
        ).first()
        if row is None or (tournament_id is not None and row[0].tournament_id != tournament_id):
            raise NotFound(f"live race {race_id} not found", field="race_id")
        return self._view(row)

    async def _locked_view(
        self, session: AsyncSession, guild_id: int, race_id: int, tournament_id: int | None = None
    ) -> LiveRaceView:
        """The race locked for this write transaction (race_locks.lock_race), with what adapters render."""
        if not isinstance(race_id, bool) and isinstance(race_id, int):
            await lock_race(session, race_id, guild_id=guild_id)
        return await self._load_view(session, guild_id, race_id, tournament_id)

    async def get(self, guild_id: int, race_id: int, *, tournament_id: int | None = None) -> LiveRaceView:
        """The guild's live race (in `tournament_id` when given); NotFound otherwise."""
        async with self.db.read() as session:
            return await self._load_view(session, guild_id, race_id, tournament_id)

    async def list(
        self,
        guild_id: int,
        *,
        tournament_id: int | None = None,
        statuses: Collection[RaceStatus] | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[LiveRaceListing]:
        """Newest scheduled first."""
        return await self._page(guild_id, tournament_id, _statuses(statuses), limit, cursor, newest_first=True)

    async def upcoming(
        self, guild_id: int, *, tournament_id: int | None = None, limit: int | None = None, cursor: str | None = None
    ) -> Page[LiveRaceListing]:
        """Scheduled and open races, soonest first."""
        return await self._page(guild_id, tournament_id, list(UPCOMING_STATUSES), limit, cursor, newest_first=False)

    async def _page(
        self,
        guild_id: int,
        tournament_id: int | None,
        statuses: list[RaceStatus] | None,
        limit: int | None,
        cursor: str | None,
        *,
        newest_first: bool,
    ) -> Page[LiveRaceListing]:
        limit = page_limit(limit)
        after = decode_race_cursor(cursor)
        query = listing_query(
            newest_first=newest_first,
            tournament=tournament_id is not None,
            statuses=statuses is not None,
            after=after is not None,
        )
        params: dict[str, Any] = {"guild_id": guild_id, "limit": limit + 1}
        if tournament_id is not None:
            params["tournament_id"] = tournament_id
        if statuses is not None:
            params["statuses"] = list(statuses)
        if after is not None:
            params["after_at"], params["after_id"] = after
        rows = await self.db.rows(query, params)
        if not rows and tournament_id is not None:
            # Only an empty page needs the check: a race of this guild's tournament proves the tournament.
            async with self.db.read() as session:
                await tournament_or_404(session, guild_id, tournament_id)
        views = self._listings(rows)
        if len(views) > limit:
            views = views[:limit]
            last = views[-1].race
            return Page(views, encode_race_cursor(last.scheduled_at, last.id))
        return Page(views, None)

    async def search(
        self, guild_id: int, text: str, *, limit: int = 25, statuses: Collection[RaceStatus] | None = None
    ) -> list[LiveRaceListing]:
        """Autocomplete: a race id, or a piece of the title, among `statuses` (all by default); unfinished races
        first, soonest first, then the others, newest first."""
        text = (text or "").strip()[:100]
        limit = max(1, min(limit, 100))
        race = live_races_table.c
        query = LISTING.where(race.guild_id == guild_id)
        if statuses is not None:
            query = query.where(race.status.in_(_statuses(statuses) or []))
        if text:
            matches = race.title.ilike(f"%{text}%")
            if text.isdigit():
                matches = or_(matches, race.id == int(text))
            query = query.where(matches)
        unfinished = race.status.in_(ACTIVE_STATUSES)
        query = query.order_by(
            unfinished.desc(), case((unfinished, race.scheduled_at)).asc(), race.scheduled_at.desc(), race.id.desc()
        )
        async with self.db.read() as session:
            rows = (await session.execute(query.limit(limit))).all()
        return self._listings(rows)

    async def eligibility(self, guild_id: int, race_id: int, *, tournament_id: int | None = None) -> EligibilityReport:
        """Who may enter the guild's live race, and why the others may not."""
        async with self.db.read() as session:
            view = await self._load_view(session, guild_id, race_id, tournament_id)
            return await race_eligibility(session, view.race, view.tournament, view.pool)

    async def results(self, guild_id: int, race_id: int, *, tournament_id: int | None = None) -> RaceResults:
        """The recorded results of the guild's live race, entrant by entrant."""
        async with self.db.read() as session:
            view = await self._load_view(session, guild_id, race_id, tournament_id)
            rows = (
                await session.execute(
                    select(LiveRaceEntrant, Player, roster_name(), Run)
                    .outerjoin(Player, Player.id == LiveRaceEntrant.player_id)
                    .outerjoin(GuildPlayer, roster_entry_of(guild_id, LiveRaceEntrant.player_id))
                    .outerjoin(Run, Run.id == LiveRaceEntrant.run_id)
                    .where(LiveRaceEntrant.live_race_id == view.race.id)
                )
            ).all()
        entrants = [
            EntrantView(
                racetime_id=entrant.racetime_id,
                racetime_name=entrant.racetime_name,
                player_id=entrant.player_id,
                discord_user_id=player.discord_user_id if player else None,
                display_name=name,
                counted=entrant.counted,
                reason=entrant.reason,
                status=entrant.status,
                place=entrant.place,
                elapsed_us=entrant.elapsed_us,
                finished_at=entrant.finished_at,
                run_id=entrant.run_id,
                score=run.score if run else None,
            )
            for entrant, player, name, run in rows
        ]
        entrants.sort(
            key=lambda e: (
                e.place is None,
                e.place or 0,
                ENTRANT_ORDER.get(e.status, 9),
                not e.counted,
                e.racetime_name.lower(),
            )
        )
        return RaceResults(view, entrants)

    # ---- create / edit / delete ------------------------------------------------------------------------
    async def create(
        self,
        guild_id: int,
        tournament_id: int,
        actor: Actor,
        *,
        pool_id: int,
        scheduled_at: datetime,
        title: str | None = None,
        seed_id: int | None = None,
        episode_id: str | None = None,
        room_profile_id: int | None = None,
        room: dict | None = None,
        link: RaceLink | None = None,
        **race_defaults: int | None,
    ) -> LiveRaceView:
        """Schedule a race. `link` (series occurrences) runs in the same transaction once the race has its id.
        `race_defaults`: its own lead time, announcement channel and ping role (`RACE_DEFAULTS`; a template's)."""
        fields = self.check_fields(
            scheduled_at=scheduled_at,
            title=title,
            seed_id=seed_id,
            episode_id=episode_id,
            room_profile_id=room_profile_id,
            room=room,
        )
        fields.update(check_race_defaults(race_defaults))
        async with self.db.transaction() as session:
            tournament = await self.schedulable_tournament(session, guild_id, tournament_id)
            pool = await pool_or_404(session, guild_id, tournament_id, pool_id)
            race = await self.create_in(session, actor, tournament, pool, fields, link=link)
            return await self._load_view(session, guild_id, race.id)

    def check_fields(
        self,
        *,
        scheduled_at: Any,
        title: str | None = None,
        seed_id: int | None = None,
        episode_id: Any = None,
        room_profile_id: int | None = None,
        room: dict | None = None,
    ) -> dict[str, Any]:
        """A new race's own fields, checked without the database (raises ValidationFailed naming the field)."""
        return {
            "scheduled_at": self._check_start(scheduled_at),
            "title": title,
            "seed_id": seed_id,
            "episode_id": self._clean_episode(episode_id),
            "room_profile_id": room_profile_id,
            "room_settings": validate_room_settings(room, field_prefix="room."),
        }

    @staticmethod
    async def schedulable_tournament(session: AsyncSession, guild_id: int, tournament_id: int) -> Tournament:
        """The guild's tournament, when races may be scheduled in it (active); NotFound or Conflict otherwise."""
        tournament = await tournament_or_404(session, guild_id, tournament_id)
        if not tournament.active:
            raise Conflict(
                f"tournament {tournament.name!r} is not active; activate it before scheduling races",
                field="tournament_id",
            )
        return tournament

    async def create_in(
        self,
        session: AsyncSession,
        actor: Actor,
        tournament: Tournament,
        pool: Pool,
        fields: dict[str, Any],
        *,
        link: RaceLink | None = None,
        checked: bool = False,
    ) -> LiveRace:
        """Insert one race (fields from `check_fields`) in the caller's transaction: audit entry and event included.

        `checked`: the caller already checked the seed, the room profile and the episode id (a batch does, set-wise).
        """
        guild_id = tournament.guild_id
        seed_id, room_profile_id, episode_id = (
            fields["seed_id"],
            fields["room_profile_id"],
            fields["episode_id"],
        )
        if not checked:
            if seed_id is not None:
                await self._check_seed(session, pool, seed_id)
            if room_profile_id is not None:
                await profile_or_404(session, guild_id, room_profile_id)
            await self._check_episode(session, guild_id, episode_id)
        race = LiveRace(
            guild_id=guild_id,
            tournament_id=tournament.id,
            pool_id=pool.id,
            seed_id=seed_id,
            title=self._title(fields["title"], tournament, pool),
            episode_id=episode_id,
            scheduled_at=fields["scheduled_at"],
            room_profile_id=room_profile_id,
            room_settings=fields["room_settings"],
            status=RaceStatus.SCHEDULED,
            marker=secrets.token_hex(8),
            created_by=actor.label,
            **{key: fields.get(key) for key in RACE_DEFAULTS},
        )
        session.add(race)
        await session.flush()
        if link is not None:
            await link(session, race)
        await audit.record(
            session,
            guild_id=guild_id,
            actor=actor,
            action="live_race.create",
            target_type="live_race",
            target_id=race.id,
            details={
                "tournament_id": tournament.id,
                "pool_id": pool.id,
                "seed_id": seed_id,
                "title": race.title,
                "scheduled_at": race.scheduled_at,
                "episode_id": episode_id,
                "room_profile_id": room_profile_id,
                "room": race.room_settings,
                **{key: fields[key] for key in RACE_DEFAULTS if fields.get(key) is not None},
            },
        )
        await self.events.publish(
            session,
            LiveRaceScheduled(
                guild_id=guild_id, tournament_id=tournament.id, live_race_id=race.id, occurred_at=self._now()
            ),
        )
        return race

    async def create_many_in(
        self, session: AsyncSession, actor: Actor, tournament: Tournament, items: list[tuple[Pool, dict[str, Any]]]
    ) -> list[int]:
        """Insert many races (fields from `check_fields`, already checked set-wise by the caller) in the caller's
        transaction, set-wise: one INSERT of the races, one of their audit entries, and their `LiveRaceScheduled`
        events published together (the outbox queues them in a fixed number of queries per pool). The same rows,
        audit entries and events as `create_in` once per race; returns the ids in the order given."""
        if not items:
            return []
        guild_id = tournament.guild_id
        rows = [
            {
                "guild_id": guild_id,
                "tournament_id": tournament.id,
                "pool_id": pool.id,
                "seed_id": fields["seed_id"],
                "title": self._title(fields["title"], tournament, pool),
                "episode_id": fields["episode_id"],
                "scheduled_at": fields["scheduled_at"],
                "room_profile_id": fields["room_profile_id"],
                "room_settings": fields["room_settings"],
                "status": RaceStatus.SCHEDULED,
                "marker": secrets.token_hex(8),
                "created_by": actor.label,
                **{key: fields.get(key) for key in RACE_DEFAULTS},
            }
            for pool, fields in items
        ]
        made = (
            await session.execute(
                insert(live_races_table).returning(
                    live_races_table.c.id, live_races_table.c.marker, sort_by_parameter_order=True
                ),
                rows,
            )
        ).all()
        ids_by_marker = {marker: race_id for race_id, marker in made}
        ids = [ids_by_marker[row["marker"]] for row in rows]
        await audit.record_many(
            session,
            guild_id=guild_id,
            actor=actor,
            action="live_race.create",
            target_type="live_race",
            entries=[
                (
                    race_id,
                    {
                        "tournament_id": tournament.id,
                        "pool_id": row["pool_id"],
                        "seed_id": row["seed_id"],
                        "title": row["title"],
                        "scheduled_at": row["scheduled_at"],
                        "episode_id": row["episode_id"],
                        "room_profile_id": row["room_profile_id"],
                        "room": row["room_settings"],
                    },
                )
                for race_id, row in zip(ids, rows, strict=True)
            ],
        )
        occurred = self._now()
        await self.events.publish_many(
            session,
            [
                LiveRaceScheduled(
                    guild_id=guild_id, tournament_id=tournament.id, live_race_id=race_id, occurred_at=occurred
                )
                for race_id in ids
            ],
        )
        return ids

    async def edit(
        self, guild_id: int, race_id: int, actor: Actor, *, tournament_id: int | None = None, **changes: Any
    ) -> LiveRaceView:
        """Change a scheduled race (every field) or an open one (the title only).

        A field given as None goes back to its default (title), to automatic choice (seed_id), or to
        inheriting (room_profile_id, room). Editing a race the opener gave up on lets it try again.
        """
        unknown = set(changes) - set(EDITABLE_FIELDS)
        if unknown:
            key = sorted(unknown)[0]
            raise ValidationFailed(f"{key} cannot be changed; editable fields: {', '.join(EDITABLE_FIELDS)}", field=key)
        if not changes:
            raise ValidationFailed("nothing to change", field="changes")
        if "scheduled_at" in changes:
            changes["scheduled_at"] = self._check_start(changes["scheduled_at"])
        if "room" in changes:
            changes["room"] = validate_room_settings(changes["room"], field_prefix="room.")
        if "episode_id" in changes:
            changes["episode_id"] = self._clean_episode(changes["episode_id"])
        changes.update(check_race_defaults({key: changes[key] for key in RACE_DEFAULTS if key in changes}))
        async with self.db.transaction() as session:
            view = await self._locked_view(session, guild_id, race_id, tournament_id)
            race, tournament = view.race, view.tournament
            other = ", ".join(sorted(set(changes) - set(OPEN_ROOM_EDITABLE)))
            if race.status is RaceStatus.ROOM_OPEN:
                if other:
                    raise InvalidTransition(
                        f"race {race.id}'s room is already open; only the title can change (not {other})"
                    )
            elif race.status is not RaceStatus.SCHEDULED:
                raise _refuse(race, "scheduled or open", "edited")
            elif self.opener.claim_is_live(race, self._now()) and other:
                # The opener (or one that crashed mid-way) is creating the room with the race as it was claimed.
                raise Conflict(
                    f"the room of race {race.id} is being opened right now; only the title can change until it is "
                    f"open (not {other})"
                )
            before = {key: getattr(race, "room_settings" if key == "room" else key) for key in changes}
            pool = view.pool
            if "pool_id" in changes:
                pool = await pool_or_404(session, guild_id, tournament.id, changes["pool_id"])
                race.pool_id = pool.id
                if "seed_id" not in changes and race.seed_id is not None:
                    seed = await session.get(Seed, race.seed_id)
                    if seed is None or seed.pool_id != pool.id:
                        race.seed_id = None  # the old seed belongs to the old pool
            if "seed_id" in changes:
                if changes["seed_id"] is not None:
                    await self._check_seed(session, pool, changes["seed_id"])
                race.seed_id = changes["seed_id"]
            if "title" in changes:
                race.title = self._title(changes["title"], tournament, pool)
            moved_from = None
            if "scheduled_at" in changes and changes["scheduled_at"] != race.scheduled_at:
                moved_from = race.scheduled_at
                race.scheduled_at = changes["scheduled_at"]
            if "episode_id" in changes and changes["episode_id"] != race.episode_id:
                await self._check_episode(session, guild_id, changes["episode_id"])
                race.episode_id = changes["episode_id"]
            if "room_profile_id" in changes:
                if changes["room_profile_id"] is not None:
                    await profile_or_404(session, guild_id, changes["room_profile_id"])
                race.room_profile_id = changes["room_profile_id"]
            if "room" in changes:
                race.room_settings = changes["room"]
            for key in RACE_DEFAULTS:
                if key in changes:
                    setattr(race, key, changes[key])
            if (
                race.status is RaceStatus.SCHEDULED
                and not self.opener.claim_is_live(race, self._now())
                and not self.opener.too_late(race.scheduled_at, self._now())
            ):
                # Rescheduling moves the room-open time (the opener reads the table); a failed open may retry.
                # (A race too late to open automatically stays given up: its moderators were told once.)
                race.open_attempts = 0
                race.next_open_attempt_at = None
                race.last_error = None
            await audit.record(
                session,
                guild_id=guild_id,
                actor=actor,
                action="live_race.edit",
                target_type="live_race",
                target_id=race.id,
                details={
                    "before": before,
                    "after": {k: getattr(race, "room_settings" if k == "room" else k) for k in changes},
                },
            )
            if moved_from is not None:  # the outbox decides whether players can see it and collapses moves
                await session.flush()
                await self.events.publish(
                    session,
                    LiveRaceRescheduled(
                        guild_id=guild_id,
                        tournament_id=tournament.id,
                        live_race_id=race.id,
                        occurred_at=self._now(),
                        previous_scheduled_at=moved_from,
                    ),
                )
            elif changes:  # no move, but the race's scheduled event shows its title and length too
                await session.flush()
                await scheduled_events.queue_sync_for_race(
                    session,
                    race,
                    step=f"edited:{int(self._now().timestamp() * 1_000_000)}",
                    length_minutes=self.settings.notifications.scheduled_event_length_minutes,
                    now=self._now(),
                )
            await session.flush()
            return await self._load_view(session, guild_id, race.id)

    async def delete(self, guild_id: int, race_id: int, actor: Actor, *, tournament_id: int | None = None) -> bool:
        """Delete a scheduled or cancelled race. Runs it recorded stay (they only lose the link to the race).
        Returns whether players who were told about it get the cancelled notice."""
        async with self.db.transaction() as session:
            race = (await self._locked_view(session, guild_id, race_id, tournament_id)).race
            if race.status not in (RaceStatus.SCHEDULED, RaceStatus.CANCELLED):
                raise _refuse(race, "scheduled or cancelled", "deleted")
            if self.opener.claim_is_live(race, self._now()):
                raise Conflict(f"the room of race {race.id} is being opened right now; try again in a minute")
            if race.room_search_after is not None:
                # Its marker is how the bot finds that room: deleting the race would leave the room open for good.
                if race.status is RaceStatus.SCHEDULED:
                    raise Conflict(
                        f"a RaceTime.gg room of race {race.id} may exist from an interrupted opening; cancel the race "
                        "first (the bot then cancels that room too), then delete it"
                    )
                raise Conflict(
                    f"the bot is still making sure no RaceTime.gg room of race {race.id} stays open; "
                    "try again in a few minutes"
                )
            told = race.status is RaceStatus.SCHEDULED and await self._players_were_told(session, race.id)
            if told:  # they were told it takes place: the cancelled notice, before the race is gone
                await self.events.publish(
                    session,
                    LiveRaceCancelled(
                        guild_id=guild_id,
                        tournament_id=race.tournament_id,
                        live_race_id=race.id,
                        occurred_at=self._now(),
                        reason=REMOVED_REASON,
                        previous_status=race.status.value,
                    ),
                )
            else:  # nobody was told, but its Discord Scheduled Event (if any) goes with it
                await scheduled_events.queue_removal(session, race, self._now())
            # Explicit, so SQLite without foreign key enforcement behaves like the ON DELETE SET NULL.
            await session.execute(update(Run).where(Run.live_race_id == race.id).values(live_race_id=None))
            await audit.record(
                session,
                guild_id=guild_id,
                actor=actor,
                action="live_race.delete",
                target_type="live_race",
                target_id=race.id,
                details={
                    "title": race.title,
                    "status": race.status.value,
                    "scheduled_at": race.scheduled_at,
                    "players_told": told,
                },
            )
            await session.delete(race)
            return told

    @staticmethod
    async def _players_were_told(session: AsyncSession, race_id: int) -> bool:
        """Whether players know of the race: a notice of it (a DM, a reminder or the announcement) went out, or may
        have (sent, being sent, or tried before), or a player RSVP'd it or pressed Interested on its Discord event.
        A notice still waiting expires with the race and needs no cancel; the Discord event alone tells nobody in
        particular (it is removed with the race)."""
        notice = select(Notification.id).where(
            Notification.live_race_id == race_id,
            # a typed notice, or a reminder (the one DM without a type: its offsets are the preference)
            or_(Notification.event_type.is_not(None), Notification.kind == NotificationKind.DM),
            or_(
                Notification.status == NotificationStatus.SENT,
                Notification.claimed_until.is_not(None),
                Notification.maybe_delivered,
                Notification.attempts > 0,
            ),
        )
        rsvp = select(RaceRsvp.id).where(RaceRsvp.live_race_id == race_id)
        interest = select(RaceInterest.id).where(
            RaceInterest.live_race_id == race_id, RaceInterest.interested.is_(True)
        )
        told = select(or_(exists(notice), exists(rsvp), exists(interest)))
        return bool(await session.scalar(told))

    # ---- transitions -----------------------------------------------------------------------------------
    async def open_now(
        self, guild_id: int, race_id: int, actor: Actor, *, tournament_id: int | None = None
    ) -> LiveRaceView:
        """Open the room now, whatever the lead time (or lateness), and reset a failed opener's attempts."""
        await self.get(guild_id, race_id, tournament_id=tournament_id)  # the race must be this guild's
        try:
            await self.opener.open(race_id, actor=actor, manual=True)
        except ClaimRefused as refused:
            if refused.status is None:
                raise NotFound(f"live race {race_id} not found", field="race_id") from None
            if refused.status is not RaceStatus.SCHEDULED:
                raise InvalidTransition(
                    f"race {race_id} is {_STATUS_WORDS[refused.status]}; only scheduled races can be opened"
                ) from None
            if refused.search_after is not None:
                raise Conflict(
                    f"RaceTime.gg may have created the room of race {race_id} at the last attempt (its answer was "
                    f"lost), and its race list shows it only from {refused.search_after:%H:%M:%S} UTC on; open it "
                    "then (the bot adopts that room instead of opening a second one)"
                ) from None
            raise Conflict(f"the room of race {race_id} is being opened right now; try again in a minute") from None
        except OpenFailure as failure:
            if failure.validation:
                raise ValidationFailed(failure.message, field="room") from None
            if failure.conflict:
                raise Conflict(failure.message) from None
            hint = " The bot will try again by itself." if failure.retryable else ""
            raise UpstreamUnavailable(failure.message + hint) from None
        return await self.get(guild_id, race_id)

    async def cancel(
        self, guild_id: int, race_id: int, actor: Actor, *, reason: str, tournament_id: int | None = None
    ) -> LiveRaceView:
        """Cancel a race before it finished; its room on RaceTime.gg is cancelled too.

        Decided under the race's lock. A scheduled race is cancelled at once: a room the opener is creating is
        cancelled by the opener when it finds the race cancelled, and one an interrupted opening may have left is
        found by its marker (now if RaceTime.gg's list can show it already, else by the opener's sweep). An open
        or running race's room is cancelled on RaceTime.gg first, outside any transaction, then the race under the
        lock again; a room that turns out to have finished there is recorded instead, and the answer is a Conflict
        naming its results.
        """
        reason = clean_text(reason, "reason", max_length=MAX_REASON)
        if not reason:
            raise ValidationFailed("a reason is required to cancel a race", field="reason")
        now = self._now()
        async with self.db.transaction() as session:
            view = await self._locked_view(session, guild_id, race_id, tournament_id)
            race = view.race
            if race.status not in ACTIVE_STATUSES:
                raise _refuse(race, "scheduled, open or in-progress", "cancelled")
            scheduled = race.status is RaceStatus.SCHEDULED
            if scheduled:
                await RoomApplier(session, self.events, actor, now).cancel(race, None, reason=reason)
            search_after = race.room_search_after
            category = race.racetime_category or room_category(view.tournament, self.settings)
            slug = race.racetime_slug
        if scheduled:  # no room of it is known; one an interrupted opening left is found by its marker
            if search_after is not None and search_after <= now and self.racetime is not None:
                try:
                    await self.opener.close_rooms_of_cancelled(
                        race.id, guild_id, race.marker, category, search_after, actor=actor
                    )
                except RacetimeError as exc:  # the opener's sweep tries again
                    log.warning("looking for a room of cancelled live race %s failed: %s", race.id, exc)
            return await self.get(guild_id, race.id)
        assert slug is not None
        room, cancelled, cancel_error = await self._cancel_room(race.id, category, slug)
        finished: str | None = None
        async with self.db.transaction() as session:
            view = await self._locked_view(session, guild_id, race.id)
            race = view.race
            applier = RoomApplier(session, self.events, actor, self._now())
            if room is not None and room.status == "finished":
                # Too late to cancel: the results are there, and they are kept.
                await applier.apply(race, view.tournament, view.pool, room)
                finishers = sum(1 for result in entrant_results(room) if result.status == "finished")
                finished = (
                    f"race {race.id} already finished on RaceTime.gg; its results ({finishers} finisher"
                    f"{'' if finishers == 1 else 's'}) were recorded instead of cancelling"
                )
                await audit.record(
                    session,
                    guild_id=guild_id,
                    actor=actor,
                    action="live_race.cancel_refused",
                    target_type="live_race",
                    target_id=race.id,
                    details={"reason": reason, "why": finished, "status": race.status.value},
                )
            elif race.status is RaceStatus.CANCELLED and cancelled:
                # The poller saw the room this cancel cancelled before we got here: the race is as asked. Its
                # players were told RaceTime.gg's reason already; the race keeps the moderator's.
                race.cancel_reason = reason
                await audit.record(
                    session,
                    guild_id=guild_id,
                    actor=actor,
                    action="live_race.cancel",
                    target_type="live_race",
                    target_id=race.id,
                    details={"reason": reason, "previous_status": "cancelled", "room_cancelled_first": True},
                )
            elif race.status not in ACTIVE_STATUSES:
                raise _refuse(race, "scheduled, open or in-progress", "cancelled")
            elif room is None and not cancelled and (race.status is RaceStatus.IN_PROGRESS or cancel_error is None):
                # Whether the room finished there (with results to keep) is unknown: cancelling could lose them.
                raise UpstreamUnavailable(
                    f"the RaceTime.gg room of race {race.id} could not be checked "
                    f"({cancel_error or 'it is over, but could not be read'}), so cancelling could lose its results; "
                    "try again once RaceTime.gg answers"
                )
            else:
                await applier.cancel(race, room, reason=reason)
                if cancel_error is not None:
                    race.last_error = room_not_cancelled(cancel_error)
                    race.room_search_after = self._now()  # the opener's sweep tries again
            await session.flush()
            answer = await self._load_view(session, guild_id, race.id)
        if finished is not None:
            raise Conflict(finished)
        return answer

    async def _cancel_room(self, race_id: int, category: str, slug: str) -> tuple[Race | None, bool, str | None]:
        """Cancel the room on RaceTime.gg, then read it back (for forfeits, or the results of a room that finished
        before the cancel). Returns the room (None when it could not be read), whether this cancel went through,
        and why it failed."""
        if self.racetime is None:
            return None, False, NO_CREDENTIALS
        cancelled, error = False, None
        try:
            await self.racetime.cancel_race(category, slug)
            cancelled = True
        except RacetimeConflict:
            pass  # over already (finished, or split into 1v1 races): the room read below tells which
        except RacetimeError as exc:
            log.warning("cancelling room %s/%s of live race %s failed: %s", category, slug, race_id, exc)
            error = str(exc)
        try:
            return await self.racetime.race_detail(category, slug), cancelled, error
        except RacetimeError as exc:
            log.warning("reading room %s/%s of live race %s failed: %s", category, slug, race_id, exc)
            return None, cancelled, error

    async def record(
        self, guild_id: int, race_id: int, actor: Actor, *, force: bool = False, tournament_id: int | None = None
    ) -> LiveRaceView:
        """Re-read the room and record what it shows.

        Without `force` the room must be over (finished or cancelled). With `force` a room still running is
        recorded as it stands (entrants not done forfeit), and a recorded race is reconciled with its room. The
        room is read outside any transaction; the race is locked and checked again before anything is written.
        """
        async with self.db.read() as session:
            race = (await self._load_view(session, guild_id, race_id, tournament_id)).race
        if race.status is RaceStatus.FINISHED and not force:
            raise InvalidTransition(
                f"race {race.id} is already recorded; record it with force to re-read the room and reconcile"
            )
        if race.status not in (RaceStatus.ROOM_OPEN, RaceStatus.IN_PROGRESS, RaceStatus.FINISHED):
            raise _refuse(race, "open, in-progress or finished", "recorded")
        if race.racetime_slug is None or race.racetime_category is None:
            raise InvalidTransition(f"race {race.id} has no RaceTime.gg room to record")
        if self.racetime is None:
            raise UpstreamUnavailable(NO_CREDENTIALS)
        try:
            room = await self.racetime.race_detail(race.racetime_category, race.racetime_slug)
        except RacetimeError as exc:
            raise UpstreamUnavailable(f"RaceTime.gg did not answer with the room: {exc}") from None
        if room.status not in DONE_STATUSES:
            if not force:
                raise InvalidTransition(
                    f"the RaceTime.gg room of race {race.id} is {room.status}; results are recorded once it is over "
                    "(or record with force to take the results as they stand)"
                )
            if room.status != "in_progress":
                raise InvalidTransition(f"the RaceTime.gg room of race {race.id} has not started yet")
        async with self.db.transaction() as session:
            view = await self._locked_view(session, guild_id, race.id)
            race = view.race
            if race.status not in (RaceStatus.ROOM_OPEN, RaceStatus.IN_PROGRESS, RaceStatus.FINISHED):
                raise _refuse(race, "open, in-progress or finished", "recorded")
            applier = RoomApplier(session, self.events, actor, self._now())
            changed = await applier.apply(race, view.tournament, view.pool, room, force=force)
            await audit.record(
                session,
                guild_id=guild_id,
                actor=actor,
                action="live_race.record",
                target_type="live_race",
                target_id=race.id,
                details={
                    "force": force,
                    "racetime_status": room.status,
                    "status": race.status.value,
                    "changed": changed,
                },
            )
            await session.flush()
            return await self._load_view(session, guild_id, race.id)

    # ---- checks ----------------------------------------------------------------------------------------
    def _check_start(self, scheduled_at: Any) -> datetime:
        if not isinstance(scheduled_at, datetime):
            raise ValidationFailed("scheduled_at must be a date and time", field="scheduled_at")
        scheduled_at = require_aware(scheduled_at, "scheduled_at")
        if scheduled_at <= self._now():
            raise ValidationFailed("scheduled_at must be in the future", field="scheduled_at")
        return scheduled_at

    @staticmethod
    def _title(title: str | None, tournament: Tournament, pool: Pool) -> str:
        if title is None or not title.strip():
            return f"{tournament.name} – {pool.name}"[:MAX_TITLE]
        return clean_name(title, "title", max_length=MAX_TITLE)

    @staticmethod
    def _clean_episode(episode_id: Any) -> str | None:
        if episode_id is None:
            return None
        if not isinstance(episode_id, str):
            raise ValidationFailed("episode_id must be text", field="episode_id")
        episode_id = episode_id.strip()
        if len(episode_id) > MAX_EPISODE_ID:
            raise ValidationFailed(f"episode_id must be at most {MAX_EPISODE_ID} characters", field="episode_id")
        return episode_id or None

    @staticmethod
    async def _check_episode(session: AsyncSession, guild_id: int, episode_id: str | None) -> None:
        # Unique per guild: another guild's episode ids are none of this guild's business, not even as a clash.
        if episode_id is None:
            return
        clash = await session.scalar(
            select(LiveRace.id).where(LiveRace.guild_id == guild_id, LiveRace.episode_id == episode_id)
        )
        if clash is not None:
            raise Conflict(f"episode_id {episode_id!r} is already used by live race {clash}", field="episode_id")

    @staticmethod
    async def _check_seed(session: AsyncSession, pool: Pool, seed_id: int) -> Seed:
        seed = await session.get(Seed, seed_id)
        if seed is None or seed.pool_id != pool.id:
            raise NotFound(f"seed {seed_id} not found in pool {pool.name}", field="seed_id")
        return seed
