"""A fake Discord REST API on 127.0.0.1, so the REAL discord.py HTTP client and rate-limit code run in tests.

Guild scheduled events: list, create, get, edit (Discord's status moves) and delete, and the users who pressed
Interested (`GET …/scheduled-events/{id}/users`: ascending user ids, `limit` 1–100, `before` or `after` a user id
(`before` wins when both are given), `with_member` adds the member object of users still in the guild).
`press_interested` / `take_back_interested` change that list and send the gateway's dispatch, as Discord does;
`member_leaves` ends a membership (no member object any more) and sends GUILD_MEMBER_REMOVE; `hold_event_users()`
holds the next user list request until the test releases it.

It speaks enough of API v10 for notifications: `GET /users/@me` and `GET /oauth2/applications/@me` (what
discord.py's login asks), `POST /users/@me/channels` (open a DM), `POST /channels/{id}/messages` (a
`message_reference` makes a reply) and `PATCH /channels/{id}/messages/{id}` (edit: 10008 Unknown Message once the
test deleted it with `delete_message`, 10003 Unknown Channel once it removed the channel); a message keeps its
`components` (buttons: checked as Discord does, 400/50035 otherwise; an edit replaces them, `[]` removes them), with
Discord's rate-limit behaviour:

- per-route buckets: fixed windows per (route, major parameter), announced with `X-RateLimit-Limit`,
  `-Remaining`, `-Reset`, `-Reset-After` and `-Bucket`; an exhausted bucket answers 429 with `retry_after`;
- a global limit: a bucket of `global_limit` requests refilled at `global_limit` per second; past it, 429
  with `X-RateLimit-Global: true` and `{"global": true, "retry_after": …}`;
- scripted failures per DM recipient or channel: any status and JSON error code (403/50007, 429 with
  retry-after, 500, 503, 400 …), consumed in order;
- `enforce_nonce`: a message whose nonce the bot already used within `nonce_window_seconds` is not created
  again; the first message is answered instead (Discord: "checked for uniqueness in the past few minutes");
- outages: `down()` answers every request with 503 (and closes the gateway, when there is one) until `up()`.

With `gateway=FakeGateway(...)` it also serves a minimal gateway (`tests/fakes/discord_gateway.py`) on the
same port, so a whole discord.py bot can log in, connect and become ready.

Point discord.py at it with `monkeypatch.setattr(discord.http.Route, "BASE", fake.api_base)`. Everything the
bot sends is recorded, so a test (or the benchmark) counts deliveries at the receiving end.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import itertools
import json
import math
import time
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from tests.fakes.discord_gateway import GATEWAY_PATH, FakeGateway

BOT_USER_ID = 900_000_000_000_000_999
API_PREFIX = "/api/v10"
MESSAGES_ROUTE = "POST /channels/{channel_id}/messages"
EDIT_ROUTE = "PATCH /channels/{channel_id}/messages/{message_id}"
OPEN_DM_ROUTE = "POST /users/@me/channels"
EVENTS_ROUTE = "/guilds/{guild_id}/scheduled-events"  # every method shares the guild's bucket
# Discord's allowed status moves of a guild scheduled event: 1 scheduled → 2 active → 3 completed, 1 → 4 cancelled.
EVENT_TRANSITIONS = {1: {1, 2, 4}, 2: {2, 3}, 3: set(), 4: set()}


@dataclass(frozen=True)
class Failure:
    """One scripted error answer."""

    status: int
    code: int = 0
    message: str = "Scripted failure"
    retry_after: float | None = None  # for 429
    is_global: bool = False

    @classmethod
    def dms_closed(cls) -> Failure:
        return cls(403, 50007, "Cannot send messages to this user")

    @classmethod
    def rate_limited(cls, retry_after: float, *, is_global: bool = False) -> Failure:
        return cls(429, 0, "You are being rate limited.", retry_after=retry_after, is_global=is_global)

    @classmethod
    def server_error(cls, status: int = 500) -> Failure:
        return cls(status, 0, "Internal Server Error")

    @classmethod
    def malformed(cls) -> Failure:
        return cls(400, 50035, "Invalid Form Body")

    @classmethod
    def missing_access(cls) -> Failure:
        return cls(403, 50001, "Missing Access")

    @classmethod
    def missing_permissions(cls) -> Failure:
        return cls(403, 50013, "Missing Permissions")


@dataclass
class Hold:
    """A request held by the fake: `arrived` is set when it came, it is answered after `release()`."""

    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    released: asyncio.Event = field(default_factory=asyncio.Event)

    def release(self) -> None:
        self.released.set()


@dataclass(frozen=True)
class RouteLimit:
    limit: int
    per_seconds: float


@dataclass
class _Window:
    started: float
    used: int = 0


@dataclass
class Delivered:
    channel_id: int
    recipient_id: int | None  # the user, for a DM
    payload: dict[str, Any]
    message_id: int | None = None


@dataclass
class FakeDiscordRest:
    global_limit: float | None = None
    route_limits: dict[str, RouteLimit] = field(
        default_factory=lambda: {
            MESSAGES_ROUTE: RouteLimit(5, 5.0),  # Discord's own: 5 messages per 5 s per channel
            EDIT_ROUTE: RouteLimit(5, 5.0),  # edits share the channel's pace
            OPEN_DM_ROUTE: RouteLimit(1000, 1.0),
            EVENTS_ROUTE: RouteLimit(10, 10.0),
        }
    )
    delivered: list[Delivered] = field(default_factory=list)
    requests: Counter = field(default_factory=Counter)  # route -> count, all answers
    rate_limited: Counter = field(default_factory=Counter)  # "global" / route -> 429s sent
    port: int | None = None
    message_delay: float = 0.0  # seconds each message takes, to catch a process in the middle of a batch
    token: str | None = None  # when set, any other bot token is refused with 401, as Discord does
    nonce_window_seconds: float = 180.0
    nonce_replays: int = 0  # messages not created again because their nonce was known
    unavailable_answers: int = 0  # 503s sent during outages
    gateway: FakeGateway | None = None
    edits: list[tuple[int, int, dict[str, Any]]] = field(default_factory=list)  # (channel, message, payload)
    # Every change of a guild scheduled event, in order: ("create" | "edit" | "delete", event id, the event after it).
    event_log: list[tuple[str, int, dict[str, Any]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.messages: dict[int, dict[str, Any]] = {}  # message id -> the message as it is now
        # Guild scheduled events: event id -> the event as it is now; guilds where the bot lacks Manage Events.
        self.scheduled_events: dict[int, dict[str, Any]] = {}
        self.no_manage_events: set[int] = set()
        self.event_failures: deque[Failure] = deque()
        # Who pressed Interested: event id -> user id -> user; users no longer members, per guild.
        self.event_users: dict[int, dict[int, dict[str, Any]]] = defaultdict(dict)
        self.departed: dict[int, set[int]] = defaultdict(set)
        self.event_user_requests: list[dict[str, str]] = []  # the query of each user list request
        self._users_holds: deque[Hold] = deque()
        self._ids = itertools.count(1_000_000_000_000_000_000)
        self._dm_by_user: dict[int, int] = {}
        self._user_by_dm: dict[int, int] = {}
        self._text_channels: set[int] = set()
        self._dm_failures: dict[int, deque[Failure]] = defaultdict(deque)
        self._open_dm_failures: dict[int, deque[Failure]] = defaultdict(deque)
        self._channel_failures: dict[int, deque[Failure]] = defaultdict(deque)
        self._windows: dict[tuple[str, str], _Window] = {}
        self._global_tokens = float(self.global_limit or 0)
        self._global_refilled = time.monotonic()
        self._runner: web.AppRunner | None = None
        self._arrivals = asyncio.Condition()
        self._nonces: dict[str, tuple[float, dict[str, Any]]] = {}
        self._available = True

    @classmethod
    def with_gateway(cls, guild_ids: list[int] | None = None, **kwargs: Any) -> FakeDiscordRest:
        """REST and a gateway for the fake bot user, which is in `guild_ids`."""
        gateway = FakeGateway(_user(BOT_USER_ID, "startline", bot=True), BOT_USER_ID, list(guild_ids or []))
        return cls(gateway=gateway, **kwargs)

    # ---- scripting -----------------------------------------------------------------------------------
    def delete_message(self, message_id: int) -> None:
        """Someone deleted the message: editing it answers 404, code 10008."""
        self.messages.pop(message_id, None)

    def remove_text_channel(self, channel_id: int) -> None:
        """Someone deleted the channel: posting or editing there answers 404, code 10003."""
        self._text_channels.discard(channel_id)

    def message(self, message_id: int) -> dict[str, Any] | None:
        return self.messages.get(message_id)

    def add_text_channel(self, channel_id: int) -> None:
        self._text_channels.add(channel_id)

    def fail_dm(self, user_id: int, *failures: Failure) -> None:
        """Answer the next message(s) to this user's DM channel with these errors."""
        self._dm_failures[user_id].extend(failures)

    def fail_open_dm(self, user_id: int, *failures: Failure) -> None:
        self._open_dm_failures[user_id].extend(failures)

    def fail_channel(self, channel_id: int, *failures: Failure) -> None:
        self._channel_failures[channel_id].extend(failures)

    def add_dm_channel(self, user_id: int, channel_id: int) -> None:
        """A DM channel that exists already (opened by an earlier run of the bot)."""
        self._dm_by_user[user_id] = channel_id
        self._user_by_dm[channel_id] = user_id

    def forget_dm_channel(self, user_id: int) -> int:
        """Discord no longer knows the user's DM channel (a stale id gets 404 Unknown Channel)."""
        channel_id = self._dm_by_user.pop(user_id)
        self._user_by_dm.pop(channel_id)
        return channel_id

    def dm_channel_of(self, user_id: int) -> int | None:
        return self._dm_by_user.get(user_id)

    async def down(self, *, gateway: bool = True) -> None:
        """An outage: 503 for every REST request and, with `gateway`, the gateway closes its sockets and
        refuses new ones."""
        self._available = False
        if gateway and self.gateway is not None:
            await self.gateway.down()

    def up(self) -> None:
        self._available = True
        if self.gateway is not None:
            self.gateway.up()

    # ---- what arrived --------------------------------------------------------------------------------
    def dms_to(self, user_id: int) -> list[dict[str, Any]]:
        return [d.payload for d in self.delivered if d.recipient_id == user_id]

    def posts_in(self, channel_id: int) -> list[dict[str, Any]]:
        return [d.payload for d in self.delivered if d.channel_id == channel_id and d.recipient_id is None]

    def post_ids(self, channel_id: int) -> list[int]:
        """The ids of the messages posted in a channel, in order."""
        return [d.message_id for d in self.delivered if d.channel_id == channel_id and d.recipient_id is None]

    def dm_counts(self) -> Counter:
        return Counter(d.recipient_id for d in self.delivered if d.recipient_id is not None)

    async def wait_for_deliveries(self, count: int) -> None:
        async with self._arrivals:
            await self._arrivals.wait_for(lambda: len(self.delivered) >= count)

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())

    # ---- server --------------------------------------------------------------------------------------
    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}{API_PREFIX}"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}{GATEWAY_PATH}"

    async def start(self) -> FakeDiscordRest:
        app = web.Application(middlewares=[self._gate])
        if self.gateway is not None:
            self.gateway.install(app, API_PREFIX)
        app.router.add_get(f"{API_PREFIX}/users/@me", self._me)
        app.router.add_get(f"{API_PREFIX}/oauth2/applications/@me", self._application)
        app.router.add_post(f"{API_PREFIX}/users/@me/channels", self._open_dm)
        app.router.add_post(f"{API_PREFIX}/channels/{{channel_id}}/messages", self._message)
        app.router.add_patch(f"{API_PREFIX}/channels/{{channel_id}}/messages/{{message_id}}", self._edit)
        events = f"{API_PREFIX}/guilds/{{guild_id}}/scheduled-events"
        app.router.add_get(events, self._list_events)
        app.router.add_post(events, self._create_event)
        app.router.add_get(f"{events}/{{event_id}}", self._get_event)
        app.router.add_patch(f"{events}/{{event_id}}", self._edit_event)
        app.router.add_delete(f"{events}/{{event_id}}", self._delete_event)
        app.router.add_get(f"{events}/{{event_id}}/users", self._event_users)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port or 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        if self.gateway is not None:
            self.gateway.url = self.gateway_url
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ---- handlers ------------------------------------------------------------------------------------
    @web.middleware
    async def _gate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if not self._available and request.path != GATEWAY_PATH:  # the gateway refuses by itself
            self.unavailable_answers += 1
            return _json({"message": "503: Service Unavailable", "code": 0}, status=503)
        authorization = request.headers.get("Authorization")
        if self.token is not None and request.path.startswith(API_PREFIX) and authorization != f"Bot {self.token}":
            return _json({"message": "401: Unauthorized", "code": 0}, status=401)
        return await handler(request)

    async def _me(self, request: web.Request) -> web.Response:
        return _json(_user(BOT_USER_ID, "startline", bot=True))

    async def _application(self, request: web.Request) -> web.Response:
        owner = _user(BOT_USER_ID + 1, "owner")
        return _json(
            {
                "id": str(BOT_USER_ID),
                "name": "Startline",
                "description": "",
                "icon": None,
                "bot_public": False,
                "bot_require_code_grant": False,
                "owner": owner,
                "team": None,
                "verify_key": "0" * 64,
                "flags": 0,
                "interactions_endpoint_url": None,
            }
        )

    async def _open_dm(self, request: web.Request) -> web.Response:
        body = await request.json()
        user_id = int(body["recipient_id"])
        limited = self._limit(OPEN_DM_ROUTE, "")
        if limited is not None:
            return limited
        failure = _next(self._open_dm_failures.get(user_id))
        if failure is not None:
            return self._error(failure, OPEN_DM_ROUTE, "")
        channel_id = self._dm_by_user.get(user_id)
        if channel_id is None:  # Discord hands back the same DM channel every time
            channel_id = next(self._ids)
            self._dm_by_user[user_id] = channel_id
            self._user_by_dm[channel_id] = user_id
        data = {
            "id": str(channel_id),
            "type": 1,
            "last_message_id": None,
            "recipients": [_user(user_id, f"u{user_id}")],
        }
        return self._ok(data, OPEN_DM_ROUTE, "")

    async def _message(self, request: web.Request) -> web.Response:
        channel_id = int(request.match_info["channel_id"])
        payload = await _json_payload(request)
        limited = self._limit(MESSAGES_ROUTE, str(channel_id))
        if limited is not None:
            return limited
        recipient = self._user_by_dm.get(channel_id)
        if recipient is None and channel_id not in self._text_channels:
            return self._error(Failure(404, 10003, "Unknown Channel"), MESSAGES_ROUTE, str(channel_id))
        failures = self._dm_failures.get(recipient) if recipient is not None else self._channel_failures.get(channel_id)
        failure = _next(failures)
        if failure is not None:
            return self._error(failure, MESSAGES_ROUTE, str(channel_id))
        invalid = _invalid_components(payload.get("components"))
        if invalid is not None:
            return self._invalid_form(invalid, MESSAGES_ROUTE, str(channel_id))
        nonce = str(payload["nonce"]) if payload.get("enforce_nonce") and payload.get("nonce") else None
        known = self._known_nonce(nonce)
        if known is not None:
            self.nonce_replays += 1
            return self._ok(known, MESSAGES_ROUTE, str(channel_id))
        if self.message_delay:
            await asyncio.sleep(self.message_delay)
        message = _message(next(self._ids), channel_id, payload)
        self.messages[int(message["id"])] = message
        if nonce is not None:
            self._nonces[nonce] = (time.monotonic(), message)
        self.delivered.append(Delivered(channel_id, recipient, payload, int(message["id"])))
        async with self._arrivals:
            self._arrivals.notify_all()
        return self._ok(message, MESSAGES_ROUTE, str(channel_id))

    async def _edit(self, request: web.Request) -> web.Response:
        channel_id = int(request.match_info["channel_id"])
        message_id = int(request.match_info["message_id"])
        payload = await _json_payload(request)
        limited = self._limit(EDIT_ROUTE, str(channel_id))
        if limited is not None:
            return limited
        if channel_id not in self._text_channels and channel_id not in self._user_by_dm:
            return self._error(Failure(404, 10003, "Unknown Channel"), EDIT_ROUTE, str(channel_id))
        failure = _next(self._channel_failures.get(channel_id))
        if failure is not None:
            return self._error(failure, EDIT_ROUTE, str(channel_id))
        message = self.messages.get(message_id)
        if message is None or int(message["channel_id"]) != channel_id:
            return self._error(Failure(404, 10008, "Unknown Message"), EDIT_ROUTE, str(channel_id))
        invalid = _invalid_components(payload.get("components"))
        if invalid is not None:
            return self._invalid_form(invalid, EDIT_ROUTE, str(channel_id))
        for key in ("content", "embeds", "components"):
            if key in payload:
                message[key] = payload[key] if payload[key] is not None else ([] if key != "content" else "")
        message["edited_timestamp"] = datetime.now(UTC).isoformat()
        self.edits.append((channel_id, message_id, payload))
        return self._ok(message, EDIT_ROUTE, str(channel_id))

    # ---- guild scheduled events (https://discord.com/developers/docs/resources/guild-scheduled-event) -------
    def events_of(self, guild_id: int) -> list[dict[str, Any]]:
        return [event for event in self.scheduled_events.values() if int(event["guild_id"]) == guild_id]

    def _event_gate(self, request: web.Request) -> tuple[int, web.Response | None]:
        guild_id = int(request.match_info["guild_id"])
        limited = self._limit(EVENTS_ROUTE, str(guild_id))
        if limited is not None:
            return guild_id, limited
        failure = _next(self.event_failures)
        if failure is None and guild_id in self.no_manage_events and request.method != "GET":
            failure = Failure.missing_permissions()
        return guild_id, self._error(failure, EVENTS_ROUTE, str(guild_id)) if failure else None

    def _event_of(self, request: web.Request, guild_id: int) -> dict[str, Any] | None:
        event = self.scheduled_events.get(int(request.match_info["event_id"]))
        return event if event is not None and int(event["guild_id"]) == guild_id else None

    def _bad_event(self, guild_id: int, field_name: str, message: str) -> web.Response:
        body = {
            "message": "Invalid Form Body",
            "code": 50035,
            "errors": {field_name: {"_errors": [{"code": "BASE_TYPE_BAD", "message": message}]}},
        }
        return _json(body, status=400, headers=self._bucket_headers(EVENTS_ROUTE, str(guild_id)))

    def _check_event_fields(self, guild_id: int, event: dict[str, Any], *, creating: bool) -> web.Response | None:
        name = event.get("name")
        if not isinstance(name, str) or not 1 <= len(name) <= 100:
            return self._bad_event(guild_id, "name", "Must be between 1 and 100 in length.")
        if len(event.get("description") or "") > 1000:
            return self._bad_event(guild_id, "description", "Must be 1000 or fewer in length.")
        if event.get("entity_type") != 3:
            return self._bad_event(guild_id, "entity_type", "Only external events are supported by this fake.")
        location = (event.get("entity_metadata") or {}).get("location")
        if not isinstance(location, str) or not 1 <= len(location) <= 100:
            return self._bad_event(guild_id, "entity_metadata", "An external event needs a location of 1 to 100.")
        try:
            start = datetime.fromisoformat(event["scheduled_start_time"])
            end = datetime.fromisoformat(event["scheduled_end_time"]) if event.get("scheduled_end_time") else None
        except (KeyError, TypeError, ValueError):
            return self._bad_event(guild_id, "scheduled_start_time", "Could not interpret as a date.")
        if end is None:
            return self._bad_event(guild_id, "scheduled_end_time", "An external event needs an end time.")
        if end <= start:
            return self._bad_event(guild_id, "scheduled_end_time", "Must be after the start time.")
        if creating and start <= datetime.now(UTC):
            return self._bad_event(guild_id, "scheduled_start_time", "Cannot schedule event in the past.")
        if event.get("privacy_level") != 2:
            return self._bad_event(guild_id, "privacy_level", "Must be GUILD_ONLY (2).")
        return None

    async def _list_events(self, request: web.Request) -> web.Response:
        guild_id, refused = self._event_gate(request)
        if refused is not None:
            return refused
        return _json(self.events_of(guild_id), headers=self._bucket_headers(EVENTS_ROUTE, str(guild_id)))  # type: ignore[arg-type]

    async def _get_event(self, request: web.Request) -> web.Response:
        guild_id, refused = self._event_gate(request)
        if refused is not None:
            return refused
        event = self._event_of(request, guild_id)
        if event is None:
            return self._error(Failure(404, 10070, "Unknown Guild Scheduled Event"), EVENTS_ROUTE, str(guild_id))
        return self._ok(event, EVENTS_ROUTE, str(guild_id))

    async def _create_event(self, request: web.Request) -> web.Response:
        guild_id, refused = self._event_gate(request)
        if refused is not None:
            return refused
        payload = await _json_payload(request)
        bad = self._check_event_fields(guild_id, payload, creating=True)
        if bad is not None:
            return bad
        event_id = next(self._ids)
        event = {
            "id": str(event_id),
            "guild_id": str(guild_id),
            "channel_id": None,
            "creator_id": str(BOT_USER_ID),
            "name": payload["name"],
            "description": payload.get("description"),
            "scheduled_start_time": payload["scheduled_start_time"],
            "scheduled_end_time": payload["scheduled_end_time"],
            "privacy_level": 2,
            "status": 1,
            "entity_type": 3,
            "entity_id": None,
            "entity_metadata": {"location": payload["entity_metadata"]["location"]},
        }
        self.scheduled_events[event_id] = event
        self.event_log.append(("create", event_id, copy.deepcopy(event)))
        return self._ok(event, EVENTS_ROUTE, str(guild_id))

    async def _edit_event(self, request: web.Request) -> web.Response:
        guild_id, refused = self._event_gate(request)
        if refused is not None:
            return refused
        event = self._event_of(request, guild_id)
        if event is None:
            return self._error(Failure(404, 10070, "Unknown Guild Scheduled Event"), EVENTS_ROUTE, str(guild_id))
        payload = await _json_payload(request)
        if event["status"] in (3, 4):
            return self._bad_event(guild_id, "status", "Cannot modify a completed or cancelled event.")
        status = payload.get("status", event["status"])
        if status not in EVENT_TRANSITIONS[event["status"]]:
            return self._bad_event(guild_id, "status", f"Cannot move an event from {event['status']} to {status}.")
        changed = {**event, **{k: v for k, v in payload.items() if k != "status"}}
        bad = self._check_event_fields(guild_id, changed, creating=False)
        if bad is not None:
            return bad
        event.update(changed, status=status)
        self.event_log.append(("edit", int(event["id"]), copy.deepcopy(event)))
        return self._ok(event, EVENTS_ROUTE, str(guild_id))

    async def _delete_event(self, request: web.Request) -> web.Response:
        guild_id, refused = self._event_gate(request)
        if refused is not None:
            return refused
        event = self._event_of(request, guild_id)
        if event is None:
            return self._error(Failure(404, 10070, "Unknown Guild Scheduled Event"), EVENTS_ROUTE, str(guild_id))
        del self.scheduled_events[int(event["id"])]
        self.event_users.pop(int(event["id"]), None)
        self.event_log.append(("delete", int(event["id"]), copy.deepcopy(event)))
        return web.Response(status=204, headers=self._bucket_headers(EVENTS_ROUTE, str(guild_id)))

    # ---- Interested (https://discord.com/developers/docs/resources/guild-scheduled-event#get-guild-scheduled-event-users)
    async def press_interested(self, guild_id: int, event_id: int, user: dict[str, Any]) -> int:
        """The user pressed Interested: they join the event's user list, and the gateway tells the bot (returns to
        how many sessions; 0 while the gateway is down, the bot then misses it)."""
        self.event_users[event_id][int(user["id"])] = user
        self.departed[guild_id].discard(int(user["id"]))
        if self.gateway is None:
            return 0
        return await self.gateway.scheduled_event_user_add(guild_id, event_id, int(user["id"]))

    async def take_back_interested(self, guild_id: int, event_id: int, user_id: int) -> int:
        self.event_users[event_id].pop(user_id, None)
        if self.gateway is None:
            return 0
        return await self.gateway.scheduled_event_user_remove(guild_id, event_id, user_id)

    async def member_leaves(self, guild_id: int, user: dict[str, Any]) -> int:
        """The member left the guild: they keep no member object (their Interested stays in the list, as the
        fake cannot know better) and the gateway sends GUILD_MEMBER_REMOVE."""
        self.departed[guild_id].add(int(user["id"]))
        return await self.gateway.member_remove(guild_id, user) if self.gateway is not None else 0

    def hold_event_users(self) -> Hold:
        """Hold the next user list request after it arrived, until `release()`."""
        hold = Hold()
        self._users_holds.append(hold)
        return hold

    async def _event_users(self, request: web.Request) -> web.Response:
        guild_id, refused = self._event_gate(request)
        if refused is not None:
            return refused
        self.event_user_requests.append(dict(request.query))
        event = self._event_of(request, guild_id)
        if event is None:
            return self._error(Failure(404, 10070, "Unknown Guild Scheduled Event"), EVENTS_ROUTE, str(guild_id))
        query = request.query
        try:
            limit = int(query.get("limit", "100"))
            before = int(query["before"]) if "before" in query else None
            after = int(query["after"]) if "after" in query else None
        except ValueError:
            return self._bad_event(guild_id, "limit", "Value is not a snowflake or an int.")
        if not 1 <= limit <= 100:
            return self._bad_event(guild_id, "limit", "int value should be less than or equal to 100.")
        with_member = query.get("with_member", "false").lower() in ("true", "1")
        ids = sorted(self.event_users.get(int(event["id"]), {}))
        if before is not None:  # Discord: `before` wins over `after`
            ids = [uid for uid in ids if uid < before][-limit:]
        else:
            ids = [uid for uid in ids if after is None or uid > after][:limit]
        if self._users_holds:
            hold = self._users_holds.popleft()
            hold.arrived.set()
            await hold.released.wait()
        users = self.event_users.get(int(event["id"]), {})
        page = []
        for uid in ids:
            if uid not in users:  # took it back while the request was held
                continue
            entry: dict[str, Any] = {"guild_scheduled_event_id": event["id"], "user": users[uid]}
            if with_member and uid not in self.departed[guild_id]:
                entry["member"] = _member(users[uid])
            page.append(entry)
        return _json(page, headers=self._bucket_headers(EVENTS_ROUTE, str(guild_id)))  # type: ignore[arg-type]

    def _known_nonce(self, nonce: str | None) -> dict[str, Any] | None:
        if nonce is None or nonce not in self._nonces:
            return None
        used_at, message = self._nonces[nonce]
        return message if time.monotonic() - used_at < self.nonce_window_seconds else None

    # ---- rate limits ---------------------------------------------------------------------------------
    def _limit(self, route: str, major: str) -> web.Response | None:
        """Count the request against the global limit and its route bucket; a 429 when either is spent."""
        self.requests[route] += 1
        if self.global_limit:
            now = time.monotonic()
            self._global_tokens = min(
                self.global_limit, self._global_tokens + (now - self._global_refilled) * self.global_limit
            )
            self._global_refilled = now
            if self._global_tokens < 1:
                retry_after = math.ceil((1 - self._global_tokens) / self.global_limit * 1000) / 1000
                self.rate_limited["global"] += 1
                return self._error(Failure.rate_limited(retry_after, is_global=True), None, major)
            self._global_tokens -= 1
        limit = self.route_limits.get(route)
        if limit is None:
            return None
        window = self._window(route, major, limit)
        if window.used >= limit.limit:
            self.rate_limited[route] += 1
            reset_after = math.ceil((window.started + limit.per_seconds - time.monotonic()) * 1000) / 1000
            return self._error(Failure.rate_limited(reset_after), route, major)
        window.used += 1
        return None

    def _window(self, route: str, major: str, limit: RouteLimit) -> _Window:
        now = time.monotonic()
        window = self._windows.get((route, major))
        if window is None or now >= window.started + limit.per_seconds:
            window = self._windows[(route, major)] = _Window(now)
        return window

    def _bucket_headers(self, route: str | None, major: str) -> dict[str, str]:
        limit = self.route_limits.get(route) if route else None
        if limit is None:
            return {}
        window = self._window(route, major, limit)  # type: ignore[arg-type]
        # Rounded up to the millisecond, as Discord does, so a client waiting it out never comes back early.
        reset_after = math.ceil(max(0.0, window.started + limit.per_seconds - time.monotonic()) * 1000) / 1000
        return {
            "X-RateLimit-Limit": str(limit.limit),
            "X-RateLimit-Remaining": str(max(0, limit.limit - window.used)),
            "X-RateLimit-Reset": f"{math.ceil((time.time() + reset_after) * 1000) / 1000:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": hashlib.sha1(route.encode()).hexdigest()[:16],  # type: ignore[union-attr]
        }

    def _ok(self, data: dict[str, Any], route: str, major: str) -> web.Response:
        return _json(data, headers=self._bucket_headers(route, major))

    def _invalid_form(self, reason: str, route: str, major: str) -> web.Response:
        """Discord's 400 Invalid Form Body (50035) for a malformed message."""
        body = {
            "message": "Invalid Form Body",
            "code": 50035,
            "errors": {"components": {"_errors": [{"code": "COMPONENT_INVALID", "message": reason}]}},
        }
        return _json(body, status=400, headers=self._bucket_headers(route, major))

    def _error(self, failure: Failure, route: str | None, major: str) -> web.Response:
        headers = self._bucket_headers(route, major)
        if failure.status == 429:
            body: dict[str, Any] = {
                "message": failure.message,
                "retry_after": failure.retry_after or 0.0,
                "global": failure.is_global,
            }
            headers.update(
                {
                    "Retry-After": f"{failure.retry_after or 0.0:.3f}",
                    "X-RateLimit-Scope": "global" if failure.is_global else "user",
                    # discord.py treats a 429 without Via as a Cloudflare ban, as real API answers carry it.
                    "Via": "1.1 google",
                }
            )
            if failure.is_global:
                headers["X-RateLimit-Global"] = "true"
        else:
            body = {"message": failure.message, "code": failure.code}
            if failure.status == 400:
                body["errors"] = {"embeds": {"0": {"_errors": [{"code": "BASE_TYPE_REQUIRED", "message": "bad"}]}}}
        return _json(body, status=failure.status, headers=headers)


