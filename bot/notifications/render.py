"""Outbox payload → `NotificationMessage`: one look per event type, for DMs and for channel posts.

Pure functions of the payload stored in the outbox row, so a message renders the same after a restart and a
later edit of the race cannot change a message already queued. Every time is a Discord timestamp, shown in
each reader's own timezone and locale.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from bot.notifications.message import MessageField, NotificationMessage

PAYLOAD_VERSION = 1
OPEN_FAILED = "live_race_open_failed"

# event -> (icon, headline, colour)
STYLES: dict[str, tuple[str, str, int]] = {
    "live_race_scheduled": ("📅", "Live race scheduled", 0x3498DB),
    "live_race_room_opened": ("🔓", "Race room open", 0x2ECC71),
    "live_race_started": ("🚦", "Race started", 0xE67E22),
    "live_race_finished": ("🏁", "Race finished", 0xF1C40F),
    "live_race_cancelled": ("❌", "Race cancelled", 0xE74C3C),
    OPEN_FAILED: ("⚠️", "Race room could not be opened", 0x992D22),
}
FOOTER = "Startline · race #{id}"
DM_FOOTER = FOOTER + " · change these messages with /notify"


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


def render(payload: Mapping[str, Any], *, channel: bool = False) -> NotificationMessage:
    """The message for one outbox row; `channel` selects the announcement form (no personal result)."""
    event = payload["event"]
    race = payload.get("race", {})
    icon, headline, colour = STYLES[event]
    body = _BODIES[event](payload, race, channel)
    occurred = payload.get("occurred_at")
    return NotificationMessage(
        title=f"{icon} {headline}: {race.get('title') or 'live race'}",
        description=body[0],
        colour=colour,
        url=race.get("room_url") if event != "live_race_scheduled" else None,
        fields=tuple(body[1]),
        footer=(FOOTER if channel else DM_FOOTER).format(id=race.get("id", "?")),
        timestamp=datetime.fromtimestamp(occurred, UTC) if occurred is not None else None,
        content=f"<@&{payload['role_id']}>" if channel and payload.get("role_id") else None,
        mention_role_ids=(int(payload["role_id"]),) if channel and payload.get("role_id") else (),
    )


def _where(race: Mapping[str, Any]) -> str:
    return f"**{race.get('tournament') or 'Tournament'}** · pool **{race.get('pool') or '?'}**"


def _scheduled(payload, race, channel):
    description = f"{_where(race)}\nThe room opens on RaceTime.gg shortly before the start."
    fields = [
        MessageField("Starts", timestamp(race.get("scheduled_at")), inline=False),
        MessageField("Room opens", timestamp(race.get("room_opens_at")), inline=False),
    ]
    if not channel:
        fields.append(MessageField("Why you get this", "You may race it: you are eligible.", inline=False))
    return description, fields


def _room_opened(payload, race, channel):
    description = f"{_where(race)}\nThe room is open: {link('join the race room', race.get('room_url'))}."
    fields = [
        MessageField("Starts", timestamp(race.get("scheduled_at")), inline=False),
        MessageField("Room", link("RaceTime.gg", race.get("room_url"))),
        MessageField("Start delay", f"{race.get('start_delay', '?')} s"),
        MessageField("Auto-start", yes_no(race.get("auto_start"))),
        MessageField("Time limit", f"{race.get('time_limit', '?')} h"),
        MessageField("Seed", race.get("seed_hint") or "In the race room's info", inline=False),
    ]
    return description, fields


def _started(payload, race, channel):
    description = f"{_where(race)}\nThe race is under way. Good luck!"
    fields = [
        MessageField("Started", timestamp(race.get("started_at")), inline=False),
        MessageField("Participants", str(race.get("participant_count", 0))),
        MessageField("Room", link("RaceTime.gg", race.get("room_url"))),
    ]
    return description, fields


def _finished(payload, race, channel):
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
    return description, fields


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


def _cancelled(payload, race, channel):
    description = f"{_where(race)}\nThis live race will not take place."
    fields = [
        MessageField("Reason", race.get("cancel_reason") or "No reason given", inline=False),
        MessageField("Was scheduled for", timestamp(race.get("scheduled_at")), inline=False),
    ]
    return description, fields


def _open_failed(payload, race, channel):
    alert = payload.get("alert", {})
    description = (
        f"{_where(race)}\nThe bot gave up opening the RaceTime.gg room after "
        f"{alert.get('attempts', '?')} attempts. The race is still scheduled."
    )
    if alert.get("summary"):  # a warning ahead of time (a series without seeds), not a failed open
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
    return description, fields


_BODIES = {
    "live_race_scheduled": _scheduled,
    "live_race_room_opened": _room_opened,
    "live_race_started": _started,
    "live_race_finished": _finished,
    "live_race_cancelled": _cancelled,
    OPEN_FAILED: _open_failed,
}
