"""Live races mirrored as Discord Scheduled Events: what each race's event should look like, the outbox row that
brings it there, and the guild's and tournament's switch.

The event is an *external* one (entity_type 3): its location is the RaceTime.gg room once open, before that
"tournament — pool"; it starts at the race's start and ends at an estimate (`notifications.
scheduled_event_length_minutes` after the start, never past the room's time limit). Each step of the race queues
one `scheduled_event` outbox row in the transaction of the change, with a dedupe key per race and step; the row
carries the whole wanted state, so the dispatcher creates the event when the race has none yet and otherwise edits
it (status 1 scheduled → 2 active → 3 completed, or 4 cancelled). The race's marker in the event's description
lets the dispatcher find an event it created before a crash kept no record of it, instead of creating another.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.errors import NotFound
from bot.services.common import conflict_ignoring_insert
from bot.services.room_profiles import resolve_for_race
from db.models import (
    GuildSettings,
    LiveRace,
    Notification,
    NotificationKind,
    NotificationStatus,
    Pool,
    RaceScheduledEvent,
    Tournament,
)

PAYLOAD_VERSION = 1

SCHEDULED, ACTIVE, COMPLETED, CANCELLED = 1, 2, 3, 4
STATUS_NAMES = {SCHEDULED: "scheduled", ACTIVE: "active", COMPLETED: "completed", CANCELLED: "cancelled"}
# Discord's limits: name 1–100, description up to 1000, an external event's location 1–100 characters.
NAME_MAX, DESCRIPTION_MAX, LOCATION_MAX = 100, 1000, 100
BLOCKED_LINE = (
    "Discord Scheduled Events are off: the bot lacks the Manage Events permission (Discord 403, code 50013). "
    "Give it that permission, then turn them on again with /startline config scheduled_events:on."
)


def race_marker(race_id: int) -> str:
    """The race's mark in its event's description: how an event made before a crash is found again."""
    return f"[startline-race:{race_id}]"


def dedupe_key(race_id: int, step: str) -> str:
    return f"sevent:race:{race_id}:{step}"


def wanted_status(event_name: str, race_started: bool) -> int:
    """The event status a race step asks for; a race cancelled after it started ends as completed (Discord lets an
    active event only complete)."""
    if event_name == "live_race_started":
        return ACTIVE
    if event_name == "live_race_finished":
        return COMPLETED
    if event_name == "live_race_cancelled":
        return COMPLETED if race_started else CANCELLED
    return SCHEDULED


def mirrored(guild: GuildSettings | None, tournament: Tournament) -> bool:
    """Whether the tournament's races are mirrored: the tournament's own switch, else the guild's; never while the
    guild is blocked (the bot lacked Manage Events)."""
    if guild is not None and guild.scheduled_events_blocked_at is not None:
        return False
    guild_on = guild is None or guild.scheduled_events is not False  # an unsaved row holds None: the default
    return tournament.scheduled_events if tournament.scheduled_events is not None else guild_on


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def event_state(
    race: LiveRace,
    tournament: Tournament,
    pool: Pool,
    *,
    status: int,
    length_minutes: int,
    time_limit_hours: int | None,
) -> dict[str, Any]:
    """The event as the race is now, in Discord's field names (times as ISO 8601, UTC)."""
    start: datetime = race.scheduled_at
    length = timedelta(minutes=length_minutes)
    if time_limit_hours:
        length = min(length, timedelta(hours=time_limit_hours))
    location = race.racetime_url or f"{tournament.name} — {pool.name}"
    description = f"{tournament.name} — {pool.name}. Live race #{race.id}, run by Startline."
    if race.racetime_url:
        description += f"\nRoom: {race.racetime_url}"
    return {
        "race_id": race.id,
        "status": status,
        "name": _clip(race.title or f"{tournament.name} live race", NAME_MAX),
        "description": _clip(description, DESCRIPTION_MAX - len(race_marker(race.id)) - 1)
        + f"\n{race_marker(race.id)}",
        "location": _clip(location, LOCATION_MAX),
        "scheduled_start_time": start.isoformat(),
        "scheduled_end_time": (start + length).isoformat(),
    }


