"""Live races mirrored as Discord Scheduled Events: one `scheduled_event` outbox row per race and step, queued in
the transaction of the change and brought to Discord by the dispatcher through discord.py against the fake Discord
REST (create, edit, 1 → 2 → 3 / 1 → 4, 10070, 50013). A missing Manage Events blocks the guild and tells its
moderators once; a created event whose record was lost (SIGKILL) is found by the race's marker, not made twice."""

from __future__ import annotations

from datetime import timedelta

import discord
import pytest
from sqlalchemy import select, update

from bot.events import LiveRaceCancelled, LiveRaceFinished, LiveRaceRoomOpened, LiveRaceScheduled, LiveRaceStarted
from bot.notifications.dispatcher import NotificationDispatcher
from bot.services import scheduled_events
from db.models import (
    GuildSettings,
    LiveRace,
    Notification,
    NotificationKind,
    NotificationStatus,
    RaceScheduledEvent,
)
from db.types import utcnow
from tests.conftest import GUILD, MODERATOR, OTHER_GUILD
from tests.fakes.discord_rest import EVENTS_ROUTE
from tests.fakes.notifications import RecordingDelivery, make_world, publish

MOD_CHANNEL = 7171
ROOM = "https://racetime.gg/alttpr/clever-link-1234"


@pytest.fixture
async def world(services):
    return await make_world(services, scheduled_events=None)


def dispatcher_for(services, delivery) -> NotificationDispatcher:
    return NotificationDispatcher(services.db, services.settings, lambda: delivery)


async def event_rows(services) -> list[Notification]:
    async with services.db.read() as session:
        query = (
            select(Notification).where(Notification.kind == NotificationKind.SCHEDULED_EVENT).order_by(Notification.id)
        )
        return list((await session.scalars(query)).all())


async def record_of(services, race_id: int) -> RaceScheduledEvent | None:
    async with services.db.read() as session:
        return await session.scalar(select(RaceScheduledEvent).where(RaceScheduledEvent.live_race_id == race_id))


async def set_race(services, race_id: int, **values) -> None:
    async with services.db.transaction() as session:
        await session.execute(update(LiveRace).where(LiveRace.id == race_id).values(**values))


async def test_a_race_is_mirrored_from_creation_to_completion(services, world, fake_discord, discord_delivery):
    dispatcher = dispatcher_for(services, discord_delivery)
    await publish(services, world.event(LiveRaceScheduled))
    await publish(services, world.event(LiveRaceScheduled))  # the same step twice: one row
    assert len(await event_rows(services)) == 1
    await dispatcher.run_once()
    [event] = fake_discord.events_of(GUILD)
    assert event["status"] == 1 and event["entity_type"] == 3 and event["privacy_level"] == 2
    assert event["entity_metadata"]["location"] == "Spring Qualifier — Pool A"
    assert event["name"] == world.race.title
    assert scheduled_events.race_marker(world.race.id) in event["description"]
    start = world.race.scheduled_at
    assert event["scheduled_end_time"] == (start + timedelta(minutes=180)).isoformat()  # the setting's length
    record = await record_of(services, world.race.id)
    assert record is not None and record.event_id == int(event["id"]) and record.status == 1

    # Every edit: a move (the event's start moves at once), then a new title.
    await services.live_races.edit(GUILD, world.race.id, MODERATOR, scheduled_at=start + timedelta(hours=1))
    await dispatcher.run_once()
    assert event["scheduled_start_time"] == (start + timedelta(hours=1)).isoformat()
    await services.live_races.edit(GUILD, world.race.id, MODERATOR, title="Week 4 final")
    await dispatcher.run_once()
    assert event["name"] == "Week 4 final"

    await set_race(services, world.race.id, racetime_url=ROOM)
    await publish(services, world.event(LiveRaceRoomOpened))
    await dispatcher.run_once()
    assert event["entity_metadata"]["location"] == ROOM and ROOM in event["description"]

    await set_race(services, world.race.id, started_at=utcnow())
    await publish(services, world.event(LiveRaceStarted, participant_player_ids=()))
    await dispatcher.run_once()
    assert event["status"] == 2
    await publish(services, world.event(LiveRaceFinished, participant_player_ids=()))
    await dispatcher.run_once()
    assert event["status"] == 3 and (await record_of(services, world.race.id)).status == 3
    assert len(fake_discord.events_of(GUILD)) == 1
    assert all(row.status is NotificationStatus.SENT for row in await event_rows(services))


