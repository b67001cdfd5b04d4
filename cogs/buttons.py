"""The buttons under Startline's messages, answered by discord.py dynamic items.

The outbox's messages carry Discord-free actions (`bot/notifications/message.py`); the delivery adapter sends each
pressable one with its action key as the custom_id (`sl:<kind>:<args>`). The dynamic items here match those keys by
template, so a press is answered in any process, after any restart, with nothing kept in memory: the key names the
race (RSVP) or the guild and the notification type (a DM has no guild of its own). Each press parses its key, calls
one service method and answers privately with what changed and how to undo it. A malformed key, a deleted race, a
guild Startline left or is not on the user's roster, a second press: a clear private answer and no change.

Registered by this extension's `setup` (`bot.add_dynamic_items`), which `StartlineBot.setup_hook` runs at start-up.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import discord

from bot.actors import Actor
from bot.notifications.message import ACTION_KEY_PREFIX, ActionKind, action_args, action_key_template
from bot.services.reminders import RsvpOutcome, describe_offset
from cogs._common.base import services_of
from cogs._common.formatting import race_title, safe
from cogs._common.respond import report_error, respond
from db.models import EventType

log = logging.getLogger(__name__)

MALFORMED = (
    "❌ Startline cannot read this button (it may come from an older version of the bot). Nothing changed. "
    "Use `/liverace rsvp` or `/notify` instead."
)
LEFT_GUILD = "❌ Startline is no longer in that server, so this button does nothing now. Nothing changed."
IN_SERVER_ONLY = "❌ This button works on the server's announcement. Nothing changed."
KNOWN_KINDS = tuple(kind for kind in ActionKind if kind is not ActionKind.OPEN_ROOM)  # a link is never pressed
_CODES = {event_type.code: event_type for event_type in EventType}

Handler = Callable[[discord.Interaction], Awaitable[None]]


def _actor(interaction: discord.Interaction) -> Actor:
    return Actor.player(interaction.user.id, interaction.user.display_name)


def _guild_name(interaction: discord.Interaction, guild_id: int) -> str | None:
    """The guild's name, or None when the bot is not in it (any more)."""
    guild = interaction.client.get_guild(guild_id)
    return guild.name if guild is not None else None


def stopped_view(*items: discord.ui.Item) -> discord.ui.View:
    """A view to send, not to keep: presses reach the dynamic items by their templates."""
    view = discord.ui.View(timeout=None)
    for item in items:
        view.add_item(item)
    view.stop()
    return view


async def _answer(interaction: discord.Interaction, handler: Handler) -> None:
    """Run a press; any error becomes the private sentence the user reads (never Discord's "interaction failed")."""
    try:
        await handler(interaction)
    except Exception as exc:
        await report_error(interaction, exc)


def rsvp_text(outcome: RsvpOutcome) -> str:
    """What an RSVP answers, from `/liverace rsvp` and from the announcement's buttons alike."""
    title = safe(race_title(outcome.race), 100)
    if not outcome.going:
        text = f"Your RSVP for {title} is withdrawn." if outcome.changed else f"You had not RSVP'd for {title}."
        return text + " Its reminders stop (unless you chose reminders for every race)."
    when = ", ".join(describe_offset(m) for m in outcome.offsets)
    lines = [
        (f"✅ You RSVP'd for {title}." if outcome.changed else f"You had already RSVP'd for {title}.")
        + f" You get a DM {when} before the start and one if it moves. Undo: `/liverace rsvp going:False`."
    ]
    if outcome.ineligible_reason is not None:
        lines.append(
            f"⚠️ You may not race it yet: {safe(outcome.ineligible_reason, 200)}. "
            "Fix it first (for example `/racetime link`)."
        )
    return "\n".join(lines)


_SECONDARY = discord.ButtonStyle.secondary


class _ActionItem:
    """What the dynamic items share: a button made from the `args` of its key (its label kept as Discord shows it,
    `default_label` when it has none), and a press answered by `_press`, whose errors become a private sentence."""

    kind: ActionKind
    args: str
    default_label = "Choose"

    def __init__(self, args: str, *, label: str | None = None, style: discord.ButtonStyle = _SECONDARY) -> None:
        super().__init__(self.button(args, label or self.default_label, style))  # type: ignore[call-arg]
        self.args = args

    @classmethod
    def button(cls, args: str, label: str, style: discord.ButtonStyle) -> discord.ui.Button:
        return discord.ui.Button(label=label, style=style, custom_id=f"{ACTION_KEY_PREFIX}:{cls.kind.value}:{args}")

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Item, match: Any, /):
        return cls(match["args"], label=getattr(item, "label", None))

    async def callback(self, interaction: discord.Interaction) -> None:
        await _answer(interaction, self._press)

    async def _press(self, interaction: discord.Interaction) -> None:
        raise NotImplementedError


