"""The dispatcher against an in-memory delivery: claiming, outcomes, backoff, dm_blocked, resend, the log."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from bot import metrics
from bot.errors import NotFound, ValidationFailed
from bot.events import LiveRaceCancelled, LiveRaceRoomOpened, LiveRaceScheduled, LiveRaceStarted
from bot.notifications.delivery import PermanentDeliveryError, RecipientUnreachable, TransientDeliveryError
from bot.notifications.dispatcher import BLOCKED_REASON, NotificationDispatcher
from bot.services.notifications import ResendReport
from db.models import LiveRace, Notification, NotificationKind, NotificationStatus, Player, RaceStatus
from db.session import Database
from db.types import utcnow
from tests.conftest import GUILD, MODERATOR, OTHER_GUILD, make_settings
from tests.fakes.notifications import RecordingDelivery, add_player, make_world, publish, subscribe

ALICE, BOB = 601, 602


class Clock:
    """A frozen instant (the real time when the test began) plus however far the test moved it forward: the whole
    application reads it (the outbox's rows and the dispatcher), so a loaded machine cannot shift a computed delay."""

    def __init__(self) -> None:
        self.start = utcnow()
        self.offset = timedelta()

    def __call__(self):
        return self.start + self.offset

    @property
    def now(self):
        return self()

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


@pytest.fixture
def clock(services):
    clock = Clock()
    services.clock.source = clock  # one clock for the application, as in a process
    return clock


@pytest.fixture
def delivery():
    return RecordingDelivery()


@pytest.fixture
def dispatcher(services, delivery, clock):
    return NotificationDispatcher(services.db, services.settings, lambda: delivery, clock=clock, jitter=lambda: 1.0)


@pytest.fixture
async def world(services):
    world = await make_world(services, announcement_channel_id=42, announcement_role_id=43)
    for uid, name in ((ALICE, "alice"), (BOB, "bob")):
        await add_player(services, uid, name)
        await subscribe(services, uid)
    return world


async def rows(services, **where) -> list[Notification]:
    query = select(Notification).order_by(Notification.id)
    for key, value in where.items():
        query = query.where(getattr(Notification, key) == value)
    async with services.db.read() as session:
        return list((await session.scalars(query)).all())


async def player(services, uid: int) -> Player:
    return await services.players.find(uid)


async def test_due_rows_are_sent_once_and_recorded(services, world, delivery, dispatcher):
    await publish(services, world.event(LiveRaceScheduled))
    report = await dispatcher.run_once()
    assert (report.sent, report.failed) == (3, 0)
    assert sorted(delivery.dm_recipients()) == [ALICE, BOB]
    [(channel_id, post)] = delivery.posts
    assert (channel_id, post.content, post.mention_role_ids) == (42, "<@&43>", (43,))
    assert all(r.status is NotificationStatus.SENT and r.attempts == 1 and r.sent_at for r in await rows(services))
    assert all(r.claim_id is None and r.claimed_until is None for r in await rows(services))
    assert (await dispatcher.run_once()).handled == 0
    assert len(delivery.dms) == 2


async def test_the_dm_channel_is_remembered_for_the_next_message(services, world, delivery, dispatcher):
    await publish(services, world.event(LiveRaceScheduled))
    await dispatcher.run_once()
    remembered = (await player(services, ALICE)).dm_channel_id
    assert remembered is not None
    await publish(services, world.event(LiveRaceRoomOpened))
    await dispatcher.run_once()
    assert [channel for uid, _, channel in delivery.dms if uid == ALICE] == [None, remembered]


@pytest.mark.parametrize("gateway", ["absent", "down"])
async def test_without_a_gateway_rows_wait_and_go_out_when_it_returns(services, world, clock, gateway):
    delivery = RecordingDelivery(available=False)
    current = {"delivery": None if gateway == "absent" else delivery}
    dispatcher = NotificationDispatcher(services.db, services.settings, lambda: current["delivery"], clock=clock)
    await publish(services, world.event(LiveRaceScheduled))
    assert (await dispatcher.run_once()).handled == 0
    assert {r.status for r in await rows(services)} == {NotificationStatus.PENDING}
    assert all(r.attempts == 0 for r in await rows(services))
    current["delivery"], delivery.available = delivery, True
    assert (await dispatcher.run_once()).sent == 3


async def test_dms_closed_fails_at_once_blocks_the_player_and_skips_later_dms(services, world, delivery, dispatcher):
    delivery.fail(ALICE, RecipientUnreachable("Cannot send messages to this user (50007)"))
    await publish(services, world.event(LiveRaceScheduled))
    await dispatcher.run_once()
    [failed] = await rows(services, status=NotificationStatus.FAILED)
    assert (failed.attempts, failed.error) == (1, "Cannot send messages to this user (50007)")
    alice = await player(services, ALICE)
    assert alice.dm_blocked and alice.dm_blocked_at is not None

    await publish(services, world.event(LiveRaceRoomOpened))
    report = await dispatcher.run_once()
    assert report.skipped == 1
    [skipped] = await rows(services, status=NotificationStatus.SKIPPED)
    assert (skipped.player_id, skipped.error, skipped.attempts) == (alice.id, BLOCKED_REASON, 0)
    assert delivery.dm_recipients().count(ALICE) == 0

    await services.players.touch(GUILD, ALICE)  # they used the bot again
    await publish(services, world.event(LiveRaceStarted, participant_player_ids=(alice.id,)))
    await dispatcher.run_once()
    assert delivery.dm_recipients().count(ALICE) == 1


async def test_transient_errors_back_off_then_fail_after_max_retries(services, world, delivery, dispatcher, clock):
    settings = services.settings.notifications  # 8 retries, base 5 s, max 900 s
    delivery.fail(ALICE, *[TransientDeliveryError("Discord server error: 503")] * (settings.max_retries + 1))
    await publish(services, world.event(LiveRaceCancelled, reason="x", previous_status="scheduled"))
    delays = []
    for attempt in range(1, settings.max_retries + 1):
        await dispatcher.run_once()
        [row] = await rows(services, status=NotificationStatus.RETRYING)
        assert (row.attempts, row.error) == (attempt, "Discord server error: 503")
        delays.append((row.next_attempt_at - clock.now).total_seconds())
        assert (await dispatcher.run_once()).handled == 0  # not due yet
        clock.advance(delays[-1])
    assert [round(delay) for delay in delays] == [5, 10, 20, 40, 80, 160, 320, 640]
    await dispatcher.run_once()
    [row] = await rows(services, kind=NotificationKind.DM, status=NotificationStatus.FAILED)
    assert row.attempts == settings.max_retries + 1
    assert row.error == "Gave up after 9 attempts: Discord server error: 503"
    assert not (await player(services, ALICE)).dm_blocked


async def test_a_retry_after_longer_than_the_backoff_is_respected(services, world, delivery, dispatcher, clock):
    delivery.fail(ALICE, TransientDeliveryError("Rate limited", retry_after=120.0))
    await publish(services, world.event(LiveRaceScheduled))
    await dispatcher.run_once()
    [row] = await rows(services, status=NotificationStatus.RETRYING)
    assert round((row.next_attempt_at - clock.now).total_seconds()) == 120
    clock.advance(120)
    assert (await dispatcher.run_once()).sent == 1


def test_backoff_is_exponential_capped_and_jittered(services, dispatcher):
    assert [dispatcher.backoff_seconds(n) for n in (1, 2, 3, 10, 30)] == [5, 10, 20, 900, 900]
    low = NotificationDispatcher(services.db, services.settings, lambda: None, jitter=lambda: 0.0)
    assert [low.backoff_seconds(n) for n in (1, 2, 10)] == [2.5, 5, 450]


async def test_a_malformed_message_fails_with_the_reason(services, world, delivery, dispatcher):
    delivery.fail(42, PermanentDeliveryError("Discord rejected the message as malformed: 400, code 50035"))
    await publish(services, world.event(LiveRaceScheduled))
    await dispatcher.run_once()
    [row] = await rows(services, status=NotificationStatus.FAILED)
    assert (row.kind, row.attempts) == (NotificationKind.CHANNEL, 1)
    assert row.error == "Discord rejected the message as malformed: 400, code 50035"


async def test_an_unrenderable_payload_fails_instead_of_looping(services, world, delivery, dispatcher):
    await publish(services, world.event(LiveRaceScheduled))
    async with services.db.transaction() as session:
        await session.execute(update(Notification).values(payload={"event": "nonsense"}))
    await dispatcher.run_once()
    assert {r.status for r in await rows(services)} == {NotificationStatus.FAILED}
    assert all(r.error.startswith("Could not render") for r in await rows(services))


async def test_an_adapter_bug_keeps_the_row_for_later(services, world, delivery, dispatcher):
    delivery.fail(ALICE, ZeroDivisionError("bug"))  # not a DeliveryError
    await publish(services, world.event(LiveRaceScheduled))
    await dispatcher.run_once()
    [row] = await rows(services, status=NotificationStatus.RETRYING)
    assert "ZeroDivisionError" in row.error


async def test_rows_claimed_by_another_live_process_are_left_alone_until_its_lease_ends(
    services, world, delivery, dispatcher, clock
):
    await publish(services, world.event(LiveRaceScheduled))
    async with services.db.transaction() as session:
        await session.execute(
            update(Notification).values(claim_id="other-process", claimed_until=clock.now + timedelta(seconds=60))
        )
    assert (await dispatcher.run_once()).handled == 0
    clock.advance(61)  # the other process died: its lease ran out
    assert (await dispatcher.run_once()).sent == 3


async def test_two_dispatchers_never_send_the_same_row(services, world, settings, clock, tmp_path):
    for uid in range(1000, 1060):
        await add_player(services, uid, f"p{uid}")
        await subscribe(services, uid)
    await publish(services, world.event(LiveRaceScheduled))

    overlap = asyncio.Event()

    class OverlappingDelivery(RecordingDelivery):
        """Holds the first sends until more are in flight than one dispatcher may have (3): the other
        dispatcher has claimed rows too, so the two really run side by side."""

        in_flight = 0

        async def send_dm(self, user_id, message, *, dm_channel_id=None, nonce=None):
            self.in_flight += 1
            if self.in_flight > 3:
                overlap.set()
            await asyncio.wait_for(overlap.wait(), 10)
            await asyncio.sleep(0.001)
            self.in_flight -= 1
            return await super().send_dm(user_id, message, dm_channel_id=dm_channel_id)

    delivery = OverlappingDelivery()
    small_batches = make_settings(tmp_path, notifications={"batch_size": 7, "dispatch_concurrency": 3})
    second_db = Database(settings.database.url)  # another process: its own engine and connections
    async with second_db.read() as session:  # connected before the race starts, like a running process
        await session.execute(select(1))
    try:
        first = NotificationDispatcher(services.db, small_batches, lambda: delivery, clock=clock)
        second = NotificationDispatcher(second_db, small_batches, lambda: delivery, clock=clock)
        reports = await asyncio.gather(first.run_once(), second.run_once())
    finally:
        await second_db.dispose()
    counts = Counter(delivery.dm_recipients())
    assert len(counts) == 62 and set(counts.values()) == {1}
    assert sum(r.sent for r in reports) == 63
    assert all(r.sent > 0 for r in reports), reports


async def test_close_lets_messages_in_flight_finish_and_releases_the_rest(services, world, clock):
    for uid in range(2000, 2010):
        await add_player(services, uid, f"p{uid}")
        await subscribe(services, uid)
    await publish(services, world.event(LiveRaceScheduled))
    concurrency = services.settings.notifications.dispatch_concurrency
    gate, all_in_flight = asyncio.Event(), asyncio.Event()

    class GatedDelivery(RecordingDelivery):
        in_flight = 0

        async def send_dm(self, user_id, message, *, dm_channel_id=None, nonce=None):
            self.in_flight += 1
            if self.in_flight == concurrency:
                all_in_flight.set()
            await gate.wait()
            return await super().send_dm(user_id, message, dm_channel_id=dm_channel_id)

    delivery = GatedDelivery()
    dispatcher = NotificationDispatcher(services.db, services.settings, lambda: delivery, clock=clock)
    running = asyncio.create_task(dispatcher.run_once())
    await asyncio.wait_for(all_in_flight.wait(), 10)  # every worker holds a message
    closing = asyncio.create_task(dispatcher.close())
    await asyncio.sleep(0)
    gate.set()
    await closing
    report = await running
    assert report.sent == concurrency and report.released == 13 - concurrency
    statuses = Counter(r.status for r in await rows(services))
    assert statuses == {NotificationStatus.SENT: concurrency, NotificationStatus.PENDING: 13 - concurrency}
    assert all(r.claim_id is None for r in await rows(services))


# ---- delivery log and resend ----------------------------------------------------------------------
async def test_delivery_log_lists_a_races_notifications_with_filters_and_pages(services, world, delivery, dispatcher):
    delivery.fail(BOB, RecipientUnreachable("closed"))
    await publish(services, world.event(LiveRaceScheduled))
    await dispatcher.run_once()
    log = services.notifications
    page = await log.delivery_log(GUILD, world.race.id, limit=2)
    assert len(page.items) == 2 and page.next_cursor
    rest = await log.delivery_log(GUILD, world.race.id, limit=2, cursor=page.next_cursor)
    assert len(rest.items) == 1 and rest.next_cursor is None
    failed = await log.delivery_log(GUILD, world.race.id, status="failed")
    assert [n.error for n in failed.items] == ["closed"]
    summary = await log.delivery_summary(GUILD, world.race.id)
    assert summary == {"pending": 0, "retrying": 0, "sent": 2, "failed": 1, "skipped": 0, "expired": 0}


async def test_delivery_log_refuses_bad_input_and_other_guilds(services, world):
    with pytest.raises(ValidationFailed):
        await services.notifications.delivery_log(GUILD, world.race.id, status="lost")
    with pytest.raises(ValidationFailed):
        await services.notifications.delivery_log(GUILD, world.race.id, limit=0)
    with pytest.raises(NotFound):
        await services.notifications.delivery_log(OTHER_GUILD, world.race.id)
    with pytest.raises(NotFound):
        await services.notifications.delivery_summary(GUILD, 999_999)


async def test_resend_failed_requeues_them_as_new(services, world, delivery, dispatcher, clock):
    delivery.fail(42, PermanentDeliveryError("Missing Access"))
    delivery.fail(ALICE, TransientDeliveryError("down"))
    await publish(services, world.event(LiveRaceScheduled))
    await dispatcher.run_once()  # channel failed, alice retrying, bob sent
    assert await services.notifications.resend_failed(GUILD, world.race.id, MODERATOR) == ResendReport(1, 0)
    [requeued] = await rows(services, kind=NotificationKind.CHANNEL)
    assert (requeued.status, requeued.attempts, requeued.error) == (NotificationStatus.PENDING, 0, None)
    await dispatcher.run_once()
    assert len(delivery.posts) == 1
    history = await services.audit.list(GUILD, action="notification.resend_failed")
    assert history.items[0].details == {"requeued": 1, "expired": 0}


async def test_resend_failed_of_another_guilds_race_is_not_found(services, world, delivery, dispatcher):
    delivery.fail(42, PermanentDeliveryError("Missing Access"))
    await publish(services, world.event(LiveRaceScheduled))
    await dispatcher.run_once()
    with pytest.raises(NotFound):
        await services.notifications.resend_failed(OTHER_GUILD, world.race.id, MODERATOR)
    assert len(await rows(services, status=NotificationStatus.FAILED)) == 1


# ---- staleness ----------------------------------------------------------------------------------------------------


async def set_race_status(services, world, status: RaceStatus) -> None:
    async with services.db.transaction() as session:
        await session.execute(update(LiveRace).where(LiveRace.id == world.race.id).values(status=status))


async def test_a_stale_row_expires_unless_an_earlier_attempt_may_have_delivered_it(
    services, world, delivery, dispatcher, clock
):
    """Bob's room-open DM timed out (Discord may have made it); Alice's was refused with a 503 (it did not); the
    channel's process died holding its claim (it may have posted). Then the race starts: only Alice's expires,
    the others are sent again with their nonces, which Discord answers with the message it may already have."""
    delivery.fail(ALICE, TransientDeliveryError("Discord server error: 503", maybe_delivered=False))
    delivery.fail(BOB, TransientDeliveryError("Network error reaching Discord: TimeoutError"))
    await publish(services, world.event(LiveRaceRoomOpened))
    async with services.db.transaction() as session:  # the channel post: claimed by a process that then died
        await session.execute(
            update(Notification)
            .where(Notification.kind == NotificationKind.CHANNEL)
            .values(claim_id="dead", claimed_until=clock.now + timedelta(seconds=1))
        )
    await dispatcher.run_once()
    assert {r.status for r in await rows(services, kind=NotificationKind.DM)} == {NotificationStatus.RETRYING}
    await set_race_status(services, world, RaceStatus.IN_PROGRESS)
    clock.advance(3600)

    expired_before = metrics.NOTIFICATIONS.labels("dm", "expired")._value.get()
    report = await dispatcher.run_once()
    assert (report.expired, report.sent) == (1, 2)
    assert metrics.NOTIFICATIONS.labels("dm", "expired")._value.get() == expired_before + 1  # the metric counts it
    after = {(r.kind, r.player_id): r for r in await rows(services)}
    alice, bob = (await player(services, ALICE)).id, (await player(services, BOB)).id
    assert after[(NotificationKind.DM, alice)].status is NotificationStatus.EXPIRED
    assert after[(NotificationKind.DM, bob)].status is NotificationStatus.SENT
    assert after[(NotificationKind.DM, bob)].maybe_delivered
    assert after[(NotificationKind.CHANNEL, None)].status is NotificationStatus.SENT
    assert after[(NotificationKind.CHANNEL, None)].maybe_delivered
    assert delivery.dm_recipients() == [BOB] and len(delivery.posts) == 1


async def test_resend_expires_only_what_certainly_was_not_delivered(services, world, delivery, dispatcher):
    delivery.fail(ALICE, PermanentDeliveryError("Missing Access"))
    await publish(services, world.event(LiveRaceScheduled))
    await dispatcher.run_once()
    async with services.db.transaction() as session:
        await session.execute(
            update(Notification)
            .where(Notification.kind == NotificationKind.DM)
            .values(
                status=NotificationStatus.FAILED,
                maybe_delivered=Notification.player_id != (await player(services, ALICE)).id,
            )
        )
    await set_race_status(services, world, RaceStatus.CANCELLED)
    expired_before = metrics.NOTIFICATIONS.labels("dm", "expired")._value.get()
    report = await services.notifications.resend_failed(GUILD, world.race.id, MODERATOR)
    assert report == ResendReport(requeued=1, expired=1)  # Bob's may have reached him: it goes again
    assert metrics.NOTIFICATIONS.labels("dm", "expired")._value.get() == expired_before + 1
    statuses = {r.player_id: r.status for r in await rows(services, kind=NotificationKind.DM)}
    assert statuses == {
        (await player(services, ALICE)).id: NotificationStatus.EXPIRED,
        (await player(services, BOB)).id: NotificationStatus.PENDING,
    }
