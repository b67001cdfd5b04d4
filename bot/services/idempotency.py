"""Idempotency keys: a request that creates something, sent again with the same key, creates nothing and gets the
first answer back.

A key belongs to one guild and lives `WINDOW` (24 h). Its row goes through three states, each written by a
compare-and-set on the request's `claim_id`:

1. `in_progress`: `begin` reserves the key in a short transaction of its own, so a second request with the key
   finds it at once (409 `idempotency_key_in_progress`) instead of creating a second object;
2. `created`: `committing_with` marks the key in the same transaction that creates the object (through
   `db.session.joining_writes`, so the service that creates it knows nothing of keys): the object and "this key
   made it" commit together or not at all;
3. `done`: `finish` stores the answer (status, body, Location), which every later request with the key replays.

A request that fails (a validation error, a conflict) committed nothing: `abandon` frees its key, so a corrected
retry with the same key runs. A process that dies holding an `in_progress` key committed nothing either: after
`ABANDONED_AFTER` another request may take the key over (the dead one could not mark it `created` any more: its
claim is gone). A process that dies between 2 and 3 leaves `created` without an answer: the object exists, so the
key keeps answering 409 rather than create a second one. Nothing here knows HTTP: the API's route registry
(`bot/api/registry.py`) turns the header into calls of this service.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import SYSTEM_CLOCK
from bot.errors import IdempotencyKeyInProgress, IdempotencyKeyReused, ValidationFailed
from bot.services.common import conflict_ignoring_insert
from db.models import IdempotencyKey, IdempotencyState
from db.session import Database, joining_writes

log = logging.getLogger(__name__)

WINDOW = timedelta(hours=24)
# A reservation under which nothing committed for this long belongs to a request that died: it may be taken over.
ABANDONED_AFTER = timedelta(minutes=2)
MAX_KEY_LENGTH = 255
KEY_FIELD = "Idempotency-Key"


@dataclass(frozen=True)
class StoredAnswer:
    """The first answer to a key: replayed as it was."""

    status: int
    body: str
    location: str | None


@dataclass(frozen=True)
class KeyClaim:
    """This request holds the key."""

    row_id: int
    claim_id: str


def check_key(key: str) -> str:
    """A key is 1 to 255 printable ASCII characters (a UUID fits)."""
    if not key:
        raise ValidationFailed(f"{KEY_FIELD} must not be empty", field=KEY_FIELD)
    if len(key) > MAX_KEY_LENGTH:
        raise ValidationFailed(f"{KEY_FIELD} must be at most {MAX_KEY_LENGTH} characters", field=KEY_FIELD)
    if not all(" " <= char <= "~" for char in key):
        raise ValidationFailed(f"{KEY_FIELD} must be printable ASCII (a UUID, for example)", field=KEY_FIELD)
    return key


def request_fingerprint(method: str, path: str, body: Any) -> str:
    """The same for the same request: method, path and body (as canonical JSON: key order and spacing do not count)."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{method.upper()} {path}\n{canonical}".encode()).hexdigest()


