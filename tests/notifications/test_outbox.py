"""The outbox writer: who gets what, exactly once, in the publisher's transaction."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import event, select

from bot.events import (
    LiveRaceCancelled,
    LiveRaceFinished,
    LiveRaceOpenFailed,
    LiveRaceRoomOpened,
    LiveRaceScheduled,
    LiveRaceStarted,
)
from bot.notifications.render import render
from bot.services.notification_outbox import dm_dedupe_key
from db.models import (
    EventType,
    GuildSettings,
    LiveRace,
    Notification,
    NotificationKind,
    NotificationStatus,
    RaceStatus,
    RunStatus,
)
from tests.conftest import GUILD, MODERATOR, OTHER_GUILD
from tests.fakes.notifications import add_player, add_run, make_world, publish, subscribe

ALICE, BOB, CARA, DAN = 501, 502, 503, 504


async def dm_rows(services, event_type: EventType | None = None) -> list[Notification]:
    query = select(Notification).where(Notification.kind == NotificationKind.DM).order_by(Notification.id)
    if event_type is not None:
        query = query.where(Notification.event_type == event_type)
    async with services.db.read() as session:
        return list((await session.scalars(query)).all())


async def recipients(services, event_type: EventType) -> set[int]:
    from db.models import Player

    async with services.db.read() as session:
        rows = await session.execute(
            select(Player.discord_user_id)
            .join(Notification, Notification.player_id == Player.id)
            .where(Notification.event_type == event_type, Notification.kind == NotificationKind.DM)
        )
        return {row[0] for row in rows}


@pytest.fixture
async def world(services):
    return await make_world(services)


@pytest.fixture
async def players(services, world):
    """alice: subscribed, eligible. bob: subscribed, not linked. cara: eligible, not subscribed.
    dan: subscribed for every guild, eligible."""
    ids = {
        ALICE: await add_player(services, ALICE, "alice"),
        BOB: await add_player(services, BOB, "bob", linked=False),
        CARA: await add_player(services, CARA, "cara"),
        DAN: await add_player(services, DAN, "dan"),
    }
    await subscribe(services, ALICE)
    await subscribe(services, BOB)
    await subscribe(services, DAN, guild_id=None)
    return ids


@pytest.mark.parametrize("event_cls", [LiveRaceScheduled, LiveRaceRoomOpened])
async def test_scheduled_and_room_opened_go_to_eligible_subscribers(services, world, players, event_cls):
    await publish(services, world.event(event_cls))
    assert await recipients(services, event_cls.type) == {ALICE, DAN}


async def test_a_guild_opt_out_overrides_an_all_guilds_opt_in(services, world, players):
    await services.notifications.set_preference(
        DAN, EventType.LIVE_RACE_SCHEDULED, False, guild_id=GUILD, actor=MODERATOR
    )
    await publish(services, world.event(LiveRaceScheduled))
    assert await recipients(services, EventType.LIVE_RACE_SCHEDULED) == {ALICE}


async def test_players_who_already_played_the_seed_are_not_told(services, world, players):
    await add_run(services, world, players[ALICE], status=RunStatus.FINISHED, place=1, elapsed_us=10**9)
    async with services.db.transaction() as session:  # a run of another race on this seed
        from db.models import Run

        run = await session.scalar(select(Run))
        run.live_race_id = None
    await publish(services, world.event(LiveRaceScheduled))
    assert await recipients(services, EventType.LIVE_RACE_SCHEDULED) == {DAN}


@pytest.mark.parametrize("event_cls", [LiveRaceStarted, LiveRaceFinished])
async def test_started_and_finished_go_to_subscribed_participants_only(services, world, players, event_cls):
    participants = (players[ALICE], players[BOB], players[CARA])  # dan is subscribed but did not race
    await publish(services, world.event(event_cls, participant_player_ids=participants))
    # bob is not linked, but he raced and subscribed: participants are told whatever their eligibility
    assert await recipients(services, event_cls.type) == {ALICE, BOB}


async def test_cancelled_goes_to_eligible_subscribers_and_subscribed_participants(services, world, players):
    await publish(
        services,
        world.event(
            LiveRaceCancelled,
            reason="RaceTime.gg is down",
            previous_status="in_progress",
            participant_player_ids=(players[BOB], players[CARA]),
        ),
    )
    assert await recipients(services, EventType.LIVE_RACE_CANCELLED) == {ALICE, DAN, BOB}


async def test_members_of_other_guilds_are_never_told(services, world, players):
    outsider = 777
    await add_player(services, outsider, "outsider", guild_id=OTHER_GUILD)
    await subscribe(services, outsider, guild_id=None)
    await publish(services, world.event(LiveRaceScheduled))
    assert outsider not in await recipients(services, EventType.LIVE_RACE_SCHEDULED)


async def test_an_inactive_tournament_notifies_nobody_eligible(services, world, players):
    await services.tournaments.update_tournament(GUILD, world.tournament.id, MODERATOR, active=False)
    await publish(services, world.event(LiveRaceScheduled))
    assert await dm_rows(services) == []


async def test_the_same_event_twice_queues_nothing_more(services, world, players):
    scheduled = world.event(LiveRaceScheduled)
    await publish(services, scheduled)
    await publish(services, scheduled)
    await publish(services, world.event(LiveRaceScheduled))  # a re-publish after a restart: new time, same event
    rows = await dm_rows(services)
    assert sorted(row.dedupe_key for row in rows) == sorted(
        dm_dedupe_key(EventType.LIVE_RACE_SCHEDULED, world.race.id, players[uid]) for uid in (ALICE, DAN)
    )


async def test_rows_roll_back_with_the_change_that_caused_them(services, world, players):
    with pytest.raises(RuntimeError):
        async with services.db.transaction() as session:
            await services.events.publish(session, world.event(LiveRaceScheduled))
            raise RuntimeError("the state change failed")
    assert await dm_rows(services) == []


async def test_rows_are_written_in_the_publishers_session_and_see_its_uncommitted_change(services, world, players):
    async with services.db.transaction() as session:
        race = await session.get(LiveRace, world.race.id)
        race.status = RaceStatus.ROOM_OPEN
        race.racetime_url = "https://racetime.gg/alttpr/clever-link-1234"
        await services.events.publish(session, world.event(LiveRaceRoomOpened))
    payload = (await dm_rows(services))[0].payload
    assert payload["race"]["room_url"] == "https://racetime.gg/alttpr/clever-link-1234"
    assert payload["race"]["status"] == "room_open"


async def test_the_payload_is_a_snapshot_that_later_edits_do_not_change(services, world, players):
    await publish(services, world.event(LiveRaceScheduled))
    async with services.db.transaction() as session:
        race = await session.get(LiveRace, world.race.id)
        race.title = "Renamed later"
    row = (await dm_rows(services))[0]
    assert row.payload["race"]["title"] == "Weekly race"
    assert render(row.payload).title.endswith("Weekly race")


async def test_room_opened_payload_has_the_resolved_room_settings_and_seed_hint(services, players):
    world = await make_world(
        services, name="Hinted", seed_notes="Open mode, no glitches", racetime_url="https://racetime.gg/alttpr/x-1"
    )
    async with services.db.transaction() as session:
        race = await session.get(LiveRace, world.race.id)
        race.room_settings = {"start_delay": 30, "auto_start": False}
    await publish(services, world.event(LiveRaceRoomOpened))
    race = (await dm_rows(services))[0].payload["race"]
    assert (race["start_delay"], race["auto_start"], race["time_limit"]) == (30, False, 24)
    assert "Open mode, no glitches" in race["seed_hint"]
    assert race["room_url"] == "https://racetime.gg/alttpr/x-1"


async def test_room_opens_at_uses_the_lead_minutes(services, players):
    world = await make_world(services, name="Lead", room_open_lead_minutes=30)
    await publish(services, world.event(LiveRaceScheduled))
    race = (await dm_rows(services))[0].payload["race"]
    assert race["scheduled_at"] - race["room_opens_at"] == 30 * 60


async def test_finished_payload_carries_each_players_own_result(services, world, players):
    await add_run(services, world, players[ALICE], place=1, elapsed_us=3_600_000_000, score=104.0)
    await add_run(services, world, players[BOB], place=2, elapsed_us=4_000_000_000, score=90.5)
    await add_run(services, world, players[CARA], status=RunStatus.FORFEIT, score=0.0)
    await publish(
        services,
        world.event(LiveRaceFinished, participant_player_ids=(players[ALICE], players[BOB], players[CARA])),
    )
    rows = {row.player_id: row.payload for row in await dm_rows(services)}
    assert rows[players[ALICE]]["result"] == {
        "status": "finished",
        "place": 1,
        "elapsed_us": 3_600_000_000,
        "score": 104.0,
    }
    assert rows[players[BOB]]["result"]["place"] == 2
    assert rows[players[ALICE]]["race"]["finisher_count"] == 2
    assert rows[players[ALICE]]["race"]["participant_count"] == 3


async def test_recipients_are_found_in_a_fixed_number_of_queries(services, world):
    """Set-wise: the statement count does not grow with the number of players."""

    async def statements_for(count: int, offset: int) -> int:
        for n in range(count):
            uid = offset + n
            await add_player(services, uid, f"p{uid}")
            await subscribe(services, uid)
        executed = []

        def record(*_args):
            executed.append(1)

        event.listen(services.db.engine.sync_engine, "before_cursor_execute", record)
        try:
            await publish(services, world.event(LiveRaceCancelled, reason="x", previous_status="scheduled"))
        finally:
            event.remove(services.db.engine.sync_engine, "before_cursor_execute", record)
        async with services.db.transaction() as session:  # start again for the next measurement
            for row in await dm_rows(services):
                await session.delete(await session.get(Notification, row.id))
        return len(executed)

    assert await statements_for(3, 10_000) == await statements_for(40, 20_000)


# ---- channels ------------------------------------------------------------------------------------------
async def channel_rows(services) -> list[Notification]:
    async with services.db.read() as session:
        return list(
            (
                await session.scalars(
                    select(Notification).where(Notification.kind == NotificationKind.CHANNEL).order_by(Notification.id)
                )
            ).all()
        )


async def test_each_event_is_announced_once_in_the_tournament_channel_with_its_role(services, players):
    world = await make_world(services, name="Announced", announcement_channel_id=42, announcement_role_id=43)
    for event_cls in (LiveRaceScheduled, LiveRaceRoomOpened, LiveRaceStarted):
        await publish(services, world.event(event_cls))
        await publish(services, world.event(event_cls))
    rows = await channel_rows(services)
    assert [(r.event_type, r.channel_id, r.payload["role_id"]) for r in rows] == [
        (EventType.LIVE_RACE_SCHEDULED, 42, 43),
        (EventType.LIVE_RACE_ROOM_OPENED, 42, 43),  # the ping: a reply to the living announcement
    ]
    assert rows[0].payload["living"] is True and rows[1].payload["reply"] is True
    assert all(r.player_id is None and r.status is NotificationStatus.PENDING for r in rows)
    async with services.db.read() as session:  # the later steps edit the announcement, once each, pinging nobody
        edits = (await session.scalars(select(Notification).where(Notification.kind == NotificationKind.EDIT))).all()
    assert [(r.event_type, r.channel_id, r.payload["role_id"]) for r in edits] == [
        (EventType.LIVE_RACE_ROOM_OPENED, 42, None),
        (EventType.LIVE_RACE_STARTED, 42, None),
    ]


async def test_the_guild_default_channel_and_role_apply_when_the_tournament_names_none(services, world, players):
    await services.guilds.update(GUILD, MODERATOR, announcement_channel_id=50, announcement_role_id=51)
    await publish(services, world.event(LiveRaceScheduled))
    [row] = await channel_rows(services)
    assert (row.channel_id, row.payload["role_id"]) == (50, 51)


async def test_no_channel_configured_means_no_announcement(services, world, players):
    await publish(services, world.event(LiveRaceScheduled))
    assert await channel_rows(services) == []


async def test_finished_announcement_has_the_podium(services, players):
    world = await make_world(services, name="Podium", announcement_channel_id=42)
    for place, uid in enumerate((ALICE, DAN, CARA, BOB), start=1):
        await add_run(services, world, players[uid], place=place, elapsed_us=place * 10**9, score=100.0)
    await publish(services, world.event(LiveRaceFinished, participant_player_ids=tuple(players.values())))
    [row] = await channel_rows(services)
    assert [p["name"] for p in row.payload["race"]["podium"]] == ["alice", "dan", "cara"]
    assert "result" not in row.payload


async def test_open_failure_alerts_the_moderator_channel_pinging_organizers(services, world, players):
    await services.guilds.update(
        GUILD, MODERATOR, moderator_channel_id=60, announcement_channel_id=61, organizer_role_id=62
    )
    failed = world.event(LiveRaceOpenFailed, error="RaceTime.gg answered 503", attempts=6)
    await publish(services, failed)
    await publish(services, failed)
    [row] = await channel_rows(services)
    assert (row.channel_id, row.event_type, row.payload["role_id"]) == (60, None, 62)
    assert row.payload["alert"] == {"error": "RaceTime.gg answered 503", "attempts": 6}
    assert await dm_rows(services) == []


async def test_open_failure_falls_back_to_the_announcement_channel(services, world, players):
    await services.guilds.update(GUILD, MODERATOR, announcement_channel_id=61)
    await publish(services, world.event(LiveRaceOpenFailed, error="boom", attempts=3))
    await publish(services, world.event(LiveRaceOpenFailed, error="boom again", attempts=6))
    assert [r.channel_id for r in await channel_rows(services)] == [61, 61]


async def test_a_second_give_up_after_open_now_alerts_again(services, world, players):
    """Regression: the alert key once held `attempts`, always open_max_attempts at a give-up, so a race that
    gave up again after /liverace open was never announced a second time."""
    await services.guilds.update(GUILD, MODERATOR, moderator_channel_id=60)
    first = world.event(LiveRaceOpenFailed, error="boom", attempts=6)
    again = world.event(
        LiveRaceOpenFailed, error="boom", attempts=6, occurred_at=first.occurred_at + timedelta(minutes=30)
    )
    for give_up in (first, first, again, again):
        await publish(services, give_up)
    assert len(await channel_rows(services)) == 2


async def test_open_failure_without_any_channel_queues_nothing(services, world, players):
    await publish(services, world.event(LiveRaceOpenFailed, error="boom", attempts=3))
    assert await channel_rows(services) == []


async def test_an_event_for_another_guilds_race_queues_nothing(services, world, players):
    await publish(services, world.event(LiveRaceScheduled, guild_id=OTHER_GUILD))
    assert await dm_rows(services) == []


async def test_settings_row_absent_is_fine(services, world, players):
    async with services.db.read() as session:
        assert await session.get(GuildSettings, GUILD) is None
    await publish(services, world.event(LiveRaceScheduled))
    assert Counter(r.kind for r in await dm_rows(services)) == {NotificationKind.DM: 2}
