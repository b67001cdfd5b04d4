"""The outbox writer: turns a domain event into outbox rows inside the transaction that caused it.

Recipients are the audiences of the event's type (`EventSpec.audience` in `db.models`): eligible subscribers,
subscribed participants, the announcement channel, the moderator channel. Everything is set-wise: a fixed number
of queries per event whatever the number of players, and one bulk insert whose dedupe key makes queuing the
same event twice add nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, String, cast, literal, or_, select, true, union_all, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import SYSTEM_CLOCK
from bot.events import (
    LiveRaceCancelled,
    LiveRaceEvent,
    LiveRaceFinished,
    LiveRaceOpenFailed,
    LiveRaceRescheduled,
    LiveRaceRoomOpened,
    LiveRaceScheduled,
)
from bot.services import scheduled_events
from bot.services.common import conflict_ignoring_insert
from bot.services.eligibility import race_eligibility
from bot.services.players import roster_entry_of, roster_name
from bot.services.room_opener import room_open_lead
from bot.services.room_profiles import resolve_for_race
from bot.services.session_cache import UNKNOWN, known_guild_settings, loaded
from bot.settings import Settings
from db.models import (
    DM_AUDIENCES,
    AnnouncementPost,
    Audience,
    EventType,
    GuildPlayer,
    GuildSettings,
    LiveRace,
    Notification,
    NotificationKind,
    NotificationStatus,
    NotificationSubscription,
    Player,
    Pool,
    RaceInterest,
    RaceRsvp,
    Run,
    RunStatus,
    Seed,
    Tournament,
)

log = logging.getLogger(__name__)

PODIUM_SIZE = 3
# Player ids per INSERT … SELECT: far below SQLite's and asyncpg's 32,766 bound parameters.
IN_LIST_CHUNK = 5000
_notifications = Notification.__table__

PAYLOAD_VERSION = 1  # the version of the payload written here, which bot/notifications/render.py reads


def dm_dedupe_key_prefix(event_type: EventType, race_id: int) -> str:
    return f"dm:{event_type.code}:race:{race_id}:player:"


def dm_dedupe_key(event_type: EventType, race_id: int, player_id: int) -> str:
    return f"{dm_dedupe_key_prefix(event_type, race_id)}{player_id}"


def rescheduled_dm_key_prefix(race_id: int, group: int) -> str:
    """A rescheduled notice's DM key: one per race, group of moves and player (a race may move more than once)."""
    return f"dm:{EventType.LIVE_RACE_RESCHEDULED.code}:race:{race_id}:at:{group}:player:"


def edit_dedupe_key_prefix(race_id: int, channel_id: int) -> str:
    """An edit of a race's living announcement: `<prefix><event name>` (`:<occurrence>` for a reschedule)."""
    return f"edit:race:{race_id}:channel:{channel_id}:"


async def living_post_exists(session: AsyncSession, race_id: int, channel_id: int) -> bool:
    """Whether the race has a living announcement in the channel: posted (its message id is known), or queued as
    one and not sent yet, including one that expired or failed unsent (the next edit then posts it anew, or the
    room-open post becomes it). A post sent with no message id kept was made before living announcements existed:
    that race keeps one post per step."""
    posted = await session.scalar(
        select(AnnouncementPost.id).where(
            AnnouncementPost.live_race_id == race_id, AnnouncementPost.channel_id == channel_id
        )
    )
    if posted is not None:
        return True
    status = await session.scalar(
        select(Notification.status).where(
            Notification.dedupe_key == channel_dedupe_key(EventType.LIVE_RACE_SCHEDULED.value, race_id, channel_id)
        )
    )
    return status is not None and status is not NotificationStatus.SENT


def channel_dedupe_key(event: str, race_id: int, channel_id: int, *, occurrence: int | None = None) -> str:
    suffix = f":{occurrence}" if occurrence is not None else ""
    return f"channel:{event}:race:{race_id}:channel:{channel_id}{suffix}"


def reachable_in_guild(query: Select, guild_id: int, player_id: ColumnElement, *, on_roster: bool = True) -> Select:
    """`query` kept to the players a DM from the guild may reach: on its roster (`on_roster`; else also players who
    never were, who have no entry to say otherwise), not left, and not turned its DMs off ("No more DMs")."""
    join = query.join if on_roster else query.outerjoin
    return join(GuildPlayer, roster_entry_of(guild_id, player_id)).where(
        GuildPlayer.left_at.is_(None), GuildPlayer.dms_off_at.is_(None)
    )


