"""Every delivery outcome through the REAL discord.py HTTP and rate-limit code, against a fake Discord REST API."""

from __future__ import annotations

import re

import aiohttp
import pytest
from sqlalchemy import select, update

from bot.events import LiveRaceFinished, LiveRaceRoomOpened, LiveRaceScheduled
from bot.notifications.dispatcher import NotificationDispatcher
from db.models import LiveRace, Notification, NotificationKind, NotificationStatus, Player, RaceStatus
from tests.conftest import MODERATOR
from tests.fakes.discord_rest import MESSAGES_ROUTE, OPEN_DM_ROUTE, Failure, RouteLimit
from tests.fakes.notifications import add_player, make_world, publish, subscribe

ALICE, BOB = 701, 702
CHANNEL, ROLE = 4242, 4343
TIMESTAMP = re.compile(r"<t:\d+:F> \(<t:\d+:R>\)")


@pytest.fixture
async def world(services, fake_discord):
    world = await make_world(
        services,
        announcement_channel_id=CHANNEL,
        announcement_role_id=ROLE,
        racetime_url="https://racetime.gg/alttpr/quick-fox-1234",
    )
    fake_discord.add_text_channel(CHANNEL)
    for uid, name in ((ALICE, "alice"), (BOB, "bob")):
        await add_player(services, uid, name)
        await subscribe(services, uid)
    return world


@pytest.fixture
def dispatcher(services, discord_delivery):
    return NotificationDispatcher(services.db, services.settings, lambda: discord_delivery, jitter=lambda: 1.0)


async def row_of(services, uid: int | None = None) -> Notification:
    query = select(Notification)
    if uid is None:
        query = query.where(Notification.kind == NotificationKind.CHANNEL)
    else:
        query = query.join(Player, Player.id == Notification.player_id).where(Player.discord_user_id == uid)
    async with services.db.read() as session:
        return (await session.scalars(query.order_by(Notification.id.desc()))).first()


async def test_dms_and_the_announcement_arrive_as_embeds(services, world, fake_discord, dispatcher):
    await publish(services, world.event(LiveRaceScheduled))
    assert (await dispatcher.run_once()).sent == 3
    [dm] = fake_discord.dms_to(ALICE)
    [embed] = dm["embeds"]
    assert embed["title"] == "📅 Live race scheduled: Weekly race"
    assert embed["color"] == 0x3498DB
    assert [f["name"] for f in embed["fields"]] == ["Starts", "Room opens", "Why you get this"]
    assert TIMESTAMP.fullmatch(embed["fields"][0]["value"])
    assert "timestamp" in embed and "/notify" in embed["footer"]["text"]
    [post] = fake_discord.posts_in(CHANNEL)
    assert post["content"] == f"<@&{ROLE}>"
    # only that role may be pinged; nothing else in the message can mention anyone
    assert (post["allowed_mentions"]["parse"], post["allowed_mentions"]["roles"]) == ([], [ROLE])


async def test_a_dm_channel_is_opened_once_and_reused_after_a_restart(
    services, world, fake_discord, dispatcher, discord_client
):
    await publish(services, world.event(LiveRaceScheduled))
    await dispatcher.run_once()
    assert fake_discord.requests[OPEN_DM_ROUTE] == 2
    stored = (await services.players.find(ALICE)).dm_channel_id
    assert stored == fake_discord.dm_channel_of(ALICE)
    discord_client._connection.clear()  # a restart: discord.py's own cache is gone, the database remains
    await publish(services, world.event(LiveRaceRoomOpened))
    await dispatcher.run_once()
    assert fake_discord.requests[OPEN_DM_ROUTE] == 2
    assert len(fake_discord.dms_to(ALICE)) == 2


async def test_a_dm_channel_discord_no_longer_knows_is_replaced(services, world, fake_discord, dispatcher):
    await publish(services, world.event(LiveRaceScheduled))
    await dispatcher.run_once()
    old = fake_discord.forget_dm_channel(ALICE)
    await publish(services, world.event(LiveRaceRoomOpened))
    await dispatcher.run_once()
    new = (await services.players.find(ALICE)).dm_channel_id
    assert new != old and new == fake_discord.dm_channel_of(ALICE)
    assert (await row_of(services, ALICE)).status is NotificationStatus.SENT


