"""Startline in the rooms it opened, over the fake's bot websocket: the pinned summary (once, across reconnects and
restarts), eligibility warnings addressed to the entrant (`direct_to`) and the re-check after linking, `!eligible`
and `!status`, garbage on the socket, reconnects, a refused token, one process per room, and the gauge."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from bot import metrics
from bot.app import Application
from bot.services.notification_outbox import OutboxWriter
from bot.services.processes import Leases
from bot.services.room_presence import NOT_LINKED, RoomPresence
from db.models import LiveRace, RoomMessage
from tests.conftest import GUILD, MODERATOR
from tests.fakes.lifecycle import Clock, add_player, make_world, open_rooms
from tests.fakes.racetime_data import captured_user
from tests.fakes.racetime_server import FakeRacetime

ALICE, BOB = captured_user("Alice"), captured_user("Bob")
GUARD_SECONDS = 10.0  # a hang guard only: what is awaited arrives in milliseconds


async def until(condition: Callable[[], Any], what: str) -> Any:
    """Wait for `condition` to hold (checked as the event loop turns), or fail after the guard."""
    async with asyncio.timeout(GUARD_SECONDS):
        while not (result := condition()):  # noqa: ASYNC110 - the conditions are the fake's and the bot's state
            await asyncio.sleep(0.005)
    assert result, what
    return result


def bot_messages(rt: FakeRacetime, slug: str, *, to: str | None = None) -> list[dict]:
    return [m for m in rt.messages(slug) if m["is_bot"] and m["direct_to"] == to]


@pytest.fixture
def presence(app: Application) -> RoomPresence:
    app.presence.backoff_base = app.presence.backoff_max = 0.01  # reconnect at once in tests
    return app.presence


async def _open_room(app: Application, clock: Clock) -> tuple[int, str]:
    world = await make_world(app.services)
    view = await app.services.live_races.create(
        GUILD, world.tournament.id, MODERATOR, pool_id=world.pool.id, scheduled_at=clock.now + timedelta(minutes=5)
    )
    assert (await open_rooms(app)).opened == 1
    race = (await app.services.live_races.get(GUILD, view.race.id)).race
    return race.id, race.racetime_slug


async def test_the_room_gets_one_pinned_summary_across_reconnects_and_restarts(
    app: Application, rt: FakeRacetime, clock: Clock, presence: RoomPresence
) -> None:
    race_id, slug = await _open_room(app, clock)
    report = await presence.run_cycle()
    assert (report.rooms, report.started) == (1, 1)
    [pinned] = await until(lambda: [m for m in bot_messages(rt, slug) if m["is_pinned"]], "the pinned summary")
    assert "Spring Qualifier – Pool A" in pinned["message"] and "!eligible" in pinned["message"]
    # A dropped connection comes back (with backoff) and pins nothing new.
    socket = presence.rooms[race_id].socket
    assert await rt.drop_sockets(slug) == 1
    await until(lambda: socket.connects == 2 and rt.socket_count(slug) == 1, "the reconnect")
    # A restart of the presence (a new process) finds the message sent.
    await presence.close()
    again = RoomPresence(app.db, app.racetime, clock=clock)
    await again.run_cycle()
    await until(lambda: again.rooms[race_id].race_status == "open", "the new socket's race.data")
    await again.close()
    assert len([m for m in rt.messages(slug) if m["is_pinned"]]) == 1
    async with app.db.read() as session:
        assert await session.scalar(select(func.count()).select_from(RoomMessage)) == 1


async def test_an_unlinked_entrant_is_told_at_once_and_again_once_linked(
    app: Application, rt: FakeRacetime, clock: Clock, presence: RoomPresence
) -> None:
    race_id, slug = await _open_room(app, clock)
    await presence.run_cycle()
    await until(lambda: presence.rooms[race_id].race_status == "open", "connected")
    rt.add_entrant(slug, ALICE, ready=False)
    [warning] = await until(lambda: bot_messages(rt, slug, to=ALICE["id"]), "the warning to Alice")
    assert warning["is_dm"] and NOT_LINKED in warning["message"] and "NOT count" in warning["message"]
    assert not any(m["direct_to"] is None and "NOT count" in m["message"] for m in rt.messages(slug))
    # Alice links her account while in the room: the next cycle re-checks her, once.
    await add_player(app.services, 1001, "Alice", ALICE["id"])
    await presence.run_cycle()
    await until(lambda: len(bot_messages(rt, slug, to=ALICE["id"])) == 2, "the all-clear to Alice")
    assert "counts for the tournament" in bot_messages(rt, slug, to=ALICE["id"])[1]["message"]
    await presence.run_cycle()
    rt.set_ready(slug, ALICE["id"])  # another race.data: nothing new to say
    await presence.run_cycle()
    assert len(bot_messages(rt, slug, to=ALICE["id"])) == 2


async def test_eligible_and_status_commands(
    app: Application, rt: FakeRacetime, clock: Clock, presence: RoomPresence
) -> None:
    race_id, slug = await _open_room(app, clock)
    await add_player(app.services, 1002, "Bob", BOB["id"])
    await presence.run_cycle()
    await until(lambda: presence.rooms[race_id].race_status == "open", "connected")
    rt.add_entrant(slug, BOB)
    await until(lambda: presence.rooms[race_id].verdicts.get(BOB["id"], "unchecked") is None, "Bob checked")
    rt.say(slug, BOB["id"], "!eligible")
    [answer] = await until(lambda: bot_messages(rt, slug, to=BOB["id"]), "the answer to Bob")
    assert "counts for the tournament" in answer["message"]
    rt.say(slug, BOB["id"], "!STATUS please")
    [status] = await until(
        lambda: [m for m in bot_messages(rt, slug) if "entrants count;" in m["message"]], "the status"
    )
    assert "1 of 1 entrants count" in status["message"] and "seed" in status["message"]
    # Malformed or unknown input gets no answer and breaks nothing.
    for text in ("", "   ", "!", "!unknown", "eligible", "!eligible" * 200):
        rt.say(slug, BOB["id"], text[:1000])
    rt.send_raw(slug, "{not json")
    rt.send_raw(slug, '["a list"]')
    rt.send_raw(slug, '{"type": "chat.message", "message": {"user": 5, "message": "!status", "id": "x"}}')
    rt.send_raw(slug, '{"type": "race.data", "race": "broken"}')
    rt.say(slug, BOB["id"], "!status")
    await until(
        lambda: len([m for m in bot_messages(rt, slug) if "entrants count;" in m["message"]]) == 2, "still answering"
    )
    assert len(bot_messages(rt, slug, to=BOB["id"])) == 1


async def test_a_refused_token_reconnects_with_a_fresh_one(
    app: Application, rt: FakeRacetime, clock: Clock, presence: RoomPresence
) -> None:
    race_id, slug = await _open_room(app, clock)
    await presence.run_cycle()
    await until(lambda: presence.rooms[race_id].race_status == "open", "connected")
    tokens_before = len(rt.tokens)
    rt.expire_all_tokens()  # the socket's token no longer works for actions
    rt.say(slug, BOB["id"], "!status")  # the answer is refused: Permission denied
    socket = presence.rooms[race_id].socket
    await until(lambda: socket.connects == 2, "the reconnect with a fresh token")
    assert len(rt.tokens) == tokens_before + 1
    rt.say(slug, BOB["id"], "!status")
    await until(lambda: [m for m in bot_messages(rt, slug) if "entrants count;" in m["message"]], "answered")


async def test_one_process_per_room_and_the_gauge(
    app: Application, rt: FakeRacetime, clock: Clock, presence: RoomPresence
) -> None:
    race_id, slug = await _open_room(app, clock)
    presence.leases = Leases(app.db, "process-one")
    other = RoomPresence(app.db, app.racetime, leases=Leases(app.db, "process-two"), clock=clock)
    try:
        await presence.run_cycle()
        report = await other.run_cycle()
        assert report.rooms == 1 and report.held == 0, "the room is held by the first process"
        await until(lambda: rt.socket_count(slug) == 1, "one socket")
        gauge = metrics.RACETIME_WEBSOCKETS.labels("alttpr")
        await until(lambda: gauge._value.get() == 1, "the gauge")
        # The room ends: the socket closes by itself and the next cycle lets the room go.
        rt.cancel(slug)
        await until(lambda: presence.rooms[race_id].task.done(), "the socket's end")
        await until(lambda: rt.socket_count(slug) == 0, "no socket left")
        assert gauge._value.get() == 0
        report = await presence.run_cycle()  # the poller has not recorded the end yet: no new socket
        assert report.started == 0 and rt.socket_count(slug) == 0
    finally:
        await other.close()


async def test_a_scheduled_start_waits_for_its_time_and_for_enough_ready(
    app: Application, rt: FakeRacetime, clock: Clock, presence: RoomPresence
) -> None:
    world = await make_world(app.services)
    view = await app.services.live_races.create(
        GUILD,
        world.tournament.id,
        MODERATOR,
        pool_id=world.pool.id,
        scheduled_at=clock.now + timedelta(minutes=5),
        room={"start_mode": "scheduled"},
    )
    await open_rooms(app)
    race = (await app.services.live_races.get(GUILD, view.race.id)).race
    slug = race.racetime_slug
    assert rt.room(slug)["auto_start"] is False, "RaceTime.gg must not start it when everyone is ready"
    await presence.run_cycle()
    await until(lambda: presence.rooms[race.id].race_status == "open", "connected")
    rt.add_entrant(slug, ALICE)  # ready
    await until(lambda: presence.rooms[race.id].ready == 1, "Alice ready")
    # At its time with one of two ready: it says so, and does not start.
    clock.advance(minutes=5)
    await presence.run_cycle()
    await until(lambda: [m for m in bot_messages(rt, slug) if "only 1 of the 2 entrants" in m["message"]], "the wait")
    await presence.run_cycle()  # the same minute: nothing new
    assert rt.room(slug)["status"]["value"] == "open"
    rt.add_entrant(slug, BOB)  # everyone is ready; only Startline may start it
    await until(lambda: presence.rooms[race.id].ready == 2, "Bob ready")
    assert rt.room(slug)["status"]["value"] == "open"
    clock.advance(minutes=1)
    await presence.run_cycle()
    await until(lambda: rt.room(slug)["status"]["value"] in ("pending", "in_progress"), "the begin")
    assert len([m for m in bot_messages(rt, slug) if "entrants needed are ready" in m["message"]]) == 1


async def test_a_scheduled_race_never_starts_early_though_everyone_is_ready(
    app: Application, rt: FakeRacetime, clock: Clock, presence: RoomPresence
) -> None:
    rt.racebot = True  # RaceTime.gg's racebot starts a room when everyone is ready, if its auto_start is on
    world = await make_world(app.services)
    view = await app.services.live_races.create(
        GUILD,
        world.tournament.id,
        MODERATOR,
        pool_id=world.pool.id,
        scheduled_at=clock.now + timedelta(minutes=10),
        room={"start_mode": "scheduled"},
    )
    await open_rooms(app)
    slug = (await app.services.live_races.get(GUILD, view.race.id)).race.racetime_slug
    await presence.run_cycle()
    await until(lambda: presence.rooms[view.race.id].race_status == "open", "connected")
    rt.add_entrant(slug, ALICE)
    rt.add_entrant(slug, BOB)
    await until(lambda: presence.rooms[view.race.id].ready == 2, "both ready")
    for _ in range(3):
        clock.advance(minutes=3)  # 9 minutes in: still before its time
        await presence.run_cycle()
    assert rt.room(slug)["status"]["value"] == "open"
    assert not [m for m in bot_messages(rt, slug) if "entrants needed" in m["message"]]


async def _hidden_seed_race(app: Application, clock: Clock, policy: str) -> tuple[int, str, str]:
    profile = await app.services.room_profiles.create(
        GUILD, MODERATOR, name=f"Hidden {policy}", seed_reveal=policy, seed_reveal_minutes=5
    )
    world = await make_world(app.services)
    view = await app.services.live_races.create(
        GUILD,
        world.tournament.id,
        MODERATOR,
        pool_id=world.pool.id,
        scheduled_at=clock.now + timedelta(minutes=15),
        room_profile_id=profile.id,
    )
    await open_rooms(app)
    view = await app.services.live_races.get(GUILD, view.race.id)
    return view.race.id, view.race.racetime_slug, view.seed.url


async def _public_seed(app: Application, race_id: int) -> str | None:
    from bot.api.live_races import live_race_out

    out = live_race_out(await app.services.live_races.get(GUILD, race_id), can_manage=False)
    return out.seed.url if out.seed is not None else None


async def test_a_seed_revealed_before_the_start_is_hidden_until_then(
    app: Application, rt: FakeRacetime, clock: Clock, presence: RoomPresence
) -> None:
    race_id, slug, url = await _hidden_seed_race(app, clock, "before_start")
    room = rt.room(slug)
    assert url not in room["info_user"] and url not in room["info_bot"], "nothing in the room shows the seed yet"
    assert "the seed is shown here 5 min before the start" in room["info_user"]
    async with app.db.read() as session:  # the room-open DMs and announcements do not promise the seed yet
        hint = await OutboxWriter._seed_hint(session, await session.get(LiveRace, race_id))
    assert hint == "The seed appears in the race room shortly before the start"
    assert await _public_seed(app, race_id) is None, "read tokens and players do not see it either"
    await presence.run_cycle()
    await until(lambda: presence.rooms[race_id].race_status == "open", "connected")
    clock.advance(minutes=9)  # 6 minutes before the start
    await presence.run_cycle()
    assert not [m for m in rt.messages(slug) if url in m["message"]]
    clock.advance(minutes=1)
    await presence.run_cycle()
    await until(lambda: url in rt.room(slug)["info_bot"], "the seed in info_bot")
    [posted] = [m for m in bot_messages(rt, slug) if url in m["message"]]
    assert posted["message"] == f"Startline: the seed is {url}"
    assert "sl:" in rt.room(slug)["info_bot"], "the marker stays"
    assert await _public_seed(app, race_id) == url
    await presence.run_cycle()
    assert len([m for m in bot_messages(rt, slug) if url in m["message"]]) == 1


async def test_a_seed_revealed_at_the_start_shows_when_the_countdown_begins(
    app: Application, rt: FakeRacetime, clock: Clock, presence: RoomPresence
) -> None:
    race_id, slug, url = await _hidden_seed_race(app, clock, "at_start")
    await presence.run_cycle()
    await until(lambda: presence.rooms[race_id].race_status == "open", "connected")
    rt.add_entrant(slug, ALICE)
    clock.advance(minutes=15)
    await presence.run_cycle()
    assert await _public_seed(app, race_id) is None and url not in rt.room(slug)["info_bot"]
    rt.begin(slug)  # the countdown
    await until(lambda: [m for m in bot_messages(rt, slug) if url in m["message"]], "the seed at the countdown")
    await until(lambda: url in rt.room(slug)["info_bot"], "the seed in info_bot")
    async with asyncio.timeout(GUARD_SECONDS):  # seed_revealed_at is written right after setinfo, by the socket's task
        while await _public_seed(app, race_id) != url:  # noqa: ASYNC110 - the database
            await asyncio.sleep(0.005)


def test_a_retry_recognises_a_room_by_its_seed_fingerprint() -> None:
    from bot.services.room_opener import pick_room, seed_tag
    from racetime.models import RaceSummary

    url = "https://alttpr.com/h/secret"

    class Summary:  # the two fields pick_room reads, and room_ref's
        def __init__(self, slug: str, info: str) -> None:
            self.slug, self.info = slug, info
            self.category_slug, self.url = "alttpr", f"https://racetime.gg/alttpr/{slug}"

    found: list[RaceSummary] = [
        Summary("other-room-0001", "Cup · the seed is shown here later · sd:000000000000 · sl:abc"),  # type: ignore[list-item]
        Summary("ours-room-0002", f"Cup · the seed is shown here later · {seed_tag(url)} · sl:abc"),  # type: ignore[list-item]
    ]
    adopt, strays = pick_room(found, url)
    assert adopt is not None and adopt.slug == "ours-room-0002"
    assert [room.slug for room in strays] == ["other-room-0001"]


async def test_two_processes_in_one_room_show_each_message_once(
    app: Application, rt: FakeRacetime, clock: Clock, presence: RoomPresence
) -> None:
    """A lease that ran out while its holder still talks: both processes are in the room for a moment. The pin,
    the warnings and the answers to a command carry the same guids, so the room shows each once."""
    race_id, slug = await _open_room(app, clock)
    other = RoomPresence(app.db, app.racetime, clock=clock)  # no leases: nothing keeps the two apart
    try:
        await presence.run_cycle()
        await other.run_cycle()
        await until(lambda: rt.socket_count(slug) == 2, "two sockets")
        await until(lambda: all(p.rooms[race_id].race_status == "open" for p in (presence, other)), "both in")
        rt.add_entrant(slug, ALICE)
        rt.say(slug, ALICE["id"], "!status")
        await until(lambda: [m for m in bot_messages(rt, slug) if "entrants count;" in m["message"]], "an answer")
        await until(lambda: bot_messages(rt, slug, to=ALICE["id"]), "the warning")
        await presence.run_cycle()
        await other.run_cycle()
        rt.say(slug, ALICE["id"], "!eligible")
        await until(lambda: len(bot_messages(rt, slug, to=ALICE["id"])) >= 2, "the answer to Alice")
        messages = bot_messages(rt, slug)
        assert len([m for m in messages if m["is_pinned"]]) == 1
        assert len([m for m in messages if "entrants count;" in m["message"]]) == 1
        assert len(bot_messages(rt, slug, to=ALICE["id"])) == 2, "one warning, one answer"
    finally:
        await other.close()


async def test_a_message_recorded_but_not_sent_before_a_kill_is_sent_once_after_the_restart(
    app: Application, rt: FakeRacetime, clock: Clock, presence: RoomPresence
) -> None:
    from racetime.room_socket import stable_guid

    race_id, slug = await _open_room(app, clock)
    race = (await app.services.live_races.get(GUILD, race_id)).race
    async with app.db.transaction() as session:  # what a process killed between recording and sending leaves
        session.add(
            RoomMessage(live_race_id=race_id, key="pinned", guid=stable_guid(race.marker, "pinned"), created_at=clock())
        )
    await presence.run_cycle()
    await until(lambda: [m for m in bot_messages(rt, slug) if m["is_pinned"]], "the pinned summary")

    async def sent_at():
        async with app.db.read() as session:
            return await session.scalar(select(RoomMessage.sent_at).where(RoomMessage.live_race_id == race_id))

    async with asyncio.timeout(GUARD_SECONDS):
        while await sent_at() is None:  # noqa: ASYNC110 - the database, written by the socket's task
            await asyncio.sleep(0.005)
    assert len([m for m in bot_messages(rt, slug) if m["is_pinned"]]) == 1


async def test_a_message_sent_but_not_marked_before_a_kill_shows_once_after_the_restart(
    app: Application, rt: FakeRacetime, clock: Clock, presence: RoomPresence
) -> None:
    from sqlalchemy import update

    race_id, slug = await _open_room(app, clock)
    await presence.run_cycle()
    await until(lambda: [m for m in bot_messages(rt, slug) if m["is_pinned"]], "the pinned summary")
    await presence.close()
    async with app.db.transaction() as session:  # killed after the send, before `sent_at` was written
        await session.execute(update(RoomMessage).values(sent_at=None))
    again = RoomPresence(app.db, app.racetime, clock=clock)
    try:
        await again.run_cycle()
        await until(lambda: again.rooms[race_id].race_status == "open", "the restarted socket")
        await until(lambda: rt.count("GET", f"/ws/o/bot/{slug}") == 2, "two connections in all")
        async with asyncio.timeout(GUARD_SECONDS):  # the restarted process sent it again (same guid) and marked it
            while True:
                async with app.db.read() as session:
                    if await session.scalar(select(RoomMessage.sent_at)) is not None:
                        break
                await asyncio.sleep(0.005)
    finally:
        await again.close()
    # RaceTime.gg ignored the repeated guid: the room shows one pinned summary.
    assert len([m for m in bot_messages(rt, slug) if m["is_pinned"]]) == 1
