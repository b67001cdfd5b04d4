"""Outbox payload → `NotificationMessage`: one look per event type, for DMs and for channel posts.

Pure functions of the payload stored in the outbox row, so a message renders the same after a restart and a
later edit of the race cannot change a message already queued. Every time is a Discord timestamp, shown in
each reader's own timezone and locale. The title's emoji and headline and the colour come from the type's
`EventSpec` (`db.models`); the body is the type's renderer here, registered with `@renders`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.notifications.message import (
    ActionKind,
    ActionStyle,
    MessageAction,
    MessageField,
    NotificationMessage,
)
from db.models import (
    LIVE_RACE_REMINDER,
    OPEN_FAILED_ALERT,
    SCHEDULED_EVENTS_BLOCKED_ALERT,
    SPECS_BY_NAME,
    EventSpec,
    EventType,
)

FOOTER = "Startline · race #{id}"
# /notify works in the DM itself (it asks which server when the member has several) and in the server.
DM_FOOTER = FOOTER + " · change these messages with /notify, here or in the server"


def timestamp(ts: int | None) -> str:
    """Absolute and relative Discord timestamps: `<t:…:F> (<t:…:R>)`."""
    if ts is None:
        return "Not known yet"
    return f"<t:{int(ts)}:F> (<t:{int(ts)}:R>)"


def duration(elapsed_us: int | None) -> str:
    if elapsed_us is None:
        return "No time recorded"
    total_seconds, micro = divmod(int(elapsed_us), 1_000_000)
    hours, rest = divmod(total_seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}.{micro // 100_000}"


def ordinal(number: int) -> str:
    suffix = "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"


def yes_no(value: Any) -> str:
    return "Yes" if value else "No"


def link(label: str, url: str | None) -> str:
    return f"[{label}]({url})" if url else "Not available yet"


@dataclass(frozen=True)
class Body:
    """What a type's renderer makes; the title, colour and footer are the same for every type."""

    description: str
    fields: list[MessageField]
    links_room: bool = True  # the title links to the race room (a scheduled race has none yet)


Renderer = Callable[[Mapping[str, Any], Mapping[str, Any], bool], Body]
RENDERERS: dict[str, Renderer] = {}


def renders(event: EventType | EventSpec) -> Callable[[Renderer], Renderer]:
    """Register the body of one notification type: `(payload, race snapshot, channel) -> Body`."""
    name = event.spec.name if isinstance(event, EventType) else event.name

    def register(renderer: Renderer) -> Renderer:
        RENDERERS[name] = renderer
        return renderer

    return register


def render(payload: Mapping[str, Any], *, channel: bool = False, guild_id: int | None = None) -> NotificationMessage:
    """The message for one outbox row; `channel` selects the announcement form (no personal result); `guild_id`
    (the row's guild) gives a DM its buttons for that guild's preferences."""
    spec = SPECS_BY_NAME[payload["event"]]
    race = payload.get("race", {})
    body = RENDERERS[spec.name](payload, race, channel)
    occurred = payload.get("occurred_at")
    name = race.get("title") or ("live race" if race.get("id") is not None else "this server")
    if payload.get("living") and spec.name == EventType.LIVE_RACE_CANCELLED.value:
        name = f"~~{name}~~"  # the living announcement of a cancelled race: struck through, kept for the record
    headline = payload.get("alert", {}).get("headline") or spec.headline  # a moderator alert may name itself
    return NotificationMessage(
        title=f"{spec.emoji} {headline}: {name}",
        description=body.description,
        colour=spec.colour,
        url=race.get("room_url") if body.links_room else None,
        fields=tuple(body.fields),
        footer=(FOOTER if channel else DM_FOOTER).format(id=race.get("id", "?"))
        if race.get("id", "?") is not None
        else "Startline",
        timestamp=datetime.fromtimestamp(occurred, UTC) if occurred is not None else None,
        content=f"<@&{payload['role_id']}>" if channel and payload.get("role_id") else None,
        mention_role_ids=(int(payload["role_id"]),) if channel and payload.get("role_id") else (),
        actions=announcement_actions(payload) if channel else dm_actions(payload, spec, guild_id),
    )


# The living announcement takes RSVPs while the race is scheduled (a rescheduled race still is); from the room's
# opening it links the room instead (RSVPs close there: `/liverace rsvp` refuses too); once the race finished or was
# cancelled, it has no buttons left.
_RSVP_STEPS = frozenset({EventType.LIVE_RACE_SCHEDULED.value, EventType.LIVE_RACE_RESCHEDULED.value})
_ROOM_STEPS = frozenset({EventType.LIVE_RACE_ROOM_OPENED.value, EventType.LIVE_RACE_STARTED.value})
RSVP_YES_LABEL = "I'm racing"
RSVP_NO_LABEL = "Not this time"
OPEN_ROOM_LABEL = "Open the room"
MUTE_LABEL = "Mute this kind"
DMS_OFF_LABEL = "No more DMs from {server}"


