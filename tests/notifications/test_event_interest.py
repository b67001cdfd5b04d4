"""Interested on a race's Discord Scheduled Event (issue 13) and the guild's default reminder offsets, through the
real services, the outbox and the dispatcher (an in-memory delivery, a settable clock): interest is mapped to the
race through its event of the same guild, recorded and withdrawn (gateway, a member leaving, the event's user list
read again), and gets the race's reminders like an RSVP, once, even with the general reminders off. The Discord
side (the gateway's dispatches, the paginated user list) is in tests/test_discord_interest.py."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text

from bot.errors import ValidationFailed
from bot.events import LiveRaceRescheduled, LiveRaceScheduled
from bot.services.live_races import REMOVED_REASON
from db.models import EventType, GuildPlayer, Notification, Player, RaceInterest, RaceScheduledEvent
from tests.api.test_api_isolation import guild_footprint
from tests.conftest import GUILD, MODERATOR, OTHER_GUILD
from tests.fakes.notifications import add_player, make_world, subscribe

ALICE, BOB, CAROL, DAVE = 911, 912, 913, 914
STRANGER = 915  # never used the bot in the guild: no roster entry
EVENT, OTHER_EVENT = 5_000_000_000_000_000_001, 5_000_000_000_000_000_002
RESCHEDULED, CANCELLED = EventType.LIVE_RACE_RESCHEDULED, EventType.LIVE_RACE_CANCELLED


@pytest.fixture
async def world(services, app_clock):
    world = await make_world(services, scheduled_at=app_clock.now + timedelta(hours=30))
    for user, name in ((ALICE, "alice"), (BOB, "bob"), (CAROL, "carol"), (DAVE, "dave")):
        await add_player(services, user, name)
    await record_event(services, world.race.id, EVENT)
    return world


async def record_event(services, race_id: int, event_id: int, *, guild_id: int = GUILD) -> None:
    """The race's scheduled event as the dispatcher records it once Discord made it."""
    async with services.db.transaction() as session:
        session.add(RaceScheduledEvent(guild_id=guild_id, live_race_id=race_id, event_id=event_id, status=1))


async def interest_rows(services) -> list[tuple[int, int, bool]]:
    async with services.db.read() as session:
        rows = await session.execute(
            select(RaceInterest.live_race_id, Player.discord_user_id, RaceInterest.interested)
            .join(Player, Player.id == RaceInterest.player_id)
            .order_by(RaceInterest.id)
        )
        return [tuple(row) for row in rows.all()]


async def wait_for_the_lock(services, session, waiting: asyncio.Task) -> None:
    """Return once `waiting` waits for the lock `session` holds (PostgreSQL: seen in pg_stat_activity; SQLite: it
    reached its BEGIN IMMEDIATE, which waits for this writer), before the holder changes anything."""
    if session.bind.dialect.name == "postgresql":
        for _ in range(10_000):
            async with services.db.read() as probe:
                query = text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
                if await probe.scalar(query):
                    break
            await asyncio.sleep(0.005)
        else:
            pytest.fail("it never waited for the race's lock")
    else:
        for _ in range(20):
            await asyncio.sleep(0)
    assert not waiting.done()


async def count(services, model) -> int:
    async with services.db.read() as session:
        return await session.scalar(select(func.count()).select_from(model))


async def test_interest_is_recorded_and_withdrawn_through_the_races_event(services, world) -> None:
    reminders = services.reminders
    assert await reminders.set_interest(GUILD, EVENT, BOB, True) is True
    assert await reminders.set_interest(GUILD, EVENT, BOB, True) is False  # Discord may repeat a dispatch
    assert await reminders.set_interest(GUILD, EVENT, STRANGER, True) is True  # no roster entry needed
    assert [uid for uid, _ in await reminders.interested(GUILD, world.race.id)] == [BOB, STRANGER]
    names = dict(await reminders.interested(GUILD, world.race.id))
    assert names[BOB] == "bob" and names[STRANGER] == str(STRANGER)
    async with services.db.read() as session:  # pressing Interested makes no one a member of the roster
        assert (
            await session.scalar(
                select(func.count()).select_from(GuildPlayer).join(Player).where(Player.discord_user_id == STRANGER)
            )
            == 0
        )
    assert await reminders.set_interest(GUILD, EVENT, BOB, False) is True
    assert await reminders.set_interest(GUILD, EVENT, BOB, False) is False
    assert [uid for uid, _ in await reminders.interested(GUILD, world.race.id)] == [STRANGER]
    assert (world.race.id, BOB, False) in await interest_rows(services)  # kept as a withdrawal


