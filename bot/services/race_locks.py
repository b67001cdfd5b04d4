"""The one way to change a live race: lock its row first (docs/architecture.md, "Live race lifecycle").

Every moderator action (edit, delete, cancel, open now, record) and every job step (the opener's claim, record and
failure, the poller's apply, closing stray rooms) starts its write transaction with `lock_race`, re-reads the race
there and decides on what it finds. On PostgreSQL that is `SELECT … FOR UPDATE`: a second writer of the same race
waits for the first to commit and then reads its result. On SQLite `db.transaction()` already began with
`BEGIN IMMEDIATE`, which excludes every other writer of the database until the commit, so the same holds. HTTP
calls to RaceTime.gg are made outside these transactions: a step decides under the lock, calls RaceTime.gg, then
locks again and re-checks before it records what happened.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import LiveRace


async def lock_race(session: AsyncSession, race_id: int, *, guild_id: int | None = None) -> LiveRace | None:
    """The race row, locked until the transaction ends and freshly read (None when it does not exist)."""
    query = select(LiveRace).where(LiveRace.id == race_id)
    if guild_id is not None:
        query = query.where(LiveRace.guild_id == guild_id)
    return await session.scalar(query.with_for_update().execution_options(populate_existing=True))
