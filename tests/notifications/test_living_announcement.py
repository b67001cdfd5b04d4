"""One living announcement per race: the scheduled post keeps its message id (`announcement_posts`) and every later
step edits it in place; the room opening pings with a reply to it; a deleted post is posted again once; edits wait
for the post and a later edit replaces an earlier one not sent yet. Through the outbox and the real dispatcher,
first with an in-memory delivery, then with discord.py against the fake Discord REST (PATCH, 10008, 10003, 50013,
rate limits)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.events import LiveRaceCancelled, LiveRaceFinished, LiveRaceRoomOpened, LiveRaceScheduled, LiveRaceStarted
from bot.notifications.delivery import PermanentDeliveryError
from bot.notifications.dispatcher import SUPERSEDED_REASON, NotificationDispatcher
from bot.notifications.render import render
from db.models import AnnouncementPost, Notification, NotificationKind, NotificationStatus, RaceStatus
from tests.conftest import GUILD, MODERATOR
from tests.fakes.discord_rest import EDIT_ROUTE, Failure, RouteLimit
from tests.fakes.notifications import RecordingDelivery, make_world, publish

CHANNEL = 6262
ROLE = 4343


@pytest.fixture
async def world(services):
    return await make_world(services, announcement_channel_id=CHANNEL, announcement_role_id=ROLE)


async def post_of(services, race_id: int) -> AnnouncementPost | None:
    async with services.db.read() as session:
        return await session.scalar(select(AnnouncementPost).where(AnnouncementPost.live_race_id == race_id))


async def channel_rows(services) -> list[Notification]:
    async with services.db.read() as session:
        query = select(Notification).where(Notification.kind != NotificationKind.DM).order_by(Notification.id)
        return list((await session.scalars(query)).all())


def dispatcher_for(services, delivery) -> NotificationDispatcher:
    return NotificationDispatcher(services.db, services.settings, lambda: delivery)


async def test_every_step_edits_the_one_post_and_the_room_opening_replies_to_it(services, world) -> None:
    delivery = RecordingDelivery()
    dispatcher = dispatcher_for(services, delivery)
    await publish(services, world.event(LiveRaceScheduled))
    await dispatcher.run_once()
    assert len(delivery.posts) == 1
    post = await post_of(services, world.race.id)
    assert post is not None and post.channel_id == CHANNEL and post.message_id in delivery.current
    assert delivery.posts[0][1].mention_role_ids == (ROLE,)  # the first post pings

    await publish(services, world.event(LiveRaceRoomOpened))
    await dispatcher.run_once()
    assert len(delivery.posts) == 2 and len(delivery.edits) == 1
    reply_id = max(delivery.current)
    assert delivery.replies[reply_id] == post.message_id  # the ping is a reply to the living post
    assert delivery.posts[1][1].mention_role_ids == (ROLE,)
    assert delivery.edits[0][1] == post.message_id and delivery.edits[0][2].mention_role_ids == ()

    for step in (LiveRaceStarted, LiveRaceFinished):
        await publish(services, world.event(step))
        await dispatcher.run_once()
    assert len(delivery.posts) == 2 and len(delivery.edits) == 3  # no more posts: edits
    assert delivery.current[post.message_id].title.startswith("🏁 Race finished")


async def test_a_cancelled_race_is_struck_through(services, world) -> None:
    delivery = RecordingDelivery()
    dispatcher = dispatcher_for(services, delivery)
    await publish(services, world.event(LiveRaceScheduled))
    await dispatcher.run_once()
    await publish(services, world.event(LiveRaceCancelled, reason="Storm", previous_status="scheduled"))
    await dispatcher.run_once()
    post = await post_of(services, world.race.id)
    assert delivery.current[post.message_id].title == f"❌ Race cancelled: ~~{world.race.title}~~"
    assert len(delivery.posts) == 1


async def test_a_reschedule_edits_the_post_at_once_and_a_move_back_edits_it_back(services, world) -> None:
    delivery = RecordingDelivery()
    dispatcher = dispatcher_for(services, delivery)
    await publish(services, world.event(LiveRaceScheduled))
    await dispatcher.run_once()
    post = await post_of(services, world.race.id)
    start = world.race.scheduled_at
    await services.live_races.edit(GUILD, world.race.id, MODERATOR, scheduled_at=start + timedelta(hours=1))
    await dispatcher.run_once()
    fields = {f.name: f.value for f in delivery.current[post.message_id].fields}
    assert fields["New start"].startswith(f"<t:{int((start + timedelta(hours=1)).timestamp())}:F>")
    await services.live_races.edit(GUILD, world.race.id, MODERATOR, scheduled_at=start)
    await dispatcher.run_once()
    fields = {f.name: f.value for f in delivery.current[post.message_id].fields}
    assert fields["New start"].startswith(f"<t:{int(start.timestamp())}:F>")
    assert len(delivery.posts) == 1  # the channel got no rescheduled post: the living one shows it


async def test_an_edit_waits_for_the_post_and_an_older_edit_is_replaced(services, world) -> None:
    delivery = RecordingDelivery()
    delivery.fail(CHANNEL, PermanentDeliveryError("scripted: a post that has not gone out yet"))
    await publish(services, world.event(LiveRaceScheduled))
    async with services.db.transaction() as session:  # the post is still on its way (retrying)
        await session.execute(
            Notification.__table__.update()
            .where(Notification.kind == NotificationKind.CHANNEL)
            .values(status=NotificationStatus.RETRYING, next_attempt_at=world.race.scheduled_at)
        )
    await publish(services, world.event(LiveRaceRoomOpened))
    await publish(services, world.event(LiveRaceStarted))
    report = await dispatcher_for(services, delivery).run_once()
    rows = {
        row.dedupe_key.split(":")[-1]: row for row in await channel_rows(services) if row.kind.value == "channel_edit"
    }
    assert rows["live_race_room_opened"].status is NotificationStatus.SKIPPED
    assert rows["live_race_room_opened"].error == SUPERSEDED_REASON
    started = rows["live_race_started"]
    assert started.status is NotificationStatus.RETRYING and started.attempts == 0  # waiting, not an attempt
    assert delivery.edits == [] and report.sent == 0


async def test_a_deleted_post_is_posted_again_once_and_logged(services, world, caplog) -> None:
    delivery = RecordingDelivery()
    dispatcher = dispatcher_for(services, delivery)
    await publish(services, world.event(LiveRaceScheduled))
    await dispatcher.run_once()
    first = (await post_of(services, world.race.id)).message_id
    del delivery.current[first]  # someone deleted it
    await publish(services, world.event(LiveRaceStarted))
    await dispatcher.run_once()
    post = await post_of(services, world.race.id)
    assert post.message_id != first and post.recreated == 1 and len(delivery.posts) == 2
    assert "was deleted; posting it again" in caplog.text
    edit = next(row for row in await channel_rows(services) if row.kind is NotificationKind.EDIT)
    assert edit.status is NotificationStatus.SENT and "anew" in edit.error
    await publish(services, world.event(LiveRaceFinished))
    await dispatcher.run_once()
    assert len(delivery.posts) == 2 and delivery.edits[-1][1] == post.message_id  # the new post is edited


async def test_a_race_without_a_living_post_keeps_a_post_per_step(services, world) -> None:
    """A race announced before living posts existed (its post sent, no message id kept) gets posts as before."""
    async with services.db.transaction() as session:
        session.add(
            Notification(
                kind=NotificationKind.CHANNEL,
                guild_id=GUILD,
                channel_id=CHANNEL,
                live_race_id=world.race.id,
                payload={},
                dedupe_key=f"channel:live_race_scheduled:race:{world.race.id}:channel:{CHANNEL}",
                status=NotificationStatus.SENT,
            )
        )
    await publish(services, world.event(LiveRaceStarted))
    assert [row.kind for row in await channel_rows(services)] == [NotificationKind.CHANNEL] * 2


# ---- against the fake Discord REST, with the real discord.py client ------------------------------------------


async def test_the_real_client_edits_in_place_replies_and_reposts(services, world, fake_discord, discord_delivery):
    fake_discord.add_text_channel(CHANNEL)
    dispatcher = dispatcher_for(services, discord_delivery)
    await publish(services, world.event(LiveRaceScheduled))
    await dispatcher.run_once()
    post = await post_of(services, world.race.id)
    assert fake_discord.message(post.message_id)["embeds"][0]["title"].startswith("📅")

    await publish(services, world.event(LiveRaceRoomOpened))
    await dispatcher.run_once()
    assert fake_discord.message(post.message_id)["embeds"][0]["title"].startswith("🔓")
    reply = fake_discord.posts_in(CHANNEL)[-1]
    assert int(reply["message_reference"]["message_id"]) == post.message_id
    assert [int(role) for role in reply["allowed_mentions"]["roles"]] == [ROLE]
    assert fake_discord.edits[-1][2]["allowed_mentions"]["parse"] == []  # an edit pings nobody

    fake_discord.delete_message(post.message_id)  # 10008 on the next edit: posted again
    await publish(services, world.event(LiveRaceStarted))
    await dispatcher.run_once()
    again = await post_of(services, world.race.id)
    assert again.recreated == 1 and fake_discord.message(again.message_id)["embeds"][0]["title"].startswith("🚦")


@pytest.mark.parametrize(
    ("breakage", "error"),
    [
        ("channel", "the channel no longer exists (404, code 10003)"),
        ("permission", "lacks a permission in that channel (403, code 50013)"),
    ],
)
async def test_a_missing_channel_or_permission_fails_the_edit_with_a_clear_reason(
    services, world, fake_discord, discord_delivery, breakage, error
) -> None:
    fake_discord.add_text_channel(CHANNEL)
    dispatcher = dispatcher_for(services, discord_delivery)
    await publish(services, world.event(LiveRaceScheduled))
    await dispatcher.run_once()
    if breakage == "channel":
        fake_discord.remove_text_channel(CHANNEL)
    else:
        fake_discord.fail_channel(CHANNEL, Failure.missing_permissions())
    await publish(services, world.event(LiveRaceStarted))
    report = await dispatcher.run_once()
    edit = next(row for row in await channel_rows(services) if row.kind is NotificationKind.EDIT)
    assert edit.status is NotificationStatus.FAILED and error in edit.error and report.failed == 1


async def test_edits_keep_to_the_channels_rate_limit(services, world, fake_discord, discord_delivery) -> None:
    """Edits of several races' posts in one channel share its bucket: discord.py waits, nothing is lost."""
    fake_discord.route_limits[EDIT_ROUTE] = RouteLimit(2, 0.3)
    fake_discord.add_text_channel(CHANNEL)
    dispatcher = dispatcher_for(services, discord_delivery)
    worlds = [world] + [await make_world(services, name=f"Cup {n}", announcement_channel_id=CHANNEL) for n in range(4)]
    for each in worlds:
        await publish(services, each.event(LiveRaceScheduled))
    while (await dispatcher.run_once()).handled:
        pass
    for each in worlds:
        await publish(services, each.event(LiveRaceStarted))
    while (await dispatcher.run_once()).handled:
        pass
    assert len(fake_discord.edits) == 5 and fake_discord.rate_limited[EDIT_ROUTE] == 0
    for each in worlds:
        post = await post_of(services, each.race.id)
        assert fake_discord.message(post.message_id)["embeds"][0]["title"].startswith("🚦")