async def test_an_unknown_or_foreign_event_is_ignored_with_no_side_effect(services, world, app_clock) -> None:
    theirs = await make_world(
        services, guild_id=OTHER_GUILD, name="Their cup", scheduled_at=app_clock.now + timedelta(hours=5)
    )
    await record_event(services, theirs.race.id, OTHER_EVENT, guild_id=OTHER_GUILD)
    before = (await guild_footprint(services.db, GUILD), await guild_footprint(services.db, OTHER_GUILD))
    players = await count(services, Player)
    reminders = services.reminders
    assert await reminders.set_interest(GUILD, 42, BOB, True) is False  # no race's event
    assert await reminders.set_interest(OTHER_GUILD, EVENT, STRANGER, True) is False  # our event, their guild
    assert await reminders.set_interest(GUILD, OTHER_EVENT, STRANGER, True) is False  # their event, our guild
    assert await reminders.replace_interest(GUILD, OTHER_EVENT, [BOB], read_at=app_clock.now) == 0
    assert (await guild_footprint(services.db, GUILD), await guild_footprint(services.db, OTHER_GUILD)) == before
    assert await count(services, Player) == players
    with pytest.raises(ValidationFailed):
        await reminders.set_interest(GUILD, EVENT, 0, True)


async def test_an_interested_player_who_opted_out_gets_that_races_reminder_once(
    services, world, app_clock, app_dispatcher, app_delivery
) -> None:
    await make_world(services, name="Other cup", title="Other race", scheduled_at=app_clock.now + timedelta(hours=30))
    reminders = services.reminders
    await subscribe(services, BOB)
    await reminders.set_offsets(BOB, GUILD, "none")  # Bob turned his general reminders off
    await reminders.set_interest(GUILD, EVENT, BOB, True)
    await reminders.set_interest(GUILD, EVENT, STRANGER, True)
    app_clock.advance(hours=29, minutes=5)  # 55 min before both races
    for _ in range(3):  # any number of job runs (or processes) queue it once
        await reminders.queue_due()
    await app_dispatcher.run_once()
    await reminders.queue_due()
    await app_dispatcher.run_once()
    sent = sorted(app_delivery.dm_recipients())
    assert sent == [BOB, STRANGER]  # once each, for the race they are interested in, not for `other`
    why = {f.value for _, m, _ in app_delivery.dms for f in m.fields if f.name == "Why you get this"}
    assert why == {"You pressed Interested on its Discord event. Change your reminders with /notify reminders."}
    assert all(m.title.endswith(": Weekly race") for _, m, _ in app_delivery.dms)


async def test_leaving_the_guild_withdraws_interest_and_a_left_member_gets_no_reminder(
    services, world, app_clock, app_dispatcher, app_delivery
) -> None:
    reminders = services.reminders
    for user in (BOB, CAROL):
        await reminders.set_interest(GUILD, EVENT, user, True)
    assert await reminders.member_left(GUILD, BOB) == 1
    assert await reminders.member_left(OTHER_GUILD, CAROL) == 0  # another guild: nothing of ours
    assert await reminders.member_left(GUILD, 999_999) == 0
    # Carol's departure was missed, but her roster entry says she left: no DM from this guild.
    await services.players.member_left(GUILD, CAROL)
    assert [uid for uid, _ in await reminders.interested(GUILD, world.race.id)] == [CAROL]
    app_clock.advance(hours=29, minutes=5)
    assert await reminders.queue_due() == 0
    await app_dispatcher.run_once()
    assert app_delivery.dms == []