async def subscribed_player_ids(
    session: AsyncSession, guild_id: int, event_type: EventType, player_ids: Collection[int] | None = None
) -> set[int]:
    """Players of the guild's roster who did not leave it nor turn its DMs off, and whose effective preference for
    this guild is on: a guild row beats the all-guilds row, and no row at all means the type's default
    (`EventSpec.default_on`; off, opt-in, for every type so far). A type that is on by default needs the candidates
    (`player_ids`): the players with no row are not in the table (the dispatcher still skips a DM to a member who
    left)."""
    default = event_type.spec.default_on
    if default and player_ids is None:
        raise ValueError(f"{event_type.value} is on by default: name the candidate players")
    query = reachable_in_guild(
        select(
            NotificationSubscription.player_id, NotificationSubscription.guild_id, NotificationSubscription.active
        ).where(
            NotificationSubscription.event_type == event_type,
            or_(NotificationSubscription.guild_id == guild_id, NotificationSubscription.guild_id.is_(None)),
        ),
        guild_id,
        NotificationSubscription.player_id,
    )
    queries = [query]
    if player_ids is not None:
        if not player_ids:
            return set()
        # In chunks: a guild's every player is far more bound parameters than asyncpg (32,767) or SQLite allow.
        candidates_list = sorted(player_ids)
        queries = [
            query.where(NotificationSubscription.player_id.in_(candidates_list[start : start + IN_LIST_CHUNK]))
            for start in range(0, len(candidates_list), IN_LIST_CHUNK)
        ]
    rows = [row for chunk_query in queries for row in (await session.execute(chunk_query)).all()]
    preference = _effective_preferences(rows)
    candidates = preference.keys() if player_ids is None else player_ids
    return {pid for pid in candidates if preference.get(pid, default)}


def _effective_preferences(rows: Iterable[Any]) -> dict[int, bool]:
    """(player id, guild id or None, active) subscription rows of one type → each player's preference in the guild:
    a guild row beats the all-guilds row."""
    guild_rows: dict[int, bool] = {}
    global_rows: dict[int, bool] = {}
    for player_id, row_guild, active in rows:
        (guild_rows if row_guild is not None else global_rows)[player_id] = active
    return {**global_rows, **guild_rows}


async def rsvped_player_ids(session: AsyncSession, guild_id: int, race_id: int) -> set[int]:
    """Players who RSVP'd the race, still on the guild's roster with its DMs on (`Audience.RSVPED`): an RSVP is
    the player's word that they race it, so no type preference is needed."""
    query = select(RaceRsvp.player_id).where(RaceRsvp.live_race_id == race_id, RaceRsvp.guild_id == guild_id)
    return set((await session.scalars(reachable_in_guild(query, guild_id, RaceRsvp.player_id))).all())


async def interested_player_ids(
    session: AsyncSession, guild_id: int, race_id: int, event_type: EventType | None = None
) -> set[int]:
    """Players who pressed Interested on the race's Discord Scheduled Event (`Audience.INTERESTED`, and the
    reminders): not left the guild (someone never on its roster has no entry to say so; leaving withdraws the
    interest anyway) and its DMs not turned off; with an `event_type`, also that type not turned off (a guild row
    beats the all-guilds row; no row counts as on, as for an RSVP). The outbox reads it under the race's lock,
    which `set_interest` takes too, so an interest is either in the state a change of the race sees or recorded
    after it."""
    query = select(RaceInterest.player_id).where(
        RaceInterest.live_race_id == race_id, RaceInterest.guild_id == guild_id, RaceInterest.interested.is_(True)
    )
    interested = (
        await session.scalars(reachable_in_guild(query, guild_id, RaceInterest.player_id, on_roster=False))
    ).all()
    if not interested or event_type is None:
        return set(interested)
    preferences = select(
        NotificationSubscription.player_id, NotificationSubscription.guild_id, NotificationSubscription.active
    ).where(
        NotificationSubscription.event_type == event_type,
        or_(NotificationSubscription.guild_id == guild_id, NotificationSubscription.guild_id.is_(None)),
        NotificationSubscription.player_id.in_(query),
    )
    preference = _effective_preferences((await session.execute(preferences)).all())
    return {pid for pid in interested if preference.get(pid, True)}


def _ts(value: datetime | None) -> int | None:
    return int(value.timestamp()) if value is not None else None


def announcement_channel(race: LiveRace, tournament: Tournament, guild: GuildSettings | None) -> int | None:
    """The race's own channel (from its template) first, then the tournament's, then the server's."""
    return (
        race.announcement_channel_id
        or tournament.announcement_channel_id
        or (guild.announcement_channel_id if guild else None)
    )


async def living_posts(session: AsyncSession, race_channels: Collection[tuple[int, int]]) -> set[tuple[int, int]]:
    """`living_post_exists` for many (race, channel) pairs in two queries: the pairs that have a living post."""
    if not race_channels:
        return set()
    race_ids = list({race_id for race_id, _ in race_channels})
    posted = {
        (row.live_race_id, row.channel_id)
        for row in (
            await session.execute(
                select(AnnouncementPost.live_race_id, AnnouncementPost.channel_id).where(
                    AnnouncementPost.live_race_id.in_(race_ids)
                )
            )
        ).all()
    }
    keys = {
        channel_dedupe_key(EventType.LIVE_RACE_SCHEDULED.value, race_id, channel_id): (race_id, channel_id)
        for race_id, channel_id in race_channels
        if (race_id, channel_id) not in posted
    }
    queued = set()
    if keys:
        for key, status in (
            await session.execute(
                select(Notification.dedupe_key, Notification.status).where(Notification.dedupe_key.in_(list(keys)))
            )
        ).all():
            if status is not NotificationStatus.SENT:
                queued.add(keys[key])
    return {pair for pair in race_channels if pair in posted or pair in queued}


