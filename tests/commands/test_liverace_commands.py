"""/liverace through the real command tree, with the fake RaceTime.gg behind the live race service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
from discord.utils import escape_markdown
from sqlalchemy import select, update

from bot.actors import Actor
from bot.app import Application
from bot.settings import Settings
from db.models import (
    Base,
    EventType,
    LiveRace,
    Notification,
    NotificationKind,
    NotificationStatus,
    RaceStatus,
)
from db.types import utcnow
from tests.commands.conftest import MODERATOR_PERMS
from tests.fakes.lifecycle import racetime_client
from tests.fakes.notifications import RecordingDelivery
from tests.fakes.racetime_data import captured_user
from tests.fakes.racetime_server import FakeRacetime

SYSTEM = Actor.system()
ALICE_RT = captured_user("Alice")


@pytest_asyncio.fixture
async def app(settings: Settings, rt: FakeRacetime) -> AsyncIterator[Application]:
    """Overrides the plain application: this one's live races talk to the fake RaceTime.gg."""
    client = racetime_client(rt)
    application = Application(settings, run_migrations=False, start_jobs=False, racetime_client=client)
    async with application.db.engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    yield application
    await application.db.dispose()
    await client.aclose()


@pytest_asyncio.fixture
async def cup(discord_):
    d = discord_
    tournament = await d.services.tournaments.create_tournament(d.guild.id, SYSTEM, name="Spring Cup")
    pool = await d.services.tournaments.add_pool(d.guild.id, tournament.id, SYSTEM, name="Pool A")
    other_pool = await d.services.tournaments.add_pool(d.guild.id, tournament.id, SYSTEM, name="Pool B")
    seed = await d.services.tournaments.add_seed(
        d.guild.id, tournament.id, pool.id, SYSTEM, url="https://alttpr.com/h/secret1"
    )
    other_seed = await d.services.tournaments.add_seed(
        d.guild.id, tournament.id, other_pool.id, SYSTEM, url="https://alttpr.com/h/secret2"
    )
    return type("Cup", (), {"tournament": tournament, "pool": pool, "seed": seed, "other_seed": other_seed})


async def schedule(d, cup, *, hours: float = 2, guild=None, **fields):
    guild_id = (guild or d.guild).id
    if guild is not None:
        tournament = await d.services.tournaments.create_tournament(guild_id, SYSTEM, name="Theirs")
        pool = await d.services.tournaments.add_pool(guild_id, tournament.id, SYSTEM, name="P")
        return await d.services.live_races.create(
            guild_id, tournament.id, SYSTEM, pool_id=pool.id, scheduled_at=utcnow() + timedelta(hours=hours)
        )
    return await d.services.live_races.create(
        guild_id,
        cup.tournament.id,
        SYSTEM,
        pool_id=cup.pool.id,
        scheduled_at=utcnow() + timedelta(hours=hours),
        **fields,
    )


async def mod(d, command: str, **options):
    return await d.harness.run(command, d.mod, perms=MODERATOR_PERMS, **options)


async def open_room(d, race_id: int):
    """/liverace-admin open before the normal open time: it asks first (the seed would show early)."""
    asked = await mod(d, "liverace-admin open", race=str(race_id))
    return await d.harness.click(asked.with_buttons(), "Open it now", d.mod, perms=MODERATOR_PERMS)


# ---- create -----------------------------------------------------------------------------------------------------
async def test_create_schedules_a_race(discord_, cup) -> None:
    d = discord_
    before = utcnow()
    reply = await mod(
        d, "liverace-admin create", tournament="Spring Cup", pool="Pool A", when="in 2h30m", title="Final"
    )
    assert reply.ephemeral and "Scheduled **#1 Final** (Spring Cup / Pool A): starts <t:" in reply.text
    assert ":F> (<t:" in reply.text and "the room opens <t:" in reply.text
    view = await d.services.live_races.get(d.guild.id, 1)
    assert (
        before + timedelta(hours=2, minutes=30) <= view.race.scheduled_at <= utcnow() + timedelta(hours=2, minutes=30)
    )
    assert view.race.created_by == f"player:{d.mod.id} ({d.mod.display_name})"


