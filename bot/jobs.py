"""Periodic jobs on APScheduler (AsyncIOScheduler, in the bot's event loop).

Every job's state lives in the database, so a restart simply resumes. A job body that raises is logged and
the schedule goes on: no exception can kill a job. A run never overlaps the previous run of the same job; a tick
that finds it still running is skipped quietly (a long run, such as the dispatcher draining a big outbox, is
normal, and APScheduler would log a warning for every such tick). Shutting down waits for the runs in progress,
so nothing a job uses (the database, the RaceTime.gg client) is closed under it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot import metrics
from bot.clock import SYSTEM_CLOCK, system_now
from bot.logs import log_context

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_SECONDS = 15.0  # a run still going after this at shutdown is cancelled


@dataclass
class JobStatus:
    interval_seconds: float = 0.0
    runs: int = 0
    failures: int = 0
    skipped_ticks: int = 0  # ticks that came while the previous run was still going
    last_started_at: datetime | None = None
    last_success_at: datetime | None = None  # when the last run that raised nothing ended
    last_duration_ms: float | None = None
    last_error: str | None = None

    def snapshot(self) -> dict[str, object]:
        """JSON-ready, for the heartbeat row (`bot/services/processes.py`)."""
        return {
            "interval_seconds": self.interval_seconds,
            "runs": self.runs,
            "failures": self.failures,
            "last_run_at": self.last_started_at.isoformat() if self.last_started_at else None,
            "last_success_at": self.last_success_at.isoformat() if self.last_success_at else None,
            "last_error": self.last_error,
        }


@dataclass
class JobRunner:
    scheduler: AsyncIOScheduler = field(default_factory=lambda: AsyncIOScheduler(timezone=UTC))
    status: dict[str, JobStatus] = field(default_factory=dict)
    _jobs: dict[str, Callable[[], Awaitable[object]]] = field(default_factory=dict)
    _running: dict[str, asyncio.Task | None] = field(default_factory=dict)
    # The application's clock, for the run times a status view compares with its own "now".
    clock: Callable[[], datetime] = SYSTEM_CLOCK

    def add(
        self, name: str, body: Callable[[], Awaitable[object]], *, seconds: float, first_run_in: float = 0.0
    ) -> None:
        self._jobs[name] = body
        self.status[name] = JobStatus(interval_seconds=seconds)
        self.scheduler.add_job(
            self._tick,
            "interval",
            args=[name],
            seconds=seconds,
            id=name,
            name=name,
            max_instances=2,  # the second instance only sees the first still running and returns
            coalesce=True,
            misfire_grace_time=None,
            # APScheduler fires on the wall clock, whatever clock the application runs on.
            next_run_time=system_now() + timedelta(seconds=first_run_in),
        )

    async def _tick(self, name: str) -> None:
        if name in self._running:
            self.status[name].skipped_ticks += 1
            return
        self._running[name] = asyncio.current_task()
        try:
            await self.run_once(name)
        except asyncio.CancelledError:  # by shutdown(), after the grace period: a line, not a traceback
            log.warning("job %s was cancelled at shutdown in the middle of a run", name)
        finally:
            del self._running[name]

    async def run_once(self, name: str) -> None:
        """Run one job body now, recording the outcome. Also used by tests to drive a cycle."""
        status = self.status[name]
        status.last_started_at = self.clock()
        started = time.perf_counter()
        ok = False
        with log_context(job=name):  # every line the body logs names the job (docs/architecture.md, "Logs")
            try:
                await self._jobs[name]()
            except Exception as exc:  # a job must survive anything its body does
                status.failures += 1
                status.last_error = f"{type(exc).__name__}: {exc}"[:500]
                log.exception("job %s failed", name)
            else:
                ok = True
                status.last_error = None
                status.last_success_at = self.clock()
            finally:
                status.runs += 1
                status.last_duration_ms = (time.perf_counter() - started) * 1000
                metrics.observe_job_run(name, ok, status.last_duration_ms / 1000)

    def start(self) -> None:
        # AsyncIOScheduler binds to the running loop, so this must be called from inside it.
        if not self.scheduler.running:
            self.scheduler.start()

    async def shutdown(self, grace_seconds: float = SHUTDOWN_GRACE_SECONDS) -> None:
        """Stop scheduling, then wait for the runs in progress; cancel those still going after `grace_seconds`.

        (APScheduler's own shutdown cancels the runs in progress, so it comes last.)
        """
        if not self.scheduler.running:
            return
        self.scheduler.pause()
        runs = [task for task in self._running.values() if task is not None]
        if runs:
            _, late = await asyncio.wait(runs, timeout=grace_seconds)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
        self.scheduler.shutdown(wait=False)

    @property
    def running(self) -> bool:
        return self.scheduler.running
