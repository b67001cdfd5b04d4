"""/template, /series, /phase and /season through the real command tree."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from bot.actors import Actor
from db.models import RaceSeries
from db.types import utcnow
from tests.commands.conftest import MODERATOR_PERMS

SYSTEM = Actor.system()


async def mod(d, command: str, **options):
    return await d.harness.run(command, d.mod, perms=MODERATOR_PERMS, **options)


async def _cup(d):
    tournament = await d.services.tournaments.create_tournament(d.guild.id, SYSTEM, name="Spring Cup")
    pool = await d.services.tournaments.add_pool(d.guild.id, tournament.id, SYSTEM, name="Pool A")
    for index in range(4):
        await d.services.tournaments.add_seed(
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


async def test_liverace_create_from_a_template_on_a_date(discord_) -> None:
    d = discord_
    cup = await _cup(d)
    pool = (await d.services.tournaments.list_pools(d.guild.id, cup.id))[0]
    other = await d.services.tournaments.add_pool(d.guild.id, cup.id, SYSTEM, name="Pool B")
    await d.services.templates.create(
        d.guild.id,
        cup.id,
        SYSTEM,
        name="Weekly",
        pool_ids=[pool.id],
        title_pattern="{tournament} on {date}",
        start_time="20:00",
        timezone="Europe/Berlin",
        room={"start_delay": 30},
    )
    await d.services.templates.create(d.guild.id, cup.id, SYSTEM, name="Loose", pool_ids=[pool.id])
    day = (utcnow() + timedelta(days=10)).date()
    reply = await mod(d, "liverace-admin create", tournament="Spring Cup", template="Weekly", when=day.isoformat())
    assert reply.ephemeral and f"Spring Cup on {day.isoformat()}** (Spring Cup / Pool A)" in reply.text, reply.text
    assert "at the template's start time" in reply.text
    (view,) = (await d.services.live_races.upcoming(d.guild.id)).items
    local = view.race.scheduled_at.astimezone(ZoneInfo("Europe/Berlin"))
    assert (local.date(), local.hour, local.minute) == (day, 20, 0)
    assert view.race.room_settings == {"start_delay": 30}
    # A time overrides the template's start; pool, title and room settings given override it too.
    reply = await mod(
        d,
        "liverace-admin create",
        tournament="Spring Cup",
        template="Weekly",
        when=f"{day.isoformat()} 18:30",
        timezone="UTC",
        pool="Pool B",
        title="Special",
        auto_start=False,
    )
    assert "Special** (Spring Cup / Pool B)" in reply.text, reply.text
    special = next(v for v in (await d.services.live_races.upcoming(d.guild.id)).items if v.race.title == "Special")
    assert special.race.pool_id == other.id and special.race.scheduled_at.hour == 18
    assert special.race.room_settings == {"start_delay": 30, "auto_start": False}
    # The /template-admin race alias does the same.
    reply = await mod(
        d, "template-admin race", tournament="Spring Cup", template="Weekly", when=(day + timedelta(days=1)).isoformat()
    )
    assert "Scheduled" in reply.text and "Spring Cup on" in reply.text


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"template": "Loose", "when": "2030-01-05"}, "Template 'Loose' has no start time and time zone"),
        ({"template": "Weekly", "when": "2020-01-05"}, "is in the past; pick a date ahead"),
        ({"template": "Weekly", "when": "5/6"}, "could mean"),
        ({"template": "Nope", "when": "2030-01-05"}, "This tournament has no template called 'Nope'"),
        ({"pool": "Pool A", "when": "2030-01-05"}, "I could not read `2030-01-05` as a time. Add a time of day."),
        ({"when": "2030-01-05 20:00"}, "Pick the pool to race, or a template"),
    ],
)
async def test_liverace_create_from_a_template_refuses_bad_input(discord_, options, message) -> None:
    d = discord_
    cup = await _cup(d)
    pool = (await d.services.tournaments.list_pools(d.guild.id, cup.id))[0]
    await d.services.templates.create(
        d.guild.id, cup.id, SYSTEM, name="Weekly", pool_ids=[pool.id], start_time="20:00", timezone="Europe/Berlin"
    )
    await d.services.templates.create(d.guild.id, cup.id, SYSTEM, name="Loose", pool_ids=[pool.id])
    reply = await mod(d, "liverace-admin create", tournament="Spring Cup", **options)
    assert reply.ephemeral and message in reply.text, reply.text
    assert (await d.services.live_races.upcoming(d.guild.id)).items == []


async def test_liverace_create_from_a_template_is_for_moderators_of_its_server(discord_) -> None:
    d = discord_
    cup = await _cup(d)
    pool = (await d.services.tournaments.list_pools(d.guild.id, cup.id))[0]
    await d.services.templates.create(
        d.guild.id, cup.id, SYSTEM, name="Weekly", pool_ids=[pool.id], start_time="20:00", timezone="UTC"
    )
    elsewhere = await d.services.tournaments.create_tournament(d.other_guild.id, SYSTEM, name="Away Cup")
    away_pool = await d.services.tournaments.add_pool(d.other_guild.id, elsewhere.id, SYSTEM, name="Pool A")
    await d.services.templates.create(
        d.other_guild.id, elsewhere.id, SYSTEM, name="Away", pool_ids=[away_pool.id], start_time="20:00", timezone="UTC"
    )
    reply = await d.harness.run(
        "liverace-admin create", d.alice, tournament="Spring Cup", template="Weekly", when="2030-01-05"
    )
    assert reply.text == "You need the Manage Server permission to do that."
    reply = await mod(d, "liverace-admin create", tournament="Away Cup", template="Away", when="2030-01-05")
    assert reply.ephemeral and "Scheduled" not in reply.text
    reply = await mod(d, "liverace-admin create", tournament="Spring Cup", template="Away", when="2030-01-05")
    assert "This tournament has no template called 'Away'" in reply.text
    assert (await d.services.live_races.upcoming(d.guild.id)).items == []


async def test_phase_commands_match_the_api(discord_) -> None:
    """Several pools, edit, delete, and closing with a moderator's list of players, as the API does."""
    d = discord_
    cup = await _cup(d)
    for name in ("Pool B", "Final"):
        await d.services.tournaments.add_pool(d.guild.id, cup.id, SYSTEM, name=name)
    for member in (d.alice, d.bob):
        await d.services.players.upsert(d.guild.id, member.id, SYSTEM, display_name=member.name)
    reply = await mod(
        d, "phase-admin create", tournament="Spring Cup", name="Qualifier", pool="Pool A", pools="pool b, Pool A"
    )
    assert "Added phase 1: **Qualifier** · open · pools: Pool A, Pool B" in reply.text, reply.text
    reply = await mod(d, "phase-admin create", tournament="Spring Cup", name="Top", pools="Final", advance=8)
    assert "pools: Final · top 8 advance" in reply.text
    reply = await mod(d, "phase-admin edit", tournament="Spring Cup", phase="Top", name="Top 2", advance=2)
    assert "Phase 2 changed: **Top 2** · open · pools: Final · top 2 advance" in reply.text
    reply = await mod(d, "phase-admin edit", tournament="Spring Cup", phase="Qualifier", pools="Pool B")
    assert "pools: Pool B" in reply.text and "Pool A" not in reply.text
    reply = await mod(
        d, "phase-admin close", tournament="Spring Cup", phase="Qualifier", players=f"<@{d.alice.id}>, {d.bob.id}"
    )
    assert "Closed **Qualifier**: 2 of 2 players advance: alice, bob." in reply.last.text, reply.last.text
    reply = await mod(d, "phase-admin delete", tournament="Spring Cup", phase="Qualifier")
    assert "is closed; its standings decide the next phase" in reply.text
    reply = await mod(d, "phase-admin delete", tournament="Spring Cup", phase="Top 2")
    assert "Deleted phase **Top 2**" in reply.text
    assert [v.phase.name for v in await d.services.phases.list(d.guild.id, cup.id)] == ["Qualifier"]


