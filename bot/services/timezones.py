"""Which time zone a person's typed times are read in and their labels shown in: their own, else the server's.

A person's own zone (`/timezone set`) is a global preference on `players`, the same in every server; the server's
zone (`/startline config timezone:`) stays the default for everyone who set none.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from bot.actors import Actor
from bot.services import audit
from bot.services.guilds import check_timezone, get_or_default
from bot.services.players import ensure_member
from db.models import Player
from db.session import Database


@dataclass(frozen=True)
class Zones:
    own: str | None  # the person's saved zone, if any
    server: str  # the guild's zone (UTC unless set)

    @property
    def effective(self) -> str:
        """The member's own time zone, else the server's."""
        return self.own or self.server


class TimezoneService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def zones(self, guild_id: int, discord_user_id: int) -> Zones:
        """The person's own zone and the server's, in one read."""
        async with self.db.read() as session:
            own = await session.scalar(select(Player.timezone).where(Player.discord_user_id == discord_user_id))
            server = (await get_or_default(session, guild_id)).timezone or "UTC"
        return Zones(own, server)

    async def set_own(self, guild_id: int, discord_user_id: int, timezone: str | None, actor: Actor) -> Zones:
        """Save (or with None, forget) the person's own zone; audited in the guild where they did it."""
        zone = check_timezone(timezone) if timezone is not None else None
        async with self.db.transaction() as session:
            player = await ensure_member(session, guild_id, discord_user_id)
            before = player.timezone
            player.timezone = zone
            await audit.record(
                session,
                guild_id=guild_id,
                actor=actor,
                action="player.timezone",
                target_type="player",
                target_id=player.id,
                details={"before": before, "after": zone},
            )
            server = (await get_or_default(session, guild_id)).timezone or "UTC"
        return Zones(zone, server)