async def test_the_guild_default_applies_to_players_without_their_own_choice(
    services, world, app_clock, app_dispatcher, app_delivery
) -> None:
    reminders = services.reminders
    settings = await services.guilds.update(GUILD, MODERATOR, default_reminder_offsets="10m, 24h")
    assert settings.default_reminder_offsets == "1440,10"
    assert await reminders.guild_default(GUILD) == (1440, 10) and await reminders.guild_default(OTHER_GUILD) == ()
    for user in (BOB, CAROL, DAVE):
        await subscribe(services, user)
    await reminders.set_offsets(CAROL, GUILD, "1h")  # her own choice wins over the default
    await reminders.set_offsets(DAVE, GUILD, "none")  # no general reminders for Dave
    await reminders.set_rsvp(GUILD, world.race.id, ALICE, True)  # RSVP'd, no choice: the guild's default
    assert await reminders.personal_offsets(ALICE, GUILD) == (1440, 10)
    assert await reminders.personal_offsets(CAROL, GUILD) == (60,)
    ids = {user: (await services.players.get(GUILD, user)).id for user in (ALICE, BOB, CAROL, DAVE)}

    async def due_now() -> set[tuple[int, int]]:
        await reminders.queue_due()
        async with services.db.read() as session:
            rows = (await session.scalars(select(Notification).where(Notification.dedupe_key.like("reminder:%")))).all()
        return {(row.player_id, row.payload["reminder"]["offset_minutes"]) for row in rows}

    app_clock.advance(hours=7)  # 23 h before
    assert await due_now() == {(ids[ALICE], 1440), (ids[BOB], 1440)}
    app_clock.advance(hours=22, minutes=5)  # 55 min before
    assert (ids[CAROL], 60) in await due_now()
    app_clock.advance(minutes=50)  # 5 min before
    assert {(p, o) for p, o in await due_now() if o == 10} == {(ids[ALICE], 10), (ids[BOB], 10)}
    await app_dispatcher.run_once()
    assert DAVE not in app_delivery.dm_recipients()

    # Cleared ("none"): back to the built-in rules.
    assert (
        await services.guilds.update(GUILD, MODERATOR, default_reminder_offsets="none")
    ).default_reminder_offsets is None
    assert await reminders.personal_offsets(ALICE, GUILD) == (60,)


@pytest.mark.parametrize("bad", ["5m", "2h", "soon", "10m,30m,1h,3h", [7], [True], "-10m"])
async def test_a_bad_guild_default_is_refused_and_changes_nothing(services, bad) -> None:
    await services.guilds.update(GUILD, MODERATOR, default_reminder_offsets=[60])
    with pytest.raises(ValidationFailed):
        await services.guilds.update(GUILD, MODERATOR, default_reminder_offsets=bad)
    assert await services.reminders.guild_default(GUILD) == (60,)


async def test_the_event_user_list_never_undoes_a_newer_gateway_change(services, world, app_clock) -> None:
    reminders = services.reminders
    await reminders.set_interest(GUILD, EVENT, ALICE, True)
    await reminders.set_interest(GUILD, EVENT, DAVE, True)
    read_at = app_clock.advance(seconds=1)  # the list is read from here on (a gateway change at that instant wins)
    app_clock.advance(seconds=1)
    # While the list was being read: Bob pressed Interested, Dave took it back (both after `read_at`).
    await reminders.set_interest(GUILD, EVENT, BOB, True)
    await reminders.set_interest(GUILD, EVENT, DAVE, False)
    app_clock.advance(seconds=1)
    listed = [DAVE, CAROL, STRANGER]  # as read: Dave still in, Bob not yet; Alice took hers back during the outage
    assert await reminders.replace_interest(GUILD, EVENT, listed, read_at=read_at) == 3  # Alice out, Carol, Stranger in
    assert sorted(uid for uid, _ in await reminders.interested(GUILD, world.race.id)) == [BOB, CAROL, STRANGER]
    # A list cut short (over the bound) only adds.
    app_clock.advance(seconds=1)
    assert await reminders.replace_interest(GUILD, EVENT, [ALICE], read_at=app_clock.now, complete=False) == 1
    assert sorted(uid for uid, _ in await reminders.interested(GUILD, world.race.id)) == [ALICE, BOB, CAROL, STRANGER]


