"""Room profiles: named RaceTime.gg room settings, and how a race's settings are resolved.

Resolution, per field: the race's own override → the race's chosen profile → the tournament's profile → the
guild's default profile → built-in defaults. A profile may leave a field unset (NULL) to inherit it.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import EllipsisType
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.actors import Actor
from bot.errors import Conflict, NotFound, ValidationFailed
from bot.services import audit
from bot.services.common import clean_name
from db.models import GuildSettings, LiveRace, RaceStatus, RoomProfile, Tournament
from db.session import Database
from racetime.models import RoomSettings as RacetimeRoomSettings


@dataclass(frozen=True)
class RoomSetting:
    """One room setting, declared once: validation, the slash command options, the API models, the docs table,
    the error example and the RaceTime.gg form are all made from these records.

    `kind` is `bool`, `int` (with `low`..`high` in `unit`) or `str` (one of `choices`). `default` is the built-in
    value, used when no profile or race sets the field. `form_field` is the field of RaceTime.gg's race form the
    value is sent as (an attribute of `racetime.models.RoomSettings`); None for a setting Startline acts on itself.
    `per_race` settings are also offered as per-race overrides by `/liverace-admin create` and `edit`.
    """

    name: str
    kind: type
    default: Any
    description: str
    low: int | None = None
    high: int | None = None
    unit: str = ""
    choices: tuple[str, ...] = ()
    form_field: str | None = None
    per_race: bool = False

    def __post_init__(self) -> None:  # a malformed entry fails at import, not in front of a moderator
        if self.kind is int:
            well_formed = self.low is not None and self.high is not None and self.low <= self.high
        elif self.kind is str:
            well_formed = bool(self.choices) and self.low is None
        else:
            well_formed = self.kind is bool and not self.choices and self.low is None
        if not well_formed:
            raise ValueError(f"room setting {self.name}: an int needs low <= high, a str its choices")
        try:
            self.check(self.default)
        except ValidationFailed as bad:
            raise ValueError(f"room setting {self.name}: the default is not valid ({bad.message})") from None

    @property
    def range_text(self) -> str:
        """The values it takes, for people: `10–60 seconds`, `true/false`, `auto, scheduled`."""
        if self.kind is bool:
            return "true/false"
        if self.kind is str:
            return ", ".join(self.choices)
        return f"{self.low}–{self.high}" + (f" {self.unit}" if self.unit else "")

    @property
    def default_text(self) -> str:
        """The built-in value as it is typed: `15`, `true`, `auto`."""
        return str(self.default).lower() if self.kind is bool else str(self.default)

    @property
    def help_text(self) -> str:
        """The description with its unit and range, as a slash command option and the API show it."""
        if self.kind is int:
            unit = f" in {self.unit}" if self.unit else ""
            return f"{self.description}{unit} ({self.low}–{self.high})"
        if self.kind is str:
            return f"{self.description} ({self.range_text})"
        return self.description

    def check(self, value: Any, *, field: str | None = None) -> Any:
        """`value` if it is valid for this setting, else ValidationFailed naming `field` with an example."""
        field = field or self.name
        if self.kind is bool:
            valid, rule = isinstance(value, bool), "true or false"
        elif self.kind is str:
            valid, rule = value in self.choices, f"one of {', '.join(self.choices)}"
        else:
            unit = f" of {self.unit}" if self.unit else ""
            valid = isinstance(value, int) and not isinstance(value, bool) and self.low <= value <= self.high  # type: ignore[operator]
            rule = f"a whole number{unit} from {self.low} to {self.high}"
        if not valid:
            raise ValidationFailed(f"{self.name} must be {rule}", field=field, example=self.default)
        return value


# Ranges are RaceTime.gg's own (its race form refuses anything else); defaults are Startline's.
ROOM_SETTINGS: dict[str, RoomSetting] = {
    setting.name: setting
    for setting in (
        RoomSetting(
            "start_delay", int, 15, "Countdown before the start",
            low=10, high=60, unit="seconds", form_field="start_delay", per_race=True,
        ),
        RoomSetting(
            "time_limit", int, 24, "Time limit",
            low=1, high=72, unit="hours", form_field="time_limit", per_race=True,
        ),
        RoomSetting(
            "streaming_required", bool, False, "Entrants must stream",
            form_field="streaming_required", per_race=True,
        ),
        RoomSetting("auto_start", bool, True, "Start when everyone is ready", form_field="auto_start", per_race=True),
        RoomSetting("allow_comments", bool, True, "Allow finish comments", form_field="allow_comments"),
        RoomSetting("hide_comments", bool, False, "Hide comments until the race ends", form_field="hide_comments"),
        RoomSetting("allow_prerace_chat", bool, True, "Allow chat before the start", form_field="allow_prerace_chat"),
        RoomSetting("allow_midrace_chat", bool, True, "Allow chat during the race", form_field="allow_midrace_chat"),
        RoomSetting(
            "allow_non_entrant_chat", bool, True, "Allow chat from non-entrants",
            form_field="allow_non_entrant_chat",
        ),
        RoomSetting(
            "chat_message_delay", int, 0, "Chat delay",
            low=0, high=90, unit="seconds", form_field="chat_message_delay",
        ),
        RoomSetting("invitational", bool, False, "Invitational room", form_field="invitational", per_race=True),
        RoomSetting("unlisted", bool, False, "Unlisted room", form_field="unlisted", per_race=True),
        # Startline's own: `scheduled` opens the room with auto_start off and starts it at its time (room presence).
        RoomSetting(
            "start_mode", str, "auto", "How the race starts (scheduled: by Startline, at its time)",
            choices=("auto", "scheduled"), per_race=True,
        ),
        RoomSetting("min_ready", int, 2, "Entrants ready before a scheduled start", low=1, high=100, unit="entrants"),
        # Startline's own: when the seed appears in the room (and to players through Discord and the API).
        RoomSetting(
            "seed_reveal", str, "at_open", "When the seed is shown",
            choices=("at_open", "before_start", "at_start"),
        ),
        RoomSetting(
            "seed_reveal_minutes", int, 5, "With before_start: how long before the start the seed is shown",
            low=1, high=60, unit="minutes",
        ),
    )
}  # fmt: skip


def built_in_settings() -> dict[str, Any]:
    """Every setting at its built-in value: the last layer of resolution."""
    return {name: setting.default for name, setting in ROOM_SETTINGS.items()}


def validate_room_settings(values: dict[str, Any] | None, *, field_prefix: str = "") -> dict[str, Any]:
    """Check a partial set of room settings; None values mean "inherit" and are dropped."""
    cleaned: dict[str, Any] = {}
    for key, value in (values or {}).items():
        name = f"{field_prefix}{key}"
        setting = ROOM_SETTINGS.get(key)
        if setting is None:
            raise ValidationFailed(f"unknown room setting {key!r}", field=name)
        if value is not None:
            cleaned[key] = setting.check(value, field=name)
    return cleaned


def racetime_settings(room: dict[str, Any]) -> RacetimeRoomSettings:
    """The RaceTime.gg form of resolved settings: every setting that has a form field; Startline's own stay out.

    A `scheduled` start turns RaceTime.gg's auto start off, so the race never starts before its time."""
    form = {setting.form_field: room[name] for name, setting in ROOM_SETTINGS.items() if setting.form_field}
    if room.get("start_mode") == "scheduled":
        form["auto_start"] = False
    return RacetimeRoomSettings(**form)


