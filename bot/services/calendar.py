"""The iCal feeds of a guild's upcoming live races, so players can subscribe in their calendar app.

Calendar apps cannot send headers, so a feed URL carries a secret. The guild's feed (every upcoming race) has a
per-guild secret kept in guild settings; a member's personal feed (only the races they may race now) has a
per-member secret (`calendar_keys`), made when they first ask for it and replaced by `/calendar reset`. Rotating a
secret cuts off every old subscription; a personal feed also stops when its owner is no longer a member. Neither
feed ever contains a seed. RSVPs add the races a member said they will race to their feed, eligible or not.

A recurring series appears as its races (each event names its series, and the seasons of its tournament), not
as one RRULE event: skipped, moved and cancelled occurrences then show right in every calendar app, and the
races beyond the series job's window are not promised before they exist.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from icalendar import Calendar, Event
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.actors import Actor
from bot.errors import NotFound
from bot.services import audit
from bot.services.eligibility import compute_eligibility
from bot.services.guilds import GuildSettingsService, get_or_default
from bot.services.live_races import race_lead
from bot.services.players import ensure_member
from bot.services.room_opener import room_open_lead
from db.models import (
    CalendarKey,
    GuildPlayer,
    LiveRace,
    Pool,
    RaceRsvp,
    RaceSeries,
    RaceStatus,
    Season,
    SeasonTournament,
    SeriesOccurrence,
    Tournament,
)
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
        """The feed URL for a calendar secret."""
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

    async def personal_url(self, guild_id: int, discord_user_id: int, actor: Actor, *, rotate: bool = False) -> str:
        """The member's own feed URL (only the races they may race); `rotate` replaces its secret, so the old URL
        stops working. The secret is made on first use."""
        async with self.db.transaction() as session:
            player = await ensure_member(session, guild_id, discord_user_id)
            key = await session.get(CalendarKey, (guild_id, player.id))
            if key is None:
                key = CalendarKey(guild_id=guild_id, player_id=player.id, secret=secrets.token_urlsafe(24))
                session.add(key)
            elif rotate:
                key.secret = secrets.token_urlsafe(24)
                await audit.record(
                    session,
                    guild_id=guild_id,
                    actor=actor,
                    action="calendar.personal_rotate",
                    target_type="player",
                    target_id=player.id,
                )
            return self.url_for(key.secret)

    async def render_feed(self, secret: str) -> bytes:
        """The feed a key opens: the guild's (every upcoming race) or a member's (the races they may race)."""
        guild_id = await self.guilds.guild_for_calendar_secret(secret)
        player_id = None
        if guild_id is None:
            guild_id, player_id = await self._personal_key(secret)
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
            if player_id is not None:
                rows = await self._races_for(session, guild_id, player_id, rows)
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
        calendar.add("x-wr-calname", "Live races" if player_id is None else "Live races you may race")
        calendar.add("refresh-interval", timedelta(minutes=15), parameters={"VALUE": "DURATION"})
        for race, tournament, pool, series in rows:
            lead = room_open_lead(
                race_lead(race.room_open_lead_minutes, tournament.room_open_lead_minutes),
                guild.room_open_lead_minutes,
                self.default_lead_minutes,
            )
            extra = ([f"Series: {series}"] if series else []) + [
                f"Season: {name}" for name in seasons.get(tournament.id, [])
            ]
            calendar.add_component(self._event(race, tournament, pool, lead, extra))
        return calendar.to_ical()

    async def _personal_key(self, secret: str) -> tuple[int, int]:
        missing = NotFound(
            "no calendar has this key; ask a moderator or use /calendar for the current URL", field="key"
        )
        if not secret:
            raise missing
        async with self.db.read() as session:
            row = (
                await session.execute(
                    select(CalendarKey.guild_id, CalendarKey.player_id, CalendarKey.secret)
                    .join(
                        GuildPlayer,
                        (GuildPlayer.guild_id == CalendarKey.guild_id)
                        & (GuildPlayer.player_id == CalendarKey.player_id),
                    )
                    .where(CalendarKey.secret == secret, GuildPlayer.left_at.is_(None))
                )
            ).first()
        if row is None or not secrets.compare_digest(row.secret, secret):
            raise missing  # unknown, rotated, or its owner is no longer a member of the guild
        return row.guild_id, row.player_id

    @staticmethod
    async def _races_for(session: AsyncSession, guild_id: int, player_id: int, rows: list) -> list:
        """The races the member may race now: the rules of eligibility, once per pool and seed (and per running
        race, whose own run must not count against it), and every race they RSVP'd."""
        rsvped = set(
            (
                await session.scalars(
                    select(RaceRsvp.live_race_id).where(RaceRsvp.guild_id == guild_id, RaceRsvp.player_id == player_id)
                )
            ).all()
        )
        verdicts: dict[tuple, bool] = {}
        kept = []
        for row in rows:
            race, tournament, pool = row[0], row[1], row[2]
            if race.id in rsvped:
                kept.append(row)
                continue
            running = race.id if race.status is RaceStatus.IN_PROGRESS else None
            key = (tournament.id, pool.id, race.seed_id, running)
            if key not in verdicts:
                report = await compute_eligibility(
                    session, guild_id=guild_id, tournament=tournament, pool=pool, seed_id=race.seed_id,
                    exclude_live_race_id=running, player_ids=[player_id],
                )  # fmt: skip
                verdicts[key] = report.reason_for(player_id) is None
            if verdicts[key]:
                kept.append(row)
        return kept

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
