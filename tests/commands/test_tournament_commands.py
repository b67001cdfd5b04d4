"""/tournament, /pool, /seed and /roomprofile through the real command tree."""

from __future__ import annotations

import pytest

from bot.actors import Actor
from tests.commands.conftest import MODERATOR_PERMS
from tests.fakes.discord_interactions import Upload

SYSTEM = Actor.system()


async def make_tournament(d, name: str = "Spring Cup", guild=None, **fields):
    return await d.services.tournaments.create_tournament((guild or d.guild).id, SYSTEM, name=name, **fields)


async def test_create_tournament_as_moderator(discord_) -> None:
    d = discord_
    reply = await d.harness.run(
        "tournament-admin create",
        d.mod,
        perms=MODERATOR_PERMS,
        name="Spring Cup",
        runs_per_pool=2,
        goal="Beat the game",
    )
    assert reply.ephemeral and "Created tournament **Spring Cup**" in reply.text
    (created,) = (await d.services.tournaments.list_tournaments(d.guild.id)).items
    assert (created.runs_per_pool, created.racetime_goal) == (2, "Beat the game")


async def test_create_tournament_with_channel_role_and_profile(discord_) -> None:
    d = discord_
    profile = await d.services.room_profiles.create(d.guild.id, SYSTEM, name="Fast", start_delay=10)
    role = d.guild.roles[0]
    reply = await d.harness.run(
        "tournament-admin create",
        d.mod,
        perms=MODERATOR_PERMS,
        name="Cup",
        announcement_channel=d.guild.text_channels[0],
        announcement_role=role,
        room_profile="Fast",
        lead_minutes=30,
    )
    assert "Created" in reply.text
    (created,) = (await d.services.tournaments.list_tournaments(d.guild.id)).items
    assert created.announcement_channel_id == d.guild.text_channels[0].id
    assert created.announcement_role_id == role.id
    assert (created.room_profile_id, created.room_open_lead_minutes) == (profile.id, 30)


async def test_player_cannot_create_and_nothing_changes(discord_) -> None:
    d = discord_
    reply = await d.harness.run("tournament-admin create", d.alice, name="Sneaky")
    assert reply.ephemeral
    assert reply.text == "You need the Manage Server permission to do that."
    assert (await d.services.tournaments.list_tournaments(d.guild.id)).items == []


async def test_organizer_role_grants_moderator_commands_and_is_named_in_refusals(discord_) -> None:
    import discord.ext.test as dpytest
    import discord.ext.test.backend as back

    d = discord_
    role = back.make_role("Organizers", d.guild)
    await d.services.guilds.update(d.guild.id, SYSTEM, organizer_role_id=role.id)
    refused = await d.harness.run("tournament-admin create", d.alice, name="Cup")
    assert refused.text == f"You need the Manage Server permission or the <@&{role.id}> role to do that."
    await dpytest.add_role(d.alice, role)
    allowed = await d.harness.run("tournament-admin create", d.alice, name="Cup")
    assert "Created tournament" in allowed.text


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"name": "  "}, "Name must not be empty."),
        ({"name": "Cup", "runs_per_pool": 0}, "Runs_per_pool must be a whole number from 1 to 20."),
        ({"name": "Cup", "category": "not a slug!"}, "Racetime_category must be a RaceTime.gg category slug"),
        ({"name": "Cup", "goal": "a", "custom_goal": "b"}, "Set either racetime_goal"),
        ({"name": "Cup", "room_profile": "Nope"}, "There is no room profile called 'Nope'"),
    ],
)
async def test_bad_tournament_input_is_explained(discord_, options, message) -> None:
    d = discord_
    reply = await d.harness.run("tournament-admin create", d.mod, perms=MODERATOR_PERMS, **options)
    assert reply.ephemeral and message in reply.text
    assert (await d.services.tournaments.list_tournaments(d.guild.id)).items == []


async def test_duplicate_tournament_name_is_a_conflict(discord_) -> None:
    d = discord_
    await make_tournament(d)
    reply = await d.harness.run("tournament-admin create", d.mod, perms=MODERATOR_PERMS, name="spring cup")
    assert reply.text == "A tournament named 'spring cup' already exists."


