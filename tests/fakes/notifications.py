"""Test helpers for notifications: a race world in the database, players, events, and an in-memory Delivery."""

from __future__ import annotations

import itertools
from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update

from bot.events import LiveRaceEvent
from bot.notifications.delivery import DeliveryError, DmReceipt, MessageGone, ScheduledEventGone, ScheduledEventRef
from bot.notifications.message import NotificationMessage
from bot.services import Services
from db.models import LiveRace, Notification, Pool, RaceStatus, Run, RunStatus, Seed, Tournament
from db.types import utcnow
from tests.conftest import GUILD, MODERATOR

_markers = itertools.count(1)


@dataclass
class RaceWorld:
    tournament: Tournament
    pool: Pool
    seed: Seed
    race: LiveRace

    @property
    def guild_id(self) -> int:
        return self.race.guild_id

    def event(self, cls: type[LiveRaceEvent], **extra: Any) -> LiveRaceEvent:
        fields = {
            "guild_id": self.guild_id,
            "tournament_id": self.tournament.id,
            "live_race_id": self.race.id,
            "occurred_at": utcnow(),
        }
        return cls(**(fields | extra))


async def make_world(
    services: Services,
    *,
    guild_id: int = GUILD,
    name: str = "Spring Qualifier",
    title: str = "Weekly race",
    status: RaceStatus = RaceStatus.SCHEDULED,
    scheduled_at: datetime | None = None,
    racetime_url: str | None = None,
    seed_notes: str = "",
    scheduled_events: bool | None = False,
    **tournament_fields: Any,
) -> RaceWorld:
    """A tournament, pool, seed and race. `scheduled_events`: the tournament's switch, off unless a test is about
    Discord Scheduled Events (None: follow the guild's, on by default), so other tests count only their messages."""
    tournament = await services.tournaments.create_tournament(guild_id, MODERATOR, name=name, **tournament_fields)
    pool = await services.tournaments.add_pool(guild_id, tournament.id, MODERATOR, name="Pool A")
    seed = await services.tournaments.add_seed(
        guild_id,
        tournament.id,
        pool.id,
        MODERATOR,
        url=f"https://seeds.example/{name.replace(' ', '-')}",
        notes=seed_notes,
    )
    async with services.db.transaction() as session:
        await session.execute(
            update(Tournament).where(Tournament.id == tournament.id).values(scheduled_events=scheduled_events)
        )
        race = LiveRace(
            guild_id=guild_id,
            tournament_id=tournament.id,
            pool_id=pool.id,
            seed_id=seed.id,
            title=title,
            scheduled_at=scheduled_at or utcnow() + timedelta(hours=2),
            status=status,
            marker=f"test-marker-{next(_markers)}",
            racetime_url=racetime_url,
        )
        session.add(race)
    return RaceWorld(tournament, pool, seed, race)


async def add_player(
    services: Services, discord_user_id: int, name: str, *, linked: bool = True, guild_id: int = GUILD
) -> int:
    """A guild member (linked to RaceTime.gg unless told otherwise); returns the player id."""
    racetime_id = f"rt{discord_user_id:010d}" if linked else None
    player, _ = await services.players.upsert(
        guild_id, discord_user_id, MODERATOR, display_name=name, racetime_id=racetime_id
    )
    return player.id


async def subscribe(services: Services, discord_user_id: int, *, guild_id: int | None = GUILD) -> None:
    await services.notifications.set_all(discord_user_id, True, guild_id=guild_id, actor=MODERATOR)


async def publish(services: Services, event: LiveRaceEvent) -> None:
    async with services.db.transaction() as session:
        await services.events.publish(session, event)


async def add_run(
    services: Services,
    world: RaceWorld,
    player_id: int,
    *,
    status: RunStatus = RunStatus.FINISHED,
    place: int | None = None,
    elapsed_us: int | None = None,
    score: float | None = None,
) -> None:
    async with services.db.transaction() as session:
        session.add(
            Run(
                tournament_id=world.tournament.id,
                seed_id=world.seed.id,
                player_id=player_id,
                live_race_id=world.race.id,
                status=status,
                place=place,
                elapsed_us=elapsed_us,
                score=score,
            )
        )


