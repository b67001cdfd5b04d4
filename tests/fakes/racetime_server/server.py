"""A faithful fake of RaceTime.gg: a real aiohttp server on 127.0.0.1 for tests.

It follows the RaceTime.gg reference (captured from the real site): bare 403s with
empty bodies, 422 ``{"errors": {...}}`` dicts with Django's messages, Django ISO durations, ``Z``
datetimes truncated to milliseconds, root-relative URLs, HTML 404s, no trailing slashes, race JSON
with exactly the key order of ``captured/race_finished.json``, and the bot websocket protocol.

Usage::

    async with FakeRacetime() as rt:
        client = RacetimeClient(rt.base_url, rt.client_id, rt.client_secret)
        ...
        rt.add_entrant(slug, captured_user("Alice"))
        rt.start(slug)
        rt.finish_entrant(slug, alice_id, timedelta(hours=1, microseconds=5))

Controls are plain synchronous methods; they raise ``FakeRacetimeError`` for transitions the real
site would not allow. The timed transitions of the real site's racebot (end of the countdown, and
with ``racebot=True`` the auto-start once everyone is ready) are applied whenever a room is read,
and the countdown end is also pushed to open sockets by a timer. The time limit is not timed: call
``end_race``. ``rt.now`` may be replaced to move the fake's clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from racetime.client import RacetimeClient
from racetime.durations import format_datetime, format_duration
from tests.fakes.racetime_data import load_json
from tests.fakes.racetime_server.controls import Controls, Hold, _FaultRule
from tests.fakes.racetime_server.forms import (
    _ENTRANT_ORDER,
    _MARKUP_RE,
    _SLUG_ADJECTIVES,
    _SLUG_NOUNS,
    CURRENT,
    DJANGO_404,
    DONE,
    ENTRANT_STATUSES,
    HASHID_CHARS,
    PREPARING,
    RACE_STATUSES,
    TOKEN_CHARS,
    FakeRacetimeError,
    _ActionError,
    _format_race_time,
    _iso_now_exact,
    _ordinal,
)
from tests.fakes.racetime_server.routes import Routes
from tests.fakes.racetime_server.state import FakeApp, FakeCategory, FakeEntrant, FakeRoom, FakeToken
from tests.fakes.racetime_server.websocket import BotSocket

# --- the server ------------------------------------------------------------------------------------


class FakeRacetime(Controls, Routes, BotSocket):
    def __init__(
        self,
        *,
        token_expires_in: int = 36000,
        cache_ttl: float = 0.0,
        cache_clock: Callable[[], float] = time.monotonic,
        racebot: bool = False,
        seed: int | None = None,
        bot_name: str = "TestBot",
    ) -> None:
        self.token_expires_in = token_expires_in
        self.cache_ttl = cache_ttl  # emulate the stale /o/<cat>/data cache of the real site
        self.cache_clock = cache_clock  # seconds; tests give it their clock to age the cache without waiting
        self.racebot = racebot  # auto-begin rooms when everyone is ready, like RaceTime.gg's racebot
        self._random = random.Random(seed)
        self.base_url = ""
        self.requests: list[tuple[str, str]] = []
        self.categories: dict[str, FakeCategory] = {}
        self.apps: dict[str, FakeApp] = {}
        self.tokens: dict[str, FakeToken] = {}
        self.rooms: list[FakeRoom] = []
        self.users: dict[str, dict[str, Any]] = {}
        self._codes: dict[str, dict[str, Any]] = {}
        self._category_cache: dict[str, tuple[float, bytes]] = {}
        self._fail_rules: list[_FaultRule] = []
        self._drop_rules: list[_FaultRule] = []
        self._holds: list[Hold] = []
        self._delays: dict[str | None, float] = {}
        self._late_answers: dict[str | None, float] = {}
        self._down = False
        self._stopping = asyncio.Event()
        self._timers: list[asyncio.TimerHandle] = []
        self._runner: web.AppRunner | None = None

        captured = load_json("captured/category_data.json")
        self.add_category(
            captured["slug"],
            captured["goals"],
            name=captured["name"],
            short_name=captured["short_name"],
            info=captured["info"],
            streaming_required=captured["streaming_required"],
            owners=captured["owners"],
            moderators=captured["moderators"],
        )
        bot = self.add_bot(captured["slug"], self._secret(40), self._secret(128), name=bot_name)
        self.client_id, self.client_secret = bot.client_id, bot.client_secret
        # RaceTime.gg bot applications only allow client credentials; logging users in needs its own app.
        oauth_app = self.add_oauth_app(self._secret(40), self._secret(128))
        self.oauth_client_id, self.oauth_client_secret = oauth_app.client_id, oauth_app.client_secret
        user = load_json("captured/user_data.json")
        self.oauth_user: dict[str, Any] = {k: v for k, v in user.items() if k not in ("stats", "teams")}
        self.oauth_approve = True
        for race in load_json("races_with_past_entrants.json")["races"]:
            for entrant in race["entrants"]:
                self.add_user(entrant["user"])
        for entrant in load_json("captured/race_finished.json")["entrants"]:
            self.add_user(entrant["user"])
        self.add_user(self.oauth_user)

    # ---------------------------------------------------------------- lifecycle

    def start(self, slug: str | None = None, started_at: datetime | None = None) -> Coroutine[Any, Any, str] | None:
        """Two jobs share this name: ``await rt.start()`` starts the server and returns its base URL;
        ``rt.start(slug, started_at=None)`` starts a race at once (see ``start_race``)."""
        if slug is None:
            return self.serve()
        self.start_race(slug, started_at)
        return None

    async def serve(self) -> str:
        """Start the server on 127.0.0.1 (a free port); returns the base URL."""
        app = web.Application(middlewares=[self._middleware])
        routes = app.router
        routes.add_post("/o/token", self._token)
        routes.add_get("/o/authorize", self._authorize)
        routes.add_get("/o/userinfo", self._userinfo)
        routes.add_get("/ws/o/bot/{slug}", self._bot_socket)
        routes.add_get("/o/{cat}/data", self._category_data_oauth)
        routes.add_post("/o/{cat}/startrace", self._startrace)
        routes.add_post("/o/{cat}/{slug}/edit", self._edit)
        routes.add_get("/{cat}/data", self._category_data_public)
        routes.add_get("/{cat}/races/data", self._past_races)
        routes.add_get("/{cat}/{slug}/data", self._race_data)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}"
        return self.base_url

    async def stop(self) -> None:
        self._stopping.set()
        for timer in self._timers:
            timer.cancel()
        for room in self.rooms:
            for sock in list(room.sockets):
                await sock.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeRacetime:
        await self.serve()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def now(self) -> datetime:
        return datetime.now(UTC)

    # ---------------------------------------------------------------- setup controls
    def _secret(self, length: int) -> str:
        return "".join(self._random.choice(TOKEN_CHARS) for _ in range(length))

    def _hashid(self) -> str:
        return "".join(self._random.choice(HASHID_CHARS) for _ in range(16))

    def _new_slug(self) -> str:
        taken = {room.slug for room in self.rooms}
        while True:
            slug = (
                f"{self._random.choice(_SLUG_ADJECTIVES)}-{self._random.choice(_SLUG_NOUNS)}"
                f"-{self._random.randrange(10000):04d}"
            )
            if slug not in taken:
                return slug

    @staticmethod
    def _html_404() -> web.Response:
        return web.Response(status=404, text=DJANGO_404, content_type="text/html")

    @staticmethod
    def _forbidden(body: str = "") -> web.Response:
        # Django's HttpResponseForbidden(): text/html, and for OAuth failures an empty body.
        return web.Response(status=403, text=body, content_type="text/html")

    def _json_response(self, data: Any, *, status: int = 200, max_age: int | None = None) -> web.Response:
        headers = {"X-Date-Exact": _iso_now_exact(self.now())}
        if max_age is not None:
            headers["Cache-Control"] = f"public, max-age={max_age}, must-revalidate"
        return web.Response(
            status=status, body=json.dumps(data).encode(), headers=headers, content_type="application/json"
        )

    def _bearer(self, request: web.Request) -> FakeToken | None:
        header = request.headers.get("Authorization", "")
        value = header[7:] if header.startswith("Bearer ") else request.query.get("token")
        return self._valid_token(value)

    def _valid_token(self, value: str | None) -> FakeToken | None:
        token = self.tokens.get(value or "")
        if token is None or token.expires_at <= time.monotonic():
            return None
        app = self.apps.get(token.client_id)
        if app is None or not app.active:
            return None
        return token

    def _bot_of(self, token: FakeToken | None, category: FakeCategory) -> FakeApp | None:
        """The bot behind ``token`` if it belongs to ``category`` (bots act only in their category)."""
        if token is None or token.user is not None:
            return None
        app = self.apps[token.client_id]
        return app if app.grant_type == "client_credentials" and app.category == category.slug else None

    def _room(self, slug: str, category: str | None = None) -> FakeRoom:
        # The websocket is routed by slug alone: the most recently opened room with that slug wins.
        for room in reversed(self.rooms):
            if room.slug == slug and (category is None or room.category.slug == category):
                return room
        raise KeyError(slug)

    def _control_room(self, slug: str) -> FakeRoom:
        try:
            room = self._room(slug)
        except KeyError:
            raise FakeRacetimeError(f"no room {slug}") from None
        self._tick(room)
        return room

    # ---------------------------------------------------------------- JSON shapes

    @staticmethod
    def _status_json(value: str, table: dict[str, tuple[str, str]]) -> dict[str, str]:
        verbose, help_text = table[value]
        return {"value": value, "verbose_value": verbose, "help_text": help_text}

    def _entrant_json(self, room: FakeRoom, e: FakeEntrant) -> dict[str, Any]:
        finished_at = None
        if e.finish_time is not None and room.started_at is not None:
            finished_at = format_datetime(room.started_at + e.finish_time)
        hide_comment = room.settings["hide_comments"] and room.status != "finished"
        return {
            "user": e.user,
            "team": None,
            "status": self._status_json(e.status(room.status), ENTRANT_STATUSES),
            "finish_time": format_duration(e.finish_time) if e.finish_time is not None else None,
            "finished_at": finished_at,
            "place": e.place,
            "place_ordinal": _ordinal(e.place) if e.place is not None else None,
            "score": e.score,
            "score_change": e.score_change,
            "comment": None if hide_comment else e.comment,
            "has_comment": bool(e.comment),
            "stream_live": e.stream_live,
            "stream_override": e.stream_override,
            "actions": [],
        }

    def _sorted_entrants(self, room: FakeRoom) -> list[FakeEntrant]:
        def key(e: FakeEntrant) -> tuple[Any, ...]:
            return (
                _ENTRANT_ORDER[e.status(room.status)],
                e.place if e.place is not None else 1 << 30,
                e.finish_time if e.finish_time is not None else timedelta.max,
                -(e.score or 0),
                e.user["name"].lower(),
            )

        return sorted(room.entrants, key=key)

    def _counts(self, room: FakeRoom) -> dict[str, int]:
        joined = room.joined()
        return {
            "entrants_count": len(joined),
            "entrants_count_finished": sum(1 for e in joined if e.finished),
            "entrants_count_inactive": sum(1 for e in joined if e.dnf or e.dq),
        }

    def race_json(self, room: FakeRoom) -> dict[str, Any]:
        """``Race.as_dict``: the exact keys, in the exact order, of ``captured/race_finished.json``."""
        s = room.settings
        preparing, current = room.status in PREPARING, room.status in CURRENT
        return {
            "version": room.version,
            "name": room.name,
            "slug": room.slug,
            "status": self._status_json(room.status, RACE_STATUSES),
            "url": f"/{room.name}",
            "data_url": f"/{room.name}/data",
            "websocket_url": f"/ws/race/{room.slug}",
            "websocket_bot_url": f"/ws/o/bot/{room.slug}",
            "websocket_oauth_url": f"/ws/o/race/{room.slug}",
            "category": room.category.summary(),
            "goal": {"name": room.goal_name, "custom": room.goal_custom},
            "info": room.info,
            "info_bot": room.info_bot,
            "info_user": room.info_user,
            "team_race": s["team_race"],
            **self._counts(room),
            "entrants": [self._entrant_json(room, e) for e in self._sorted_entrants(room)],
            "opened_at": format_datetime(room.opened_at),
            "start_delay": format_duration(s["start_delay"]),
            "started_at": format_datetime(room.started_at) if room.started_at else None,
            "ended_at": format_datetime(room.ended_at) if room.ended_at else None,
            "cancelled_at": format_datetime(room.cancelled_at) if room.cancelled_at else None,
            "ranked": s["ranked"],
            "unlisted": s["unlisted"],
            "time_limit": format_duration(s["time_limit"]),
            "time_limit_auto_complete": s["time_limit_auto_complete"],
            "require_even_teams": s["require_even_teams"],
            "streaming_required": s["streaming_required"],
            "auto_start": s["auto_start"],
            "opened_by": None,
            "opened_by_bot": room.opened_by_bot,
            "monitors": list(room.monitors),
            "recordable": room.recordable,
            "recorded": room.recorded,
            "recorded_by": None,
            "disqualify_unready": False,
            "allow_comments": s["allow_comments"],
            "hide_comments": s["hide_comments"],
            "hide_entrants": s["hide_entrants"],
            "chat_restricted": (preparing and not s["allow_prerace_chat"]) or (current and not s["allow_midrace_chat"]),
            "allow_prerace_chat": s["allow_prerace_chat"],
            "allow_midrace_chat": s["allow_midrace_chat"],
            "allow_non_entrant_chat": s["allow_non_entrant_chat"],
            "chat_message_delay": format_duration(s["chat_message_delay"]),
            "bot_meta": dict(room.bot_meta),
        }

    def summary_json(self, room: FakeRoom, *, entrants: bool = False) -> dict[str, Any]:
        """``Race.api_dict_summary`` (as in ``current_races`` and the past-races pages)."""
        data: dict[str, Any] = {
            "name": room.name,
            "status": self._status_json(room.status, RACE_STATUSES),
            "url": f"/{room.name}",
            "data_url": f"/{room.name}/data",
            "goal": {"name": room.goal_name, "custom": room.goal_custom},
            "info": room.info,
            **self._counts(room),
            "opened_at": format_datetime(room.opened_at),
            "started_at": format_datetime(room.started_at) if room.started_at else None,
            "time_limit": format_duration(room.settings["time_limit"]),
            "opened_by_bot": room.opened_by_bot,
        }
        if entrants:
            data["entrants"] = [self._entrant_json(room, e) for e in self._sorted_entrants(room)]
        if room.status in DONE:
            data["ended_at"] = format_datetime(room.ended_at) if room.ended_at else None
            data["cancelled_at"] = format_datetime(room.cancelled_at) if room.cancelled_at else None
            data["recordable"] = room.recordable
            data["recorded"] = room.recorded
        return data

    def category_json(self, category: FakeCategory, *, include_unlisted: bool) -> dict[str, Any]:
        races = [
            room
            for room in self.rooms
            if room.category is category
            and room.status not in DONE
            and (include_unlisted or not room.settings["unlisted"])
        ]
        return {
            **category.summary(),
            "info": category.info,
            "streaming_required": category.streaming_required,
            "owners": category.owners,
            "moderators": category.moderators,
            "goals": list(category.goals),
            "current_races": [self.summary_json(room) for room in races],
            "emotes": category.emotes,
        }

    # ---------------------------------------------------------------- chat and broadcasts

    def _chat_message(
        self,
        room: FakeRoom,
        text: str,
        *,
        bot: str | None = None,
        highlight: bool = False,
        pinned: bool = False,
        actions: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        message = {
            "id": self._hashid(),
            "user": None,
            "bot": bot,
            "direct_to": None,
            "posted_at": _iso_now_exact(self.now()),
            "message": text,
            "message_plain": _MARKUP_RE.sub(r"\2", text),
            "highlight": highlight,
            "is_dm": False,
            "is_bot": bot is not None,
            "is_monitor": None,
            "is_system": bot is None,
            "is_pinned": pinned,
            "delay": 0,
            "actions": actions or {},
        }
        room.messages.append(message)
        return message

    def _send_all(self, room: FakeRoom, payload: dict[str, Any]) -> None:
        for sock in room.sockets:
            sock.send(payload)

    def _envelope(self, kind: str, **payload: Any) -> dict[str, Any]:
        return {"type": kind, "date": _iso_now_exact(self.now()), **payload}

    def _race_payloads(self, room: FakeRoom) -> list[dict[str, Any]]:
        renders = {
            "entrants": "<ol></ol>",
            "intro": '<div class="race-info"></div>',
            "status": '<time class="timer"></time>',
            "streams": "<ol></ol>",
        }
        return [
            self._envelope("race.data", race=self.race_json(room), version=room.version),
            self._envelope("race.renders", renders=renders, version=room.version),
        ]

    def _changed(self, room: FakeRoom, *system_messages: str, highlight: bool = False) -> None:
        """Every state change: version + 1, then chat.message(s), race.data, race.renders to everyone."""
        room.version += 1
        for text in system_messages:
            self._send_all(
                room,
                self._envelope("chat.message", message=self._chat_message(room, text, highlight=highlight)),
            )
        for payload in self._race_payloads(room):
            self._send_all(room, payload)

    # ---------------------------------------------------------------- race lifecycle

    def _recompute_places(self, room: FakeRoom) -> None:
        times = sorted(e.finish_time for e in room.entrants if e.finished)
        for e in room.entrants:
            e.place = 1 + times.index(e.finish_time) if e.finished else None

    def _can_begin(self, room: FakeRoom) -> bool:
        return room.status in PREPARING and sum(1 for e in room.joined() if e.ready) >= 2

    def _begin(self, room: FakeRoom, message: str) -> None:
        # Entrants not joined-and-ready are removed when the countdown begins.
        room.entrants = [e for e in room.entrants if e.joined and e.ready]
        room.status = "pending"
        room.started_at = self.now() + room.settings["start_delay"]
        self._changed(room, message, highlight=True)
        with contextlib.suppress(RuntimeError):  # no running loop: the next read applies it
            loop = asyncio.get_running_loop()
            delay = room.settings["start_delay"].total_seconds()
            self._timers.append(loop.call_later(delay, self._tick, room))

    def _go(self, room: FakeRoom, started_at: datetime | None = None) -> None:
        now = self.now()
        if started_at is not None:
            room.started_at = started_at
        elif room.started_at is None or room.started_at > now:
            room.started_at = now
        room.status = "in_progress"
        self._changed(room, "The race has begun! Good luck and have fun.", highlight=True)

    def _complete(self, room: FakeRoom) -> None:
        """Nobody is running any more: finish, or cancel when nobody finished."""
        now = self.now()
        finishers = [e for e in room.entrants if e.finished]
        if finishers or room.settings["time_limit_auto_complete"]:
            last = max((room.started_at + e.finish_time for e in finishers), default=now)
            room.status = "finished"
            room.ended_at = max(now, last)  # synthetic finish times may lie in the future
            if not room.recordable:
                room.settings["unlisted"] = False
            self._changed(room, f"Race finished in {_format_race_time(room.ended_at - room.started_at)}")
        else:
            room.status = "cancelled"
            room.ended_at = room.cancelled_at = now
            room.recordable = False
            room.settings["unlisted"] = False
            self._changed(room, "This race has been cancelled due to all entrants forfeiting.")

    def _finish_if_none_remaining(self, room: FakeRoom) -> None:
        if room.status == "in_progress" and not any(e.running for e in room.entrants):
            self._complete(room)

    def _cancel(self, room: FakeRoom, by: str) -> None:
        if room.status in DONE:
            raise _ActionError(f"Cannot cancel a race that is in {room.status} state.")
        now = self.now()
        if room.status == "in_progress":
            room.ended_at = now
        room.status = "cancelled"
        room.cancelled_at = now
        room.recordable = False
        room.settings["unlisted"] = False
        self._changed(room, f"This race has been cancelled by {by}.")

    def _end_race(self, room: FakeRoom) -> None:
        for e in room.entrants:
            if e.running:
                e.dnf = True  # the time limit makes remaining entrants dnf (not dq)
        self._complete(room)

    def _tick(self, room: FakeRoom) -> None:
        """Apply the timed transitions RaceTime.gg's racebot process would have made by now."""
        if (
            self.racebot
            and room.settings["auto_start"]
            and self._can_begin(room)
            and all(e.ready for e in room.joined())
        ):
            delay = int(room.settings["start_delay"].total_seconds())
            self._begin(room, f"Everyone is ready. The race will begin in {delay} seconds!")
        if room.status == "pending" and room.started_at is not None and self.now() >= room.started_at:
            self._go(room)
        # The time limit is left to end_race(): tests often start races at a past started_at.


@contextlib.asynccontextmanager
async def fake_racetime(**kwargs: Any) -> AsyncIterator[FakeRacetime]:
    """``async with fake_racetime() as rt:`` — a started fake, stopped afterwards."""
    async with FakeRacetime(**kwargs) as rt:
        yield rt


def client_for(rt: FakeRacetime, **kwargs: Any) -> RacetimeClient:
    """A ``RacetimeClient`` for the fake's default bot; tests get no retry back-off by default."""
    kwargs.setdefault("retry_backoff", 0.0)
    kwargs.setdefault("timeout", 5.0)
    return RacetimeClient(rt.base_url, rt.client_id, rt.client_secret, **kwargs)


def user_client_for(rt: FakeRacetime, **kwargs: Any) -> RacetimeClient:
    """A ``RacetimeClient`` for the fake's user-login (authorization code) application."""
    kwargs.setdefault("retry_backoff", 0.0)
    kwargs.setdefault("timeout", 5.0)
    return RacetimeClient(rt.base_url, rt.oauth_client_id, rt.oauth_client_secret, **kwargs)