async def test_edit_tournament_by_name_or_id(discord_) -> None:
    d = discord_
    cup = await make_tournament(d)
    by_id = await d.harness.run(
        "tournament-admin edit", d.mod, perms=MODERATOR_PERMS, tournament=str(cup.id), active=False
    )
    assert "Updated **Spring Cup**: active." in by_id.text
    by_name = await d.harness.run(
        "tournament-admin edit", d.mod, perms=MODERATOR_PERMS, tournament="spring cup", description="Qualifier"
    )
    assert "description" in by_name.text
    updated = await d.services.tournaments.get_tournament(d.guild.id, cup.id)
    assert (updated.active, updated.description) == (False, "Qualifier")
    nothing = await d.harness.run("tournament-admin edit", d.mod, perms=MODERATOR_PERMS, tournament=str(cup.id))
    assert "Nothing to change" in nothing.text


async def test_another_guilds_tournament_is_not_found(discord_) -> None:
    d = discord_
    theirs = await make_tournament(d, "Their Cup", guild=d.other_guild)
    reply = await d.harness.run(
        "tournament-admin edit", d.mod, perms=MODERATOR_PERMS, tournament=str(theirs.id), active=False
    )
    assert reply.text == f"Tournament {theirs.id} not found."
    info = await d.harness.run("tournament info", d.alice, tournament="Their Cup")
    assert "There is no tournament called 'Their Cup'" in info.text
    assert (await d.services.tournaments.get_tournament(d.other_guild.id, theirs.id)).active


async def test_list_and_info_are_open_to_players(discord_) -> None:
    d = discord_
    cup = await make_tournament(d, description="The spring qualifier")
    await make_tournament(d, "Old Cup", active=False)
    await d.services.tournaments.add_pool(d.guild.id, cup.id, SYSTEM, name="Pool A")
    listed = await d.harness.run("tournament list", d.alice)
    assert "Spring Cup" in listed.text and "Old Cup" not in listed.text
    everything = await d.harness.run("tournament list", d.alice, include_inactive=True)
    assert "Old Cup** (inactive)" in everything.text
    info = await d.harness.run("tournament info", d.alice, tournament=str(cup.id))
    assert info.ephemeral and "The spring qualifier" in info.text and "Pools (1): Pool A" in info.text


async def test_tournament_autocomplete_is_filtered_and_scoped(discord_) -> None:
    d = discord_
    for number in range(30):
        await make_tournament(d, f"Cup {number:02d}")
    await make_tournament(d, "Winter Open")
    await make_tournament(d, "Winter Elsewhere", guild=d.other_guild)
    choices = await d.harness.autocomplete("tournament info", d.alice, "tournament", tournament="")
    assert len(choices) == 25
    winter = await d.harness.autocomplete("tournament info", d.alice, "tournament", tournament="wint")
    assert [choice["name"] for choice in winter] == ["Winter Open"]


async def test_leaderboard_is_private_unless_public(discord_) -> None:
    d = discord_
    cup = await make_tournament(d)
    empty = await d.harness.run("tournament leaderboard", d.alice, tournament="Spring Cup")
    assert empty.ephemeral and "No scored runs yet." in empty.text
    public = await d.harness.run("tournament leaderboard", d.alice, tournament=str(cup.id), public=True)
    assert not public.ephemeral and "Leaderboard — Spring Cup" in public.text


async def test_pool_add_list_remove_with_confirmation(discord_) -> None:
    d = discord_
    cup = await make_tournament(d)
    added = await d.harness.run("pool-admin add", d.mod, perms=MODERATOR_PERMS, tournament="Spring Cup", name="Pool A")
    assert "Added pool **Pool A**" in added.text
    listed = await d.harness.run("pool list", d.bob, tournament="Spring Cup")
    assert "Pool A" in listed.text
    choices = await d.harness.autocomplete(
        "pool-admin remove", d.mod, "pool", perms=MODERATOR_PERMS, tournament=str(cup.id), pool="a"
    )
    assert [c["name"] for c in choices] == ["Pool A"]
    asked = await d.harness.run(
        "pool-admin remove", d.mod, perms=MODERATOR_PERMS, tournament=str(cup.id), pool="Pool A"
    )
    assert "Remove pool **Pool A**" in asked.text
    assert len(await d.services.tournaments.list_pools(d.guild.id, cup.id)) == 1  # not before confirming
    done = await d.harness.click(asked.with_buttons(), "Remove pool", d.mod, perms=MODERATOR_PERMS)
    assert "Removed pool **Pool A**" in done.text
    assert await d.services.tournaments.list_pools(d.guild.id, cup.id) == []


