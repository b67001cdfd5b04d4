"""Domain events and the in-transaction event bus.

Services publish an event with the session of the transaction that made the change; subscribers (the
notification outbox) write their rows in that same transaction, so a change and its notifications commit or
roll back together and a crash can neither lose nor repeat them.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar

from sqlalchemy.ext.asyncio import AsyncSession

from db.models import OPEN_FAILED_ALERT, EventSpec, EventType

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class LiveRaceEvent:
    type: ClassVar[EventType]
    guild_id: int
    tournament_id: int
    live_race_id: int
    occurred_at: datetime

    @property
    def spec(self) -> EventSpec:
        """The notification type this event queues: its audiences, look and staleness (`db.models.EventType`)."""
        return self.type.spec


@dataclass(frozen=True, kw_only=True)
class LiveRaceScheduled(LiveRaceEvent):
    type: ClassVar[EventType] = EventType.LIVE_RACE_SCHEDULED


@dataclass(frozen=True, kw_only=True)
class LiveRaceRoomOpened(LiveRaceEvent):
    type: ClassVar[EventType] = EventType.LIVE_RACE_ROOM_OPENED


@dataclass(frozen=True, kw_only=True)
class LiveRaceStarted(LiveRaceEvent):
    type: ClassVar[EventType] = EventType.LIVE_RACE_STARTED
    participant_player_ids: tuple[int, ...] = ()


@dataclass(frozen=True, kw_only=True)
class LiveRaceFinished(LiveRaceEvent):
    type: ClassVar[EventType] = EventType.LIVE_RACE_FINISHED
    participant_player_ids: tuple[int, ...] = ()


@dataclass(frozen=True, kw_only=True)
class LiveRaceCancelled(LiveRaceEvent):
    type: ClassVar[EventType] = EventType.LIVE_RACE_CANCELLED
    reason: str
    previous_status: str
    participant_player_ids: tuple[int, ...] = ()


@dataclass(frozen=True, kw_only=True)
class LiveRaceRescheduled(LiveRaceEvent):
    """The start moved (an edit of a scheduled race); the race row already holds the new start."""

    type: ClassVar[EventType] = EventType.LIVE_RACE_RESCHEDULED
    previous_scheduled_at: datetime


@dataclass(frozen=True, kw_only=True)
class LiveRaceOpenFailed(LiveRaceEvent):
    """The opener gave up after repeated failures; moderators must act."""

    type: ClassVar[EventType | None] = None  # type: ignore[assignment]
    error: str
    attempts: int
    # Set when the alert comes before any attempt (a series paused for want of seeds): what happened and what to do.
    summary: str | None = None
    action: str | None = None
    # The alert's title when it is not a room that failed to open (a series paused, races missed, a race too late).
    headline: str | None = None

    @property
    def spec(self) -> EventSpec:
        return OPEN_FAILED_ALERT


Subscriber = Callable[[AsyncSession, LiveRaceEvent], Awaitable[None]]


@dataclass
class EventBus:
    subscribers: list[Subscriber] = field(default_factory=list)
    published: list[LiveRaceEvent] = field(default_factory=list)
    keep_history: bool = False

    def subscribe(self, subscriber: Subscriber) -> None:
        self.subscribers.append(subscriber)

    async def publish(self, session: AsyncSession, event: LiveRaceEvent) -> None:
        """Run every subscriber inside the caller's transaction; an error rolls the change back."""
        log.debug("event %s race=%s", type(event).__name__, event.live_race_id)
        if self.keep_history:
            self.published.append(event)
        for subscriber in self.subscribers:
            await subscriber(session, event)

    async def publish_many(self, session: AsyncSession, events: list[LiveRaceEvent]) -> None:
        """`publish` for many events of one change (a batch): a subscriber with a `write_many` gets them at once."""
        if self.keep_history:
            self.published.extend(events)
        for subscriber in self.subscribers:
            write_many = getattr(subscriber, "write_many", None)
            if write_many is not None:
                await write_many(session, events)
                continue
            for event in events:
                await subscriber(session, event)