async def test_create_reads_local_times_in_the_server_or_chosen_timezone(discord_, cup) -> None:
    d = discord_
    await d.services.guilds.update(d.guild.id, SYSTEM, timezone="Europe/Berlin")
    year = utcnow().year + 1
    await mod(d, "liverace-admin create", tournament="Spring Cup", pool="Pool A", when=f"{year}-07-01 20:00")
    await mod(
        d,
        "liverace-admin create",
        tournament="Spring Cup",
        pool="Pool A",
        when=f"{year}-07-01 20:00",
        timezone="Asia/Tokyo",
    )
    berlin, tokyo = sorted((await d.services.live_races.list(d.guild.id)).items, key=lambda v: v.race.id)
    assert (berlin.race.scheduled_at.hour, tokyo.race.scheduled_at.hour) == (18, 11)


async def test_create_with_seed_profile_episode_and_room_override(discord_, cup) -> None:
    d = discord_
    profile = await d.services.room_profiles.create(d.guild.id, SYSTEM, name="Fast", start_delay=10)
    reply = await mod(
        d,
        "liverace-admin create",
        tournament=str(cup.tournament.id),
        pool=str(cup.pool.id),
        when="in 1h",
        seed=str(cup.seed.id),
        room_profile="Fast",
        episode="ep-1",
        time_limit=4,
        unlisted=True,
    )
    assert "Scheduled" in reply.text
    race = (await d.services.live_races.get(d.guild.id, 1)).race
    assert (race.seed_id, race.room_profile_id, race.episode_id) == (cup.seed.id, profile.id, "ep-1")
    assert race.room_settings == {"time_limit": 4, "unlisted": True}


async def test_create_reads_natural_times_in_the_users_own_zone_and_echoes_the_reading(discord_, cup) -> None:
    d = discord_
    await d.services.guilds.update(d.guild.id, SYSTEM, timezone="Europe/Berlin")
    await d.harness.run("timezone set", d.mod, zone="America/New_York")
    reply = await mod(d, "liverace-admin create", tournament="Spring Cup", pool="Pool A", when="tomorrow 8pm")
    race = (await d.services.live_races.get(d.guild.id, 1)).race
    local = race.scheduled_at.astimezone(ZoneInfo("America/New_York"))
    assert (local.hour, local.minute) == (20, 0)
    assert local.date() == (utcnow().astimezone(ZoneInfo("America/New_York")) + timedelta(days=1)).date()
    stamp = int(race.scheduled_at.timestamp())
    assert f"Read `when` as {local:%a} {local.day} {local:%b %Y} 20:00 America/New_York → <t:{stamp}:F>." in reply.text
    # the command's own timezone option beats the user's zone
    await mod(d, "liverace-admin edit", race="1", when="tomorrow 8pm", timezone="UTC")
    race = (await d.services.live_races.get(d.guild.id, 1)).race
    assert race.scheduled_at.hour == 20


async def test_a_two_way_date_is_refused_with_both_readings_and_nothing_is_made(discord_, cup) -> None:
    d = discord_
    reply = await mod(d, "liverace-admin create", tournament="Spring Cup", pool="Pool A", when="5/6 19:00")
    assert reply.ephemeral and "`5/6` could mean " in reply.text and " June " in reply.text and " May " in reply.text
    assert (await d.services.live_races.list(d.guild.id)).items == []


