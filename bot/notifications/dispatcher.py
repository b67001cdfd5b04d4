"""The notification dispatcher: claims due outbox rows, delivers them, records every outcome.

Safe with several processes: rows are claimed with a compare-and-set update that stamps a `claim_id` and a
lease (`claimed_until`); only rows that are due and unclaimed (or whose lease ran out: a crashed process) can be
claimed. The lease is renewed while a batch is being sent, and a row is never sent once its lease could have
run out, so two processes never send the same row.

A message that reached Discord but whose outcome was never written (the process died in between) is sent again
once its lease runs out, with the same nonce (`message_nonce`): Discord creates one message per nonce within a
few minutes, so the player still gets it once.

A row that went stale while it waited (its type's rule, `EventSpec.stale_reason`: a room-open DM once the race
started, …) is not sent: when its batch is claimed, the races of the batch are read in one query, and a stale row
ends `expired` with the reason in `error` and one audit entry per race (`notification.expire`). Except a row an
earlier attempt may have delivered (`maybe_delivered`: its claim lapsed mid-send, or Discord's answer was lost): it
is sent again with its nonce, so the log never says `expired` for a message the player got.

Outcomes: success → `sent`; DMs closed → `failed` and the player is marked dm_blocked (their later DMs are
`skipped` until they use the bot again); rate limits, Discord server errors and network errors → `retrying`
with exponential backoff and jitter, then `failed` after `max_retries`; anything else Discord refuses →
`failed` with the reason. A DM to a player who left the row's guild (or was banned) since it was queued →
`skipped`, and so is one to a player who turned every DM of that guild off (the DM's "No more DMs" button). Without
a delivery (no gateway) rows simply wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, func, or_, select, update

from bot import metrics
from bot.actors import Actor
from bot.clock import SYSTEM_CLOCK
from bot.notifications.delivery import (
    Delivery,
    DeliveryError,
    ManageEventsMissing,
    MessageGone,
    PermanentDeliveryError,
    RecipientUnreachable,
    ScheduledEventGone,
    ScheduledEventRef,
    TransientDeliveryError,
)
from bot.notifications.message import NotificationMessage
from bot.notifications.render import render
from bot.services import audit
from bot.services import scheduled_events as sevents
from bot.services.common import conflict_ignoring_insert
from bot.services.notification_outbox import channel_dedupe_key, edit_dedupe_key_prefix
from bot.settings import Settings
from db.models import (
    SCHEDULED_EVENTS_BLOCKED_ALERT,
    AnnouncementPost,
    EventType,
    GuildPlayer,
    GuildSettings,
    LiveRace,
    Notification,
    NotificationKind,
    NotificationStatus,
    Player,
    RaceScheduledEvent,
    RaceStatus,
    Tournament,
    spec_of,
)
from db.session import Database

log = logging.getLogger(__name__)

DUE_STATUSES = (NotificationStatus.PENDING, NotificationStatus.RETRYING)
FLUSH_INTERVAL_SECONDS = 0.5
# A row is not sent when less than this share of its lease is left (clock skew between processes).
LEASE_SAFETY = 0.2
# How long an edit of (or a reply to) a living announcement waits for the announcement itself to be posted.
POST_WAIT_SECONDS = 5.0
SUPERSEDED_REASON = "Skipped: a later edit of the announcement shows the race as it is now"
EVENT_SUPERSEDED_REASON = "Skipped: a later step of the race reached its scheduled event first (it shows the race now)"
WAITING_REASON = "Waiting for the race's announcement to be posted first"
BLOCKED_REASON = "Skipped: this player does not accept DMs from the bot (dm_blocked until they use the bot again)"
LEFT_REASON = "Skipped: the player left this server (or was banned) after this message was queued"
DMS_OFF_REASON = "Skipped: the player turned off every DM from this server (No more DMs) after it was queued"
DISPATCHER = Actor.system("notification dispatcher")

_notifications = Notification.__table__
_players = Player.__table__


def message_nonce(row_id: int) -> str:
    """The same for every attempt at one outbox row, so Discord never creates its message twice."""
    return f"startline-{row_id}"


@dataclass(frozen=True, slots=True)
class ClaimedRow:
    id: int
    kind: NotificationKind
    payload: dict[str, Any]
    attempts: int
    channel_id: int | None
    player_id: int | None
    discord_user_id: int | None
    dm_channel_id: int | None
    dm_blocked: bool
    left_guild: bool = False  # the player left the row's guild (or was banned) since it was queued
    dms_off: bool = False  # the player turned every DM of the row's guild off since it was queued
    guild_id: int = 0
    event_type: EventType | None = None
    live_race_id: int | None = None
    race_status: RaceStatus | None = None  # when claimed; None: the race was deleted
    maybe_delivered: bool = False  # an earlier attempt may have reached Discord
    # Why it must not be sent (its type's staleness rule against `race_status`), or None.
    stale_reason: str | None = None
    # An edit of (or a reply to) the race's living announcement: its message id, or whether its post is still on
    # its way (the row then waits for it); an edit that a later edit of the same post replaces is not sent.
    post_message_id: int | None = None
    post_waiting: bool = False
    superseded: bool = False

    @property
    def living(self) -> bool:
        """An edit of the living announcement, or a reply to it."""
        return self.kind is NotificationKind.EDIT or bool(self.payload.get("reply"))

    @property
    def race_id(self) -> int | None:
        """Its race, also once the race was deleted (the outbox row then lost the link; the payload keeps it)."""
        return self.live_race_id if self.live_race_id is not None else self.payload.get("race", {}).get("id")


@dataclass(slots=True)
class Outcome:
    row: ClaimedRow
    status: NotificationStatus
    attempts: int
    error: str | None = None
    next_attempt_at: datetime | None = None
    sent_at: datetime | None = None
    new_dm_channel_id: int | None = None
    block_player: bool = False
    maybe_delivered: bool = False  # this attempt may have reached Discord although it failed
    # The living announcement this row posted (or posted again): its message id, and whether it is a re-creation.
    post_message_id: int | None = None
    post_recreated: bool = False
    # The race's Discord Scheduled Event as this row left it; or the guild lacks Manage Events.
    scheduled_event: ScheduledEventRef | None = None
    events_blocked: bool = False


@dataclass
class DispatchReport:
    sent: int = 0
    failed: int = 0
    retrying: int = 0
    skipped: int = 0
    expired: int = 0
    released: int = 0

    def count(self, outcome: Outcome) -> None:
        name = outcome.status.value
        setattr(self, name, getattr(self, name) + 1)

    @property
    def handled(self) -> int:
        return self.sent + self.failed + self.retrying + self.skipped + self.expired


@dataclass
class _Batch:
    claim_id: str
    rows: list[ClaimedRow]
    lease_deadline: float  # monotonic
    outcomes: list[Outcome] = field(default_factory=list)


class NotificationDispatcher:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        delivery: Callable[[], Delivery | None],
        *,
        clock: Callable[[], datetime] = SYSTEM_CLOCK,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.db = db
        self.settings = settings.notifications
        self._delivery = delivery
        self._clock = clock
        self._jitter = jitter
        self._stopping = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._blocked_players: set[int] = set()
        # Scheduled events: one row of a guild at a time, what this process last made of each race's event, and
        # the guilds found lacking Manage Events in this run (their other rows are not tried: no retry storm).
        self._event_locks: dict[int, asyncio.Lock] = {}
        self._events: dict[int, ScheduledEventRef] = {}
        self._events_blocked: set[int] = set()

    # ---- the job -------------------------------------------------------------------------------------
    async def run_once(self) -> DispatchReport:
        """Deliver every due row, batch by batch, until none is left (or the gateway goes away)."""
        report = DispatchReport()
        self._idle.clear()
        self._blocked_players.clear()
        self._events_blocked.clear()
        try:
            while not self._stopping:
                delivery = self._delivery()
                if delivery is None or not delivery.available:
                    break
                # A short batch does not mean the end: on PostgreSQL another process may hold the rest for a
                # moment. Only an empty claim does.
                batch = await self._claim()
                if not batch.rows:
                    break
                await self._deliver(delivery, batch, report)
        finally:
            self._idle.set()
        if report.handled or report.released:
            log.info("notifications: %s", report)
        return report

    async def close(self) -> None:
        """Stop taking rows, let the messages being sent finish and record them."""
        self._stopping = True
        await self._idle.wait()

    # ---- claiming --------------------------------------------------------------------------------------
    async def _claim(self) -> _Batch:
        claim_id = uuid.uuid4().hex
        now = self._clock()
        lease = self.settings.claim_lease_seconds
        claimable = (
            Notification.status.in_(DUE_STATUSES),
            Notification.next_attempt_at <= now,
            or_(Notification.claimed_until.is_(None), Notification.claimed_until < now),
        )
        due = (
            select(Notification.id)
            .where(*claimable)
            .order_by(Notification.next_attempt_at, Notification.id)
            .limit(self.settings.batch_size)
            # PostgreSQL: pass over rows another process is claiming right now and take the next ones (SQLite
            # has no row locks and runs one writer at a time anyway; the clause is not rendered there).
            .with_for_update(skip_locked=True)
        )
        async with self.db.transaction() as session:
            # The ids first, then the update: PostgreSQL may run an `IN (SELECT … LIMIT n)` subquery more than
            # once within one UPDATE, claiming more than n rows.
            ids = list((await session.scalars(due)).all())
            if not ids:
                return _Batch(claim_id, [], time.monotonic())
            # Compare-and-set: the conditions are checked again, so a row another process claimed meanwhile
            # is left alone.
            await session.execute(
                update(Notification)
                .where(Notification.id.in_(ids), *claimable)
                .values(
                    claim_id=claim_id,
                    claimed_until=now + timedelta(seconds=lease),
                    # A lapsed claim (its process died mid-batch) may have sent the row: it must not expire.
                    maybe_delivered=or_(Notification.maybe_delivered, Notification.claimed_until.is_not(None)),
                )
                .execution_options(synchronize_session=False)
            )
            result = await session.execute(
                select(
                    Notification.id,
                    Notification.kind,
                    Notification.payload,
                    Notification.attempts,
                    Notification.channel_id,
                    Notification.player_id,
                    Player.discord_user_id,
                    Player.dm_channel_id,
                    Player.dm_blocked,
                    GuildPlayer.left_at,
                    Notification.guild_id,
                    Notification.event_type,
                    Notification.live_race_id,
                    Notification.maybe_delivered,
                    GuildPlayer.dms_off_at,
                )
                .outerjoin(Player, Player.id == Notification.player_id)
                .outerjoin(
                    GuildPlayer,
                    and_(
                        GuildPlayer.player_id == Notification.player_id, GuildPlayer.guild_id == Notification.guild_id
                    ),
                )
                .where(Notification.claim_id == claim_id)
                .order_by(Notification.next_attempt_at, Notification.id)
            )
            claimed = result.all()
            statuses = await self._race_statuses(session, {row.live_race_id for row in claimed})
            rows = [
                ClaimedRow(
                    *row[:8],
                    dm_blocked=bool(row[8]),
                    left_guild=row[9] is not None,
                    dms_off=row[14] is not None,
                    guild_id=row[10],
                    event_type=row[11],
                    live_race_id=row[12],
                    race_status=statuses.get(row[12]),
                    maybe_delivered=bool(row[13]),
                    # Possibly delivered already: sent again with its nonce rather than reported expired.
                    # A scheduled event follows its race to the end (or its deletion): it never goes stale.
                    stale_reason=None
                    if row[13] or row[1] is NotificationKind.SCHEDULED_EVENT
                    else self._stale_reason(row[11], row[2], statuses.get(row[12])),
                )
                for row in claimed
            ]
            rows = await self._living_posts(session, rows, statuses)
        return _Batch(claim_id, rows, time.monotonic() + lease * (1 - LEASE_SAFETY))

    @staticmethod
    async def _living_posts(session, rows: list[ClaimedRow], statuses: dict[int, RaceStatus]) -> list[ClaimedRow]:
        """Fill in, for each edit of (and reply to) a living announcement, the announcement's message id, whether
        its post is still on its way, and whether a later edit of it exists (a few queries per race of the batch,
        and only for such rows)."""
        living = {(row.race_id, row.channel_id) for row in rows if row.living and row.race_id and row.channel_id}
        if not living:
            return rows
        found: dict[tuple[int, int], tuple[int | None, set[str], int]] = {}
        posts = (EventType.LIVE_RACE_SCHEDULED.value, EventType.LIVE_RACE_ROOM_OPENED.value)
        for race_id, channel_id in living:
            message_id = await session.scalar(
                select(AnnouncementPost.message_id).where(
                    AnnouncementPost.live_race_id == race_id, AnnouncementPost.channel_id == channel_id
                )
            )
            # The posts still on their way: the announcement itself, and the room-open reply, which becomes the
            # announcement when the first one never went out (it expired or failed).
            waiting: set[str] = set()
            if message_id is None:
                keys = {channel_dedupe_key(event, race_id, channel_id): event for event in posts}
                due = await session.execute(
                    select(Notification.dedupe_key, Notification.maybe_delivered).where(
                        Notification.dedupe_key.in_(list(keys)), Notification.status.in_(DUE_STATUSES)
                    )
                )
                # A post that will expire unsent (its rule, the race as it is now) is not worth waiting for.
                status = statuses.get(race_id)
                waiting = {
                    keys[key]
                    for key, maybe_delivered in due
                    if maybe_delivered or EventType(keys[key]).spec.stale_reason(status) is None
                }
            latest_edit = await session.scalar(
                select(func.max(Notification.id)).where(
                    Notification.kind == NotificationKind.EDIT,
                    Notification.channel_id == channel_id,
                    Notification.dedupe_key.like(edit_dedupe_key_prefix(race_id, channel_id) + "%"),
                )
            )
            found[(race_id, channel_id)] = (message_id, waiting, latest_edit or 0)
        result = []
        for row in rows:
            post = found.get((row.race_id, row.channel_id)) if row.living else None  # type: ignore[arg-type]
            if post is not None:
                message_id, waiting, latest_edit = post
                edit = row.kind is NotificationKind.EDIT
                superseded = edit and row.id < latest_edit
                # An edit waits for either post; the reply only for the announcement it answers.
                waits = bool(waiting) if edit else EventType.LIVE_RACE_SCHEDULED.value in waiting
                row = dataclasses.replace(row, post_message_id=message_id, post_waiting=waits, superseded=superseded)
            result.append(row)
        return result

    @staticmethod
    async def _race_statuses(session, race_ids: set[int | None]) -> dict[int, RaceStatus]:
        """The current status of the races of a batch, in one query (a deleted race is missing)."""
        ids = [race_id for race_id in race_ids if race_id is not None]
        if not ids:
            return {}
        return dict((await session.execute(select(LiveRace.id, LiveRace.status).where(LiveRace.id.in_(ids)))).all())

    @staticmethod
    def _stale_reason(event_type: EventType | None, payload: dict[str, Any], status: RaceStatus | None) -> str | None:
        spec = spec_of(event_type, payload)
        return spec.stale_reason(status) if spec is not None else None

    # ---- sending ---------------------------------------------------------------------------------------
    async def _deliver(self, delivery: Delivery, batch: _Batch, report: DispatchReport) -> None:
        queue: asyncio.Queue[ClaimedRow] = asyncio.Queue()
        for row in batch.rows:
            if row.superseded:
                batch.outcomes.append(Outcome(row, NotificationStatus.SKIPPED, row.attempts, error=SUPERSEDED_REASON))
            elif row.stale_reason is not None:
                batch.outcomes.append(Outcome(row, NotificationStatus.EXPIRED, row.attempts, error=row.stale_reason))
            else:
                queue.put_nowait(row)

        async def worker() -> None:
            while not queue.empty():
                if self._stopping or not delivery.available or time.monotonic() >= batch.lease_deadline:
                    return
                outcome = await self._send(delivery, queue.get_nowait())
                batch.outcomes.append(outcome)  # looked up after the await: a flush may have swapped the list

        sending_done = asyncio.Event()
        flusher = asyncio.create_task(self._flush_periodically(batch, report, sending_done))
        try:
            workers = [asyncio.create_task(worker()) for _ in range(self.settings.dispatch_concurrency)]
            await asyncio.gather(*workers)
        finally:
            # Never cancel a flush half-way: the outcomes it holds would be lost and their rows sent again.
            sending_done.set()
            await flusher
            await self._flush(batch, report, final=True)

    async def _send(self, delivery: Delivery, row: ClaimedRow) -> Outcome:
        attempts = row.attempts + 1
        if row.kind is NotificationKind.DM and (row.dm_blocked or row.player_id in self._blocked_players):
            return Outcome(row, NotificationStatus.SKIPPED, row.attempts, error=BLOCKED_REASON)
        if row.kind is NotificationKind.DM and row.left_guild:
            return Outcome(row, NotificationStatus.SKIPPED, row.attempts, error=LEFT_REASON)
        if row.kind is NotificationKind.DM and row.dms_off:
            return Outcome(row, NotificationStatus.SKIPPED, row.attempts, error=DMS_OFF_REASON)
        if row.living and row.post_message_id is None and row.post_waiting:
            # Not an attempt: the announcement it edits or answers is not posted yet.
            next_at = self._clock() + timedelta(seconds=POST_WAIT_SECONDS)
            return Outcome(
                row, NotificationStatus.RETRYING, row.attempts, error=WAITING_REASON, next_attempt_at=next_at
            )
        if row.kind is NotificationKind.SCHEDULED_EVENT:
            return await self._sync_event(delivery, row, attempts)
        try:
            dm = row.kind is NotificationKind.DM
            message = render(row.payload, channel=not dm, guild_id=row.guild_id if dm else None)
        except (KeyError, TypeError, ValueError) as exc:
            return Outcome(row, NotificationStatus.FAILED, attempts, error=f"Could not render the message: {exc!r}")
        try:
            if row.kind is NotificationKind.DM:
                if row.discord_user_id is None:
                    raise PermanentDeliveryError("The player no longer exists")
                receipt = await delivery.send_dm(
                    row.discord_user_id, message, dm_channel_id=row.dm_channel_id, nonce=message_nonce(row.id)
                )
                new_channel = receipt.channel_id if receipt.channel_id != row.dm_channel_id else None
                return Outcome(
                    row, NotificationStatus.SENT, attempts, sent_at=self._clock(), new_dm_channel_id=new_channel
                )
            if row.channel_id is None:
                raise PermanentDeliveryError("No channel to post in")
            if row.kind is NotificationKind.EDIT:
                return await self._edit_post(delivery, row, message, attempts)
            reply_to = row.post_message_id if row.payload.get("reply") else None
            message_id = await delivery.send_channel(
                row.channel_id, message, nonce=message_nonce(row.id), reply_to=reply_to
            )
            # The announcement; or a room-open reply with nothing to answer (the announcement never went out),
            # which becomes the announcement later steps edit.
            living = message_id is not None and (
                bool(row.payload.get("living")) or (bool(row.payload.get("reply")) and reply_to is None)
            )
            return Outcome(
                row,
                NotificationStatus.SENT,
                attempts,
                sent_at=self._clock(),
                post_message_id=message_id if living else None,
            )
        except RecipientUnreachable as exc:
            if row.player_id is not None:
                self._blocked_players.add(row.player_id)
            return Outcome(row, NotificationStatus.FAILED, attempts, error=exc.reason, block_player=True)
        except TransientDeliveryError as exc:
            return self._retry_or_fail(row, attempts, exc)
        except DeliveryError as exc:
            return Outcome(row, NotificationStatus.FAILED, attempts, error=exc.reason)
        except Exception as exc:  # a bug in an adapter must not lose the row: keep it for a later try
            log.exception("unexpected error delivering notification %s", row.id)
            return self._retry_or_fail(row, attempts, TransientDeliveryError(f"Unexpected error: {exc!r}"))

    async def _edit_post(
        self, delivery: Delivery, row: ClaimedRow, message: NotificationMessage, attempts: int
    ) -> Outcome:
        """Edit the living announcement to show the race as it is now. One that is gone (deleted by someone, or
        never posted because its post failed or expired) is posted again, once per edit, and logged; the nonce
        keeps a retry of that edit from posting it twice."""
        assert row.channel_id is not None
        if row.post_message_id is not None:
            try:
                await delivery.edit_channel_message(row.channel_id, row.post_message_id, message)
                return Outcome(row, NotificationStatus.SENT, attempts, sent_at=self._clock())
            except MessageGone:
                log.warning(
                    "the announcement of race %s (message %s in channel %s) was deleted; posting it again",
                    row.race_id,
                    row.post_message_id,
                    row.channel_id,
                )
        message_id = await delivery.send_channel(row.channel_id, message, nonce=message_nonce(row.id))
        return Outcome(
            row,
            NotificationStatus.SENT,
            attempts,
            sent_at=self._clock(),
            error="Posted the announcement anew: it had been deleted, or had never gone out",
            post_message_id=message_id,
            post_recreated=True,
        )

    # ---- Discord Scheduled Events ------------------------------------------------------------------------
    async def _sync_event(self, delivery: Delivery, row: ClaimedRow, attempts: int) -> Outcome:
        """Bring the race's scheduled event to the state in the row: create it when the race has none (after
        looking for one made before a crash, by the race's marker), else edit it, stepping its status forward
        only (1 → 2 → 3, or 1 → 4). One row of a guild at a time in this process: a race's steps keep their order
        and a guild found lacking Manage Events is not asked again."""
        state = row.payload.get("scheduled_event") or {}
        race_id = state.get("race_id")
        if not isinstance(race_id, int) or state.get("status") not in sevents.STATUS_NAMES:
            return Outcome(row, NotificationStatus.FAILED, attempts, error="Malformed scheduled event row")
        lock = self._event_locks.setdefault(row.guild_id, asyncio.Lock())
        async with lock:
            if row.guild_id in self._events_blocked or await self._guild_blocked(row.guild_id):
                return Outcome(row, NotificationStatus.SKIPPED, row.attempts, error=sevents.BLOCKED_LINE)
            try:
                ref = self._events.get(race_id) or await self._recorded_event(race_id)
                if ref is None and await self._may_have_unrecorded_event(row, race_id, state):
                    ref = await delivery.find_scheduled_event(row.guild_id, sevents.race_marker(race_id))
                if ref is not None and await self._superseded(row, race_id):
                    return Outcome(row, NotificationStatus.SKIPPED, row.attempts, error=EVENT_SUPERSEDED_REASON)
                ref, note = await self._apply_event(delivery, row.guild_id, ref, state, race_id)
            except ManageEventsMissing as exc:
                self._events_blocked.add(row.guild_id)
                log.warning("guild %s: the bot lacks Manage Events; scheduled events are blocked", row.guild_id)
                return Outcome(row, NotificationStatus.FAILED, attempts, error=exc.reason, events_blocked=True)
            except TransientDeliveryError as exc:
                return self._retry_or_fail(row, attempts, exc)
            except DeliveryError as exc:
                return Outcome(row, NotificationStatus.FAILED, attempts, error=exc.reason)
            except Exception as exc:  # a bug in an adapter must not lose the row
                log.exception("unexpected error syncing the scheduled event of race %s", race_id)
                return self._retry_or_fail(row, attempts, TransientDeliveryError(f"Unexpected error: {exc!r}"))
            if ref is None:
                return Outcome(row, NotificationStatus.SKIPPED, row.attempts, error=note)
            self._events[race_id] = ref
            return Outcome(
                row, NotificationStatus.SENT, attempts, sent_at=self._clock(), error=note, scheduled_event=ref
            )

    async def _apply_event(
        self, delivery: Delivery, guild_id: int, ref: ScheduledEventRef | None, state: dict[str, Any], race_id: int
    ) -> tuple[ScheduledEventRef | None, str | None]:
        want: int = state["status"]
        if ref is None:
            if want != sevents.SCHEDULED or state.get("removed"):
                return None, "Skipped: the race has no scheduled event to update"
            if datetime.fromisoformat(state["scheduled_start_time"]) <= self._clock():
                return None, "Skipped: the race's start passed before its scheduled event could be made"
            if (late := await self._too_late_to_create(race_id)) is not None:
                return None, late
            return await delivery.create_scheduled_event(guild_id, _event_fields(state, create=True)), None
        if ref.status in (sevents.COMPLETED, sevents.CANCELLED):
            return ref, f"Nothing to do: the scheduled event is already {sevents.STATUS_NAMES[ref.status]}"
        if state.get("removed"):  # the race was deleted: an active event can only complete
            want = sevents.COMPLETED if ref.status == sevents.ACTIVE else sevents.CANCELLED
        if want < ref.status:
            return ref, "Nothing to do: a later step already moved the scheduled event on"
        try:
            if want == sevents.SCHEDULED:
                return await delivery.edit_scheduled_event(guild_id, ref.event_id, _event_fields(state)), None
            if want == sevents.COMPLETED and ref.status == sevents.SCHEDULED:  # Discord: 1 → 2 → 3 only
                ref = await delivery.edit_scheduled_event(guild_id, ref.event_id, {"status": sevents.ACTIVE})
            fields: dict[str, Any] = {"status": want}
            if want == sevents.ACTIVE and not state.get("removed"):
                fields["entity_metadata"] = {"location": state["location"]}
            if want == ref.status:
                return ref, None
            return await delivery.edit_scheduled_event(guild_id, ref.event_id, fields), None
        except ScheduledEventGone:
            log.warning("the scheduled event of race %s was deleted in Discord", state.get("race_id"))
            if want != sevents.SCHEDULED or state.get("removed"):
                return None, "Skipped: the scheduled event was deleted in Discord"
            if (late := await self._too_late_to_create(race_id)) is not None:
                return None, late
            return await delivery.create_scheduled_event(guild_id, _event_fields(state, create=True)), (
                "Made the scheduled event anew: it had been deleted in Discord"
            )

    async def _too_late_to_create(self, race_id: int) -> str | None:
        """Why a race's event must not be made now, read right before the create: a row queued while the race was
        scheduled may reach Discord after it finished, was cancelled or deleted (an outage, a retried create whose
        cancel ran first and found no event). Made then, the event would stay scheduled for good."""
        async with self.db.read() as session:
            status = await session.scalar(select(LiveRace.status).where(LiveRace.id == race_id))
        if status is None:
            return "Skipped: the race was deleted before its scheduled event could be made"
        if status not in (RaceStatus.SCHEDULED, RaceStatus.ROOM_OPEN):
            return f"Skipped: the race was already {status.value} before its scheduled event could be made"
        return None

    async def _may_have_unrecorded_event(self, row: ClaimedRow, race_id: int, state: dict[str, Any]) -> bool:
        """Whether the race may have an event at Discord that no record names, so that it must be looked for by the
        race's marker before one is made: an earlier attempt of this row or of another of the race's rows may have
        made it (a claim that lapsed mid-send, a lost answer), another claim is sending one now, or the step makes
        none (a deleted race's record went with it). The look-up lists the guild's events, a request of the guild's
        scheduled-event bucket that grows with its events; a race none of whose rows ever reached Discord (rows that
        waited out an outage answered 503, say) has no event, and gets it made at once."""
        if row.maybe_delivered or state.get("removed") or state.get("status") != sevents.SCHEDULED:
            return True
        return await self._event_row_exists(
            race_id,
            Notification.id != row.id,
            or_(
                Notification.status == NotificationStatus.SENT,
                Notification.maybe_delivered,
                Notification.claimed_until.is_not(None),
            ),
        )

    async def _superseded(self, row: ClaimedRow, race_id: int) -> bool:
        """Whether a later row of the race (queued after this one, under the race's lock) reached Discord already:
        it carried the race as it was later, so this row, retried after an outage, must not bring the event back to
        an older start or title."""
        return await self._event_row_exists(
            race_id,
            Notification.id > row.id,
            or_(Notification.status == NotificationStatus.SENT, Notification.maybe_delivered),
        )

    async def _event_row_exists(self, race_id: int, *conditions: ColumnElement[bool]) -> bool:
        """Whether a scheduled-event row of the race meets `conditions`."""
        async with self.db.read() as session:
            found = await session.scalar(
                select(Notification.id)
                .where(
                    Notification.live_race_id == race_id,
                    Notification.kind == NotificationKind.SCHEDULED_EVENT,
                    *conditions,
                )
                .limit(1)
            )
        return found is not None

    async def _recorded_event(self, race_id: int) -> ScheduledEventRef | None:
        async with self.db.read() as session:
            row = (
                await session.execute(
                    select(RaceScheduledEvent.event_id, RaceScheduledEvent.status).where(
                        RaceScheduledEvent.live_race_id == race_id
                    )
                )
            ).first()
        return ScheduledEventRef(int(row.event_id), int(row.status)) if row is not None else None

    async def _guild_blocked(self, guild_id: int) -> bool:
        async with self.db.read() as session:
            blocked = await session.scalar(
                select(GuildSettings.scheduled_events_blocked_at).where(GuildSettings.guild_id == guild_id)
            )
        return blocked is not None

    def _retry_or_fail(self, row: ClaimedRow, attempts: int, exc: TransientDeliveryError) -> Outcome:
        if attempts > self.settings.max_retries:
            reason = f"Gave up after {attempts} attempts: {exc.reason}"
            return Outcome(row, NotificationStatus.FAILED, attempts, error=reason, maybe_delivered=exc.maybe_delivered)
        delay = self.backoff_seconds(attempts)
        if exc.retry_after is not None:
            delay = max(delay, exc.retry_after)
        next_at = self._clock() + timedelta(seconds=delay)
        return Outcome(
            row,
            NotificationStatus.RETRYING,
            attempts,
            error=exc.reason,
            next_attempt_at=next_at,
            maybe_delivered=exc.maybe_delivered,
        )

    def backoff_seconds(self, attempts: int) -> float:
        """Exponential in the number of attempts made, capped, with jitter in its upper half."""
        ceiling = min(self.settings.backoff_max_seconds, self.settings.backoff_base_seconds * 2 ** (attempts - 1))
        return ceiling * (0.5 + 0.5 * self._jitter())

    # ---- recording -------------------------------------------------------------------------------------
    async def _flush_periodically(self, batch: _Batch, report: DispatchReport, done: asyncio.Event) -> None:
        while not done.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), FLUSH_INTERVAL_SECONDS)
            if done.is_set():
                return
            try:
                await self._flush(batch, report)
            except Exception:  # the outcomes stay queued for the final flush
                log.exception("could not record notification outcomes; will try again")

    async def _flush(self, batch: _Batch, report: DispatchReport, *, final: bool = False) -> None:
        """Write the outcomes gathered so far; renew the lease of the rest, or release it at the end."""
        outcomes, batch.outcomes = batch.outcomes, []
        lease = self.settings.claim_lease_seconds
        lease_half_gone = time.monotonic() > batch.lease_deadline - lease / 2
        if not outcomes and not final and not lease_half_gone:
            return
        now = self._clock()
        try:
            await self._write(batch, outcomes, now, report, final=final)
        except BaseException:
            batch.outcomes[:0] = outcomes
            raise
        if not final:
            batch.lease_deadline = time.monotonic() + lease * (1 - LEASE_SAFETY)
        for outcome in outcomes:
            report.count(outcome)
            metrics.observe_notification(outcome.row.kind.value, outcome.status.value)

    async def _write(
        self, batch: _Batch, outcomes: list[Outcome], now: datetime, report: DispatchReport, *, final: bool
    ) -> None:
        lease = self.settings.claim_lease_seconds
        async with self.db.transaction() as session:
            if outcomes:
                await session.execute(
                    update(_notifications)
                    .where(_notifications.c.id == bindparam("row_id"), _notifications.c.claim_id == batch.claim_id)
                    .values(
                        status=bindparam("new_status"),
                        attempts=bindparam("new_attempts"),
                        error=bindparam("new_error"),
                        next_attempt_at=bindparam("new_next_attempt_at"),
                        sent_at=bindparam("new_sent_at"),
                        maybe_delivered=bindparam("new_maybe_delivered"),
                        claim_id=None,
                        claimed_until=None,
                    ),
                    [self._outcome_params(outcome, now) for outcome in outcomes],
                )
                await self._update_players(session, outcomes, now)
                await self._record_posts(session, outcomes, now)
                await self._record_scheduled_events(session, outcomes, now)
                await self._audit_expired(session, outcomes)
            remaining = (
                update(Notification)
                .where(Notification.claim_id == batch.claim_id, Notification.status.in_(DUE_STATUSES))
                .execution_options(synchronize_session=False)
            )
            if final:
                result = await session.execute(remaining.values(claim_id=None, claimed_until=None))
                report.released += result.rowcount or 0
            else:
                await session.execute(remaining.values(claimed_until=now + timedelta(seconds=lease)))

    @staticmethod
    def _outcome_params(outcome: Outcome, now: datetime) -> dict[str, Any]:
        return {
            "row_id": outcome.row.id,
            "new_status": outcome.status,
            "new_attempts": outcome.attempts,
            "new_error": outcome.error[:2000] if outcome.error else None,
            "new_next_attempt_at": outcome.next_attempt_at or now,
            "new_sent_at": outcome.sent_at,
            "new_maybe_delivered": outcome.row.maybe_delivered or outcome.maybe_delivered,
        }

    @staticmethod
    async def _audit_expired(session, outcomes: list[Outcome]) -> None:
        """One audit entry per race for the messages that expired: how many, of which types, and why."""
        by_race: dict[tuple[int, int | None], tuple[str, Counter[str]]] = {}
        for outcome in outcomes:
            row = outcome.row
            spec = spec_of(row.event_type, row.payload)
            if outcome.status is NotificationStatus.EXPIRED and spec is not None:
                status = row.race_status.value if row.race_status is not None else "deleted"
                by_race.setdefault((row.guild_id, row.race_id), (status, Counter()))[1][spec.name] += 1
        for (guild_id, race_id), (status, types) in by_race.items():
            await audit.record(
                session,
                guild_id=guild_id,
                actor=DISPATCHER,
                action="notification.expire",
                target_type="live_race",
                target_id=race_id,
                details={"expired": types.total(), "race_status": status, "types": dict(types)},
            )

    @staticmethod
    async def _record_posts(session, outcomes: list[Outcome], now: datetime) -> None:
        """Keep each living announcement's message id, in the transaction that records its post as sent."""
        for outcome in outcomes:
            row = outcome.row
            if outcome.post_message_id is None or row.race_id is None or row.channel_id is None:
                continue
            await session.execute(
                conflict_ignoring_insert(session, AnnouncementPost.__table__).on_conflict_do_nothing(
                    index_elements=["live_race_id", "channel_id"]
                ),
                [
                    {
                        "guild_id": row.guild_id,
                        "live_race_id": row.race_id,
                        "channel_id": row.channel_id,
                        "message_id": outcome.post_message_id,
                        "recreated": 0,
                        "created_at": now,
                        "updated_at": now,
                    }
                ],
            )
            values: dict[str, Any] = {"message_id": outcome.post_message_id, "updated_at": now}
            if outcome.post_recreated:
                values["recreated"] = AnnouncementPost.recreated + 1
            await session.execute(
                update(AnnouncementPost)
                .where(AnnouncementPost.live_race_id == row.race_id, AnnouncementPost.channel_id == row.channel_id)
                .values(**values)
                .execution_options(synchronize_session=False)
            )

    @staticmethod
    async def _record_scheduled_events(session, outcomes: list[Outcome], now: datetime) -> None:
        """Keep each race's scheduled event id and status; block a guild found lacking Manage Events, and tell its
        moderators once: the alert is queued only by the write that sets the block."""
        for outcome in outcomes:
            ref, row = outcome.scheduled_event, outcome.row
            race_id = row.payload.get("scheduled_event", {}).get("race_id")
            if ref is None or race_id is None:
                continue
            values = {"guild_id": row.guild_id, "event_id": ref.event_id, "status": ref.status, "updated_at": now}
            await session.execute(
                conflict_ignoring_insert(session, RaceScheduledEvent.__table__).on_conflict_do_nothing(
                    index_elements=["live_race_id"]
                ),
                [{**values, "live_race_id": race_id, "created_at": now}],
            )
            await session.execute(
                update(RaceScheduledEvent)
                .where(RaceScheduledEvent.live_race_id == race_id)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
        for guild_id in {o.row.guild_id for o in outcomes if o.events_blocked}:
            blocked = await session.execute(
                update(GuildSettings)
                .where(GuildSettings.guild_id == guild_id, GuildSettings.scheduled_events_blocked_at.is_(None))
                .values(scheduled_events_blocked_at=now)
                .execution_options(synchronize_session=False)
            )
            if not blocked.rowcount:
                continue  # blocked already (by another row or process): its moderators were told
            await _queue_blocked_alert(session, guild_id, outcomes, now)

    @staticmethod
    async def _update_players(session, outcomes: list[Outcome], now: datetime) -> None:
        blocked = {o.row.player_id for o in outcomes if o.block_player and o.row.player_id is not None}
        if blocked:
            await session.execute(
                update(Player)
                .where(Player.id.in_(blocked))
                .values(dm_blocked=True, dm_blocked_at=now)
                .execution_options(synchronize_session=False)
            )
        channels = [
            {"pid": o.row.player_id, "channel": o.new_dm_channel_id}
            for o in outcomes
            if o.new_dm_channel_id is not None and o.row.player_id is not None
        ]
        if channels:
            await session.execute(
                update(_players).where(_players.c.id == bindparam("pid")).values(dm_channel_id=bindparam("channel")),
                channels,
            )


def _event_fields(state: dict[str, Any], *, create: bool = False) -> dict[str, Any]:
    """Discord's fields of an external event (entity_type 3, guild-only privacy 2) from an outbox row's state."""
    fields: dict[str, Any] = {
        "name": state["name"],
        "description": state["description"],
        "entity_metadata": {"location": state["location"]},
        "scheduled_start_time": state["scheduled_start_time"],
        "scheduled_end_time": state["scheduled_end_time"],
    }
    if create:
        fields.update(entity_type=3, privacy_level=2)
    return fields


async def _queue_blocked_alert(session, guild_id: int, outcomes: list[Outcome], now: datetime) -> None:
    """The one line to the moderator channel (else the announcement channel) that scheduled events are blocked."""
    guild = await session.get(GuildSettings, guild_id)
    channel_id = guild.moderator_channel_id or guild.announcement_channel_id if guild else None
    if channel_id is None:
        race_ids = [o.row.live_race_id for o in outcomes if o.row.guild_id == guild_id and o.row.live_race_id]
        if race_ids:
            channel_id = await session.scalar(
                select(Tournament.announcement_channel_id)
                .join(LiveRace, LiveRace.tournament_id == Tournament.id)
                .where(LiveRace.id == race_ids[0])
            )
    if channel_id is None:
        log.warning("guild %s: scheduled events blocked and no moderator channel to say so", guild_id)
        return
    payload = {
        "v": 1,
        "event": SCHEDULED_EVENTS_BLOCKED_ALERT.name,
        "occurred_at": int(now.timestamp()),
        "race": {"id": None},
        "alert": {"error": sevents.BLOCKED_LINE},
        "role_id": None,
    }
    key = f"channel:{SCHEDULED_EVENTS_BLOCKED_ALERT.name}:guild:{guild_id}:{int(now.timestamp() * 1_000_000)}"
    await session.execute(
        conflict_ignoring_insert(session, _notifications).on_conflict_do_nothing(index_elements=["dedupe_key"]),
        [
            {
                "kind": NotificationKind.CHANNEL,
                "event_type": None,
                "guild_id": guild_id,
                "player_id": None,
                "channel_id": channel_id,
                "live_race_id": None,
                "payload": payload,
                "dedupe_key": key,
                "status": NotificationStatus.PENDING,
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
        ],
    )