async def test_cancelled_and_deleted_races_cancel_their_events(services, fake_discord, discord_delivery) -> None:
    dispatcher = dispatcher_for(services, discord_delivery)
    cancelled = await make_world(services, name="Cancelled cup", scheduled_events=None)
    deleted = await make_world(services, name="Deleted cup", scheduled_events=None)
    for world in (cancelled, deleted):
        await publish(services, world.event(LiveRaceScheduled))
    await dispatcher.run_once()
    await publish(services, cancelled.event(LiveRaceCancelled, reason="Storm", previous_status="scheduled"))
    assert await services.live_races.delete(GUILD, deleted.race.id, MODERATOR) is False  # nobody was told
    await dispatcher.run_once()
    assert sorted(event["status"] for event in fake_discord.events_of(GUILD)) == [4, 4]


async def test_a_race_cancelled_after_it_started_completes_its_event(services, world) -> None:
    delivery = RecordingDelivery()
    dispatcher = dispatcher_for(services, delivery)
    await publish(services, world.event(LiveRaceScheduled))
    await set_race(services, world.race.id, started_at=utcnow())
    await publish(services, world.event(LiveRaceStarted, participant_player_ids=()))
    await publish(services, world.event(LiveRaceCancelled, reason="Crash", previous_status="in_progress"))
    await dispatcher.run_once()
    [event] = delivery.events.values()
    assert event["status"] == 3  # Discord lets an active event only complete


async def test_a_missing_manage_events_is_told_once_and_blocks_until_switched_on_again(
    services, fake_discord, discord_delivery
) -> None:
    fake_discord.add_text_channel(MOD_CHANNEL)
    fake_discord.no_manage_events.add(GUILD)
    await services.guilds.update(GUILD, MODERATOR, moderator_channel_id=MOD_CHANNEL)
    dispatcher = dispatcher_for(services, discord_delivery)
    first = await make_world(services, name="First cup", scheduled_events=None)
    second = await make_world(services, name="Second cup", scheduled_events=None)
    for world in (first, second):
        await publish(services, world.event(LiveRaceScheduled))
    await dispatcher.run_once()
    posts = fake_discord.posts_in(MOD_CHANNEL)
    assert len(posts) == 1 and "Manage Events" in posts[0]["embeds"][0]["description"]
    assert fake_discord.requests[EVENTS_ROUTE] <= 3  # a find and one refused create; the other row is not tried
    guild = await services.guilds.get(GUILD)
    assert guild.scheduled_events_blocked_at is not None
    assert scheduled_events.describe_state(guild) == scheduled_events.BLOCKED_LINE
    statuses = sorted(row.status.value for row in await event_rows(services))
    assert statuses == ["failed", "skipped"]

    # Blocked: later steps queue nothing, and no second line reaches the moderators.
    await publish(services, first.event(LiveRaceRoomOpened))
    assert len(await event_rows(services)) == 2
    await dispatcher.run_once()
    assert len(fake_discord.posts_in(MOD_CHANNEL)) == 1

    # The permission is given and the setting turned on again: the next step makes the event.
    fake_discord.no_manage_events.clear()
    await services.guilds.update(GUILD, MODERATOR, scheduled_events=True)
    assert (await services.guilds.get(GUILD)).scheduled_events_blocked_at is None
    await services.live_races.edit(GUILD, first.race.id, MODERATOR, title="Back on")
    await dispatcher.run_once()
    assert [event["name"] for event in fake_discord.events_of(GUILD)] == ["Back on"]


async def test_an_event_made_before_a_crash_is_found_not_made_twice(
    services, world, fake_discord, discord_delivery
) -> None:
    """SIGKILL between Discord making the event and the outcome being written: the row is sent again (its claim
    lapsed) with no record of the event; the race's marker in the description finds it."""
    await publish(services, world.event(LiveRaceScheduled))
    await dispatcher_for(services, discord_delivery).run_once()
    [event] = fake_discord.events_of(GUILD)
    async with services.db.transaction() as session:  # as if the write never happened: the claim lapsed
        await session.execute(RaceScheduledEvent.__table__.delete())
        await session.execute(
            update(Notification)
            .where(Notification.kind == NotificationKind.SCHEDULED_EVENT)
            .values(
                status=NotificationStatus.PENDING,
                sent_at=None,
                attempts=0,
                next_attempt_at=utcnow(),
                claimed_until=utcnow() - timedelta(seconds=1),
            )
        )
    await dispatcher_for(services, discord_delivery).run_once()  # a new process: nothing in memory
    assert len(fake_discord.events_of(GUILD)) == 1
    assert (await record_of(services, world.race.id)).event_id == int(event["id"])


