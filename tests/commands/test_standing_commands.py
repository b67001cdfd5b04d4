"""/tournament me, the moderators' "Startline profile" menu and the leaderboard's "My page", through the tree."""

from __future__ import annotations

import io

import pytest
from discord.utils import escape_markdown
from PIL import Image

from bot.actors import Actor
from tests.commands.conftest import MODERATOR_PERMS

SYSTEM = Actor.system()


@pytest.fixture
async def cup(discord_):
    """Two pools (A: two seeds, B: one); alice finished A's first seed, bob forfeited it and runs B."""
    d = discord_
    services = d.services
    tournament = await services.tournaments.create_tournament(d.guild.id, SYSTEM, name="Spring Cup")
    pool_a = await services.tournaments.add_pool(d.guild.id, tournament.id, SYSTEM, name="Pool A")
    pool_b = await services.tournaments.add_pool(d.guild.id, tournament.id, SYSTEM, name="Pool B")
    seeds = [
        await services.tournaments.add_seed(d.guild.id, tournament.id, pool.id, SYSTEM, url=f"https://s.example/{n}")
        for n, pool in enumerate((pool_a, pool_a, pool_b))
    ]
    for member in (d.alice, d.bob):
        await services.players.touch(d.guild.id, member.id, member.display_name)
    await services.players.link_racetime(d.guild.id, d.alice.id, "AliceRacetime1", "alice", SYSTEM, verified=True)
    await services.runs.import_run(
        d.guild.id, tournament.id, SYSTEM, discord_user_id=d.alice.id, seed_id=seeds[0].id,
        status="finished", elapsed_seconds=3723.0,
    )  # fmt: skip
    await services.runs.import_run(
        d.guild.id, tournament.id, SYSTEM, discord_user_id=d.bob.id, seed_id=seeds[0].id, status="forfeit"
    )
    await services.runs.import_run(
        d.guild.id, tournament.id, SYSTEM, discord_user_id=d.bob.id, seed_id=seeds[2].id, status="in_progress"
    )
    return tournament


def chart_of(sent) -> Image.Image:
    (attached,) = sent.files
    assert attached["filename"] == "scores.png"
    (embed,) = sent.embeds
    assert embed["image"]["url"] == "attachment://scores.png"
    return Image.open(io.BytesIO(attached["data"]))


async def test_me_shows_runs_scores_rank_what_is_left_and_a_chart(discord_, cup) -> None:
    d = discord_
    reply = await d.harness.run("tournament me", d.alice)  # the only active tournament: no option needed
    assert reply.first.type == 5 and reply.ephemeral  # thinking while the chart is drawn
    text = reply.last.text
    assert f"Spring Cup — {d.alice.display_name}" in text
    assert "Rank **1** of 2 · score **50.00**" in text  # 100 in Pool A, nothing yet in Pool B: (100 + 0) / 2
    assert "**Pool A** — 100.0 (1:02:03 · 100.0) · ❌ Already ran 1 of 1 in pool Pool A" in text
    assert "**Pool B** — no run yet · ✅ may play" in text
    assert chart_of(reply.last).format == "PNG"
    bob = await d.harness.run("tournament me", d.bob, tournament="Spring Cup")
    assert "Rank **2** of 2 · score **0.00**" in bob.last.text
    assert "⏳ Unfinished run in Pool B (in progress)" in bob.last.text
    assert "**Pool B** — 0.0 (in progress) · ❌ Link your RaceTime.gg account with /racetime link" in bob.last.text


async def test_me_asks_for_a_tournament_when_it_cannot_tell_and_changes_nothing(discord_) -> None:
    d = discord_
    none = await d.harness.run("tournament me", d.alice)
    assert none.ephemeral and none.text == "There is no active tournament in this server."
    for name in ("Cup 1", "Cup 2"):
        await d.services.tournaments.create_tournament(d.guild.id, SYSTEM, name=name)
    several = await d.harness.run("tournament me", d.alice)
    assert several.text == "This server has several active tournaments; pick one with the `tournament` option."
    other = await d.services.tournaments.create_tournament(d.other_guild.id, SYSTEM, name="Theirs")
    foreign = await d.harness.run("tournament me", d.alice, tournament=str(other.id))
    assert foreign.ephemeral and "not found" in foreign.text.lower() and "Theirs" not in foreign.text


async def test_me_with_no_runs_and_no_pools_still_answers_with_a_chart(discord_) -> None:
    d = discord_
    await d.services.tournaments.create_tournament(d.guild.id, SYSTEM, name="Empty Cup")
    reply = await d.harness.run("tournament me", d.alice)
    assert "No scored run yet." in reply.last.text and "This tournament has no pools yet." in reply.last.text
    assert chart_of(reply.last).format == "PNG"


async def test_the_profile_menu_shows_a_member_to_moderators_only(discord_, cup) -> None:
    d = discord_
    refused = await d.harness.run_user_menu("Startline profile", d.alice, d.bob)
    assert refused.ephemeral and refused.text == "You need the Manage Server permission to do that."
    shown = await d.harness.run_user_menu("Startline profile", d.mod, d.bob, perms=MODERATOR_PERMS)
    assert f"Spring Cup — {d.bob.display_name}" in shown.last.text and shown.ephemeral
    assert chart_of(shown.last).format == "PNG"
    stranger = await d.harness.run_user_menu("Startline profile", d.mod, d.stranger, perms=MODERATOR_PERMS)
    assert stranger.ephemeral and "is not known in this server" in stranger.text


async def test_the_profile_menu_lets_a_moderator_pick_among_active_tournaments(discord_, cup) -> None:
    d = discord_
    await d.services.tournaments.create_tournament(d.guild.id, SYSTEM, name="Summer Cup")
    asked = await d.harness.run_user_menu("Startline profile", d.mod, d.alice, perms=MODERATOR_PERMS)
    assert "pick a tournament" in asked.text
    picked = await d.harness.select(asked.first, str(cup.id), d.mod, perms=MODERATOR_PERMS)
    assert picked.first.type == 7 and f"Spring Cup — {d.alice.display_name}" in picked.text


async def test_leaderboard_my_page_jumps_to_the_callers_line(discord_, cup) -> None:
    d = discord_
    pool_a, pool_b = await d.services.tournaments.list_pools(d.guild.id, cup.id)
    seeds = [
        (await d.services.tournaments.list_seeds(d.guild.id, cup.id, pool_a.id))[1],
        (await d.services.tournaments.list_seeds(d.guild.id, cup.id, pool_b.id))[0],
    ]
    for number in range(25):  # 25 players with both pools at par: ahead of alice, who lands on page 3
        user_id = 700_000_000_000_000_000 + number
        await d.services.players.upsert(d.guild.id, user_id, SYSTEM, display_name=f"p{number:02d}")
        for seed in seeds:
            await d.services.runs.import_run(
                d.guild.id, cup.id, SYSTEM, discord_user_id=user_id, seed_id=seed.id, status="finished",
                elapsed_seconds=1000.0,
            )  # fmt: skip
    board = await d.harness.run("tournament leaderboard", d.alice, tournament="Spring Cup")
    page = board.with_buttons()
    assert "Page 1 of 3" in page.text and "◀ you" not in page.text
    mine = await d.harness.click(page, "My page", d.alice)
    assert "Page 3 of 3" in mine.text and f"{escape_markdown(d.alice.display_name)} — 50.00 (1 run) ◀ you" in mine.text
    stranger = await d.harness.run("tournament leaderboard", d.mod, tournament="Spring Cup", perms=MODERATOR_PERMS)
    assert "My page" not in [b["label"] for b in stranger.with_buttons().buttons]  # not on the board