async def test_race_autocomplete_offers_what_the_command_can_act_on_soonest_first(discord_, cup) -> None:
    d = discord_
    await schedule(d, cup, hours=5, title="Later")
    await schedule(d, cup, hours=1, title="Sooner")
    opened = await schedule(d, cup, hours=3, title="Opened")
    running = await schedule(d, cup, hours=4, title="Running")
    done = await schedule(d, cup, hours=6, title="Done")
    gone = await schedule(d, cup, hours=7, title="Gone")
    async with d.services.db.transaction() as session:  # only the listing is read here: set the states directly
        for view, status in ((opened, "room_open"), (running, "in_progress"), (done, "finished")):
            await session.execute(update(LiveRace).where(LiveRace.id == view.race.id).values(status=status))
    await d.services.live_races.cancel(d.guild.id, gone.race.id, SYSTEM, reason="rain")

    async def offered(command: str) -> list[str]:
        choices = await d.harness.autocomplete(command, d.mod, "race", perms=MODERATOR_PERMS, race="")
        return [choice["name"].split(" · ")[0].split(" ", 1)[1] for choice in choices]

    assert await offered("liverace-admin cancel") == ["Sooner", "Opened", "Running", "Later"]
    assert await offered("liverace-admin open") == ["Sooner", "Later"]
    assert await offered("liverace-admin record") == ["Opened", "Running"]
    assert await offered("liverace-admin edit") == ["Sooner", "Opened", "Later"]
    assert await offered("liverace-admin delete") == ["Sooner", "Later", "Gone"]
    # everything else: unfinished races soonest first, then the rest newest first
    assert await offered("liverace info") == ["Sooner", "Opened", "Running", "Later", "Gone", "Done"]
    # labels: plain-language states, the start in the reader's zone
    await d.services.timezones.set_own(d.guild.id, d.mod.id, "Asia/Tokyo", SYSTEM)
    choices = await d.harness.autocomplete("liverace-admin record", d.mod, "race", perms=MODERATOR_PERMS, race="")
    local = opened.race.scheduled_at.astimezone(ZoneInfo("Asia/Tokyo"))
    assert choices[0]["name"] == f"#{opened.race.id} Opened · room open · {local:%a} {local.day} {local:%b %H:%M} JST"
    assert choices[1]["name"].startswith(f"#{running.race.id} Running · racing · ")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"when": "tomorrow evening"}, "I could not read `tomorrow evening` as a time. Add a time of day. Use for"),
        ({"when": "2001-01-01 10:00"}, "is in the past; pick a time ahead, for example"),
        ({"when": "in 1h", "timezone": "Mars/Base"}, "Unknown timezone 'Mars/Base'"),
        ({"when": "in 1h", "pool": "Pool Z"}, "This tournament has no pool called 'Pool Z'"),
        ({"when": "in 1h", "seed": "second"}, "not found in this pool"),
        ({"when": "in 1h", "start_delay": 5}, "For example `start_delay: 15`."),
        ({"when": "in 1h", "tournament": "Nope"}, "There is no tournament called 'Nope'"),
    ],
)
async def test_create_refuses_bad_input_and_changes_nothing(discord_, cup, options, message) -> None:
    d = discord_
    values = {"tournament": "Spring Cup", "pool": "Pool A", **options}
    if values.get("seed") == "second":
        values["seed"] = str(cup.other_seed.id)  # a seed of another pool
    reply = await mod(d, "liverace-admin create", **values)
    assert reply.ephemeral and message in reply.text, reply.text
    assert (await d.services.live_races.list(d.guild.id)).items == []


async def test_create_is_for_moderators(discord_, cup) -> None:
    d = discord_
    reply = await d.harness.run("liverace-admin create", d.alice, tournament="Spring Cup", pool="Pool A", when="in 1h")
    assert reply.text == "You need the Manage Server permission to do that."
    assert (await d.services.live_races.list(d.guild.id)).items == []


async def test_autocomplete_pools_follow_the_tournament_and_races_stay_in_the_guild(discord_, cup) -> None:
    d = discord_
    pools = await d.harness.autocomplete(
        "liverace-admin create", d.mod, "pool", perms=MODERATOR_PERMS, tournament=str(cup.tournament.id), pool="b"
    )
    assert pools == [{"name": "Pool B", "value": str(cup.pool.id + 1)}]
    mine = await schedule(d, cup, title="Home race")
    await schedule(d, cup, guild=d.other_guild)
    races = await d.harness.autocomplete("liverace info", d.alice, "race", race="")
    assert [choice["value"] for choice in races] == [str(mine.race.id)]
    assert races[0]["name"].startswith(f"#{mine.race.id} Home race · scheduled · ")
    seeds = await d.harness.autocomplete(
        "liverace-admin edit", d.mod, "seed", perms=MODERATOR_PERMS, race=str(mine.race.id), seed=""
    )
    assert [choice["value"] for choice in seeds] == [str(cup.seed.id)]  # the race's pool, not Pool B