def profile_settings(profile: RoomProfile | None) -> dict[str, Any]:
    if profile is None:
        return {}
    return {key: getattr(profile, key) for key in ROOM_SETTINGS if getattr(profile, key) is not None}


def resolve(*layers: dict[str, Any]) -> dict[str, Any]:
    """Merge layers, most specific first, over the built-in defaults."""
    resolved = built_in_settings()
    for layer in reversed(layers):
        resolved.update({k: v for k, v in layer.items() if v is not None})
    return resolved


async def resolve_for_race(
    session: AsyncSession,
    race: LiveRace,
    tournament: Tournament,
    guild: GuildSettings | EllipsisType | None = ...,
) -> dict[str, Any]:
    """The race's room settings. `guild`: the race's guild settings when the caller has read them (None: the guild
    has none), so a batch of races does not look a missing row up again for each race (`...`: read them here)."""
    if guild is ...:
        guild = await session.get(GuildSettings, race.guild_id)
    layers: list[dict[str, Any]] = [dict(race.room_settings or {})]
    for profile_id in (
        race.room_profile_id,
        tournament.room_profile_id,
        guild.default_room_profile_id if guild else None,
    ):
        layers.append(profile_settings(await session.get(RoomProfile, profile_id)) if profile_id else {})
    return resolve(*layers)