async def _seed_notes(session: AsyncSession, seed_ids: Iterable[int | None]) -> dict[int, str | None]:
    """The seeds' notes: of the seeds the transaction holds (`session_cache.loaded`) as it has them, the others read."""
    notes: dict[int, str | None] = {}
    missing = []
    for seed_id in sorted({seed_id for seed_id in seed_ids if seed_id is not None}):
        seed = loaded(session, Seed, seed_id)
        if seed is not None:
            notes[seed_id] = seed.notes
        else:
            missing.append(seed_id)
    if missing:
        notes.update((await session.execute(select(Seed.id, Seed.notes).where(Seed.id.in_(missing)))).all())
    return notes


def _held_races(
    session: AsyncSession, guild_id: int, race_ids: Iterable[int]
) -> dict[int, tuple[LiveRace, Tournament, Pool]] | None:
    """The races of the guild with their tournaments and pools when the transaction holds every one of them (the
    room opener's record batch read them with the races' lock): the objects a query would return, without it.
    None when any is missing: the caller reads them."""
    found = {}
    for race_id in race_ids:
        race = loaded(session, LiveRace, race_id)
        if race is None or race.guild_id != guild_id:
            return None
        tournament = loaded(session, Tournament, race.tournament_id)
        pool = loaded(session, Pool, race.pool_id)
        if tournament is None or pool is None:
            return None
        found[race_id] = (race, tournament, pool)
    return found


def seed_hint(race: LiveRace, notes: str | None) -> str:
    """The room-open message's line about the seed."""
    # A seed shown later (the room's seed_reveal policy) is not in the room yet when it opens.
    hint = {
        "before_start": "The seed appears in the race room shortly before the start",
        "at_start": "The seed appears in the race room when the countdown begins",
    }.get(race.seed_reveal or "at_open", "The seed link is in the race room's info")
    return f"{hint}. Notes: {notes.strip()}" if notes and notes.strip() else hint


@dataclass(frozen=True)
class _Prefetched:
    """What `write_many` reads once for all its races: seed notes by seed id, the (race, channel) pairs with a
    living announcement (of the rooms opened)."""

    seed_notes: dict[int, str | None]
    living: set[tuple[int, int]]


SET_WISE = (LiveRaceScheduled, LiveRaceRoomOpened)  # the events `write_many` queues set-wise


