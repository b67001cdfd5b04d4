"""What a write transaction has read already, found again without another statement.

A session's identity map holds the rows the transaction loaded, but only while something references them (it keeps
weak references), `session.get` looks a missing row up again every time, and a query returns the objects already in
the map without refreshing them (no `populate_existing`). So a re-read of rows the transaction holds costs a
statement and returns what the transaction had. The room opener reads a batch's races with their tournament, pool,
seed and guild settings in the statement that locks them (`race_locks.lock_races(with_context=True)`); the services
that run later in the same transaction (the outbox writer) find them here:

- `hold` keeps objects referenced until the session ends (`session.info`), so the identity map keeps them;
- `loaded` is an identity-map lookup that never emits SQL: the object when it is there with every column loaded
  (none expired, not deleted), else None, and the caller reads it as before;
- `remember_guild_settings` / `known_guild_settings` remember a guild's settings row, or that it has none, for
  transactions that never write guild settings (the room opener's).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final, TypeVar

from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.util import identity_key

from db.models import GuildSettings

T = TypeVar("T")

HELD = "session_cache.held"  # session.info: objects kept referenced for the rest of the session
GUILD_SETTINGS = "session_cache.guild_settings"  # session.info: guild id -> its settings row, or None (no row)


class _Unknown:
    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Final = _Unknown()


def hold(session: AsyncSession, objects: Iterable[Any]) -> None:
    """Keep `objects` referenced until the session ends: the identity map (weak references) then keeps them."""
    session.info.setdefault(HELD, []).extend(obj for obj in objects if obj is not None)


def loaded(session: AsyncSession, cls: type[T], key: Any) -> T | None:
    """The object of `cls` with primary key `key` when the session has it with every column loaded (no statement);
    else None. A query would return this very object, unchanged."""
    obj = session.identity_map.get(identity_key(cls, key))
    if obj is None:
        return None
    state = inspect(obj)
    if state.deleted or state.was_deleted or obj in session.deleted:
        return None
    unloaded = state.unloaded
    if any(attr.key in unloaded for attr in state.mapper.column_attrs):
        return None
    return obj


def remember_guild_settings(session: AsyncSession, guild_id: int, settings: GuildSettings | None) -> None:
    """The guild's settings as this transaction read them (None: it has no row). Only in a transaction that never
    writes guild settings (the room opener's)."""
    session.info.setdefault(GUILD_SETTINGS, {})[guild_id] = settings
    hold(session, [settings])


def known_guild_settings(session: AsyncSession, guild_id: int) -> GuildSettings | _Unknown | None:
    """The guild's settings remembered by this transaction (None: it has none), or UNKNOWN."""
    return session.info.get(GUILD_SETTINGS, {}).get(guild_id, UNKNOWN)


async def guild_settings_once(session: AsyncSession, guild_id: int) -> GuildSettings | None:
    """A guild's settings, read once per transaction also when the guild has none (`session.get` looks a missing
    row up again every time). Only in a transaction that never writes guild settings (the room opener's)."""
    known = known_guild_settings(session, guild_id)
    if isinstance(known, _Unknown):
        known = await session.get(GuildSettings, guild_id)
        remember_guild_settings(session, guild_id, known)
    return known