async def test_interest_and_a_deletion_or_reschedule_leave_a_consistent_state(
    services, world, app_clock, app_dispatcher, app_delivery
) -> None:
    """Both orders of a gateway dispatch and a moderator's change of the race (they take the race's lock in turn):
    interest in a deleted race is ignored and goes with it (those Interested before are told it is gone); interest
    survives a reschedule and reminds at the new start. The user list arriving while the race is deleted is in
    tests/test_discord_interest.py (a held request)."""
    reminders = services.reminders
    doomed = await make_world(services, name="Doomed cup", scheduled_at=app_clock.now + timedelta(hours=3))
    await record_event(services, doomed.race.id, OTHER_EVENT)
    await reminders.set_interest(GUILD, OTHER_EVENT, BOB, True)
    # Bob knows of the race (Interested): he is told it is gone
    assert await services.live_races.delete(GUILD, doomed.race.id, MODERATOR) is True
    assert [row for row in await interest_rows(services) if row[0] == doomed.race.id] == []
    assert await reminders.set_interest(GUILD, OTHER_EVENT, CAROL, True) is False  # after: ignored, nothing written
    assert [row for row in await interest_rows(services) if row[0] == doomed.race.id] == []

    await reminders.set_interest(GUILD, EVENT, BOB, True)
    moved = world.race.scheduled_at - timedelta(hours=20)  # 10 h from now
    await services.live_races.edit(GUILD, world.race.id, MODERATOR, scheduled_at=moved)
    await reminders.set_interest(GUILD, EVENT, CAROL, True)
    app_clock.advance(hours=9, minutes=5)
    await reminders.queue_due()
    await app_dispatcher.run_once()
    by_title = {}
    for user, message, _ in app_delivery.dms:
        by_title.setdefault(message.title.split(":")[0], []).append(user)
    # Bob was Interested when it moved: the rescheduled notice too.
    assert {title: sorted(users) for title, users in by_title.items()} == {
        "❌ Race cancelled": [BOB],  # the doomed race
        "⏰ Race soon": [BOB, CAROL],
        "🕒 Live race rescheduled": [BOB],
    }


async def test_a_race_deleted_with_interest_takes_its_rows(services, world) -> None:
    await services.reminders.set_interest(GUILD, EVENT, BOB, True)
    await services.live_races.delete(GUILD, world.race.id, MODERATOR)
    assert await interest_rows(services) == []


@pytest.mark.parametrize("change", ["delete", "reschedule"])
async def test_interest_arriving_while_the_race_lock_is_held_waits_and_sees_the_change(services, world, change) -> None:
    """A moderator's change holds the race's lock (`lock_race`) while the gateway's Interested arrives: the interest
    waits for it (PostgreSQL: the row lock, seen in pg_stat_activity; SQLite: the writer's BEGIN IMMEDIATE) and then
    sees the race as committed: gone (nothing written, no error) or moved (recorded)."""
    from sqlalchemy import delete, update

    from bot.services.race_locks import lock_race
    from db.models import LiveRace

    async with services.db.transaction() as session:
        race = await lock_race(session, world.race.id, guild_id=GUILD)
        arriving = asyncio.create_task(services.reminders.set_interest(GUILD, EVENT, BOB, True))
        await wait_for_the_lock(services, session, arriving)
        if change == "delete":
            await session.execute(delete(LiveRace).where(LiveRace.id == race.id))
        else:
            moved = race.scheduled_at + timedelta(hours=1)
            await session.execute(update(LiveRace).where(LiveRace.id == race.id).values(scheduled_at=moved))
    recorded = await asyncio.wait_for(arriving, 30)
    if change == "delete":
        assert recorded is False and await interest_rows(services) == []
    else:
        assert recorded is True and await interest_rows(services) == [(world.race.id, BOB, True)]


# ---- Interested → the rescheduled and cancelled notices ------------------------------------------------------------


async def turn_off(services, user: int, how: str) -> None:
    """`user` turns off, by `how`, what an Interested player's rescheduled and cancelled notices follow."""
    if how == "type here":  # the DM's Mute this kind, for each of the two types
        for code in (RESCHEDULED.code, CANCELLED.code):
            await services.notifications.set_type_in_guild(user, GUILD, code, False, actor=MODERATOR)
    elif how == "type everywhere":  # /notify, scope all servers
        await services.notifications.set_all(user, False, guild_id=None, actor=MODERATOR)
    elif how == "server DMs":  # No more DMs from this server
        await services.notifications.set_guild_dms(user, GUILD, False, actor=MODERATOR)
    else:  # left the server, the gateway's member removal missed (the interest is still recorded)
        await services.players.member_left(GUILD, user)


