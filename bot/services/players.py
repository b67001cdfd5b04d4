"""Players: Discord users (global), each guild's roster entry for them, and their RaceTime.gg links.

A player is global; what a guild says about them is its own roster entry (`GuildPlayer`): the name it shows, a
moderator's unverified RaceTime.gg link, and whether they left the server. A guild changes only its own entry, so
nothing one guild does changes what another sees. A link the player proved through OAuth (verified) is on the
player: theirs in every guild, and it wins over any guild's unverified link.

One RaceTime.gg account is at most one player per guild: an unverified link is unique in its guild (a unique
constraint), and an account someone verified is nobody else's anywhere (verifying clears the unverified links to
it, and a moderator cannot give it to anyone else).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, String, and_, case, cast, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.actors import SYSTEM, Actor
from bot.clock import SYSTEM_CLOCK
from bot.errors import Conflict, NotFound, ValidationFailed
from bot.services import audit
from bot.services.common import Keyset, Page, clean_name
from db.models import GuildPlayer, Player
from db.session import Database

MAX_DISCORD_ID = 2**63 - 1
VERIFIED_ELSEWHERE = "this player linked their own RaceTime.gg account; only they can change it (/racetime link)"
TAKEN = "that RaceTime.gg account is linked to another player"

# ---- a player as one guild sees them, in SQL (over Player joined with GuildPlayer) ---------------------------
# The verified link wins; otherwise the guild's own (unverified) link.
EFFECTIVE_RACETIME_ID = func.coalesce(Player.racetime_id, GuildPlayer.racetime_id)
EFFECTIVE_RACETIME_NAME = case((Player.racetime_id.is_not(None), Player.racetime_name), else_=GuildPlayer.racetime_name)


def roster_entry_of(guild_id: int, player_id: ColumnElement = Player.id) -> ColumnElement[bool]:
    """The join condition to the guild's roster entry of `player_id` (a players.id column)."""
    return and_(GuildPlayer.player_id == player_id, GuildPlayer.guild_id == guild_id)


def roster_name() -> ColumnElement[str]:
    """The name the guild shows, over an outer join with its roster entry (the Discord id if it has none)."""
    return func.coalesce(GuildPlayer.display_name, cast(Player.discord_user_id, String()))


@dataclass(frozen=True)
class RosterEntry:
    """A player as one guild sees them: its name and link for them, their verified link, whether they left."""

    id: int
    discord_user_id: int
    display_name: str
    racetime_id: str | None
    racetime_name: str | None
    racetime_verified: bool
    racetime_linked_at: datetime | None
    dm_blocked: bool
    joined_at: datetime
    left_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, player: Player, entry: GuildPlayer) -> RosterEntry:
        """The roster entry of a player in one guild."""
        verified = player.racetime_id is not None
        return cls(
            id=player.id,
            discord_user_id=player.discord_user_id,
            display_name=entry.display_name,
            racetime_id=player.racetime_id if verified else entry.racetime_id,
            racetime_name=player.racetime_name if verified else entry.racetime_name,
            racetime_verified=verified,
            racetime_linked_at=player.racetime_linked_at if verified else entry.racetime_linked_at,
            dm_blocked=player.dm_blocked,
            joined_at=entry.joined_at,
            left_at=entry.left_at,
            created_at=player.created_at,
            updated_at=max(player.updated_at, entry.updated_at),
        )


def check_discord_id(value: int, field: str = "discord_user_id") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_DISCORD_ID:
        raise ValidationFailed(f"{field} must be a Discord id (a positive 64-bit number)", field=field)
    return value


def check_racetime_id(value: str) -> str:
    value = value.strip()
    if not (8 <= len(value) <= 32) or not value.isalnum():
        raise ValidationFailed(
            "racetime_id must be a RaceTime.gg user id (the letters and digits in the profile URL, "
            "like 7BzeW5ErWom9Xgpb)",
            field="racetime_id",
        )
    return value


