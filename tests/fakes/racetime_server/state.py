"""What the fake RaceTime.gg holds: categories, applications, tokens, rooms, entrants, sockets."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

# --- state -----------------------------------------------------------------------------------------


@dataclass
class FakeCategory:
    slug: str
    name: str
    short_name: str
    goals: list[str]
    info: str | None = None
    streaming_required: bool = True
    image: str | None = None
    owners: list[dict[str, Any]] = field(default_factory=list)
    moderators: list[dict[str, Any]] = field(default_factory=list)
    emotes: dict[str, str] = field(default_factory=dict)
    allow_hide_entrants: bool = False
    allow_partitionable: bool = False
    active: bool = True

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "short_name": self.short_name,
            "slug": self.slug,
            "url": f"/{self.slug}",
            "data_url": f"/{self.slug}/data",
            "image": self.image,
        }


@dataclass
class FakeApp:
    """An OAuth2 application: a category bot (client credentials) or a user-login app."""

    client_id: str
    client_secret: str
    grant_type: str  # "client_credentials" or "authorization_code"
    name: str
    category: str | None = None  # bots only
    redirect_uris: list[str] | None = None  # None: any
    active: bool = True


@dataclass
class FakeToken:
    value: str
    client_id: str
    scopes: tuple[str, ...]
    expires_at: float  # time.monotonic()
    user: dict[str, Any] | None = None
    refresh_token: str | None = None


@dataclass
class FakeEntrant:
    user: dict[str, Any]
    state: str = "joined"  # joined, invited, requested, declined, partitioned
    ready: bool = False
    dnf: bool = False
    dq: bool = False
    finish_time: timedelta | None = None
    place: int | None = None
    score: int | None = None
    score_change: int | None = None
    comment: str | None = None
    stream_live: bool = False
    stream_override: bool = False

    def status(self, race_status: str) -> str:
        if self.state != "joined":
            return self.state
        if self.dnf:
            return "dnf"
        if self.dq:
            return "dq"
        if self.finish_time is not None:
            return "done"
        if race_status == "in_progress":
            return "in_progress"
        return "ready" if self.ready else "not_ready"

    @property
    def joined(self) -> bool:
        return self.state == "joined"

    @property
    def finished(self) -> bool:
        return self.joined and self.finish_time is not None and not self.dnf and not self.dq

    @property
    def running(self) -> bool:
        return self.joined and self.finish_time is None and not self.dnf and not self.dq


@dataclass(eq=False)
class _Socket:
    ws: web.WebSocketResponse
    token: str | None
    queue: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)

    def send(self, payload: dict[str, Any]) -> None:
        self.queue.put_nowait(json.dumps(payload))


@dataclass(eq=False)
class FakeRoom:
    category: FakeCategory
    slug: str
    status: str
    goal_name: str
    goal_custom: bool
    opened_at: datetime
    opened_by_bot: str | None
    settings: dict[str, Any]
    info_user: str | None = ""
    info_bot: str | None = ""
    version: int = 1
    started_at: datetime | None = None
    ended_at: datetime | None = None
    cancelled_at: datetime | None = None
    recordable: bool = True
    recorded: bool = False
    entrants: list[FakeEntrant] = field(default_factory=list)
    monitors: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    bot_meta: dict[str, Any] = field(default_factory=dict)
    sockets: set[_Socket] = field(default_factory=set)
    seen_guids: dict[str, float] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.category.slug}/{self.slug}"

    @property
    def info(self) -> str:
        return f"{self.info_user or ''}\n{self.info_bot or ''}".strip()

    def joined(self) -> list[FakeEntrant]:
        return [e for e in self.entrants if e.joined]

    def entrant(self, user_id: str) -> FakeEntrant:
        for entrant in self.entrants:
            if entrant.user["id"] == user_id:
                return entrant
        raise KeyError(user_id)