def _invalid_components(rows: Any) -> str | None:
    """Why Discord would refuse a message's components (https://discord.com/developers/docs/components/reference),
    or None: at most 5 action rows (type 1) of at most 5 buttons (type 2); a button has a label of at most 80
    characters and a style 1-5; a link button (style 5) has a url and no custom_id, every other one a custom_id of
    1 to 100 characters, unique within the message."""
    if rows is None:
        return None
    if not isinstance(rows, list) or len(rows) > 5:
        return "components: at most 5 action rows"
    seen: set[str] = set()
    for row in rows:
        children = row.get("components") if isinstance(row, dict) else None
        if row.get("type") != 1 or not isinstance(children, list) or not 1 <= len(children) <= 5:
            return "components: an action row holds 1 to 5 components"
        for button in children:
            if button.get("type") != 2:
                continue  # only buttons are checked here
            style, custom_id, label = button.get("style"), button.get("custom_id"), button.get("label") or ""
            if style not in (1, 2, 3, 4, 5) or len(label) > 80:
                return "components: a button needs a style of 1-5 and a label of at most 80 characters"
            if style == 5:
                if not button.get("url") or custom_id is not None:
                    return "components: a link button has a url and no custom_id"
            elif not isinstance(custom_id, str) or not 1 <= len(custom_id) <= 100 or custom_id in seen:
                return "components: a button needs a unique custom_id of 1 to 100 characters"
            else:
                seen.add(custom_id)
    return None