async def test_interested_players_get_one_rescheduled_notice_per_group_of_moves(
    services, world, app_clock, app_dispatcher, app_delivery
) -> None:
    """Interested only (Bob, Stranger with no roster entry), RSVP'd and Interested (Carol: one message, not two),
    Interested with the type's preference on (Dave: one): each gets the notice of a group of moves once."""
    reminders = services.reminders
    for user in (BOB, CAROL, DAVE, STRANGER):
        await reminders.set_interest(GUILD, EVENT, user, True)
    await reminders.set_rsvp(GUILD, world.race.id, CAROL, True)
    await services.notifications.set_type_in_guild(DAVE, GUILD, RESCHEDULED.code, True, actor=MODERATOR)
    told = world.race.scheduled_at
    for minutes in (60, 90):  # two moves within the window: one notice
        await services.live_races.edit(GUILD, world.race.id, MODERATOR, scheduled_at=told + timedelta(minutes=minutes))
        app_clock.advance(seconds=20)
    app_clock.advance(seconds=services.settings.notifications.reschedule_collapse_seconds)
    await app_dispatcher.run_once()
    await app_dispatcher.run_once()
    assert sorted(app_delivery.dm_recipients()) == [BOB, CAROL, DAVE, STRANGER]
    fields = {f.name: f.value for f in app_delivery.dms[0][1].fields}
    assert fields["Was"] == f"~~<t:{int(told.timestamp())}:F>~~"
    assert fields["New start"].startswith(f"<t:{int((told + timedelta(minutes=90)).timestamp())}:F>")
    assert all(m.title.startswith("🕒 Live race rescheduled") for _, m, _ in app_delivery.dms)


@pytest.mark.parametrize("how", ["type here", "type everywhere", "server DMs", "left"])
async def test_an_interested_player_who_turned_it_off_gets_no_rescheduled_or_cancelled_notice(
    services, world, app_clock, app_dispatcher, app_delivery, how
) -> None:
    reminders = services.reminders
    for user in (BOB, CAROL):
        await reminders.set_interest(GUILD, EVENT, user, True)
    await turn_off(services, BOB, how)
    await services.live_races.edit(
        GUILD, world.race.id, MODERATOR, scheduled_at=world.race.scheduled_at + timedelta(hours=1)
    )
    app_clock.advance(minutes=5)
    await app_dispatcher.run_once()
    await services.live_races.cancel(GUILD, world.race.id, MODERATOR, reason="Rain")
    await app_dispatcher.run_once()
    titles = [(user, message.title.split(":")[0]) for user, message, _ in app_delivery.dms]
    assert titles == [(CAROL, "🕒 Live race rescheduled"), (CAROL, "❌ Race cancelled")]
    async with services.db.read() as session:  # nothing was queued for Bob (not queued, then skipped)
        bob = await session.scalar(select(Player.id).where(Player.discord_user_id == BOB))
        assert await session.scalar(select(func.count()).where(Notification.player_id == bob)) == 0


@pytest.mark.parametrize("change", ["cancel", "delete"])
async def test_interested_players_get_the_cancelled_notice(
    services, world, app_clock, app_dispatcher, app_delivery, change
) -> None:
    """A cancel, or a delete once players were told (Alice got the scheduled notice): Interested players get the
    cancelled notice by the same rules as the rescheduled one, an Interested subscriber once."""
    reminders = services.reminders
    await subscribe(services, ALICE)
    async with services.db.transaction() as session:
        await services.events.publish(session, world.event(LiveRaceScheduled))
    app_clock.advance(seconds=5)  # the rows were queued by the real clock
    await app_dispatcher.run_once()
    assert app_delivery.dm_recipients() == [ALICE]
    for user in (ALICE, BOB, STRANGER):
        await reminders.set_interest(GUILD, EVENT, user, True)
    if change == "cancel":
        await services.live_races.cancel(GUILD, world.race.id, MODERATOR, reason="Rain")
    else:
        assert await services.live_races.delete(GUILD, world.race.id, MODERATOR) is True
    await app_dispatcher.run_once()
    cancelled = app_delivery.dms[1:]
    assert sorted(user for user, _, _ in cancelled) == [ALICE, BOB, STRANGER]
    reason = "Rain" if change == "cancel" else REMOVED_REASON
    assert {f.value for _, m, _ in cancelled for f in m.fields if f.name == "Reason"} == {reason}


