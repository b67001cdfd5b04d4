"""Audit trail: one entry for every change, with its actor. Written in the caller's transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.actors import Actor
from bot.services.common import Keyset, Page
from db.models import AuditEntry
from db.session import Database


async def record(
    session: AsyncSession,
    *,
    guild_id: int,
    actor: Actor,
    action: str,
    target_type: str,
    target_id: int | None,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    entry = AuditEntry(
        guild_id=guild_id,
        actor_type=actor.type,
        actor_id=actor.id,
        actor_name=actor.name[:120],
        action=action,
        target_type=target_type,
        target_id=target_id,
        details=_jsonable(details or {}),
    )
    session.add(entry)
    return entry


async def record_many(
    session: AsyncSession,
    *,
    guild_id: int,
    actor: Actor,
    action: str,
    target_type: str,
    entries: list[tuple[int | None, dict[str, Any]]],
) -> None:
    """Many entries of one action at once (target id and details each), in one INSERT: a batch's audit trail."""
    if not entries:
        return
    await session.execute(
        insert(AuditEntry.__table__),
        [
            {
                "guild_id": guild_id,
                "actor_type": actor.type,
                "actor_id": actor.id,
                "actor_name": actor.name[:120],
                "action": action,
                "target_type": target_type,
                "target_id": target_id,
                "details": _jsonable(details),
            }
            for target_id, details in entries
        ],
    )


def _jsonable(value: Any) -> Any:
    """Audit details go into a JSON column: datetimes and enums become strings."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


class AuditService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def list(
        self,
        guild_id: int,
        *,
        target_type: str | None = None,
        target_id: int | None = None,
        action: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        newest_first: bool = True,
    ) -> Page[AuditEntry]:
        """One page of the guild's audit trail, filtered by target and action, newest first unless told."""
        window = Keyset.of(limit, cursor, newest_first=newest_first)
        query = select(AuditEntry).where(AuditEntry.guild_id == guild_id)
        if target_type is not None:
            query = query.where(AuditEntry.target_type == target_type)
        if target_id is not None:
            query = query.where(AuditEntry.target_id == target_id)
        if action is not None:
            query = query.where(AuditEntry.action == action)
        async with self.db.read() as session:
            rows = list(await session.scalars(window.select(query, AuditEntry.id)))
        return window.page(rows, lambda e: e.id)
