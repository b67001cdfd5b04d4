"""The rescheduled notice (420) and the cancelled notice of a deleted race, through the real LiveRaceService, the
outbox and the dispatcher (an in-memory delivery, the service's clock): one message per group of moves, with the
start players were told and the latest one; nothing for a move nobody can see; a group a dispatcher touched is
left alone."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from bot.events import LiveRaceScheduled
from bot.notifications.dispatcher import NotificationDispatcher
from bot.notifications.render import render
from bot.services.live_races import REMOVED_REASON
from db.models import EventType, Notification, NotificationKind, NotificationStatus
from tests.conftest import GUILD, MODERATOR
from tests.fakes.notifications import RecordingDelivery, add_player, make_world, subscribe

ALICE, BOB, CAROL = 901, 902, 903  # Alice and Bob subscribed and eligible; Carol eligible, never opted in
ANNOUNCEMENTS = 5151
RESCHEDULED = EventType.LIVE_RACE_RESCHEDULED


@pytest.fixture
async def world(services, app_clock):
    world = await make_world(
        services, announcement_channel_id=ANNOUNCEMENTS, scheduled_at=app_clock.now + timedelta(hours=5)
    )
    for user, name in ((ALICE, "alice"), (BOB, "bob"), (CAROL, "carol")):
        await add_player(services, user, name)
    for user in (ALICE, BOB):
        await subscribe(services, user)
    return world


async def rows(services, event_type: EventType = RESCHEDULED) -> list[Notification]:
    async with services.db.read() as session:
        query = select(Notification).where(Notification.event_type == event_type).order_by(Notification.id)
        return list((await session.scalars(query)).all())


async def move(services, world, app_clock, **delta: float):
    start = (await services.live_races.get(GUILD, world.race.id)).race.scheduled_at
    return await services.live_races.edit(GUILD, world.race.id, MODERATOR, scheduled_at=start + timedelta(**delta))


def sent_fields(app_delivery: RecordingDelivery) -> list[dict[str, str]]:
    return [{f.name: f.value for f in message.fields} for _, message, _ in app_delivery.dms]


async def test_a_move_tells_the_eligible_subscribers_and_the_channel_after_the_window(
    services, world, app_clock, app_dispatcher, app_delivery
) -> None:
    told = world.race.scheduled_at
    await move(services, world, app_clock, hours=1)
    queued = await rows(services)
    assert sorted(row.kind for row in queued) == [NotificationKind.CHANNEL, *[NotificationKind.DM] * 2]
    assert {row.dedupe_key.rsplit(":", 1)[0] for row in queued if row.kind is NotificationKind.DM} == {
        f"dm:420:race:{world.race.id}:at:{queued[0].payload['group']}:player"
    }
    await app_dispatcher.run_once()
    assert app_delivery.dms == [] and app_delivery.posts == []  # it waits: another move may follow

    app_clock.advance(seconds=services.settings.notifications.reschedule_collapse_seconds)
    await app_dispatcher.run_once()
    assert len(app_delivery.dms) == 2 and len(app_delivery.posts) == 1
    fields = sent_fields(app_delivery)[0]
    new = int((told + timedelta(hours=1)).timestamp())
    assert fields["New start"].startswith(f"<t:{new}:F>")
    assert fields["Was"] == f"~~<t:{int(told.timestamp())}:F>~~"
    assert app_delivery.dms[0][1].title == f"🕒 Live race rescheduled: {world.race.title}"


async def test_moves_within_the_window_make_one_message_with_the_first_and_the_last_start(
    services, world, app_clock, app_dispatcher, app_delivery
) -> None:
    told = world.race.scheduled_at
    await move(services, world, app_clock, hours=1)
    app_clock.advance(seconds=30)
    await move(services, world, app_clock, minutes=30)
    app_clock.advance(seconds=30)
    await move(services, world, app_clock, minutes=15)
    queued = await rows(services)
    assert len(queued) == 3 and len({row.dedupe_key for row in queued}) == 3  # the same rows, rewritten

    app_clock.advance(minutes=5)
    await app_dispatcher.run_once()
    assert len(app_delivery.dms) == 2 and len(app_delivery.posts) == 1
    fields = {f.name: f.value for f in app_delivery.posts[0][1].fields}
    assert fields["New start"].startswith(f"<t:{int((told + timedelta(hours=1, minutes=45)).timestamp())}:F>")
    assert fields["Was"] == f"~~<t:{int(told.timestamp())}:F>~~"


async def test_a_move_back_to_the_told_start_sends_nothing(
    services, world, app_clock, app_dispatcher, app_delivery
) -> None:
    await move(services, world, app_clock, hours=1)
    app_clock.advance(seconds=20)
    await move(services, world, app_clock, hours=-1)
    assert {row.status for row in await rows(services)} == {NotificationStatus.SKIPPED}
    app_clock.advance(minutes=5)
    await app_dispatcher.run_once()
    assert app_delivery.dms == [] and app_delivery.posts == []
    # A later move is a new notice, from the start players were told.
    await move(services, world, app_clock, minutes=10)
    app_clock.advance(minutes=5)
    await app_dispatcher.run_once()
    assert len(app_delivery.dms) == 2
    assert sent_fields(app_delivery)[0]["Was"] == f"~~<t:{int(world.race.scheduled_at.timestamp())}:F>~~"


@pytest.mark.parametrize("changes", [{"seconds": 20}, {"seconds": 0}], ids=["same-minute", "same-time"])
async def test_a_change_nobody_can_see_queues_nothing(services, world, app_clock, changes) -> None:
    start = world.race.scheduled_at.replace(second=0)
    await services.live_races.edit(GUILD, world.race.id, MODERATOR, scheduled_at=start)
    await move(services, world, app_clock, **changes)
    await services.live_races.edit(GUILD, world.race.id, MODERATOR, title="Renamed")
    assert await rows(services) == []


async def test_a_group_that_went_out_is_left_alone_and_the_next_move_starts_from_it(
    services, world, app_clock, app_dispatcher, app_delivery
) -> None:
    await move(services, world, app_clock, hours=1)
    app_clock.advance(minutes=5)
    await app_dispatcher.run_once()
    await move(services, world, app_clock, hours=1)
    app_clock.advance(minutes=5)
    await app_dispatcher.run_once()
    assert len(app_delivery.dms) == 4
    second = sent_fields(app_delivery)[2]
    start = world.race.scheduled_at
    assert second["Was"] == f"~~<t:{int((start + timedelta(hours=1)).timestamp())}:F>~~"
    assert second["New start"].startswith(f"<t:{int((start + timedelta(hours=2)).timestamp())}:F>")


async def test_a_group_a_dispatcher_claimed_meanwhile_is_not_rewritten(services, world, app_clock) -> None:
    """The dispatcher claimed one row of the group (it is being sent): the move starts a new group instead of
    rewriting a message that may already be out, so nobody misses the latest start."""
    await move(services, world, app_clock, hours=1)
    first = await rows(services)
    async with services.db.transaction() as session:
        await session.execute(
            update(Notification)
            .where(Notification.id == first[0].id)
            .values(claim_id="other", claimed_until=app_clock.now + timedelta(minutes=2))
        )
    await move(services, world, app_clock, minutes=30)
    after = await rows(services)
    assert [row.payload for row in after[:3]] == [row.payload for row in first]
    assert len(after) == 6 and after[3].payload["group"] != first[0].payload["group"]
    assert after[3].payload["race"]["previous_scheduled_at"] == first[0].payload["race"]["scheduled_at"]


async def test_a_reschedule_expires_once_the_room_opened_or_the_race_was_deleted(
    services, world, app_clock, app_dispatcher, app_delivery
) -> None:
    await move(services, world, app_clock, hours=1)
    await services.live_races.delete(GUILD, world.race.id, MODERATOR)
    app_clock.advance(minutes=5)
    await app_dispatcher.run_once()
    assert app_delivery.dms == [] and {row.status for row in await rows(services)} == {NotificationStatus.EXPIRED}
    # Nothing of it had gone out: no cancelled notice either.
    assert await rows(services, EventType.LIVE_RACE_CANCELLED) == []


async def test_deleting_a_race_players_were_told_about_sends_the_cancelled_notice(
    services, world, app_clock, app_dispatcher, app_delivery
) -> None:
    async with services.db.transaction() as session:
        await services.events.publish(session, world.event(LiveRaceScheduled))
    app_clock.advance(seconds=5)  # the rows were queued by the real clock
    await app_dispatcher.run_once()
    assert len(app_delivery.dms) == 2  # the scheduled notice went out
    await services.live_races.delete(GUILD, world.race.id, MODERATOR)
    await app_dispatcher.run_once()
    cancelled = [message for _, message, _ in app_delivery.dms[2:]]
    assert len(cancelled) == 2 and len(app_delivery.posts) == 1 and len(app_delivery.edits) == 1  # the living post
    assert all(m.title.startswith("❌ Race cancelled") for m in cancelled)
    assert {f.value for m in cancelled for f in m.fields if f.name == "Reason"} == {REMOVED_REASON}
    history = await services.audit.list(GUILD, target_type="live_race", target_id=world.race.id)
    assert history.items[0].details["players_told"] is True


def test_the_rescheduled_message_renders_without_a_previous_start() -> None:
    message = render({"v": 1, "event": RESCHEDULED.value, "race": {"id": 3, "title": "W", "scheduled_at": 1}})
    assert {f.name: f.value for f in message.fields}["Was"] == "Not known"


class HeldDelivery(RecordingDelivery):
    """Holds every DM until released, telling the test when the first one arrived (a held request, not a sleep)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.arrived = asyncio.Event()
        self.release = asyncio.Event()

    async def send_dm(self, user_id, message, *, dm_channel_id=None, nonce=None):
        self.arrived.set()
        await self.release.wait()
        return await super().send_dm(user_id, message, dm_channel_id=dm_channel_id, nonce=nonce)