async def test_interest_arriving_while_a_move_holds_the_race_lock_joins_the_waiting_notice(
    services, world, app_clock, app_dispatcher, app_delivery
) -> None:
    """The outbox reads the interest inside the move's transaction, under the race's lock, which `set_interest`
    takes too: an Interested pressed while a move holds the lock waits, is recorded after it (not in its rows),
    and the next move of the same group adds the player under the group's key: one notice, the latest start."""
    from bot.services.race_locks import lock_race

    told = world.race.scheduled_at
    await services.reminders.set_interest(GUILD, EVENT, CAROL, True)
    async with services.db.transaction() as session:  # a move, as LiveRaceService.edit makes it
        race = await lock_race(session, world.race.id, guild_id=GUILD)
        arriving = asyncio.create_task(services.reminders.set_interest(GUILD, EVENT, BOB, True))
        await wait_for_the_lock(services, session, arriving)
        race.scheduled_at = told + timedelta(hours=1)
        await session.flush()
        await services.events.publish(
            session,
            LiveRaceRescheduled(
                guild_id=GUILD,
                tournament_id=world.tournament.id,
                live_race_id=race.id,
                occurred_at=app_clock.now,
                previous_scheduled_at=told,
            ),
        )
        assert not arriving.done()
    assert await asyncio.wait_for(arriving, 30) is True
    async with services.db.read() as session:
        queued = (
            await session.scalars(select(Notification.player_id).where(Notification.player_id.is_not(None)))
        ).all()
        assert len(queued) == 1  # Carol's: Bob's interest came after the move
    app_clock.advance(seconds=20)
    await services.live_races.edit(GUILD, world.race.id, MODERATOR, scheduled_at=told + timedelta(hours=2))
    app_clock.advance(minutes=5)
    await app_dispatcher.run_once()
    assert sorted(app_delivery.dm_recipients()) == [BOB, CAROL]
    for _, message, _ in app_delivery.dms:
        assert {f.name: f.value for f in message.fields}["New start"].startswith(
            f"<t:{int((told + timedelta(hours=2)).timestamp())}:F>"
        )


@pytest.mark.parametrize("change", ["cancel", "delete"])
async def test_rsvped_players_get_the_cancelled_notice_without_subscribing(
    services, world, app_clock, app_dispatcher, app_delivery, change
) -> None:
    """An RSVP is the player's word that they race it: a cancel (or a delete: an RSVP alone means players know of
    the race) tells them whatever their preference for the type, once for a player who is Interested too, and not a
    player who turned the server's DMs off."""
    reminders = services.reminders
    for user in (BOB, CAROL, DAVE):
        await reminders.set_rsvp(GUILD, world.race.id, user, True)
    await reminders.set_interest(GUILD, EVENT, CAROL, True)
    await turn_off(services, DAVE, "server DMs")
    if change == "cancel":
        await services.live_races.cancel(GUILD, world.race.id, MODERATOR, reason="Rain")
    else:
        assert await services.live_races.delete(GUILD, world.race.id, MODERATOR) is True
    await app_dispatcher.run_once()
    assert sorted(app_delivery.dm_recipients()) == [BOB, CAROL]
    assert all(message.title.startswith("❌ Race cancelled") for _, message, _ in app_delivery.dms)


async def test_deleting_a_race_whose_only_word_was_a_reminder_tells_the_reminded(
    services, world, app_clock, app_dispatcher, app_delivery
) -> None:
    """A reminder is a notice of the race too: once one went out, a delete sends the cancelled notice (here to the
    reminded player, who withdrew their RSVP and subscribed to the notices since); with nothing sent and nobody who
    RSVP'd or is Interested, a delete tells nobody."""
    await services.reminders.set_rsvp(GUILD, world.race.id, BOB, True)
    app_clock.advance(hours=30 - 0.5)  # within the default offsets of an RSVP'd player's reminders
    await services.reminders.queue_due()
    await app_dispatcher.run_once()
    assert [message.title.split(":")[0] for _, message, _ in app_delivery.dms] == ["⏰ Race soon"]
    await services.reminders.set_rsvp(GUILD, world.race.id, BOB, False)  # what tells now is the reminder alone
    await subscribe(services, BOB)
    assert await services.live_races.delete(GUILD, world.race.id, MODERATOR) is True
    await app_dispatcher.run_once()
    titles = [message.title.split(":")[0] for _, message, _ in app_delivery.dms]
    assert titles == ["⏰ Race soon", "❌ Race cancelled"]

    quiet = await make_world(services, name="Quiet cup", scheduled_at=app_clock.now + timedelta(hours=3))
    assert await services.live_races.delete(GUILD, quiet.race.id, MODERATOR) is False
