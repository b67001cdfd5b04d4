"""A minimal Discord gateway on 127.0.0.1: enough of the protocol for discord.py 2.7 to become ready, stay
connected, and resume after an outage, so a whole bot process can run against `FakeDiscordRest`.

The protocol (Discord's "Gateway" documentation), as much as a bot that only sends DMs needs:
- on connect the server says HELLO (op 10) with the heartbeat interval;
- the client IDENTIFYs (op 2) and gets the READY dispatch (op 0, `t: READY`) with its user, its guilds (as
  unavailable guilds), a `session_id` and the `resume_gateway_url`;
- heartbeats (op 1) are acknowledged (op 11);
- a client coming back RESUMEs (op 6) with its session id and sequence: RESUMED for a known session,
  INVALID_SESSION (op 9, `d: false`) for an unknown one, after which it identifies again.

Frames are JSON text. discord.py asks for zlib-stream compression in the URL, but reads text frames as they
come (Discord itself sends binary frames then); nothing here depends on compression.

Guild events are dispatched to every connected session whose IDENTIFY asked for their intent, as Discord does:
`member_remove`, `member_add` (GUILD_MEMBERS, privileged), `member_ban` (GUILD_MODERATION) and
`scheduled_event_user_add` / `_remove` (GUILD_SCHEDULED_EVENTS: someone pressed or took back Interested; the
dispatch carries only `guild_scheduled_event_id`, `user_id` and `guild_id`). With
`privileged_intents=False` (the switches off in the developer portal) an IDENTIFY asking for a privileged intent is
closed with 4014 ("disallowed intents"). `identified_intents` is what the last IDENTIFY asked for.

Shards: an IDENTIFY with `shard: [id, count]` gets only the guilds of that shard (`(guild_id >> 22) % count == id`,
Discord's rule), and `GET /gateway/bot` recommends `recommended_shards`. With `guild_create` each guild of the
session then arrives as a GUILD_CREATE with `guild_channels` text channels and `guild_roles` roles, as Discord sends
them after READY (off by default: the other tests need no guild cache, and guilds stay "unavailable").

`down()` is an outage: every socket is closed with 4000 (which discord.py answers by resuming) and new
connections are refused with 503 until `up()`. The fake is served by `FakeDiscordRest` (`gateway=`), on the
same port as the REST API, which also answers `GET /gateway/bot` with this gateway's URL.
"""

from __future__ import annotations

import contextlib
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

DISPATCH, HEARTBEAT, IDENTIFY, RESUME, INVALID_SESSION, HELLO, HEARTBEAT_ACK = 0, 1, 2, 6, 9, 10, 11
OUTAGE_CLOSE_CODE = 4000  # "unknown error": a code discord.py reconnects (and resumes) after
DISALLOWED_INTENTS_CLOSE_CODE = 4014
# Gateway intents (bits of IDENTIFY's `intents`), as Discord numbers them.
GUILD_MEMBERS, GUILD_MODERATION, GUILD_PRESENCES, MESSAGE_CONTENT = 1 << 1, 1 << 2, 1 << 8, 1 << 15
GUILD_SCHEDULED_EVENTS = 1 << 16
PRIVILEGED_INTENTS = GUILD_MEMBERS | GUILD_PRESENCES | MESSAGE_CONTENT
GATEWAY_PATH = "/gateway"


@dataclass
class _Session:
    id: str
    sequence: int = 0
    intents: int = 0
    shard: tuple[int, int] = (0, 1)

    def has_guild(self, guild_id: int) -> bool:
        return (guild_id >> 22) % self.shard[1] == self.shard[0]