async def test_a_move_while_its_notice_is_being_sent_becomes_a_second_notice(services, world, app_clock) -> None:
    """The dispatcher is sending the group (held mid-request) when the race moves again: the group is not
    rewritten under it, the move starts a new group from the start the first notice announced, and every player
    gets both, in order."""
    held = HeldDelivery()
    held_dispatcher = NotificationDispatcher(services.db, services.settings, lambda: held, clock=app_clock)
    told = world.race.scheduled_at
    await move(services, world, app_clock, hours=1)
    app_clock.advance(minutes=5)
    sending = asyncio.create_task(held_dispatcher.run_once())
    await held.arrived.wait()
    await move(services, world, app_clock, minutes=30)
    held.release.set()
    await sending
    app_clock.advance(minutes=5)
    await held_dispatcher.run_once()

    by_player: dict[int, list[tuple[str, str]]] = {}
    for user, message, _ in held.dms:
        fields = {f.name: f.value for f in message.fields}
        by_player.setdefault(user, []).append((fields["Was"], fields["New start"].split(" ")[0]))
    ts = [int((told + timedelta(minutes=m)).timestamp()) for m in (0, 60, 90)]
    expected = [(f"~~<t:{ts[0]}:F>~~", f"<t:{ts[1]}:F>"), (f"~~<t:{ts[1]}:F>~~", f"<t:{ts[2]}:F>")]
    assert by_player == {ALICE: expected, BOB: expected}