# ---- edit / cancel / delete --------------------------------------------------------------------------------------
async def test_edit_changes_title_time_and_merges_room_overrides(discord_, cup) -> None:
    d = discord_
    view = await schedule(d, cup, room={"start_delay": 30})
    reply = await mod(d, "liverace-admin edit", race=f"#{view.race.id}", title="Moved", when="in 5h", auto_start=False)
    assert "Updated **#1 Moved** (room, scheduled_at, title)." in reply.text
    assert "Players who follow it are told of the new start." in reply.text
    same_time = await mod(d, "liverace-admin edit", race=f"#{view.race.id}", title="Moved")
    assert "told of the new start" not in same_time.text  # nobody is told of a change they cannot see
    race = (await d.services.live_races.get(d.guild.id, view.race.id)).race
    assert race.title == "Moved" and race.room_settings == {"start_delay": 30, "auto_start": False}
    assert race.scheduled_at > utcnow() + timedelta(hours=4, minutes=59)
    nothing = await mod(d, "liverace-admin edit", race=str(view.race.id))
    assert "Nothing to change" in nothing.text


async def test_another_guilds_race_is_not_found(discord_, cup) -> None:
    d = discord_
    theirs = await schedule(d, cup, guild=d.other_guild)
    for command, extra in [
        ("liverace-admin edit", {"title": "Mine now"}),
        ("liverace-admin cancel", {"reason": "x"}),
        ("liverace-admin delete", {}),
        ("liverace info", {}),
        ("liverace-admin history", {}),
    ]:
        reply = await mod(d, command, race=str(theirs.race.id), **extra)
        assert reply.text == f"Live race {theirs.race.id} not found.", command
    assert (await d.services.live_races.get(d.other_guild.id, theirs.race.id)).race.title != "Mine now"


async def test_bad_race_value_is_explained(discord_) -> None:
    d = discord_
    reply = await d.harness.run("liverace info", d.alice, race="the big one")
    assert reply.text == "Pick a race from the list, or give its number (like 12)."


async def test_cancel_asks_then_cancels_with_the_reason(discord_, cup) -> None:
    d = discord_
    view = await schedule(d, cup)
    asked = await mod(d, "liverace-admin cancel", race=str(view.race.id), reason="Not enough runners")
    assert asked.ephemeral and "Cancel **#1" in asked.text and "Reason: Not enough runners" in asked.text
    assert (await d.services.live_races.get(d.guild.id, view.race.id)).race.status is RaceStatus.SCHEDULED
    done = await d.harness.click(asked.with_buttons(), "Cancel the race", d.mod, perms=MODERATOR_PERMS)
    assert done.first.type == 7 and "Working on it" in done.first.text  # acknowledged before the slow part
    assert "Cancelled **#1" in done.last.text
    race = (await d.services.live_races.get(d.guild.id, view.race.id)).race
    assert (race.status, race.cancel_reason) == (RaceStatus.CANCELLED, "Not enough runners")
    again = await mod(d, "liverace-admin cancel", race=str(view.race.id), reason="again")
    confirm = await d.harness.click(again.with_buttons(), "Cancel the race", d.mod, perms=MODERATOR_PERMS)
    assert "only scheduled, open or in-progress races can be cancelled" in confirm.last.text  # replaces the question


async def test_a_room_that_could_not_be_cancelled_is_reported(discord_, cup, rt) -> None:
    d = discord_
    view = await schedule(d, cup)
    await open_room(d, view.race.id)
    rt.down()  # RaceTime.gg unreachable: the race is cancelled here, its room stays open there
    asked = await mod(d, "liverace-admin cancel", race=str(view.race.id), reason="Storm")
    done = await d.harness.click(asked.with_buttons(), "Cancel the race", d.mod, perms=MODERATOR_PERMS)
    rt.up()
    assert "Cancelled **#1" in done.last.text
    assert "⚠️ The RaceTime.gg room could not be cancelled" in done.last.text
    info = await mod(d, "liverace info", race=str(view.race.id))
    assert "⚠️ The RaceTime.gg room could not be cancelled" in info.text
    public = await d.harness.run("liverace info", d.alice, race=str(view.race.id), public=True)
    assert "could not be cancelled" not in public.text


async def test_delete_asks_then_deletes(discord_, cup) -> None:
    d = discord_
    view = await schedule(d, cup)
    asked = await mod(d, "liverace-admin delete", race=str(view.race.id))
    kept = await d.harness.click(asked.with_buttons(), "Keep it", d.mod, perms=MODERATOR_PERMS)
    assert kept.text == "Nothing changed."
    asked = await mod(d, "liverace-admin delete", race=str(view.race.id))
    done = await d.harness.click(asked.with_buttons(), "Delete the race", d.mod, perms=MODERATOR_PERMS)
    assert "Deleted **#1" in done.last.text and "cancelled notice" not in done.last.text  # nobody was told yet
    assert (await d.services.live_races.list(d.guild.id)).items == []
    history = await mod(d, "liverace-admin history", race=str(view.race.id))  # the trail outlives the race
    assert "live_race.delete" in history.text and "live_race.create" in history.text