def announcement_actions(payload: Mapping[str, Any]) -> tuple[MessageAction, ...]:
    """The buttons of a race's living announcement (and of the room-open reply, which may become it)."""
    if not (payload.get("living") or payload.get("reply")):
        return ()
    race = payload.get("race", {})
    race_id, event, url = race.get("id"), payload.get("event"), race.get("room_url")
    if event in _RSVP_STEPS and payload.get("living") and isinstance(race_id, int):
        return (
            MessageAction(ActionKind.RSVP, RSVP_YES_LABEL, ActionStyle.SUCCESS, args=(race_id, "yes")),
            MessageAction(ActionKind.RSVP, RSVP_NO_LABEL, ActionStyle.SECONDARY, args=(race_id, "no")),
        )
    if event in _ROOM_STEPS and url:
        return (MessageAction(ActionKind.OPEN_ROOM, OPEN_ROOM_LABEL, ActionStyle.LINK, url=url),)
    return ()


def dm_actions(payload: Mapping[str, Any], spec: EventSpec, guild_id: int | None) -> tuple[MessageAction, ...]:
    """A DM's buttons: the room (when its link is known), this kind off for the guild (a type players subscribe
    to; for a reminder, the guild's reminders), and every DM of the guild off."""
    actions: list[MessageAction] = []
    url = payload.get("race", {}).get("room_url")
    if url:
        actions.append(MessageAction(ActionKind.OPEN_ROOM, OPEN_ROOM_LABEL, ActionStyle.LINK, url=url))
    if guild_id is not None:
        if spec.code is not None:
            actions.append(MessageAction(ActionKind.MUTE_TYPE, MUTE_LABEL, args=(guild_id, spec.code)))
        elif spec is LIVE_RACE_REMINDER:  # no type code: its kind is the guild's reminders
            actions.append(MessageAction(ActionKind.MUTE_REMINDERS, MUTE_LABEL, args=(guild_id,)))
        actions.append(MessageAction(ActionKind.DMS_OFF, DMS_OFF_LABEL, ActionStyle.DANGER, args=(guild_id,)))
    return tuple(actions)


def _where(race: Mapping[str, Any]) -> str:
    return f"**{race.get('tournament') or 'Tournament'}** · pool **{race.get('pool') or '?'}**"


@renders(EventType.LIVE_RACE_SCHEDULED)
def _scheduled(payload, race, channel) -> Body:
    description = f"{_where(race)}\nThe room opens on RaceTime.gg shortly before the start."
    fields = [
        MessageField("Starts", timestamp(race.get("scheduled_at")), inline=False),
        MessageField("Room opens", timestamp(race.get("room_opens_at")), inline=False),
    ]
    if not channel:
        fields.append(MessageField("Why you get this", "You may race it: you are eligible.", inline=False))
    return Body(description, fields, links_room=False)


@renders(EventType.LIVE_RACE_ROOM_OPENED)
def _room_opened(payload, race, channel) -> Body:
    description = f"{_where(race)}\nThe room is open: {link('join the race room', race.get('room_url'))}."
    fields = [
        MessageField("Starts", timestamp(race.get("scheduled_at")), inline=False),
        MessageField("Room", link("RaceTime.gg", race.get("room_url"))),
        MessageField("Start delay", f"{race.get('start_delay', '?')} s"),
        MessageField("Auto-start", yes_no(race.get("auto_start"))),
        MessageField("Time limit", f"{race.get('time_limit', '?')} h"),
        MessageField("Seed", race.get("seed_hint") or "In the race room's info", inline=False),
    ]
    return Body(description, fields)


@renders(EventType.LIVE_RACE_STARTED)
def _started(payload, race, channel) -> Body:
    description = f"{_where(race)}\nThe race is under way. Good luck!"
    fields = [
        MessageField("Started", timestamp(race.get("started_at")), inline=False),
        MessageField("Participants", str(race.get("participant_count", 0))),
        MessageField("Room", link("RaceTime.gg", race.get("room_url"))),
    ]
    return Body(description, fields)