@pytest.mark.parametrize(
    ("command", "options", "message"),
    [
        ("phase-admin create", {"name": "Q", "pools": "Pool A, Nope"}, "No pool called 'Nope' in Spring Cup"),
        ("phase-admin create", {"name": "Q", "pools": " , "}, "Name at least one pool"),
        ("phase-admin edit", {"phase": "Qualifier"}, "Nothing to change"),
        ("phase-admin edit", {"phase": "Nope", "name": "X"}, "This tournament has no phase called 'Nope'"),
        ("phase-admin close", {"phase": "Qualifier", "players": "alice"}, "Players must be mentions or Discord ids"),
        ("phase-admin close", {"phase": "Qualifier", "players": "123456789012345678"}, "Not players of this server"),
        ("phase-admin close", {"phase": "Qualifier", "players": "<@123456789012345678>", "top": 2}, "not both"),
        ("phase-admin close", {"phase": "Qualifier"}, "has no advance_count; give top or a list of players"),
    ],
)
async def test_phase_commands_refuse_bad_input(discord_, command, options, message) -> None:
    d = discord_
    cup = await _cup(d)
    await mod(d, "phase-admin create", tournament="Spring Cup", name="Qualifier", pool="Pool A")
    reply = await mod(d, command, tournament="Spring Cup", **options)
    assert message in reply.last.text, reply.last.text
    (view,) = await d.services.phases.list(d.guild.id, cup.id)
    assert (view.phase.name, view.phase.status.value, [p.name for p in view.pools]) == ("Qualifier", "open", ["Pool A"])


async def test_phase_commands_are_for_moderators(discord_) -> None:
    d = discord_
    await _cup(d)
    await mod(d, "phase-admin create", tournament="Spring Cup", name="Qualifier", pool="Pool A")
    for command, options in (
        ("phase-admin edit", {"phase": "Qualifier", "name": "X"}),
        ("phase-admin delete", {"phase": "Qualifier"}),
        ("phase-admin close", {"phase": "Qualifier", "top": 1}),
    ):
        reply = await d.harness.run(command, d.alice, tournament="Spring Cup", **options)
        assert reply.text == "You need the Manage Server permission to do that.", command


