"""/template, /series, /phase and /season through the real command tree."""

from __future__ import annotations

from sqlalchemy import func, select

from bot.actors import Actor
from db.models import RaceSeries
from tests.commands.conftest import MODERATOR_PERMS

SYSTEM = Actor.system()


async def mod(d, command: str, **options):
    return await d.harness.run(command, d.mod, perms=MODERATOR_PERMS, **options)


async def _cup(d):
    tournament = await d.services.tournaments.create_tournament(d.guild.id, SYSTEM, name="Spring Cup")
    pool = await d.services.tournaments.add_pool(d.guild.id, tournament.id, SYSTEM, name="Pool A")
    for index in range(4):
        await d.services.tournaments.add_permalink(
            d.guild.id, tournament.id, pool.id, SYSTEM, url=f"https://alttpr.com/h/s{index}"
        )
    return tournament


async def test_a_weekly_series_from_a_template(discord_) -> None:
    d = discord_
    await _cup(d)
    await d.services.guilds.update(d.guild.id, SYSTEM, timezone="Europe/Berlin")
    reply = await mod(
        d,
        "template-admin create",
        tournament="Spring Cup",
        name="Weekly",
        pool="Pool A",
        title_pattern="Week {n}",
        start_time="20:00",
    )
    assert "Created template **Weekly**" in reply.text
    choices = await d.harness.autocomplete(
        "series-admin create", d.mod, "template", tournament="Spring Cup", template="we"
    )
    assert [c["name"] for c in choices] == ["Weekly"]
    reply = await mod(
        d,
        "series-admin create",
        tournament="Spring Cup",
        template="Weekly",
        name="Saturdays",
        rrule="FREQ=WEEKLY;BYDAY=SA",
    )
    assert "Created series" in reply.text and "FREQ=WEEKLY;BYDAY=SA" in reply.text and "Europe/Berlin" in reply.text
    upcoming = (await d.services.live_races.upcoming(d.guild.id)).items
    assert [view.race.title for view in upcoming] == ["Week 1", "Week 2"]
    # Bad input: a clear message, nothing made.
    reply = await mod(
        d, "series-admin create", tournament="Spring Cup", template="Weekly", name="Spam", rrule="FREQ=MINUTELY"
    )
    assert reply.ephemeral and "at most every 1 hour" in reply.text
    reply = await mod(d, "series-admin skip", tournament="Spring Cup", series="Saturdays", date="tomorrow")
    assert "Date must be a date like 2026-12-05" in reply.text
    async with d.services.db.read() as session:
        assert await session.scalar(select(func.count(RaceSeries.id))) == 1
    reply = await mod(d, "series-admin pause", tournament="Spring Cup", series="Saturdays")
    assert "paused" in reply.text
    # Players may list, not change.
    reply = await d.harness.run("series-admin pause", d.alice, tournament="Spring Cup", series="Saturdays")
    assert "Manage Server" in reply.text


async def test_phases_and_a_season_leaderboard(discord_) -> None:
    d = discord_
    await _cup(d)
    reply = await mod(d, "phase-admin create", tournament="Spring Cup", name="Qualifier", pool="Pool A", advance=2)
    assert "Added phase 1: **Qualifier**" in reply.text
    reply = await mod(d, "phase-admin close", tournament="Spring Cup", phase="Qualifier")
    assert "Closed **Qualifier**: 0 of 0 players advance" in reply.text
    reply = await mod(d, "phase-admin close", tournament="Spring Cup", phase="Qualifier")
    assert "already closed" in reply.text
    reply = await mod(d, "season-admin create", name="2026", best_of=2)
    assert "Created season **2026**" in reply.text
    reply = await mod(d, "season-admin add", season="2026", tournament="Spring Cup")
    assert "Added Spring Cup to season **2026**" in reply.text
    reply = await d.harness.run("season leaderboard", d.alice, season="2026")
    assert "No scored runs in this season yet." in str(reply.first.embeds) or "No scored runs" in reply.text
