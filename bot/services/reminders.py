"""Reminders before a race's start at offsets the player chose, RSVPs ("I'll race") and Interested on a race's
Discord Scheduled Event.

A player picks up to `MAX_OFFSETS` offsets from `ALLOWED_OFFSETS` per guild (`reminder_preferences`); the guild may
set a default (`guild_settings.default_reminder_offsets`, the same rules: `parse_offsets`) for players who chose
none. The `reminders` job (`queue_due`) queues, for each scheduled race starting within the largest offset, one DM
per (race, start time, player, offset) through the notification outbox with the dedupe key
`reminder:race:<id>:at:<start>:offset:<minutes>:player:<id>`, so two processes (or a restart) queue it once. Only
the latest offset that is due is queued: after an outage a player gets one reminder, not three.

Who gets them:
- players who RSVP'd the race, or pressed Interested on its scheduled event (`race_interests`), even without any
  type preference and even with their general reminders off: their offsets, else the guild's default, else
  `DEFAULT_RSVP_OFFSETS`; a member who left the guild, or turned its DMs off, gets none (not queued: the
  dispatcher's skip is only for who leaves after the row was queued);
- players who subscribe to the scheduled notice (415) in the guild, at their offsets, else at the guild's default
  (a player who chose "none" gets no general reminder).

A reschedule changes the start, so the keys change and the reminders are armed again for the new time; the unsent
rows for the old time are marked `expired`. A race that is no longer scheduled gets none (and rows already queued
expire by the reminder's staleness rule, `LIVE_RACE_REMINDER` in `db.models`); a deleted race takes its RSVPs and
interest with it.

Interest comes from the gateway (`set_interest`, the event mapped to its race through `race_scheduled_events` of the
same guild, under the race's lock) and, after a restart or an outage, from the event's user list
(`replace_interest`, which never undoes a gateway change made after the list was read: a withdrawal is kept as a
row with `interested` false). A member leaving the guild withdraws their interest in its races (`member_left`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import SYSTEM_CLOCK
from bot.errors import NotFound, ValidationFailed
from bot.services.common import conflict_ignoring_insert
from bot.services.eligibility import race_eligibility
from bot.services.notification_outbox import (
    PAYLOAD_VERSION,
    insert_ignoring_duplicates,
    interested_player_ids,
    rsvped_player_ids,
    subscribed_player_ids,
)
from bot.services.notifications import NOT_ON_ROSTER
from bot.services.players import check_discord_id, ensure_member, roster_entry_of, roster_name
from bot.services.processes import Leases
from bot.services.race_locks import lock_race
from db.models import (
    LIVE_RACE_REMINDER,
    EventType,
    GuildPlayer,
    GuildSettings,
    LiveRace,
    Notification,
    NotificationKind,
    NotificationStatus,
    Player,
    Pool,
    RaceInterest,
    RaceRsvp,
    RaceScheduledEvent,
    RaceStatus,
    ReminderPreference,
    Tournament,
)
from db.session import Database

log = logging.getLogger(__name__)

# Minutes before the start a reminder may be asked for: 10 min, 30 min, 1 h, 3 h, 12 h, 24 h.
ALLOWED_OFFSETS: tuple[int, ...] = (10, 30, 60, 180, 720, 1440)
MAX_OFFSETS = 3
DEFAULT_RSVP_OFFSETS: tuple[int, ...] = (60,)
LEASE_NAME = "reminders"
_UNITS = {"m": 1, "min": 1, "h": 60, "d": 1440}
_OFFSET = re.compile(r"^\s*(\d{1,4})\s*(m|min|h|d)?\s*$", re.IGNORECASE)


def describe_offset(minutes: int) -> str:
    if minutes % 1440 == 0:
        return f"{minutes // 1440 * 24} h"
    if minutes % 60 == 0:
        return f"{minutes // 60} h"
    return f"{minutes} min"


def allowed_text() -> str:
    return ", ".join(describe_offset(m) for m in ALLOWED_OFFSETS)


def parse_offsets(value: str | Iterable[int] | None) -> tuple[int, ...]:
    """`"24h, 1h, 10m"` or minutes (`[1440, 60, 10]`) → sorted unique minutes, each one of `ALLOWED_OFFSETS`;
    `""`, `"none"` or `[]` → no reminders."""
    if value is None:
        return ()
    if isinstance(value, str):
        parts = [p for p in re.split(r"[,\s]+(?=\d)|,", value.strip()) if p.strip()]
        if len(parts) == 1 and parts[0].strip().lower() in ("none", "off"):
            return ()
        minutes: list[int] = []
        for part in parts:
            match = _OFFSET.match(part)
            if match is None:
                raise ValidationFailed(
                    f"{part.strip()!r} is not a reminder offset: write it like 24h, 1h or 10m", field="offsets"
                )
            minutes.append(int(match.group(1)) * _UNITS[(match.group(2) or "m").lower()])
    else:
        minutes = []
        for item in value:
            if isinstance(item, bool) or not isinstance(item, int):
                raise ValidationFailed("reminder offsets are whole minutes", field="offsets")
            minutes.append(item)
    result = tuple(sorted(set(minutes), reverse=True))
    bad = [m for m in result if m not in ALLOWED_OFFSETS]
    if bad:
        raise ValidationFailed(
            f"{describe_offset(bad[0])} before the start is not offered: choose from {allowed_text()}",
            field="offsets",
        )
    if len(result) > MAX_OFFSETS:
        raise ValidationFailed(f"at most {MAX_OFFSETS} reminders per race", field="offsets")
    return result


def _stored(offsets: str | None) -> tuple[int, ...]:
    return tuple(int(v) for v in (offsets or "").split(",") if v)


def stored_offsets(offsets: Iterable[int]) -> str:
    """Offsets as they are stored: minutes, comma-separated, largest first ("" for none)."""
    return ",".join(str(m) for m in offsets)


def check_guild_default(value: str | Iterable[int] | None) -> str | None:
    """A guild's default offsets, validated like a player's (`parse_offsets`) → the stored value; none (`""`,
    `"none"`, `[]`, None) → None: no default."""
    chosen = parse_offsets(value)
    return stored_offsets(chosen) if chosen else None


def guild_default_offsets(guild: GuildSettings | None) -> tuple[int, ...]:
    """The guild's default offsets, largest first (() when it set none)."""
    return _stored(guild.default_reminder_offsets) if guild is not None else ()


