"""Notifications: players' opt-in preferences, the outbox writer, the delivery log and resending.

Preferences are per player, per event type (`EventType`, by name or code) and per guild, or for every guild
(guild NULL); a guild row overrides the all-guilds row, and with no row at all the type's default applies
(`EventSpec.default_on`: off, opt-in, for every type so far). The outbox writer
(`bot/services/notification_outbox.py`) is subscribed to the EventBus by `attach`, so notifications commit together
with the change that caused them; the dispatcher (`bot/notifications/dispatcher.py`) delivers them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot import metrics
from bot.actors import Actor
from bot.clock import SYSTEM_CLOCK
from bot.errors import NotFound, ValidationFailed
from bot.events import EventBus
from bot.services import audit
from bot.services.common import Keyset, Page
from bot.services.notification_outbox import OutboxWriter
from bot.services.players import check_discord_id, ensure_member, roster_entry_of
from bot.settings import Settings
from db.models import (
    EVENT_CODES,
    EventType,
    GuildPlayer,
    LiveRace,
    Notification,
    NotificationKind,
    NotificationStatus,
    NotificationSubscription,
    Player,
    spec_of,
)
from db.session import Database

EVENT_TYPES_IN_CODE_ORDER: tuple[EventType, ...] = tuple(sorted(EventType, key=lambda e: e.code))
_CODES_TO_TYPES = {code: event_type for event_type, code in EVENT_CODES.items()}


@dataclass(frozen=True)
class ResendReport:
    requeued: int  # failed notifications queued again
    expired: int  # failed notifications that had gone stale: `expired`, not resent


@dataclass(frozen=True)
class PreferenceView:
    event_type: EventType
    code: int
    label: str
    guild_setting: bool | None
    global_setting: bool | None
    effective: bool


def parse_event_type(value: EventType | str | int) -> EventType:
    """An event type from its enum, its name (`live_race_started`) or its code (417)."""
    if isinstance(value, EventType):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value in _CODES_TO_TYPES:
        return _CODES_TO_TYPES[value]
    if isinstance(value, str):
        text = value.strip().lower()
        if text.isdigit() and int(text) in _CODES_TO_TYPES:
            return _CODES_TO_TYPES[int(text)]
        for event_type in EventType:
            if text == event_type.value:
                return event_type
    choices = ", ".join(f"{e.code} ({e.value})" for e in EVENT_TYPES_IN_CODE_ORDER)
    raise ValidationFailed(f"unknown notification type {value!r}; choose one of {choices}", field="event_type")


def parse_status(value: str | NotificationStatus) -> NotificationStatus:
    try:
        return NotificationStatus(value)
    except ValueError:
        choices = ", ".join(s.value for s in NotificationStatus)
        raise ValidationFailed(f"unknown status {value!r}; choose one of {choices}", field="status") from None


def _check_guild(guild_id: int | None) -> int | None:
    return None if guild_id is None else check_discord_id(guild_id, "guild_id")


def _set_subscription(
    session: AsyncSession,
    row: NotificationSubscription | None,
    player_id: int,
    event_type: EventType,
    guild_id: int | None,
    enabled: bool,
) -> None:
    """A player's choice for one type (in one guild, or everywhere with None): the existing row, or a new one."""
    if row is None:
        session.add(
            NotificationSubscription(player_id=player_id, event_type=event_type, guild_id=guild_id, active=enabled)
        )
    else:
        row.active = enabled


def _check_enabled(enabled: bool) -> bool:
    if not isinstance(enabled, bool):
        raise ValidationFailed("enabled must be true or false", field="enabled")
    return enabled


def build_views(rows: Iterable[tuple[EventType, int | None, bool]], guild_id: int | None) -> list[PreferenceView]:
    guild_settings: dict[EventType, bool] = {}
    global_settings: dict[EventType, bool] = {}
    for event_type, row_guild, active in rows:
        if row_guild is None:
            global_settings[event_type] = active
        elif row_guild == guild_id:
            guild_settings[event_type] = active
    views = []
    for event_type in EVENT_TYPES_IN_CODE_ORDER:
        guild_setting = guild_settings.get(event_type)
        global_setting = global_settings.get(event_type)
        if guild_setting is not None:
            effective = guild_setting
        else:
            effective = global_setting if global_setting is not None else event_type.spec.default_on
        views.append(
            PreferenceView(event_type, event_type.code, event_type.spec.label, guild_setting, global_setting, effective)
        )
    return views


@dataclass(frozen=True)
class GuildDmChange:
    """What a DM's button changed for one guild: a type (`event_type`) or every DM (None); `changed` is False when it
    was so already (a second press)."""

    guild_id: int
    event_type: EventType | None
    enabled: bool
    changed: bool