async def test_events_that_waited_out_an_outage_are_made_without_looking_them_up(
    services, fake_discord, discord_delivery
) -> None:
    """Rows answered 503 (Discord processed nothing) made no event: once Discord is back each race's event is made
    with one request, without first listing the guild's events (half the guild's bucket after an outage,
    benchmarks/bench_scheduled_events.py)."""
    dispatcher = dispatcher_for(services, discord_delivery)
    worlds = [await make_world(services, name=f"Cup {n}", scheduled_events=None) for n in range(3)]
    for world in worlds:
        await publish(services, world.event(LiveRaceScheduled))
    await fake_discord.down()
    report = await dispatcher.run_once()
    assert report.retrying == 3 and not fake_discord.scheduled_events
    fake_discord.up()
    fake_discord.requests.clear()
    async with services.db.transaction() as session:  # their backoff ran out
        await session.execute(update(Notification).values(next_attempt_at=utcnow()))
    await dispatcher_for(services, discord_delivery).run_once()  # a new process: nothing in memory
    assert len(fake_discord.scheduled_events) == 3
    assert fake_discord.requests[EVENTS_ROUTE] == 3, "one creation per race, no listing"
    assert all(row.status is NotificationStatus.SENT for row in await event_rows(services))


async def test_an_event_deleted_in_discord_is_made_again_while_scheduled(services, world) -> None:
    delivery = RecordingDelivery()
    dispatcher = dispatcher_for(services, delivery)
    await publish(services, world.event(LiveRaceScheduled))
    await dispatcher.run_once()
    delivery.events.clear()  # a moderator deleted it
    await services.live_races.edit(GUILD, world.race.id, MODERATOR, title="Renamed")
    await dispatcher.run_once()
    [event] = delivery.events.values()
    assert event["name"] == "Renamed"
    assert "anew" in (await event_rows(services))[-1].error


@pytest.mark.parametrize("switch", ["guild", "tournament"])
async def test_the_switch_turns_mirroring_off(services, switch) -> None:
    if switch == "guild":
        await services.guilds.update(GUILD, MODERATOR, scheduled_events=False)
        world = await make_world(services, scheduled_events=None)
    else:
        world = await make_world(services, scheduled_events=None)
        async with services.db.transaction() as session:
            await scheduled_events.set_tournament_switch(session, GUILD, world.tournament.id, False)
    await publish(services, world.event(LiveRaceScheduled))
    assert await event_rows(services) == []
    guild = await services.guilds.get(GUILD)
    assert (switch == "guild") == (scheduled_events.describe_state(guild).startswith("Off"))


async def test_a_tournament_switch_of_another_guild_is_not_found(services, world) -> None:
    from bot.errors import NotFound

    async with services.db.transaction() as session:
        with pytest.raises(NotFound):
            await scheduled_events.set_tournament_switch(session, OTHER_GUILD, world.tournament.id, False)


async def test_bad_rows_and_past_starts_are_not_sent(services, world) -> None:
    delivery = RecordingDelivery()
    await set_race(services, world.race.id, scheduled_at=utcnow() - timedelta(minutes=5))
    async with services.db.read() as session:
        world.race = await session.get(LiveRace, world.race.id)
    await publish(services, world.event(LiveRaceScheduled))
    async with services.db.transaction() as session:  # and a malformed row
        await scheduled_events._insert(session, GUILD, world.race.id, {"race_id": "x", "status": 9}, "bad", utcnow())
    await dispatcher_for(services, delivery).run_once()
    rows = {row.dedupe_key.rsplit(":", 1)[-1]: row for row in await event_rows(services)}
    assert rows["bad"].status is NotificationStatus.FAILED and "Malformed" in rows["bad"].error
    scheduled = rows["live_race_scheduled"]
    assert scheduled.status is NotificationStatus.SKIPPED and "start passed" in scheduled.error
    assert delivery.events == {}