async def test_template_lead_channel_and_role_by_command(discord_) -> None:
    d = discord_
    cup = await _cup(d)
    channel, role = d.guild.text_channels[0], d.guild.roles[0]
    reply = await mod(
        d,
        "template-admin create",
        tournament="Spring Cup",
        name="Weekly",
        pool="Pool A",
        start_time="20:00",
        lead_minutes=40,
        announcement_channel=channel,
        announcement_role=role,
    )
    assert "Created template **Weekly**" in reply.text
    (template,) = await d.services.templates.list(d.guild.id, cup.id)
    assert (template.room_open_lead_minutes, template.announcement_channel_id, template.announcement_role_id) == (
        40,
        channel.id,
        role.id,
    )
    listed = await d.harness.run("template list", d.alice, tournament="Spring Cup")
    assert f"room opens 40 min before · announced in <#{channel.id}> · pings <@&{role.id}>" in str(listed.first.embeds)
    reply = await mod(d, "template-admin edit", tournament="Spring Cup", template="Weekly", lead_minutes=1441)
    assert reply.ephemeral and "1440" in reply.text  # Discord's range; nothing changed
    reply = await mod(d, "template-admin edit", tournament="Spring Cup", template="Weekly", clear=True)
    assert "Template **Weekly** changed." in reply.text
    (template,) = await d.services.templates.list(d.guild.id, cup.id)
    assert (template.room_open_lead_minutes, template.announcement_channel_id, template.announcement_role_id) == (
        None,
        None,
        None,
    )


async def test_series_edit_changes_the_rule_and_the_end(discord_) -> None:
    d = discord_
    cup = await _cup(d)
    pool = (await d.services.tournaments.list_pools(d.guild.id, cup.id))[0]
    template = await d.services.templates.create(
        d.guild.id, cup.id, SYSTEM, name="Weekly", pool_ids=[pool.id], start_time="20:00", timezone="Europe/Berlin"
    )
    await d.services.series.create(
        d.guild.id, cup.id, SYSTEM, name="Saturdays", template_id=template.id, rrule="FREQ=WEEKLY;BYDAY=SA"
    )
    reply = await mod(
        d, "series-admin edit", tournament="Spring Cup", series="Saturdays", rrule="FREQ=WEEKLY;BYDAY=SU", count=3
    )
    assert (
        "Changed series:" in reply.last.text and "BYDAY=SU" in reply.last.text and "3 races in all" in reply.last.text
    )
    upcoming = (await d.services.live_races.upcoming(d.guild.id)).items
    assert upcoming and all(
        view.race.scheduled_at.astimezone(ZoneInfo("Europe/Berlin")).weekday() == 6 for view in upcoming
    )
    reply = await mod(d, "series-admin edit", tournament="Spring Cup", series="Saturdays", until="2030-03-28")
    assert "until <t:" in reply.last.text
    reply = await mod(d, "series-admin edit", tournament="Spring Cup", series="Saturdays", no_end=True)
    assert "races in all" not in reply.last.text and "until <t:" not in reply.last.text


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "Nothing to change"),
        ({"count": 2, "until": "2030-01-01"}, "Give count or until, not both"),
        ({"no_end": True, "count": 2}, "no_end removes the end"),
        ({"until": "next year"}, "Until must be a date like 2026-12-05"),
        ({"rrule": "FREQ=MINUTELY"}, "at most every 1 hour"),
        ({"rrule": "FREQ=SOMETIMES"}, "rrule"),
    ],
)
async def test_series_edit_refuses_bad_input_and_changes_nothing(discord_, options, message) -> None:
    d = discord_
    cup = await _cup(d)
    pool = (await d.services.tournaments.list_pools(d.guild.id, cup.id))[0]
    template = await d.services.templates.create(
        d.guild.id, cup.id, SYSTEM, name="Weekly", pool_ids=[pool.id], start_time="20:00", timezone="Europe/Berlin"
    )
    await d.services.series.create(
        d.guild.id, cup.id, SYSTEM, name="Saturdays", template_id=template.id, rrule="FREQ=WEEKLY;BYDAY=SA"
    )
    reply = await mod(d, "series-admin edit", tournament="Spring Cup", series="Saturdays", **options)
    assert message.lower() in reply.last.text.lower(), reply.last.text
    (view,) = (await d.services.series.list(d.guild.id, cup.id)).items
    assert (view.series.rrule, view.series.count, view.series.until) == ("FREQ=WEEKLY;BYDAY=SA", None, None)
    reply = await d.harness.run("series-admin edit", d.alice, tournament="Spring Cup", series="Saturdays", count=2)
    assert reply.text == "You need the Manage Server permission to do that."
