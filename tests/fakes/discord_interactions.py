"""Real `discord.Interaction`s on a dpytest-configured bot, answered into a recording webhook adapter.

dpytest 0.7.0 knows nothing of interactions (it predates them), so commands go through
the real command tree (`bot.tree._call`: checks, option parsing, autocomplete, error handler, ephemeral flags)
and button clicks through the real gateway path (`ConnectionState.parse_interaction_create` → view store), while
every HTTP call an interaction makes lands in `RecordingAdapter` instead of Discord. `tree._call` and the view
store's task set are private: they are used here only, and discord.py is pinned to a minor version.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import discord
import discord.ext.test.factories as facts
from discord.webhook.async_ import async_context

_ids = itertools.count(1_100_000_000_000_000_000)
EPHEMERAL = 64
RESPONSE_MESSAGE = 4
RESPONSE_DEFERRED = 5
RESPONSE_DEFERRED_UPDATE = 6
RESPONSE_UPDATE = 7
RESPONSE_AUTOCOMPLETE = 8
RESPONSE_MODAL = 9


@dataclass
class Upload:
    """A file given to an attachment option. The harness writes it to `directory`, and dpytest's HTTP stand-in
    serves `Attachment.read()` from there (its `get_from_cdn` reads the URL's path)."""

    filename: str
    data: bytes
    content_type: str = "text/csv"
    size: int | None = None  # what Discord says the size is (default: the data's)


@dataclass
class Sent:
    """One thing the bot sent for an interaction: a response, a followup or an edit."""

    kind: str  # response | followup | edit_original | edit_message
    payload: dict[str, Any]
    message_id: int | None = None

    @property
    def type(self) -> int | None:
        return self.payload.get("type") if self.kind == "response" else None

    @property
    def data(self) -> dict[str, Any]:
        return (self.payload.get("data") or {}) if self.kind == "response" else self.payload

    @property
    def content(self) -> str:
        return self.data.get("content") or ""

    @property
    def embeds(self) -> list[dict[str, Any]]:
        return self.data.get("embeds") or []

    @property
    def ephemeral(self) -> bool:
        return bool((self.data.get("flags") or 0) & EPHEMERAL)

    @property
    def components(self) -> list[dict[str, Any]]:
        return self.data.get("components") or []

    @property
    def modal(self) -> dict[str, Any]:
        """The modal this response opened (custom_id, title, components)."""
        assert self.type == RESPONSE_MODAL, self
        return self.data

    @property
    def files(self) -> list[dict[str, Any]]:
        """The files sent with it: filename and bytes."""
        return self.payload.get("_files") or []

    @property
    def buttons(self) -> list[dict[str, Any]]:
        return [child for row in self.components for child in row.get("components", []) if child.get("type") == 2]

    @property
    def text(self) -> str:
        """Content plus every embed's visible text, for assertions."""
        parts = [self.content]
        for embed in self.embeds:
            parts += [embed.get("title") or "", embed.get("description") or ""]
            parts += [f"{f.get('name')}: {f.get('value')}" for f in embed.get("fields", [])]
            parts.append((embed.get("footer") or {}).get("text") or "")
        return "\n".join(part for part in parts if part)


@dataclass
class Reply:
    """Everything sent while handling one interaction."""

    sent: list[Sent] = field(default_factory=list)

    @property
    def last(self) -> Sent:
        assert self.sent, "the bot sent nothing"
        return self.sent[-1]

    @property
    def first(self) -> Sent:
        assert self.sent, "the bot sent nothing"
        return self.sent[0]

    @property
    def text(self) -> str:
        return "\n".join(item.text for item in self.sent if item.text)

    @property
    def ephemeral(self) -> bool:
        """True when what the user sees is ephemeral (judged from the first response, which sets it)."""
        return self.first.ephemeral

    @property
    def choices(self) -> list[dict[str, Any]]:
        assert self.first.type == RESPONSE_AUTOCOMPLETE, self.first
        return self.first.data["choices"]

    def with_buttons(self) -> Sent:
        for item in reversed(self.sent):
            if item.buttons:
                return item
        raise AssertionError(f"no message with buttons in {self.sent}")


class RecordingAdapter:
    """Stands in for discord.webhook.async_.AsyncWebhookAdapter."""

    def __init__(self, harness: DiscordHarness) -> None:
        self.harness = harness
        self.sent: list[Sent] = []

    def _message(self, message_id: int, payload: dict[str, Any]) -> dict[str, Any]:
        data = facts.make_message_dict(
            self.harness.channel, self.harness.bot.user, id_num=message_id, content=payload.get("content")
        )
        data.update(
            embeds=payload.get("embeds") or [],
            components=payload.get("components") or [],
            flags=payload.get("flags") or 0,
        )
        return data

    async def create_interaction_response(self, interaction_id, token, *, session, params, **_):
        payload = _payload(params)
        if payload.get("type") in (RESPONSE_MESSAGE, RESPONSE_DEFERRED):
            message_id = next(_ids)
        else:  # an update of the clicked message keeps its id
            message_id = self.harness.clicked_message_id
        self.sent.append(Sent("response", payload, message_id))
        answer: dict[str, Any] = {"id": str(interaction_id), "type": 2}
        if message_id is not None:
            answer["response_message_id"] = str(message_id)
        return {"interaction": answer}

    async def execute_webhook(
        self, webhook_id, token, *, session, payload=None, multipart=None, files=None, wait=False, **_
    ):
        message_id = next(_ids)
        payload = _payload_of(payload, multipart, files)
        self.sent.append(Sent("followup", payload, message_id))
        return self._message(message_id, payload or {}) if wait else None

    async def edit_original_interaction_response(
        self, application_id, token, *, session, payload=None, multipart=None, files=None, **_
    ):
        message_id = next(_ids)
        payload = _payload_of(payload, multipart, files)
        self.sent.append(Sent("edit_original", payload, message_id))
        return self._message(message_id, payload or {})

    async def edit_webhook_message(self, webhook_id, token, message_id, *, session, payload=None, **_):
        self.sent.append(Sent("edit_message", payload or {}, int(message_id)))
        return self._message(int(message_id), payload or {})

    async def delete_original_interaction_response(self, *args, **_):
        self.sent.append(Sent("delete_original", {}))


def _payload_of(payload: dict | None, multipart: list[dict] | None, files: list | None) -> dict[str, Any]:
    """The JSON part of a request; a request with files sends it as the multipart field `payload_json`."""
    if multipart:
        payload = json.loads(next(part["value"] for part in multipart if part["name"] == "payload_json"))
    payload = dict(payload or {})
    if files:
        payload["_files"] = [{"filename": f.filename, "data": _file_bytes(f)} for f in files]
    return payload


def _payload(params: Any) -> dict[str, Any]:
    return _payload_of(params.payload, params.multipart, params.files)


def _file_bytes(file: discord.File) -> bytes:
    file.reset()
    return file.fp.read()


def _option(name: str, value: Any, resolved: dict[str, dict], directory: Path | None = None) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"type": 5, "name": name, "value": value}
    if isinstance(value, int):
        return {"type": 4, "name": name, "value": value}
    if isinstance(value, float):
        return {"type": 10, "name": name, "value": value}
    if isinstance(value, discord.Role):
        resolved.setdefault("roles", {})[str(value.id)] = facts.dict_from_role(value)
        return {"type": 8, "name": name, "value": str(value.id)}
    if isinstance(value, discord.Member):
        member = facts.dict_from_member(value)
        resolved.setdefault("users", {})[str(value.id)] = member.pop("user")
        member["permissions"] = "0"
        resolved.setdefault("members", {})[str(value.id)] = member
        return {"type": 6, "name": name, "value": str(value.id)}
    if isinstance(value, discord.TextChannel):
        resolved.setdefault("channels", {})[str(value.id)] = {
            "id": str(value.id),
            "name": value.name,
            "type": 0,
            "guild_id": str(value.guild.id),
            "permissions": str(discord.Permissions.all().value),
        }
        return {"type": 7, "name": name, "value": str(value.id)}
    if isinstance(value, Upload):
        assert directory is not None
        attachment_id = str(next(_ids))
        path = directory / f"{attachment_id}-{value.filename}"
        path.write_bytes(value.data)
        resolved.setdefault("attachments", {})[attachment_id] = {
            "id": attachment_id,
            "filename": value.filename,
            "size": len(value.data) if value.size is None else value.size,
            "url": path.as_uri(),
            "proxy_url": path.as_uri(),
            "content_type": value.content_type,
        }
        return {"type": 11, "name": name, "value": attachment_id}
    return {"type": 3, "name": name, "value": str(value)}