class RsvpButton(_ActionItem, discord.ui.DynamicItem[discord.ui.Button], template=action_key_template(ActionKind.RSVP)):
    """I'm racing / Not this time, on a race's living announcement: `sl:rsvp:<race id>:yes|no`."""

    kind = ActionKind.RSVP
    default_label = "RSVP"

    async def _press(self, interaction: discord.Interaction) -> None:
        parsed = action_args(self.args, int, str)
        if parsed is None or parsed[1] not in ("yes", "no"):
            await respond(interaction, MALFORMED)
            return
        race_id, answer = parsed
        guild_id = interaction.guild_id
        if guild_id is None:
            await respond(interaction, IN_SERVER_ONLY)
            return
        if _guild_name(interaction, guild_id) is None:
            await respond(interaction, LEFT_GUILD)
            return
        outcome = await services_of(interaction).reminders.rsvp(
            guild_id, race_id, interaction.user.id, answer == "yes", display_name=interaction.user.display_name
        )
        await respond(interaction, rsvp_text(outcome))


class _GuildChoice(_ActionItem):
    """A DM's buttons about one guild's DMs: the key carries the guild (and the type's code)."""

    arg_kinds: tuple[type, ...] = (int,)

    def valid(self, parsed: tuple) -> bool:
        """Whether the parsed arguments after the guild make sense (a type's code by default)."""
        return len(parsed) < 2 or parsed[1] in _CODES

    async def _press(self, interaction: discord.Interaction) -> None:
        parsed = action_args(self.args, *self.arg_kinds)
        if parsed is None or not self.valid(parsed):
            await respond(interaction, MALFORMED)
            return
        name = _guild_name(interaction, parsed[0])
        if name is None:
            await respond(interaction, LEFT_GUILD)
            return
        await self.apply(interaction, safe(name, 80), *parsed)

    async def apply(self, interaction: discord.Interaction, server: str, guild_id: int, *rest: Any) -> None:
        raise NotImplementedError


def _notify_hint(server: str) -> str:
    return f"`/notify` (in **{server}**, or here with its `server` option)"


# What a switch's press answers: what changed, what an unchanged press says, and what follows a switch off; they may
# name {label} (the type), {server} and {hint} (the /notify command).
_SWITCH_TEXTS = {
    ActionKind.MUTE_TYPE: (
        "🔕 **{label}** DMs from **{server}** are off.",
        "**{label}** DMs from **{server}** were already off. Nothing changed.",
        "Your other DMs stay as they are. Undo: the button below, or {hint}.",
    ),
    ActionKind.UNMUTE_TYPE: (
        "🔔 **{label}** DMs from **{server}** are on again.",
        "**{label}** DMs from **{server}** were already on. Nothing changed.",
        "",
    ),
    ActionKind.DMS_OFF: (
        "🔕 No more DMs from **{server}**: no race DMs and no reminders from that server, whatever your other "
        "choices (other servers are not affected).",
        "DMs from **{server}** were already off. Nothing changed.",
        "Undo: the button below, or turn any DM on for that server with {hint}.",
    ),
    ActionKind.DMS_ON: (
        "🔔 DMs from **{server}** are back: your choices for it apply again.",
        "DMs from **{server}** were not off. Nothing changed.",
        "",
    ),
}
_TYPE_SWITCHES = (ActionKind.MUTE_TYPE, ActionKind.UNMUTE_TYPE)  # their keys carry the type's code too
_SWITCHES_ON = (ActionKind.UNMUTE_TYPE, ActionKind.DMS_ON)  # the undos


class _Switch(_GuildChoice):
    """A DM's switch and its undo: one notification type of the DM's guild (Mute this kind, its key carries the
    type's code) or every DM of that guild (No more DMs), off (answered with an Undo button: the matching switch
    on) or on again; it answers with its `_SWITCH_TEXTS`."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.arg_kinds = (int, int) if cls.kind in _TYPE_SWITCHES else (int,)

    async def apply(self, interaction: discord.Interaction, server: str, guild_id: int, *rest: Any) -> None:
        enabled = self.kind in _SWITCHES_ON
        notifications, user, actor = services_of(interaction).notifications, interaction.user.id, _actor(interaction)
        if rest:
            change = await notifications.set_type_in_guild(user, guild_id, rest[0], enabled, actor=actor)
        else:
            change = await notifications.set_guild_dms(user, guild_id, enabled, actor=actor)
        words = {"server": server, "hint": _notify_hint(server), "label": _CODES[rest[0]].spec.label if rest else ""}
        done, same, tail = (text.format(**words) for text in _SWITCH_TEXTS[self.kind])
        head = done if change.changed else same
        if enabled:
            await respond(interaction, f"{head} Change them any time with {words['hint']}.")
            return
        undo = _UNDO[self.kind](":".join(str(a) for a in (guild_id, *rest)), label="Undo", style=_PRIMARY)
        await respond(interaction, f"{head} {tail}", view=stopped_view(undo))


_PRIMARY = discord.ButtonStyle.primary


class MuteButton(
    _Switch, discord.ui.DynamicItem[discord.ui.Button], template=action_key_template(ActionKind.MUTE_TYPE)
):
    """Mute this kind: this notification type off for the DM's guild, `sl:mute:<guild id>:<event code>`."""

    kind = ActionKind.MUTE_TYPE


