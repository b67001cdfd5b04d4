"""Test controls of the fake RaceTime.gg: held requests, faults, and the methods tests call to set up
categories and bots and to move races along."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from racetime.durations import parse_datetime, parse_duration
from tests.fakes.racetime_server.forms import (
    FORM_DEFAULTS,
    PREPARING,
    START_FIELDS,
    FakeRacetimeError,
    _ActionError,
    _format_race_time,
    _ordinal,
    clean_race_form,
)
from tests.fakes.racetime_server.state import FakeApp, FakeCategory, FakeEntrant, FakeRoom

# A hang guard for a test waiting on a held request, not a timing: held requests arrive in milliseconds.
HOLD_GUARD_SECONDS = 10.0


@dataclass(eq=False)
class HeldRequest:
    """A request a ``Hold`` stopped: the test looks at it, then lets it go on with ``release``."""

    method: str
    path: str
    stage: str
    _released: asyncio.Event = field(default_factory=asyncio.Event)
    _handled: asyncio.Event = field(default_factory=asyncio.Event)

    def release(self) -> None:
        self._released.set()

    @property
    def is_handled(self) -> bool:
        return self._handled.is_set()

    async def handled(self) -> None:
        """Wait until the fake has handled it (for a ``startrace``: the room exists), answered or not."""
        async with asyncio.timeout(HOLD_GUARD_SECONDS):
            await self._handled.wait()


class Hold:
    """Stops matching requests until the test releases them (``FakeRacetime.hold``).

    ``stage="request"``: the request waits before the fake handles it, so nothing has happened yet; released after
    the client gave up (timed out), it is still handled: a ``startrace`` then creates a room nobody hears of.
    ``stage="answer"``: the fake handles it at once (the room exists, a cancel is done) and only the answer waits.
    """

    def __init__(self, method: str | None, path_contains: str | None, stage: str, count: int | None) -> None:
        if stage not in ("request", "answer"):
            raise FakeRacetimeError(f"unknown hold stage {stage!r}")
        self.method, self.path_contains, self.stage, self.remaining = method, path_contains, stage, count
        self.held: list[HeldRequest] = []
        self._arrivals: asyncio.Queue[HeldRequest] = asyncio.Queue()

    def matches(self, method: str, path: str) -> bool:
        return (
            (self.remaining is None or self.remaining > 0)
            and (self.method is None or self.method == method)
            and (self.path_contains is None or self.path_contains in path)
        )

    def take(self, method: str, path: str) -> HeldRequest:
        if self.remaining is not None:
            self.remaining -= 1
        held = HeldRequest(method, path, self.stage)
        self.held.append(held)
        self._arrivals.put_nowait(held)
        return held

    async def arrival(self) -> HeldRequest:
        """The next request this hold stopped, once it has arrived (in the order they came)."""
        async with asyncio.timeout(HOLD_GUARD_SECONDS):
            return await self._arrivals.get()

    def release_all(self) -> None:
        """Let every held request go on, and hold no more."""
        self.remaining = 0
        for held in self.held:
            held.release()


@dataclass
class _FaultRule:
    remaining: int
    path_contains: str | None
    status: int = 503

    def matches(self, path: str) -> bool:
        return self.remaining > 0 and (self.path_contains is None or self.path_contains in path)


class Controls:
    """Mixed into ``FakeRacetime``: setup, fault injection and race controls."""

    def add_category(
        self,
        slug: str,
        goals: list[str],
        *,
        name: str | None = None,
        short_name: str | None = None,
        **extra: Any,
    ) -> FakeCategory:
        """Add a category; ``extra`` sets other ``FakeCategory`` fields (owners, allow_hide_entrants...)."""
        category = FakeCategory(
            slug=slug, name=name or slug, short_name=short_name or slug.upper(), goals=list(goals), **extra
        )
        self.categories[slug] = category
        return category

    def add_bot(self, category: str, client_id: str, client_secret: str, name: str = "TestBot") -> FakeApp:
        if category not in self.categories:
            raise FakeRacetimeError(f"unknown category {category}")
        app = FakeApp(client_id, client_secret, "client_credentials", name, category=category)
        self.apps[client_id] = app
        return app

    def add_category_with_bot(
        self, slug: str, goals: list[str] | None = None, *, bot_name: str | None = None
    ) -> FakeApp:
        """A second category with its own bot application (RaceTime.gg accepts a bot only in its own category)."""
        self.add_category(slug, goals or ["Beat the game"])
        return self.add_bot(slug, self._secret(40), self._secret(128), name=bot_name or f"{slug.upper()}Bot")

    def add_oauth_app(
        self,
        client_id: str,
        client_secret: str,
        redirect_uris: list[str] | None = None,
        name: str = "Startline",
    ) -> FakeApp:
        app = FakeApp(client_id, client_secret, "authorization_code", name, redirect_uris=redirect_uris)
        self.apps[client_id] = app
        return app

    def add_user(self, user: dict[str, Any]) -> dict[str, Any]:
        """Make a user known (for ``invite`` by id); returns the stored summary."""
        return self.users.setdefault(user["id"], user)

    def expire_all_tokens(self) -> None:
        """Every issued token stops working (the next protected call gets a bare 403)."""
        for token in self.tokens.values():
            token.expires_at = float("-inf")

    # ---------------------------------------------------------------- fault injection

    def fail_next(self, n: int, status: int = 503, path_contains: str | None = None) -> None:
        self._fail_rules.append(_FaultRule(n, path_contains, status))

    def drop_next(self, n: int, path_contains: str | None = None) -> None:
        """Close the connection without any response, ``n`` times."""
        self._drop_rules.append(_FaultRule(n, path_contains))

    def set_delay(self, seconds: float, path_contains: str | None = None, *, after: bool = False) -> None:
        """Answer matching requests ``seconds`` late (0 removes the delay).

        By default the request waits before it is handled; with ``after`` it is handled at once and only the
        answer waits, so a client that dies or gives up meanwhile never learns what it did (a room it opened).
        """
        delays = self._late_answers if after else self._delays
        if seconds > 0:
            delays[path_contains] = seconds
        else:
            delays.pop(path_contains, None)

    def hold(
        self,
        method: str | None = None,
        path_contains: str | None = None,
        *,
        stage: str = "request",
        count: int | None = 1,
    ) -> Hold:
        """Stop the next ``count`` matching requests (None: all) until the test releases them; see ``Hold``.

        ``hold = rt.hold("POST", "/startrace"); held = await hold.arrival(); ...; held.release()``
        """
        rule = Hold(method, path_contains, stage, count)
        self._holds.append(rule)
        return rule

    def down(self) -> None:
        self._down = True

    def up(self) -> None:
        self._down = False

    def count(self, method: str | None = None, path_contains: str | None = None) -> int:
        return sum(
            1
            for m, p in self.requests
            if (method is None or m == method) and (path_contains is None or path_contains in p)
        )

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        path = request.path
        self.requests.append((request.method, path))
        if self._down:
            return web.Response(status=503, text="<h1>Service Unavailable</h1>", content_type="text/html")
        for rule in self._fail_rules:
            if rule.matches(path):
                rule.remaining -= 1
                return web.Response(
                    status=rule.status, text=f"<h1>Error ({rule.status})</h1>", content_type="text/html"
                )
        for rule in self._drop_rules:
            if rule.matches(path):
                rule.remaining -= 1
                if request.transport is not None:
                    request.transport.close()
                return web.Response(status=500)  # never reaches the client: the socket is closed
        await self._wait(self._delays, path)
        held = next((h.take(request.method, path) for h in self._holds if h.matches(request.method, path)), None)
        # Shielded: a client that gives up (or a dropped connection) must not stop what the server does.
        return await asyncio.shield(asyncio.ensure_future(self._handle(request, handler, path, held)))

    async def _handle(
        self, request: web.Request, handler: Any, path: str, held: HeldRequest | None
    ) -> web.StreamResponse:
        if held is not None and held.stage == "request":
            if request.can_read_body:
                await request.read()  # the whole request arrived; the client may be gone when it is handled
            await self._until_released(held)
        if path != "/" and path.endswith("/"):
            response: web.StreamResponse = self._html_404()  # APPEND_SLASH = False
        else:
            try:
                response = await handler(request)
            except web.HTTPNotFound:
                response = self._html_404()
        if held is not None:
            held._handled.set()
            if held.stage == "answer":
                await self._until_released(held)
        await self._wait(self._late_answers, path)
        return response

    async def _until_released(self, held: HeldRequest) -> None:
        stopping = asyncio.ensure_future(self._stopping.wait())
        released = asyncio.ensure_future(held._released.wait())
        await asyncio.wait((stopping, released), return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        released.cancel()

    async def _wait(self, delays: dict[str | None, float], path: str) -> None:
        delay = max((s for pc, s in delays.items() if pc is None or pc in path), default=0.0)
        if delay:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)

    # ---------------------------------------------------------------- helpers

    # ---------------------------------------------------------------- race controls (for tests)

    def open_room(
        self,
        category: str = "alttpr",
        *,
        goal: str | None = None,
        custom_goal: str | None = None,
        info_user: str = "",
        info_bot: str = "",
        bot_name: str | None = None,
        **settings: Any,
    ) -> str:
        """Open a room directly (as if a bot had called startrace); returns the slug."""
        cat = self.categories[category]
        form = dict(FORM_DEFAULTS)
        form.update(settings)
        if goal is None and custom_goal is None:
            goal = cat.goals[0]
        form.update(goal=goal or "", custom_goal=custom_goal or "", info_user=info_user, info_bot=info_bot)
        cleaned, errors = clean_race_form(form, cat.goals, START_FIELDS)
        if errors:
            raise FakeRacetimeError(str(errors))
        bot = bot_name or next((a.name for a in self.apps.values() if a.category == category), "TestBot")
        return self._create_room(cat, cleaned, bot).slug

    def add_entrant(self, slug: str, user: dict[str, Any], ready: bool = True) -> None:
        room = self._control_room(slug)
        if room.status not in PREPARING:
            raise FakeRacetimeError(f"{slug} is {room.status}; nobody can join")
        self.add_user(user)
        try:
            entrant = room.entrant(user["id"])
        except KeyError:
            entrant = FakeEntrant(user=user)
            room.entrants.append(entrant)
        entrant.state, entrant.ready = "joined", ready
        self._changed(room, f"{user['full_name']} joins the race.")
        self._tick(room)

    def say(self, slug: str, user_id: str, text: str) -> dict[str, Any]:
        """A user's chat message in the room, as every socket sees it (`!commands` arrive as plain chat)."""
        room = self._control_room(slug)
        user = self.users[user_id]
        message = self._chat_message(room, text)
        summary = {k: user[k] for k in ("id", "full_name", "name", "discriminator") if k in user}
        message.update(user={**summary, "can_moderate": False}, is_system=False, is_monitor=False)
        self._send_all(room, self._envelope("chat.message", message=message))
        return message

    async def drop_sockets(self, slug: str) -> int:
        """Close every bot socket of the room from the server's side (a network drop); returns how many."""
        room = self._control_room(slug)
        socks = list(room.sockets)
        for sock in socks:
            await sock.ws.close()
        return len(socks)

    def send_raw(self, slug: str, text: str) -> None:
        """Send `text` as it is to every bot socket of the room (for clients that must survive garbage)."""
        for sock in self._control_room(slug).sockets:
            sock.queue.put_nowait(text)

    def socket_count(self, slug: str) -> int:
        return len(self._control_room(slug).sockets)

    def set_ready(self, slug: str, user_id: str, ready: bool = True) -> None:
        room = self._control_room(slug)
        entrant = self._joined_entrant(room, user_id)
        if room.status not in PREPARING:
            raise FakeRacetimeError(f"{slug} is {room.status}")
        entrant.ready = ready
        self._changed(room, f"{entrant.user['full_name']} is {'ready' if ready else 'not ready'}.")
        self._tick(room)

    def invite(self, slug: str, user: dict[str, Any]) -> None:
        room = self._control_room(slug)
        if room.status not in PREPARING:
            raise FakeRacetimeError(f"{slug} is {room.status}")
        self.add_user(user)
        room.entrants.append(FakeEntrant(user=user, state="invited"))
        self._changed(room, f"{user['full_name']} is invited to join the race.")

    def begin(self, slug: str) -> None:
        """Start the countdown (``pending``, ``started_at`` = now + start_delay); not-ready entrants leave."""
        room = self._control_room(slug)
        if room.status not in PREPARING:
            raise FakeRacetimeError(f"{slug} is {room.status}")
        self._begin(room, "The race will begin shortly!")

    def go(self, slug: str) -> None:
        """End the countdown now: ``in_progress``."""
        room = self._control_room(slug)
        if room.status != "pending":
            raise FakeRacetimeError(f"{slug} is {room.status}, not pending")
        self._go(room)

    def start_race(self, slug: str, started_at: datetime | None = None) -> None:
        """Begin and go at once; ``started_at`` defaults to now."""
        room = self._control_room(slug)
        if room.status in PREPARING:
            self._begin(room, "The race will begin shortly!")
        if room.status != "pending":
            raise FakeRacetimeError(f"{slug} is {room.status}")
        self._go(room, started_at or self.now())

    def finish_entrant(self, slug: str, user_id: str, finish_time: timedelta) -> None:
        room = self._control_room(slug)
        entrant = self._running_entrant(room, user_id)
        entrant.finish_time = finish_time
        self._recompute_places(room)
        self._changed(
            room,
            f"{entrant.user['full_name']} has finished in {_ordinal(entrant.place)} place "
            f"with a time of {_format_race_time(finish_time)}!",
        )
        self._finish_if_none_remaining(room)

    def dnf(self, slug: str, user_id: str) -> None:
        room = self._control_room(slug)
        entrant = self._running_entrant(room, user_id)
        entrant.dnf = True
        self._changed(room, f"{entrant.user['full_name']} has forfeited from the race.")
        self._finish_if_none_remaining(room)

    def dq(self, slug: str, user_id: str) -> None:
        """Disqualify (a moderator's action); a finisher keeps finish_time but loses the place."""
        room = self._control_room(slug)
        entrant = self._joined_entrant(room, user_id)
        entrant.dq = True
        self._recompute_places(room)
        self._changed(room, f"{entrant.user['full_name']} has been disqualified from the race.")
        self._finish_if_none_remaining(room)

    def cancel(self, slug: str) -> None:
        room = self._control_room(slug)
        try:
            self._cancel(room, "a race monitor")
        except _ActionError as exc:
            raise FakeRacetimeError(str(exc)) from None

    def partition(self, slug: str) -> None:
        """A 1v1-ladder room is split into separate rooms (open or invitational rooms only)."""
        room = self._control_room(slug)
        if room.status not in ("open", "invitational"):
            raise FakeRacetimeError(f"{slug} is {room.status}")
        for entrant in room.entrants:
            entrant.state = "partitioned"
        room.status = "partitioned"
        room.settings["unlisted"] = False
        self._changed(room, "This race has been partitioned into separate 1v1 races.")

    def end_race(self, slug: str) -> None:
        """The time limit is reached: everyone still running becomes dnf."""
        room = self._control_room(slug)
        if room.status != "in_progress":
            raise FakeRacetimeError(f"{slug} is {room.status}")
        self._end_race(room)

    def record(self, slug: str) -> None:
        room = self._control_room(slug)
        if room.status != "finished" or not room.recordable:
            raise FakeRacetimeError(f"{slug} cannot be recorded")
        room.recorded = True
        room.settings["unlisted"] = False
        self._changed(room)

    def replay(self, slug: str, past_race: dict[str, Any]) -> None:
        """Play a real finished race (from ``races_with_past_entrants*.json``) in an open room.

        Its entrants join with their real users, start at the real ``started_at``, get their real
        finish times, dnf and dq statuses, scores and comments; the room then finishes at the real
        ``ended_at``.
        """
        room = self._control_room(slug)
        for item in past_race["entrants"]:
            if item["user"] is not None:
                self.add_entrant(slug, item["user"], ready=True)
        self.start_race(slug, parse_datetime(past_race["started_at"]))
        for item in past_race["entrants"]:
            if item["user"] is None:
                continue
            user_id, status = item["user"]["id"], item["status"]["value"]
            entrant = room.entrant(user_id)
            entrant.score, entrant.comment = item.get("score"), item.get("comment")
            entrant.score_change = item.get("score_change")
            if item.get("finish_time") and status in ("done", "dq"):
                entrant.finish_time = parse_duration(item["finish_time"])
            if status == "dnf":
                entrant.dnf = True
            elif status == "dq":
                entrant.dq = True
        self._recompute_places(room)
        self._finish_if_none_remaining(room)
        if room.status == "in_progress":
            self._end_race(room)
        if past_race.get("ended_at"):
            room.ended_at = parse_datetime(past_race["ended_at"])

    def room(self, slug: str) -> dict[str, Any]:
        """The room as ``/<cat>/<slug>/data`` would show it now."""
        return self.race_json(self._control_room(slug))

    def messages(self, slug: str) -> list[dict[str, Any]]:
        """The room's chat log (system, bot and DM messages), oldest first."""
        return list(self._control_room(slug).messages)

    def rooms_with_marker(self, text: str) -> list[dict[str, Any]]:
        """Every room (any state, listed or not) whose info contains ``text``."""
        return [self.race_json(room) for room in self.rooms if text in room.info]

    def _joined_entrant(self, room: FakeRoom, user_id: str) -> FakeEntrant:
        try:
            entrant = room.entrant(user_id)
        except KeyError:
            raise FakeRacetimeError(f"{user_id} is not an entrant of {room.slug}") from None
        if not entrant.joined:
            raise FakeRacetimeError(f"{user_id} has not joined {room.slug}")
        return entrant

    def _running_entrant(self, room: FakeRoom, user_id: str) -> FakeEntrant:
        entrant = self._joined_entrant(room, user_id)
        if room.status != "in_progress" or not entrant.running:
            raise FakeRacetimeError(f"{user_id} is not running in {room.slug} ({room.status})")
        return entrant