async def enrol(
    session: AsyncSession, guild_id: int, discord_user_id: int, display_name: str | None = None
) -> tuple[Player, GuildPlayer]:
    """Get or create the player and the guild's roster entry for them, in the caller's transaction. A name given
    becomes the guild's name for them; no other guild's entry is read or changed."""
    player = await session.scalar(select(Player).where(Player.discord_user_id == discord_user_id))
    if player is None:
        player = Player(discord_user_id=discord_user_id)
        session.add(player)
        await session.flush()
    entry = await session.get(GuildPlayer, (guild_id, player.id))
    if entry is None:
        entry = GuildPlayer(
            guild_id=guild_id, player_id=player.id, display_name=(display_name or str(discord_user_id))[:100]
        )
        session.add(entry)
        await session.flush()
    elif display_name and entry.display_name != display_name[:100]:
        entry.display_name = display_name[:100]
        await session.flush()
    return player, entry


async def ensure_member(
    session: AsyncSession, guild_id: int, discord_user_id: int, display_name: str | None = None
) -> Player:
    """Get or create the player and their roster entry in the guild, in the caller's transaction."""
    player, _ = await enrol(session, guild_id, discord_user_id, display_name)
    return player


async def roster_entry_or_404(session: AsyncSession, guild_id: int, discord_user_id: int) -> tuple[Player, GuildPlayer]:
    row = (
        await session.execute(
            select(Player, GuildPlayer)
            .join(GuildPlayer, roster_entry_of(guild_id))
            .where(Player.discord_user_id == discord_user_id)
        )
    ).first()
    if row is None:
        raise NotFound(f"player {discord_user_id} is not known in this server", field="discord_user_id")
    return row[0], row[1]


async def member_or_404(session: AsyncSession, guild_id: int, discord_user_id: int) -> Player:
    player, _ = await roster_entry_or_404(session, guild_id, discord_user_id)
    return player