class OutboxWriter:
    """Subscribed to the EventBus; runs inside the publishing service's transaction."""

    def __init__(self, settings: Settings, *, clock: Callable[[], datetime] = SYSTEM_CLOCK) -> None:
        self.settings = settings
        self.clock = clock

    async def __call__(self, session: AsyncSession, event: LiveRaceEvent) -> None:
        """The event bus handler: `write` the rows of `event` in the event's transaction."""
        await self.write(session, event)

    async def write(self, session: AsyncSession, event: LiveRaceEvent) -> int:
        """Queue the rows for one event; returns how many rows were offered (duplicates are ignored)."""
        context = await self._load(session, event)
        if context is None:
            log.warning("event %s for unknown race %s: nothing queued", type(event).__name__, event.live_race_id)
            return 0
        race, tournament, pool, guild = context
        audience = event.spec.audience
        dms = 0
        if not isinstance(event, LiveRaceOpenFailed):
            await self.queue_scheduled_event(session, event, race, tournament, pool, guild)
        if isinstance(event, LiveRaceRescheduled):  # a race can move more than once: moves collapse
            return await self._write_rescheduled(session, event, race, tournament, pool, guild)
        if isinstance(event, LiveRaceOpenFailed):  # its audience is the moderators
            rows = self._alert_rows(event, race, tournament, pool, guild)
        else:
            snapshot = await self._race_snapshot(session, event, race, tournament, pool, guild)
            results = await self._results(session, race, snapshot) if isinstance(event, LiveRaceFinished) else {}
            if audience & DM_AUDIENCES:
                dms = await self._queue_dms(session, event, race, tournament, pool, snapshot, results)
            rows = await self._channel_rows(session, event, race, tournament, guild, snapshot)
        await insert_ignoring_duplicates(session, rows)
        count = len(rows) + dms
        log.info("queued %d notification(s) for %s of race %s", count, type(event).__name__, race.id)
        return count

    async def write_many(self, session: AsyncSession, events: Sequence[LiveRaceEvent]) -> int:
        """Queue many events of one change (a batch of new races, a batch of rooms opened) in a fixed number of
        queries per guild, pool and seed, instead of `write`'s queries per event: the races, their guild's settings,
        their seeds' notes and their living announcements are read once for all, the Discord Scheduled Event rows
        and the channel rows go in one INSERT each, and the DMs in one INSERT … SELECT per 100 races with the same
        recipients. The rows are exactly `write`'s.

        `LiveRaceScheduled` (a new race has no runs yet, so every race of one pool and seed has the same eligible
        players, worked out once) and `LiveRaceRoomOpened` are handled set-wise; other events go through `write`."""
        count = 0
        batched = [event for event in events if isinstance(event, SET_WISE)]
        for event in events:
            if not isinstance(event, SET_WISE):
                count += await self.write(session, event)
        guild_ids = sorted({event.guild_id for event in batched})
        for guild_id in guild_ids:
            group = [event for event in batched if event.guild_id == guild_id]
            found = _held_races(session, guild_id, [event.live_race_id for event in group])
            if found is None:
                found = {
                    race.id: (race, tournament, pool)
                    for race, tournament, pool in (
                        await session.execute(
                            select(LiveRace, Tournament, Pool)
                            .join(Tournament, Tournament.id == LiveRace.tournament_id)
                            .join(Pool, Pool.id == LiveRace.pool_id)
                            .where(
                                LiveRace.id.in_([event.live_race_id for event in group]), LiveRace.guild_id == guild_id
                            )
                        )
                    ).all()
                }
            known = known_guild_settings(session, guild_id)
            guild = await session.get(GuildSettings, guild_id) if known is UNKNOWN else known
            opened = [
                found[e.live_race_id][0] for e in group if isinstance(e, LiveRaceRoomOpened) and e.live_race_id in found
            ]
            batch = _Prefetched(
                seed_notes=await _seed_notes(session, [race.seed_id for race in opened]),
                living=await living_posts(
                    session,
                    [
                        (race.id, channel_id)
                        for race in opened
                        if (channel_id := announcement_channel(race, found[race.id][1], guild)) is not None
                    ],
                ),
            )
            shared: dict[Any, Any] = {}
            channel_rows: list[dict[str, Any]] = []
            scheduled_event_rows: list[dict[str, Any]] = []
            # Races with the same recipients (one pool and seed) are queued by one INSERT … SELECT.
            dms: dict[tuple[int, ...], list[tuple[LiveRaceEvent, dict[str, Any]]]] = {}
            for event in group:
                if event.live_race_id not in found:
                    log.warning("event for unknown race %s: nothing queued", event.live_race_id)
                    continue
                race, tournament, pool = found[event.live_race_id]
                # Its Discord Scheduled Event, as `write` queues it (one row a race, inserted with the others').
                await self.queue_scheduled_event(session, event, race, tournament, pool, guild, scheduled_event_rows)
                snapshot = await self._race_snapshot(session, event, race, tournament, pool, guild, batch)
                if event.spec.audience & DM_AUDIENCES:
                    recipients = tuple(sorted(await self._recipients(session, event, race, tournament, pool, shared)))
                    if recipients:
                        payload = self._base_payload(event, event.spec.name, snapshot)
                        dms.setdefault(recipients, []).append((event, payload))
                        count += len(recipients)
                rows = await self._channel_rows(session, event, race, tournament, guild, snapshot, batch)
                channel_rows += rows
                count += len(rows)
            await scheduled_events.insert_rows(session, scheduled_event_rows)
            now = self.clock()
            for recipients, races in dms.items():
                await insert_for_players_of_races(
                    session,
                    recipients,
                    [
                        (
                            self._row(NotificationKind.DM, event, None, None, payload, "", now),
                            dm_dedupe_key_prefix(event.type, event.live_race_id),
                        )
                        for event, payload in races
                    ],
                )
            await insert_ignoring_duplicates(session, channel_rows)
            log.info("queued %d notification(s) for %d races", count, len(group))
        return count

    async def _load(
        self, session: AsyncSession, event: LiveRaceEvent
    ) -> tuple[LiveRace, Tournament, Pool, GuildSettings | None] | None:
        row = (
            await session.execute(
                select(LiveRace, Tournament, Pool)
                .join(Tournament, Tournament.id == LiveRace.tournament_id)
                .join(Pool, Pool.id == LiveRace.pool_id)
                .where(LiveRace.id == event.live_race_id, LiveRace.guild_id == event.guild_id)
            )
        ).first()
        if row is None:
            return None
        race, tournament, pool = row
        return race, tournament, pool, await session.get(GuildSettings, event.guild_id)

    # ---- Discord Scheduled Event -----------------------------------------------------------------------
    async def queue_scheduled_event(
        self,
        session: AsyncSession,
        event: LiveRaceEvent,
        race: LiveRace,
        tournament: Tournament,
        pool: Pool,
        guild: GuildSettings | None,
        rows: list[dict[str, Any]] | None = None,
    ) -> bool:
        """The row that brings the race's scheduled event to the race as it is now (`bot.services.scheduled_events`;
        a step a race can take more than once, a move, is named by its moment). `rows`: collected there instead of
        inserted (`write_many`)."""
        step = event.spec.name
        if isinstance(event, LiveRaceRescheduled):
            step += f":{int(event.occurred_at.timestamp() * 1_000_000)}"
        return await scheduled_events.queue_sync(
            session,
            race,
            tournament,
            pool,
            guild,
            event_name=event.spec.name,
            step=step,
            length_minutes=self.settings.notifications.scheduled_event_length_minutes,
            now=self.clock(),
            rows=rows,
        )

    # ---- payloads ------------------------------------------------------------------------------------
    async def _race_snapshot(
        self,
        session: AsyncSession,
        event: LiveRaceEvent,
        race: LiveRace,
        tournament: Tournament,
        pool: Pool,
        guild: GuildSettings | None,
        batch: _Prefetched | None = None,
    ) -> dict[str, Any]:
        """Everything a message about this event shows, frozen at queue time (`batch`: what `write_many` read for
        all its races at once)."""
        lead = room_open_lead(
            race.room_open_lead_minutes
            if race.room_open_lead_minutes is not None
            else tournament.room_open_lead_minutes,
            guild.room_open_lead_minutes if guild else None,
            self.settings.scheduler.room_open_lead_minutes,
        )
        snapshot: dict[str, Any] = {
            "id": race.id,
            "title": race.title,
            "tournament": tournament.name,
            "pool": pool.name,
            "status": str(race.status),
            "scheduled_at": _ts(race.scheduled_at),
            "room_opens_at": _ts(race.scheduled_at - timedelta(minutes=lead)),
            "room_url": race.racetime_url,
            "started_at": _ts(race.started_at),
            "ended_at": _ts(race.ended_at),
            "participant_count": race.participant_count or len(getattr(event, "participant_player_ids", ())),
            "finisher_count": race.finisher_count,
        }
        if isinstance(event, LiveRaceRoomOpened):
            room = await resolve_for_race(session, race, tournament, guild)
            snapshot.update(
                start_delay=room["start_delay"], auto_start=room["auto_start"], time_limit=room["time_limit"]
            )
            if batch is not None:
                snapshot["seed_hint"] = seed_hint(race, batch.seed_notes.get(race.seed_id))
            else:
                snapshot["seed_hint"] = await self._seed_hint(session, race)
        if isinstance(event, LiveRaceCancelled):
            snapshot["cancel_reason"] = event.reason or race.cancel_reason
            snapshot["previous_status"] = event.previous_status
        return snapshot

    # ---- rescheduled --------------------------------------------------------------------------------------
    async def _write_rescheduled(
        self,
        session: AsyncSession,
        event: LiveRaceRescheduled,
        race: LiveRace,
        tournament: Tournament,
        pool: Pool,
        guild: GuildSettings | None,
    ) -> int:
        """Queue (or rewrite) the rescheduled notice.

        Moves within `notifications.reschedule_collapse_seconds` make one notice: its rows wait that long, and a
        later move rewrites the rows of that group in place (same dedupe keys, so each player gets one message,
        with the start they were told and the latest one) as long as no dispatcher has touched any of them; a
        group one row of which is out (or going out) is left alone and the move starts a new group. A move back to
        the start players were told turns the waiting group `skipped`; a move nobody can see (the same minute,
        which is all a Discord timestamp shows) queues nothing. The caller holds the race's lock (`lock_race`),
        so moves of one race never interleave; the group's rows are locked (`FOR UPDATE`) before they are checked,
        so a dispatcher claims them either before (and the group is left alone) or after (and sends the rewrite).
        """
        window = self.settings.notifications.reschedule_collapse_seconds
        now = event.occurred_at  # the service's clock, which the dispatcher's follows
        new = _ts(race.scheduled_at)
        latest, group = await self._waiting_group(session, race.id, collapse=window > 0)
        if group is not None:
            occurrence, told, send_at, row_ids = group
        else:  # a new group, named by the moment of its first move (after any earlier group of the race)
            occurrence = max(int(now.timestamp() * 1_000_000), latest + 1)
            send_at, row_ids = now + timedelta(seconds=window), []
            told = _ts(event.previous_scheduled_at)
        if told is None or new is None or told // 60 == new // 60:
            if row_ids:  # back where players were told: the waiting notice says nothing true any more
                await session.execute(
                    update(Notification)
                    .where(Notification.id.in_(row_ids))
                    .values(
                        status=NotificationStatus.SKIPPED,
                        error="Not sent: the race moved back to the start players were told before it went out",
                    )
                    .execution_options(synchronize_session=False)
                )
                log.info(
                    "race %s moved back to its announced start: the waiting rescheduled notice is dropped", race.id
                )
            # No notice, but a living announcement shows the start as it is now (an edit pings nobody).
            snapshot = await self._race_snapshot(session, event, race, tournament, pool, guild)
            edits = await self._channel_rows(session, event, race, tournament, guild, snapshot)
            edits = [row for row in edits if row["kind"] is NotificationKind.EDIT]
            await insert_ignoring_duplicates(session, edits)
            return len(edits)
        snapshot = await self._race_snapshot(session, event, race, tournament, pool, guild)
        snapshot["previous_scheduled_at"] = told
        payload = {**self._base_payload(event, event.spec.name, snapshot), "group": occurrence}
        # A living announcement is edited at once (an edit pings nobody); else a post, grouped like the DMs.
        channel_rows = await self._channel_rows(session, event, race, tournament, guild, snapshot)
        if not any(row["kind"] is NotificationKind.EDIT for row in channel_rows):
            channel_rows = self._announcement_rows(event, race, tournament, guild, snapshot, occurrence=occurrence)
            for row in channel_rows:
                row["payload"]["group"] = occurrence
                row["next_attempt_at"] = send_at
        if row_ids:  # the same rows, the latest start: one message for every move of the group
            rewrites = [(NotificationKind.DM, payload)]
            rewrites += [
                (row["kind"], row["payload"]) for row in channel_rows if row["kind"] is NotificationKind.CHANNEL
            ]
            for kind, rewritten in rewrites:
                await session.execute(
                    update(Notification)
                    .where(Notification.id.in_(row_ids), Notification.kind == kind)
                    .values(payload=rewritten)
                    .execution_options(synchronize_session=False)
                )
        recipients = sorted(await self._recipients(session, event, race, tournament, pool))
        await insert_ignoring_duplicates(session, channel_rows)
        if recipients:
            template = self._row(NotificationKind.DM, event, None, None, payload, "", self.clock())
            template["next_attempt_at"] = send_at
            await insert_for_players(session, recipients, template, rescheduled_dm_key_prefix(race.id, occurrence))
        count = len(channel_rows) + len(recipients)
        log.info("queued %d rescheduled notice(s) of race %s (group %s)", count, race.id, occurrence)
        return count

    @staticmethod
    async def _waiting_group(
        session: AsyncSession, race_id: int, *, collapse: bool
    ) -> tuple[int, tuple[int, int, datetime, list[int]] | None]:
        """The occurrence of the race's latest group of rescheduled rows (0: none), and that group if it may still
        be rewritten (`collapse`, and no dispatcher touched any of its rows yet): its occurrence, the start players
        were told before it, when it goes out, and its row ids (locked until the commit)."""
        latest = (
            await session.execute(
                select(Notification.payload, Notification.next_attempt_at)
                .where(
                    Notification.live_race_id == race_id,
                    Notification.event_type == EventType.LIVE_RACE_RESCHEDULED,
                )
                .order_by(Notification.id.desc())
                .limit(1)
            )
        ).first()
        if latest is None or "group" not in latest.payload:
            return 0, None
        occurrence = int(latest.payload["group"])
        if not collapse:
            return occurrence, None
        told = latest.payload.get("race", {}).get("previous_scheduled_at")
        channel_keys = f"channel:{EventType.LIVE_RACE_RESCHEDULED.value}:race:{race_id}:channel:%:{occurrence}"
        rows = (
            await session.execute(
                select(Notification.id, Notification.status, Notification.claimed_until, Notification.attempts)
                .where(
                    Notification.live_race_id == race_id,
                    Notification.event_type == EventType.LIVE_RACE_RESCHEDULED,
                    or_(
                        Notification.dedupe_key.like(rescheduled_dm_key_prefix(race_id, occurrence) + "%"),
                        Notification.dedupe_key.like(channel_keys),
                    ),
                )
                .with_for_update()
            )
        ).all()
        untouched = all(
            row.status is NotificationStatus.PENDING and row.claimed_until is None and row.attempts == 0 for row in rows
        )
        if not rows or not untouched or told is None:
            return occurrence, None
        return occurrence, (occurrence, int(told), latest.next_attempt_at, [row.id for row in rows])

    @staticmethod
    async def _seed_hint(session: AsyncSession, race: LiveRace) -> str:
        notes = await session.scalar(select(Seed.notes).where(Seed.id == race.seed_id))
        return seed_hint(race, notes)

    def _base_payload(self, event: LiveRaceEvent, name: str, snapshot: dict[str, Any]) -> dict[str, Any]:
        return {"v": PAYLOAD_VERSION, "event": name, "occurred_at": _ts(event.occurred_at), "race": snapshot}

    # ---- DMs -----------------------------------------------------------------------------------------
    async def _recipients(
        self,
        session: AsyncSession,
        event: LiveRaceEvent,
        race: LiveRace,
        tournament: Tournament,
        pool: Pool,
        shared: dict[Any, Any] | None = None,
    ) -> set[int]:
        """`shared` (write_many): the subscribers and each pool and seed's eligibility, kept for the next race."""
        recipients: set[int] = set()
        audience = event.spec.audience
        shared = {} if shared is None else shared
        if Audience.ELIGIBLE in audience:
            # Opt-in: eligibility is worked out only when somebody subscribed.
            key = ("subscribers", event.guild_id, event.type)
            if key not in shared:
                shared[key] = (
                    None if event.spec.default_on else await subscribed_player_ids(session, event.guild_id, event.type)
                )
            subscribers = shared[key]
            if subscribers is None or subscribers:
                key = ("eligible", event.guild_id, pool.id, race.seed_id)
                report = shared.get(key)
                if report is None:
                    report = await race_eligibility(session, race, tournament, pool)
                if isinstance(event, LiveRaceScheduled):  # a new race: no runs to leave out, the same for its pool
                    shared[key] = report
                if subscribers is None:
                    subscribers = await subscribed_player_ids(session, event.guild_id, event.type, report.eligible_ids)
                recipients |= report.eligible_ids & subscribers
        participants = set(getattr(event, "participant_player_ids", ()))
        if Audience.PARTICIPANTS in audience and participants:
            recipients |= await subscribed_player_ids(session, event.guild_id, event.type, participants)
        if Audience.RSVPED in audience:
            recipients |= await rsvped_player_ids(session, event.guild_id, race.id)
        if Audience.INTERESTED in audience:
            recipients |= await interested_player_ids(session, event.guild_id, race.id, event.type)
        return recipients

    async def _queue_dms(
        self,
        session: AsyncSession,
        event: LiveRaceEvent,
        race: LiveRace,
        tournament: Tournament,
        pool: Pool,
        snapshot: dict[str, Any],
        results: dict[int, dict[str, Any]],
        *,
        shared: dict[Any, Any] | None = None,
    ) -> int:
        recipients = sorted(await self._recipients(session, event, race, tournament, pool, shared))
        if not recipients:
            return 0
        payload = self._base_payload(event, event.spec.name, snapshot)
        now = self.clock()
        if results:  # each participant's own result: one payload per row
            rows = [
                self._row(
                    NotificationKind.DM,
                    event,
                    player_id,
                    None,
                    {**payload, "result": results[player_id]} if player_id in results else payload,
                    dm_dedupe_key(event.type, race.id, player_id),
                    now,
                )
                for player_id in recipients
            ]
            await insert_ignoring_duplicates(session, rows)
        else:
            template = self._row(NotificationKind.DM, event, None, None, payload, "", now)
            await insert_for_players(session, recipients, template, dm_dedupe_key_prefix(event.type, race.id))
        return len(recipients)

    @staticmethod
    async def _results(session: AsyncSession, race: LiveRace, snapshot: dict[str, Any]) -> dict[int, dict[str, Any]]:
        """Each participant's own result, by player id; also puts the finisher count and podium into the
        snapshot, for the announcement."""
        rows = (
            await session.execute(
                select(
                    Run.player_id, Run.status, Run.place, Run.elapsed_us, Run.score, roster_name().label("display_name")
                )
                .join(Player, Player.id == Run.player_id)
                .outerjoin(GuildPlayer, roster_entry_of(race.guild_id, Run.player_id))
                .where(Run.live_race_id == race.id)
            )
        ).all()
        finished = sorted(
            (row for row in rows if row.status == RunStatus.FINISHED and row.place is not None),
            key=lambda row: row.place,
        )
        snapshot["finisher_count"] = max(snapshot["finisher_count"], len(finished))
        snapshot["participant_count"] = max(snapshot["participant_count"], len(rows))
        snapshot["podium"] = [
            {"place": row.place, "name": row.display_name, "elapsed_us": row.elapsed_us}
            for row in finished[:PODIUM_SIZE]
        ]
        return {
            row.player_id: {
                "status": str(row.status),
                "place": row.place,
                "elapsed_us": row.elapsed_us,
                "score": row.score,
            }
            for row in rows
        }

    # ---- channels ------------------------------------------------------------------------------------
    async def _channel_rows(
        self,
        session: AsyncSession,
        event: LiveRaceEvent,
        race: LiveRace,
        tournament: Tournament,
        guild: GuildSettings | None,
        snapshot: dict[str, Any],
        batch: _Prefetched | None = None,
    ) -> list[dict[str, Any]]:
        """The announcement channel's rows: the scheduled post is the race's living announcement; every later
        step edits it in place (an `EDIT` row showing the race as it is now, which pings nobody), and the room
        opening also posts a reply to it, the one ping that matters. A race without a living post (announced
        before this existed, or whose post never went out) gets a post per step as before."""
        rows = self._announcement_rows(event, race, tournament, guild, snapshot)
        if not rows:
            return rows
        channel_id = rows[0]["channel_id"]
        if isinstance(event, LiveRaceScheduled):
            rows[0]["payload"]["living"] = True
            return rows
        if batch is not None and isinstance(event, LiveRaceRoomOpened):
            living = (race.id, channel_id) in batch.living
        else:
            living = await living_post_exists(session, race.id, channel_id)
        if not living:
            return rows
        edit_payload = {**self._base_payload(event, event.spec.name, snapshot), "living": True, "role_id": None}
        key = f"{edit_dedupe_key_prefix(race.id, channel_id)}{event.spec.name}"
        if isinstance(event, LiveRaceRescheduled):  # the one step a race can take more than once
            key += f":{int(event.occurred_at.timestamp() * 1_000_000)}"
        edit = self._row(NotificationKind.EDIT, event, None, channel_id, edit_payload, key, self.clock())
        if isinstance(event, LiveRaceRoomOpened):  # the ping: a reply to the living post
            rows[0]["payload"]["reply"] = True
            return [edit, *rows]
        return [edit]

    def _announcement_rows(
        self,
        event: LiveRaceEvent,
        race: LiveRace,
        tournament: Tournament,
        guild: GuildSettings | None,
        snapshot: dict[str, Any],
        *,
        occurrence: int | None = None,
    ) -> list[dict[str, Any]]:
        channel_id = announcement_channel(race, tournament, guild)
        if channel_id is None or Audience.ANNOUNCEMENT not in event.spec.audience:
            return []
        role_id = (
            race.announcement_role_id
            or tournament.announcement_role_id
            or (guild.announcement_role_id if guild else None)
        )
        payload = {**self._base_payload(event, event.spec.name, snapshot), "role_id": role_id}
        key = channel_dedupe_key(event.spec.name, race.id, channel_id, occurrence=occurrence)
        return [self._row(NotificationKind.CHANNEL, event, None, channel_id, payload, key, self.clock())]

    def _alert_rows(
        self,
        event: LiveRaceOpenFailed,
        race: LiveRace,
        tournament: Tournament,
        pool: Pool,
        guild: GuildSettings | None,
    ) -> list[dict[str, Any]]:
        """A moderator alert: the moderator channel, else the announcement channel, pinging organizers."""
        channel_id = (guild.moderator_channel_id if guild else None) or (
            race.announcement_channel_id
            or tournament.announcement_channel_id
            or (guild.announcement_channel_id if guild else None)
        )
        if channel_id is None:
            log.warning("race %s could not open and no moderator or announcement channel is set", race.id)
            return []
        snapshot = {
            "id": race.id,
            "title": race.title,
            "tournament": tournament.name,
            "pool": pool.name,
            "scheduled_at": _ts(race.scheduled_at),
        }
        payload = {
            **self._base_payload(event, event.spec.name, snapshot),
            "alert": {
                "error": event.error,
                "attempts": event.attempts,
                # A warning ahead of time (a series without seeds) says what happened and what to do.
                **({"summary": event.summary, "action": event.action} if event.summary else {}),
                **({"headline": event.headline} if event.headline else {}),
            },
            "role_id": guild.organizer_role_id if guild else None,
        }
        # Each give-up is its own alert (a race can give up again after /liverace open); the moment of the
        # give-up identifies it, and a give-up is published once, in the transaction that records it.
        occurrence = int(event.occurred_at.timestamp() * 1_000_000)
        key = channel_dedupe_key(event.spec.name, race.id, channel_id, occurrence=occurrence)
        return [self._row(NotificationKind.CHANNEL, event, None, channel_id, payload, key, self.clock())]

    @staticmethod
    def _row(
        kind: NotificationKind,
        event: LiveRaceEvent,
        player_id: int | None,
        channel_id: int | None,
        payload: dict[str, Any],
        dedupe_key: str,
        now: datetime,
    ) -> dict[str, Any]:
        return {
            "kind": kind,
            "event_type": event.type,
            "guild_id": event.guild_id,
            "player_id": player_id,
            "channel_id": channel_id,
            "live_race_id": event.live_race_id,
            "payload": payload,
            "dedupe_key": dedupe_key,
            "status": NotificationStatus.PENDING,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }


async def insert_ignoring_duplicates(session: AsyncSession, rows: Iterable[dict[str, Any]]) -> None:
    """One multi-row INSERT … ON CONFLICT (dedupe_key) DO NOTHING, on SQLite and PostgreSQL alike."""
    rows = list(rows)
    if rows:
        await session.execute(
            conflict_ignoring_insert(session, _notifications).on_conflict_do_nothing(index_elements=["dedupe_key"]),
            rows,
        )


async def insert_for_players(
    session: AsyncSession, player_ids: Sequence[int], template: dict[str, Any], dedupe_key_prefix: str
) -> None:
    """Rows identical but for the player and the dedupe key (`prefix` + player id), built by the database:
    INSERT … SELECT … FROM players, so the payload is serialised once instead of once per row."""
    shared = [name for name in template if name not in ("player_id", "dedupe_key")]
    for start in range(0, len(player_ids), IN_LIST_CHUNK):
        chunk = player_ids[start : start + IN_LIST_CHUNK]
        rows = select(
            *(literal(template[name], _notifications.c[name].type).label(name) for name in shared),
            Player.id.label("player_id"),
            (literal(dedupe_key_prefix, String()) + cast(Player.id, String())).label("dedupe_key"),
        ).where(Player.id.in_(chunk))
        statement = conflict_ignoring_insert(session, _notifications).from_select(
            [*shared, "player_id", "dedupe_key"], rows
        )
        await session.execute(statement.on_conflict_do_nothing(index_elements=["dedupe_key"]))