# ---- open / record / info ------------------------------------------------------------------------------------------
async def test_open_defers_then_links_the_room_and_info_shows_the_seed_to_players(discord_, cup, rt) -> None:
    d = discord_
    view = await schedule(d, cup, hours=0.1)  # within the 15 minutes before the start: the normal open time
    before = await d.harness.run("liverace info", d.alice, race=str(view.race.id))
    assert "alttpr.com/h/secret1" not in before.text and "Seed" not in before.text
    for_mod = await mod(d, "liverace info", race=str(view.race.id))
    assert "chosen when the room opens" in for_mod.text
    opened = await mod(d, "liverace-admin open", race=str(view.race.id))
    assert opened.first.type == 5 and opened.first.ephemeral  # "thinking" before RaceTime.gg is called
    race = (await d.services.live_races.get(d.guild.id, view.race.id)).race
    assert race.status is RaceStatus.ROOM_OPEN and "Opened the room of **#1" in opened.last.text
    assert race.racetime_url in opened.last.text and race.racetime_url.startswith(rt.base_url)
    after = await d.harness.run("liverace info", d.alice, race=str(view.race.id), public=True)
    assert not after.ephemeral and "alttpr.com/h/secret1" in after.text and race.racetime_url in after.text
    again = await mod(d, "liverace-admin open", race=str(view.race.id))
    assert again.last.text == "Race 1 is open (its room is open); only scheduled races can be opened."


async def test_an_early_open_asks_first_because_it_shows_the_seed_early(discord_, cup, rt) -> None:
    d = discord_
    view = await schedule(d, cup, hours=2)
    asked = await mod(d, "liverace-admin open", race=str(view.race.id))
    assert asked.ephemeral and "normally opens <t:" in asked.text and "shows its seed" in asked.text
    assert (await d.services.live_races.get(d.guild.id, view.race.id)).race.status is RaceStatus.SCHEDULED
    assert not any("startrace" in path for _, path in rt.requests)
    kept = await d.harness.click(asked.with_buttons(), "Keep it", d.mod, perms=MODERATOR_PERMS)
    assert kept.text == "Nothing changed."
    assert (await d.services.live_races.get(d.guild.id, view.race.id)).race.status is RaceStatus.SCHEDULED
    opened = await open_room(d, view.race.id)
    assert "Opened the room of **#1" in opened.last.text
    assert (await d.services.live_races.get(d.guild.id, view.race.id)).race.status is RaceStatus.ROOM_OPEN


async def test_record_with_force_asks_first(discord_, cup, rt) -> None:
    d = discord_
    view = await schedule(d, cup)
    await open_room(d, view.race.id)
    slug = (await d.services.live_races.get(d.guild.id, view.race.id)).race.racetime_slug
    rt.add_entrant(slug, ALICE_RT)
    rt.start(slug)
    asked = await mod(d, "liverace-admin record", race=str(view.race.id), force=True)
    assert asked.ephemeral and "still running **forfeit**" in asked.text
    kept = await d.harness.click(asked.with_buttons(), "Keep it", d.mod, perms=MODERATOR_PERMS)
    assert kept.text == "Nothing changed."
    assert (await d.services.live_races.get(d.guild.id, view.race.id)).race.status is RaceStatus.ROOM_OPEN
    asked = await mod(d, "liverace-admin record", race=str(view.race.id), force=True)
    done = await d.harness.click(asked.with_buttons(), "Record with force", d.mod, perms=MODERATOR_PERMS)
    assert "is ✅ finished:" in done.last.text
    assert (await d.services.live_races.get(d.guild.id, view.race.id)).race.status is RaceStatus.FINISHED


async def test_moderator_sees_a_chosen_seed_privately_but_not_in_public(discord_, cup) -> None:
    d = discord_
    view = await schedule(d, cup, seed_id=cup.seed.id)
    private = await mod(d, "liverace info", race=str(view.race.id))
    assert private.ephemeral and "alttpr.com/h/secret1" in private.text
    public = await mod(d, "liverace info", race=str(view.race.id), public=True)
    assert "secret1" not in public.text


