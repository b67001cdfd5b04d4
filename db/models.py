"""SQLAlchemy models for every entity Startline stores.

Rules kept here rather than in services, so no code path can bypass them:
- names are unique per parent (tournament per guild, pool per tournament, room profile per guild);
- `episode_id` is unique per guild, outbox `dedupe_key` unique;
- recorded runs are never removed by a cascade: their foreign keys RESTRICT deletion of the tournament,
  seed and player, and a deleted live race only sets `runs.live_race_id` to NULL.
Datetimes are `UTCDateTime`: timezone-aware UTC in, timezone-aware UTC out.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from db.types import UTCDateTime, utcnow

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    # Stored as VARCHAR on every backend: portable, and new values need no ALTER TYPE.
    return Enum(cls, name=name, native_enum=False, length=32, values_callable=lambda e: [m.value for m in e])


class RaceStatus(enum.StrEnum):
    SCHEDULED = "scheduled"
    ROOM_OPEN = "room_open"
    IN_PROGRESS = "in_progress"
    FINISHED = "finished"
    CANCELLED = "cancelled"


class RunStatus(enum.StrEnum):
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    FINISHED = "finished"
    FORFEIT = "forfeit"
    DISQUALIFIED = "disqualified"


class NotificationStatus(enum.StrEnum):
    PENDING = "pending"
    RETRYING = "retrying"
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"
    # Not sent because it had gone stale before it could go out (its type's `EventSpec` rule): `error` says why.
    EXPIRED = "expired"


# ---- notification types ----------------------------------------------------------------------------------
# Every fact about a notification type is in its `EventSpec`, declared once below and read by every layer: the
# outbox (audiences), the renderer (style), /notify and the preferences (labels, default), the dispatcher and
# resending (staleness), the API schema and the docs (a test compares docs/user-guide.md and docs/admin-guide.md
# with these records). docs/architecture.md, "Where to add a notification type", says what a new type needs.


class Audience(enum.Flag):
    """Who a notification type reaches."""

    ELIGIBLE = enum.auto()  # DMs: subscribed players who may race the race (decided when queued)
    PARTICIPANTS = enum.auto()  # DMs: subscribed players who got a run in it
    ANNOUNCEMENT = enum.auto()  # a post in the tournament's (else the server's) announcement channel
    MODERATORS = enum.auto()  # a post in the moderator channel (else the announcement channel), organizers pinged
    # DMs queued by the `reminders` job, not by an event: players who RSVP'd the race or pressed Interested on its
    # Discord Scheduled Event, and subscribers to the scheduled notice who chose reminder offsets
    # (bot/services/reminders.py)
    REMINDED = enum.auto()
    # DMs: players who RSVP'd the race, whatever their preference for the type (still on the roster, the guild's
    # DMs not turned off)
    RSVPED = enum.auto()
    # DMs: players who pressed Interested on the race's Discord Scheduled Event (`race_interests`), unless they
    # turned the type off (a guild row beats the all-guilds row) or the guild's DMs off, or left the guild: the
    # rules of their reminders, plus the type's own switch
    INTERESTED = enum.auto()


DM_AUDIENCES = Audience.ELIGIBLE | Audience.PARTICIPANTS | Audience.RSVPED | Audience.INTERESTED
_AUDIENCE_DOCS = {
    Audience.ELIGIBLE: "players who may race it",
    Audience.PARTICIPANTS: "players who got a run in it",
    Audience.RSVPED: "players who RSVP'd it",
    Audience.INTERESTED: "players who pressed Interested on its Discord event",
    Audience.REMINDED: "players who RSVP'd it or pressed Interested on its Discord event, and players who chose "
    "reminders and get the scheduled notice",
}
# How the expiry rules read: "once its room opened, it started, …".
_STALE_WHEN = {
    RaceStatus.ROOM_OPEN: "its room opened",
    RaceStatus.IN_PROGRESS: "it started",
    RaceStatus.FINISHED: "it finished",
    RaceStatus.CANCELLED: "it was cancelled",
}
_STATUS_NOW = {
    RaceStatus.ROOM_OPEN: "open on RaceTime.gg",
    RaceStatus.IN_PROGRESS: "under way",
    RaceStatus.FINISHED: "finished",
    RaceStatus.CANCELLED: "cancelled",
}


@dataclass(frozen=True)
class EventSpec:
    """One notification type: what it is called, who gets it, how it looks, and when it is stale."""

    name: str  # stored in outbox payloads, subscriptions and dedupe keys: never renamed
    code: int | None  # its public number (/notify, the API's event_code); None: nobody subscribes to it
    label: str  # in /notify's list and the preferences: "Race scheduled"
    short_label: str  # on /notify's buttons: "Scheduled"
    headline: str  # the message's title: "📅 Live race scheduled: <race>"
    emoji: str
    colour: int  # the embed's colour
    audience: Audience
    default_on: bool  # the preference of a player who chose nothing (False: opt-in)
    docs: str  # what the message says, for the user guide's table
    # Staleness: the message is not sent (it ends `expired`) once the race reached one of these statuses, or
    # was deleted (`stale_if_deleted`). Checked when the dispatcher claims the row and when it is resent.
    stale_once: frozenset[RaceStatus] = frozenset()
    stale_if_deleted: bool = False

    @property
    def dm_audience_docs(self) -> str:
        """Who gets it by DM, as the user guide says it."""
        return ", and ".join(text for flag, text in _AUDIENCE_DOCS.items() if flag in self.audience)

    @property
    def expiry_rule(self) -> str:
        """When it expires unsent, as the admin guide and the delivery log say it."""
        events = [_STALE_WHEN[status] for status in RaceStatus if status in self.stale_once]
        if self.stale_if_deleted:
            events.append("it was deleted")
        if not events:
            return "never: what it says stays true"
        return "once " + (", ".join(events[:-1]) + " or " + events[-1] if len(events) > 1 else events[0])

    def stale_reason(self, status: RaceStatus | None) -> str | None:
        """Why a message of this type must not go out now that the race is in `status` (None: the race was
        deleted), or None while it is still current."""
        if status is None:
            now = "was deleted" if self.stale_if_deleted else None
        else:
            now = f"was already {_STATUS_NOW[status]}" if status in self.stale_once else None
        if now is None:
            return None
        return f'Expired unsent: the race {now} (a "{self.headline}" message expires {self.expiry_rule})'


_BEFORE_START = frozenset({RaceStatus.ROOM_OPEN, RaceStatus.IN_PROGRESS, RaceStatus.FINISHED, RaceStatus.CANCELLED})


class EventType(enum.StrEnum):
    """The notification types players subscribe to; each member carries its `EventSpec` (`.spec`)."""

    spec: EventSpec

    def __new__(cls, spec: EventSpec) -> EventType:
        member = str.__new__(cls, spec.name)
        member._value_ = spec.name
        member.spec = spec
        return member

    LIVE_RACE_SCHEDULED = EventSpec(
        name="live_race_scheduled",
        code=415,
        label="Race scheduled",
        short_label="Scheduled",
        headline="Live race scheduled",
        emoji="📅",
        colour=0x3498DB,
        audience=Audience.ELIGIBLE | Audience.ANNOUNCEMENT,
        default_on=False,
        docs="tournament, pool, title, the start and when the room opens",
        stale_once=_BEFORE_START,
        stale_if_deleted=True,
    )
    LIVE_RACE_ROOM_OPENED = EventSpec(
        name="live_race_room_opened",
        code=416,
        label="Room opened",
        short_label="Room open",
        headline="Race room open",
        emoji="🔓",
        colour=0x2ECC71,
        audience=Audience.ELIGIBLE | Audience.ANNOUNCEMENT,
        default_on=False,
        docs="the room link, the start, the start delay, whether the race starts by itself, the time limit, and "
        "where the seed is (the room's info, plus the seed's notes if it has any)",
        stale_once=frozenset({RaceStatus.IN_PROGRESS, RaceStatus.FINISHED, RaceStatus.CANCELLED}),
        stale_if_deleted=True,
    )
    LIVE_RACE_STARTED = EventSpec(
        name="live_race_started",
        code=417,
        label="Race started",
        short_label="Started",
        headline="Race started",
        emoji="🚦",
        colour=0xE67E22,
        audience=Audience.PARTICIPANTS | Audience.ANNOUNCEMENT,
        default_on=False,
        docs="how many are racing, the room link",
        stale_once=frozenset({RaceStatus.FINISHED, RaceStatus.CANCELLED}),
        stale_if_deleted=True,
    )
    LIVE_RACE_FINISHED = EventSpec(
        name="live_race_finished",
        code=418,
        label="Race finished",
        short_label="Finished",
        headline="Race finished",
        emoji="🏁",
        colour=0xF1C40F,
        audience=Audience.PARTICIPANTS | Audience.ANNOUNCEMENT,
        default_on=False,
        docs="*your* place, time and score (or forfeit / disqualified, score 0), how many finished, the room link",
    )
    LIVE_RACE_CANCELLED = EventSpec(
        name="live_race_cancelled",
        code=419,
        label="Race cancelled",
        short_label="Cancelled",
        headline="Race cancelled",
        emoji="❌",
        colour=0xE74C3C,
        audience=Audience.ELIGIBLE
        | Audience.PARTICIPANTS
        | Audience.RSVPED
        | Audience.INTERESTED
        | Audience.ANNOUNCEMENT,
        default_on=False,
        docs="the reason",
    )
    LIVE_RACE_RESCHEDULED = EventSpec(
        name="live_race_rescheduled",
        code=420,
        label="Race rescheduled",
        short_label="Rescheduled",
        headline="Live race rescheduled",
        emoji="🕒",
        colour=0x9B59B6,
        audience=Audience.ELIGIBLE | Audience.RSVPED | Audience.INTERESTED | Audience.ANNOUNCEMENT,
        default_on=False,
        docs="the old and the new start and when the room now opens (moves within a few minutes make one message)",
        stale_once=_BEFORE_START,
        stale_if_deleted=True,
    )

    @property
    def code(self) -> int:
        return self.spec.code  # type: ignore[return-value]  # every subscribable type has one


# The moderator alert: a notification type nobody subscribes to (its outbox rows have no event_type).
OPEN_FAILED_ALERT = EventSpec(
    name="live_race_open_failed",
    code=None,
    label="Room could not be opened",
    short_label="Open failed",
    headline="Race room could not be opened",
    emoji="⚠️",
    colour=0x992D22,
    audience=Audience.MODERATORS,
    default_on=False,
    docs="the last error, the number of attempts and what to do",
    stale_once=_BEFORE_START,  # a moderator (or a retry) opened the room, or the race is over: nothing to do
    stale_if_deleted=True,
)

# A reminder before the start, at an offset the player chose (`reminder_preferences`) or, for a player who RSVP'd
# and chose none, at the default offsets. Nobody subscribes to it by type: the offsets are the preference, so its
# outbox rows have no event_type (like the moderator alert). Queued by the `reminders` job, never by an event.
LIVE_RACE_REMINDER = EventSpec(
    name="live_race_reminder",
    code=None,
    label="Reminder before the start",
    short_label="Reminder",
    headline="Race soon",
    emoji="⏰",
    colour=0x1ABC9C,
    audience=Audience.REMINDED,
    default_on=False,
    docs="the start (a reminder for an older start time is never sent after a reschedule)",
    stale_once=_BEFORE_START,
    stale_if_deleted=True,
)

# The moderator notice that the bot cannot mirror races as Discord Scheduled Events (Manage Events is missing):
# sent once per blocking, not a subscribable type and not a race step, so it is not among EVENT_SPECS.
SCHEDULED_EVENTS_BLOCKED_ALERT = EventSpec(
    name="scheduled_events_blocked",
    code=None,
    label="Scheduled events blocked",
    short_label="Events blocked",
    headline="Discord Scheduled Events are off",
    emoji="⚠️",
    colour=0x992D22,
    audience=Audience.MODERATORS,
    default_on=False,
    docs="that the bot lacks Manage Events, and how to turn the mirroring back on",
)

EVENT_SPECS: tuple[EventSpec, ...] = (
    *(event_type.spec for event_type in EventType),
    OPEN_FAILED_ALERT,
    LIVE_RACE_REMINDER,
)
SPECS_BY_NAME: dict[str, EventSpec] = {spec.name: spec for spec in (*EVENT_SPECS, SCHEDULED_EVENTS_BLOCKED_ALERT)}
EVENT_CODES: dict[EventType, int] = {event_type: event_type.code for event_type in EventType}


def spec_of(event_type: EventType | None, payload: dict[str, Any] | None = None) -> EventSpec | None:
    """The spec of an outbox row: its event type, else the event its payload names (the moderator alert)."""
    if event_type is not None:
        return event_type.spec
    return SPECS_BY_NAME.get((payload or {}).get("event", ""))


class NotificationKind(enum.StrEnum):
    DM = "dm"
    CHANNEL = "channel"
    # An edit of a race's living announcement (`AnnouncementPost`) to show the race as it is now.
    EDIT = "channel_edit"
    # The race's Discord Scheduled Event (`RaceScheduledEvent`), brought to the state in the payload.
    SCHEDULED_EVENT = "scheduled_event"


class SeriesStatus(enum.StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    ENDED = "ended"


class OccurrenceKind(enum.StrEnum):
    CREATED = "created"  # by the rule, at the rule's time
    MOVED = "moved"  # created, or later moved, at another time by a moderator
    SKIPPED = "skipped"
    MISSED = "missed"  # its start passed while no process ran the series job: not made, moderators told once


class PhaseStatus(enum.StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class SeasonRule(enum.StrEnum):
    SUM = "sum"
    BEST = "best"


class TokenScope(enum.StrEnum):
    READ = "read"
    MANAGE = "manage"


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class GuildSettings(TimestampMixin, Base):
    __tablename__ = "guild_settings"

    guild_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    organizer_role_id: Mapped[int | None] = mapped_column(BigInteger)
    announcement_channel_id: Mapped[int | None] = mapped_column(BigInteger)
    announcement_role_id: Mapped[int | None] = mapped_column(BigInteger)
    # Where moderators are told about problems (a room that would not open).
    moderator_channel_id: Mapped[int | None] = mapped_column(BigInteger)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    room_open_lead_minutes: Mapped[int | None] = mapped_column(Integer)
    default_room_profile_id: Mapped[int | None] = mapped_column(ForeignKey("room_profiles.id", ondelete="SET NULL"))
    calendar_secret: Mapped[str | None] = mapped_column(String(64))
    # Live races mirrored as Discord Scheduled Events (on by default); blocked_at: the bot lacked Manage Events,
    # nothing more is tried until a moderator turns the setting on again.
    scheduled_events: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    scheduled_events_blocked_at: Mapped[datetime | None] = mapped_column()
    # The reminder offsets for players who chose none of their own (minutes before the start, comma-separated, as
    # `ReminderPreference.offsets`); NULL: no default (only RSVP'd and interested players get one, 1 h before).
    default_reminder_offsets: Mapped[str | None] = mapped_column(String(100))


class Player(TimestampMixin, Base):
    """A Discord user, global: what is theirs in every guild. That is the RaceTime.gg account they proved through
    OAuth (verified: it wins over any guild's link) and their DM state. What one guild says about them (the name it
    shows, a moderator's unverified link, whether they left) is on their GuildPlayer row of that guild."""

    __tablename__ = "players"

    id: Mapped[int] = mapped_column(primary_key=True)
    discord_user_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    # The verified link only: moderators cannot set or overwrite it.
    racetime_id: Mapped[str | None] = mapped_column(String(32), unique=True)
    racetime_name: Mapped[str | None] = mapped_column(String(100))
    racetime_linked_at: Mapped[datetime | None] = mapped_column()
    dm_blocked: Mapped[bool] = mapped_column(Boolean, default=False)
    dm_blocked_at: Mapped[datetime | None] = mapped_column()
    # The bot's DM channel with this user, kept so a restart sends without opening the channel again.
    dm_channel_id: Mapped[int | None] = mapped_column(BigInteger)
    # The user's own time zone (`/timezone set`) for the times they type and the labels they read; a person's zone
    # is the same in every server, so it is global. NULL: the server's zone.
    timezone: Mapped[str | None] = mapped_column(String(64))


class GuildPlayer(Base):
    """A guild's roster entry for a player: the eligibility candidates, the roster of the API, the names shown.

    Per guild, so no guild can change what another sees: the display name, a moderator's unverified RaceTime.gg
    link (unique per guild; the player's verified link on `players` wins over it), and `left_at`, set when the
    member left or was banned (not eligible, no DMs from this guild; cleared when they come back).
    """

    __tablename__ = "guild_players"

    guild_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    player_id: Mapped[int] = mapped_column(ForeignKey("players.id", ondelete="CASCADE"), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(100))
    racetime_id: Mapped[str | None] = mapped_column(String(32))
    racetime_name: Mapped[str | None] = mapped_column(String(100))
    racetime_linked_at: Mapped[datetime | None] = mapped_column()
    joined_at: Mapped[datetime] = mapped_column(default=utcnow)
    left_at: Mapped[datetime | None] = mapped_column()
    # Set when the member turned every DM from this guild off (a DM's "No more DMs from …" button): the outbox and the
    # reminders queue none for them and the dispatcher skips any queued before; cleared by the undo, or by turning a
    # notification on for this guild in /notify.
    dms_off_at: Mapped[datetime | None] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    __table_args__ = (
        Index("ix_guild_players_player_id", "player_id"),
        UniqueConstraint("guild_id", "racetime_id"),
    )


class CalendarKey(Base):
    """A member's personal calendar feed (only the races they may race): the key is the secret in its URL."""

    __tablename__ = "calendar_keys"

    guild_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    player_id: Mapped[int] = mapped_column(ForeignKey("players.id", ondelete="CASCADE"), primary_key=True)
    secret: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RoomProfile(TimestampMixin, Base):
    """Named room settings. A NULL field inherits from the next level (tournament, guild, built-in)."""

    __tablename__ = "room_profiles"

    id: Mapped[int] = mapped_column(primary_key=True)
    guild_id: Mapped[int] = mapped_column(BigInteger)
    name: Mapped[str] = mapped_column(String(100))
    start_delay: Mapped[int | None] = mapped_column(Integer)
    time_limit: Mapped[int | None] = mapped_column(Integer)
    streaming_required: Mapped[bool | None] = mapped_column(Boolean)
    auto_start: Mapped[bool | None] = mapped_column(Boolean)
    allow_comments: Mapped[bool | None] = mapped_column(Boolean)
    hide_comments: Mapped[bool | None] = mapped_column(Boolean)
    allow_prerace_chat: Mapped[bool | None] = mapped_column(Boolean)
    allow_midrace_chat: Mapped[bool | None] = mapped_column(Boolean)
    allow_non_entrant_chat: Mapped[bool | None] = mapped_column(Boolean)
    chat_message_delay: Mapped[int | None] = mapped_column(Integer)
    invitational: Mapped[bool | None] = mapped_column(Boolean)
    unlisted: Mapped[bool | None] = mapped_column(Boolean)
    start_mode: Mapped[str | None] = mapped_column(String(20))
    min_ready: Mapped[int | None] = mapped_column(Integer)
    seed_reveal: Mapped[str | None] = mapped_column(String(20))
    seed_reveal_minutes: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (UniqueConstraint("guild_id", "name"),)


class Tournament(TimestampMixin, Base):
    __tablename__ = "tournaments"

    id: Mapped[int] = mapped_column(primary_key=True)
    guild_id: Mapped[int] = mapped_column(BigInteger)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    runs_per_pool: Mapped[int] = mapped_column(Integer, default=1)
    max_reattempts: Mapped[int] = mapped_column(Integer, default=-1)
    racetime_category: Mapped[str | None] = mapped_column(String(50))
    racetime_goal: Mapped[str | None] = mapped_column(String(255))
    custom_goal: Mapped[str | None] = mapped_column(String(255))
    announcement_channel_id: Mapped[int | None] = mapped_column(BigInteger)
    announcement_role_id: Mapped[int | None] = mapped_column(BigInteger)
    room_profile_id: Mapped[int | None] = mapped_column(ForeignKey("room_profiles.id", ondelete="SET NULL"))
    room_open_lead_minutes: Mapped[int | None] = mapped_column(Integer)
    # NULL: the guild's setting; False: this tournament's races are never mirrored as scheduled events.
    scheduled_events: Mapped[bool | None] = mapped_column(Boolean)

    pools: Mapped[list[Pool]] = relationship(back_populates="tournament", order_by="Pool.id")

    __table_args__ = (UniqueConstraint("guild_id", "name"),)


class Pool(Base):
    __tablename__ = "pools"

    id: Mapped[int] = mapped_column(primary_key=True)
    tournament_id: Mapped[int] = mapped_column(ForeignKey("tournaments.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    tournament: Mapped[Tournament] = relationship(back_populates="pools")

    __table_args__ = (UniqueConstraint("tournament_id", "name"),)


class Seed(Base):
    """A seed of a pool."""

    __tablename__ = "seeds"

    id: Mapped[int] = mapped_column(primary_key=True)
    pool_id: Mapped[int] = mapped_column(ForeignKey("pools.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(String(500))
    notes: Mapped[str] = mapped_column(Text, default="")
    par_time: Mapped[float | None] = mapped_column(Float)
    used_in_live_race: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("pool_id", "url"),)


class LiveRace(TimestampMixin, Base):
    __tablename__ = "live_races"

    id: Mapped[int] = mapped_column(primary_key=True)
    guild_id: Mapped[int] = mapped_column(BigInteger)
    tournament_id: Mapped[int] = mapped_column(ForeignKey("tournaments.id", ondelete="CASCADE"))
    pool_id: Mapped[int] = mapped_column(ForeignKey("pools.id", ondelete="RESTRICT"))
    seed_id: Mapped[int | None] = mapped_column(ForeignKey("seeds.id", ondelete="RESTRICT"))
    title: Mapped[str] = mapped_column(String(200))
    episode_id: Mapped[str | None] = mapped_column(String(100))
    scheduled_at: Mapped[datetime] = mapped_column()
    room_profile_id: Mapped[int | None] = mapped_column(ForeignKey("room_profiles.id", ondelete="SET NULL"))
    room_settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[RaceStatus] = mapped_column(_enum(RaceStatus, "race_status"), default=RaceStatus.SCHEDULED)
    # Written into the room info so an interrupted open can find its room instead of creating another.
    marker: Mapped[str] = mapped_column(String(40), unique=True)
    racetime_category: Mapped[str | None] = mapped_column(String(50))
    racetime_slug: Mapped[str | None] = mapped_column(String(100))
    racetime_url: Mapped[str | None] = mapped_column(String(300))
    racetime_status: Mapped[str | None] = mapped_column(String(20))
    room_opened_at: Mapped[datetime | None] = mapped_column()
    # The seed policy the room was opened with (NULL: at_open, as before it existed), and when the seed was shown:
    # until then only moderators see it (`live_race_views.seed_is_public`).
    seed_reveal: Mapped[str | None] = mapped_column(String(20))
    seed_revealed_at: Mapped[datetime | None] = mapped_column()
    started_at: Mapped[datetime | None] = mapped_column()
    ended_at: Mapped[datetime | None] = mapped_column()
    results_recorded_at: Mapped[datetime | None] = mapped_column()
    cancel_reason: Mapped[str | None] = mapped_column(Text)
    open_attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_open_attempt_at: Mapped[datetime | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(Text)
    open_claim_id: Mapped[str | None] = mapped_column(String(40))
    open_claimed_at: Mapped[datetime | None] = mapped_column()
    # Set while a room of this race may exist on RaceTime.gg that the race does not follow (a claim under way, an
    # answer to `startrace` that was lost, a room a cancel could not close): from this time on the category listing
    # is sure to show it. The opener adopts such a room; for a cancelled race it cancels it. NULL: none can exist.
    room_search_after: Mapped[datetime | None] = mapped_column()
    entrant_count: Mapped[int] = mapped_column(Integer, default=0)  # RaceTime.gg entrants at the start
    participant_count: Mapped[int] = mapped_column(Integer, default=0)  # players who got a run
    finisher_count: Mapped[int] = mapped_column(Integer, default=0)  # participants who finished
    created_by: Mapped[str] = mapped_column(String(120), default="system")
    # Copied from the race's template when it has one; NULL inherits the tournament's, then the server's.
    room_open_lead_minutes: Mapped[int | None] = mapped_column(Integer)
    announcement_channel_id: Mapped[int | None] = mapped_column(BigInteger)
    announcement_role_id: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (
        Index("ix_live_races_status_scheduled_at", "status", "scheduled_at"),
        Index("ix_live_races_tournament_id_scheduled_at", "tournament_id", "scheduled_at"),
        Index("ix_live_races_guild_id_scheduled_at", "guild_id", "scheduled_at"),
        UniqueConstraint("guild_id", "episode_id"),
        # SQLite would give a new race the id of the newest one just deleted; the outbox's dedupe keys and the
        # living announcement name races by id, so an id is never used twice (PostgreSQL's sequence never does).
        {"sqlite_autoincrement": True},
    )


class RaceTemplate(TimestampMixin, Base):
    """What a live race of a tournament is made from: pools (rotated by occurrence), a title pattern, the local
    start time and its time zone, the room profile and room settings. `/liverace create template:` and series."""

    __tablename__ = "race_templates"

    id: Mapped[int] = mapped_column(primary_key=True)
    guild_id: Mapped[int] = mapped_column(BigInteger)
    tournament_id: Mapped[int] = mapped_column(ForeignKey("tournaments.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    # Pool ids in rotation order: occurrence n races pool_ids[(n - 1) % len(pool_ids)].
    pool_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    title_pattern: Mapped[str | None] = mapped_column(String(200))
    start_time: Mapped[str | None] = mapped_column(String(5))  # "HH:MM", local to `timezone`
    timezone: Mapped[str | None] = mapped_column(String(64))
    room_profile_id: Mapped[int | None] = mapped_column(ForeignKey("room_profiles.id", ondelete="SET NULL"))
    room_settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Given to each race made from the template; NULL: the tournament's (then the server's).
    room_open_lead_minutes: Mapped[int | None] = mapped_column(Integer)
    announcement_channel_id: Mapped[int | None] = mapped_column(BigInteger)
    announcement_role_id: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (UniqueConstraint("tournament_id", "name"),)


class RaceSeries(TimestampMixin, Base):
    """A template plus an iCalendar RRULE in a time zone; the series job keeps the next occurrences created."""

    __tablename__ = "race_series"

    id: Mapped[int] = mapped_column(primary_key=True)
    guild_id: Mapped[int] = mapped_column(BigInteger)
    tournament_id: Mapped[int] = mapped_column(ForeignKey("tournaments.id", ondelete="CASCADE"))
    template_id: Mapped[int] = mapped_column(ForeignKey("race_templates.id", ondelete="RESTRICT"))
    name: Mapped[str] = mapped_column(String(100))
    rrule: Mapped[str] = mapped_column(String(500))
    timezone: Mapped[str] = mapped_column(String(64))
    # The first occurrence's local date: the rule's DTSTART (with the template's local start time).
    starts_on: Mapped[date] = mapped_column(Date)
    until: Mapped[datetime | None] = mapped_column()
    count: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[SeriesStatus] = mapped_column(_enum(SeriesStatus, "series_status"), default=SeriesStatus.ACTIVE)
    status_reason: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(120), default="system")
    # Every occurrence up to this instant is accounted for: made, skipped, moved, or reported missed. Set when the
    # series is made, changed or resumed, so dates before that are never reported as missed.
    checked_through: Mapped[datetime | None] = mapped_column()

    __table_args__ = (
        UniqueConstraint("tournament_id", "name"),
        Index("ix_race_series_status", "status"),
    )


class SeriesOccurrence(Base):
    """One occurrence of a series, by the local date the rule gave it: the live race made for it, or a skip.

    The primary key (series, date) is what makes the series job create each occurrence exactly once, across
    crashes and concurrent processes: the race and this row are inserted in one transaction, and a second insert
    of the same occurrence fails on the key and rolls its race back. A skipped or moved occurrence keeps its row,
    so the job never makes it again by the rule.
    """

    __tablename__ = "series_occurrences"

    series_id: Mapped[int] = mapped_column(ForeignKey("race_series.id", ondelete="CASCADE"), primary_key=True)
    occurrence_date: Mapped[date] = mapped_column(Date, primary_key=True)
    number: Mapped[int] = mapped_column(Integer)  # 1 for the rule's first occurrence
    kind: Mapped[OccurrenceKind] = mapped_column(_enum(OccurrenceKind, "occurrence_kind"))
    live_race_id: Mapped[int | None] = mapped_column(ForeignKey("live_races.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_series_occurrences_live_race_id", "live_race_id", unique=True),)


class TournamentPhase(TimestampMixin, Base):
    """An ordered stage of a tournament (Qualifier → Top 32) with its own pools and leaderboard."""

    __tablename__ = "tournament_phases"

    id: Mapped[int] = mapped_column(primary_key=True)
    tournament_id: Mapped[int] = mapped_column(ForeignKey("tournaments.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    position: Mapped[int] = mapped_column(Integer)
    status: Mapped[PhaseStatus] = mapped_column(_enum(PhaseStatus, "phase_status"), default=PhaseStatus.OPEN)
    advance_count: Mapped[int | None] = mapped_column(Integer)
    closed_at: Mapped[datetime | None] = mapped_column()

    __table_args__ = (
        UniqueConstraint("tournament_id", "name"),
        UniqueConstraint("tournament_id", "position"),
    )


class PhasePool(Base):
    """A pool's phase: a pool belongs to at most one phase of its tournament (none: outside the phases)."""

    __tablename__ = "phase_pools"

    pool_id: Mapped[int] = mapped_column(ForeignKey("pools.id", ondelete="CASCADE"), primary_key=True)
    phase_id: Mapped[int] = mapped_column(ForeignKey("tournament_phases.id", ondelete="CASCADE"))

    __table_args__ = (Index("ix_phase_pools_phase_id", "phase_id"),)


class PhaseStanding(Base):
    """A closed phase's final standing of one player: rank, score and whether they advanced to the next phase."""

    __tablename__ = "phase_standings"

    phase_id: Mapped[int] = mapped_column(ForeignKey("tournament_phases.id", ondelete="CASCADE"), primary_key=True)
    player_id: Mapped[int] = mapped_column(ForeignKey("players.id", ondelete="CASCADE"), primary_key=True)
    rank: Mapped[int | None] = mapped_column(Integer)  # None: advanced by a moderator without a score
    score: Mapped[float | None] = mapped_column(Float)
    advanced: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (Index("ix_phase_standings_player_id", "player_id"),)


class Season(TimestampMixin, Base):
    """Tournaments of a guild whose leaderboards combine: the sum of scores, or the best N of them."""

    __tablename__ = "seasons"

    id: Mapped[int] = mapped_column(primary_key=True)
    guild_id: Mapped[int] = mapped_column(BigInteger)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    rule: Mapped[SeasonRule] = mapped_column(_enum(SeasonRule, "season_rule"), default=SeasonRule.SUM)
    best_of: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (UniqueConstraint("guild_id", "name"),)


class SeasonTournament(Base):
    __tablename__ = "season_tournaments"

    season_id: Mapped[int] = mapped_column(ForeignKey("seasons.id", ondelete="CASCADE"), primary_key=True)
    tournament_id: Mapped[int] = mapped_column(ForeignKey("tournaments.id", ondelete="CASCADE"), primary_key=True)
    added_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_season_tournaments_tournament_id", "tournament_id"),)


class LiveRaceEntrant(Base):
    """A RaceTime.gg entrant of a live race, counted (a run was given) or not (with the reason)."""

    __tablename__ = "live_race_entrants"

    id: Mapped[int] = mapped_column(primary_key=True)
    live_race_id: Mapped[int] = mapped_column(ForeignKey("live_races.id", ondelete="CASCADE"))
    racetime_id: Mapped[str] = mapped_column(String(32))
    racetime_name: Mapped[str] = mapped_column(String(100))
    player_id: Mapped[int | None] = mapped_column(ForeignKey("players.id", ondelete="SET NULL"))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))
    counted: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20))
    place: Mapped[int | None] = mapped_column(Integer)
    elapsed_us: Mapped[int | None] = mapped_column(BigInteger)
    finished_at: Mapped[datetime | None] = mapped_column()

    __table_args__ = (UniqueConstraint("live_race_id", "racetime_id"),)


class RoomMessage(Base):
    """A message Startline sends in a live race's RaceTime.gg room (the pinned summary, a warning to an entrant),
    recorded before it is sent: `guid` is RaceTime.gg's dedupe key (a repeat within 5 minutes is ignored), so a
    process that dies between recording and `sent_at` sends it again with the same guid, and no message is sent
    twice however many processes or restarts."""

    __tablename__ = "room_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    live_race_id: Mapped[int] = mapped_column(ForeignKey("live_races.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(100))  # what it is: "pinned", "warn:<racetime id>:<reason>", ...
    guid: Mapped[str] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column()

    __table_args__ = (UniqueConstraint("live_race_id", "key"),)


class Run(TimestampMixin, Base):
    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    tournament_id: Mapped[int] = mapped_column(ForeignKey("tournaments.id", ondelete="RESTRICT"))
    seed_id: Mapped[int] = mapped_column(ForeignKey("seeds.id", ondelete="RESTRICT"))
    player_id: Mapped[int] = mapped_column(ForeignKey("players.id", ondelete="RESTRICT"))
    live_race_id: Mapped[int | None] = mapped_column(ForeignKey("live_races.id", ondelete="SET NULL"))
    status: Mapped[RunStatus] = mapped_column(_enum(RunStatus, "run_status"), default=RunStatus.PENDING)
    start_time: Mapped[datetime | None] = mapped_column()
    end_time: Mapped[datetime | None] = mapped_column()
    # Microseconds, exactly as RaceTime.gg's finish_time: a float of seconds would round.
    elapsed_us: Mapped[int | None] = mapped_column(BigInteger)
    place: Mapped[int | None] = mapped_column(Integer)
    reattempted: Mapped[bool] = mapped_column(Boolean, default=False)
    score: Mapped[float | None] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(20), default="live_race")

    __table_args__ = (
        UniqueConstraint("live_race_id", "player_id"),
        Index("ix_runs_tournament_id_player_id", "tournament_id", "player_id"),
        # Covering indexes for eligibility (bot/services/eligibility.py): runs of given seeds, and the
        # unfinished runs of a tournament, are read from the index alone.
        Index("ix_runs_seed_id", "seed_id", "player_id", "reattempted", "live_race_id"),
        Index("ix_runs_tournament_id_status", "tournament_id", "status", "player_id", "live_race_id"),
        Index("ix_runs_player_id", "player_id"),
    )

    @property
    def elapsed_seconds(self) -> float | None:
        return None if self.elapsed_us is None else self.elapsed_us / 1_000_000


class NotificationSubscription(TimestampMixin, Base):
    __tablename__ = "notification_subscriptions"

    id: Mapped[int] = mapped_column(primary_key=True)
    player_id: Mapped[int] = mapped_column(ForeignKey("players.id", ondelete="CASCADE"))
    event_type: Mapped[EventType] = mapped_column(_enum(EventType, "event_type"))
    # NULL means "every guild"; a guild row overrides it for that guild.
    guild_id: Mapped[int | None] = mapped_column(BigInteger)
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    __table_args__ = (
        Index(
            "uq_notification_subscriptions_guild",
            "player_id",
            "event_type",
            "guild_id",
            unique=True,
            sqlite_where=text("guild_id IS NOT NULL"),
            postgresql_where=text("guild_id IS NOT NULL"),
        ),
        Index(
            "uq_notification_subscriptions_global",
            "player_id",
            "event_type",
            unique=True,
            sqlite_where=text("guild_id IS NULL"),
            postgresql_where=text("guild_id IS NULL"),
        ),
    )


class Notification(Base):
    """Outbox row: one message to deliver (a DM to a player, or a post in a channel)."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[NotificationKind] = mapped_column(_enum(NotificationKind, "notification_kind"))
    # NULL for a moderator alert (a room that would not open), which is no subscribable event.
    event_type: Mapped[EventType | None] = mapped_column(_enum(EventType, "event_type"))
    guild_id: Mapped[int] = mapped_column(BigInteger)
    player_id: Mapped[int | None] = mapped_column(ForeignKey("players.id", ondelete="CASCADE"))
    channel_id: Mapped[int | None] = mapped_column(BigInteger)
    live_race_id: Mapped[int | None] = mapped_column(ForeignKey("live_races.id", ondelete="SET NULL"))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    status: Mapped[NotificationStatus] = mapped_column(
        _enum(NotificationStatus, "notification_status"), default=NotificationStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    claim_id: Mapped[str | None] = mapped_column(String(40))
    claimed_until: Mapped[datetime | None] = mapped_column()
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column()
    # An earlier attempt may have reached Discord (its claim lapsed mid-send, or its answer was lost): never
    # `expired` then, but sent again with its nonce, which Discord answers with the message it may have made.
    maybe_delivered: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    __table_args__ = (
        Index("ix_notifications_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_notifications_live_race_id", "live_race_id"),
    )


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    guild_id: Mapped[int] = mapped_column(BigInteger)
    name: Mapped[str] = mapped_column(String(100))
    scope: Mapped[TokenScope] = mapped_column(_enum(TokenScope, "token_scope"))
    owner_player_id: Mapped[int | None] = mapped_column(ForeignKey("players.id", ondelete="SET NULL"))
    # sha256 of the secret; the secret itself is shown once and never stored.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    token_prefix: Mapped[str] = mapped_column(String(16))
    created_by: Mapped[str] = mapped_column(String(120), default="system")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()

    __table_args__ = (Index("ix_api_tokens_guild_id", "guild_id"),)


class AuditEntry(Base):
    __tablename__ = "audit_entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    guild_id: Mapped[int] = mapped_column(BigInteger)
    actor_type: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[str | None] = mapped_column(String(64))
    actor_name: Mapped[str] = mapped_column(String(120))
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[int | None] = mapped_column(BigInteger)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        Index("ix_audit_entries_guild_id_id", "guild_id", "id"),
        Index("ix_audit_entries_target", "target_type", "target_id"),
    )


class AppSecret(Base):
    """Secrets the process makes for itself once and keeps (the OAuth `state` signing key when none is set)."""

    __tablename__ = "app_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ProcessHeartbeat(Base):
    """One row per running Startline process, upserted every `scheduler.heartbeat_interval_seconds`: how many
    processes share the database (rows seen within two intervals), and each one's jobs and RaceTime.gg health for
    `/startline status`. Rows of processes gone for a day are removed by the heartbeat itself."""

    __tablename__ = "process_heartbeats"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    version: Mapped[str] = mapped_column(String(40))
    discord: Mapped[str] = mapped_column(String(40))
    started_at: Mapped[datetime] = mapped_column()
    seen_at: Mapped[datetime] = mapped_column()
    # {job: {interval_seconds, last_run_at, last_success_at, last_error, runs, failures}} as JSON-ready values
    jobs: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # {credentials: {last_token_at, last_success_at, last_error, last_error_at}}
    racetime: Mapped[dict[str, Any]] = mapped_column(default=dict)

    __table_args__ = (Index("ix_process_heartbeats_seen_at", "seen_at"),)


class JobLease(Base):
    """A lease on a piece of periodic work that one process at a time should do (polling a category, the score
    upkeep): taken by a compare-and-set on `held_until`, so a crashed holder's lease simply runs out. `done_at`
    is when the work was last completed, for work that is due once per interval across all processes."""

    __tablename__ = "job_leases"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(40))
    held_until: Mapped[datetime | None] = mapped_column()
    done_at: Mapped[datetime | None] = mapped_column()


class PermissionCheck(Base):
    """What the last look at a guild's channels through the gateway found missing (`/startline status`), for the
    API, which has no gateway of its own: {"channels": [{channel_id, purpose, missing: [permission names]}]}."""

    __tablename__ = "permission_checks"

    guild_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    checked_at: Mapped[datetime] = mapped_column()
    result: Mapped[dict[str, Any]] = mapped_column(default=dict)


class IdempotencyState(enum.StrEnum):
    IN_PROGRESS = "in_progress"  # reserved by a request that has not committed anything yet
    CREATED = "created"  # the request's change committed (in the same transaction); its answer not stored yet
    DONE = "done"  # the answer is stored and is replayed


class IdempotencyKey(Base):
    """An `Idempotency-Key` of a guild's API request that creates something, and the answer it got (24 h)."""

    __tablename__ = "idempotency_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    guild_id: Mapped[int] = mapped_column(BigInteger)
    key: Mapped[str] = mapped_column(String(255))
    # sha256 of the method, the path and the request body (canonical JSON): the same key must mean the same request.
    fingerprint: Mapped[str] = mapped_column(String(64))
    request: Mapped[str] = mapped_column(String(300))  # "POST /api/v1/tournaments/1/live-races", for people
    state: Mapped[IdempotencyState] = mapped_column(
        _enum(IdempotencyState, "idempotency_state"), default=IdempotencyState.IN_PROGRESS
    )
    # Which request holds the key (compare-and-set), and since when: an abandoned reservation can be taken over.
    claim_id: Mapped[str] = mapped_column(String(40))
    claimed_at: Mapped[datetime] = mapped_column(default=utcnow)
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[str | None] = mapped_column(Text)
    response_location: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        UniqueConstraint("guild_id", "key"),
        Index("ix_idempotency_keys_created_at", "created_at"),
    )


