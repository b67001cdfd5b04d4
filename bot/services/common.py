"""Small helpers shared by the services: input checks, keyset pagination, and an insert that ignores conflicts."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar
from urllib.parse import urlparse

from sqlalchemy import Select, Table, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from bot.errors import Conflict, ValidationFailed

T = TypeVar("T")

MAX_PAGE_SIZE = 200
DEFAULT_PAGE_SIZE = 50


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    """Cursors are opaque to clients; inside they carry the last id seen."""
    if cursor is None or cursor == "":
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        raw = base64.urlsafe_b64decode(padded.encode()).decode()
        prefix, _, value = raw.partition(":")
        if prefix != "id":
            raise ValueError(raw)
        return int(value)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ValidationFailed("cursor is not one this API returned", field="cursor") from None


def page_limit(limit: int | None) -> int:
    if limit is None:
        return DEFAULT_PAGE_SIZE
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise ValidationFailed(f"limit must be between 1 and {MAX_PAGE_SIZE}", field="limit")
    return limit


def make_page(rows: list[T], limit: int, id_of) -> Page[T]:
    """`rows` was fetched with limit + 1 to learn whether another page exists."""
    if len(rows) > limit:
        rows = rows[:limit]
        return Page(rows, encode_cursor(id_of(rows[-1])))
    return Page(rows, None)


@dataclass(frozen=True)
class Keyset:
    """One page of a list ordered by id (keyset pagination): `limit` rows after the id the cursor carries.
    `newest_first` pages from the highest id down."""

    limit: int
    after: int | None
    newest_first: bool = False

    @classmethod
    def of(cls, limit: int | None, cursor: str | None, *, newest_first: bool = False) -> Keyset:
        """The page a client asked for; ValidationFailed for a limit out of range (checked first) or a cursor this
        API did not return."""
        return cls(page_limit(limit), decode_cursor(cursor), newest_first)

    def select(self, query: Select[Any], id_column: Any) -> Select[Any]:
        """`query` ordered by `id_column`, from after the cursor, one row more than the limit (see `page`)."""
        if self.after is not None:
            query = query.where(id_column < self.after if self.newest_first else id_column > self.after)
        return query.order_by(id_column.desc() if self.newest_first else id_column).limit(self.limit + 1)

    def page(self, rows: Iterable[T], id_of: Callable[[T], int]) -> Page[T]:
        """The page of the rows `select` fetched, with the cursor of the next page if there is one."""
        return make_page(list(rows), self.limit, id_of)


def clean_name(value: str | None, field: str, *, max_length: int = 100) -> str:
    name = (value or "").strip()
    if not name:
        raise ValidationFailed(f"{field} must not be empty", field=field)
    if len(name) > max_length:
        raise ValidationFailed(f"{field} must be at most {max_length} characters", field=field)
    return name


def clean_text(value: str | None, field: str, *, max_length: int = 2000) -> str:
    text = (value or "").strip()
    if len(text) > max_length:
        raise ValidationFailed(f"{field} must be at most {max_length} characters", field=field)
    return text


def check_int(value: int, field: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValidationFailed(f"{field} must be a whole number from {low} to {high}", field=field)
    return value


@dataclass(frozen=True)
class IntRange:
    """A whole number's range, declared once: the service checks it, the API model and the slash command option
    (`app_commands.Range`, which Discord shows and enforces) are made from it."""

    low: int
    high: int

    def check(self, value: int, field: str) -> int:
        """`value` when it lies in the range, else ValidationFailed naming `field`."""
        return check_int(value, field, self.low, self.high)

    def __str__(self) -> str:
        return f"{self.low}–{self.high}"


# How long before the start a room opens (tournaments and the guild's default).
ROOM_OPEN_LEAD_MINUTES = IntRange(0, 1440)
# Ids typed as numbers (an API token's number): positive and within what Discord's integer options carry.
RECORD_ID = IntRange(1, 2**53 - 1)


def check_url(value: str | None, field: str = "url", *, max_length: int = 500) -> str:
    url = (value or "").strip()
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValidationFailed(f"{field} must be an http(s) URL, like https://example.com/seed/abc", field=field)
    if len(url) > max_length:
        raise ValidationFailed(f"{field} must be at most {max_length} characters", field=field)
    return url


def require_aware(value: datetime, field: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationFailed(
            f"{field} must include a timezone offset (for example 2026-12-01T19:00:00Z)", field=field
        )
    return value.astimezone(UTC)


async def check_unique_name(
    session: AsyncSession, model: type, parent: Any, parent_id: int, name: str, what: str, *, own_id: int | None = None
) -> None:
    """Names are unique per parent, case-insensitively: Conflict unless the only holder of `name` is `own_id`."""
    clash = await session.scalar(
        select(model.id).where(parent == parent_id, func.lower(model.name) == name.lower())  # type: ignore[attr-defined]
    )
    if clash is not None and clash != own_id:
        raise Conflict(f"a {what} called {name!r} already exists", field="name")


async def check_unique_in_tournament(
    session: AsyncSession, model: type, tournament_id: int, name: str, what: str, *, own_id: int | None = None
) -> None:
    """`check_unique_name` for what a tournament holds (its phases, series and templates)."""
    parent = model.tournament_id  # type: ignore[attr-defined]
    await check_unique_name(session, model, parent, tournament_id, name, f"{what} in this tournament", own_id=own_id)


def conflict_ignoring_insert(session: AsyncSession, table: Table | type) -> postgresql.Insert | sqlite.Insert:
    """`INSERT` that can take `.on_conflict_do_nothing(...)`, in the dialect of the session (SQLite or PostgreSQL)."""
    dialect = session.bind.dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise RuntimeError(f"no conflict-ignoring insert for {dialect}")  # pragma: no cover - settings allow two