NOT_ON_ROSTER = "you get no DMs from that server: Startline has no record of you there (or you left it)"


async def race_in_guild_or_404(session: AsyncSession, guild_id: int, race_id: int) -> LiveRace:
    race = await session.get(LiveRace, race_id)
    if race is None or race.guild_id != guild_id:
        raise NotFound(f"live race {race_id} not found", field="race_id")
    return race


class NotificationService:
    def __init__(self, db: Database, settings: Settings, *, clock: Callable[[], datetime] = SYSTEM_CLOCK) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        self.outbox = OutboxWriter(settings, clock=clock)

    def attach(self, events: EventBus) -> None:
        """Write outbox rows for every live race event, inside the publisher's transaction."""
        events.subscribe(self.outbox)

    # ---- preferences ---------------------------------------------------------------------------------
    async def preferences(self, discord_user_id: int, guild_id: int) -> list[PreferenceView]:
        """Every type's preference in code order, as it applies in `guild_id`."""
        check_discord_id(discord_user_id)
        async with self.db.read() as session:
            rows = await self._subscription_rows(session, discord_user_id, guild_id)
        return build_views(rows, guild_id)

    async def set_preference(
        self,
        discord_user_id: int,
        event_type: EventType,
        enabled: bool,
        *,
        guild_id: int | None,
        actor: Actor,
        display_name: str | None = None,
    ) -> list[PreferenceView]:
        """Turn one event type on or off in one guild, or in every guild (`guild_id=None`)."""
        return await self._set(discord_user_id, [parse_event_type(event_type)], enabled, guild_id, actor, display_name)

    async def set_all(
        self,
        discord_user_id: int,
        enabled: bool,
        *,
        guild_id: int | None,
        actor: Actor,
        display_name: str | None = None,
    ) -> list[PreferenceView]:
        """Turn every notification type on or off for a player (in `guild_id`, or everywhere with None)."""
        return await self._set(discord_user_id, list(EVENT_TYPES_IN_CODE_ORDER), enabled, guild_id, actor, display_name)

    async def set_type_in_guild(
        self, discord_user_id: int, guild_id: int, event_code: int | str, enabled: bool, *, actor: Actor
    ) -> GuildDmChange:
        """One notification type on or off for one guild, from a DM's button (which names the guild and the type's
        code): a guild the member is not on the roster of, or an unknown type, changes nothing. Turning a type on
        also turns the guild's DMs back on (`set_guild_dms`)."""
        check_discord_id(discord_user_id)
        guild_id = check_discord_id(guild_id, "guild_id")
        event_type = parse_event_type(event_code)
        enabled = _check_enabled(enabled)
        async with self.db.transaction() as session:
            player, entry = await self._roster_entry(session, discord_user_id, guild_id)
            row = await session.scalar(
                select(NotificationSubscription).where(
                    NotificationSubscription.player_id == player.id,
                    NotificationSubscription.guild_id == guild_id,
                    NotificationSubscription.event_type == event_type,
                )
            )
            changed = row is None or row.active != enabled
            _set_subscription(session, row, player.id, event_type, guild_id, enabled)
            if enabled:
                changed |= self._dms_back_on(player, entry)
            if changed:
                details = {"scope": "guild", "event_types": [event_type.value], "enabled": enabled, "via": "dm_button"}
                await self._audit(session, actor, player, guild_id, "notification.preferences_update", details)
        return GuildDmChange(guild_id, event_type, enabled, changed)

    async def set_guild_dms(self, discord_user_id: int, guild_id: int, enabled: bool, *, actor: Actor) -> GuildDmChange:
        """Every DM from one guild off ("No more DMs from …": the outbox queues none, the reminders and rows queued
        before are skipped when sent) or back on (the undo), whatever the per-type choices, which stay as they are.
        A guild the member is not on the roster of changes nothing."""
        check_discord_id(discord_user_id)
        guild_id = check_discord_id(guild_id, "guild_id")
        enabled = _check_enabled(enabled)
        async with self.db.transaction() as session:
            player, entry = await self._roster_entry(session, discord_user_id, guild_id)
            if enabled:
                changed = self._dms_back_on(player, entry)
            else:
                changed = entry.dms_off_at is None
                if changed:
                    entry.dms_off_at = self.clock()
            if changed:
                details = {"scope": "guild", "all_dms": enabled, "via": "dm_button"}
                await self._audit(session, actor, player, guild_id, "notification.guild_dms", details)
        return GuildDmChange(guild_id, None, enabled, changed)

    @staticmethod
    def _dms_back_on(player: Player, entry: GuildPlayer | None) -> bool:
        """Asking for DMs of a guild turns its "No more DMs" off, and is using the bot (try reaching them again)."""
        if player.dm_blocked:
            player.dm_blocked = False
            player.dm_blocked_at = None
        if entry is None or entry.dms_off_at is None:
            return False
        entry.dms_off_at = None
        return True

    @staticmethod
    async def _roster_entry(session: AsyncSession, discord_user_id: int, guild_id: int) -> tuple[Player, GuildPlayer]:
        """The member's roster entry in the guild, for a change a DM's button asks for; NotFound (nothing made) when
        they are not on it or left it."""
        found = (
            await session.execute(
                select(Player, GuildPlayer)
                .join(GuildPlayer, roster_entry_of(guild_id))
                .where(Player.discord_user_id == discord_user_id, GuildPlayer.left_at.is_(None))
                .with_for_update()
            )
        ).first()
        if found is None:
            raise NotFound(NOT_ON_ROSTER, field="guild_id")
        return found[0], found[1]

    async def guild_dms_off(self, discord_user_id: int, guild_id: int) -> bool:
        """Whether the member turned every DM of this guild off (/notify says so)."""
        async with self.db.read() as session:
            off = await session.scalar(
                select(GuildPlayer.dms_off_at)
                .join(Player, Player.id == GuildPlayer.player_id)
                .where(Player.discord_user_id == discord_user_id, GuildPlayer.guild_id == guild_id)
            )
        return off is not None

    async def clear_guild_preferences(
        self, discord_user_id: int, guild_id: int, *, actor: Actor
    ) -> list[PreferenceView]:
        """Drop a player's overrides for one guild, so their all-guilds choices apply there again."""
        check_discord_id(discord_user_id)
        guild_id = check_discord_id(guild_id, "guild_id")
        async with self.db.transaction() as session:
            player = await session.scalar(select(Player).where(Player.discord_user_id == discord_user_id))
            if player is not None:
                rows = await session.scalars(
                    select(NotificationSubscription).where(
                        NotificationSubscription.player_id == player.id, NotificationSubscription.guild_id == guild_id
                    )
                )
                for row in rows.all():
                    await session.delete(row)
                await self._audit(session, actor, player, guild_id, "notification.preferences_reset", {})
            views = await self._subscription_rows(session, discord_user_id, guild_id)
        return build_views(views, guild_id)

    async def _set(
        self,
        discord_user_id: int,
        event_types: list[EventType],
        enabled: bool,
        guild_id: int | None,
        actor: Actor,
        display_name: str | None,
    ) -> list[PreferenceView]:
        check_discord_id(discord_user_id)
        enabled = _check_enabled(enabled)
        guild_id = _check_guild(guild_id)
        async with self.db.transaction() as session:
            player = await self._player(session, discord_user_id, guild_id, display_name)
            existing = {
                row.event_type: row
                for row in (
                    await session.scalars(
                        select(NotificationSubscription).where(
                            NotificationSubscription.player_id == player.id,
                            NotificationSubscription.guild_id.is_(None)
                            if guild_id is None
                            else NotificationSubscription.guild_id == guild_id,
                        )
                    )
                ).all()
            }
            for event_type in event_types:
                _set_subscription(session, existing.get(event_type), player.id, event_type, guild_id, enabled)
            if enabled and player.dm_blocked:
                # Asking for DMs is using the bot: try to reach them again.
                player.dm_blocked = False
                player.dm_blocked_at = None
            if enabled and guild_id is not None:  # a type turned on here turns "No more DMs from here" off
                self._dms_back_on(player, await session.get(GuildPlayer, (guild_id, player.id)))
            details = {
                "scope": "guild" if guild_id is not None else "all_guilds",
                "event_types": [e.value for e in event_types],
                "enabled": enabled,
            }
            await self._audit(session, actor, player, guild_id, "notification.preferences_update", details)
            await session.flush()
            rows = await self._subscription_rows(session, discord_user_id, guild_id)
        return build_views(rows, guild_id)

    @staticmethod
    async def _player(
        session: AsyncSession, discord_user_id: int, guild_id: int | None, display_name: str | None
    ) -> Player:
        if guild_id is not None:
            return await ensure_member(session, guild_id, discord_user_id, display_name)
        player = await session.scalar(select(Player).where(Player.discord_user_id == discord_user_id))
        if player is None:
            player = Player(discord_user_id=discord_user_id)
            session.add(player)
            await session.flush()
        return player

    @staticmethod
    async def _audit(
        session: AsyncSession, actor: Actor, player: Player, guild_id: int | None, action: str, details: dict
    ) -> None:
        # A choice for every guild belongs to no guild's audit trail.
        if guild_id is not None:
            await audit.record(
                session,
                guild_id=guild_id,
                actor=actor,
                action=action,
                target_type="player",
                target_id=player.id,
                details=details,
            )

    @staticmethod
    async def _subscription_rows(
        session: AsyncSession, discord_user_id: int, guild_id: int | None
    ) -> list[tuple[EventType, int | None, bool]]:
        query = (
            select(
                NotificationSubscription.event_type, NotificationSubscription.guild_id, NotificationSubscription.active
            )
            .join(Player, Player.id == NotificationSubscription.player_id)
            .where(Player.discord_user_id == discord_user_id)
        )
        if guild_id is None:
            query = query.where(NotificationSubscription.guild_id.is_(None))
        else:
            query = query.where(
                (NotificationSubscription.guild_id == guild_id) | NotificationSubscription.guild_id.is_(None)
            )
        return [tuple(row) for row in (await session.execute(query)).all()]

    # ---- delivery log --------------------------------------------------------------------------------
    async def delivery_log(
        self,
        guild_id: int,
        race_id: int,
        *,
        status: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Notification]:
        """Every notification of a race (DMs and channel posts) with its outcome, oldest first."""
        window = Keyset.of(limit, cursor)
        query = select(Notification).where(Notification.live_race_id == race_id, Notification.guild_id == guild_id)
        if status is not None:
            query = query.where(Notification.status == parse_status(status))
        async with self.db.read() as session:
            await race_in_guild_or_404(session, guild_id, race_id)
            rows = list(await session.scalars(window.select(query, Notification.id)))
        return window.page(rows, lambda n: n.id)

    async def delivery_summary(self, guild_id: int, race_id: int) -> dict[str, int]:
        """How many of a race's notifications are in each status (every status present, zeros included)."""
        async with self.db.read() as session:
            await race_in_guild_or_404(session, guild_id, race_id)
            counts = dict(
                (
                    await session.execute(
                        select(Notification.status, func.count(Notification.id))
                        .where(Notification.live_race_id == race_id, Notification.guild_id == guild_id)
                        .group_by(Notification.status)
                    )
                ).all()
            )
        return {status.value: counts.get(status, 0) for status in NotificationStatus}

    async def resend_failed(self, guild_id: int, race_id: int, actor: Actor) -> ResendReport:
        """Queue a race's failed notifications again, as new (attempts reset); those gone stale meanwhile (their
        type's rule, `EventSpec.stale_reason`, against the race as it is now) end `expired` with the reason."""
        async with self.db.transaction() as session:
            race = await race_in_guild_or_404(session, guild_id, race_id)
            failed = (
                Notification.live_race_id == race_id,
                Notification.guild_id == guild_id,
                Notification.status == NotificationStatus.FAILED,
            )
            # A row an earlier attempt may have delivered is resent (with its nonce), never reported expired.
            certainly_unsent = Notification.maybe_delivered.is_(False)
            stale: dict[str, list[Any]] = {}  # reason -> the conditions of its rows
            for event_type in (await session.scalars(select(Notification.event_type).where(*failed).distinct())).all():
                if event_type is not None and (reason := event_type.spec.stale_reason(race.status)):
                    stale.setdefault(reason, []).append(Notification.event_type == event_type)
            untyped = await session.execute(
                select(Notification.id, Notification.payload).where(*failed, Notification.event_type.is_(None))
            )
            for row_id, payload in untyped.all():  # the moderator alerts: their type is in the payload
                spec = spec_of(None, payload)
                if spec is not None and (reason := spec.stale_reason(race.status)):
                    stale.setdefault(reason, []).append(Notification.id == row_id)
            expired = 0
            for reason, conditions in stale.items():
                for kind in NotificationKind:  # per kind, for the metric (startline_notifications{outcome=expired})
                    count = await self._update_count(
                        session,
                        update(Notification)
                        .where(*failed, certainly_unsent, or_(*conditions), Notification.kind == kind)
                        .values(
                            status=NotificationStatus.EXPIRED, error=reason[:2000], claim_id=None, claimed_until=None
                        ),
                    )
                    expired += count
                    metrics.observe_notification(kind.value, NotificationStatus.EXPIRED.value, count)
            requeued = await self._update_count(
                session,
                update(Notification)
                .where(*failed)
                .values(
                    status=NotificationStatus.PENDING,
                    attempts=0,
                    next_attempt_at=self.clock(),
                    error=None,
                    claim_id=None,
                    claimed_until=None,
                ),
            )
            await audit.record(
                session,
                guild_id=guild_id,
                actor=actor,
                action="notification.resend_failed",
                target_type="live_race",
                target_id=race_id,
                details={"requeued": requeued, "expired": expired},
            )
        return ResendReport(requeued, expired)

    @staticmethod
    async def _update_count(session: AsyncSession, statement: Any) -> int:
        result = await session.execute(statement.execution_options(synchronize_session=False))
        return result.rowcount or 0
