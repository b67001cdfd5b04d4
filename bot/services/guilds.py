"""Per-guild settings: organizer role, announcement and moderator channels, timezone, room-open lead."""

from __future__ import annotations

import secrets
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.actors import Actor
from bot.errors import ValidationFailed
from bot.services import audit
from bot.services.common import ROOM_OPEN_LEAD_MINUTES
from bot.services.reminders import check_guild_default
from bot.services.room_profiles import profile_or_404
from db.models import GuildSettings
from db.session import Database

_UNSET: Any = object()
EDITABLE_FIELDS = (
    "organizer_role_id",
    "announcement_channel_id",
    "announcement_role_id",
    "moderator_channel_id",
    "timezone",
    "room_open_lead_minutes",
    "default_room_profile_id",
    "scheduled_events",
    "default_reminder_offsets",
)


def check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationFailed(
            f"unknown timezone {name!r}; use an IANA name such as Europe/Berlin or America/New_York",
            field="timezone",
        ) from None
    return name


async def get_or_default(session: AsyncSession, guild_id: int) -> GuildSettings:
    """The stored settings, or an unsaved row holding the defaults."""
    settings = await session.get(GuildSettings, guild_id)
    if settings is None:
        settings = GuildSettings(guild_id=guild_id, timezone="UTC")
    return settings


class GuildSettingsService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, guild_id: int) -> GuildSettings:
        """The guild's settings, the defaults when it has none stored."""
        async with self.db.read() as session:
            return await get_or_default(session, guild_id)

    async def update(self, guild_id: int, actor: Actor, **changes: Any) -> GuildSettings:
        """Change the guild's editable settings (validated, audited); ValidationFailed for an unknown one."""
        unknown = set(changes) - set(EDITABLE_FIELDS)
        if unknown:
            raise ValidationFailed(f"unknown setting {sorted(unknown)[0]!r}", field=sorted(unknown)[0])
        if "timezone" in changes:
            changes["timezone"] = check_timezone(changes["timezone"] or "UTC")
        if changes.get("room_open_lead_minutes") is not None:
            ROOM_OPEN_LEAD_MINUTES.check(changes["room_open_lead_minutes"], "room_open_lead_minutes")
        if "default_reminder_offsets" in changes:
            # The player's rules (`parse_offsets`); stored like a player's offsets, "none" clears the default.
            changes["default_reminder_offsets"] = check_guild_default(changes["default_reminder_offsets"])
        async with self.db.transaction() as session:
            settings = await session.get(GuildSettings, guild_id)
            if settings is None:
                settings = GuildSettings(guild_id=guild_id, timezone="UTC")
                session.add(settings)
            profile_id = changes.get("default_room_profile_id")
            if profile_id is not None:
                await profile_or_404(session, guild_id, profile_id, field="default_room_profile_id")
            before = {key: getattr(settings, key) for key in changes}
            for key, value in changes.items():
                setattr(settings, key, value)
            if changes.get("scheduled_events"):  # on again: the moderators fixed Manage Events, try once more
                settings.scheduled_events_blocked_at = None
            await audit.record(
                session,
                guild_id=guild_id,
                actor=actor,
                action="guild_settings.update",
                target_type="guild",
                target_id=guild_id,
                details={"before": before, "after": changes},
            )
        return settings

    async def calendar_secret(self, guild_id: int, *, rotate: bool = False) -> str:
        """The secret that authorises the guild's iCal feed (calendar apps cannot send headers)."""
        async with self.db.transaction() as session:
            settings = await session.get(GuildSettings, guild_id)
            if settings is None:
                settings = GuildSettings(guild_id=guild_id, timezone="UTC")
                session.add(settings)
            if settings.calendar_secret is None or rotate:
                settings.calendar_secret = secrets.token_urlsafe(24)
            return settings.calendar_secret

    async def guild_for_calendar_secret(self, secret: str) -> int | None:
        """The guild whose calendar feed `secret` opens, or None."""
        if not secret:
            return None
        async with self.db.read() as session:
            row = await session.scalar(select(GuildSettings).where(GuildSettings.calendar_secret == secret))
        if row is None or not secrets.compare_digest(row.calendar_secret or "", secret):
            return None
        return row.guild_id
