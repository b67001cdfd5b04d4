"""/timezone and /calendar through the real command tree: what a member sets up for themselves."""

from __future__ import annotations

from datetime import timedelta

import pytest
from icalendar import Calendar
from sqlalchemy import update

from bot.actors import Actor
from bot.errors import NotFound
from db.models import GuildPlayer
from db.types import utcnow

SYSTEM = Actor.system()


async def test_timezone_set_show_clear(discord_) -> None:
    d = discord_
    await d.services.guilds.update(d.guild.id, SYSTEM, timezone="Europe/Berlin")
    shown = await d.harness.run("timezone show", d.alice)
    assert shown.ephemeral and "read in this server's, **Europe/Berlin**" in shown.text
    saved = await d.harness.run("timezone set", d.alice, zone="America/New_York")
    assert saved.ephemeral and "Saved. Your time zone is **America/New_York**" in saved.text
    assert "This server's zone is Europe/Berlin." in saved.text
    assert (await d.services.timezones.zones(d.other_guild.id, d.alice.id)).own == "America/New_York"  # global
    cleared = await d.harness.run("timezone clear", d.alice)
    assert "Forgot your time zone" in cleared.text and "**Europe/Berlin**" in cleared.text
    assert (await d.services.timezones.zones(d.guild.id, d.alice.id)).own is None


async def test_an_unknown_zone_is_refused_and_nothing_changes(discord_) -> None:
    d = discord_
    await d.harness.run("timezone set", d.alice, zone="Asia/Tokyo")
    refused = await d.harness.run("timezone set", d.alice, zone="Mars/Base")
    assert refused.ephemeral and refused.text.startswith("Unknown timezone 'Mars/Base'; use an IANA name")
    assert (await d.services.timezones.zones(d.guild.id, d.alice.id)).own == "Asia/Tokyo"


def key_of(text: str, label: str) -> str:
    line = next(line for line in text.splitlines() if line.startswith(label))
    return line.split("key=")[1].split(">")[0]


async def feed_titles(d, key: str) -> list[str]:
    calendar = Calendar.from_ical(await d.services.calendar.render_feed(key))
    return [str(event["summary"]) for event in calendar.walk("VEVENT")]


async def test_calendar_show_gives_the_servers_feed_and_a_personal_one_with_the_races_one_may_race(discord_) -> None:
    d = discord_
    cup = await d.services.tournaments.create_tournament(d.guild.id, SYSTEM, name="Cup")
    pools = [await d.services.tournaments.add_pool(d.guild.id, cup.id, SYSTEM, name=f"Pool {n}") for n in "AB"]
    seed = await d.services.tournaments.add_seed(d.guild.id, cup.id, pools[0].id, SYSTEM, url="https://s.example/1")
    for pool, hours in ((pools[0], 2), (pools[1], 3)):
        await d.services.live_races.create(
            d.guild.id, cup.id, SYSTEM, pool_id=pool.id, scheduled_at=utcnow() + timedelta(hours=hours)
        )
    await d.harness.run("calendar show", d.alice)  # makes alice a player
    await d.services.players.link_racetime(d.guild.id, d.alice.id, "AliceRacetime1", "alice", SYSTEM, verified=True)
    await d.services.runs.import_run(  # alice has raced Pool A: only Pool B's race is hers to race
        d.guild.id, cup.id, SYSTEM, discord_user_id=d.alice.id, seed_id=seed.id, status="forfeit"
    )
    shown = await d.harness.run("calendar show", d.alice)
    assert shown.ephemeral
    personal, everything = key_of(shown.text, "Only the races"), key_of(shown.text, "Every race")
    assert personal != everything
    assert await feed_titles(d, everything) == ["Cup: Cup – Pool A", "Cup: Cup – Pool B"]
    assert await feed_titles(d, personal) == ["Cup: Cup – Pool B"]
    again = await d.harness.run("calendar show", d.alice)
    assert key_of(again.text, "Only the races") == personal  # stable until reset
    bob = await d.harness.run("calendar show", d.bob)
    assert key_of(bob.text, "Only the races") != personal and await feed_titles(d, key_of(bob.text, "Only")) == []


async def test_calendar_reset_replaces_the_personal_url_and_the_old_one_stops(discord_) -> None:
    d = discord_
    shown = await d.harness.run("calendar show", d.alice)
    old, guild_key = key_of(shown.text, "Only the races"), key_of(shown.text, "Every race")
    reset = await d.harness.run("calendar reset", d.alice)
    assert reset.ephemeral and "The old one stops working" in reset.text
    new = reset.text.split("key=")[1].split(">")[0]
    assert new != old
    with pytest.raises(NotFound):
        await d.services.calendar.render_feed(old)
    assert Calendar.from_ical(await d.services.calendar.render_feed(new)) is not None
    assert Calendar.from_ical(await d.services.calendar.render_feed(guild_key)) is not None  # the server's stays
    audit = await d.services.audit.list(d.guild.id, action="calendar.personal_rotate")
    assert len(audit.items) == 1


async def test_a_personal_feed_shows_only_its_own_guild_and_stops_when_its_owner_leaves(discord_) -> None:
    d = discord_
    for guild in (d.guild, d.other_guild):
        cup = await d.services.tournaments.create_tournament(guild.id, SYSTEM, name=f"Cup {guild.name}")
        pool = await d.services.tournaments.add_pool(guild.id, cup.id, SYSTEM, name="Pool")
        await d.services.live_races.create(
            guild.id, cup.id, SYSTEM, pool_id=pool.id, scheduled_at=utcnow() + timedelta(hours=2)
        )
    await d.services.players.link_racetime(d.guild.id, d.alice.id, "AliceRacetime1", "alice", SYSTEM, verified=True)
    await d.services.players.touch(d.other_guild.id, d.alice.id)  # alice is in both servers
    home = key_of((await d.harness.run("calendar show", d.alice)).text, "Only the races")
    player_id = (await d.services.players.find(d.alice.id)).id
    assert await feed_titles(d, home) == ["Cup Home: Cup Home – Pool"]
    async with d.services.db.transaction() as session:  # alice leaves the server (her roster entry is marked left)
        await session.execute(
            update(GuildPlayer)
            .where(GuildPlayer.guild_id == d.guild.id, GuildPlayer.player_id == player_id)
            .values(left_at=utcnow())
        )
    with pytest.raises(NotFound):
        await d.services.calendar.render_feed(home)