def test_the_living_post_renders_without_a_ping() -> None:
    payload = {"v": 1, "event": "live_race_started", "race": {"id": 1, "title": "W"}, "living": True, "role_id": None}
    assert render(payload, channel=True).content is None


async def test_when_the_announcement_never_went_out_the_room_open_post_becomes_it(services, world) -> None:
    """Discord was down until the room opened: the scheduled post expired; the room-open post goes out once (not
    as a reply) and is the post the later steps edit."""
    delivery = RecordingDelivery()
    dispatcher = dispatcher_for(services, delivery)
    await publish(services, world.event(LiveRaceScheduled))
    await publish(services, world.event(LiveRaceRoomOpened))
    async with services.db.transaction() as session:
        race = await session.get(type(world.race), world.race.id)
        race.status = RaceStatus.ROOM_OPEN
    while (await dispatcher.run_once()).handled:
        async with services.db.transaction() as session:  # let the waiting rows come due
            await session.execute(Notification.__table__.update().values(next_attempt_at=world.race.created_at))
    assert len(delivery.posts) == 1 and delivery.posts[0][1].title.startswith("🔓")
    post = await post_of(services, world.race.id)
    assert post is not None and delivery.replies[post.message_id] is None
    assert [row.status for row in await channel_rows(services)] == [
        NotificationStatus.EXPIRED,  # the announcement, stale
        NotificationStatus.SENT,  # the edit, of the room-open post
        NotificationStatus.SENT,  # the room-open post
    ]
    await publish(services, world.event(LiveRaceStarted))
    await dispatcher.run_once()
    assert len(delivery.posts) == 1 and delivery.current[post.message_id].title.startswith("🚦")