async def test_keep_it_leaves_the_pool(discord_) -> None:
    d = discord_
    cup = await make_tournament(d)
    await d.services.tournaments.add_pool(d.guild.id, cup.id, SYSTEM, name="Pool A")
    asked = await d.harness.run(
        "pool-admin remove", d.mod, perms=MODERATOR_PERMS, tournament=str(cup.id), pool="Pool A"
    )
    kept = await d.harness.click(asked.with_buttons(), "Keep it", d.mod, perms=MODERATOR_PERMS)
    assert kept.text == "Nothing changed."
    assert len(await d.services.tournaments.list_pools(d.guild.id, cup.id)) == 1


async def test_someone_else_cannot_press_the_confirmation(discord_) -> None:
    d = discord_
    cup = await make_tournament(d)
    await d.services.tournaments.add_pool(d.guild.id, cup.id, SYSTEM, name="Pool A")
    asked = await d.harness.run(
        "pool-admin remove", d.mod, perms=MODERATOR_PERMS, tournament=str(cup.id), pool="Pool A"
    )
    other = await d.harness.click(asked.with_buttons(), "Remove pool", d.bob, perms=MODERATOR_PERMS)
    assert other.ephemeral and "belong to the person who ran the command" in other.text
    assert len(await d.services.tournaments.list_pools(d.guild.id, cup.id)) == 1


async def test_seed_commands_are_for_moderators_and_autocomplete_hides_seeds(discord_) -> None:
    d = discord_
    cup = await make_tournament(d)
    pool = await d.services.tournaments.add_pool(d.guild.id, cup.id, SYSTEM, name="Pool A")
    added = await d.harness.run(
        "seed add", d.mod, perms=MODERATOR_PERMS, tournament="Spring Cup", pool="Pool A", url="https://seed.example/1"
    )
    assert "Added seed #" in added.text
    bad = await d.harness.run(
        "seed add", d.mod, perms=MODERATOR_PERMS, tournament="Spring Cup", pool="Pool A", url="seed one"
    )
    assert "Url must be an http(s) URL" in bad.text
    refused = await d.harness.run("seed list", d.alice, tournament="Spring Cup", pool="Pool A")
    assert "Manage Server" in refused.text and "seed.example" not in refused.text
    listed = await d.harness.run("seed list", d.mod, perms=MODERATOR_PERMS, tournament="Spring Cup", pool="Pool A")
    assert "https://seed.example/1" in listed.text
    for_player = await d.harness.autocomplete(
        "seed remove", d.alice, "seed", tournament=str(cup.id), pool=str(pool.id), seed=""
    )
    assert for_player == []
    for_mod = await d.harness.autocomplete(
        "seed remove", d.mod, "seed", perms=MODERATOR_PERMS, tournament=str(cup.id), pool=str(pool.id), seed="seed"
    )
    assert len(for_mod) == 1 and "https://seed.example/1" in for_mod[0]["name"]
    asked = await d.harness.run(
        "seed remove", d.mod, perms=MODERATOR_PERMS, tournament=str(cup.id), pool=str(pool.id), seed=for_mod[0]["value"]
    )
    await d.harness.click(asked.with_buttons(), "Remove seed", d.mod, perms=MODERATOR_PERMS)
    assert await d.services.tournaments.list_seeds(d.guild.id, cup.id, pool.id) == []


