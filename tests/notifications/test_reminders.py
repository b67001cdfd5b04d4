"""Reminders at chosen offsets and RSVPs (issue 13 parts 4 and 5), through the real services, the outbox and the
dispatcher (an in-memory delivery, a settable clock): queued once per (race, start, player, offset) by any number of
job runs or processes, re-armed by a reschedule (the old start's unsent rows expire), never for a cancelled or
deleted race."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import event, select

from bot.errors import NotFound, ValidationFailed
from bot.notifications.dispatcher import LEFT_REASON
from bot.services import notification_outbox
from bot.services.processes import Leases
from bot.services.reminders import ReminderService, parse_offsets
from db.models import LIVE_RACE_REMINDER, Notification, NotificationStatus
from tests.conftest import GUILD, MODERATOR
from tests.fakes.notifications import add_player, make_world, subscribe

ALICE, BOB, CAROL = 901, 902, 903  # Alice RSVPs; Bob subscribes and chooses offsets; Carol does neither
OTHER_GUILD = GUILD + 1


@pytest.fixture
async def world(services, app_clock):
    world = await make_world(services, scheduled_at=app_clock.now + timedelta(hours=30))
    for user, name in ((ALICE, "alice"), (BOB, "bob"), (CAROL, "carol")):
        await add_player(services, user, name)
    return world


def reminders(services, app_clock) -> ReminderService:
    return ReminderService(services.db, clock=app_clock)


async def rows(services) -> list[Notification]:
    async with services.db.read() as session:
        query = select(Notification).where(Notification.dedupe_key.like("reminder:%")).order_by(Notification.id)
        return list((await session.scalars(query)).all())


async def queued(services) -> list[tuple[int, int, str]]:
    """(player id, offset minutes, status) of every reminder row."""
    return [
        (row.player_id, row.payload["reminder"]["offset_minutes"], row.status.value) for row in await rows(services)
    ]


def test_offsets_parse_from_words_or_minutes_and_refuse_what_is_not_offered() -> None:
    assert parse_offsets("24h, 1h, 10m") == (1440, 60, 10)
    assert parse_offsets("10 min,1d") == (1440, 10)
    assert parse_offsets([60, 60, 10]) == (60, 10)
    assert parse_offsets("none") == parse_offsets("") == parse_offsets([]) == ()
    for bad in ("7m", "2h", "0", "-10m", "soon", "48h", [5], [True], ["10"], "10m,30m,1h,3h"):
        with pytest.raises(ValidationFailed):
            parse_offsets(bad)


async def test_offsets_are_per_guild_and_validated(services, world, app_clock) -> None:
    service = reminders(services, app_clock)
    assert await service.set_offsets(BOB, GUILD, "1h,24h") == (1440, 60)
    assert await service.offsets(BOB, GUILD) == (1440, 60)
    assert await service.offsets(BOB, OTHER_GUILD) == ()
    with pytest.raises(ValidationFailed):
        await service.set_offsets(BOB, GUILD, "5m")
    assert await service.offsets(BOB, GUILD) == (1440, 60)  # a refused change changes nothing
    with pytest.raises(ValidationFailed):
        await service.set_offsets(0, GUILD, "1h")


async def test_chosen_offsets_and_rsvps_queue_each_reminder_once_and_it_is_sent(
    services, world, app_clock, app_dispatcher, app_delivery
) -> None:
    service = reminders(services, app_clock)
    await subscribe(services, BOB)
    await service.set_offsets(BOB, GUILD, "24h,1h,10m")
    await subscribe(services, CAROL)  # subscribed but chose no offsets: no reminders
    assert await service.set_rsvp(GUILD, world.race.id, ALICE, True) is True
    assert await service.set_rsvp(GUILD, world.race.id, ALICE, True) is False  # already
    alice, bob = [(await services.players.get(GUILD, user)).id for user in (ALICE, BOB)]

    assert await service.queue_due() == 0  # 30 h ahead: nothing due
    app_clock.advance(hours=7)  # 23 h before
    await service.queue_due()
    await service.queue_due()
    assert await queued(services) == [(bob, 1440, "pending")]
    app_clock.advance(hours=22, minutes=5)  # 55 min before
    await service.queue_due()
    assert sorted(await queued(services))[:2] == [(alice, 60, "pending"), (bob, 60, "pending")]
    await app_dispatcher.run_once()
    assert len(app_delivery.dms) == 3
    titles = {message.title for _, message, _ in app_delivery.dms}
    assert titles == {f"{LIVE_RACE_REMINDER.emoji} {LIVE_RACE_REMINDER.headline}: Weekly race"}
    why = {f.value for _, m, _ in app_delivery.dms for f in m.fields if f.name == "Why you get this"}
    assert any("RSVP" in text for text in why)
    app_clock.advance(minutes=50)  # 5 min before: Bob's 10 min one, Alice has only the default 1 h
    await service.queue_due()
    await service.queue_due()
    assert sorted(p for p, o, _ in await queued(services) if o == 10) == [bob]
    assert len(await rows(services)) == 4


async def test_players_with_offsets_are_looked_up_in_chunks(services, world, app_clock, monkeypatch) -> None:
    """The subscribers among the players with offsets are read in chunks of bound parameters: one IN list of a big
    guild's every player (40,000 in bench_reminders.py) exceeds PostgreSQL's 32,767 and failed the whole job."""
    monkeypatch.setattr(notification_outbox, "IN_LIST_CHUNK", 2)
    service = reminders(services, app_clock)
    users = [ALICE, BOB, CAROL, *range(910, 914)]
    for user in users[3:]:
        await add_player(services, user, f"player{user}")
    for user in users:
        await subscribe(services, user)
        await service.set_offsets(user, GUILD, "1h")
    await service.set_offsets(CAROL, GUILD, "none")  # chose none: no reminder, in whichever chunk she is
    app_clock.advance(hours=29, minutes=30)
    bound: list[int] = []  # parameters of each subscriptions query

    def count(conn, cursor, statement, parameters, context, executemany) -> None:
        if statement.lstrip().startswith("SELECT") and "FROM notification_subscriptions" in statement:
            bound.append(len(parameters))

    event.listen(services.db.engine.sync_engine, "before_cursor_execute", count)
    try:
        assert await service.queue_due() == len(users) - 1
    finally:
        event.remove(services.db.engine.sync_engine, "before_cursor_execute", count)
    assert len(await rows(services)) == len(users) - 1
    assert len(bound) == 3 and max(bound) <= 3 + 2, bound  # guild, type, guild, then at most a chunk of ids


async def test_two_processes_queue_once_and_the_lease_lets_one_work_per_cycle(services, world, app_clock) -> None:
    first = ReminderService(services.db, leases=Leases(services.db, "process-a", app_clock), clock=app_clock)
    second = ReminderService(services.db, leases=Leases(services.db, "process-b", app_clock), clock=app_clock)
    await first.set_rsvp(GUILD, world.race.id, ALICE, True)
    app_clock.advance(hours=29, minutes=30)
    assert await first.run_job() == 1
    assert await second.run_job() == 0  # the first holds the lease
    app_clock.advance(seconds=2 * first.interval_seconds + 1)  # the first "died": its lease ran out
    await second.run_job()
    # Without the lease at all (a lease that ran out mid-run), the dedupe key still holds: one row.
    await first.queue_due()
    await second.queue_due()
    assert len(await rows(services)) == 1
    # A restart is a new service with no memory: still one row.
    await reminders(services, app_clock).queue_due()
    assert len(await rows(services)) == 1


async def test_a_reschedule_rearms_and_the_old_unsent_ones_expire(services, world, app_clock) -> None:
    service = reminders(services, app_clock)
    await service.set_rsvp(GUILD, world.race.id, ALICE, True)
    app_clock.advance(hours=29, minutes=30)
    await service.queue_due()
    start = world.race.scheduled_at
    await services.live_races.edit(GUILD, world.race.id, MODERATOR, scheduled_at=start + timedelta(hours=2))
    await service.queue_due()
    assert [status for _, _, status in await queued(services)] == ["expired"]  # 2 h 30 min before: not due yet
    app_clock.advance(hours=1, minutes=45)
    await service.queue_due()
    assert [status for _, _, status in await queued(services)] == ["expired", "pending"]
    keys = [row.dedupe_key for row in await rows(services)]
    assert str(int((start + timedelta(hours=2)).timestamp())) in keys[1]


async def test_a_cancelled_or_deleted_race_gets_no_reminders_and_queued_ones_expire(
    services, world, app_clock, app_dispatcher, app_delivery
) -> None:
    service = reminders(services, app_clock)
    await service.set_rsvp(GUILD, world.race.id, ALICE, True)
    app_clock.advance(hours=29, minutes=30)
    await service.queue_due()
    await services.live_races.cancel(GUILD, world.race.id, MODERATOR, reason="no seed")
    await app_dispatcher.run_once()
    # the reminder expires; what Alice (RSVP'd) hears is that the race is cancelled
    assert [s for _, _, s in await queued(services)] == ["expired"]
    assert [message.title.split(":")[0] for _, message, _ in app_delivery.dms] == ["❌ Race cancelled"]
    other = await make_world(services, name="Other", scheduled_at=app_clock.now + timedelta(minutes=50))
    await service.set_rsvp(GUILD, other.race.id, ALICE, True)
    await services.live_races.delete(GUILD, other.race.id, MODERATOR)
    assert await service.queue_due() == 0
    with pytest.raises(NotFound):  # a button or command from the deleted race: a clear answer, nothing changed
        await service.set_rsvp(GUILD, other.race.id, ALICE, True)


async def test_rsvp_is_refused_for_another_guild_and_after_the_race_left_scheduled(services, world, app_clock) -> None:
    service = reminders(services, app_clock)
    with pytest.raises(NotFound):
        await service.set_rsvp(OTHER_GUILD, world.race.id, ALICE, True)
    with pytest.raises(NotFound):
        await service.rsvps(OTHER_GUILD, world.race.id)
    await service.set_rsvp(GUILD, world.race.id, ALICE, True)
    assert [uid for uid, _ in await service.rsvps(GUILD, world.race.id)] == [ALICE]
    assert await service.set_rsvp(GUILD, world.race.id, ALICE, False) is True
    assert await service.rsvps(GUILD, world.race.id) == []
    await services.live_races.cancel(GUILD, world.race.id, MODERATOR, reason="no seed")
    with pytest.raises(ValidationFailed):
        await service.set_rsvp(GUILD, world.race.id, BOB, True)


async def test_the_personal_calendar_feed_includes_the_races_one_rsvpd(services, world, app_clock) -> None:
    dave = 904
    await add_player(services, dave, "dave", linked=False)  # not linked to RaceTime.gg: may not race it
    url = await services.calendar.personal_url(GUILD, dave, MODERATOR)
    secret = url.split("key=")[1]
    assert b"Weekly race" not in await services.calendar.render_feed(secret)
    await reminders(services, app_clock).set_rsvp(GUILD, world.race.id, dave, True)
    assert b"Weekly race" in await services.calendar.render_feed(secret)


async def test_an_rsvp_gets_the_rescheduled_notice_without_the_type_preference(
    services, world, app_clock, app_dispatcher, app_delivery
) -> None:
    await reminders(services, app_clock).set_rsvp(GUILD, world.race.id, CAROL, True)  # Carol never opted in
    start = world.race.scheduled_at
    await services.live_races.edit(GUILD, world.race.id, MODERATOR, scheduled_at=start + timedelta(hours=1))
    app_clock.advance(minutes=5)  # past the collapse window
    await app_dispatcher.run_once()
    carol = (await services.players.get(GUILD, CAROL)).id
    async with services.db.read() as session:
        dm = (await session.scalars(select(Notification).where(Notification.player_id == carol))).all()
    assert [row.event_type.code for row in dm] == [420]
    assert len(app_delivery.dms) == 1 and app_delivery.dms[0][1].title.startswith("🕒")


async def test_no_more_dms_from_the_server_outweighs_an_rsvp(services, world, app_clock) -> None:
    """An RSVP'd player who pressed "No more DMs from <server>" gets none of its reminders queued (not queued and
    then skipped at dispatch); taking it back brings them again."""
    service = reminders(services, app_clock)
    await service.set_rsvp(GUILD, world.race.id, ALICE, True)
    await service.set_rsvp(GUILD, world.race.id, BOB, True)
    await services.notifications.set_guild_dms(ALICE, GUILD, False, actor=MODERATOR)
    alice, bob = [(await services.players.get(GUILD, user)).id for user in (ALICE, BOB)]
    app_clock.advance(hours=29, minutes=5)  # 55 min before: the RSVP default (1 h) is due
    await service.queue_due()
    assert await queued(services) == [(bob, 60, "pending")]
    await services.notifications.set_guild_dms(ALICE, GUILD, True, actor=MODERATOR)
    await service.queue_due()
    assert sorted(await queued(services)) == sorted([(bob, 60, "pending"), (alice, 60, "pending")])


async def test_a_member_who_left_gets_no_reminder_queued_and_one_who_leaves_after_is_skipped(
    services, world, app_clock, app_dispatcher, app_delivery
) -> None:
    """Queue time leaves out RSVP'd players and subscribers with offsets who left the server (nothing in the
    delivery log), like "No more DMs"; a member who leaves after the row was queued is still skipped by the
    dispatcher (`LEFT_REASON`), the safety net. Coming back brings the reminders again."""
    service = reminders(services, app_clock)
    await subscribe(services, BOB)
    await service.set_offsets(BOB, GUILD, "1h")
    for user in (ALICE, CAROL):
        await service.set_rsvp(GUILD, world.race.id, user, True)
    for user in (ALICE, BOB):
        await services.players.member_left(GUILD, user)
    carol = (await services.players.get(GUILD, CAROL)).id
    app_clock.advance(hours=29, minutes=5)  # 55 min before
    await service.queue_due()
    assert await queued(services) == [(carol, 60, "pending")]

    await services.players.member_left(GUILD, CAROL)  # after her reminder was queued
    await app_dispatcher.run_once()
    assert app_delivery.dms == []
    assert [(row.status, row.error) for row in await rows(services)] == [(NotificationStatus.SKIPPED, LEFT_REASON)]

    assert await services.players.member_returned(GUILD, ALICE) is True  # back: her RSVP reminds her again
    await service.queue_due()
    alice = (await services.players.get(GUILD, ALICE)).id
    assert (alice, 60, "pending") in await queued(services)