class AnnouncementPost(Base):
    """A race's living announcement: the channel message made when it was scheduled, edited in place on every change.

    Written by the dispatcher in the transaction that records the post (or its re-creation) as sent. `live_race_id`
    is no foreign key on purpose: a deleted race's post is still edited to say it was removed.
    """

    __tablename__ = "announcement_posts"

    id: Mapped[int] = mapped_column(primary_key=True)
    guild_id: Mapped[int] = mapped_column(BigInteger)
    live_race_id: Mapped[int] = mapped_column(Integer)
    channel_id: Mapped[int] = mapped_column(BigInteger)
    message_id: Mapped[int] = mapped_column(BigInteger)
    recreated: Mapped[int] = mapped_column(Integer, default=0)  # times it was posted again (deleted by someone)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("live_race_id", "channel_id"),)


class RaceRsvp(Base):
    """A player's "I'll race" for one live race: they get its reminders and its rescheduled notice even without
    the type preference, and it is in their personal calendar feed. Goes with the race."""

    __tablename__ = "race_rsvps"

    id: Mapped[int] = mapped_column(primary_key=True)
    guild_id: Mapped[int] = mapped_column(BigInteger)
    live_race_id: Mapped[int] = mapped_column(ForeignKey("live_races.id", ondelete="CASCADE"))
    player_id: Mapped[int] = mapped_column(ForeignKey("players.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("live_race_id", "player_id"), Index("ix_race_rsvps_player_id", "player_id"))


class ReminderPreference(Base):
    """The reminder offsets a player chose for one guild: minutes before the start, comma-separated ("" = none)."""

    __tablename__ = "reminder_preferences"

    id: Mapped[int] = mapped_column(primary_key=True)
    guild_id: Mapped[int] = mapped_column(BigInteger)
    player_id: Mapped[int] = mapped_column(ForeignKey("players.id", ondelete="CASCADE"))
    offsets: Mapped[str] = mapped_column(String(100), default="")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("guild_id", "player_id"),)


class RaceScheduledEvent(Base):
    """A race's Discord Scheduled Event: its id and the status it was last brought to (1 scheduled, 2 active,
    3 completed, 4 cancelled). Written by the dispatcher in the transaction that records the outbox row as sent;
    `live_race_id` is no foreign key, like `AnnouncementPost`: a deleted race's event is still cancelled."""

    __tablename__ = "race_scheduled_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    guild_id: Mapped[int] = mapped_column(BigInteger)
    live_race_id: Mapped[int] = mapped_column(Integer, unique=True)
    event_id: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    # The gateway's "a user pressed Interested" names the event: found by (guild, event).
    __table_args__ = (Index("ix_race_scheduled_events_guild_id_event_id", "guild_id", "event_id"),)


class RaceInterest(Base):
    """A user who pressed Interested on a race's Discord Scheduled Event (the gateway's
    GUILD_SCHEDULED_EVENT_USER_ADD, or the event's user list read after an outage): they get the race's reminders
    like an RSVP, and its rescheduled and cancelled notices (`Audience.INTERESTED`). `interested` false is a
    withdrawal kept as a tombstone, so a user list read before it cannot bring the interest back (`updated_at`
    orders them). Goes with the race; no roster entry is made for the user."""

    __tablename__ = "race_interests"

    id: Mapped[int] = mapped_column(primary_key=True)
    guild_id: Mapped[int] = mapped_column(BigInteger)
    live_race_id: Mapped[int] = mapped_column(ForeignKey("live_races.id", ondelete="CASCADE"))
    player_id: Mapped[int] = mapped_column(ForeignKey("players.id", ondelete="CASCADE"))
    interested: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        UniqueConstraint("live_race_id", "player_id"),
        Index("ix_race_interests_guild_id_player_id", "guild_id", "player_id"),
    )
