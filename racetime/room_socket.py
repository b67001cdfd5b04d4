"""A bot's presence in one RaceTime.gg room: its bot websocket, kept connected until the race is over.

What RaceTime.gg does that shapes this (docs/racetime.md, "Room presence"):
- the socket is accepted whatever the token; the token is checked per action, and there is no way to renew it on
  an open socket, so a "Permission denied" answer means: fetch a fresh token and reconnect;
- every change is broadcast as `race.data`, and chat as `chat.message`; an action's failure comes back as `error`
  to the sender only (unlike the official racetime-bot, an error never stops anything here);
- a `message` carries a `guid`; the same guid within 5 minutes is silently ignored, which makes a resend after a
  reconnect or a restart harmless.

`RoomSocket.run` connects, hands every message to `on_message` and reconnects with exponential backoff (with
jitter) when the connection drops, until `close()` or until `on_message` returns True (the race is over).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from racetime.client import RacetimeClient

log = logging.getLogger(__name__)

PERMISSION_DENIED = "Permission denied"
GUID_NAMESPACE = uuid.UUID("5b1f0c8e-8d61-4d0c-9a5e-2f1b7c3d4e60")

# (socket, message) -> True when the socket's work is over (the race finished or was cancelled).
MessageHandler = Callable[["RoomSocket", dict[str, Any]], Awaitable[bool]]


def stable_guid(*parts: str) -> str:
    """A message guid that is the same every time for the same parts (lower-case, as RaceTime.gg requires)."""
    return str(uuid.uuid5(GUID_NAMESPACE, "\x1f".join(parts)))


class RoomSocket:
    def __init__(
        self,
        client: RacetimeClient,
        category: str,
        slug: str,
        on_message: MessageHandler,
        *,
        backoff_base: float = 1.0,
        backoff_max: float = 60.0,
        on_connection: Callable[[bool], None] | None = None,
    ) -> None:
        self.client = client
        self.category = category
        self.slug = slug
        self.on_message = on_message
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.on_connection = on_connection
        self.connects = 0  # successful connections, reconnections included
        self.failures = 0  # consecutive failed or dropped connections
        self.refusals = 0  # actions refused for the token ("Permission denied"), in this socket's life
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._token: str | None = None
        self._closing = asyncio.Event()
        self._refused = False

    @property
    def name(self) -> str:
        return f"{self.category}/{self.slug}"

    @property
    def connected(self) -> bool:
        return self._ws is not None and not self._ws.closed

    def close(self) -> None:
        self._closing.set()
        if self._ws is not None and not self._ws.closed:
            asyncio.get_running_loop().create_task(self._ws.close())

    def backoff(self) -> float:
        """Seconds before the next attempt: doubling from `backoff_base` up to `backoff_max`, with jitter."""
        delay = min(self.backoff_max, self.backoff_base * 2 ** max(self.failures - 1, 0))
        return delay * random.uniform(0.5, 1.0)

    async def run(self) -> None:
        async with aiohttp.ClientSession(headers={"User-Agent": "Startline (RaceTime.gg bot)"}) as session:
            while not self._closing.is_set():
                try:
                    if await self._connect_once(session):
                        return
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # a dropped or refused connection: try again later
                    log.info("room socket %s: %s: %s", self.name, type(exc).__name__, exc)
                self.failures += 1
                # The first refused token is replaced at once; a refusal again (bad credentials), or any other
                # failure, waits with backoff so a bot that is never allowed does not reconnect in a tight loop.
                if not self._refused or self.refusals > 1:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._closing.wait(), self.backoff())

    async def _connect_once(self, session: aiohttp.ClientSession) -> bool:
        refused = self._token if self._refused else None
        self._refused, self._token = False, None
        token = await self.client.bot_token(refused=refused)
        self._token = token
        async with session.ws_connect(
            self.client.bot_socket_url(self.slug), headers={"Authorization": f"Bearer {token}"}, heartbeat=20.0
        ) as ws:
            self._ws = ws
            self.connects += 1
            if self.on_connection is not None:
                self.on_connection(True)
            try:
                async for frame in ws:
                    if frame.type != aiohttp.WSMsgType.TEXT:
                        continue
                    try:
                        message = json.loads(frame.data)
                    except ValueError:
                        log.warning("room socket %s: a frame that is not JSON", self.name)
                        continue
                    if not isinstance(message, dict):
                        continue
                    self.failures = 0
                    if message.get("type") == "error" and _denied(message):
                        # The token expired or was replaced: a socket keeps its token, so reconnect with a new one.
                        log.info("room socket %s: permission denied; reconnecting with a fresh token", self.name)
                        self._refused, self._token = True, token
                        self.refusals += 1
                        self.failures = self.refusals
                        return False
                    if await self.on_message(self, message):
                        return True
            finally:
                self._ws = None
                if self.on_connection is not None:
                    self.on_connection(False)
        return self._closing.is_set()

    # ---- actions (§5.3) ---------------------------------------------------------------------------------
    async def send(self, action: str, data: dict[str, Any] | None = None) -> bool:
        """Send an action; False when not connected (the caller tries again after the reconnect)."""
        ws = self._ws
        if ws is None or ws.closed:
            return False
        payload: dict[str, Any] = {"action": action}
        if data is not None:
            payload["data"] = data
        try:
            await ws.send_json(payload)
        except (ConnectionError, RuntimeError, aiohttp.ClientError):
            return False
        return True

    async def message(self, text: str, *, guid: str, direct_to: str | None = None, pinned: bool = False) -> bool:
        data: dict[str, Any] = {"message": text[:1000], "guid": guid, "direct_to": direct_to, "pinned": pinned}
        return await self.send("message", data)

    async def set_bot_info(self, info_bot: str) -> bool:
        return await self.send("setinfo", {"info_bot": info_bot[:1000]})

    async def begin(self) -> bool:
        return await self.send("begin")


def _denied(message: dict[str, Any]) -> bool:
    errors = message.get("errors")
    return isinstance(errors, list) and any(PERMISSION_DENIED in str(error) for error in errors)