async def profile_or_404(
    session: AsyncSession, guild_id: int, profile_id: int, *, field: str = "room_profile_id"
) -> RoomProfile:
    profile = await session.get(RoomProfile, profile_id)
    if profile is None or profile.guild_id != guild_id:
        raise NotFound(f"room profile {profile_id} not found", field=field)
    return profile


class RoomProfileService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, guild_id: int, actor: Actor, *, name: str, **settings: Any) -> RoomProfile:
        """Create a room profile of the guild (name and settings validated, audited)."""
        name = clean_name(name, "name")
        values = validate_room_settings(settings)
        async with self.db.transaction() as session:
            await self._check_unique(session, guild_id, name)
            profile = RoomProfile(guild_id=guild_id, name=name, **values)
            session.add(profile)
            await session.flush()
            await audit.record(
                session,
                guild_id=guild_id,
                actor=actor,
                action="room_profile.create",
                target_type="room_profile",
                target_id=profile.id,
                details={"name": name, **values},
            )
            return profile

    async def update(self, guild_id: int, profile_id: int, actor: Actor, **changes: Any) -> RoomProfile:
        """Change fields; a field given as None goes back to inheriting."""
        name = changes.pop("name", None)
        unknown = set(changes) - set(ROOM_SETTINGS)
        if unknown:
            key = sorted(unknown)[0]
            raise ValidationFailed(f"unknown room setting {key!r}", field=key)
        values = validate_room_settings(changes)
        cleared = [key for key, value in changes.items() if value is None]
        async with self.db.transaction() as session:
            profile = await profile_or_404(session, guild_id, profile_id)
            if name is not None:
                name = clean_name(name, "name")
                if name.lower() != profile.name.lower():
                    await self._check_unique(session, guild_id, name)
                profile.name = name
            for key, value in values.items():
                setattr(profile, key, value)
            for key in cleared:
                setattr(profile, key, None)
            await audit.record(
                session,
                guild_id=guild_id,
                actor=actor,
                action="room_profile.update",
                target_type="room_profile",
                target_id=profile.id,
                details={"name": name, "set": values, "cleared": cleared},
            )
            return profile

    async def delete(self, guild_id: int, profile_id: int, actor: Actor) -> None:
        """Delete a room profile (audited); Conflict while a scheduled live race uses it."""
        async with self.db.transaction() as session:
            profile = await profile_or_404(session, guild_id, profile_id)
            in_use = await session.scalar(
                select(LiveRace.id)
                .where(LiveRace.room_profile_id == profile_id, LiveRace.status == RaceStatus.SCHEDULED)
                .limit(1)
            )
            if in_use is not None:
                raise Conflict(f"room profile {profile.name!r} is used by scheduled live race {in_use}")
            # Tournaments and the guild default fall back to inheriting (the FKs are ON DELETE SET NULL,
            # done explicitly so SQLite without foreign keys behaves the same).
            await session.execute(
                update(Tournament).where(Tournament.room_profile_id == profile_id).values(room_profile_id=None)
            )
            await session.execute(
                update(GuildSettings)
                .where(GuildSettings.default_room_profile_id == profile_id)
                .values(default_room_profile_id=None)
            )
            await audit.record(
                session,
                guild_id=guild_id,
                actor=actor,
                action="room_profile.delete",
                target_type="room_profile",
                target_id=profile.id,
                details={"name": profile.name},
            )
            await session.delete(profile)

    async def get(self, guild_id: int, profile_id: int) -> RoomProfile:
        """The guild's room profile; NotFound otherwise."""
        async with self.db.read() as session:
            return await profile_or_404(session, guild_id, profile_id)

    async def list(self, guild_id: int, *, search: str | None = None) -> list[RoomProfile]:
        """The guild's room profiles by name, optionally matching a search."""
        query = select(RoomProfile).where(RoomProfile.guild_id == guild_id).order_by(RoomProfile.name)
        if search:
            query = query.where(RoomProfile.name.ilike(f"%{search}%"))
        async with self.db.read() as session:
            return list((await session.scalars(query)).all())

    async def _check_unique(self, session: AsyncSession, guild_id: int, name: str) -> None:
        clash = await session.scalar(
            select(RoomProfile.id).where(
                RoomProfile.guild_id == guild_id, func.lower(RoomProfile.name) == func.lower(name)
            )
        )
        if clash is not None:
            raise Conflict(f"a room profile named {name!r} already exists", field="name")
