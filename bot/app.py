"""The Startline process: database, services, jobs and the side server, with or without Discord.

`Application` owns everything that runs in both modes. In Discord mode `StartlineBot.start` starts it (before
logging in, so it runs while Discord is unreachable) and `StartlineBot.close` stops it; in `--no-discord` mode
`run.py` does the same directly.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from bot.api import ApiServer
from bot.clock import Clock
from bot.events import EventBus
from bot.jobs import JobRunner
from bot.notifications.delivery import Delivery
from bot.notifications.dispatcher import NotificationDispatcher
from bot.services import Services, build_services
from bot.services.processes import (
    Heartbeats,
    Leases,
    ProcessIdentity,
    RacetimeHealth,
    RacetimeObserver,
)
from bot.services.status import PermissionProbe, StatusService
from bot.settings import Settings
from db import migrate
from db.session import Database

if TYPE_CHECKING:
    from racetime.client import RacetimeClient
    from racetime.clients import RacetimeClients

log = logging.getLogger(__name__)


def freeze_startup_objects() -> None:
    """Take what is alive once the process is wired (modules, classes, the services) out of the collector's scans.

    Every full collection otherwise walks those long-lived objects again, and building thousands of rows (the
    eligibility of 10,000 players) sets one off: in the benchmark that walk was half the evaluation's time.
    Called once per process by `run.py serve`; what is frozen is never collected, so not in tests.
    """
    gc.collect()
    gc.freeze()


def racetime_client_from(settings: Settings) -> RacetimeClients | None:
    """One RaceTime.gg client per configured category bot, or None when there is none (rooms then cannot open)."""
    if not settings.has_racetime_credentials:
        return None
    from racetime.clients import clients_from_credentials

    racetime = settings.racetime
    return clients_from_credentials(
        racetime.base_url,
        racetime.credentials(),
        timeout=racetime.request_timeout_seconds,
        connect_timeout=racetime.connect_timeout_seconds,
    )


def _version() -> str:
    try:
        return version("startline")
    except PackageNotFoundError:
        return "0.1.0"


class Application:
    def __init__(
        self,
        settings: Settings,
        *,
        run_migrations: bool = True,
        start_jobs: bool = True,
        racetime_client: RacetimeClient | RacetimeClients | None = None,
    ) -> None:
        self.settings = settings
        self.version = _version()
        self.db = Database.from_settings(settings.database)
        self.events = EventBus()
        # The one clock of the process: every service, job and the dispatcher read it (bot/clock.py).
        self.clock = Clock()
        # An injected client (tests) belongs to the caller; one made from the settings is closed by stop().
        self._owns_racetime = racetime_client is None
        if racetime_client is not None:
            from racetime.clients import as_clients

            self.racetime = as_clients(racetime_client)
        else:
            self.racetime = racetime_client_from(settings)
        self.services: Services = build_services(
            settings, self.db, self.events, racetime=self.racetime, clock=self.clock
        )
        self.jobs = JobRunner(clock=self.clock)
        self.api = ApiServer(self)
        # Several processes on one database (docs/architecture.md, "Jobs"): who this process is, its heartbeat,
        # the leases of work one process at a time does, and how RaceTime.gg answers it.
        self.identity = ProcessIdentity.new(self.clock())
        self.started_at = self.identity.started_at
        self.leases = Leases(self.db, self.identity.id, self.clock)
        self.racetime_health = RacetimeHealth()
        if self.racetime is not None:
            # One observer per bot: each category's token health is kept under its own name.
            for credentials, client in self.racetime.items():
                client.observer = RacetimeObserver(self.racetime_health, credentials, clock=self.clock)
        self.heartbeats = Heartbeats(
            self.db,
            self.identity,
            interval_seconds=settings.scheduler.heartbeat_interval_seconds,
            version=self.version,
            jobs=lambda: {name: status.snapshot() for name, status in self.jobs.status.items()},
            racetime=self.racetime_health.snapshot,
            discord=lambda: self.discord_state,
            clock=self.clock,
        )
        self.status = StatusService(self.db, settings, self.heartbeats, racetime=self.racetime, clock=self.clock)
        # The gateway's view of a guild's channel permissions; set by the Discord adapter (cogs/admin.py).
        self.permission_probe: PermissionProbe | None = None
        poller = self.services.live_races.poller
        poller.leases, poller.lease_seconds = self.leases, 2 * settings.racetime.poll_interval_seconds
        from bot.services.room_presence import RoomPresence

        self.presence = RoomPresence(
            self.db,
            self.racetime if settings.racetime.room_presence else None,
            leases=self.leases,
            lease_seconds=3 * settings.racetime.presence_interval_seconds,
            clock=self.services.live_races._now,
        )
        self.metrics = None
        if settings.metrics.enabled:
            from bot.api.metrics_server import MetricsServer

            self.metrics = MetricsServer(self, settings.metrics)
        self.run_migrations = run_migrations
        self.start_jobs = start_jobs
        self.discord_state = "disabled"
        # How notifications reach Discord; None without a gateway (rows wait in the outbox).
        self.delivery: Delivery | None = None
        self.dispatcher = NotificationDispatcher(self.db, settings, lambda: self.delivery, clock=self.clock)
        self.started = False

    async def start(self) -> None:
        if self.run_migrations:
            await migrate.upgrade(self.db)
        if self.settings.api.enabled:
            await self.api.start()
        if self.metrics is not None:
            await self.metrics.start()
        self._register_jobs()
        if self.start_jobs:
            self.jobs.start()
        self.started = True
        log.info("Startline %s started (discord: %s)", self.version, self.discord_state)

    def _register_jobs(self) -> None:
        scheduler = self.settings.scheduler
        beat = scheduler.heartbeat_interval_seconds
        self.jobs.add("heartbeat", self.heartbeats.beat, seconds=beat)
        upkeep = scheduler.score_upkeep_interval_seconds
        self.jobs.add("score_upkeep", self._upkeep, seconds=upkeep, first_run_in=upkeep)
        live_races = self.services.live_races
        # Both start soon after start-up, so rooms and results missed while the process was down catch up.
        self.jobs.add(
            "room_opener", live_races.run_room_opener, seconds=scheduler.opener_interval_seconds, first_run_in=1
        )
        self.jobs.add(
            "race_poller",
            live_races.run_race_poller,
            seconds=self.settings.racetime.poll_interval_seconds,
            first_run_in=2,
        )
        if self.settings.racetime.room_presence and self.racetime is not None:
            self.jobs.add(
                "room_presence",
                self.presence.run_cycle,
                seconds=self.settings.racetime.presence_interval_seconds,
                first_run_in=3,
            )
        series = self.settings.series.interval_seconds
        self.jobs.add("series", self.services.series.run_job, seconds=series, first_run_in=3)
        reminders = self.services.reminders
        reminders.leases = self.leases  # one process queues each cycle; the dedupe keys make a second harmless
        self.jobs.add("reminders", reminders.run_job, seconds=reminders.interval_seconds, first_run_in=4)
        dispatch = self.settings.notifications.dispatch_interval_seconds
        self.jobs.add("notification_dispatcher", self.dispatcher.run_once, seconds=dispatch, first_run_in=dispatch)

    async def _upkeep(self) -> None:
        """The hourly upkeep: scores of active tournaments (once per interval across processes, a lease), and
        idempotency keys past their 24 hours."""
        every = self.settings.scheduler.score_upkeep_interval_seconds
        await self.services.scoring.upkeep(self.leases, every_seconds=every)
        await self.services.idempotency.purge_expired()

    async def stop(self) -> None:
        # No new runs; the runs in progress end (the dispatcher's once the messages being sent are recorded)
        # before anything they use is closed.
        await asyncio.gather(self.jobs.shutdown(), self.dispatcher.close())
        await self.presence.close()
        if self.start_jobs and self.started:
            try:
                await self.heartbeats.forget()  # no longer counted among the processes
            except Exception:
                log.warning("could not remove this process's heartbeat row", exc_info=True)
        await self.api.stop()
        if self.metrics is not None:
            await self.metrics.stop()
        if self.racetime is not None and self._owns_racetime:
            await self.racetime.aclose()
        await self.db.dispose()
        self.started = False
        log.info("Startline stopped")
