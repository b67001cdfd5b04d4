"""The outbox writer: turns a domain event into outbox rows inside the transaction that caused it.

Recipients are the audiences of the event's type (`EventSpec.audience` in `db.models`): eligible subscribers,
subscribed participants, the announcement channel, the moderator channel. Everything is set-wise: a fixed number
of queries per event whatever the number of players, and one bulk insert whose dedupe key makes queuing the
same event twice add nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import String, cast, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import SYSTEM_CLOCK
from bot.events import LiveRaceCancelled, LiveRaceEvent, LiveRaceFinished, LiveRaceOpenFailed, LiveRaceRoomOpened
from bot.notifications.render import PAYLOAD_VERSION
from bot.services.common import conflict_ignoring_insert
from bot.services.eligibility import compute_eligibility
from bot.services.players import roster_entry_of, roster_name
from bot.services.room_opener import room_open_lead
from bot.services.room_profiles import resolve_for_race
from bot.settings import Settings
from db.models import (
    DM_AUDIENCES,
    Audience,
    EventType,
    GuildPlayer,
    GuildSettings,
    LiveRace,
    Notification,
    NotificationKind,
    NotificationStatus,
    NotificationSubscription,
    Permalink,
    Player,
    Pool,
    Run,
    RunStatus,
    Tournament,
)

log = logging.getLogger(__name__)

PODIUM_SIZE = 3
# Player ids per INSERT … SELECT: far below SQLite's and asyncpg's 32,766 bound parameters.
IN_LIST_CHUNK = 5000
_notifications = Notification.__table__


def dm_dedupe_key_prefix(event_type: EventType, race_id: int) -> str:
    return f"dm:{event_type.code}:race:{race_id}:player:"


def dm_dedupe_key(event_type: EventType, race_id: int, player_id: int) -> str:
    return f"{dm_dedupe_key_prefix(event_type, race_id)}{player_id}"


def channel_dedupe_key(event: str, race_id: int, channel_id: int, *, occurrence: int | None = None) -> str:
    suffix = f":{occurrence}" if occurrence is not None else ""
    return f"channel:{event}:race:{race_id}:channel:{channel_id}{suffix}"


async def subscribed_player_ids(
    session: AsyncSession, guild_id: int, event_type: EventType, player_ids: Collection[int] | None = None
) -> set[int]:
    """Players of the guild's roster who did not leave it and whose effective preference for this guild is on: a
    guild row beats the all-guilds row, and no row at all means the type's default (`EventSpec.default_on`; off,
    opt-in, for every type so far). A type that is on by default needs the candidates (`player_ids`): the players
    with no row are not in the table (the dispatcher still skips a DM to a member who left)."""
    default = event_type.spec.default_on
    if default and player_ids is None:
        raise ValueError(f"{event_type.value} is on by default: name the candidate players")
    query = (
        select(NotificationSubscription.player_id, NotificationSubscription.guild_id, NotificationSubscription.active)
        # Only players still on the guild's roster: no DMs from a guild the member left.
        .join(GuildPlayer, roster_entry_of(guild_id, NotificationSubscription.player_id))
        .where(
            NotificationSubscription.event_type == event_type,
            or_(NotificationSubscription.guild_id == guild_id, NotificationSubscription.guild_id.is_(None)),
            GuildPlayer.left_at.is_(None),
        )
    )
    if player_ids is not None:
        if not player_ids:
            return set()
        query = query.where(NotificationSubscription.player_id.in_(list(player_ids)))
    guild_rows: dict[int, bool] = {}
    global_rows: dict[int, bool] = {}
    for player_id, row_guild, active in (await session.execute(query)).all():
        (guild_rows if row_guild is not None else global_rows)[player_id] = active
    candidates = guild_rows.keys() | global_rows.keys() if player_ids is None else player_ids
    return {pid for pid in candidates if guild_rows.get(pid, global_rows.get(pid, default))}


def _ts(value: datetime | None) -> int | None:
    return int(value.timestamp()) if value is not None else None


class OutboxWriter:
    """Subscribed to the EventBus; runs inside the publishing service's transaction."""

    def __init__(self, settings: Settings, *, clock: Callable[[], datetime] = SYSTEM_CLOCK) -> None:
        self.settings = settings
        self.clock = clock

    async def __call__(self, session: AsyncSession, event: LiveRaceEvent) -> None:
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
        if isinstance(event, LiveRaceOpenFailed):  # its audience is the moderators
            rows = self._alert_rows(event, race, tournament, pool, guild)
        else:
            snapshot = await self._race_snapshot(session, event, race, tournament, pool, guild)
            results = await self._results(session, race, snapshot) if isinstance(event, LiveRaceFinished) else {}
            if audience & DM_AUDIENCES:
                dms = await self._queue_dms(session, event, race, tournament, pool, snapshot, results)
            rows = self._announcement_rows(event, race, tournament, guild, snapshot)
        await insert_ignoring_duplicates(session, rows)
        count = len(rows) + dms
        log.info("queued %d notification(s) for %s of race %s", count, type(event).__name__, race.id)
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

    # ---- payloads ------------------------------------------------------------------------------------
    async def _race_snapshot(
        self,
        session: AsyncSession,
        event: LiveRaceEvent,
        race: LiveRace,
        tournament: Tournament,
        pool: Pool,
        guild: GuildSettings | None,
    ) -> dict[str, Any]:
        """Everything a message about this event shows, frozen at queue time."""
        lead = room_open_lead(
            tournament.room_open_lead_minutes,
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
            room = await resolve_for_race(session, race, tournament)
            snapshot.update(
                start_delay=room["start_delay"], auto_start=room["auto_start"], time_limit=room["time_limit"]
            )
            snapshot["seed_hint"] = await self._seed_hint(session, race)
        if isinstance(event, LiveRaceCancelled):
            snapshot["cancel_reason"] = event.reason or race.cancel_reason
            snapshot["previous_status"] = event.previous_status
        return snapshot

    @staticmethod
    async def _seed_hint(session: AsyncSession, race: LiveRace) -> str:
        notes = await session.scalar(select(Permalink.notes).where(Permalink.id == race.permalink_id))
        hint = "The seed link is in the race room's info"
        return f"{hint}. Notes: {notes.strip()}" if notes and notes.strip() else hint

    def _base_payload(self, event: LiveRaceEvent, name: str, snapshot: dict[str, Any]) -> dict[str, Any]:
        return {"v": PAYLOAD_VERSION, "event": name, "occurred_at": _ts(event.occurred_at), "race": snapshot}

    # ---- DMs -----------------------------------------------------------------------------------------
    async def _recipients(
        self, session: AsyncSession, event: LiveRaceEvent, race: LiveRace, tournament: Tournament, pool: Pool
    ) -> set[int]:
        recipients: set[int] = set()
        audience = event.spec.audience
        if Audience.ELIGIBLE in audience:
            # Opt-in: eligibility is worked out only when somebody subscribed.
            subscribers = (
                None if event.spec.default_on else await subscribed_player_ids(session, event.guild_id, event.type)
            )
            if subscribers is None or subscribers:
                report = await compute_eligibility(
                    session,
                    guild_id=event.guild_id,
                    tournament=tournament,
                    pool=pool,
                    permalink_id=race.permalink_id,
                    exclude_live_race_id=race.id,
                )
                if subscribers is None:
                    subscribers = await subscribed_player_ids(session, event.guild_id, event.type, report.eligible_ids)
                recipients |= report.eligible_ids & subscribers
        participants = set(getattr(event, "participant_player_ids", ()))
        if Audience.PARTICIPANTS in audience and participants:
            recipients |= await subscribed_player_ids(session, event.guild_id, event.type, participants)
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
    ) -> int:
        recipients = sorted(await self._recipients(session, event, race, tournament, pool))
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
    def _announcement_rows(
        self,
        event: LiveRaceEvent,
        race: LiveRace,
        tournament: Tournament,
        guild: GuildSettings | None,
        snapshot: dict[str, Any],
    ) -> list[dict[str, Any]]:
        channel_id = tournament.announcement_channel_id or (guild.announcement_channel_id if guild else None)
        if channel_id is None or Audience.ANNOUNCEMENT not in event.spec.audience:
            return []
        role_id = tournament.announcement_role_id or (guild.announcement_role_id if guild else None)
        payload = {**self._base_payload(event, event.spec.name, snapshot), "role_id": role_id}
        key = channel_dedupe_key(event.spec.name, race.id, channel_id)
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
            tournament.announcement_channel_id or (guild.announcement_channel_id if guild else None)
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