async def test_a_race_cancelled_before_its_room_opened_keeps_its_seed_from_players(discord_, cup) -> None:
    # Regression: /liverace info showed the seed to everyone once the race left `scheduled`, so a race cancelled
    # before its room opened gave away a seed that was never published (and stays free for another live race).
    d = discord_
    view = await schedule(d, cup, seed_id=cup.seed.id)
    await d.services.live_races.cancel(d.guild.id, view.race.id, SYSTEM, reason="rain")
    player = await d.harness.run("liverace info", d.alice, race=str(view.race.id))
    assert "cancelled" in player.text and "secret1" not in player.text
    private = await mod(d, "liverace info", race=str(view.race.id))
    assert "alttpr.com/h/secret1" in private.text


async def test_record_a_finished_room_shows_results(discord_, cup, rt) -> None:
    d = discord_
    await d.services.players.link_racetime(
        d.guild.id, d.alice.id, ALICE_RT["id"], ALICE_RT["name"], SYSTEM, verified=True, display_name="alice"
    )
    view = await schedule(d, cup)
    await open_room(d, view.race.id)
    slug = (await d.services.live_races.get(d.guild.id, view.race.id)).race.racetime_slug
    early = await mod(d, "liverace-admin record", race=str(view.race.id))
    assert early.first.type == 5 and "Working" not in early.text
    assert (await d.services.live_races.get(d.guild.id, view.race.id)).race.status is RaceStatus.ROOM_OPEN
    rt.add_entrant(slug, ALICE_RT)
    rt.start(slug)
    rt.finish_entrant(slug, ALICE_RT["id"], timedelta(hours=1, minutes=2, seconds=3, microseconds=456))
    recorded = await mod(d, "liverace-admin record", race=str(view.race.id))
    assert "is ✅ finished: 1 of 1 participants finished" in recorded.last.text
    info = await d.harness.run("liverace info", d.alice, race=str(view.race.id))
    assert "Participants (1, 1 finished)" in info.text
    assert f"**1.** {escape_markdown(d.alice.display_name)} — 1:02:03 · 100.0" in info.text


async def test_resend_requeues_the_failed_notifications_of_the_race(discord_, cup) -> None:
    d = discord_
    race, other = (await schedule(d, cup)).race, (await schedule(d, cup, hours=3)).race
    rows = {
        "dm failed": (race.id, NotificationKind.DM, EventType.LIVE_RACE_SCHEDULED, NotificationStatus.FAILED),
        "alert failed": (race.id, NotificationKind.CHANNEL, None, NotificationStatus.FAILED),
        "dm sent": (race.id, NotificationKind.DM, EventType.LIVE_RACE_SCHEDULED, NotificationStatus.SENT),
        "other race failed": (other.id, NotificationKind.DM, EventType.LIVE_RACE_SCHEDULED, NotificationStatus.FAILED),
    }
    async with d.services.db.transaction() as session:
        for key, (race_id, kind, event_type, status) in rows.items():
            session.add(
                Notification(
                    kind=kind,
                    event_type=event_type,
                    guild_id=d.guild.id,
                    live_race_id=race_id,
                    channel_id=4242 if kind is NotificationKind.CHANNEL else None,
                    dedupe_key=key,
                    status=status,
                    attempts=5,
                    error="Forbidden" if status is NotificationStatus.FAILED else None,
                )
            )
    reply = await mod(d, "liverace-admin resend", race=str(race.id))
    assert reply.ephemeral and reply.text == "Queued 2 failed notifications again."
    async with d.services.db.read() as session:
        after = {n.dedupe_key: n for n in await session.scalars(select(Notification))}
    for key in ("dm failed", "alert failed"):
        assert (after[key].status, after[key].attempts, after[key].error) == (NotificationStatus.PENDING, 0, None)
    assert after["dm sent"].status is NotificationStatus.SENT
    assert after["other race failed"].status is NotificationStatus.FAILED
    history = (await d.services.audit.list(d.guild.id, action="notification.resend_failed")).items
    assert [(entry.target_id, entry.details) for entry in history] == [(race.id, {"requeued": 2, "expired": 0})]
    again = await mod(d, "liverace-admin resend", race=str(race.id))
    assert again.text == "No failed notifications for this race: nothing to resend."