@dataclass
class FakeGateway:
    bot_user: dict[str, Any]
    application_id: int
    guild_ids: list[int] = field(default_factory=list)
    heartbeat_interval_ms: int = 5000
    url: str = ""  # set by FakeDiscordRest once it listens
    identifies: int = 0
    resumes: int = 0
    refused: int = 0  # connections turned away during an outage
    privileged_intents: bool = True  # the developer portal's switches: off refuses a privileged IDENTIFY (4014)
    identified_intents: int | None = None
    recommended_shards: int = 1  # what GET /gateway/bot answers
    guild_create: bool = False  # send each guild as a GUILD_CREATE after READY
    guild_channels: int = 10
    guild_roles: int = 10
    identified_shards: list[tuple[int, int]] = field(default_factory=list)  # (id, count) of each IDENTIFY

    def __post_init__(self) -> None:
        self._sessions: dict[str, _Session] = {}
        self._session_ids = (f"fake-session-{n}" for n in itertools.count(1))
        self._sockets: set[web.WebSocketResponse] = set()
        self._ready: dict[web.WebSocketResponse, _Session] = {}  # sockets that identified or resumed
        self._available = True
        self._ready_connections = 0

    # ---- controls ------------------------------------------------------------------------------------
    @property
    def connections(self) -> int:
        """Sockets open now that identified or resumed."""
        return self._ready_connections

    async def down(self) -> None:
        self._available = False
        for ws in list(self._sockets):
            await ws.close(code=OUTAGE_CLOSE_CODE, message=b"outage")

    def up(self) -> None:
        self._available = True

    async def member_remove(self, guild_id: int, user: dict[str, Any]) -> int:
        """A member left or was kicked (GUILD_MEMBER_REMOVE); returns how many sessions it was sent to."""
        data = {"guild_id": str(guild_id), "user": user}
        return await self._guild_event("GUILD_MEMBER_REMOVE", GUILD_MEMBERS, data)

    async def member_ban(self, guild_id: int, user: dict[str, Any]) -> int:
        """A member was banned (GUILD_BAN_ADD; Discord also sends GUILD_MEMBER_REMOVE for a member)."""
        return await self._guild_event("GUILD_BAN_ADD", GUILD_MODERATION, {"guild_id": str(guild_id), "user": user})

    async def member_add(self, guild_id: int, user: dict[str, Any], *, nick: str | None = None) -> int:
        """Someone joined the guild (GUILD_MEMBER_ADD: a guild member object with the guild id)."""
        member = {
            "guild_id": str(guild_id),
            "user": user,
            "nick": nick,
            "roles": [],
            "joined_at": "2026-01-01T00:00:00.000000+00:00",
            "deaf": False,
            "mute": False,
            "flags": 0,
        }
        return await self._guild_event("GUILD_MEMBER_ADD", GUILD_MEMBERS, member)

    async def scheduled_event_user_add(self, guild_id: int, event_id: int, user_id: int) -> int:
        """A user pressed Interested on a guild scheduled event (GUILD_SCHEDULED_EVENT_USER_ADD). Use
        `FakeDiscordRest.press_interested`, which also puts them in the event's user list."""
        data = {"guild_scheduled_event_id": str(event_id), "user_id": str(user_id), "guild_id": str(guild_id)}
        return await self._guild_event("GUILD_SCHEDULED_EVENT_USER_ADD", GUILD_SCHEDULED_EVENTS, data)

    async def scheduled_event_user_remove(self, guild_id: int, event_id: int, user_id: int) -> int:
        """A user took Interested back (GUILD_SCHEDULED_EVENT_USER_REMOVE)."""
        data = {"guild_scheduled_event_id": str(event_id), "user_id": str(user_id), "guild_id": str(guild_id)}
        return await self._guild_event("GUILD_SCHEDULED_EVENT_USER_REMOVE", GUILD_SCHEDULED_EVENTS, data)

    async def _guild_event(self, event: str, intent: int, data: dict[str, Any]) -> int:
        sent = 0
        for ws, session in list(self._ready.items()):
            if session.intents & intent and session.has_guild(int(data["guild_id"])):  # only the guild's shard
                await self._dispatch(ws, session, event, data)
                sent += 1
        return sent

    def install(self, app: web.Application, api_prefix: str) -> None:
        app.router.add_get(GATEWAY_PATH, self._socket)
        app.router.add_get(f"{api_prefix}/gateway/bot", self._gateway_bot)

    # ---- HTTP ----------------------------------------------------------------------------------------
    async def _gateway_bot(self, request: web.Request) -> web.Response:
        body = {
            "url": self.url,
            "shards": self.recommended_shards,
            "session_start_limit": {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1},
        }
        # Exactly `application/json`, no charset: discord.py parses JSON only for that content type.
        return web.Response(body=json.dumps(body).encode(), content_type="application/json")

    async def _socket(self, request: web.Request) -> web.StreamResponse:
        if not self._available:
            self.refused += 1
            return web.json_response({"message": "503: Service Unavailable", "code": 0}, status=503)
        ws = web.WebSocketResponse(heartbeat=None, timeout=1.0)
        await ws.prepare(request)
        self._sockets.add(ws)
        session: _Session | None = None
        try:
            await self._send(ws, {"op": HELLO, "d": {"heartbeat_interval": self.heartbeat_interval_ms}, "s": None})
            async for frame in ws:
                if frame.type != WSMsgType.TEXT:
                    continue
                message = json.loads(frame.data)
                op, data = message.get("op"), message.get("d")
                if op == HEARTBEAT:
                    await self._send(ws, {"op": HEARTBEAT_ACK, "d": None, "s": None})
                elif op == IDENTIFY and session is None:
                    intents = int((data or {}).get("intents", 0))
                    self.identified_intents = intents
                    if intents & PRIVILEGED_INTENTS and not self.privileged_intents:
                        await ws.close(code=DISALLOWED_INTENTS_CLOSE_CODE, message=b"Disallowed intent(s).")
                        break
                    shard = (data or {}).get("shard") or [0, 1]
                    session = await self._identify(ws, intents, (int(shard[0]), int(shard[1])))
                    self._ready[ws] = session
                elif op == RESUME and session is None:
                    session = await self._resume(ws, data or {})
                    if session is not None:
                        self._ready[ws] = session
                # presence updates, member requests and the rest are ignored
        finally:
            self._sockets.discard(ws)
            self._ready.pop(ws, None)
            if session is not None:
                self._ready_connections -= 1
        return ws

    async def _identify(self, ws: web.WebSocketResponse, intents: int, shard: tuple[int, int]) -> _Session:
        self.identifies += 1
        self.identified_shards.append(shard)
        session = _Session(next(self._session_ids), intents=intents, shard=shard)
        self._sessions[session.id] = session
        self._ready_connections += 1
        shard_id, shard_count = shard
        guild_ids = [guild_id for guild_id in self.guild_ids if session.has_guild(guild_id)]
        ready = {
            "v": 10,
            "user": self.bot_user,
            "shard": [shard_id, shard_count],
            "guilds": [{"id": str(guild_id), "unavailable": True} for guild_id in guild_ids],
            "session_id": session.id,
            "resume_gateway_url": self.url,
            "application": {"id": str(self.application_id), "flags": 0},
            "private_channels": [],
            "relationships": [],
        }
        await self._dispatch(ws, session, "READY", ready)
        if self.guild_create:
            for guild_id in guild_ids:
                await self._dispatch(ws, session, "GUILD_CREATE", self._guild(guild_id))
        return session

    def _guild(self, guild_id: int) -> dict[str, Any]:
        """A guild object as GUILD_CREATE carries it (Discord's Guild resource plus the gateway's extra fields)."""
        role = {"permissions": "0", "color": 0, "hoist": False, "managed": False, "mentionable": False, "flags": 0}
        roles = [{**role, "id": str(guild_id), "name": "@everyone", "position": 0}]
        roles += [
            {**role, "id": str(guild_id + n), "name": f"role {n}", "position": n} for n in range(1, self.guild_roles)
        ]
        channels = [
            {
                "id": str(guild_id + 1000 + n),
                "type": 0,
                "guild_id": str(guild_id),
                "name": f"channel-{n}",
                "position": n,
                "permission_overwrites": [],
                "parent_id": None,
                "nsfw": False,
                "topic": None,
                "rate_limit_per_user": 0,
                "last_message_id": None,
            }
            for n in range(self.guild_channels)
        ]
        return {
            "id": str(guild_id),
            "name": f"Guild {guild_id}",
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "owner_id": str(guild_id + 7),
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "roles": roles,
            "emojis": [],
            "features": [],
            "mfa_level": 0,
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "vanity_url_code": None,
            "description": None,
            "banner": None,
            "premium_tier": 0,
            "preferred_locale": "en-US",
            "public_updates_channel_id": None,
            "nsfw_level": 0,
            "premium_progress_bar_enabled": False,
            "stickers": [],
            "joined_at": "2026-01-01T00:00:00.000000+00:00",
            "large": False,
            "unavailable": False,
            "member_count": 200,
            "voice_states": [],
            "members": [],
            "channels": channels,
            "threads": [],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }

    async def _resume(self, ws: web.WebSocketResponse, data: dict[str, Any]) -> _Session | None:
        session = self._sessions.get(str(data.get("session_id")))
        if session is None:
            await self._send(ws, {"op": INVALID_SESSION, "d": False, "s": None})
            return None
        self.resumes += 1
        self._ready_connections += 1
        await self._dispatch(ws, session, "RESUMED", {})
        return session

    async def _dispatch(self, ws: web.WebSocketResponse, session: _Session, event: str, data: Any) -> None:
        session.sequence += 1
        await self._send(ws, {"op": DISPATCH, "t": event, "s": session.sequence, "d": data})

    @staticmethod
    async def _send(ws: web.WebSocketResponse, payload: dict[str, Any]) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):  # the client went away meanwhile
            await ws.send_str(json.dumps(payload))
