"""A Discord-free message: what the renderer produces and the delivery adapter turns into an embed.

Discord rejects an embed with an empty field name or value, or any part over its length limit, so the
structure repairs itself on construction: empty text becomes a dash, long text is cut with an ellipsis, and
past the 6000-character total the last fields go before the description is cut.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

TITLE_LIMIT = 256
DESCRIPTION_LIMIT = 4096
FIELD_NAME_LIMIT = 256
FIELD_VALUE_LIMIT = 1024
FIELD_COUNT_LIMIT = 25
FOOTER_LIMIT = 2048
EMBED_TOTAL_LIMIT = 6000
CONTENT_LIMIT = 2000
PLACEHOLDER = "—"
MIN_DESCRIPTION = 200
ACTIONS_LIMIT = 5  # one row of buttons


def fit(text: str | None, limit: int, *, placeholder: str = PLACEHOLDER) -> str:
    """Non-empty text of at most `limit` characters."""
    text = (text or "").strip()
    if not text:
        return placeholder
    if len(text) > limit:
        return text[: limit - 1].rstrip() + "…"
    return text


@dataclass(frozen=True)
class MessageField:
    name: str
    value: str
    inline: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", fit(self.name, FIELD_NAME_LIMIT))
        object.__setattr__(self, "value", fit(self.value, FIELD_VALUE_LIMIT))


@dataclass(frozen=True)
class NotificationMessage:
    title: str
    description: str
    colour: int
    url: str | None = None
    fields: tuple[MessageField, ...] = ()
    footer: str | None = None
    timestamp: datetime | None = None
    # Plain text above the embed (a role ping in an announcement channel).
    content: str | None = None
    # The only roles `content` may ping; anything else in it stays inert.
    mention_role_ids: tuple[int, ...] = ()
    # The buttons under it (at most `ACTIONS_LIMIT`); an edit replaces them, so an edit with none removes them.
    actions: tuple[MessageAction, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "title", fit(self.title, TITLE_LIMIT))
        object.__setattr__(self, "fields", tuple(self.fields)[:FIELD_COUNT_LIMIT])
        object.__setattr__(self, "footer", fit(self.footer, FOOTER_LIMIT) if self.footer else None)
        object.__setattr__(self, "content", fit(self.content, CONTENT_LIMIT) if self.content else None)
        object.__setattr__(self, "actions", tuple(self.actions)[:ACTIONS_LIMIT])
        while self.fields and self._fixed_length() > EMBED_TOTAL_LIMIT - MIN_DESCRIPTION:
            object.__setattr__(self, "fields", self.fields[:-1])  # the last fields are the least important
        budget = EMBED_TOTAL_LIMIT - self._fixed_length()
        object.__setattr__(self, "description", fit(self.description, max(1, min(DESCRIPTION_LIMIT, budget))))

    def _fixed_length(self) -> int:
        """Characters that count toward Discord's 6000 total, apart from the description."""
        return len(self.title) + sum(len(f.name) + len(f.value) for f in self.fields) + len(self.footer or "")

    @property
    def total_length(self) -> int:
        return self._fixed_length() + len(self.description)


# ---- actions: the buttons under a message -------------------------------------------------------------------------
# Described here without Discord: the delivery adapter (`bot/discord_delivery.py`) turns them into components, and
# the adapter that answers a press (`cogs/buttons.py`) parses the same `key`. A key names everything the press needs
# (a race, a guild, a notification type), so a button works after a restart with no state in memory. Keys are
# part of messages already sent: never change a format, add a new one.
ACTION_KEY_PREFIX = "sl"
LABEL_LIMIT = 80  # Discord's limit for a button's label
KEY_LIMIT = 100  # Discord's limit for a custom_id


class ActionKind(StrEnum):
    OPEN_ROOM = "room"  # a link to the race room
    RSVP = "rsvp"  # I'm racing / Not this time: `<race id>:yes|no`
    MUTE_TYPE = "mute"  # this notification type off for this guild: `<guild id>:<event code>`
    UNMUTE_TYPE = "unmute"  # the undo of MUTE_TYPE: `<guild id>:<event code>`
    DMS_OFF = "dmsoff"  # no more DMs from this guild: `<guild id>`
    DMS_ON = "dmson"  # the undo of DMS_OFF: `<guild id>`
    MUTE_REMINDERS = "mutereminders"  # a reminder DM's Mute this kind (the guild's reminders off): `<guild id>`
    REMINDERS_BACK = "remindersback"  # its undo: `<guild id>:<offsets, e.g. 1440-60, or "default">`


class ActionStyle(StrEnum):
    PRIMARY = "primary"
    SECONDARY = "secondary"
    SUCCESS = "success"
    DANGER = "danger"
    LINK = "link"


@dataclass(frozen=True)
class MessageAction:
    """One button. A link opens `url`; any other action is pressed, and `key` says what was pressed.

    `label` may contain `{server}`: the adapter puts the guild's name there (the outbox payload has none)."""

    kind: ActionKind
    label: str
    style: ActionStyle = ActionStyle.SECONDARY
    url: str | None = None
    args: tuple[int | str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "label", fit(self.label, LABEL_LIMIT))
        if (self.kind is ActionKind.OPEN_ROOM) != (self.url is not None):
            raise ValueError("a link action needs a url, and only a link action has one")

    @property
    def key(self) -> str | None:
        """`sl:<kind>:<arg>:<arg>…`, or None for a link."""
        if self.kind is ActionKind.OPEN_ROOM:
            return None
        return action_key(self.kind, *self.args)


def action_key(kind: ActionKind, *args: int | str) -> str:
    key = ":".join((ACTION_KEY_PREFIX, kind.value, *(str(arg) for arg in args)))
    if len(key) > KEY_LIMIT:
        raise ValueError(f"action key {key[:40]!r}… is longer than {KEY_LIMIT} characters")
    return key


def action_key_template(kind: ActionKind) -> str:
    """The regular expression of a kind's keys: everything after `sl:<kind>:` is captured as `args`, well formed or
    not, so a malformed key still reaches its handler and gets an answer instead of silence."""
    return rf"{ACTION_KEY_PREFIX}:{kind.value}:(?P<args>.*)"


def action_args(text: str, *kinds: type) -> tuple | None:
    """The `args` of a key converted to `kinds` (int or str), or None when they do not fit."""
    parts = text.split(":")
    if len(parts) != len(kinds):
        return None
    values = []
    for part, kind in zip(parts, kinds, strict=True):
        if kind is int:
            if not part.isdigit() or len(part) > 20:
                return None
            values.append(int(part))
        else:
            if not part:
                return None
            values.append(part)
    return tuple(values)