async def queue_sync(
    session: AsyncSession,
    race: LiveRace,
    tournament: Tournament,
    pool: Pool,
    guild: GuildSettings | None,
    *,
    event_name: str,
    step: str,
    length_minutes: int,
    now: datetime,
    rows: list[dict[str, Any]] | None = None,
) -> bool:
    """Queue, in the caller's transaction, the outbox row that brings the race's event to the race as it is now:
    one per race and `step` (its dedupe key), so queuing a step twice adds nothing. False when the race is not
    mirrored (switched off, or the guild is blocked). `rows`: the row is added to this list instead, for the caller
    to insert with the rows of other races (`insert_rows`)."""
    if not mirrored(guild, tournament):
        return False
    room = await resolve_for_race(session, race, tournament, guild)
    state = event_state(
        race,
        tournament,
        pool,
        status=wanted_status(event_name, race.started_at is not None),
        length_minutes=length_minutes,
        time_limit_hours=room.get("time_limit"),
    )
    row = _row(race.guild_id, race.id, state, step, now)
    if rows is not None:
        rows.append(row)
    else:
        await insert_rows(session, [row])
    return True


async def queue_sync_for_race(
    session: AsyncSession, race: LiveRace, *, step: str, length_minutes: int, now: datetime
) -> bool:
    """`queue_sync` for a change that is no race step (an edit of the title or the room settings)."""
    tournament = await session.get(Tournament, race.tournament_id)
    pool = await session.get(Pool, race.pool_id)
    if tournament is None or pool is None:
        return False
    guild = await session.get(GuildSettings, race.guild_id)
    return await queue_sync(
        session,
        race,
        tournament,
        pool,
        guild,
        event_name="live_race_edited",
        step=step,
        length_minutes=length_minutes,
        now=now,
    )


async def queue_removal(session: AsyncSession, race: LiveRace, now: datetime) -> bool:
    """A race being deleted: its event (made, or on its way) is cancelled. Queued whatever the switch says, as the
    event exists; nothing when the race never had one queued."""
    had = await session.scalar(
        select(Notification.id)
        .where(Notification.live_race_id == race.id, Notification.kind == NotificationKind.SCHEDULED_EVENT)
        .limit(1)
    )
    made = await session.scalar(select(RaceScheduledEvent.id).where(RaceScheduledEvent.live_race_id == race.id))
    if had is None and made is None:
        return False
    state = {"race_id": race.id, "status": CANCELLED, "removed": True}
    await _insert(session, race.guild_id, race.id, state, "deleted", now)
    return True


async def _insert(
    session: AsyncSession, guild_id: int, race_id: int, state: dict[str, Any], step: str, now: datetime
) -> None:
    await insert_rows(session, [_row(guild_id, race_id, state, step, now)])


def _row(guild_id: int, race_id: int, state: dict[str, Any], step: str, now: datetime) -> dict[str, Any]:
    return {
        "kind": NotificationKind.SCHEDULED_EVENT,
        "event_type": None,
        "guild_id": guild_id,
        "player_id": None,
        "channel_id": None,
        "live_race_id": race_id,
        "payload": {"v": PAYLOAD_VERSION, "event": step.split(":", 1)[0], "scheduled_event": state},
        "dedupe_key": dedupe_key(race_id, step),
        "status": NotificationStatus.PENDING,
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }


async def insert_rows(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Scheduled-event rows (`queue_sync`'s), in one INSERT; a row whose dedupe key is queued already adds nothing."""
    if rows:
        table = Notification.__table__
        await session.execute(
            conflict_ignoring_insert(session, table).on_conflict_do_nothing(index_elements=["dedupe_key"]), rows
        )


async def set_guild_switch(session: AsyncSession, guild_id: int, enabled: bool) -> GuildSettings:
    """Turn the guild's mirroring on or off; turning it on lifts a block (the moderators fixed the permission)."""
    guild = await session.get(GuildSettings, guild_id)
    if guild is None:
        guild = GuildSettings(guild_id=guild_id)
        session.add(guild)
    guild.scheduled_events = enabled
    if enabled:
        guild.scheduled_events_blocked_at = None
    await session.flush()
    return guild


async def set_tournament_switch(
    session: AsyncSession, guild_id: int, tournament_id: int, enabled: bool | None
) -> Tournament:
    """A tournament's own switch (None: follow the guild's)."""
    tournament = await session.scalar(
        select(Tournament).where(Tournament.id == tournament_id, Tournament.guild_id == guild_id)
    )
    if tournament is None:
        raise NotFound(f"Tournament {tournament_id} not found")
    tournament.scheduled_events = enabled
    await session.flush()
    return tournament


def describe_state(guild: GuildSettings | None) -> str:
    """One line for /startline config."""
    if guild is not None and guild.scheduled_events_blocked_at is not None:
        return BLOCKED_LINE
    if guild is not None and guild.scheduled_events is False:
        return "Off: races are not mirrored as Discord Scheduled Events."
    return "On: each live race is mirrored as a Discord Scheduled Event (needs Manage Events)."