class PlayerService:
    def __init__(self, db: Database, *, clock: Callable[[], datetime] = SYSTEM_CLOCK) -> None:
        self.db = db
        self.clock = clock

    async def touch(self, guild_id: int, discord_user_id: int, display_name: str | None = None) -> RosterEntry:
        """A user used the bot in a guild: register them there (or bring them back if they had left), and lift a
        DM block (they can be reached again once they interact with us)."""
        async with self.db.transaction() as session:
            player, entry = await enrol(session, guild_id, discord_user_id, display_name)
            if entry.left_at is not None:
                await self._come_back(session, entry, Actor.player(discord_user_id, entry.display_name))
            if player.dm_blocked:
                player.dm_blocked = False
                player.dm_blocked_at = None
            await session.flush()
            return RosterEntry.of(player, entry)

    async def guilds_of(self, discord_user_id: int) -> list[int]:
        """The guilds whose roster has this user (and who did not leave them), for commands used in DMs."""
        async with self.db.read() as session:
            query = (
                select(GuildPlayer.guild_id)
                .join(Player, Player.id == GuildPlayer.player_id)
                .where(Player.discord_user_id == discord_user_id, GuildPlayer.left_at.is_(None))
                .order_by(GuildPlayer.guild_id)
            )
            return list((await session.scalars(query)).all())

    async def get(self, guild_id: int, discord_user_id: int) -> RosterEntry:
        """The guild's roster entry for a Discord user; NotFound when they are not on it."""
        async with self.db.read() as session:
            return RosterEntry.of(*await roster_entry_or_404(session, guild_id, discord_user_id))

    async def entry(self, guild_id: int, discord_user_id: int) -> RosterEntry | None:
        """The guild's roster entry, or None when the user is not a player of this guild."""
        try:
            return await self.get(guild_id, discord_user_id)
        except NotFound:
            return None

    async def find(self, discord_user_id: int) -> Player | None:
        """The global player (DM state, verified link), whatever guild they play in."""
        async with self.db.read() as session:
            return await session.scalar(select(Player).where(Player.discord_user_id == discord_user_id))

    async def list(
        self,
        guild_id: int,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        linked: bool | None = None,
        left: bool | None = None,
        search: str | None = None,
    ) -> Page[RosterEntry]:
        """One page of the guild's roster, filtered by linked, left and a name search."""
        window = Keyset.of(limit, cursor)
        query = window.select(select(Player, GuildPlayer).join(GuildPlayer, roster_entry_of(guild_id)), Player.id)
        if linked is not None:
            query = query.where(EFFECTIVE_RACETIME_ID.is_not(None) if linked else EFFECTIVE_RACETIME_ID.is_(None))
        if left is not None:
            query = query.where(GuildPlayer.left_at.is_not(None) if left else GuildPlayer.left_at.is_(None))
        if search:
            query = query.where(GuildPlayer.display_name.ilike(f"%{search}%"))
        async with self.db.read() as session:
            rows = [RosterEntry.of(player, entry) for player, entry in (await session.execute(query)).all()]
        return window.page(rows, lambda entry: entry.id)

    async def upsert(
        self,
        guild_id: int,
        discord_user_id: int,
        actor: Actor,
        *,
        display_name: str,
        racetime_id: str | None = None,
        racetime_name: str | None = None,
    ) -> tuple[RosterEntry, bool]:
        """Import or update the guild's roster entry (moderators, API). Returns (entry, created).

        Only this guild's entry changes: its name for the player and its (unverified) link. A RaceTime.gg link the
        player proved through OAuth is theirs: a moderator may not replace it.
        """
        check_discord_id(discord_user_id)
        display_name = clean_name(display_name, "display_name")
        if racetime_id is not None:
            racetime_id = check_racetime_id(racetime_id)
            racetime_name = clean_name(racetime_name or racetime_id, "racetime_name")
        async with self.db.transaction() as session:
            existing = await session.scalar(select(Player.id).where(Player.discord_user_id == discord_user_id))
            created = existing is None or await session.get(GuildPlayer, (guild_id, existing)) is None
            player, entry = await enrol(session, guild_id, discord_user_id, display_name)
            changes: dict[str, object] = {"display_name": display_name}
            if racetime_id is not None and racetime_id != (player.racetime_id or entry.racetime_id):
                if player.racetime_id is not None:
                    raise Conflict(VERIFIED_ELSEWHERE, field="racetime_id")
                await self._set_guild_link(session, player, entry, racetime_id, racetime_name)
                changes["racetime_id"] = racetime_id
            elif racetime_id is not None and player.racetime_id is None and entry.racetime_name != racetime_name:
                entry.racetime_name = racetime_name
            await audit.record(
                session,
                guild_id=guild_id,
                actor=actor,
                action="player.create" if created else "player.update",
                target_type="player",
                target_id=player.id,
                details={"discord_user_id": str(discord_user_id), **changes},
            )
            await session.flush()
            return RosterEntry.of(player, entry), created

    async def link_racetime(
        self,
        guild_id: int,
        discord_user_id: int,
        racetime_id: str,
        racetime_name: str,
        actor: Actor,
        *,
        verified: bool,
        display_name: str | None = None,
    ) -> RosterEntry:
        """Link a RaceTime.gg account. `verified` (the user proved it through OAuth): the player's own link, in
        every guild. Otherwise a moderator's link, for this guild only."""
        racetime_id = check_racetime_id(racetime_id)
        racetime_name = clean_name(racetime_name, "racetime_name")
        async with self.db.transaction() as session:
            player, entry = await enrol(session, guild_id, discord_user_id, display_name)
            if verified:
                await self._set_verified_link(session, player, racetime_id, racetime_name)
            elif player.racetime_id is not None and player.racetime_id != racetime_id:
                raise Conflict(VERIFIED_ELSEWHERE, field="racetime_id")
            elif player.racetime_id is None:
                await self._set_guild_link(session, player, entry, racetime_id, racetime_name)
            await audit.record(
                session,
                guild_id=guild_id,
                actor=actor,
                action="player.link_racetime",
                target_type="player",
                target_id=player.id,
                details={"racetime_id": racetime_id, "racetime_name": racetime_name, "verified": verified},
            )
            await session.flush()
            return RosterEntry.of(player, entry)

    async def unlink_racetime(self, guild_id: int, discord_user_id: int, actor: Actor) -> RosterEntry:
        """The player removes the link that counts for them here: their verified link (in every guild, it is
        theirs), else this guild's link."""
        async with self.db.transaction() as session:
            player, entry = await roster_entry_or_404(session, guild_id, discord_user_id)
            verified = player.racetime_id is not None
            previous = player.racetime_id or entry.racetime_id
            if previous is None:
                raise Conflict("no RaceTime.gg account is linked")
            target = player if verified else entry
            target.racetime_id = None
            target.racetime_name = None
            target.racetime_linked_at = None
            await audit.record(
                session,
                guild_id=guild_id,
                actor=actor,
                action="player.unlink_racetime",
                target_type="player",
                target_id=player.id,
                details={"racetime_id": previous, "verified": verified},
            )
            await session.flush()
            return RosterEntry.of(player, entry)

    async def member_left(
        self, guild_id: int, discord_user_id: int, *, banned: bool = False, actor: Actor = SYSTEM
    ) -> bool:
        """The member left the server or was banned: their roster entry is marked left (not eligible, no DMs from
        this guild); their runs stay. Returns whether anything changed (Discord sends both a removal and a ban)."""
        async with self.db.transaction() as session:
            entry = await self._entry(session, guild_id, discord_user_id)
            if entry is None or (entry.left_at is not None and not banned):
                return False
            first = entry.left_at is None
            if first:
                entry.left_at = self.clock()
            await audit.record(
                session,
                guild_id=guild_id,
                actor=actor,
                action="player.banned" if banned else "player.left",
                target_type="player",
                target_id=entry.player_id,
                details={"discord_user_id": str(discord_user_id), "left_at": entry.left_at},
            )
            return first

    async def member_returned(
        self, guild_id: int, discord_user_id: int, display_name: str | None = None, *, actor: Actor = SYSTEM
    ) -> bool:
        """A member joined the server again: a roster entry marked left is restored. Someone the guild never knew
        stays unknown (joining a server makes no one a player). Returns whether anything changed."""
        async with self.db.transaction() as session:
            entry = await self._entry(session, guild_id, discord_user_id)
            if entry is None or entry.left_at is None:
                return False
            if display_name:
                entry.display_name = display_name[:100]
            await self._come_back(session, entry, actor)
            return True

    # ---- helpers ---------------------------------------------------------------------------------------
    @staticmethod
    async def _entry(session: AsyncSession, guild_id: int, discord_user_id: int) -> GuildPlayer | None:
        return await session.scalar(
            select(GuildPlayer)
            .join(Player, Player.id == GuildPlayer.player_id)
            .where(GuildPlayer.guild_id == guild_id, Player.discord_user_id == discord_user_id)
        )

    @staticmethod
    async def _come_back(session: AsyncSession, entry: GuildPlayer, actor: Actor) -> None:
        left_at, entry.left_at = entry.left_at, None
        await audit.record(
            session,
            guild_id=entry.guild_id,
            actor=actor,
            action="player.rejoined",
            target_type="player",
            target_id=entry.player_id,
            details={"left_at": left_at},
        )

    async def _set_guild_link(
        self, session: AsyncSession, player: Player, entry: GuildPlayer, racetime_id: str, racetime_name: str | None
    ) -> None:
        """A moderator's link for this guild: refused when another player verified the account, or has it in
        this guild (the unique constraint backs the check against a concurrent claim)."""
        owner = await session.scalar(select(Player.id).where(Player.racetime_id == racetime_id, Player.id != player.id))
        holder = await session.scalar(
            select(GuildPlayer.player_id).where(
                GuildPlayer.guild_id == entry.guild_id,
                GuildPlayer.racetime_id == racetime_id,
                GuildPlayer.player_id != player.id,
            )
        )
        if owner is not None or holder is not None:
            raise Conflict(TAKEN, field="racetime_id")
        entry.racetime_id = racetime_id
        entry.racetime_name = racetime_name
        entry.racetime_linked_at = self.clock()

    async def _set_verified_link(
        self, session: AsyncSession, player: Player, racetime_id: str, racetime_name: str
    ) -> None:
        """The player proved the account: it is theirs everywhere. Unverified links to it (another player's, in any
        guild) give way, and so do the player's own guild links, which their verified link replaces."""
        owner = await session.scalar(select(Player.id).where(Player.racetime_id == racetime_id, Player.id != player.id))
        if owner is not None:
            raise Conflict(TAKEN, field="racetime_id")
        await session.execute(
            update(GuildPlayer)
            .where(
                GuildPlayer.racetime_id.is_not(None),
                or_(GuildPlayer.racetime_id == racetime_id, GuildPlayer.player_id == player.id),
            )
            .values(racetime_id=None, racetime_name=None, racetime_linked_at=None)
            .execution_options(synchronize_session="fetch")
        )
        player.racetime_id = racetime_id
        player.racetime_name = racetime_name
        player.racetime_linked_at = self.clock()