async def test_roomprofile_create_edit_list_delete(discord_) -> None:
    d = discord_
    created = await d.harness.run(
        "roomprofile create", d.mod, perms=MODERATOR_PERMS, name="Fast", start_delay=10, streaming_required=True
    )
    assert "start_delay=10" in created.text and "streaming_required=on" in created.text
    edited = await d.harness.run("roomprofile edit", d.mod, perms=MODERATOR_PERMS, profile="Fast", time_limit=3)
    assert "time_limit=3" in edited.text
    listed = await d.harness.run("roomprofile list", d.mod, perms=MODERATOR_PERMS)
    assert "**Fast**" in listed.text
    asked = await d.harness.run("roomprofile delete", d.mod, perms=MODERATOR_PERMS, profile="fast")
    done = await d.harness.click(asked.with_buttons(), "Delete profile", d.mod, perms=MODERATOR_PERMS)
    assert "Deleted room profile **Fast**" in done.text
    assert await d.services.room_profiles.list(d.guild.id) == []


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        (
            "start_delay",
            5,
            "Start_delay must be a whole number of seconds from 10 to 60. For example `start_delay: 15`.",
        ),
        ("time_limit", 100, "For example `time_limit: 24`."),
        ("chat_message_delay", 91, "from 0 to 90"),
    ],
)
async def test_out_of_range_room_settings_show_an_example(discord_, setting, value, message) -> None:
    d = discord_
    reply = await d.harness.run("roomprofile create", d.mod, perms=MODERATOR_PERMS, name="Bad", **{setting: value})
    assert reply.ephemeral and message in reply.text
    assert await d.services.room_profiles.list(d.guild.id) == []


async def test_paginated_list_pages_with_buttons(discord_) -> None:
    d = discord_
    for number in range(23):
        await make_tournament(d, f"Cup {number:02d}")
    first = await d.harness.run("tournament list", d.alice)
    page = first.with_buttons()
    assert "Page 1 of 3" in page.text and "Cup 00" in page.text and "Cup 10" not in page.text
    labels = [button["label"] for button in page.buttons]
    assert labels == ["⏮", "◀ Previous", "1/3", "Next ▶", "⏭"]  # no "My page": nobody's line is in this list
    assert [button.get("disabled", False) for button in page.buttons] == [True, True, False, False, False]
    second = await d.harness.click(page, "Next", d.alice)
    assert "Page 2 of 3" in second.text and "Cup 10" in second.text
    third = await d.harness.click(second.last, "Next", d.alice)
    assert "Page 3 of 3" in third.text and third.last.buttons[3]["disabled"] is True
    stranger = await d.harness.click(third.last, "◀", d.bob)
    assert "belong to the person who ran the command" in stranger.text
    first_again = await d.harness.click(third.last, "⏮", d.alice)
    assert "Page 1 of 3" in first_again.text
    last = await d.harness.click(first_again.last, "⏭", d.alice)
    assert "Page 3 of 3" in last.text and last.last.buttons[4]["disabled"] is True


async def test_go_to_page_asks_for_a_number_and_refuses_others_privately(discord_) -> None:
    d = discord_
    for number in range(23):
        await make_tournament(d, f"Cup {number:02d}")
    page = (await d.harness.run("tournament list", d.alice)).with_buttons()
    for bad in ("9", "0", "two", ""):
        asked = await d.harness.click(page, "1/3", d.alice)  # a form is gone once submitted: press again
        assert asked.first.modal["title"] == "Go to page"
        refused = await d.harness.submit(asked.first, d.alice, on=page, page=bad)
        assert refused.ephemeral and refused.text == "Give a page number from 1 to 3.", bad
        assert refused.first.type == 4  # a new private message: the list itself did not move
    asked = await d.harness.click(page, "1/3", d.alice)
    moved = await d.harness.submit(asked.first, d.alice, on=page, page="2")
    assert moved.first.type == 7 and "Page 2 of 3" in moved.text and "Cup 10" in moved.text


# ---- /seed import ------------------------------------------------------------------------------------------------
async def seeds_of(d, tournament) -> list[tuple[str, str, str]]:
    found = []
    for pool in await d.services.tournaments.list_pools(d.guild.id, tournament.id):
        seeds = await d.services.tournaments.list_seeds(d.guild.id, tournament.id, pool.id)
        found += [(pool.name, seed.url, seed.notes) for seed in seeds]
    return found


async def test_seed_import_from_a_csv_file(discord_) -> None:
    d = discord_
    cup = await make_tournament(d)
    for name in ("Pool A", "Pool B"):
        await d.services.tournaments.add_pool(d.guild.id, cup.id, SYSTEM, name=name)
    csv = b"pool,url,notes\nPool A,https://s.example/1,easy\nPool B,https://s.example/2,\n,https://s.example/3,\n"
    reply = await d.harness.run(
        "seed import", d.mod, perms=MODERATOR_PERMS, tournament="Spring Cup", pool="Pool B", file=Upload("s.csv", csv)
    )
    assert reply.first.type == 5 and reply.ephemeral  # thinking while the file is read
    assert reply.last.text == "Imported 3 seeds (Pool A: 1, Pool B: 2)."
    assert await seeds_of(d, cup) == [
        ("Pool A", "https://s.example/1", "easy"),
        ("Pool B", "https://s.example/2", ""),
        ("Pool B", "https://s.example/3", ""),
    ]


