"""Room profiles: named RaceTime.gg room settings, and how a race's settings are resolved.

Resolution, per field: the race's own override → the race's chosen profile → the tournament's profile → the
guild's default profile → built-in defaults. A profile may leave a field unset (NULL) to inherit it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.actors import Actor
from bot.errors import Conflict, NotFound, ValidationFailed
from bot.services import audit
from bot.services.common import clean_name
from db.models import GuildSettings, LiveRace, RaceStatus, RoomProfile, Tournament
from db.session import Database

# field -> (kind, low, high, unit); ranges are RaceTime.gg's own.
ROOM_SETTING_SPECS: dict[str, tuple[type, int | None, int | None, str]] = {
    "start_delay": (int, 10, 60, "seconds"),
    "time_limit": (int, 1, 72, "hours"),
    "streaming_required": (bool, None, None, ""),
    "auto_start": (bool, None, None, ""),
    "allow_comments": (bool, None, None, ""),
    "hide_comments": (bool, None, None, ""),
    "allow_prerace_chat": (bool, None, None, ""),
    "allow_midrace_chat": (bool, None, None, ""),
    "allow_non_entrant_chat": (bool, None, None, ""),
    "chat_message_delay": (int, 0, 90, "seconds"),
    "invitational": (bool, None, None, ""),
    "unlisted": (bool, None, None, ""),
}

BUILT_IN_ROOM_SETTINGS: dict[str, Any] = {
    "start_delay": 15,
    "time_limit": 24,
    "streaming_required": False,
    "auto_start": True,
    "allow_comments": True,
    "hide_comments": False,
    "allow_prerace_chat": True,
    "allow_midrace_chat": True,
    "allow_non_entrant_chat": True,
    "chat_message_delay": 0,
    "invitational": False,
    "unlisted": False,
}


def validate_room_settings(values: dict[str, Any] | None, *, field_prefix: str = "") -> dict[str, Any]:
    """Check a partial set of room settings; None values mean "inherit" and are dropped."""
    cleaned: dict[str, Any] = {}
    for key, value in (values or {}).items():
        name = f"{field_prefix}{key}"
        if key not in ROOM_SETTING_SPECS:
            raise ValidationFailed(f"unknown room setting {key!r}", field=name)
        if value is None:
            continue
        kind, low, high, unit = ROOM_SETTING_SPECS[key]
        if kind is bool:
            if not isinstance(value, bool):
                raise ValidationFailed(f"{key} must be true or false", field=name)
        else:
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:  # type: ignore[operator]
                raise ValidationFailed(f"{key} must be a whole number of {unit} from {low} to {high}", field=name)
        cleaned[key] = value
    return cleaned


def profile_settings(profile: RoomProfile | None) -> dict[str, Any]:
    if profile is None:
        return {}
    return {key: getattr(profile, key) for key in ROOM_SETTING_SPECS if getattr(profile, key) is not None}


def resolve(*layers: dict[str, Any]) -> dict[str, Any]:
    """Merge layers, most specific first, over the built-in defaults."""
    resolved = dict(BUILT_IN_ROOM_SETTINGS)
    for layer in reversed(layers):
        resolved.update({k: v for k, v in layer.items() if v is not None})
    return resolved


async def resolve_for_race(session: AsyncSession, race: LiveRace, tournament: Tournament) -> dict[str, Any]:
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
        unknown = set(changes) - set(ROOM_SETTING_SPECS)
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
        async with self.db.read() as session:
            return await profile_or_404(session, guild_id, profile_id)

    async def list(self, guild_id: int, *, search: str | None = None) -> list[RoomProfile]:
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
