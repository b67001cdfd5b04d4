"""The domain services. They know nothing of Discord or HTTP; cogs and API handlers call them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.clock import SYSTEM_CLOCK, Clock
from bot.events import EventBus
from bot.services.account_links import AccountLinkService
from bot.services.audit import AuditService
from bot.services.batch import BatchService
from bot.services.calendar import CalendarService
from bot.services.eligibility import EligibilityService
from bot.services.guilds import GuildSettingsService
from bot.services.idempotency import IdempotencyService
from bot.services.live_races import LiveRaceService
from bot.services.notifications import NotificationService
from bot.services.phases import PhaseService
from bot.services.players import PlayerService
from bot.services.reminders import ReminderService
from bot.services.room_profiles import RoomProfileService
from bot.services.runs import RunService
from bot.services.scoring import ScoringService
from bot.services.seasons import SeasonService
from bot.services.series import SeriesService
from bot.services.standings import StandingService
from bot.services.templates import TemplateService
from bot.services.timezones import TimezoneService
from bot.services.tokens import TokenService
from bot.services.tournaments import TournamentService
from bot.settings import Settings
from db.session import Database

if TYPE_CHECKING:
    from racetime.client import RacetimeClient
    from racetime.clients import RacetimeClients


@dataclass
class Services:
    settings: Settings
    db: Database
    events: EventBus
    audit: AuditService
    guilds: GuildSettingsService
    players: PlayerService
    tournaments: TournamentService
    room_profiles: RoomProfileService
    runs: RunService
    scoring: ScoringService
    tokens: TokenService
    eligibility: EligibilityService
    live_races: LiveRaceService
    account_links: AccountLinkService
    calendar: CalendarService
    notifications: NotificationService
    templates: TemplateService
    series: SeriesService
    batch: BatchService
    phases: PhaseService
    seasons: SeasonService
    timezones: TimezoneService
    standings: StandingService
    idempotency: IdempotencyService
    reminders: ReminderService
    clock: Clock = SYSTEM_CLOCK


def build_services(
    settings: Settings,
    db: Database,
    events: EventBus | None = None,
    *,
    racetime: RacetimeClient | RacetimeClients | None = None,
    clock: Clock | None = None,
) -> Services:
    """Every service, sharing one database, event bus and clock (`bot/clock.py`)."""
    events = events or EventBus()
    clock = clock or Clock()
    players = PlayerService(db, clock=clock)
    guilds = GuildSettingsService(db)
    scoring = ScoringService(db)
    notifications = NotificationService(db, settings, clock=clock)
    notifications.attach(events)
    if racetime is not None:
        from racetime.clients import as_clients

        racetime = as_clients(racetime)
    live_races = LiveRaceService(db, events, settings, racetime, clock=clock)
    templates = TemplateService(db, live_races)
    return Services(
        settings=settings,
        db=db,
        events=events,
        audit=AuditService(db),
        guilds=guilds,
        players=players,
        tournaments=TournamentService(db, racetime=racetime, default_category=settings.racetime.category),
        room_profiles=RoomProfileService(db),
        runs=RunService(db),
        scoring=scoring,
        tokens=TokenService(db, clock=clock, cache_seconds=settings.api.token_cache_seconds),
        eligibility=EligibilityService(db),
        live_races=live_races,
        account_links=AccountLinkService(db, settings, players, clock=lambda: clock().timestamp()),
        calendar=CalendarService(
            db,
            guilds,
            public_url=settings.api.public_url,
            default_lead_minutes=settings.scheduler.room_open_lead_minutes,
        ),
        notifications=notifications,
        templates=templates,
        series=SeriesService(db, settings, live_races, templates),
        batch=BatchService(live_races, max_lines=settings.series.max_batch_lines),
        phases=PhaseService(db, clock=clock),
        seasons=SeasonService(db),
        timezones=TimezoneService(db),
        standings=StandingService(db, scoring),
        idempotency=IdempotencyService(db, clock=clock),
        reminders=ReminderService(db, clock=clock, interval_seconds=settings.notifications.reminder_interval_seconds),
        clock=clock,
    )