@dataclass
class RecordingDelivery:
    """An in-memory `Delivery`: records what it sends; scripted errors per user or channel."""

    available: bool = True
    dms: list[tuple[int, NotificationMessage, int | None]] = field(default_factory=list)
    posts: list[tuple[int, NotificationMessage]] = field(default_factory=list)
    errors: dict[int, deque[DeliveryError]] = field(default_factory=lambda: defaultdict(deque))

    def __post_init__(self) -> None:
        self._channels = itertools.count(7_000_000)
        self._messages = itertools.count(9_000_000)
        self.edits: list[tuple[int, int, NotificationMessage]] = []
        self.current: dict[int, NotificationMessage] = {}  # message id -> as it reads now (del: someone deleted it)
        self.replies: dict[int, int | None] = {}  # message id -> the message it replies to
        self.events: dict[int, dict[str, Any]] = {}  # scheduled event id -> its fields and status
        self.event_errors: deque[DeliveryError] = deque()

    def fail(self, target_id: int, *errors: DeliveryError) -> None:
        self.errors[target_id].extend(errors)

    async def send_dm(
        self, user_id: int, message: NotificationMessage, *, dm_channel_id: int | None = None, nonce: str | None = None
    ):
        if self.errors[user_id]:
            raise self.errors[user_id].popleft()
        self.dms.append((user_id, message, dm_channel_id))
        return DmReceipt(dm_channel_id or next(self._channels))

    async def send_channel(
        self, channel_id: int, message: NotificationMessage, *, nonce: str | None = None, reply_to: int | None = None
    ) -> int:
        if self.errors[channel_id]:
            raise self.errors[channel_id].popleft()
        self.posts.append((channel_id, message))
        message_id = next(self._messages)
        self.replies[message_id] = reply_to
        self.current[message_id] = message
        return message_id

    async def edit_channel_message(self, channel_id: int, message_id: int, message: NotificationMessage) -> None:
        if self.errors[channel_id]:
            raise self.errors[channel_id].popleft()
        if message_id not in self.current:
            raise MessageGone("Discord: the message was deleted (404, code 10008)")
        self.edits.append((channel_id, message_id, message))
        self.current[message_id] = message

    async def find_scheduled_event(self, guild_id: int, marker: str) -> ScheduledEventRef | None:
        for event_id, event in self.events.items():
            if event["guild_id"] == guild_id and marker in event.get("description", ""):
                return ScheduledEventRef(event_id, event["status"])
        return None

    async def create_scheduled_event(self, guild_id: int, fields: dict[str, Any]) -> ScheduledEventRef:
        if self.event_errors:
            raise self.event_errors.popleft()
        event_id = next(self._messages)
        self.events[event_id] = {**fields, "guild_id": guild_id, "status": 1}
        return ScheduledEventRef(event_id, 1)

    async def edit_scheduled_event(self, guild_id: int, event_id: int, fields: dict[str, Any]) -> ScheduledEventRef:
        if self.event_errors:
            raise self.event_errors.popleft()
        if event_id not in self.events:
            raise ScheduledEventGone("Discord: the scheduled event was deleted (404, code 10070)")
        self.events[event_id].update(fields)
        return ScheduledEventRef(event_id, self.events[event_id]["status"])

    def dm_recipients(self) -> list[int]:
        return [user_id for user_id, _, _ in self.dms]


def outbox_shape(rows: Iterable[Notification]) -> list[tuple[Any, ...]]:
    """Outbox rows as comparable tuples, in a fixed order, without the time they were written: two ways of queuing
    the same notifications (a batch and one at a time) must give equal shapes."""
    return sorted(
        (
            row.kind,
            row.player_id,
            row.channel_id,
            row.live_race_id,
            row.dedupe_key,
            repr({key: value for key, value in row.payload.items() if key != "occurred_at"}),
        )
        for row in rows
    )