class IdempotencyService:
    def __init__(self, db: Database, *, clock: Callable[[], datetime] = SYSTEM_CLOCK) -> None:
        self.db = db
        self.clock = clock

    async def begin(self, guild_id: int, key: str, fingerprint: str, request: str) -> StoredAnswer | KeyClaim:
        """The stored answer of this key, or the key reserved for this request. Raises `IdempotencyKeyReused`
        (422) when the key was used for another request, `IdempotencyKeyInProgress` (409) while another request
        holds it."""
        key = check_key(key)
        now = self.clock()
        async with self.db.read() as session:  # the usual repeat: a read only, even while a writer holds SQLite
            row = await self._row(session, guild_id, key)
        if row is not None and row.created_at > now - WINDOW:
            answer = self._decide(row, fingerprint, now)
            if answer is not None:
                return answer
        async with self.db.transaction() as session:
            # A row past the window is gone (the upkeep job purges them all; this one is needed now).
            await session.execute(
                delete(IdempotencyKey).where(
                    IdempotencyKey.guild_id == guild_id,
                    IdempotencyKey.key == key,
                    IdempotencyKey.created_at <= now - WINDOW,
                )
            )
            claim_id = uuid.uuid4().hex
            values = {
                "guild_id": guild_id,
                "key": key,
                "fingerprint": fingerprint,
                "request": request[:300],
                "state": IdempotencyState.IN_PROGRESS,
                "claim_id": claim_id,
                "claimed_at": now,
                "created_at": now,
            }
            row_id = await session.scalar(
                conflict_ignoring_insert(session, IdempotencyKey)
                .values(values)
                .on_conflict_do_nothing(index_elements=["guild_id", "key"])
                .returning(IdempotencyKey.id)
            )
            if row_id is not None:
                return KeyClaim(row_id, claim_id)
            # Another request reserved it since we looked (PostgreSQL waited for its commit): decide again.
            row = await self._row(session, guild_id, key)
            assert row is not None
            answer = self._decide(row, fingerprint, now)
            if answer is not None:
                return answer
            # Its reservation was abandoned (the request died before committing anything): take it over.
            taken = await session.execute(
                update(IdempotencyKey)
                .where(
                    IdempotencyKey.id == row.id,
                    IdempotencyKey.claim_id == row.claim_id,
                    IdempotencyKey.state == IdempotencyState.IN_PROGRESS,
                )
                .values(claim_id=claim_id, claimed_at=now)
                .execution_options(synchronize_session=False)
            )
            if taken.rowcount == 1:
                log.warning("idempotency key of guild %s: taking over an abandoned request (%s)", guild_id, request)
                return KeyClaim(row.id, claim_id)
            raise _in_progress(row, now)

    def _decide(self, row: Any, fingerprint: str, now: datetime) -> StoredAnswer | None:
        """What an existing, live key means for this request; None when its reservation was abandoned."""
        if row.fingerprint != fingerprint:
            raise IdempotencyKeyReused(
                f"this {KEY_FIELD} was used within {WINDOW.total_seconds() / 3600:g} h for another request "
                f"({row.request}, or another body); send a new key with a new request",
                field=KEY_FIELD,
            )
        if row.state == IdempotencyState.DONE:
            return StoredAnswer(row.response_status, row.response_body, row.response_location)
        if row.state == IdempotencyState.IN_PROGRESS and row.claimed_at <= now - ABANDONED_AFTER:
            return None
        raise _in_progress(row, now)

    @staticmethod
    async def _row(session: AsyncSession, guild_id: int, key: str) -> Any:
        return (
            await session.execute(
                select(
                    IdempotencyKey.id,
                    IdempotencyKey.fingerprint,
                    IdempotencyKey.request,
                    IdempotencyKey.state,
                    IdempotencyKey.claim_id,
                    IdempotencyKey.claimed_at,
                    IdempotencyKey.response_status,
                    IdempotencyKey.response_body,
                    IdempotencyKey.response_location,
                    IdempotencyKey.created_at,
                ).where(IdempotencyKey.guild_id == guild_id, IdempotencyKey.key == key)
            )
        ).first()

    @contextmanager
    def committing_with(self, claim: KeyClaim) -> Iterator[None]:
        """Inside the block, every write transaction of this task also marks the key `created`: the object a
        service creates there and the mark commit together. A claim another request took over (this one was
        taken for dead) rolls the transaction back with a 409."""

        async def mark(session: AsyncSession) -> None:
            result = await session.execute(
                update(IdempotencyKey)
                .where(IdempotencyKey.id == claim.row_id, IdempotencyKey.claim_id == claim.claim_id)
                .values(state=IdempotencyState.CREATED)
                .execution_options(synchronize_session=False)
            )
            if result.rowcount != 1:
                raise IdempotencyKeyInProgress(
                    f"another request with this {KEY_FIELD} took it over; nothing was changed by this one",
                    field=KEY_FIELD,
                )

        with joining_writes(mark):
            yield

    async def finish(self, claim: KeyClaim, status: int, body: str, location: str | None) -> None:
        """Store the answer that later requests with the key replay."""
        async with self.db.transaction() as session:
            await session.execute(
                update(IdempotencyKey)
                .where(IdempotencyKey.id == claim.row_id, IdempotencyKey.claim_id == claim.claim_id)
                .values(
                    state=IdempotencyState.DONE,
                    response_status=status,
                    response_body=body,
                    response_location=location,
                )
                .execution_options(synchronize_session=False)
            )

    async def abandon(self, claim: KeyClaim) -> None:
        """The request failed: free its key, unless something committed under it (then the key stays taken)."""
        async with self.db.transaction() as session:
            await session.execute(
                delete(IdempotencyKey).where(
                    IdempotencyKey.id == claim.row_id,
                    IdempotencyKey.claim_id == claim.claim_id,
                    IdempotencyKey.state == IdempotencyState.IN_PROGRESS,
                )
            )

    async def purge_expired(self) -> int:
        """Delete every key past its window (run by the upkeep job). Returns how many."""
        async with self.db.transaction() as session:
            result = await session.execute(
                delete(IdempotencyKey)
                .where(IdempotencyKey.created_at <= self.clock() - WINDOW)
                .execution_options(synchronize_session=False)
            )
        count = result.rowcount or 0
        if count:
            log.info("purged %d idempotency key(s) older than %s", count, WINDOW)
        return count


def _in_progress(row: Any, now: datetime) -> IdempotencyKeyInProgress:
    if row.state == IdempotencyState.CREATED and row.claimed_at <= now - ABANDONED_AFTER:
        message = (
            f"the request with this {KEY_FIELD} created its object, but its answer was not stored (the server "
            "stopped); find the object with a GET instead of sending the request again"
        )
    else:
        message = f"a request with this {KEY_FIELD} is still being processed; send it again in a moment"
    return IdempotencyKeyInProgress(message, field=KEY_FIELD, details={"state": row.state.value})