# ---- reading -------------------------------------------------------------------------------------------------------
async def test_list_filters_by_status_and_is_private_by_default(discord_, cup) -> None:
    d = discord_
    kept = await schedule(d, cup, title="Kept")
    dropped = await schedule(d, cup, title="Dropped")
    await d.services.live_races.cancel(d.guild.id, dropped.race.id, SYSTEM, reason="x")
    everything = await d.harness.run("liverace list", d.alice)
    assert everything.ephemeral and "Kept" in everything.text and "Dropped" in everything.text
    active = await d.harness.run("liverace list", d.alice, status="active", public=True)
    assert not active.ephemeral and "Kept" in active.text and "Dropped" not in active.text
    assert f"`#{kept.race.id}`" in active.text and "<t:" in active.text and "🗓️ scheduled" in active.text


async def test_upcoming_tells_each_player_whether_they_may_join(discord_, cup) -> None:
    d = discord_
    await schedule(d, cup, title="Next")
    await d.services.players.link_racetime(
        d.guild.id, d.bob.id, ALICE_RT["id"], "bob", SYSTEM, verified=True, display_name="bob"
    )
    alice = await d.harness.run("liverace upcoming", d.alice)
    assert alice.first.type == 5 and alice.ephemeral
    assert "Next" in alice.text and "❌ Link your RaceTime.gg account with /racetime link" in alice.text
    bob = await d.harness.run("liverace upcoming", d.bob)
    assert "✅ you may join" in bob.text


async def test_upcoming_pages_with_buttons(discord_, cup) -> None:
    d = discord_
    for hour in range(1, 8):
        await schedule(d, cup, hours=hour, title=f"Race {hour}")
    reply = await d.harness.run("liverace upcoming", d.alice)
    page = reply.with_buttons()
    assert "Race 1" in page.text and "Race 6" not in page.text and "Page 1 of 2" in page.text
    second = await d.harness.click(page, "Next", d.alice)
    assert "Race 6" in second.text and "Race 7" in second.text


async def test_eligible_shows_a_player_only_their_own_reason_and_moderators_everyones(discord_, cup) -> None:
    d = discord_
    view = await schedule(d, cup)
    await d.harness.run("racetime status", d.bob)  # any command makes bob a player of the server
    await d.services.players.link_racetime(d.guild.id, d.bob.id, ALICE_RT["id"], "bob", SYSTEM, verified=True)
    alice = await d.harness.run("liverace eligible", d.alice, race=str(view.race.id))
    assert alice.ephemeral and "1 may race, 1 may not." in alice.text
    assert "❌ You may not race it: Link your RaceTime.gg account with /racetime link." in alice.text
    assert escape_markdown(d.bob.display_name) not in alice.text and d.mod.display_name not in alice.text
    bob = await d.harness.run("liverace eligible", d.bob, race=str(view.race.id))
    assert "✅ You may race it." in bob.text and escape_markdown(d.alice.display_name) not in bob.text
    everyone = await mod(d, "liverace eligible", race=str(view.race.id))
    assert everyone.ephemeral and "1 may race, 2 may not." in everyone.text  # the moderator is a player now
    assert f"✅ {escape_markdown(d.bob.display_name)}" in everyone.text
    assert (
        f"❌ {escape_markdown(d.alice.display_name)} — Link your RaceTime.gg account with /racetime link"
        in everyone.text
    )


