"""The iCal feed of a guild's upcoming live races, so players can subscribe in their calendar app.

Calendar apps cannot send headers, so the feed URL carries a per-guild secret (kept in guild settings);
rotating it cuts off every old subscription. The feed never contains a seed.

A recurring series appears as its races (each event names its series, and the seasons of its tournament), not
as one RRULE event: skipped, moved and cancelled occurrences then show right in every calendar app, and the
races beyond the series job's window are not promised before they exist.
"""

from __future__ import annotations

from datetime import timedelta

from icalendar import Calendar, Event
from sqlalchemy import select

from bot.actors import Actor
from bot.errors import NotFound
from bot.services import audit
from bot.services.guilds import GuildSettingsService, get_or_default
from bot.services.room_opener import room_open_lead
from db.models import LiveRace, Pool, RaceSeries, RaceStatus, Season, SeasonTournament, SeriesOccurrence, Tournament
from db.session import Database

FEED_PATH = "/api/v1/live-races.ics"
FEED_STATUSES = (RaceStatus.SCHEDULED, RaceStatus.ROOM_OPEN, RaceStatus.IN_PROGRESS)
FEED_MAX_EVENTS = 500


class CalendarService:
    def __init__(
        self, db: Database, guilds: GuildSettingsService, *, public_url: str, default_lead_minutes: int
    ) -> None:
        self.db = db
        self.guilds = guilds
        self.public_url = public_url.rstrip("/")
        self.default_lead_minutes = default_lead_minutes

    def url_for(self, secret: str) -> str:
        return f"{self.public_url}{FEED_PATH}?key={secret}"

    async def feed_url(self, guild_id: int, actor: Actor, *, rotate: bool = False) -> str:
        """The guild's feed URL; `rotate` issues a new secret, so every old URL stops working."""
        secret = await self.guilds.calendar_secret(guild_id, rotate=rotate)
        if rotate:
            async with self.db.transaction() as session:
                await audit.record(
                    session,
                    guild_id=guild_id,
                    actor=actor,
                    action="calendar.rotate",
                    target_type="guild",
                    target_id=guild_id,
                )
        return self.url_for(secret)

    async def render_feed(self, secret: str) -> bytes:
        guild_id = await self.guilds.guild_for_calendar_secret(secret)
        if guild_id is None:
            raise NotFound("no calendar has this key; ask a moderator for the current feed URL", field="key")
        async with self.db.read() as session:
            guild = await get_or_default(session, guild_id)
            rows = (
                await session.execute(
                    select(LiveRace, Tournament, Pool, RaceSeries.name)
                    .join(Tournament, Tournament.id == LiveRace.tournament_id)
                    .join(Pool, Pool.id == LiveRace.pool_id)
                    .outerjoin(SeriesOccurrence, SeriesOccurrence.live_race_id == LiveRace.id)
                    .outerjoin(RaceSeries, RaceSeries.id == SeriesOccurrence.series_id)
                    .where(LiveRace.guild_id == guild_id, LiveRace.status.in_(FEED_STATUSES))
                    .order_by(LiveRace.scheduled_at, LiveRace.id)
                    .limit(FEED_MAX_EVENTS)
                )
            ).all()
            seasons: dict[int, list[str]] = {}
            for tournament_id, name in await session.execute(
                select(SeasonTournament.tournament_id, Season.name)
                .join(Season, Season.id == SeasonTournament.season_id)
                .where(Season.guild_id == guild_id)
                .order_by(Season.id)
            ):
                seasons.setdefault(tournament_id, []).append(name)
        calendar = Calendar()
        calendar.add("prodid", "-//Startline//live races//EN")
        calendar.add("version", "2.0")
        calendar.add("x-wr-calname", "Live races")
        calendar.add("refresh-interval", timedelta(minutes=15), parameters={"VALUE": "DURATION"})
        for race, tournament, pool, series in rows:
            lead = room_open_lead(
                tournament.room_open_lead_minutes, guild.room_open_lead_minutes, self.default_lead_minutes
            )
            extra = ([f"Series: {series}"] if series else []) + [
                f"Season: {name}" for name in seasons.get(tournament.id, [])
            ]
            calendar.add_component(self._event(race, tournament, pool, lead, extra))
        return calendar.to_ical()

    @staticmethod
    def _event(race: LiveRace, tournament: Tournament, pool: Pool, lead: int, extra: list[str]) -> Event:
        opens_at = race.scheduled_at - timedelta(minutes=lead)
        lines = [
            f"Tournament: {tournament.name}",
            *extra,
            f"Pool: {pool.name}",
            f"Room opens: {opens_at:%Y-%m-%d %H:%M} UTC",
        ]
        event = Event()
        event.add("uid", f"live-race-{race.id}@startline")
        event.add("dtstamp", race.updated_at)
        event.add("dtstart", race.scheduled_at)
        event.add("summary", f"{tournament.name}: {race.title}")
        event.add("status", "CONFIRMED")
        if race.racetime_url:
            lines.append(f"Room: {race.racetime_url}")
        event.add("description", "\n".join(lines))
        return event