@renders(EventType.LIVE_RACE_FINISHED)
def _finished(payload, race, channel) -> Body:
    description = f"{_where(race)}\nThe results are recorded."
    fields: list[MessageField] = []
    result = payload.get("result")
    if not channel and result:
        fields.extend(_result_fields(result, race.get("finisher_count", 0)))
    podium = race.get("podium") or []
    if channel and podium:
        lines = [f"{ordinal(p['place'])} **{p['name']}** — {duration(p.get('elapsed_us'))}" for p in podium]
        fields.append(MessageField("Podium", "\n".join(lines), inline=False))
    fields += [
        MessageField("Finishers", f"{race.get('finisher_count', 0)} of {race.get('participant_count', 0)}"),
        MessageField("Ended", timestamp(race.get("ended_at")), inline=False),
        MessageField("Results", link("Race room on RaceTime.gg", race.get("room_url"))),
    ]
    return Body(description, fields)


def _result_fields(result: Mapping[str, Any], finishers: int) -> list[MessageField]:
    status = result.get("status")
    if status != "finished":
        label = {"forfeit": "Forfeit", "disqualified": "Disqualified"}.get(status, str(status).capitalize())
        return [MessageField("Your result", f"{label} (score 0)", inline=False)]
    place = result.get("place")
    score = result.get("score")
    return [
        MessageField("Your place", f"{ordinal(place)} of {finishers}" if place else "Not placed"),
        MessageField("Your time", duration(result.get("elapsed_us"))),
        MessageField("Your score", f"{score:.1f}" if score is not None else "Not scored yet"),
    ]


@renders(EventType.LIVE_RACE_CANCELLED)
def _cancelled(payload, race, channel) -> Body:
    description = f"{_where(race)}\nThis live race will not take place."
    fields = [
        MessageField("Reason", race.get("cancel_reason") or "No reason given", inline=False),
        MessageField("Was scheduled for", timestamp(race.get("scheduled_at")), inline=False),
    ]
    return Body(description, fields)


@renders(SCHEDULED_EVENTS_BLOCKED_ALERT)
def _events_blocked(payload, race, channel) -> Body:
    return Body(payload.get("alert", {}).get("error") or "Discord Scheduled Events are off.", [], links_room=False)


@renders(OPEN_FAILED_ALERT)
def _open_failed(payload, race, channel) -> Body:
    alert = payload.get("alert", {})
    description = (
        f"{_where(race)}\nThe bot gave up opening the RaceTime.gg room after "
        f"{alert.get('attempts', '?')} attempts. The race is still scheduled."
    )
    if alert.get("summary"):  # not a failed open: a warning ahead of time, missed races, a race too late
        description = f"{_where(race)}\n{alert['summary']} The race is still scheduled."
    fields = [
        MessageField("Last error", alert.get("error") or "No error text", inline=False),
        MessageField("Scheduled start", timestamp(race.get("scheduled_at")), inline=False),
        MessageField(
            "What to do",
            alert.get("action")
            or "Check RaceTime.gg and the bot's credentials, then open the room with /liverace-admin open.",
            inline=False,
        ),
    ]
    return Body(description, fields)


@renders(EventType.LIVE_RACE_RESCHEDULED)
def _rescheduled(payload, race, channel) -> Body:
    description = f"{_where(race)}\nThe moderators moved the start of this race."
    fields = [
        MessageField("New start", timestamp(race.get("scheduled_at")), inline=False),
        MessageField(
            "Was",
            f"~~<t:{int(race['previous_scheduled_at'])}:F>~~" if race.get("previous_scheduled_at") else "Not known",
            inline=False,
        ),
        MessageField("Room opens", timestamp(race.get("room_opens_at")), inline=False),
    ]
    if not channel:
        fields.append(MessageField("Why you get this", "You may race it: you are eligible.", inline=False))
    return Body(description, fields, links_room=False)


@renders(LIVE_RACE_REMINDER)
def _reminder(payload, race, channel) -> Body:
    reminder = payload.get("reminder", {})
    minutes = int(reminder.get("offset_minutes") or 0)
    before = f"{minutes // 60} h" if minutes and minutes % 60 == 0 else f"{minutes} min"
    description = f"{_where(race)}\nThe race starts in about {before}."
    if reminder.get("rsvp"):
        why = "You said you would race it (RSVP)."
    elif reminder.get("interested"):
        why = "You pressed Interested on its Discord event."
    else:
        why = f"You asked for a reminder {before} before races you may join."
    fields = [
        MessageField("Starts", timestamp(race.get("scheduled_at")), inline=False),
        MessageField("Why you get this", why + " Change your reminders with /notify reminders.", inline=False),
    ]
    return Body(description, fields, links_room=False)
