"""/liverace-admin batch through the real command tree, with a CSV attachment."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bot.actors import Actor
from db.models import LiveRace
from db.types import utcnow
from tests.commands.conftest import MODERATOR_PERMS
from tests.fakes.discord_interactions import Upload

SYSTEM = Actor.system()


async def _cup(d, guild=None, name: str = "Spring Cup"):
    tournament = await d.services.tournaments.create_tournament((guild or d.guild).id, SYSTEM, name=name)
    for pool in ("Pool A", "Pool B"):
        await d.services.tournaments.add_pool((guild or d.guild).id, tournament.id, SYSTEM, name=pool)
    return tournament


def _at(days: int, hour: int = 20) -> str:
    moment = (utcnow() + timedelta(days=days)).replace(hour=hour, minute=0, second=0, microsecond=0)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


async def batch(d, member=None, *, perms=MODERATOR_PERMS, **options):
    return await d.harness.run("liverace-admin batch", member or d.mod, perms=perms, **options)


async def titles(d) -> list[str]:
    return [view.race.title for view in (await d.services.live_races.upcoming(d.guild.id)).items]


async def test_a_csv_is_checked_shown_and_then_scheduled(discord_) -> None:
    d = discord_
    await _cup(d)
    csv = f"pool,scheduled_at,title\nPool A,{_at(2)},Week 1\npool b,{_at(9)},Week 2\n".encode()
    dry = await batch(d, tournament="Spring Cup", file=Upload("races.csv", csv), dry_run=True)
    assert dry.first.type == 5 and dry.ephemeral  # thinking while the file is read
    assert dry.last.text.startswith("Would schedule 2 races:")
    assert "line 2:" in dry.last.text and "Week 1" in dry.last.text and "line 3:" in dry.last.text
    assert await titles(d) == []
    done = await batch(d, tournament="Spring Cup", file=Upload("races.csv", csv))
    assert done.last.text.startswith("Scheduled 2 races:")
    assert await titles(d) == ["Week 1", "Week 2"]


async def test_times_without_an_offset_are_read_in_the_given_zone(discord_) -> None:
    d = discord_
    await _cup(d)
    local = (utcnow() + timedelta(days=3)).strftime("%Y-%m-%d") + " 20:00"
    csv = f"scheduled_at,pool\n{local},Pool A\n".encode()
    await batch(d, tournament="Spring Cup", file=Upload("r.csv", csv), timezone="America/New_York")
    (view,) = (await d.services.live_races.upcoming(d.guild.id)).items
    assert view.race.scheduled_at.hour == 1  # 20:00 in New York is 01:00 UTC the next day (EST in winter)


async def test_a_bad_line_refuses_the_whole_file_and_every_error_is_listed(discord_) -> None:
    d = discord_
    await _cup(d)
    csv = (
        "pool,scheduled_at,episode_id\n"
        f"Pool A,{_at(2)},ep-1\n"
        f"Pool Q,{_at(3)},\n"
        "Pool A,next week,\n"
        f"Pool B,{_at(4)},ep-1\n"
        f"Pool A,{_at(-1)},\n"
    ).encode()
    reply = await batch(d, tournament="Spring Cup", file=Upload("r.csv", csv))
    text = reply.last.text
    assert reply.ephemeral and text.startswith("4 of 5 lines have errors; nothing was created")
    assert "line 3 · pool: pool 'Pool Q' is not a pool of this tournament" in text
    assert "line 4 · scheduled_at: scheduled_at 'next week' is not a date and time" in text
    assert "line 5 · episode_id: episode_id 'ep-1' is also on line 2" in text
    assert "line 6 · scheduled_at:" in text
    assert await titles(d) == []


@pytest.mark.parametrize(
    ("upload", "message"),
    [
        (Upload("r.csv", b"pool,when\nPool A,2030-01-01T20:00Z\n"), "the CSV header is wrong: unknown column 'when'"),
        (Upload("r.csv", b"title\nx\n"), "the CSV header is wrong: missing column 'pool'"),
        (Upload("r.csv", b""), "the CSV is empty"),
        (Upload("r.csv", b"pool,scheduled_at\n"), "the batch has no race in it"),
        (Upload("r.csv", b"pool,scheduled_at\n\xff\xfe,x\n"), "The file is not UTF-8 text"),
        (Upload("r.csv", b"x", size=10**6), "The file is larger than 512 KiB; split it."),
    ],
)
async def test_files_it_cannot_use_are_refused_with_a_clear_message(discord_, upload, message) -> None:
    d = discord_
    await _cup(d)
    reply = await batch(d, tournament="Spring Cup", file=upload)
    assert reply.ephemeral and message.lower() in reply.last.text.lower(), reply.last.text
    assert await titles(d) == []


async def test_batch_is_for_moderators_and_sees_only_its_own_server(discord_) -> None:
    d = discord_
    await _cup(d)
    await _cup(d, guild=d.other_guild, name="Other Cup")
    csv = f"pool,scheduled_at\nPool A,{_at(2)}\n".encode()
    refused = await batch(d, d.alice, perms=None, tournament="Spring Cup", file=Upload("r.csv", csv))
    assert refused.ephemeral and refused.text == "You need the Manage Server permission to do that."
    elsewhere = await batch(d, tournament="Other Cup", file=Upload("r.csv", csv))
    assert elsewhere.ephemeral and "Other Cup" in elsewhere.text and "Scheduled" not in elsewhere.text
    assert await titles(d) == []
    async with d.services.db.read() as session:
        assert await session.scalar(select(func.count(LiveRace.id))) == 0