async def test_an_announcement_that_expired_unsent_is_still_the_one_later_steps_edit(services, world) -> None:
    """Discord was down past the room opening: the announcement and the ping expired unsent. The next step does
    not fall back to a post per step: its edit posts the announcement anew, once, and the step after edits it."""
    await publish(services, world.event(LiveRaceScheduled))
    await publish(services, world.event(LiveRaceRoomOpened))
    async with services.db.transaction() as session:
        await session.execute(
            Notification.__table__.update()
            .where(Notification.kind == NotificationKind.CHANNEL)
            .values(status=NotificationStatus.EXPIRED)
        )
    await publish(services, world.event(LiveRaceStarted))
    kinds = [row.kind for row in await channel_rows(services)]
    assert kinds.count(NotificationKind.CHANNEL) == 2  # no started post: an edit
    delivery = RecordingDelivery()
    dispatcher = dispatcher_for(services, delivery)
    while (await dispatcher.run_once()).handled:
        pass
    assert len(delivery.posts) == 1 and delivery.posts[0][1].title.startswith("🚦")
    await publish(services, world.event(LiveRaceFinished))
    await dispatcher.run_once()
    post = await post_of(services, world.race.id)
    assert len(delivery.posts) == 1 and delivery.current[post.message_id].title.startswith("🏁")