def _json(data: dict[str, Any], *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    # Exactly `application/json`, no charset: discord.py parses JSON only for that content type.
    return web.Response(body=json.dumps(data).encode(), status=status, headers=headers, content_type="application/json")


def _next(failures: deque[Failure] | None) -> Failure | None:
    return failures.popleft() if failures else None


async def _json_payload(request: web.Request) -> dict[str, Any]:
    if request.content_type == "multipart/form-data":
        form = await request.post()
        return json.loads(form["payload_json"])  # type: ignore[arg-type]
    return await request.json()


def _user(user_id: int, name: str, *, bot: bool = False) -> dict[str, Any]:
    return {
        "id": str(user_id),
        "username": name,
        "global_name": name,
        "discriminator": "0",
        "avatar": None,
        "bot": bot,
        "flags": 0,
        "public_flags": 0,
    }


def _member(user: dict[str, Any]) -> dict[str, Any]:
    """A guild member object (as `with_member` adds it to a scheduled event user)."""
    return {
        "user": user,
        "nick": None,
        "roles": [],
        "joined_at": "2026-01-01T00:00:00.000000+00:00",
        "deaf": False,
        "mute": False,
        "flags": 0,
    }


def _message(message_id: int, channel_id: int, payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(message_id),
        "channel_id": str(channel_id),
        "type": 0,
        "content": payload.get("content") or "",
        "author": _user(BOT_USER_ID, "startline", bot=True),
        "timestamp": datetime.now(UTC).isoformat(),
        "edited_timestamp": None,
        "tts": False,
        "mention_everyone": False,
        "mentions": [],
        "mention_roles": [],
        "attachments": [],
        "embeds": payload.get("embeds", []),
        "pinned": False,
        "flags": 0,
        "components": payload.get("components") or [],
        "nonce": payload.get("nonce"),
        **({"message_reference": payload["message_reference"]} if payload.get("message_reference") else {}),
    }