async def test_seed_import_refuses_a_file_with_bad_lines_whole_and_names_them(discord_) -> None:
    d = discord_
    cup = await make_tournament(d)
    pool = await d.services.tournaments.add_pool(d.guild.id, cup.id, SYSTEM, name="Pool A")
    await d.services.tournaments.add_seed(d.guild.id, cup.id, pool.id, SYSTEM, url="https://s.example/old")
    csv = b"Pool A,https://s.example/1\nPool A,not a url\nPool Q,https://s.example/2\nPool A,https://s.example/old\n"
    reply = await d.harness.run(
        "seed import", d.mod, perms=MODERATOR_PERMS, tournament="Spring Cup", file=Upload("s.csv", csv)
    )
    assert reply.ephemeral and reply.last.text.startswith("3 lines are wrong, so no seed was imported:")
    assert "- line 2, url: url must be an http(s) URL" in reply.last.text
    assert "- line 3, pool: this tournament has no pool 'Pool Q'" in reply.last.text
    assert "- line 4, url: this seed is already in pool Pool A" in reply.last.text
    assert await seeds_of(d, cup) == [("Pool A", "https://s.example/old", "")]


@pytest.mark.parametrize(
    ("upload", "message"),
    [
        (
            Upload("s.csv", b"url\n\xff\xfe"),
            "1 line is wrong, so no seed was imported:\n- line 2, file: the file is not UTF-8",
        ),
        (Upload("s.csv", b"\n\n"), "- line 1, file: no seeds in it"),
        (Upload("s.csv", b"x", size=10**6), "The file is larger than 256 KiB; split it."),
    ],
)
async def test_seed_import_refuses_files_it_cannot_read(discord_, upload, message) -> None:
    d = discord_
    cup = await make_tournament(d)
    await d.services.tournaments.add_pool(d.guild.id, cup.id, SYSTEM, name="Pool A")
    reply = await d.harness.run(
        "seed import", d.mod, perms=MODERATOR_PERMS, tournament="Spring Cup", pool="Pool A", file=upload
    )
    assert reply.ephemeral and message in reply.last.text, reply.last.text
    assert await seeds_of(d, cup) == []


async def test_seed_import_without_a_file_opens_a_form_for_a_list_of_urls(discord_) -> None:
    d = discord_
    cup = await make_tournament(d)
    await d.services.tournaments.add_pool(d.guild.id, cup.id, SYSTEM, name="Pool A")
    no_pool = await d.harness.run("seed import", d.mod, perms=MODERATOR_PERMS, tournament="Spring Cup")
    assert no_pool.ephemeral and no_pool.text == "Attach a CSV file, or pick the pool to paste URLs into."
    asked = await d.harness.run("seed import", d.mod, perms=MODERATOR_PERMS, tournament="Spring Cup", pool="Pool A")
    assert asked.first.modal["title"] == "Seeds for Pool A"
    refused = await d.harness.submit(asked.first, d.mod, urls="https://s.example/1\nnope\n")
    assert refused.ephemeral and refused.text.startswith("1 line is wrong, so no seed was imported:\n- line 2, url:")
    assert await seeds_of(d, cup) == []
    done = await d.harness.submit(asked.first, d.mod, urls="https://s.example/1 the easy one\n\nhttps://s.example/2\n")
    assert done.ephemeral and done.text == "Imported 2 seeds (Pool A: 2)."
    assert await seeds_of(d, cup) == [
        ("Pool A", "https://s.example/1", "the easy one"),
        ("Pool A", "https://s.example/2", ""),
    ]


async def test_seed_import_is_for_moderators(discord_) -> None:
    d = discord_
    cup = await make_tournament(d)
    await d.services.tournaments.add_pool(d.guild.id, cup.id, SYSTEM, name="Pool A")
    reply = await d.harness.run(
        "seed import", d.alice, tournament="Spring Cup", file=Upload("s.csv", b"Pool A,https://s.example/1")
    )
    assert reply.ephemeral and reply.text == "You need the Manage Server permission to do that."
    assert await seeds_of(d, cup) == []