class UnmuteButton(
    _Switch, discord.ui.DynamicItem[discord.ui.Button], template=action_key_template(ActionKind.UNMUTE_TYPE)
):
    """The undo of Mute this kind: `sl:unmute:<guild id>:<event code>`."""

    kind = ActionKind.UNMUTE_TYPE


class DmsOffButton(
    _Switch, discord.ui.DynamicItem[discord.ui.Button], template=action_key_template(ActionKind.DMS_OFF)
):
    """No more DMs from <server>: every DM of the DM's guild off, `sl:dmsoff:<guild id>`."""

    kind = ActionKind.DMS_OFF


class DmsOnButton(_Switch, discord.ui.DynamicItem[discord.ui.Button], template=action_key_template(ActionKind.DMS_ON)):
    """The undo of No more DMs: `sl:dmson:<guild id>`."""

    kind = ActionKind.DMS_ON


def _restore_arg(previous: tuple[int, ...] | None) -> str:
    return "default" if previous is None else "-".join(str(m) for m in previous) or "none"


def _restored(text: str) -> tuple[int, ...] | bool | None:
    """The undo key's offsets (None: the guild's default); False when the text is not one."""
    if text == "default":
        return None
    parts = text.split("-")
    return tuple(int(p) for p in parts) if all(p.isdigit() and len(p) < 6 for p in parts) else False


class MuteRemindersButton(
    _GuildChoice, discord.ui.DynamicItem[discord.ui.Button], template=action_key_template(ActionKind.MUTE_REMINDERS)
):
    """A reminder DM's Mute this kind: the guild's reminders off for the player, `sl:mutereminders:<guild id>`."""

    kind = ActionKind.MUTE_REMINDERS

    async def apply(self, interaction: discord.Interaction, server: str, guild_id: int, *rest: Any) -> None:
        changed, previous = await services_of(interaction).reminders.mute_general(interaction.user.id, guild_id)
        tail = (
            "Races you RSVP'd or pressed Interested on still remind you (take that back to stop theirs). "
            f"Choose reminder times again with `/notify reminders:` (in **{server}**, "
            "or here with its `server` option)."
        )
        if not changed:
            await respond(interaction, f"Reminders from **{server}** were already off. Nothing changed. {tail}")
            return
        undo = RemindersBackButton(
            f"{guild_id}:{_restore_arg(previous)}", label="Undo", style=discord.ButtonStyle.primary
        )
        await respond(
            interaction,
            f"🔕 Reminders from **{server}** are off. {tail} Undo: the button below.",
            view=stopped_view(undo),
        )


class RemindersBackButton(
    _GuildChoice, discord.ui.DynamicItem[discord.ui.Button], template=action_key_template(ActionKind.REMINDERS_BACK)
):
    """The undo of a reminder's Mute this kind: `sl:remindersback:<guild id>:<offsets like 1440-60, or default>`."""

    kind = ActionKind.REMINDERS_BACK
    arg_kinds = (int, str)

    def valid(self, parsed: tuple) -> bool:
        return _restored(parsed[1]) is not False

    async def apply(self, interaction: discord.Interaction, server: str, guild_id: int, *rest: Any) -> None:
        previous = _restored(rest[0])
        assert previous is not False  # `valid` refused it otherwise
        reminders = services_of(interaction).reminders
        changed = await reminders.restore_general(interaction.user.id, guild_id, previous)
        head = f"🔔 Reminders from **{server}** are back" if changed else f"Reminders from **{server}** were on"
        when = await reminders.offsets(interaction.user.id, guild_id) or await reminders.guild_default(guild_id)
        times = ", ".join(describe_offset(m) for m in when) or "none chosen"
        await respond(
            interaction,
            f"{head} ({times} before each race). Change them any time with {_notify_hint(server)}.",
        )


_UNDO: dict[ActionKind, type[_Switch]] = {ActionKind.MUTE_TYPE: UnmuteButton, ActionKind.DMS_OFF: DmsOnButton}


_OTHERS = "|".join(kind.value for kind in KNOWN_KINDS)


class UnknownAction(
    discord.ui.DynamicItem[discord.ui.Button],
    template=rf"{ACTION_KEY_PREFIX}:(?!(?:{_OTHERS}):)(?P<args>.*)",
):
    """Any other `sl:` key (a kind this version does not know): a clear answer instead of silence."""

    def __init__(self, custom_id: str) -> None:
        super().__init__(discord.ui.Button(label="?", custom_id=custom_id))
        self.args = custom_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Item, match: Any, /):
        return cls(match.string)

    async def callback(self, interaction: discord.Interaction) -> None:
        await _answer(interaction, lambda i: respond(i, MALFORMED))


DYNAMIC_ITEMS = (
    RsvpButton,
    MuteButton,
    UnmuteButton,
    DmsOffButton,
    DmsOnButton,
    MuteRemindersButton,
    RemindersBackButton,
    UnknownAction,
)


async def setup(bot) -> None:
    bot.add_dynamic_items(*DYNAMIC_ITEMS)


async def teardown(bot) -> None:
    bot.remove_dynamic_items(*DYNAMIC_ITEMS)
