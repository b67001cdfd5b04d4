"""The fake RaceTime.gg's bot websocket (``/ws/o/bot/<slug>``) and its actions."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes.racetime_server.forms import GUID_RE, PERMISSION_DENIED, PREPARING, _ActionError, _too_long
from tests.fakes.racetime_server.state import FakeEntrant, FakeRoom, _Socket


class BotSocket:
    """Mixed into ``FakeRacetime``: the bot websocket."""

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
    "message": BotSocket._act_message,
    "pin_message": BotSocket._act_pin,
    "unpin_message": BotSocket._act_unpin,
    "setinfo": BotSocket._act_setinfo,
    "setmeta": BotSocket._act_setmeta,
    "make_open": BotSocket._act_make_open,
    "make_invitational": BotSocket._act_make_invitational,
    "begin": BotSocket._act_begin,
    "cancel": BotSocket._act_cancel,
    "invite": BotSocket._act_invite,
    "accept_request": BotSocket._act_accept_request,
    "force_unready": BotSocket._act_force_unready,
    "remove_entrant": BotSocket._act_remove_entrant,
    "add_monitor": BotSocket._act_add_monitor,
    "remove_monitor": BotSocket._act_remove_monitor,
    "override_stream": BotSocket._act_override_stream,
}