@dataclass(frozen=True)
class RsvpOutcome:
    """What an RSVP did, for the adapter's answer (`/liverace rsvp` and the announcement's buttons say the same)."""

    race: LiveRace
    going: bool
    changed: bool  # False: it was so already (pressing twice changes nothing)
    offsets: tuple[int, ...]  # when the player will be reminded (their offsets in the guild, else the RSVP default)
    ineligible_reason: str | None  # why the player may not race it yet (going only), None when they may


def reminder_key_prefix(race_id: int) -> str:
    return f"reminder:race:{race_id}:at:"


def reminder_key(race_id: int, start: datetime, offset: int, player_id: int) -> str:
    return f"{reminder_key_prefix(race_id)}{int(start.timestamp())}:offset:{offset}:player:{player_id}"


class ReminderService:
    def __init__(
        self,
        db: Database,
        *,
        leases: Leases | None = None,
        clock: Callable[[], datetime] = SYSTEM_CLOCK,
        interval_seconds: float = 30.0,
    ) -> None:
        self.db = db
        self.leases = leases
        self.clock = clock
        self.interval_seconds = interval_seconds

    # ---- preferences -----------------------------------------------------------------------------------
    async def offsets(self, discord_user_id: int, guild_id: int) -> tuple[int, ...]:
        """The offsets the player chose in this guild, largest first (() if none)."""
        check_discord_id(discord_user_id)
        async with self.db.read() as session:
            stored = await session.scalar(
                select(ReminderPreference.offsets)
                .join(Player, Player.id == ReminderPreference.player_id)
                .where(Player.discord_user_id == discord_user_id, ReminderPreference.guild_id == guild_id)
            )
        return _stored(stored or "")

    async def set_offsets(
        self,
        discord_user_id: int,
        guild_id: int,
        offsets: str | Iterable[int] | None,
        *,
        display_name: str | None = None,
    ) -> tuple[int, ...]:
        """Replace the player's offsets in this guild (validated by `parse_offsets`); returns them."""
        check_discord_id(discord_user_id)
        chosen = parse_offsets(offsets)
        async with self.db.transaction() as session:
            player = await ensure_member(session, guild_id, discord_user_id, display_name)
            row = await session.scalar(
                select(ReminderPreference).where(
                    ReminderPreference.player_id == player.id, ReminderPreference.guild_id == guild_id
                )
            )
            if row is None:
                row = ReminderPreference(guild_id=guild_id, player_id=player.id)
                session.add(row)
            row.offsets = stored_offsets(chosen)
            row.updated_at = self.clock()
        return chosen

    async def mute_general(self, discord_user_id: int, guild_id: int) -> tuple[bool, tuple[int, ...] | None]:
        """A reminder DM's "Mute this kind": the guild's general reminders off for the player (their own choice
        becomes none, which outweighs the guild's default); races they RSVP'd or are Interested in still remind
        them. Returns whether it changed and what the undo restores: their own offsets, or None when they had
        chosen none (the guild's default applied). NotFound, nothing made, when they are not on the roster."""
        async with self.db.transaction() as session:
            row, player_id = await self._general_choice(session, discord_user_id, guild_id)
            if row is not None and not row.offsets:
                return False, ()
            previous = _stored(row.offsets) if row is not None else None
            if row is None:
                row = ReminderPreference(guild_id=guild_id, player_id=player_id)
                session.add(row)
            row.offsets = ""
            row.updated_at = self.clock()
            return True, previous

    async def restore_general(self, discord_user_id: int, guild_id: int, previous: tuple[int, ...] | None) -> bool:
        """The undo of `mute_general`: the player's own offsets back (validated), or with None no choice of their
        own (the guild's default applies again). True when something changed."""
        chosen = parse_offsets(previous) if previous is not None else None
        async with self.db.transaction() as session:
            row, player_id = await self._general_choice(session, discord_user_id, guild_id)
            if chosen is None:
                if row is None:
                    return False
                await session.delete(row)
                return True
            if row is not None and row.offsets == stored_offsets(chosen):
                return False
            if row is None:
                row = ReminderPreference(guild_id=guild_id, player_id=player_id)
                session.add(row)
            row.offsets = stored_offsets(chosen)
            row.updated_at = self.clock()
            return True

    @staticmethod
    async def _general_choice(
        session: AsyncSession, discord_user_id: int, guild_id: int
    ) -> tuple[ReminderPreference | None, int]:
        """The member's reminder choice in the guild (None: never made) and their player id; NotFound when they are
        not on the guild's roster (a DM's button makes nobody a member)."""
        check_discord_id(discord_user_id)
        player_id = await session.scalar(
            select(Player.id)
            .join(GuildPlayer, roster_entry_of(guild_id))
            .where(Player.discord_user_id == discord_user_id, GuildPlayer.left_at.is_(None))
        )
        if player_id is None:
            raise NotFound(NOT_ON_ROSTER, field="guild_id")
        row = await session.scalar(
            select(ReminderPreference).where(
                ReminderPreference.player_id == player_id, ReminderPreference.guild_id == guild_id
            )
        )
        return row, player_id

    async def personal_offsets(self, discord_user_id: int, guild_id: int) -> tuple[int, ...]:
        """When a race the player RSVP'd (or is Interested in) reminds them: their offsets, else the guild's
        default, else `DEFAULT_RSVP_OFFSETS` (the job's rule)."""
        own = await self.offsets(discord_user_id, guild_id)
        return own or await self.guild_default(guild_id) or DEFAULT_RSVP_OFFSETS

    async def guild_default(self, guild_id: int) -> tuple[int, ...]:
        """The guild's default offsets for players who chose none, largest first (() if it set none)."""
        async with self.db.read() as session:
            return guild_default_offsets(await session.get(GuildSettings, guild_id))

    # ---- RSVPs -----------------------------------------------------------------------------------------
    async def set_rsvp(
        self, guild_id: int, race_id: int, discord_user_id: int, going: bool, *, display_name: str | None = None
    ) -> bool:
        """RSVP (or take it back) for a race of this guild; True when something changed. A race of another guild,
        or one that was deleted, is NotFound; one that is no longer scheduled refuses."""
        check_discord_id(discord_user_id)
        async with self.db.transaction() as session:
            race = await lock_race(session, race_id, guild_id=guild_id)  # a change to a live race: under its lock
            if race is None:
                raise NotFound(f"live race {race_id} not found (it may have been deleted)", field="race_id")
            player = await ensure_member(session, guild_id, discord_user_id, display_name)
            existing = await session.scalar(
                select(RaceRsvp).where(RaceRsvp.live_race_id == race_id, RaceRsvp.player_id == player.id)
            )
            if going:
                if existing is not None:
                    return False
                if race.status is not RaceStatus.SCHEDULED:
                    raise ValidationFailed(f"live race {race_id} is already {race.status.value}", field="race_id")
                session.add(RaceRsvp(guild_id=guild_id, live_race_id=race_id, player_id=player.id))
                return True
            if existing is None:
                return False
            await session.execute(delete(RaceRsvp).where(RaceRsvp.id == existing.id))
            return True

    async def rsvp(
        self, guild_id: int, race_id: int, discord_user_id: int, going: bool, *, display_name: str | None = None
    ) -> RsvpOutcome:
        """`set_rsvp`, then what the answer needs: the race, when the player will be reminded, and (going) why they
        may not race it yet, so a player who cannot race it hears why at once."""
        changed = await self.set_rsvp(guild_id, race_id, discord_user_id, going, display_name=display_name)
        async with self.db.read() as session:
            race = await session.get(LiveRace, race_id)
            if race is None or race.guild_id != guild_id:  # deleted since, a moment ago
                raise NotFound(f"live race {race_id} not found (it may have been deleted)", field="race_id")
            player_id, stored = (
                await session.execute(
                    select(Player.id, ReminderPreference.offsets)
                    .outerjoin(
                        ReminderPreference,
                        (ReminderPreference.player_id == Player.id) & (ReminderPreference.guild_id == guild_id),
                    )
                    .where(Player.discord_user_id == discord_user_id)
                )
            ).one()
            reason = None
            if going:
                tournament = await session.get(Tournament, race.tournament_id)
                pool = await session.get(Pool, race.pool_id)
                report = await race_eligibility(session, race, tournament, pool, player_ids=[player_id])
                reason = report.reason_for(player_id)
            default = guild_default_offsets(await session.get(GuildSettings, guild_id))
        # The job's rule (`personal_offsets`): the player's own offsets, else the guild's default, else the RSVP one.
        return RsvpOutcome(race, going, changed, _stored(stored) or default or DEFAULT_RSVP_OFFSETS, reason)

    async def rsvps(self, guild_id: int, race_id: int) -> list[tuple[int, str | None]]:
        """(Discord user id, display name) of who RSVP'd, oldest first."""
        return await self._who(guild_id, race_id, RaceRsvp, RaceRsvp.created_at)

    # ---- Interested on the race's Discord Scheduled Event -----------------------------------------------------
    async def interested(self, guild_id: int, race_id: int) -> list[tuple[int, str | None]]:
        """(Discord user id, display name) of who pressed Interested on the race's scheduled event, oldest first.
        A race of another guild, or a deleted one, is NotFound."""
        return await self._who(
            guild_id, race_id, RaceInterest, RaceInterest.updated_at, RaceInterest.interested.is_(True)
        )

    async def _who(
        self, guild_id: int, race_id: int, table: type[RaceRsvp | RaceInterest], since: Any, *conditions: Any
    ) -> list[tuple[int, str | None]]:
        """(Discord user id, display name) of the players in `table` (RSVPs or interest) for a race of this guild,
        ordered by `since`; a race of another guild, or a deleted one, is NotFound."""
        async with self.db.read() as session:
            race = await session.get(LiveRace, race_id)
            if race is None or race.guild_id != guild_id:
                raise NotFound(f"live race {race_id} not found", field="race_id")
            rows = await session.execute(
                select(Player.discord_user_id, roster_name())
                .join(table, table.player_id == Player.id)
                .outerjoin(GuildPlayer, roster_entry_of(guild_id))
                .where(table.live_race_id == race_id, table.guild_id == guild_id, *conditions)
                .order_by(since, table.id)
            )
            return [(int(uid), name) for uid, name in rows.all()]

    async def set_interest(self, guild_id: int, event_id: int, discord_user_id: int, interested: bool) -> bool:
        """A user pressed (or took back) Interested on a scheduled event of this guild (the gateway's
        GUILD_SCHEDULED_EVENT_USER_ADD / _REMOVE). The event is mapped to its race through `race_scheduled_events`
        of this guild; an unknown event, one of another guild, or a race deleted meanwhile is ignored (False,
        nothing written). Recorded under the race's lock, so a deletion or a reschedule running at the same time
        either comes first (the interest is ignored, or kept for the new start) or takes the row with it. True
        when something changed."""
        check_discord_id(discord_user_id)
        async with self.db.transaction() as session:
            race = await self._race_of_event(session, guild_id, event_id)
            if race is None:
                return False
            [player_id] = (await _player_ids(session, [discord_user_id])).values()
            return await self._write_interest(session, race, {player_id: interested}, self.clock(), touch=True) > 0

    async def member_left(self, guild_id: int, discord_user_id: int) -> int:
        """The member left the guild (or was banned): their interest in its races is withdrawn. Returns how many."""
        async with self.db.transaction() as session:
            player_id = await session.scalar(select(Player.id).where(Player.discord_user_id == discord_user_id))
            if player_id is None:
                return 0
            result = await session.execute(
                update(RaceInterest)
                .where(
                    RaceInterest.guild_id == guild_id,
                    RaceInterest.player_id == player_id,
                    RaceInterest.interested.is_(True),
                )
                .values(interested=False, updated_at=self.clock())
                .execution_options(synchronize_session=False)
            )
            return result.rowcount or 0

    async def interest_resync_targets(self, limit: int) -> list[tuple[int, int]]:
        """(guild id, event id) of the upcoming races' scheduled events (still scheduled, in Discord too), soonest
        first, at most `limit`: whose user lists are read again after a restart or an outage."""
        async with self.db.read() as session:
            rows = await session.execute(
                select(RaceScheduledEvent.guild_id, RaceScheduledEvent.event_id)
                .join(LiveRace, LiveRace.id == RaceScheduledEvent.live_race_id)
                .where(
                    LiveRace.guild_id == RaceScheduledEvent.guild_id,
                    LiveRace.status.in_((RaceStatus.SCHEDULED, RaceStatus.ROOM_OPEN)),
                    LiveRace.scheduled_at > self.clock(),
                    RaceScheduledEvent.status == 1,
                )
                .order_by(LiveRace.scheduled_at, LiveRace.id)
                .limit(limit)
            )
            return [(int(guild_id), int(event_id)) for guild_id, event_id in rows.all()]

    async def replace_interest(
        self,
        guild_id: int,
        event_id: int,
        discord_user_ids: Collection[int],
        *,
        read_at: datetime,
        complete: bool = True,
    ) -> int:
        """The event's user list, read from Discord from `read_at` on: who is in it is interested and, when the list
        is `complete`, who is not is not; except where the gateway said otherwise at or after `read_at` (that is
        newer than the list). Ignored like `set_interest` for an unknown event, another guild's, or a deleted race.
        Returns how many players' interest changed."""
        async with self.db.transaction() as session:
            race = await self._race_of_event(session, guild_id, event_id)
            if race is None:
                return 0
            listed = await _player_ids(session, [check_discord_id(uid) for uid in set(discord_user_ids)])
            current = dict(
                (
                    await session.execute(
                        select(RaceInterest.player_id, RaceInterest.updated_at).where(
                            RaceInterest.live_race_id == race.id
                        )
                    )
                ).all()
            )
            wanted = {pid: True for pid in listed.values()}
            if complete:
                wanted.update({pid: False for pid in current if pid not in wanted})
            wanted = {pid: value for pid, value in wanted.items() if pid not in current or current[pid] < read_at}
            return await self._write_interest(session, race, wanted, self.clock())

    @staticmethod
    async def _race_of_event(session: AsyncSession, guild_id: int, event_id: int) -> LiveRace | None:
        race_id = await session.scalar(
            select(RaceScheduledEvent.live_race_id).where(
                RaceScheduledEvent.guild_id == guild_id, RaceScheduledEvent.event_id == event_id
            )
        )
        if race_id is None:
            return None
        return await lock_race(session, race_id, guild_id=guild_id)

    @staticmethod
    async def _write_interest(
        session: AsyncSession, race: LiveRace, wanted: dict[int, bool], now: datetime, *, touch: bool = False
    ) -> int:
        """Bring the race's interest rows of these players to `wanted` (a False with no row leaves a tombstone, so a
        user list read before it cannot undo it); `touch` dates a row that already said so too (the gateway's word
        is newer than any list read before). Returns how many players' interest changed."""
        if not wanted:
            return 0
        rows = {
            row.player_id: row
            for row in (
                await session.scalars(
                    select(RaceInterest).where(
                        RaceInterest.live_race_id == race.id, RaceInterest.player_id.in_(list(wanted))
                    )
                )
            ).all()
        }
        changed = 0
        for player_id, interested in wanted.items():
            row = rows.get(player_id)
            if row is None:
                session.add(
                    RaceInterest(
                        guild_id=race.guild_id,
                        live_race_id=race.id,
                        player_id=player_id,
                        interested=interested,
                        updated_at=now,
                    )
                )
                changed += interested
            elif row.interested != interested or touch:
                changed += row.interested != interested
                row.interested = interested
                row.updated_at = now
        await session.flush()
        return changed

    # ---- the job ---------------------------------------------------------------------------------------
    async def run_job(self) -> int:
        """One cycle of the `reminders` job, under its lease (any process may run it; one does per cycle)."""
        if self.leases is not None and not await self.leases.take(LEASE_NAME, seconds=2 * self.interval_seconds):
            return 0
        return await self.queue_due()

    async def queue_due(self) -> int:
        """Queue the reminders that are due now; returns how many rows were offered (duplicates add nothing)."""
        now = self.clock()
        horizon = now + timedelta(minutes=max(ALLOWED_OFFSETS))
        offered = 0
        async with self.db.transaction() as session:
            races = (
                await session.execute(
                    select(LiveRace, Tournament.name, Pool.name)
                    .join(Tournament, Tournament.id == LiveRace.tournament_id)
                    .join(Pool, Pool.id == LiveRace.pool_id)
                    .where(
                        LiveRace.status == RaceStatus.SCHEDULED,
                        LiveRace.scheduled_at > now,
                        LiveRace.scheduled_at <= horizon,
                    )
                    .order_by(LiveRace.id)
                )
            ).all()
            for race, tournament_name, pool_name in races:
                await self._expire_old_start(session, race)
                rows = await self._rows_for(session, race, tournament_name, pool_name, now)
                await insert_ignoring_duplicates(session, rows)
                offered += len(rows)
        if offered:
            log.info("offered %d reminder(s)", offered)
        return offered

    async def _rows_for(
        self, session: AsyncSession, race: LiveRace, tournament: str, pool: str, now: datetime
    ) -> list[dict]:
        # Members who left the guild, or turned its DMs off ("No more DMs" outweighs an RSVP or Interested), are
        # left out here, as in the general audience (`subscribed_player_ids`): the dispatcher's own check only
        # catches someone who leaves after the row was queued.
        rsvp = await rsvped_player_ids(session, race.guild_id, race.id)
        interested = await interested_player_ids(session, race.guild_id, race.id)
        personal = rsvp | interested
        default = guild_default_offsets(await session.get(GuildSettings, race.guild_id))
        prefs = {
            pid: _stored(offsets)
            for pid, offsets in (
                await session.execute(
                    select(ReminderPreference.player_id, ReminderPreference.offsets).where(
                        ReminderPreference.guild_id == race.guild_id
                    )
                )
            ).all()
        }
        general = await self._general_audience(session, race.guild_id, prefs, default)
        snapshot = {
            "id": race.id,
            "title": race.title,
            "tournament": tournament,
            "pool": pool,
            "scheduled_at": int(race.scheduled_at.timestamp()),
        }
        rows = []
        for player_id in sorted(personal | general):
            if player_id in personal:
                offsets = prefs.get(player_id) or default or DEFAULT_RSVP_OFFSETS
            else:
                offsets = prefs.get(player_id, default)
            due = [m for m in offsets if race.scheduled_at - timedelta(minutes=m) <= now]
            if not due:
                continue
            offset = min(due)  # only the latest due one: earlier ones that were missed are not worth sending now
            payload = {
                "v": PAYLOAD_VERSION,
                "event": LIVE_RACE_REMINDER.name,
                "occurred_at": int(now.timestamp()),
                "race": snapshot,
                "reminder": {
                    "offset_minutes": offset,
                    "rsvp": player_id in rsvp,
                    "interested": player_id in interested,
                },
            }
            rows.append(
                {
                    "kind": NotificationKind.DM,
                    "event_type": None,
                    "guild_id": race.guild_id,
                    "player_id": player_id,
                    "channel_id": None,
                    "live_race_id": race.id,
                    "payload": payload,
                    "dedupe_key": reminder_key(race.id, race.scheduled_at, offset, player_id),
                    "status": NotificationStatus.PENDING,
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                }
            )
        return rows

    @staticmethod
    async def _general_audience(
        session: AsyncSession, guild_id: int, prefs: dict[int, tuple[int, ...]], default: tuple[int, ...]
    ) -> set[int]:
        """Players who get the guild's races' reminders in general: they get the scheduled notice (415) and have
        offsets, their own or (having chosen none) the guild's default."""
        scheduled = EventType.LIVE_RACE_SCHEDULED
        chosen = {pid for pid, offsets in prefs.items() if offsets}
        if not default:
            return await subscribed_player_ids(session, guild_id, scheduled, chosen) if chosen else set()
        if scheduled.spec.default_on:  # every roster member is a candidate then
            candidates = set(
                (await session.scalars(select(GuildPlayer.player_id).where(GuildPlayer.guild_id == guild_id))).all()
            )
            subscribed = await subscribed_player_ids(session, guild_id, scheduled, candidates)
        else:
            subscribed = await subscribed_player_ids(session, guild_id, scheduled)
        return {pid for pid in subscribed if pid not in prefs or prefs[pid]}

    @staticmethod
    async def _expire_old_start(session: AsyncSession, race: LiveRace) -> None:
        """Unsent reminders for an earlier start of this race (it was rescheduled) expire, never claimed ones."""
        current = f"{reminder_key_prefix(race.id)}{int(race.scheduled_at.timestamp())}:"
        await session.execute(
            update(Notification)
            .where(
                Notification.live_race_id == race.id,
                Notification.dedupe_key.like(f"{reminder_key_prefix(race.id)}%"),
                Notification.dedupe_key.not_like(f"{current}%"),
                Notification.status == NotificationStatus.PENDING,
                Notification.claim_id.is_(None),
            )
            .values(status=NotificationStatus.EXPIRED, error="Expired unsent: the race was rescheduled")
        )


async def _player_ids(session: AsyncSession, discord_user_ids: list[int]) -> dict[int, int]:
    """players.id of each Discord user, making the (global) player of one never seen: whoever pressed Interested
    can be sent a DM. No guild roster entry is made (pressing Interested makes no one a tournament player)."""
    if not discord_user_ids:
        return {}
    query = select(Player.discord_user_id, Player.id).where(Player.discord_user_id.in_(discord_user_ids))
    found = dict((await session.execute(query)).all())
    missing = [uid for uid in discord_user_ids if uid not in found]
    if missing:
        insert = conflict_ignoring_insert(session, Player.__table__).on_conflict_do_nothing(
            index_elements=["discord_user_id"]
        )
        await session.execute(insert, [{"discord_user_id": uid, "dm_blocked": False} for uid in missing])
        found = dict((await session.execute(query)).all())
    return {int(uid): int(pid) for uid, pid in found.items()}