async def test_dms_closed_50007_fails_at_once_and_blocks_the_player(services, world, fake_discord, dispatcher):
    fake_discord.fail_dm(ALICE, Failure.dms_closed())
    await publish(services, world.event(LiveRaceScheduled))
    await dispatcher.run_once()
    row = await row_of(services, ALICE)
    assert (row.status, row.attempts) == (NotificationStatus.FAILED, 1)
    assert "50007" in row.error
    assert (await services.players.find(ALICE)).dm_blocked
    await publish(services, world.event(LiveRaceRoomOpened))
    await dispatcher.run_once()
    assert (await row_of(services, ALICE)).status is NotificationStatus.SKIPPED
    assert fake_discord.dms_to(ALICE) == []
    assert len(fake_discord.dms_to(BOB)) == 2


async def test_a_short_429_is_waited_out_by_discord_py_and_the_dm_is_sent(services, world, fake_discord, dispatcher):
    fake_discord.fail_dm(ALICE, Failure.rate_limited(0.05))
    await publish(services, world.event(LiveRaceScheduled))
    await dispatcher.run_once()
    row = await row_of(services, ALICE)
    assert (row.status, row.attempts) == (NotificationStatus.SENT, 1)
    assert len(fake_discord.dms_to(ALICE)) == 1
    assert fake_discord.requests[MESSAGES_ROUTE] == 4  # 3 messages, one of them asked twice


async def test_a_global_429_is_waited_out_too(services, world, fake_discord, dispatcher):
    fake_discord.fail_dm(BOB, Failure.rate_limited(0.05, is_global=True))
    await publish(services, world.event(LiveRaceScheduled))
    assert (await dispatcher.run_once()).sent == 3


async def test_a_long_429_becomes_a_retry_after_its_retry_after(services, world, fake_discord, dispatcher):
    fake_discord.fail_dm(ALICE, Failure.rate_limited(90.0))  # over discord.py's max_ratelimit_timeout
    await publish(services, world.event(LiveRaceScheduled))
    await dispatcher.run_once()
    row = await row_of(services, ALICE)
    assert (row.status, row.attempts) == (NotificationStatus.RETRYING, 1)
    assert "Rate limited" in row.error
    assert (row.next_attempt_at - row.created_at).total_seconds() >= 90


async def test_repeated_429s_end_in_a_retry(services, world, fake_discord, dispatcher):
    fake_discord.fail_dm(ALICE, *[Failure.rate_limited(0.01)] * 5)  # discord.py tries five times
    await publish(services, world.event(LiveRaceScheduled))
    await dispatcher.run_once()
    row = await row_of(services, ALICE)
    assert row.status is NotificationStatus.RETRYING and "429" in row.error
    assert not row.maybe_delivered  # a 429 made nothing: the row may expire if it goes stale


async def test_a_passing_server_error_is_retried_by_discord_py_itself(services, world, fake_discord, dispatcher):
    fake_discord.fail_dm(ALICE, Failure.server_error(502))  # discord.py retries 500/502/504 after a second
    await publish(services, world.event(LiveRaceScheduled))
    await dispatcher.run_once()
    row = await row_of(services, ALICE)
    assert (row.status, row.attempts) == (NotificationStatus.SENT, 1)
    assert fake_discord.requests[MESSAGES_ROUTE] == 4


async def test_server_errors_are_retried_with_backoff(services, world, fake_discord, dispatcher):
    fake_discord.fail_dm(ALICE, Failure.server_error(503))
    await publish(services, world.event(LiveRaceScheduled))
    await dispatcher.run_once()
    row = await row_of(services, ALICE)
    assert (row.status, row.attempts) == (NotificationStatus.RETRYING, 1)
    assert "server error" in row.error and "503" in row.error
    assert round((row.next_attempt_at - row.created_at).total_seconds()) >= 5
    assert not row.maybe_delivered  # 503: not processed


async def test_a_server_error_other_than_503_may_have_made_the_message(services, world, fake_discord, dispatcher):
    fake_discord.fail_dm(ALICE, *[Failure.server_error(500)] * 5)  # past discord.py's own retries
    await publish(services, world.event(LiveRaceScheduled))
    await dispatcher.run_once()
    row = await row_of(services, ALICE)
    assert row.status is NotificationStatus.RETRYING and "500" in row.error
    assert row.maybe_delivered  # never reported expired: sent again with its nonce


async def test_a_malformed_message_fails_with_discords_reason(services, world, fake_discord, dispatcher):
    fake_discord.fail_channel(CHANNEL, Failure.malformed())
    await publish(services, world.event(LiveRaceScheduled))
    await dispatcher.run_once()
    row = await row_of(services)
    assert (row.status, row.attempts) == (NotificationStatus.FAILED, 1)
    assert "malformed" in row.error and "50035" in row.error and "Invalid Form Body" in row.error


