"""The Startline process: database, services, jobs and the side server, with or without Discord.

`Application` owns everything that runs in both modes. In Discord mode `StartlineBot.setup_hook` starts it and
`StartlineBot.close` stops it; in `--no-discord` mode `run.py` does the same directly.
"""

from __future__ import annotations

import logging
from importlib.metadata import PackageNotFoundError, version

from bot.api import ApiServer
from bot.events import EventBus
from bot.jobs import JobRunner
from bot.notifications.delivery import Delivery
from bot.notifications.dispatcher import NotificationDispatcher
from bot.services import Services, build_services
from bot.settings import Settings
from db import migrate
from db.session import Database

log = logging.getLogger(__name__)


def _version() -> str:
    try:
        return version("startline")
    except PackageNotFoundError:
        return "0.1.0"


class Application:
    def __init__(self, settings: Settings, *, run_migrations: bool = True, start_jobs: bool = True) -> None:
        self.settings = settings
        self.version = _version()
        self.db = Database(
            settings.database.url, echo=settings.database.echo, busy_timeout_ms=settings.database.busy_timeout_ms
        )
        self.events = EventBus()
        self.services: Services = build_services(settings, self.db, self.events)
        self.jobs = JobRunner()
        self.api = ApiServer(self)
        self.run_migrations = run_migrations
        self.start_jobs = start_jobs
        self.discord_state = "disabled"
        self.discord_bot = None  # set by StartlineBot in Discord mode
        # How notifications reach Discord; None without a gateway (rows wait in the outbox).
        self.delivery: Delivery | None = None
        self.dispatcher = NotificationDispatcher(self.db, settings, lambda: self.delivery)
        self.started = False

    async def start(self) -> None:
        if self.run_migrations:
            await migrate.upgrade(self.db)
        if self.settings.api.enabled:
            await self.api.start()
        self._register_jobs()
        if self.start_jobs:
            self.jobs.start()
        self.started = True
        log.info("Startline %s started (discord: %s)", self.version, self.discord_state)

    def _register_jobs(self) -> None:
        scheduler = self.settings.scheduler
        upkeep = scheduler.score_upkeep_interval_seconds
        self.jobs.add("score_upkeep", self.services.scoring.upkeep, seconds=upkeep, first_run_in=upkeep)
        dispatch = self.settings.notifications.dispatch_interval_seconds
        self.jobs.add("notification_dispatcher", self.dispatcher.run_once, seconds=dispatch, first_run_in=dispatch)

    async def stop(self) -> None:
        self.jobs.shutdown()
        await self.dispatcher.close()  # messages being sent finish and are recorded
        await self.api.stop()
        await self.db.dispose()
        self.started = False
        log.info("Startline stopped")