async def test_resend_expires_what_went_stale_and_history_shows_expired_messages(discord_, cup) -> None:
    d = discord_
    race = (await schedule(d, cup)).race
    async with d.services.db.transaction() as session:
        for key, event_type, status in [
            ("scheduled failed", EventType.LIVE_RACE_SCHEDULED, NotificationStatus.FAILED),
            ("cancelled failed", EventType.LIVE_RACE_CANCELLED, NotificationStatus.FAILED),
            ("room open pending", EventType.LIVE_RACE_ROOM_OPENED, NotificationStatus.PENDING),
        ]:
            session.add(
                Notification(
                    kind=NotificationKind.DM,
                    event_type=event_type,
                    guild_id=d.guild.id,
                    live_race_id=race.id,
                    payload={"event": event_type.value, "race": {"id": race.id}},
                    dedupe_key=key,
                    status=status,
                    attempts=5 if status is NotificationStatus.FAILED else 0,
                    error="Discord server error" if status is NotificationStatus.FAILED else None,
                )
            )
    await d.services.live_races.cancel(d.guild.id, race.id, SYSTEM, reason="Host ill")
    reply = await mod(d, "liverace-admin resend", race=str(race.id))
    assert reply.text == (
        "Queued 1 failed notification again; 1 had gone stale (the race moved on) and expired instead of being resent."
    )
    async with d.services.db.read() as session:
        after = {n.dedupe_key: n for n in await session.scalars(select(Notification))}
    assert after["cancelled failed"].status is NotificationStatus.PENDING  # a cancellation stays true
    assert after["scheduled failed"].status is NotificationStatus.EXPIRED
    assert after["scheduled failed"].error.startswith("Expired unsent: the race was already cancelled")

    d.bot.app.delivery = RecordingDelivery()  # the gateway is back: the dispatcher runs
    await d.bot.app.dispatcher.run_once()
    assert [user for user, _, _ in d.bot.app.delivery.dms] == []  # the DM rows name no player: nothing to send
    history = await mod(d, "liverace-admin history", race=str(race.id))
    assert "**notification.expire** by notification dispatcher" in history.text
    assert "⌛ 1 not sent, gone stale (race ❌ cancelled): Room opened ×1" in history.text
    assert "requeued=1, expired=1" in history.text


async def test_history_is_for_moderators(discord_, cup) -> None:
    d = discord_
    view = await schedule(d, cup)
    refused = await d.harness.run("liverace-admin history", d.alice, race=str(view.race.id))
    assert "Manage Server" in refused.text
    history = await mod(d, "liverace-admin history", race=str(view.race.id))
    assert "**live_race.create** by system" in history.text


async def test_rsvp_says_what_it_does_and_why_a_player_may_not_race_it(discord_, cup) -> None:
    d = discord_
    view = await schedule(d, cup)
    reply = await d.harness.run("liverace rsvp", d.alice, race=str(view.race.id))
    assert reply.ephemeral and "You RSVP'd for" in reply.text and "1 h before the start" in reply.text
    assert "You may not race it yet" in reply.text and "/racetime link" in reply.text  # Alice is not linked
    again = await d.harness.run("liverace rsvp", d.alice, race=str(view.race.id))
    assert "already RSVP'd" in again.text
    info = await mod(d, "liverace info", race=str(view.race.id))
    assert "RSVPs (1)" in info.text
    back = await d.harness.run("liverace rsvp", d.alice, race=str(view.race.id), going=False)
    assert "withdrawn" in back.text
    assert await d.services.reminders.rsvps(d.guild.id, view.race.id) == []


async def test_rsvp_for_a_deleted_race_is_answered_and_changes_nothing(discord_, cup) -> None:
    d = discord_
    view = await schedule(d, cup)
    await d.services.live_races.delete(d.guild.id, view.race.id, SYSTEM)
    reply = await d.harness.run("liverace rsvp", d.alice, race=str(view.race.id))
    assert reply.text == f"Live race {view.race.id} not found."


async def test_info_shows_who_pressed_interested_beside_the_rsvps_to_moderators(discord_, cup) -> None:
    from db.models import RaceScheduledEvent

    d = discord_
    view = await schedule(d, cup)
    event_id = 8_000_000_000_000_000_001
    async with d.services.db.transaction() as session:  # the race's Discord Scheduled Event, as recorded
        session.add(RaceScheduledEvent(guild_id=d.guild.id, live_race_id=view.race.id, event_id=event_id))
    stranger = 8_100_000_000_000_000_001  # never used the bot here
    for user in (d.alice.id, stranger):
        assert await d.services.reminders.set_interest(d.guild.id, event_id, user, True)
    await d.harness.run("liverace rsvp", d.alice, race=str(view.race.id))
    info = await mod(d, "liverace info", race=str(view.race.id))
    assert "RSVPs (1)" in info.text
    assert f"Interested on Discord (2): <@{d.alice.id}>, <@{stranger}>" in info.text
    public = await d.harness.run("liverace info", d.alice, race=str(view.race.id))
    assert "Interested on Discord (2): —" in public.text  # players see the count, not the names
    # An RSVP'd player's reminders follow the guild's default when they chose none.
    await d.services.guilds.update(d.guild.id, SYSTEM, default_reminder_offsets="24h")
    again = await d.harness.run("liverace rsvp", d.alice, race=str(view.race.id))
    assert "24 h before the start" in again.text