RACES_PER_INSERT = 100  # SQLite allows 500 terms in a compound SELECT; each race is one


async def insert_for_players_of_races(
    session: AsyncSession, player_ids: Sequence[int], races: Sequence[tuple[dict[str, Any], str]]
) -> None:
    """`insert_for_players` for many races with the same recipients at once: (row template, dedupe key prefix) per
    race; the templates differ only in the race and the payload. The races are a UNION ALL of one row each, crossed
    with the players, so each payload is serialised once and each statement queues up to `RACES_PER_INSERT` races."""
    if not races or not player_ids:
        return
    first = races[0][0]
    varying = ("live_race_id", "payload")
    shared = [name for name in first if name not in ("player_id", "dedupe_key", *varying)]
    for start in range(0, len(races), RACES_PER_INSERT):
        chunk_races = races[start : start + RACES_PER_INSERT]
        terms = [
            select(
                literal(template["live_race_id"], _notifications.c.live_race_id.type).label("live_race_id"),
                literal(template["payload"], _notifications.c.payload.type).label("payload"),
                literal(prefix, String()).label("prefix"),
            )
            for template, prefix in chunk_races
        ]
        race_rows = (terms[0] if len(terms) == 1 else union_all(*terms)).subquery("race_rows")
        for begin in range(0, len(player_ids), IN_LIST_CHUNK):
            chunk = player_ids[begin : begin + IN_LIST_CHUNK]
            rows = (
                select(
                    *(literal(first[name], _notifications.c[name].type).label(name) for name in shared),
                    race_rows.c.live_race_id,
                    race_rows.c.payload,
                    Player.id.label("player_id"),
                    (race_rows.c.prefix + cast(Player.id, String())).label("dedupe_key"),
                )
                .select_from(Player)
                .join(race_rows, true())
                .where(Player.id.in_(chunk))
            )
            statement = conflict_ignoring_insert(session, _notifications).from_select(
                [*shared, *varying, "player_id", "dedupe_key"], rows
            )
            await session.execute(statement.on_conflict_do_nothing(index_elements=["dedupe_key"]))