async def test_a_channel_the_bot_cannot_post_in_fails(services, world, fake_discord, dispatcher):
    fake_discord.fail_channel(CHANNEL, Failure.missing_access())
    await publish(services, world.event(LiveRaceScheduled))
    await dispatcher.run_once()
    row = await row_of(services)
    assert row.status is NotificationStatus.FAILED and "50001" in row.error


async def test_an_unknown_channel_fails(services, world, fake_discord, dispatcher):
    await services.tournaments.update_tournament(
        world.guild_id, world.tournament.id, MODERATOR, announcement_channel_id=9
    )
    await publish(services, world.event(LiveRaceScheduled))
    await dispatcher.run_once()
    row = await row_of(services)
    assert row.status is NotificationStatus.FAILED and "10003" in row.error


async def test_network_errors_are_retried(services, world, fake_discord, dispatcher):
    await publish(services, world.event(LiveRaceScheduled))
    await fake_discord.stop()  # Discord unreachable
    await dispatcher.run_once()
    row = await row_of(services, ALICE)
    assert (row.status, row.attempts) == (NotificationStatus.RETRYING, 1)
    assert row.error.startswith("Network error reaching Discord")
    assert not row.maybe_delivered  # no connection was made: nothing can have reached Discord


async def test_per_route_buckets_are_respected_without_429s(services, world, fake_discord, dispatcher):
    """Six announcements in one channel (edits have their own bucket: test_living_announcement.py)."""
    fake_discord.route_limits[MESSAGES_ROUTE] = RouteLimit(2, 0.2)
    for n in range(6):
        each = await make_world(services, name=f"T{n}", announcement_channel_id=CHANNEL)
        await publish(services, each.event(LiveRaceScheduled))
    async with services.db.transaction() as session:  # only the six posts in one channel
        await session.execute(
            update(Notification).where(Notification.kind == NotificationKind.DM).values(status="sent")
        )
    await dispatcher.run_once()
    assert len(fake_discord.posts_in(CHANNEL)) == 6
    assert fake_discord.rate_limited[MESSAGES_ROUTE] == 0


async def test_buttons_arrive_with_the_message_and_an_edit_replaces_or_removes_them(
    services, world, fake_discord, dispatcher
):
    await publish(services, world.event(LiveRaceScheduled))
    await dispatcher.run_once()
    [announcement] = [m for m in fake_discord.messages.values() if int(m["channel_id"]) == CHANNEL]
    [row] = announcement["components"]
    assert [(b["type"], b["style"], b["label"]) for b in row["components"]] == [
        (2, 3, "I'm racing"),
        (2, 2, "Not this time"),
    ]
    [dm] = fake_discord.dms_to(ALICE)
    assert [b["label"] for b in dm["components"][0]["components"]] == [
        "Open the room",  # the world's race knows its room already
        "Mute this kind",
        "No more DMs from this server",  # a client with no gateway knows no guild names
    ]
    async with services.db.transaction() as session:
        await session.execute(update(LiveRace).values(status=RaceStatus.FINISHED))
    await publish(services, world.event(LiveRaceFinished))
    await dispatcher.run_once()
    assert fake_discord.edits[-1][2]["components"] == [] and announcement["components"] == []


@pytest.mark.parametrize(
    "components",
    [
        [{"type": 1, "components": [{"type": 2, "style": 5, "label": "Room"}]}],  # a link without its url
        [{"type": 1, "components": [{"type": 2, "style": 2, "label": "x", "custom_id": "a" * 101}]}],
        [{"type": 1, "components": [{"type": 2, "style": 2, "label": "x" * 81, "custom_id": "a"}]}],
        [{"type": 1, "components": [{"type": 2, "style": 2, "label": "x", "custom_id": "a"}] * 2}],  # not unique
        [{"type": 1, "components": []}],
        [{"type": 1, "components": [{"type": 2, "style": 2, "label": "x", "custom_id": "a"}]}] * 6,
    ],
)
async def test_the_fake_refuses_components_discord_refuses(fake_discord, components):
    fake_discord.add_text_channel(CHANNEL)
    async with aiohttp.ClientSession() as http:
        answer = await http.post(
            f"{fake_discord.api_base}/channels/{CHANNEL}/messages", json={"content": "x", "components": components}
        )
        assert answer.status == 400 and (await answer.json())["code"] == 50035
