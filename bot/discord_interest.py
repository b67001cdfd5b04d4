"""Interested on a race's Discord Scheduled Event, as the gateway and Discord's REST API tell it (the adapter side
of `ReminderService.set_interest` and `replace_interest`).

The gateway's GUILD_SCHEDULED_EVENT_USER_ADD and _REMOVE (intent GUILD_SCHEDULED_EVENTS) say who pressed or took
back Interested. discord.py dispatches them only for an event and a user in its cache, and this bot caches no
members, so `install_raw_parsers` reads their payloads (`guild_scheduled_event_id`, `user_id`, `guild_id`) and
dispatches them as `raw_scheduled_event_user_add` / `_remove`, before discord.py's own handling.

A restart or an outage misses those events: at each READY (a new gateway session; a resumed one is sent what it
missed) `resync_interest` reads the user list of the upcoming races' events again (`GET /guilds/{guild}/
scheduled-events/{event}/users`, 100 a page, ascending user ids, `after` the last one), bounded: the
`RESYNC_MAX_EVENTS` soonest events, `RESYNC_MAX_PAGES` pages each; a list cut short only adds interest.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import discord

from bot.services.reminders import ReminderService

log = logging.getLogger(__name__)

RESYNC_MAX_EVENTS = 100
USERS_PAGE = 100  # Discord's largest page
RESYNC_MAX_PAGES = 10  # 1,000 users an event
RAW_EVENTS = {
    "GUILD_SCHEDULED_EVENT_USER_ADD": "raw_scheduled_event_user_add",
    "GUILD_SCHEDULED_EVENT_USER_REMOVE": "raw_scheduled_event_user_remove",
}


@dataclass(frozen=True)
class RawScheduledEventUser:
    """A GUILD_SCHEDULED_EVENT_USER_ADD or _REMOVE dispatch."""

    guild_id: int
    event_id: int
    user_id: int

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> RawScheduledEventUser:
        return cls(int(data["guild_id"]), int(data["guild_scheduled_event_id"]), int(data["user_id"]))


def install_raw_parsers(client: discord.Client) -> None:
    """Make the client dispatch `raw_scheduled_event_user_add` / `_remove` with a `RawScheduledEventUser` for every
    such gateway event, then let discord.py handle it as before (its cache, its own events)."""
    parsers: dict[str, Callable[[Any], None]] = client._connection.parsers

    def raw(original: Callable[[Any], None], name: str) -> Callable[[Any], None]:
        def parse(data: Any) -> None:
            try:
                payload = RawScheduledEventUser.from_data(data)
            except (KeyError, TypeError, ValueError):
                log.warning("a malformed %s dispatch was ignored", name)
            else:
                client.dispatch(name, payload)
            original(data)

        return parse

    for event, name in RAW_EVENTS.items():
        parsers[event] = raw(parsers[event], name)


async def event_users(
    http: discord.http.HTTPClient, guild_id: int, event_id: int, *, max_pages: int = RESYNC_MAX_PAGES
) -> tuple[list[int], bool]:
    """The users interested in the event who are still members of the guild, and whether that is all of them (False
    when the list is longer than `max_pages` pages). Bots are left out."""
    users: list[int] = []
    after: int | None = None
    for _ in range(max_pages):
        page = await http.get_scheduled_event_users(guild_id, event_id, USERS_PAGE, True, after=after)
        for entry in page:
            user = entry.get("user") or {}
            if entry.get("member") is not None and not user.get("bot"):
                users.append(int(user["id"]))
        if len(page) < USERS_PAGE:
            return users, True
        after = int(page[-1]["user"]["id"])
    return users, False


async def resync_interest(client: discord.Client, reminders: ReminderService) -> int:
    """Read again who is Interested in each upcoming race's event (bounded); returns how many interests changed.
    An event deleted in Discord, or an answer that fails, is passed over (logged): the gateway keeps it current."""
    changed = 0
    targets = await reminders.interest_resync_targets(RESYNC_MAX_EVENTS)
    for guild_id, event_id in targets:
        read_at = reminders.clock()
        try:
            users, complete = await event_users(client.http, guild_id, event_id)
        except discord.HTTPException as exc:
            log.warning("could not read who is interested in event %s of guild %s: %s", event_id, guild_id, exc)
            continue
        changed += await reminders.replace_interest(guild_id, event_id, users, read_at=read_at, complete=complete)
    if targets:
        log.info("interest read again for %d scheduled event(s): %d change(s)", len(targets), changed)
    return changed
