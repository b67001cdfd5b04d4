"""A faithful fake of RaceTime.gg: a real aiohttp server on 127.0.0.1 for tests.

It follows ``/work/shared/reference/racetime-api.md`` (captured from the real site): bare 403s with
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
import base64
import binascii
import contextlib
import json
import random
import re
import string
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from aiohttp import WSMsgType, web

from racetime.client import RacetimeClient
from racetime.durations import format_datetime, format_duration, parse_datetime, parse_duration
from tests.fakes.racetime_data import load_json

RACE_STATUSES = {
    "open": ("Open", "Anyone may join this race"),
    "invitational": ("Invitational", "Only invitees may join this race"),
    "pending": ("Getting ready", "Waiting for race to begin"),
    "in_progress": ("In progress", "Race is in progress"),
    "finished": ("Finished", "This race has been completed"),
    "cancelled": ("Cancelled", "This race has been cancelled"),
    "partitioned": ("Partitioned", "Race has been partitioned into separate 1v1 races"),
}
ENTRANT_STATUSES = {
    "requested": ("Join request", "Wishes to join the race."),
    "invited": ("Invited", "Invited to join the race."),
    "declined": ("Declined", "Declined invitation to join."),
    "partitioned": ("Partitioned", "Moved to partitioned race room."),
    "dnf": ("DNF", "Did not finish the race."),
    "dq": ("DQ", "Disqualified by a category moderator."),
    "done": ("Finished", "Finished the race."),
    "in_progress": ("In progress", "Still flyin'."),
    "ready": ("Ready", "Ready to begin the race."),
    "not_ready": ("Not ready", "Not ready to begin yet."),
}
# RaceTime.gg lists entrants in this order (then by place, finish time, -score, name).
_ENTRANT_ORDER = {
    "done": 0,
    "in_progress": 1,
    "ready": 1,
    "not_ready": 2,
    "invited": 3,
    "requested": 4,
    "dnf": 5,
    "dq": 6,
    "declined": 7,
    "partitioned": 8,
}
PREPARING = frozenset({"open", "invitational"})
CURRENT = frozenset({"pending", "in_progress"})
DONE = frozenset({"finished", "cancelled", "partitioned"})

ALL_SCOPES = ("read", "chat_message", "race_action", "create_race")
TOKEN_CHARS = string.ascii_letters + string.digits
HASHID_CHARS = string.ascii_letters + string.digits
GUID_RE = re.compile(r"^[0-9a-z\-]+$")
_MARKUP_RE = re.compile(r"##(\w+?)##(.*?)##")
_SLUG_ADJECTIVES = (
    "lawful",
    "gentle",
    "banzai",
    "messy",
    "clumsy",
    "curious",
    "dynamic",
    "graceful",
    "hungry",
    "odd",
    "perfect",
    "speedy",
    "sublime",
    "virtual",
    "amazing",
    "chaotic",
    "classic",
    "good",
    "grumpy",
    "helpful",
)
_SLUG_NOUNS = (
    "pit",
    "pokey",
    "sun",
    "samus",
    "terry",
    "lyra",
    "cuphead",
    "mario",
    "raichu",
    "rikku",
    "slime",
    "kirby",
    "toadstool",
    "knuckles",
    "fez",
    "spaceman",
    "rayman",
    "corrin",
    "bahamut",
    "cid",
)

DJANGO_404 = (
    '<!doctype html>\n<html lang="en">\n<head>\n  <title>Not Found</title>\n</head>\n<body>\n'
    "  <h1>Not Found</h1><p>The requested resource was not found on this server.</p>\n</body>\n</html>\n"
)
PERMISSION_DENIED = "Permission denied. Check your authorization token."

# --- the race form (app:racetime/forms.py), in field order, with the model defaults ---------------
# A field missing from the POST gets the model default before validation (not the category default).
FORM_DEFAULTS: dict[str, Any] = {
    "team_race": False,
    "invitational": False,
    "unlisted": False,
    "ranked": True,
    "partitionable": False,
    "hide_entrants": False,
    "info_user": "",
    "info_bot": "",
    "recordable": True,
    "require_even_teams": False,
    "start_delay": 15,
    "time_limit": 24,
    "time_limit_auto_complete": False,
    "streaming_required": True,
    "auto_start": True,
    "allow_comments": True,
    "hide_comments": False,
    "allow_prerace_chat": True,
    "allow_midrace_chat": True,
    "allow_non_entrant_chat": True,
    "chat_message_delay": 0,
}
# Integer fields: (unit, minimum, maximum); Django validates them as timedeltas, hence the messages.
_DURATION_FIELDS = {
    "start_delay": (timedelta(seconds=1), timedelta(seconds=10), timedelta(seconds=60)),
    "time_limit": (timedelta(hours=1), timedelta(hours=1), timedelta(hours=72)),
    "chat_message_delay": (timedelta(seconds=1), timedelta(0), timedelta(seconds=90)),
}
_TEXT_FIELDS = {"info_user": 1000, "info_bot": 1000}
START_FIELDS = ("goal", "custom_goal", *FORM_DEFAULTS)
_START_ONLY_FIELDS = ("team_race", "invitational", "partitionable", "hide_entrants")
EDIT_FIELDS = tuple(f for f in START_FIELDS if f not in _START_ONLY_FIELDS)
STARTED_EDIT_FIELDS = (
    "unlisted",
    "info_user",
    "allow_comments",
    "hide_comments",
    "allow_midrace_chat",
    "allow_non_entrant_chat",
    "chat_message_delay",
)


class FakeRacetimeError(ValueError):
    """A test asked the fake for something the real site would not do."""


class _ActionError(Exception):
    """A websocket action failed; the message goes to the sender only."""


def _checkbox(value: Any) -> bool:
    # Django's CheckboxInput: only "false" (any case) and "" are false; "0" and "no" are TRUE.
    if isinstance(value, str):
        value = {"true": True, "false": False}.get(value.lower(), value)
    return bool(value)


def _iso_now_exact(now: datetime) -> str:
    return now.isoformat()  # websocket envelopes and X-Date-Exact use isoformat, not the JSON encoder


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _format_race_time(td: timedelta) -> str:
    total = int(td.total_seconds())
    return f"{total // 3600}:{total % 3600 // 60:02d}:{total % 60:02d}.{td.microseconds // 100000}"


def _too_long(limit: int, text: str) -> str:
    return f"Ensure this value has at most {limit} characters (it has {len(text)})."


def clean_race_form(
    data: Any, goals: list[str], fields: tuple[str, ...]
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """Validate a race form like Django would: returns (cleaned values, ``form.errors``)."""
    cleaned: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for name in fields:
        if name in ("goal", "custom_goal"):
            continue
        raw = data[name] if name in data else FORM_DEFAULTS[name]
        if name in _DURATION_FIELDS:
            unit, low, high = _DURATION_FIELDS[name]
            text = re.sub(r"\.0*\s*$", "", str(raw).strip())
            if text == "":
                errors[name] = ["This field is required."]
                continue
            try:
                value = int(text) * unit
            except ValueError:
                errors[name] = ["Enter a whole number."]
                continue
            if value < low:
                errors[name] = [f"Ensure this value is greater than or equal to {low}."]
            elif value > high:
                errors[name] = [f"Ensure this value is less than or equal to {high}."]
            else:
                cleaned[name] = value
        elif name in _TEXT_FIELDS:
            text = str(raw).strip()
            if len(text) > _TEXT_FIELDS[name]:
                errors[name] = [_too_long(_TEXT_FIELDS[name], text)]
            else:
                cleaned[name] = text
        else:
            cleaned[name] = _checkbox(raw)
    if "goal" in fields:
        goal_name = str(data.get("goal", ""))
        custom_goal = str(data.get("custom_goal", "")).strip()
        if len(custom_goal) > 255:
            errors["custom_goal"] = [_too_long(255, custom_goal)]
            custom_goal = ""  # an invalid field is missing from cleaned_data when clean() runs
        # Only an active goal NAME counts; an unknown name is treated as no goal at all.
        goal = goal_name if goal_name in goals else None
        general = []
        if goal is None and not custom_goal:
            general.append("You need to set a goal for this race.")
        elif goal is not None and custom_goal:
            general.append("The race must only have one goal.")
        if general:
            errors["__all__"] = general
        cleaned["goal"], cleaned["custom_goal"] = goal, custom_goal or None
    return cleaned, errors


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


# --- the server ------------------------------------------------------------------------------------


class FakeRacetime:
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

    def _create_room(self, category: FakeCategory, cleaned: dict[str, Any], bot_name: str) -> FakeRoom:
        not_settings = ("goal", "custom_goal", "invitational", "info_user", "info_bot", "recordable")
        settings = {k: v for k, v in cleaned.items() if k not in not_settings}
        if not category.allow_hide_entrants:
            settings["hide_entrants"] = False
        if not category.allow_partitionable:
            settings["partitionable"] = False
        if settings["hide_entrants"]:
            settings.update(allow_prerace_chat=False, allow_midrace_chat=False, allow_non_entrant_chat=False)
        custom = cleaned["custom_goal"] is not None
        room = FakeRoom(
            category=category,
            slug=self._new_slug(),
            status="invitational" if cleaned["invitational"] else "open",
            goal_name=cleaned["custom_goal"] if custom else cleaned["goal"],
            goal_custom=custom,
            opened_at=self.now(),
            opened_by_bot=bot_name,
            settings=settings,
            info_user=cleaned["info_user"],
            info_bot=cleaned["info_bot"],
            recordable=settings["ranked"] and not custom,
        )
        self.rooms.append(room)
        self._chat_message(room, f"Race opened automatically by {bot_name}")
        return room

    # ---------------------------------------------------------------- HTTP: OAuth

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}

        def reply(data: dict[str, Any], status: int = 200) -> web.Response:
            return web.json_response(data, status=status, headers=headers)

        grant = form.get("grant_type")
        if grant not in ("client_credentials", "authorization_code", "refresh_token"):
            return reply({"error": "unsupported_grant_type"}, 400)
        client_id, secret = form.get("client_id"), form.get("client_secret")
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            try:
                client_id, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return reply({"error": "invalid_client"}, 401)
        app = self.apps.get(str(client_id or ""))
        if app is None or not app.active or app.client_secret != secret:
            return reply({"error": "invalid_client"}, 401)
        allowed = (
            ("client_credentials",)
            if app.grant_type == "client_credentials"
            else ("authorization_code", "refresh_token")
        )
        if grant not in allowed:
            return reply({"error": "unauthorized_client"}, 400)

        if grant == "client_credentials":
            requested = str(form.get("scope") or " ".join(ALL_SCOPES)).split()
            if any(s not in ALL_SCOPES for s in requested):
                return reply({"error": "invalid_scope"}, 400)
            token = self._issue(app, tuple(s for s in ALL_SCOPES if s in requested))
            return reply(self._token_body(token))
        if grant == "authorization_code":
            code = form.get("code")
            if not code:
                return reply({"error": "invalid_request", "error_description": "Missing code parameter."}, 400)
            grant_data = self._codes.pop(str(code), None)
            if (
                grant_data is None
                or grant_data["client_id"] != app.client_id
                or grant_data["redirect_uri"] != form.get("redirect_uri")
                or grant_data["expires_at"] <= time.monotonic()
            ):
                return reply({"error": "invalid_grant"}, 400)
            token = self._issue(app, grant_data["scopes"], user=grant_data["user"])
            return reply(self._token_body(token))
        old = next(
            (
                t
                for t in self.tokens.values()
                if t.refresh_token and t.refresh_token == form.get("refresh_token") and t.client_id == app.client_id
            ),
            None,
        )
        if old is None:
            return reply({"error": "invalid_grant"}, 400)
        del self.tokens[old.value]  # refresh tokens rotate; the old pair stops working
        token = self._issue(app, old.scopes, user=old.user)
        return reply(self._token_body(token))

    def _issue(self, app: FakeApp, scopes: tuple[str, ...], user: dict[str, Any] | None = None) -> FakeToken:
        token = FakeToken(
            value=self._secret(30),
            client_id=app.client_id,
            scopes=scopes,
            expires_at=time.monotonic() + self.token_expires_in,
            user=user,
            refresh_token=self._secret(30) if user is not None else None,
        )
        self.tokens[token.value] = token
        return token

    def _token_body(self, token: FakeToken) -> dict[str, Any]:
        body: dict[str, Any] = {
            "access_token": token.value,
            "expires_in": self.token_expires_in,
            "token_type": "Bearer",
            "scope": " ".join(token.scopes),
        }
        if token.refresh_token:
            body["refresh_token"] = token.refresh_token
        return body

    async def _authorize(self, request: web.Request) -> web.Response:
        query = request.query
        app = self.apps.get(query.get("client_id", ""))
        redirect_uri = query.get("redirect_uri", "")
        if (
            app is None
            or app.grant_type != "authorization_code"
            or not redirect_uri
            or (app.redirect_uris is not None and redirect_uri not in app.redirect_uris)
        ):
            # DOT shows an error page instead of redirecting to an unverified URI.
            return web.Response(status=400, text="<h1>Invalid client or redirect_uri</h1>", content_type="text/html")
        params: dict[str, str] = {}
        scopes = tuple(s for s in ALL_SCOPES if s in query.get("scope", "read").split())
        if query.get("response_type") != "code":
            params["error"] = "unsupported_response_type"
        elif not self.oauth_approve:
            params["error"] = "access_denied"
        else:
            code = self._secret(30)
            self._codes[code] = {
                "client_id": app.client_id,
                "redirect_uri": redirect_uri,
                "scopes": scopes,
                "user": self.oauth_user,
                "expires_at": time.monotonic() + 600,
            }
            params["code"] = code
        if "state" in query:
            params["state"] = query["state"]
        separator = "&" if "?" in redirect_uri else "?"
        raise web.HTTPFound(f"{redirect_uri}{separator}{urlencode(params)}")

    async def _userinfo(self, request: web.Request) -> web.Response:
        token = self._bearer(request)
        if token is None or "read" not in token.scopes:
            return self._forbidden()
        if token.user is None:
            return self._forbidden("<h1>403 Forbidden</h1>")  # a bot token is an anonymous user
        return self._json_response({**token.user, "active_race": None})

    # ---------------------------------------------------------------- HTTP: data

    def _category_or_404(self, slug: str) -> FakeCategory:
        category = self.categories.get(slug)
        if category is None or not category.active:
            raise web.HTTPNotFound()
        return category

    def _tick_category(self, category: FakeCategory) -> None:
        for room in self.rooms:
            if room.category is category:
                self._tick(room)

    async def _category_data_public(self, request: web.Request) -> web.Response:
        category = self._category_or_404(request.match_info["cat"])
        self._tick_category(category)
        return self._json_response(self.category_json(category, include_unlisted=False), max_age=60)

    async def _category_data_oauth(self, request: web.Request) -> web.Response:
        slug = request.match_info["cat"]
        cached = self._category_cache.get(slug)
        if cached is not None and self.cache_clock() - cached[0] < self.cache_ttl:
            # Like the real site: a cache hit skips even the bot check.
            return web.Response(
                body=cached[1],
                content_type="application/json",
                headers={"Cache-Control": "public, max-age=60, must-revalidate"},
            )
        token = self._bearer(request)
        category = self._category_or_404(slug)
        if self._bot_of(token, category) is None:
            return self._forbidden()
        self._tick_category(category)
        response = self._json_response(self.category_json(category, include_unlisted=True), max_age=60)
        if self.cache_ttl > 0:
            self._category_cache[slug] = (self.cache_clock(), response.body)
        return response

    async def _race_data(self, request: web.Request) -> web.Response:
        self._category_or_404(request.match_info["cat"])
        try:
            room = self._room(request.match_info["slug"], request.match_info["cat"])
        except KeyError:
            raise web.HTTPNotFound() from None
        self._tick(room)
        return self._json_response(self.race_json(room), max_age=5)

    async def _past_races(self, request: web.Request) -> web.Response:
        category = self._category_or_404(request.match_info["cat"])
        try:
            page = int(request.query.get("page", "1"))
        except ValueError:
            return web.Response(status=400, text="", content_type="text/html")
        try:
            per_page = min(int(request.query.get("per_page", "10")), 100)
        except ValueError:
            per_page = 10
        per_page = max(per_page, 1)
        show_entrants = request.query.get("show_entrants", "").lower() in ("true", "yes", "1")
        self._tick_category(category)
        finished = [
            room
            for room in self.rooms
            if room.category is category and room.status == "finished" and not room.settings["unlisted"]
        ]
        finished.sort(key=lambda room: room.ended_at, reverse=True)
        num_pages = max(1, -(-len(finished) // per_page))
        chunk = finished[(page - 1) * per_page : page * per_page] if 1 <= page <= num_pages else []
        return self._json_response(
            {
                "count": len(finished),
                "num_pages": num_pages,
                "races": [self.summary_json(room, entrants=show_entrants) for room in chunk],
            }
        )

    # ---------------------------------------------------------------- HTTP: bot race management

    async def _startrace(self, request: web.Request) -> web.Response:
        token = self._bearer(request)
        if token is None or "create_race" not in token.scopes:
            return self._forbidden()
        category = self._category_or_404(request.match_info["cat"])
        cleaned, errors = clean_race_form(await request.post(), category.goals, START_FIELDS)
        if errors:
            return web.json_response({"errors": errors}, status=422)  # validation runs before the bot check
        bot = self._bot_of(token, category)
        if bot is None:
            return self._forbidden()
        room = self._create_room(category, cleaned, bot.name)
        return web.Response(status=201, headers={"Location": f"/{room.name}"}, content_type="text/html")

    async def _edit(self, request: web.Request) -> web.Response:
        token = self._bearer(request)
        if token is None or "create_race" not in token.scopes:
            return self._forbidden()
        category = self._category_or_404(request.match_info["cat"])
        try:
            room = self._room(request.match_info["slug"], category.slug)
        except KeyError:
            raise web.HTTPNotFound() from None
        self._tick(room)
        if room.status in DONE:
            return self._forbidden()
        started = room.status in CURRENT
        fields = STARTED_EDIT_FIELDS if started else EDIT_FIELDS
        cleaned, errors = clean_race_form(await request.post(), category.goals, fields)
        if errors:
            return web.json_response({"errors": errors}, status=422)
        bot = self._bot_of(token, category)
        if bot is None:
            return self._forbidden()
        self._apply_edit(room, cleaned, bot.name, started)
        return web.Response(status=200, content_type="text/html")

    def _apply_edit(self, room: FakeRoom, cleaned: dict[str, Any], bot: str, started: bool) -> None:
        """Full replace: every field of the form takes its posted value or its model default."""
        s = room.settings
        messages = []
        if not started:
            custom = cleaned["custom_goal"] is not None
            goal = cleaned["custom_goal"] if custom else cleaned["goal"]
            if (goal, custom) != (room.goal_name, room.goal_custom):
                messages.append(f"{bot} set a new goal: {goal}")
            room.goal_name, room.goal_custom = goal, custom
            room.info_bot = cleaned["info_bot"]
            room.recordable = cleaned["ranked"] and not custom
        if cleaned["info_user"] != room.info_user:
            messages.append(f"{bot} updated the race information.")
        room.info_user = cleaned["info_user"]
        if not started and cleaned["streaming_required"] != s["streaming_required"]:
            messages.append(
                "Streaming is now required for this race."
                if cleaned["streaming_required"]
                else "Streaming is now NOT required for this race."
            )
        if cleaned["chat_message_delay"] != s["chat_message_delay"]:
            seconds = int(cleaned["chat_message_delay"].total_seconds())
            messages.append(f"Chat delay is now {seconds} seconds." if seconds else "Chat delay has been removed.")
        for name, value in cleaned.items():
            if name not in s:
                continue
            if name == "require_even_teams" and not s["team_race"]:
                continue
            if name.startswith("allow_") and name.endswith("_chat") and s["hide_entrants"]:
                continue
            s[name] = value
        self._changed(room, *messages)

    # ---------------------------------------------------------------- websocket

    async def _bot_socket(self, request: web.Request) -> web.StreamResponse:
        try:
            room = self._room(request.match_info["slug"])
        except KeyError:
            # The real site never accepts; Daphne then refuses the handshake with 403.
            return self._forbidden()
        header = request.headers.get("Authorization", "")
        token = header[7:] if header.startswith("Bearer ") else request.query.get("token")
        ws = web.WebSocketResponse(timeout=1.0)  # short close handshake so stop() never lingers
        await ws.prepare(request)  # accepted regardless of the token: it is checked per action
        sock = _Socket(ws, token)
        writer = asyncio.create_task(self._socket_writer(sock))
        self._tick(room)
        room.sockets.add(sock)
        for payload in self._race_payloads(room):
            sock.send(payload)
        try:
            async for frame in ws:
                if frame.type == WSMsgType.TEXT:
                    self._tick(room)
                    self._on_action(room, sock, frame.data)
                elif frame.type == WSMsgType.ERROR:
                    break
        finally:
            room.sockets.discard(sock)
            sock.queue.put_nowait(None)
            await writer
        return ws

    @staticmethod
    async def _socket_writer(sock: _Socket) -> None:
        # One writer per socket keeps messages in order even when sync controls broadcast.
        while (text := await sock.queue.get()) is not None:
            if sock.ws.closed:
                continue
            with contextlib.suppress(ConnectionError):
                await sock.ws.send_str(text)

    def _on_action(self, room: FakeRoom, sock: _Socket, text: str) -> None:
        try:
            payload = json.loads(text)
            if not isinstance(payload, dict):
                raise ValueError
        except ValueError:
            sock.send(
                self._envelope(
                    "error",
                    errors=[
                        "Unable to process that message (encountered invalid or possibly corrupted data). "
                        "Sorry about that."
                    ],
                )
            )
            return
        action, data = payload.get("action"), payload.get("data") or {}
        if action == "ping":
            sock.send(self._envelope("pong"))
        elif action == "getrace":
            for item in self._race_payloads(room):
                sock.send(item)
        elif action == "gethistory":
            public = [m for m in room.messages if not m["is_dm"]]
            history = [m for m in public if not m["is_pinned"]][-100:] + [m for m in public if m["is_pinned"]]
            sock.send(self._envelope("chat.history", messages=history))
        elif action in _BOT_ACTIONS:
            bot = self._bot_of(self._valid_token(sock.token), room.category)
            try:
                if bot is None:
                    raise _ActionError(PERMISSION_DENIED)
                _BOT_ACTIONS[action](self, room, bot.name, data if isinstance(data, dict) else {})
            except _ActionError as exc:
                sock.send(self._envelope("error", errors=[str(exc)]))
        else:
            sock.send(
                self._envelope("error", errors=["Action is missing or not recognised. Check your input and try again."])
            )

    def _target(self, room: FakeRoom, data: dict[str, Any]) -> FakeEntrant:
        try:
            return room.entrant(str(data.get("user")))
        except KeyError:
            raise _ActionError("Specified user is not a race entrant.") from None

    def _act_message(self, room: FakeRoom, bot: str, data: dict[str, Any]) -> None:
        guid = data.get("guid")
        if not isinstance(guid, str) or not GUID_RE.match(guid):
            raise _ActionError(
                "Bad request, no GUID supplied. A unique string is required to prevent duplicate messaging."
            )
        now = time.monotonic()
        if now - room.seen_guids.get(guid, float("-inf")) < 300:
            return  # a repeated guid is silently ignored
        text, actions = data.get("message"), data.get("actions")
        if not text:
            raise _ActionError("message: This field is required.")
        if len(text) > 1000:
            raise _ActionError(f"message: {_too_long(1000, text)}")
        if actions and len(actions) > 4:
            raise _ActionError("actions: A message may only have up to 4 actions.")
        direct_to = data.get("direct_to")
        if direct_to is not None and direct_to not in self.users:
            raise _ActionError("direct_to: Unrecognised user")
        room.seen_guids[guid] = now
        if direct_to is not None:
            message = self._chat_message(room, text, bot=bot)
            message.update(is_dm=True, direct_to=direct_to)
            target = self.users[direct_to]
            self._send_all(
                room,
                self._envelope(
                    "chat.dm",
                    message=message["id"],
                    from_user=None,
                    from_bot=bot,
                    to={k: target[k] for k in ("id", "full_name", "name", "discriminator")},
                ),
            )
            return
        message = self._chat_message(room, text, bot=bot, pinned=bool(data.get("pinned")), actions=actions)
        self._send_all(room, self._envelope("chat.message", message=message))

    def _act_pin(self, room: FakeRoom, bot: str, data: dict[str, Any], pinned: bool = True) -> None:
        message = next((m for m in room.messages if m["id"] == data.get("message")), None)
        if message is None:
            raise _ActionError("Could not find a message with that ID.")
        if message["is_dm"] or message["is_pinned"] == pinned:
            return
        message["is_pinned"] = pinned
        self._send_all(room, self._envelope("chat.pin" if pinned else "chat.unpin", message=message))

    def _act_unpin(self, room: FakeRoom, bot: str, data: dict[str, Any]) -> None:
        self._act_pin(room, bot, data, pinned=False)

    def _act_setinfo(self, room: FakeRoom, bot: str, data: dict[str, Any]) -> None:
        info_bot = data.get("info_bot") or ""
        info_user = data.get("info_user") or data.get("info") or ""
        for name, value in (("info_bot", info_bot), ("info_user", info_user)):
            if len(value) > 1000:
                raise _ActionError(f"{name}: {_too_long(1000, value)}")
        # An empty string means "unchanged": setinfo cannot clear a field.
        if info_bot:
            room.info_bot = info_bot
        if info_user:
            room.info_user = info_user
        self._changed(room, f"##bot##{bot}## updated the race information.")

    def _act_setmeta(self, room: FakeRoom, bot: str, data: dict[str, Any]) -> None:
        merged = {**room.bot_meta, **data}
        if len(json.dumps({"bot_meta": merged})) > 2048:
            raise _ActionError("Data provided is too large to save.")
        room.bot_meta = merged
        room.version += 1  # no broadcast: it shows up in the next race.data

    def _act_make_open(self, room: FakeRoom, bot: str, data: dict[str, Any]) -> None:
        if room.status != "invitational":
            raise _ActionError("Race is not an invitational.")
        room.status = "open"
        self._changed(room, f"{bot} sets the race to be open. Anyone may now join.")

    def _act_make_invitational(self, room: FakeRoom, bot: str, data: dict[str, Any]) -> None:
        if room.status != "open":
            raise _ActionError("Race is not open.")
        room.status = "invitational"
        self._changed(room, f"{bot} sets the race to be invite only.")

    def _act_begin(self, room: FakeRoom, bot: str, data: dict[str, Any]) -> None:
        if not self._can_begin(room):
            raise _ActionError("Race cannot be started yet.")
        self._begin(room, f"{bot} has forced the race to begin.")

    def _act_cancel(self, room: FakeRoom, bot: str, data: dict[str, Any]) -> None:
        self._cancel(room, bot)

    def _act_invite(self, room: FakeRoom, bot: str, data: dict[str, Any]) -> None:
        user = self.users.get(str(data.get("user")))
        if user is None:
            raise _ActionError("No user found matching the given ID.")
        if any(e.user["id"] == user["id"] for e in room.entrants):
            raise _ActionError(f"{user['full_name']} is already an entrant.")
        if room.status not in PREPARING:
            raise _ActionError("User is not eligible to join this race.")
        room.entrants.append(FakeEntrant(user=user, state="invited"))
        self._changed(room, f"{bot} invites {user['full_name']} to join the race.")

    def _act_accept_request(self, room: FakeRoom, bot: str, data: dict[str, Any]) -> None:
        entrant = self._target(room, data)
        if entrant.state != "requested":
            raise _ActionError("This user has not requested to join this race. Refresh to continue.")
        entrant.state = "joined"
        self._changed(room, f"{bot} accepts a request to join from {entrant.user['full_name']}.")

    def _act_force_unready(self, room: FakeRoom, bot: str, data: dict[str, Any]) -> None:
        entrant = self._target(room, data)
        if room.status not in PREPARING or not entrant.joined or not entrant.ready:
            raise _ActionError("You cannot force this entrant to unready at this time. Refresh to continue.")
        entrant.ready = False
        self._changed(room, f"{bot} forces {entrant.user['full_name']} to unready.")

    def _act_remove_entrant(self, room: FakeRoom, bot: str, data: dict[str, Any]) -> None:
        entrant = self._target(room, data)
        room.entrants.remove(entrant)
        self._changed(room, f"{bot} removes {entrant.user['full_name']} from the race.")

    def _act_add_monitor(self, room: FakeRoom, bot: str, data: dict[str, Any]) -> None:
        entrant = self._target(room, data)
        if len(room.monitors) > 5:
            raise _ActionError("Races cannot have more than 5 monitors.")
        if entrant.user not in room.monitors:
            room.monitors.append(entrant.user)
        self._changed(room, f"{bot} promoted {entrant.user['full_name']} to race monitor.")

    def _act_remove_monitor(self, room: FakeRoom, bot: str, data: dict[str, Any]) -> None:
        entrant = self._target(room, data)
        if entrant.user in room.monitors:
            room.monitors.remove(entrant.user)
        self._changed(room, f"{bot} demoted {entrant.user['full_name']} from race monitor.")

    def _act_override_stream(self, room: FakeRoom, bot: str, data: dict[str, Any]) -> None:
        entrant = self._target(room, data)
        entrant.stream_override = True
        self._changed(room, f"{bot} sets a stream override for {entrant.user['full_name']}.")


_BOT_ACTIONS = {
    "message": FakeRacetime._act_message,
    "pin_message": FakeRacetime._act_pin,
    "unpin_message": FakeRacetime._act_unpin,
    "setinfo": FakeRacetime._act_setinfo,
    "setmeta": FakeRacetime._act_setmeta,
    "make_open": FakeRacetime._act_make_open,
    "make_invitational": FakeRacetime._act_make_invitational,
    "begin": FakeRacetime._act_begin,
    "cancel": FakeRacetime._act_cancel,
    "invite": FakeRacetime._act_invite,
    "accept_request": FakeRacetime._act_accept_request,
    "force_unready": FakeRacetime._act_force_unready,
    "remove_entrant": FakeRacetime._act_remove_entrant,
    "add_monitor": FakeRacetime._act_add_monitor,
    "remove_monitor": FakeRacetime._act_remove_monitor,
    "override_stream": FakeRacetime._act_override_stream,
}


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