class DiscordHarness:
    """Drives commands, autocomplete and buttons of `bot` as `member` would, recording the answers."""

    def __init__(self, bot: discord.Client, uploads: Path | None = None) -> None:
        self.bot = bot
        self.uploads = uploads or Path(tempfile.mkdtemp(prefix="startline-uploads-"))
        self.adapter = RecordingAdapter(self)
        self.channel: discord.abc.GuildChannel = bot.guilds[0].text_channels[0]
        self.clicked_message_id: int | None = None
        async_context.set(self.adapter)

    def _base(self, member: discord.Member, perms: discord.Permissions | None, type_: int) -> dict[str, Any]:
        member_dict = facts.dict_from_member(member)
        member_dict["permissions"] = str((perms or discord.Permissions.none()).value)
        self.channel = member.guild.text_channels[0]
        return {
            "id": str(next(_ids)),
            "application_id": str(self.bot.user.id),
            "type": type_,
            "token": "interaction-token",
            "version": 1,
            "guild_id": str(member.guild.id),
            "channel": {"id": str(self.channel.id), "type": 0},
            "member": member_dict,
            "app_permissions": str(discord.Permissions.all().value),
            "attachment_size_limit": 8_000_000,
            "locale": "en-US",
            "entitlements": [],
        }

    def command_payload(
        self,
        command: str,
        member: discord.Member,
        /,
        *,
        perms: discord.Permissions | None = None,
        focused: str | None = None,
        **values: Any,
    ) -> dict[str, Any]:
        resolved: dict[str, dict] = {}
        opts = []
        for key, value in values.items():
            option = _option(key, value, resolved, self.uploads)
            if key == focused:
                option.update(focused=True, type=3, value=str(value))
            opts.append(option)
        root, *path = command.split()
        for sub in reversed(path):
            opts = [{"type": 1, "name": sub, "options": opts}]
        payload = self._base(member, perms, 4 if focused else 2)
        payload["data"] = {"id": str(next(_ids)), "name": root, "type": 1, "options": opts, "resolved": resolved}
        return payload

    async def run(
        self, command: str, member: discord.Member, /, *, perms: discord.Permissions | None = None, **values: Any
    ) -> Reply:
        """Run `/command` (e.g. "tournament-admin create") with the given option values."""
        start = len(self.adapter.sent)
        payload = self.command_payload(command, member, perms=perms, **values)
        await self.bot.tree._call(discord.Interaction(data=payload, state=self.bot._connection))
        return Reply(self.adapter.sent[start:])

    async def run_user_menu(
        self, name: str, member: discord.Member, target: discord.Member, /, *, perms: discord.Permissions | None = None
    ) -> Reply:
        """Use the user context menu `name` on `target`, as `member`."""
        start = len(self.adapter.sent)
        resolved: dict[str, dict] = {}
        _option("target", target, resolved)
        payload = self._base(member, perms, 2)
        payload["data"] = {
            "id": str(next(_ids)),
            "name": name,
            "type": 2,
            "target_id": str(target.id),
            "resolved": resolved,
        }
        await self.bot.tree._call(discord.Interaction(data=payload, state=self.bot._connection))
        return Reply(self.adapter.sent[start:])

    async def select(
        self, message: Sent, value: str, member: discord.Member, *, perms: discord.Permissions | None = None
    ) -> Reply:
        """Pick `value` in the (first) select menu of a message the bot sent."""
        menu = next(c for row in message.components for c in row.get("components", []) if c.get("type") == 3)
        assert value in [option["value"] for option in menu["options"]], menu["options"]
        start = len(self.adapter.sent)
        payload = self._base(member, perms, 3)
        payload["message"] = RecordingAdapter._message(self.adapter, message.message_id, message.data)
        payload["data"] = {"custom_id": menu["custom_id"], "component_type": 3, "values": [value]}
        self.clicked_message_id = message.message_id
        self.bot._connection.parse_interaction_create(payload)
        await self.settle()
        return Reply(self.adapter.sent[start:])

    async def autocomplete(
        self,
        command: str,
        member: discord.Member,
        focused: str,
        /,
        *,
        perms: discord.Permissions | None = None,
        **values: Any,
    ) -> list[dict[str, Any]]:
        """The choices offered for option `focused` (which must be among `values`)."""
        start = len(self.adapter.sent)
        payload = self.command_payload(command, member, perms=perms, focused=focused, **values)
        await self.bot.tree._call(discord.Interaction(data=payload, state=self.bot._connection))
        reply = Reply(self.adapter.sent[start:])
        return reply.choices if reply.sent else []

    async def click(
        self,
        message: Sent,
        label: str,
        member: discord.Member,
        *,
        perms: discord.Permissions | None = None,
    ) -> Reply:
        """Press the button labelled `label` (a prefix is enough) on a message the bot sent."""
        button = next((b for b in message.buttons if b.get("label", "").startswith(label)), None)
        assert button is not None, f"no button {label!r} in {[b.get('label') for b in message.buttons]}"
        assert message.message_id is not None
        start = len(self.adapter.sent)
        payload = self._base(member, perms, 3)
        payload["message"] = RecordingAdapter._message(self.adapter, message.message_id, message.data)
        payload["data"] = {"custom_id": button["custom_id"], "component_type": 2}
        self.clicked_message_id = message.message_id
        self.bot._connection.parse_interaction_create(payload)
        await self.settle()
        return Reply(self.adapter.sent[start:])

    async def press(
        self,
        message: dict[str, Any] | Sent,
        label: str,
        member: discord.Member,
        *,
        in_dm: bool = False,
        custom_id: str | None = None,
    ) -> Reply:
        """Press the button labelled `label` (a prefix) of a message as Discord has it: a message dict (the fake
        Discord REST's, which keeps the components the bot sent) or something the bot answered. `in_dm`: pressed in
        a direct message (no guild, a `user`, a DM channel), as under a DM. `custom_id`: press that one instead (a
        button the message must carry: Discord only sends the custom_ids of its components)."""
        if isinstance(message, Sent):
            assert message.message_id is not None
            message = RecordingAdapter._message(self.adapter, message.message_id, message.data)
        buttons = [c for row in message.get("components", []) for c in row.get("components", []) if c["type"] == 2]
        if custom_id is None:
            button = next((b for b in buttons if b.get("label", "").startswith(label)), None)
            assert button is not None, f"no button {label!r} in {[b.get('label') for b in buttons]}"
            custom_id = button["custom_id"]
        assert custom_id in [b.get("custom_id") for b in buttons], f"{custom_id!r} is not on the message"
        start = len(self.adapter.sent)
        payload = self._base(member, None, 3)
        if in_dm:
            user = payload.pop("member")["user"]
            del payload["guild_id"]
            payload.update(user=user, channel={"id": str(message["channel_id"]), "type": 1})
        else:  # the partial channel Discord sends (discord.py builds it from this when the guild is not cached)
            payload["channel"].update(
                name=self.channel.name, guild_id=str(member.guild.id), position=0, permission_overwrites=[], nsfw=False
            )
        payload["message"] = message
        payload["data"] = {"custom_id": custom_id, "component_type": 2}
        self.clicked_message_id = int(message["id"])
        self.bot._connection.parse_interaction_create(payload)
        await self.settle()
        return Reply(self.adapter.sent[start:])

    async def submit(self, modal: Sent, member: discord.Member, /, *, on: Sent | None = None, **values: str) -> Reply:
        """Fill in the text inputs of the modal a response opened (by custom_id or label) and submit it; `on` is the
        message whose button opened it (a submit then updates that message)."""
        start = len(self.adapter.sent)
        rows = []
        filled = set()
        for row in modal.modal["components"]:
            inputs = []
            for field_ in row.get("components", [row.get("component")]):
                key = next((k for k in (field_.get("custom_id"), field_.get("label")) if k in values), None)
                if key is not None:
                    filled.add(key)
                inputs.append({"type": 4, "custom_id": field_["custom_id"], "value": values.get(key, "")})
            rows.append({"type": 1, "components": inputs})
        assert filled == set(values), f"no text input {set(values) - filled} in the modal"
        payload = self._base(member, None, 5)
        payload["data"] = {"custom_id": modal.modal["custom_id"], "components": rows}
        if on is not None:
            assert on.message_id is not None
            payload["message"] = RecordingAdapter._message(self.adapter, on.message_id, on.data)
            self.clicked_message_id = on.message_id
        self.bot._connection.parse_interaction_create(payload)
        await self.settle()
        return Reply(self.adapter.sent[start:])

    async def run_in_dm(
        self, command: str, member: discord.Member, /, *, focused: str | None = None, **values: Any
    ) -> Reply:
        """The same command sent from a direct message: no guild, a `user` instead of a `member` (with `focused`:
        its autocomplete for that option)."""
        start = len(self.adapter.sent)
        payload = self.command_payload(command, member, focused=focused, **values)
        user = payload.pop("member")["user"]
        del payload["guild_id"]
        payload.update(user=user, channel={"id": str(next(_ids)), "type": 1})
        await self.bot.tree._call(discord.Interaction(data=payload, state=self.bot._connection))
        return Reply(self.adapter.sent[start:])

    async def settle(self) -> None:
        """Wait for the view callbacks the gateway path scheduled as tasks."""
        store = self.bot._connection._view_store
        tasks = set(store._ViewStore__tasks)
        if tasks:
            await asyncio.gather(*tasks)