async def test_the_fake_refuses_what_discord_refuses(fake_discord, discord_client) -> None:
    http = discord_client.http
    later = utcnow() + timedelta(hours=1)
    fields = {
        "name": "Race",
        "entity_type": 3,
        "privacy_level": 2,
        "entity_metadata": {"location": "Cup — Pool"},
        "scheduled_start_time": later.isoformat(),
        "scheduled_end_time": (later + timedelta(hours=1)).isoformat(),
    }
    with pytest.raises(discord.HTTPException) as past:
        await http.create_guild_scheduled_event(
            GUILD, **{**fields, "scheduled_start_time": (utcnow() - timedelta(minutes=1)).isoformat()}
        )
    assert past.value.status == 400
    with pytest.raises(discord.HTTPException):
        await http.create_guild_scheduled_event(GUILD, **{**fields, "name": "x" * 101})
    event = await http.create_guild_scheduled_event(GUILD, **fields)
    with pytest.raises(discord.HTTPException) as jump:  # 1 → 3 is no transition Discord allows
        await http.edit_scheduled_event(GUILD, event["id"], status=3)
    assert jump.value.status == 400
    with pytest.raises(discord.NotFound):  # another guild's event
        await http.edit_scheduled_event(OTHER_GUILD, event["id"], status=2)
    await http.edit_scheduled_event(GUILD, event["id"], status=2)
    await http.edit_scheduled_event(GUILD, event["id"], status=3)
    with pytest.raises(discord.HTTPException):  # a completed event is final
        await http.edit_scheduled_event(GUILD, event["id"], name="again")
    fake_discord.no_manage_events.add(GUILD)
    with pytest.raises(discord.Forbidden) as forbidden:
        await http.delete_scheduled_event(GUILD, event["id"])
    assert forbidden.value.code == 50013
    fake_discord.no_manage_events.clear()
    await http.delete_scheduled_event(GUILD, event["id"])
    assert fake_discord.events_of(GUILD) == []


async def test_an_unsaved_guild_mirrors_by_default() -> None:
    assert scheduled_events.describe_state(GuildSettings(guild_id=GUILD)).startswith("On")


@pytest.mark.parametrize("end", ["cancelled", "deleted"])
async def test_a_create_that_reaches_discord_after_the_race_ended_makes_no_event(services, world, end) -> None:
    """The create fails for a while (an outage); meanwhile the race is cancelled or deleted, and that row runs first
    and finds no event. The create retried later must not leave a scheduled event behind for good."""
    from bot.notifications.delivery import TransientDeliveryError
    from db.models import RaceStatus
    from tests.fakes.lifecycle import Clock

    clock = Clock()
    delivery = RecordingDelivery()
    delivery.event_errors.append(TransientDeliveryError("Discord: 503 Service Unavailable", maybe_delivered=False))
    dispatcher = NotificationDispatcher(services.db, services.settings, lambda: delivery, clock=clock)
    await publish(services, world.event(LiveRaceScheduled))
    clock.now = utcnow() + timedelta(seconds=1)  # the row is due (it was queued on the wall clock)
    await dispatcher.run_once()
    [create] = await event_rows(services)
    assert create.status is NotificationStatus.RETRYING
    if end == "cancelled":
        await set_race(services, world.race.id, status=RaceStatus.CANCELLED)
        await publish(services, world.event(LiveRaceCancelled, reason="Storm", previous_status="scheduled"))
    else:
        assert await services.live_races.delete(GUILD, world.race.id, MODERATOR) is False
    clock.now = utcnow() + timedelta(seconds=1)
    await dispatcher.run_once()  # the end's row: no event to cancel yet
    clock.advance(hours=1)  # the create's retry is due
    await dispatcher.run_once()
    rows = await event_rows(services)
    assert [row.status for row in rows] == [NotificationStatus.SKIPPED, NotificationStatus.SKIPPED]
    assert ("already cancelled" if end == "cancelled" else "was deleted") in rows[0].error
    assert delivery.events == {}
    assert await record_of(services, world.race.id) is None


