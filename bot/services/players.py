"""Players (Discord users), their guild membership and their RaceTime.gg link."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.actors import Actor
from bot.errors import Conflict, NotFound, ValidationFailed
from bot.services import audit
from bot.services.common import Page, clean_name, decode_cursor, make_page, page_limit
from db.models import GuildPlayer, Player
from db.session import Database
from db.types import utcnow

MAX_DISCORD_ID = 2**63 - 1


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


async def ensure_member(
    session: AsyncSession, guild_id: int, discord_user_id: int, display_name: str | None = None
) -> Player:
    """Get or create the player and their membership of the guild, in the caller's transaction."""
    player = await session.scalar(select(Player).where(Player.discord_user_id == discord_user_id))
    if player is None:
        player = Player(discord_user_id=discord_user_id, display_name=(display_name or str(discord_user_id))[:100])
        session.add(player)
        await session.flush()
    elif display_name and player.display_name != display_name[:100]:
        player.display_name = display_name[:100]
    membership = await session.get(GuildPlayer, (guild_id, player.id))
    if membership is None:
        session.add(GuildPlayer(guild_id=guild_id, player_id=player.id))
        await session.flush()
    return player


async def member_or_404(session: AsyncSession, guild_id: int, discord_user_id: int) -> Player:
    player = await session.scalar(
        select(Player)
        .join(GuildPlayer, GuildPlayer.player_id == Player.id)
        .where(Player.discord_user_id == discord_user_id, GuildPlayer.guild_id == guild_id)
    )
    if player is None:
        raise NotFound(f"player {discord_user_id} is not known in this server", field="discord_user_id")
    return player


class PlayerService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def touch(self, guild_id: int, discord_user_id: int, display_name: str | None = None) -> Player:
        """A user used the bot in a guild: register them there, and lift a DM block (they can be reached
        again once they interact with us)."""
        async with self.db.transaction() as session:
            player = await ensure_member(session, guild_id, discord_user_id, display_name)
            if player.dm_blocked:
                player.dm_blocked = False
                player.dm_blocked_at = None
            return player

    async def get(self, guild_id: int, discord_user_id: int) -> Player:
        async with self.db.read() as session:
            return await member_or_404(session, guild_id, discord_user_id)

    async def find(self, discord_user_id: int) -> Player | None:
        async with self.db.read() as session:
            return await session.scalar(select(Player).where(Player.discord_user_id == discord_user_id))

    async def list(
        self,
        guild_id: int,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        linked: bool | None = None,
        search: str | None = None,
    ) -> Page[Player]:
        limit = page_limit(limit)
        after = decode_cursor(cursor)
        query = (
            select(Player)
            .join(GuildPlayer, GuildPlayer.player_id == Player.id)
            .where(GuildPlayer.guild_id == guild_id)
            .order_by(Player.id)
            .limit(limit + 1)
        )
        if after is not None:
            query = query.where(Player.id > after)
        if linked is not None:
            query = query.where(Player.racetime_id.is_not(None) if linked else Player.racetime_id.is_(None))
        if search:
            query = query.where(Player.display_name.ilike(f"%{search}%"))
        async with self.db.read() as session:
            rows = list((await session.scalars(query)).all())
        return make_page(rows, limit, lambda p: p.id)

    async def upsert(
        self,
        guild_id: int,
        discord_user_id: int,
        actor: Actor,
        *,
        display_name: str,
        racetime_id: str | None = None,
        racetime_name: str | None = None,
    ) -> tuple[Player, bool]:
        """Import or update a roster entry (moderators, API). Returns (player, created).

        A RaceTime.gg link the player proved through OAuth is theirs: a moderator may not replace it.
        """
        check_discord_id(discord_user_id)
        display_name = clean_name(display_name, "display_name")
        if racetime_id is not None:
            racetime_id = check_racetime_id(racetime_id)
            racetime_name = clean_name(racetime_name or racetime_id, "racetime_name")
        async with self.db.transaction() as session:
            existing = await session.scalar(select(Player).where(Player.discord_user_id == discord_user_id))
            membership = existing and await session.get(GuildPlayer, (guild_id, existing.id))
            created = membership is None
            player = await ensure_member(session, guild_id, discord_user_id, display_name)
            changes: dict[str, object] = {"display_name": display_name}
            if racetime_id is not None and racetime_id != player.racetime_id:
                if player.racetime_verified:
                    raise Conflict(
                        "this player linked their own RaceTime.gg account; they can change it with /racetime link",
                        field="racetime_id",
                    )
                await self._claim_racetime_id(session, player, racetime_id)
                player.racetime_id = racetime_id
                player.racetime_name = racetime_name
                player.racetime_linked_at = utcnow()
                changes["racetime_id"] = racetime_id
            elif racetime_id is not None and racetime_name and player.racetime_name != racetime_name:
                player.racetime_name = racetime_name
            await audit.record(
                session,
                guild_id=guild_id,
                actor=actor,
                action="player.create" if created else "player.update",
                target_type="player",
                target_id=player.id,
                details={"discord_user_id": str(discord_user_id), **changes},
            )
        return player, created

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
    ) -> Player:
        """Link a RaceTime.gg account: `verified` when the user proved it through OAuth."""
        racetime_id = check_racetime_id(racetime_id)
        racetime_name = clean_name(racetime_name, "racetime_name")
        async with self.db.transaction() as session:
            player = await ensure_member(session, guild_id, discord_user_id, display_name)
            if not verified and player.racetime_verified and player.racetime_id != racetime_id:
                raise Conflict("this player linked their own RaceTime.gg account; only they can change it")
            await self._claim_racetime_id(session, player, racetime_id, verified=verified)
            player.racetime_id = racetime_id
            player.racetime_name = racetime_name
            player.racetime_verified = verified or player.racetime_verified
            player.racetime_linked_at = utcnow()
            await audit.record(
                session,
                guild_id=guild_id,
                actor=actor,
                action="player.link_racetime",
                target_type="player",
                target_id=player.id,
                details={"racetime_id": racetime_id, "racetime_name": racetime_name, "verified": verified},
            )
            return player

    async def unlink_racetime(self, guild_id: int, discord_user_id: int, actor: Actor) -> Player:
        async with self.db.transaction() as session:
            player = await member_or_404(session, guild_id, discord_user_id)
            if player.racetime_id is None:
                raise Conflict("no RaceTime.gg account is linked")
            previous = player.racetime_id
            player.racetime_id = None
            player.racetime_name = None
            player.racetime_verified = False
            player.racetime_linked_at = None
            await audit.record(
                session,
                guild_id=guild_id,
                actor=actor,
                action="player.unlink_racetime",
                target_type="player",
                target_id=player.id,
                details={"racetime_id": previous},
            )
            return player

    async def _claim_racetime_id(
        self, session: AsyncSession, player: Player, racetime_id: str, *, verified: bool = False
    ) -> None:
        holder = await session.scalar(select(Player).where(Player.racetime_id == racetime_id, Player.id != player.id))
        if holder is None:
            return
        if verified and not holder.racetime_verified:
            # The account's owner proved it: an unverified (moderator-made) link elsewhere gives way.
            holder.racetime_id = None
            holder.racetime_name = None
            try:
                await session.flush()
            except IntegrityError:  # pragma: no cover - a concurrent claim; the caller's commit fails too
                raise Conflict("that RaceTime.gg account is linked to another player") from None
            return
        raise Conflict("that RaceTime.gg account is linked to another player", field="racetime_id")
