"""Startline in the RaceTime.gg rooms it opened: one bot websocket per open or running room.

Polling stays the source of truth for results (the poller records them); the sockets add what polling cannot:

- on connect, a pinned message with the tournament, pool, start time and what counts (once per room);
- when an entrant joins, their eligibility is checked at once; an unlinked or ineligible entrant is told why and
  how to fix it in a message addressed to them (`direct_to`), before they play. Every cycle re-checks the joined
  entrants, so a player who links their account (or is otherwise fixed) while in the room is told they count now;
- chat commands: `!eligible` (the asker's own verdict, addressed to them) and `!status` (start time, counted
  entrants, seed policy);
- seed reveal: a room opened with `seed_reveal` `before_start` or `at_start` does not show the seed; Startline posts
  it (a message and `info_bot`) `seed_reveal_minutes` before the start, or when the countdown begins, and only then
  sets `seed_revealed_at`, which lets Discord and the API show it (`live_race_views.seed_is_public`);
- start control: a room whose `start_mode` is `scheduled` was opened with RaceTime.gg's auto start off; at the
  scheduled time Startline sends `begin` once at least `min_ready` entrants are ready, else says so in the room and
  tries again each minute, until a moderator cancels the race or `START_GIVE_UP` has passed. Never before its time.

**Several processes.** Each room is held by one process at a time: a lease `room_presence:<race id>` in
`job_leases`, renewed every cycle; a process that loses it (or whose race ended) closes its socket. Messages that
must go out once (the pin, each warning) are recorded in `room_messages` before they are sent, with a guid derived
from the race and the message's key; RaceTime.gg ignores a guid it saw in the last 5 minutes, so a resend after a
crash or by the next lease holder is harmless, and a row with `sent_at` is never sent again. A reply to a chat
command gets a guid derived from the command's message id, so two processes answering the same command (a lease
taken over mid-answer) show one reply.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from bot import metrics
from bot.clock import SYSTEM_CLOCK
from bot.services.eligibility import race_eligibility
from bot.services.players import EFFECTIVE_RACETIME_ID, roster_entry_of
from bot.services.room_opener import SEED_LABEL, marker_tag
from bot.services.room_profiles import resolve_for_race
from db.models import GuildPlayer, LiveRace, Player, Pool, RaceStatus, RoomMessage, Seed, Tournament
from db.session import Database
from racetime.room_socket import RoomSocket, stable_guid

if TYPE_CHECKING:
    from bot.services.processes import Leases
    from racetime.clients import RacetimeClients

log = logging.getLogger(__name__)

PRESENT_STATUSES = (RaceStatus.ROOM_OPEN, RaceStatus.IN_PROGRESS)
OVER = frozenset({"finished", "cancelled"})
JOINED = frozenset({"ready", "not_ready", "in_progress", "done", "dnf", "dq"})  # entrant status values in a race
NOT_LINKED = (
    "your RaceTime.gg account is not linked to a player of this tournament's Discord server: run /racetime link "
    "there (or ask a moderator), then type !eligible here"
)
SEED_POLICIES = {
    "at_open": "the seed is in the room info from the moment the room opens",
    "before_start": "the seed is shown here {minutes} min before the start",
    "at_start": "the seed is shown here when the countdown begins",
}
WORKERS = 4  # messages handled at once across the rooms (each room's own stay in order)
START_RETRY = timedelta(minutes=1)  # a scheduled start that lacks ready entrants is tried again this often
START_GIVE_UP = timedelta(minutes=30)  # and not after this long past its time (the room stays open for moderators)


@dataclass
class PresentRoom:
    race_id: int
    guild_id: int
    category: str
    slug: str
    marker: str
    socket: RoomSocket | None = None
    task: asyncio.Task[None] | None = None
    entrants: dict[str, str] = field(default_factory=dict)  # racetime id -> name, of the joined entrants
    verdicts: dict[str, str | None] = field(default_factory=dict)  # racetime id -> reason (None: counts)
    race_status: str | None = None
    told: set[str] = field(default_factory=set)  # entrants whose current verdict this process has dealt with
    ready: int = 0  # entrants ready, from the last race.data
    start_mode: str = "auto"
    min_ready: int = 2
    scheduled_at: datetime | None = None
    begun_attempt: int | None = None  # the start attempt (minutes past the time) `begin` was last sent for
    seed_reveal: str = "at_open"  # the policy the room was opened with
    seed_minutes: int = 5
    seed_url: str | None = None
    revealed: bool = True
    info_bot: str = ""  # as the last race.data showed it


@dataclass
class PresenceReport:
    rooms: int = 0
    held: int = 0
    connected: int = 0
    started: int = 0
    stopped: int = 0


@dataclass(frozen=True)
class RoomFacts:
    tournament: str
    pool: str
    scheduled_at: datetime
    counts: bool


class RoomPresence:
    def __init__(
        self,
        db: Database,
        racetime: RacetimeClients | None,
        *,
        leases: Leases | None = None,
        lease_seconds: float = 60.0,
        clock: Callable[[], datetime] = SYSTEM_CLOCK,
        backoff_base: float = 1.0,
        backoff_max: float = 60.0,
    ) -> None:
        self.db = db
        self.racetime = racetime
        self.leases = leases
        self.lease_seconds = lease_seconds
        self.clock = clock
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.rooms: dict[int, PresentRoom] = {}
        self._connections: dict[str, int] = {}
        # What the sockets hear is handled a few rooms at a time: 200 rooms connecting at once would otherwise open
        # 200 transactions together (on SQLite, one writer at a time: "database is locked" past the busy timeout).
        self._work = asyncio.Semaphore(WORKERS)

    # ---- the job ---------------------------------------------------------------------------------------------
    async def run_cycle(self) -> PresenceReport:
        """Join the rooms this process may hold, leave the others, and re-check the entrants of each held room."""
        report = PresenceReport()
        if self.racetime is None:
            return report
        query = select(
            LiveRace.id, LiveRace.guild_id, LiveRace.racetime_category, LiveRace.racetime_slug, LiveRace.marker
        ).where(
            LiveRace.status.in_(PRESENT_STATUSES),
            LiveRace.racetime_slug.is_not(None),
            LiveRace.racetime_category.is_not(None),
        )
        async with self.db.read() as session:
            rows = (await session.execute(query.order_by(LiveRace.id))).all()
        report.rooms = len(rows)
        wanted: set[int] = set()
        for race_id, guild_id, category, slug, marker in rows:
            if not self.racetime.serves(category):
                continue
            if self.leases is not None and not await self.leases.take(
                f"room_presence:{race_id}", seconds=self.lease_seconds
            ):
                continue  # another process is in this room
            wanted.add(race_id)
            room = self.rooms.get(race_id)
            if room is not None and room.slug != slug:
                await self._leave(race_id)  # the race's room changed (adopted another): follow the new one
                room = None
            if room is not None and room.race_status in OVER:
                continue  # over on RaceTime.gg; the poller records it and the race leaves this list
            if room is None or room.task is None or room.task.done():
                room = PresentRoom(race_id, guild_id, category, slug, marker)
                await self._load_start_settings(room)
                self._join(room)
                report.started += 1
        for race_id in list(self.rooms):
            if race_id not in wanted:
                await self._leave(race_id)
                report.stopped += 1
        report.held = len(self.rooms)
        for room in list(self.rooms.values()):
            if room.socket is not None and room.socket.connected:
                report.connected += 1
                if room.entrants:
                    await self._check_entrants(room)
                await self._start_control(room)
                await self._reveal_seed(room)
        return report

    # ---- seed reveal -----------------------------------------------------------------------------------------
    def _seed_due(self, room: PresentRoom) -> bool:
        if room.revealed or room.seed_url is None or room.scheduled_at is None:
            return False
        if room.seed_reveal == "before_start":
            return self.clock() >= room.scheduled_at - timedelta(minutes=room.seed_minutes)
        return room.race_status in ("pending", "in_progress")  # at_start: when the countdown begins

    async def _reveal_seed(self, room: PresentRoom) -> None:
        """Show the seed in the room (a message and `info_bot`), then to everyone else (`seed_revealed_at`)."""
        socket = room.socket
        if socket is None or not self._seed_due(room) or marker_tag(room.marker) not in room.info_bot:
            return  # (until race.data showed the room's info_bot: setinfo replaces it, and the marker must stay)
        assert room.seed_url is not None
        await self._send_once(room, socket, "seed", f"Startline: the seed is {room.seed_url}")
        if room.seed_url not in room.info_bot:
            await socket.set_bot_info(f"{room.info_bot} · {SEED_LABEL}{room.seed_url}"[:1000])
        async with self.db.transaction() as session:  # a compare-and-set: the first process to get here says when
            await session.execute(
                update(LiveRace)
                .where(LiveRace.id == room.race_id, LiveRace.seed_revealed_at.is_(None))
                .values(seed_revealed_at=self.clock())
            )
        room.revealed = True
        log.info("live race %s: seed revealed in the room (%s)", room.race_id, room.seed_reveal)

    # ---- start control ---------------------------------------------------------------------------------------
    async def _load_start_settings(self, room: PresentRoom) -> None:
        async with self.db.read() as session:
            race = await session.get(LiveRace, room.race_id)
            tournament = await session.get(Tournament, race.tournament_id) if race is not None else None
            if race is None or tournament is None:
                return
            settings = await resolve_for_race(session, race, tournament)
            seed = await session.get(Seed, race.seed_id) if race.seed_id else None
        room.seed_reveal = race.seed_reveal or "at_open"
        room.seed_minutes = settings["seed_reveal_minutes"]
        room.seed_url = seed.url if seed is not None else None
        room.revealed = room.seed_reveal == "at_open" or race.seed_revealed_at is not None
        room.start_mode, room.min_ready, room.scheduled_at = (
            settings["start_mode"],
            settings["min_ready"],
            race.scheduled_at,
        )

    async def _start_control(self, room: PresentRoom) -> None:
        """A `scheduled` room: `begin` at its time once `min_ready` entrants are ready; never earlier."""
        socket = room.socket
        if room.start_mode != "scheduled" or room.race_status != "open" or socket is None or room.scheduled_at is None:
            return
        now = self.clock()
        if now < room.scheduled_at:
            return
        late = now - room.scheduled_at
        if late > START_GIVE_UP:
            await self._send_once(
                room,
                socket,
                "start:gave_up",
                f"Startline: fewer than {room.min_ready} entrants were ready within {START_GIVE_UP.seconds // 60} "
                "minutes of the start; Startline no longer starts this race (a moderator may start or cancel it).",
            )
            return
        attempt = int(late / START_RETRY)
        if room.ready >= room.min_ready:
            if room.begun_attempt != attempt and await socket.begin():
                room.begun_attempt = attempt
                log.info("live race %s: sent begin (%d ready)", room.race_id, room.ready)
            return
        await self._send_once(
            room,
            socket,
            f"start:waiting:{attempt}",
            f"Startline: it is time, but only {room.ready} of the {room.min_ready} entrants needed are ready; the race "
            "starts as soon as enough are ready (checked each minute), or a moderator cancels it.",
        )

    async def close(self) -> None:
        """Leave every room (the leases stay, to run out: another process takes the rooms after them)."""
        for race_id in list(self.rooms):
            await self._leave(race_id, release=False)

    def _join(self, room: PresentRoom) -> None:
        assert self.racetime is not None
        client = self.racetime.for_category(room.category)
        room.socket = RoomSocket(
            client,
            room.category,
            room.slug,
            lambda socket, message: self._on_message(room, socket, message),
            backoff_base=self.backoff_base,
            backoff_max=self.backoff_max,
            on_connection=lambda up: self._count(room.category, 1 if up else -1),
        )
        room.task = asyncio.create_task(room.socket.run(), name=f"room-presence-{room.race_id}")
        self.rooms[room.race_id] = room

    async def _leave(self, race_id: int, *, release: bool = True) -> None:
        room = self.rooms.pop(race_id, None)
        if room is None:
            return
        if room.socket is not None:
            room.socket.close()
        if room.task is not None:
            room.task.cancel()
            await asyncio.gather(room.task, return_exceptions=True)
        if release and self.leases is not None:
            await self.leases.release(f"room_presence:{race_id}")

    def _count(self, category: str, delta: int) -> None:
        self._connections[category] = max(0, self._connections.get(category, 0) + delta)
        metrics.set_websocket_connections(category, self._connections[category])

    @property
    def connections(self) -> dict[str, int]:
        """This process's open sockets per category."""
        return dict(self._connections)

    # ---- what the room says ----------------------------------------------------------------------------------
    async def _on_message(self, room: PresentRoom, socket: RoomSocket, message: dict[str, Any]) -> bool:
        kind = message.get("type")
        if kind not in ("race.data", "chat.message", "error"):
            return False  # race.renders, chat.dm, pong...: nothing to do
        async with self._work:
            return await self._handle(room, socket, message, kind)

    async def _handle(self, room: PresentRoom, socket: RoomSocket, message: dict[str, Any], kind: Any) -> bool:
        try:
            if kind == "race.data":
                race = message.get("race")
                if not isinstance(race, dict):
                    return False
                return await self._on_race(room, socket, race)
            if kind == "chat.message":
                chat = message.get("message")
                if isinstance(chat, dict):
                    await self._on_chat(room, socket, chat)
            elif kind == "error":
                log.warning("room %s answered an action with %s", socket.name, message.get("errors"))
        except Exception:  # one bad message never ends the room's presence
            log.exception("room presence of live race %s: handling a %s message failed", room.race_id, kind)
        return False

    async def _on_race(self, room: PresentRoom, socket: RoomSocket, race: dict[str, Any]) -> bool:
        status = (race.get("status") or {}).get("value") if isinstance(race.get("status"), dict) else None
        first = room.race_status is None
        room.race_status = status
        if isinstance(race.get("info_bot"), str):
            room.info_bot = race["info_bot"]
        if race.get("auto_start") is True:
            room.start_mode = "auto"  # the room as it was opened decides (RaceTime.gg starts it), not today's profile
        if status in OVER:
            return True  # the poller records the end; nothing more to say here
        await self._reveal_seed(room)
        if first:
            await self._send_once(room, socket, "pinned", await self._pinned_text(room), pinned=True)
        entrants, ready = {}, 0
        for entrant in race.get("entrants") or []:
            user = entrant.get("user") if isinstance(entrant, dict) else None
            state = (entrant.get("status") or {}).get("value") if isinstance(entrant, dict) else None
            if isinstance(user, dict) and isinstance(user.get("id"), str) and state in JOINED:
                entrants[user["id"]] = str(user.get("full_name") or user.get("name") or user["id"])
                ready += state == "ready"
        room.entrants, room.ready = entrants, ready
        joined = [racetime_id for racetime_id in entrants if racetime_id not in room.verdicts]
        if joined:  # those just joined, at once; everyone again each cycle (a link made meanwhile)
            await self._check_entrants(room, joined)
        return False

    async def _on_chat(self, room: PresentRoom, socket: RoomSocket, chat: dict[str, Any]) -> None:
        if chat.get("is_bot") or chat.get("is_system") or chat.get("is_dm"):
            return
        user, text, message_id = chat.get("user"), chat.get("message_plain") or chat.get("message"), chat.get("id")
        if not isinstance(user, dict) or not isinstance(user.get("id"), str) or not isinstance(text, str):
            return
        if not isinstance(message_id, str):
            return
        words = text.strip().split()
        if not words:
            return
        command = words[0].lower()
        guid = stable_guid(room.marker, "reply", message_id)
        if command == "!eligible":
            verdicts = await self._verdicts(room, [user["id"]])
            reason = verdicts[user["id"]]
            await socket.message(self._verdict_text(reason), guid=guid, direct_to=user["id"])
        elif command == "!status":
            await socket.message(await self._status_text(room), guid=guid)

    # ---- eligibility -----------------------------------------------------------------------------------------
    async def _check_entrants(self, room: PresentRoom, racetime_ids: list[str] | None = None) -> None:
        verdicts = await self._verdicts(room, list(room.entrants) if racetime_ids is None else racetime_ids)
        socket = room.socket
        if socket is None:
            return
        for racetime_id, reason in verdicts.items():
            before = room.verdicts.get(racetime_id, "unknown")
            room.verdicts[racetime_id] = reason
            if before == reason and racetime_id in room.told:
                continue  # nothing new for them, and this process already made sure they were told
            room.told.add(racetime_id)
            if reason is not None:
                await self._send_once(
                    room, socket, f"warn:{racetime_id}:{reason}"[:100], self._verdict_text(reason), to=racetime_id
                )
            elif before not in (None, "unknown") or await self._was_warned(room, racetime_id):
                await self._send_once(room, socket, f"ok:{racetime_id}", self._verdict_text(None), to=racetime_id)

    async def _verdicts(self, room: PresentRoom, racetime_ids: list[str]) -> dict[str, str | None]:
        """Each entrant's reason not to count (None: the run counts), as the recording will judge it."""
        async with self.db.read() as session:
            race = await session.get(LiveRace, room.race_id)
            if race is None:
                return {}
            tournament = await session.get(Tournament, race.tournament_id)
            pool = await session.get(Pool, race.pool_id)
            assert tournament is not None and pool is not None
            rows = await session.execute(
                select(Player.id, EFFECTIVE_RACETIME_ID)
                .join(GuildPlayer, roster_entry_of(race.guild_id))
                .where(or_(Player.racetime_id.in_(racetime_ids), GuildPlayer.racetime_id.in_(racetime_ids)))
            )
            players = {racetime_id: player_id for player_id, racetime_id in rows.all() if racetime_id in racetime_ids}
            report = await race_eligibility(session, race, tournament, pool, player_ids=list(players.values()))
        return {
            racetime_id: (report.reason_for(players[racetime_id]) if racetime_id in players else NOT_LINKED)
            for racetime_id in racetime_ids
        }

    @staticmethod
    def _verdict_text(reason: str | None) -> str:
        if reason is None:
            return "Startline: your run in this race counts for the tournament."
        return f"Startline: your run in this race will NOT count for the tournament: {reason}."

    async def _facts(self, room: PresentRoom) -> RoomFacts | None:
        async with self.db.read() as session:
            row = (
                await session.execute(
                    select(Tournament.name, Pool.name, LiveRace.scheduled_at, Tournament.active)
                    .join(Tournament, Tournament.id == LiveRace.tournament_id)
                    .join(Pool, Pool.id == LiveRace.pool_id)
                    .where(LiveRace.id == room.race_id)
                )
            ).first()
        return RoomFacts(row[0], row[1], row[2], bool(row[3])) if row is not None else None

    async def _pinned_text(self, room: PresentRoom) -> str:
        facts = await self._facts(room)
        if facts is None:
            return "Startline follows this race."
        counts = (
            "Runs of linked, eligible entrants count for the tournament; type !eligible to check yours, !status for "
            "the race."
            if facts.counts
            else "The tournament is not active: no run counts."
        )
        return (
            f"Startline live race for {facts.tournament} – {facts.pool}, starting {facts.scheduled_at:%Y-%m-%d %H:%M} "
            f"UTC. {counts}"
        )

    async def _status_text(self, room: PresentRoom) -> str:
        facts = await self._facts(room)
        if facts is None:
            return "Startline: this race is no longer scheduled."
        counted = sum(1 for racetime_id in room.entrants if room.verdicts.get(racetime_id, "") is None)
        return (
            f"Startline: {facts.tournament} – {facts.pool}, starts {facts.scheduled_at:%Y-%m-%d %H:%M} UTC; "
            f"{counted} of {len(room.entrants)} entrants count; "
            + SEED_POLICIES[room.seed_reveal].format(minutes=room.seed_minutes)
            + (" (shown)" if room.seed_reveal != "at_open" and room.revealed else "")
            + (
                f"; Startline starts it at its time once {room.min_ready} are ready."
                if room.start_mode == "scheduled"
                else "."
            )
        )

    # ---- exactly once ----------------------------------------------------------------------------------------
    async def _was_warned(self, room: PresentRoom, racetime_id: str) -> bool:
        async with self.db.read() as session:
            found = await session.scalar(
                select(RoomMessage.id).where(
                    RoomMessage.live_race_id == room.race_id,
                    RoomMessage.key.like(f"warn:{racetime_id}:%"),
                    RoomMessage.sent_at.is_not(None),
                )
            )
        return found is not None

    async def _send_once(
        self,
        room: PresentRoom,
        socket: RoomSocket,
        key: str,
        text: str,
        *,
        to: str | None = None,
        pinned: bool = False,
    ) -> None:
        """Send a message the room gets once: recorded first, sent with a guid of its own, then marked sent."""
        try:
            guid = await self._record(room, key)
        except IntegrityError:  # another process recorded it this instant: it sends it, with the same guid
            return
        if guid is None:
            return
        if await socket.message(text, guid=guid, direct_to=to, pinned=pinned):
            async with self.db.transaction() as session:
                await session.execute(
                    update(RoomMessage)
                    .where(RoomMessage.live_race_id == room.race_id, RoomMessage.key == key)
                    .values(sent_at=self.clock())
                )

    async def _record(self, room: PresentRoom, key: str) -> str | None:
        """The message's guid, its row made if needed; None when it was sent already."""
        async with self.db.transaction() as session:
            row = await session.scalar(
                select(RoomMessage).where(RoomMessage.live_race_id == room.race_id, RoomMessage.key == key)
            )
            if row is None:
                row = RoomMessage(
                    live_race_id=room.race_id, key=key, guid=stable_guid(room.marker, key), created_at=self.clock()
                )
                session.add(row)
            return row.guid if row.sent_at is None else None