async def test_an_edit_retried_after_a_later_one_went_out_does_not_bring_back_the_old_start(services, world) -> None:
    """A move's edit fails (an outage) and waits for its retry; the race moves again and that edit goes out first.
    The retried edit carries the older start: it is skipped, and the event keeps the last move."""
    from bot.notifications.delivery import TransientDeliveryError
    from tests.fakes.lifecycle import Clock

    clock = Clock()
    delivery = RecordingDelivery()
    dispatcher = NotificationDispatcher(services.db, services.settings, lambda: delivery, clock=clock)
    await publish(services, world.event(LiveRaceScheduled))
    clock.now = utcnow() + timedelta(seconds=1)
    await dispatcher.run_once()
    [event_id] = delivery.events
    first, last = world.race.scheduled_at + timedelta(hours=1), world.race.scheduled_at + timedelta(hours=2)
    await services.live_races.edit(GUILD, world.race.id, MODERATOR, scheduled_at=first)
    delivery.event_errors.append(TransientDeliveryError("Discord: 503 Service Unavailable", maybe_delivered=False))
    clock.now = utcnow() + timedelta(seconds=1)
    await dispatcher.run_once()
    assert [row.status for row in await event_rows(services)][-1] is NotificationStatus.RETRYING
    await services.live_races.edit(GUILD, world.race.id, MODERATOR, scheduled_at=last)
    clock.now = utcnow() + timedelta(seconds=1)  # the second move's edit is due, the first's retry not yet
    await dispatcher.run_once()
    assert delivery.events[event_id]["scheduled_start_time"] == last.isoformat()
    clock.advance(hours=1)  # the first move's retry is due
    await dispatcher.run_once()
    rows = await event_rows(services)
    assert [row.status for row in rows] == [
        NotificationStatus.SENT,
        NotificationStatus.SKIPPED,
        NotificationStatus.SENT,
    ]
    assert "later step" in rows[1].error
    assert delivery.events[event_id]["scheduled_start_time"] == last.isoformat()


async def test_the_fake_lists_interested_users_as_discord_does(fake_discord, discord_client) -> None:
    """GET …/scheduled-events/{id}/users: ascending user ids, `limit` 1–100, `after` / `before` (`before` wins),
    `with_member` only for users still in the guild, 10070 for an unknown event or one of another guild."""
    from tests.fakes.discord_rest import _user

    http = discord_client.http
    later = utcnow() + timedelta(hours=1)
    event = await http.create_guild_scheduled_event(
        GUILD,
        name="Race",
        entity_type=3,
        privacy_level=2,
        entity_metadata={"location": "Cup — Pool"},
        scheduled_start_time=later.isoformat(),
        scheduled_end_time=(later + timedelta(hours=1)).isoformat(),
    )
    event_id = int(event["id"])
    users = [1000 + n for n in range(7)]
    for uid in reversed(users):
        assert await fake_discord.press_interested(GUILD, event_id, _user(uid, f"u{uid}")) == 0  # no gateway here
    await fake_discord.member_leaves(GUILD, _user(users[0], "gone"))
    page = await http.get_scheduled_event_users(GUILD, event_id, 3, True)
    assert [int(e["user"]["id"]) for e in page] == users[:3]
    assert [("member" in e) for e in page] == [False, True, True]
    assert all(e["guild_scheduled_event_id"] == event["id"] for e in page)
    page = await http.get_scheduled_event_users(GUILD, event_id, 3, False, after=users[2])
    assert [int(e["user"]["id"]) for e in page] == users[3:6] and not any("member" in e for e in page)
    page = await http.get_scheduled_event_users(GUILD, event_id, 2, False, before=users[4], after=users[5])
    assert [int(e["user"]["id"]) for e in page] == users[2:4]
    await fake_discord.take_back_interested(GUILD, event_id, users[1])
    assert len(await http.get_scheduled_event_users(GUILD, event_id, 100, False)) == 6
    for limit in (0, 101):
        with pytest.raises(discord.HTTPException) as bad:
            await http.get_scheduled_event_users(GUILD, event_id, limit, False)
        assert bad.value.status == 400 and bad.value.code == 50035
    for guild_id, eid in ((OTHER_GUILD, event_id), (GUILD, 42)):
        with pytest.raises(discord.NotFound) as unknown:
            await http.get_scheduled_event_users(guild_id, eid, 100, False)
        assert unknown.value.code == 10070
