"""Several processes on one database: who is running (heartbeats), who does a piece of periodic work now (job
leases), and how RaceTime.gg answers this process (its health, per set of credentials).

- **Heartbeats.** Each process upserts its own `process_heartbeats` row every `scheduler.heartbeat_interval_seconds`
  with its jobs' state and its RaceTime.gg health; the process count is the rows seen within two intervals. A
  process that stops cleanly deletes its row; rows not seen for a day are removed by whoever beats next.
- **Leases.** `Leases.take(name, seconds=…)` is a compare-and-set on a `job_leases` row: it succeeds when nobody
  holds the lease, the holder's ran out (it crashed), or the caller holds it already (a renewal). With
  `due_every`, it also needs the work to have been done (`done`) at least that long ago, which makes work such as the
  score upkeep happen once per interval across all processes, by whichever comes first. Never "only one process
  may run": any process takes over a lease that ran out.
- **RaceTime.gg health.** `RacetimeObserver` is what the client reports to (each request's endpoint kind and status,
  each token fetch); it feeds the metrics and `RacetimeHealth` (last token, last success, last error), which the
  heartbeat stores for `/startline status`. Each category's bot has its own client and observer (`credentials=` the
  category); a single client serving every category reports as `default` (`racetime.clients.DEFAULT_CREDENTIALS`).
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, or_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from bot import metrics
from bot.clock import SYSTEM_CLOCK
from db.models import JobLease, ProcessHeartbeat
from db.session import Database

log = logging.getLogger(__name__)

FORGET_AFTER = timedelta(days=1)  # heartbeat rows of processes gone this long are removed
LIVENESS_INTERVALS = 2  # a process counts as running while its row is younger than this many intervals


@dataclass(frozen=True)
class ProcessIdentity:
    id: str
    hostname: str
    pid: int
    started_at: datetime

    @classmethod
    def new(cls, now: datetime | None = None) -> ProcessIdentity:
        """This process: a new id, the host name and pid, started `now` (the system clock's when not given)."""
        return cls(uuid.uuid4().hex, socket.gethostname()[:255], os.getpid(), now or SYSTEM_CLOCK())


# ---- RaceTime.gg health ------------------------------------------------------------------------------------
@dataclass
class CredentialHealth:
    last_token_at: datetime | None = None
    last_success_at: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None

    def snapshot(self) -> dict[str, Any]:
        """JSON-ready, for the heartbeat row."""
        return {
            "last_token_at": _iso(self.last_token_at),
            "last_success_at": _iso(self.last_success_at),
            "last_error": self.last_error,
            "last_error_at": _iso(self.last_error_at),
        }


@dataclass
class RacetimeHealth:
    """How RaceTime.gg answered this process, per set of credentials."""

    by_credentials: dict[str, CredentialHealth] = field(default_factory=dict)

    def of(self, credentials: str) -> CredentialHealth:
        """The health record of one set of credentials (made on first use)."""
        return self.by_credentials.setdefault(credentials, CredentialHealth())

    def snapshot(self) -> dict[str, Any]:
        """JSON-ready, by credentials, for the heartbeat row."""
        return {name: health.snapshot() for name, health in self.by_credentials.items()}


def _is_error(status: str) -> bool:
    """A failure of RaceTime.gg or of our credentials (a 404 or a 422 is an answer about one room or form)."""
    if not status.isdigit():
        return True  # timeout, network error
    code = int(status)
    return code >= 500 or code in (401, 403, 429)


class RacetimeObserver:
    """What a `RacetimeClient` tells about its requests (`observer=`): metrics and health for its credentials."""

    def __init__(
        self,
        health: RacetimeHealth,
        credentials: str,
        clock: Callable[[], datetime] = SYSTEM_CLOCK,
    ) -> None:
        self.health = health
        self.credentials = credentials
        self.clock = clock

    def request(self, endpoint: str, status: str) -> None:
        """Count one RaceTime.gg request and note an error status in the credentials' health."""
        metrics.observe_racetime_request(endpoint, status)
        health = self.health.of(self.credentials)
        if _is_error(status):
            health.last_error = f"{endpoint}: {status if not status.isdigit() else 'HTTP ' + status}"
            health.last_error_at = self.clock()
        elif status.startswith("2"):
            health.last_success_at = self.clock()

    def token(self, ok: bool, error: str | None = None) -> None:
        """Count one token fetch and note its outcome in the credentials' health."""
        metrics.observe_racetime_token(self.credentials, ok)
        health = self.health.of(self.credentials)
        if ok:
            health.last_token_at = self.clock()
        else:
            health.last_error = f"token: {error}"[:500]
            health.last_error_at = self.clock()


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


# ---- heartbeats --------------------------------------------------------------------------------------------
class Heartbeats:
    def __init__(
        self,
        db: Database,
        identity: ProcessIdentity,
        *,
        interval_seconds: float,
        version: str,
        jobs: Callable[[], dict[str, Any]],
        racetime: Callable[[], dict[str, Any]],
        discord: Callable[[], str],
        clock: Callable[[], datetime] = SYSTEM_CLOCK,
    ) -> None:
        self.db = db
        self.identity = identity
        self.interval = timedelta(seconds=interval_seconds)
        self.version = version
        self._jobs = jobs
        self._racetime = racetime
        self._discord = discord
        self.clock = clock

    @property
    def liveness_window(self) -> timedelta:
        """How long a heartbeat counts a process as alive."""
        return self.interval * LIVENESS_INTERVALS

    def values(self, now: datetime) -> dict[str, Any]:
        """The columns of this process's heartbeat row at `now`."""
        return {
            "hostname": self.identity.hostname,
            "pid": self.identity.pid,
            "version": self.version[:40],
            "discord": self._discord()[:40],
            "started_at": self.identity.started_at,
            "seen_at": now,
            "jobs": self._jobs(),
            "racetime": self._racetime(),
        }

    async def beat(self) -> None:
        """Upsert this process's row (only this process writes it), and forget processes gone for a day."""
        now = self.clock()
        values = self.values(now)
        async with self.db.transaction() as session:
            result = await session.execute(
                update(ProcessHeartbeat).where(ProcessHeartbeat.id == self.identity.id).values(**values)
            )
            if result.rowcount == 0:
                session.add(ProcessHeartbeat(id=self.identity.id, **values))
            await session.execute(delete(ProcessHeartbeat).where(ProcessHeartbeat.seen_at < now - FORGET_AFTER))

    async def forget(self) -> None:
        """A clean stop: this process no longer counts."""
        async with self.db.transaction() as session:
            await session.execute(delete(ProcessHeartbeat).where(ProcessHeartbeat.id == self.identity.id))


# ---- leases ------------------------------------------------------------------------------------------------
def _insert_ignoring(session: AsyncSession, values: dict[str, Any]):
    dialect = session.bind.dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(JobLease).values(**values).on_conflict_do_nothing(index_elements=["name"])


class Leases:
    def __init__(self, db: Database, holder: str, clock: Callable[[], datetime] = SYSTEM_CLOCK) -> None:
        self.db = db
        self.holder = holder
        self.clock = clock

    async def take(self, name: str, *, seconds: float, due_every: float | None = None) -> bool:
        """Hold `name` for `seconds` from now if it is free, ran out, or is ours; with `due_every`, only if the
        work was last `done` at least that many seconds ago. True when this process now holds it."""
        now = self.clock()
        conditions = [
            JobLease.name == name,
            or_(JobLease.held_until.is_(None), JobLease.held_until <= now, JobLease.holder == self.holder),
        ]
        if due_every is not None:
            conditions.append(or_(JobLease.done_at.is_(None), JobLease.done_at <= now - timedelta(seconds=due_every)))
        async with self.db.transaction() as session:
            await session.execute(_insert_ignoring(session, {"name": name}))
            result = await session.execute(
                update(JobLease)
                .where(*conditions)
                .values(holder=self.holder, held_until=now + timedelta(seconds=seconds))
            )
            return result.rowcount == 1

    async def done(self, name: str) -> None:
        """The work is done: note when, and let the lease go."""
        async with self.db.transaction() as session:
            await session.execute(
                update(JobLease)
                .where(JobLease.name == name, JobLease.holder == self.holder)
                .values(done_at=self.clock(), held_until=None)
            )

    async def release(self, name: str) -> None:
        """Give a lease up early, if this process still holds it."""
        async with self.db.transaction() as session:
            await session.execute(
                update(JobLease).where(JobLease.name == name, JobLease.holder == self.holder).values(held_until=None)
            )
