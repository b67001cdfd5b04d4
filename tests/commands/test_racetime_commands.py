"""/racetime link | unlink | status | assign through the real command tree."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from pydantic import SecretStr
from sqlalchemy import update

from bot.actors import Actor
from db.models import Player
from tests.commands.conftest import MODERATOR_PERMS

RACETIME_ID = "7BzeW5ErWom9Xgpb"


def configure_oauth(d) -> None:
    d.services.settings.racetime.oauth_client_id = "startline-login"
    d.services.settings.racetime.oauth_client_secret = SecretStr("login-secret")


async def test_link_gives_a_private_button_with_a_state_bound_to_the_user(discord_) -> None:
    d = discord_
    configure_oauth(d)
    reply = await d.harness.run("racetime link", d.alice)
    assert reply.ephemeral and "works for 10 minutes" in reply.text
    (button,) = reply.last.buttons
    assert button["label"] == "Link on RaceTime.gg" and button["style"] == 5  # a link button
    query = parse_qs(urlsplit(button["url"]).query)
    assert button["url"].startswith("https://racetime.gg/o/authorize?")
    assert query["redirect_uri"] == ["http://127.0.0.1:8080/racetime/callback"]
    request = await d.services.account_links.verify_state(query["state"][0])
    assert (request.guild_id, request.discord_user_id) == (d.guild.id, d.alice.id)


async def test_link_without_oauth_settings_says_what_is_missing(discord_) -> None:
    d = discord_
    reply = await d.harness.run("racetime link", d.alice)
    assert reply.ephemeral and "racetime.oauth_client_id and racetime.oauth_client_secret" in reply.text


async def test_status_unlink_and_status_again(discord_) -> None:
    d = discord_
    none = await d.harness.run("racetime status", d.alice)
    assert none.ephemeral and "You have no RaceTime.gg account linked" in none.text
    await d.services.players.link_racetime(
        d.guild.id, d.alice.id, RACETIME_ID, "alice#1234", Actor.system(), verified=True
    )
    linked = await d.harness.run("racetime status", d.alice)
    assert f"[alice#1234](https://racetime.gg/user/{RACETIME_ID})" in linked.text
    assert "verified through RaceTime.gg" in linked.text and "<t:" in linked.text
    unlinked = await d.harness.run("racetime unlink", d.alice)
    assert "Unlinked your RaceTime.gg account" in unlinked.text
    assert (await d.services.players.find(d.alice.id)).racetime_id is None
    again = await d.harness.run("racetime unlink", d.alice)
    assert again.text == "No RaceTime.gg account is linked."


async def test_status_of_someone_else_is_for_moderators(discord_) -> None:
    d = discord_
    refused = await d.harness.run("racetime status", d.alice, member=d.bob)
    assert "only moderators" in refused.text.lower()
    allowed = await d.harness.run("racetime status", d.mod, perms=MODERATOR_PERMS, member=d.bob)
    assert "This member has no RaceTime.gg account linked" in allowed.text


async def test_moderators_see_that_a_members_dms_are_paused(discord_) -> None:
    d = discord_
    await d.services.players.link_racetime(d.guild.id, d.bob.id, RACETIME_ID, "bob", Actor.system(), verified=True)
    async with d.services.db.transaction() as session:
        await session.execute(update(Player).where(Player.discord_user_id == d.bob.id).values(dm_blocked=True))
    seen = await d.harness.run("racetime status", d.mod, perms=MODERATOR_PERMS, member=d.bob)
    assert "their notifications are paused until they use a Startline command again" in seen.text
    # the member's own command lifts the pause before it answers, so they never see the warning
    own = await d.harness.run("racetime status", d.bob)
    assert "paused" not in own.text
    assert not (await d.services.players.find(d.bob.id)).dm_blocked


async def test_moderator_assigns_an_unverified_link(discord_) -> None:
    d = discord_
    reply = await d.harness.run(
        "racetime-admin assign",
        d.mod,
        perms=MODERATOR_PERMS,
        member=d.bob,
        racetime_id=RACETIME_ID,
        racetime_name="bob",
    )
    assert "unverified" in reply.text and f"<@{d.bob.id}>" in reply.text
    player = await d.services.players.get(d.guild.id, d.bob.id)
    assert (player.racetime_id, player.racetime_name, player.racetime_verified) == (RACETIME_ID, "bob", False)
    status = await d.harness.run("racetime status", d.bob)
    assert "set by a moderator of this server, not verified" in status.text


async def test_assign_refuses_players_bad_ids_and_verified_links(discord_) -> None:
    d = discord_
    refused = await d.harness.run("racetime-admin assign", d.alice, member=d.bob, racetime_id=RACETIME_ID)
    assert "Manage Server" in refused.text
    bad = await d.harness.run("racetime-admin assign", d.mod, perms=MODERATOR_PERMS, member=d.bob, racetime_id="no!")
    assert "Racetime_id must be a RaceTime.gg user id" in bad.text
    await d.services.players.link_racetime(d.guild.id, d.bob.id, RACETIME_ID, "bob", Actor.system(), verified=True)
    verified = await d.harness.run(
        "racetime-admin assign", d.mod, perms=MODERATOR_PERMS, member=d.bob, racetime_id="AAAAbbbbCCCCdddd"
    )
    assert "linked their own RaceTime.gg account" in verified.text
    assert (await d.services.players.find(d.bob.id)).racetime_id == RACETIME_ID


async def test_assign_changes_only_this_servers_link_and_name(discord_) -> None:
    """Regression (issue 11, item 8): `/racetime-admin assign` in one server re-pointed the member's link, and renamed
    them, in every server. Now it sets this server's link only: the other server keeps its name and link for
    them, and the same account may be someone else's link over there."""
    d = discord_
    theirs = "BBBBccccDDDDeeee"
    await d.services.players.upsert(
        d.other_guild.id, d.bob.id, Actor.system(), display_name="Bob over there", racetime_id=theirs
    )
    reply = await d.harness.run(
        "racetime-admin assign",
        d.mod,
        perms=MODERATOR_PERMS,
        member=d.bob,
        racetime_id=RACETIME_ID,
        racetime_name="bob",
    )
    assert "in this server, unverified" in reply.text
    here = await d.services.players.get(d.guild.id, d.bob.id)
    assert (here.racetime_id, here.racetime_verified) == (RACETIME_ID, False)
    there = await d.services.players.get(d.other_guild.id, d.bob.id)
    assert (there.display_name, there.racetime_id, there.racetime_name) == ("Bob over there", theirs, theirs)
    # the other server's account is free here: one account is at most one player per server
    await d.harness.run("racetime-admin assign", d.mod, perms=MODERATOR_PERMS, member=d.alice, racetime_id=theirs)
    assert (await d.services.players.get(d.guild.id, d.alice.id)).racetime_id == theirs
    assert (await d.services.players.get(d.other_guild.id, d.bob.id)).racetime_id == theirs
    taken = await d.harness.run("racetime-admin assign", d.mod, perms=MODERATOR_PERMS, member=d.bob, racetime_id=theirs)
    assert "linked to another player" in taken.text
