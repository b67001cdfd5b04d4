"""Guild rosters: what one guild says about a player (name, unverified link, having left) is its own, the player's
verified link is theirs everywhere and wins; members who leave or are banned stop being eligible and stop getting
DMs from that guild, keep their runs, and come back when they rejoin (issue 11, items 8 and 9)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.actors import Actor
from bot.errors import Conflict
from bot.events import LiveRaceFinished, LiveRaceScheduled
from bot.notifications.dispatcher import LEFT_REASON, NotificationDispatcher
from bot.services.eligibility import REASON_LEFT, REASON_NOT_LINKED
from db.models import AuditEntry, Notification, NotificationStatus, RunStatus
from tests.conftest import GUILD, MODERATOR, OTHER_GUILD
from tests.fakes.notifications import RecordingDelivery, add_player, add_run, make_world, publish, subscribe

ALICE, BOB, CAROL = 801, 802, 803
ACCOUNT, OTHER_ACCOUNT = "AliceRTaccount01", "BobRTaccount0002"


async def test_names_and_moderator_links_are_per_guild(services) -> None:
    await services.players.upsert(GUILD, ALICE, MODERATOR, display_name="Alice", racetime_id=ACCOUNT)
    await services.players.upsert(OTHER_GUILD, ALICE, MODERATOR, display_name="Ally", racetime_id=OTHER_ACCOUNT)
    here, there = await services.players.get(GUILD, ALICE), await services.players.get(OTHER_GUILD, ALICE)
    assert (here.display_name, here.racetime_id) == ("Alice", ACCOUNT)
    assert (there.display_name, there.racetime_id) == ("Ally", OTHER_ACCOUNT)
    # using a command in one guild names you there only
    await services.players.touch(OTHER_GUILD, ALICE, "alice (nick over there)")
    assert (await services.players.get(GUILD, ALICE)).display_name == "Alice"
    # one account is at most one player per guild, but another guild may link it to someone else
    with pytest.raises(Conflict):
        await services.players.upsert(GUILD, BOB, MODERATOR, display_name="Bob", racetime_id=ACCOUNT)
    await services.players.upsert(OTHER_GUILD, BOB, MODERATOR, display_name="Bob", racetime_id=ACCOUNT)
    assert (await services.players.get(OTHER_GUILD, BOB)).racetime_id == ACCOUNT
    assert [p.racetime_id for p in (await services.players.list(GUILD, linked=True)).items] == [ACCOUNT]


async def test_a_verified_link_is_theirs_everywhere_and_unverified_links_give_way(services) -> None:
    await services.players.upsert(GUILD, BOB, MODERATOR, display_name="Bob", racetime_id=ACCOUNT)
    await services.players.upsert(OTHER_GUILD, CAROL, MODERATOR, display_name="Carol", racetime_id=ACCOUNT)
    await services.players.upsert(OTHER_GUILD, ALICE, MODERATOR, display_name="Ally", racetime_id=OTHER_ACCOUNT)

    alice = Actor.player(ALICE, "alice")
    linked = await services.players.link_racetime(GUILD, ALICE, ACCOUNT, "alice#1", alice, verified=True)
    assert (linked.racetime_id, linked.racetime_verified) == (ACCOUNT, True)
    # the owner's proof wins in every guild: their guild links and everyone's unverified links to it give way
    there = await services.players.get(OTHER_GUILD, ALICE)
    assert (there.racetime_id, there.racetime_name, there.racetime_verified) == (ACCOUNT, "alice#1", True)
    assert (await services.players.get(GUILD, BOB)).racetime_id is None
    assert (await services.players.get(OTHER_GUILD, CAROL)).racetime_id is None
    # nobody can be given it, and no moderator can replace it
    for guild_id, user in ((GUILD, BOB), (OTHER_GUILD, CAROL)):
        with pytest.raises(Conflict):
            await services.players.link_racetime(guild_id, user, ACCOUNT, "x", MODERATOR, verified=False)
    with pytest.raises(Conflict):
        await services.players.upsert(OTHER_GUILD, ALICE, MODERATOR, display_name="Ally", racetime_id=OTHER_ACCOUNT)
    # the player's own unlink removes it everywhere
    await services.players.unlink_racetime(OTHER_GUILD, ALICE, alice)
    assert (await services.players.get(GUILD, ALICE)).racetime_id is None


async def test_a_member_who_left_is_not_eligible_and_gets_no_dms_but_keeps_runs(services) -> None:
    world = await make_world(services, runs_per_pool=2)
    alice_id = await add_player(services, ALICE, "alice")
    bob_id = await add_player(services, BOB, "bob")
    await add_player(services, ALICE, "ally", guild_id=OTHER_GUILD)
    for uid in (ALICE, BOB):
        await subscribe(services, uid, guild_id=None)  # every guild
    await add_run(services, world, alice_id, status=RunStatus.FINISHED, place=1, elapsed_us=3_600_000_000, score=100)
    await services.scoring.recompute(GUILD, world.tournament.id)

    assert await services.players.member_left(GUILD, ALICE)
    assert not await services.players.member_left(GUILD, ALICE)  # the removal after a ban: nothing more
    assert not await services.players.member_left(GUILD, CAROL)  # never a player here: nothing to mark
    entry = await services.players.get(GUILD, ALICE)
    assert entry.left_at is not None
    assert (await services.players.get(OTHER_GUILD, ALICE)).left_at is None  # another guild is another roster
    assert [p.discord_user_id for p in (await services.players.list(GUILD, left=True)).items] == [ALICE]

    report = await services.eligibility.for_pool(GUILD, world.tournament.id, world.pool.id)
    assert report.reason_for(alice_id) == REASON_LEFT and report.reason_for(bob_id) is None

    # queued now: nothing for alice; her run and her place on the leaderboard stay
    await publish(services, world.event(LiveRaceScheduled))
    await publish(services, world.event(LiveRaceFinished, participant_player_ids=(alice_id, bob_id)))
    async with services.db.read() as session:
        recipients = set((await session.scalars(select(Notification.player_id))).all())
    assert recipients == {bob_id}
    board = await services.scoring.leaderboard(GUILD, world.tournament.id)
    assert [(e.discord_user_id, e.display_name) for e in board.entries] == [(ALICE, "alice")]
    runs = await services.runs.list_runs(GUILD, world.tournament.id)
    assert [(v.player.discord_user_id, v.player.display_name) for v in runs.items] == [(ALICE, "alice")]

    # coming back through a command restores her (with a line in the audit trail)
    await services.players.touch(GUILD, ALICE, "alice")
    assert (await services.players.get(GUILD, ALICE)).left_at is None
    report = await services.eligibility.for_pool(GUILD, world.tournament.id, world.pool.id)
    assert report.reason_for(alice_id) is None
    async with services.db.read() as session:
        actions = (await session.scalars(select(AuditEntry.action).where(AuditEntry.target_id == alice_id))).all()
    assert actions[-2:] == ["player.left", "player.rejoined"]


async def test_a_dm_queued_before_the_member_left_is_skipped_with_the_reason(services) -> None:
    world = await make_world(services)
    alice_id = await add_player(services, ALICE, "alice")
    await add_player(services, ALICE, "ally", guild_id=OTHER_GUILD)
    await subscribe(services, ALICE, guild_id=None)
    other = await make_world(services, guild_id=OTHER_GUILD, name="Elsewhere Cup")
    await publish(services, world.event(LiveRaceScheduled))
    await publish(services, other.event(LiveRaceScheduled))

    await services.players.member_left(GUILD, ALICE, banned=True)
    delivery = RecordingDelivery()
    dispatcher = NotificationDispatcher(services.db, services.settings, lambda: delivery, jitter=lambda: 1.0)
    await dispatcher.run_once()
    async with services.db.read() as session:
        outcome = {
            row.guild_id: (row.status, row.error)
            for row in (await session.scalars(select(Notification).where(Notification.player_id == alice_id))).all()
        }
    assert outcome == {GUILD: (NotificationStatus.SKIPPED, LEFT_REASON), OTHER_GUILD: (NotificationStatus.SENT, None)}
    assert len(delivery.dms) == 1  # the other guild's DM still goes


async def test_joining_again_restores_a_member_and_joining_makes_nobody_a_player(services) -> None:
    await add_player(services, ALICE, "alice", linked=False)
    await services.players.member_left(GUILD, ALICE, banned=True)
    assert await services.players.member_returned(GUILD, ALICE, "alice again")
    entry = await services.players.get(GUILD, ALICE)
    assert (entry.left_at, entry.display_name) == (None, "alice again")
    assert not await services.players.member_returned(GUILD, BOB, "bob")
    assert await services.players.entry(GUILD, BOB) is None
    world = await make_world(services)
    report = await services.eligibility.for_pool(GUILD, world.tournament.id, world.pool.id)
    assert [(c.discord_user_id, reason) for c, reason in report.ineligible] == [(ALICE, REASON_NOT_LINKED)]
