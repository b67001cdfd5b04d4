"""Opt-in preferences: per event type, per guild or every guild, a guild choice overriding the global one."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.errors import NotFound, ValidationFailed
from bot.services.notification_outbox import subscribed_player_ids
from db.models import AuditEntry, EventType, Player
from tests.conftest import GUILD, MODERATOR, OTHER_GUILD

USER = 500_000_000_000_000_001
CODES = [415, 416, 417, 418, 419, 420]


async def test_nobody_is_subscribed_until_they_opt_in(services):
    views = await services.notifications.preferences(USER, GUILD)
    assert [v.code for v in views] == CODES
    assert [v.label for v in views] == [
        "Race scheduled",
        "Room opened",
        "Race started",
        "Race finished",
        "Race cancelled",
        "Race rescheduled",
    ]
    assert all(v.effective is False and v.guild_setting is None and v.global_setting is None for v in views)
    assert await services.players.find(USER) is None  # reading creates nothing


async def test_set_one_in_a_guild_only_applies_there(services):
    views = await services.notifications.set_preference(
        USER, EventType.LIVE_RACE_STARTED, True, guild_id=GUILD, actor=MODERATOR, display_name="alice"
    )
    started = next(v for v in views if v.event_type is EventType.LIVE_RACE_STARTED)
    assert (started.guild_setting, started.global_setting, started.effective) == (True, None, True)
    assert sum(v.effective for v in views) == 1
    elsewhere = await services.notifications.preferences(USER, OTHER_GUILD)
    assert not any(v.effective for v in elsewhere)
    assert (await services.players.get(GUILD, USER)).display_name == "alice"


async def test_all_guilds_setting_applies_everywhere_and_a_guild_setting_overrides_it(services):
    await services.notifications.set_all(USER, True, guild_id=None, actor=MODERATOR)
    for guild in (GUILD, OTHER_GUILD):
        assert all(v.effective for v in await services.notifications.preferences(USER, guild))
    views = await services.notifications.set_preference(
        USER, EventType.LIVE_RACE_FINISHED, False, guild_id=GUILD, actor=MODERATOR
    )
    finished = views[3]
    assert (finished.guild_setting, finished.global_setting, finished.effective) == (False, True, False)
    assert all(v.effective for v in await services.notifications.preferences(USER, OTHER_GUILD))


async def test_a_guild_opt_in_beats_an_all_guilds_opt_out(services):
    await services.notifications.set_all(USER, False, guild_id=None, actor=MODERATOR)
    await services.notifications.set_preference(USER, 416, True, guild_id=GUILD, actor=MODERATOR)
    views = await services.notifications.preferences(USER, GUILD)
    assert {v.code for v in views if v.effective} == {416}


async def test_setting_again_updates_the_same_row(services):
    await services.notifications.set_preference(USER, "live_race_started", True, guild_id=GUILD, actor=MODERATOR)
    await services.notifications.set_preference(USER, "417", False, guild_id=GUILD, actor=MODERATOR)
    views = await services.notifications.set_all(USER, True, guild_id=GUILD, actor=MODERATOR)
    assert all(v.guild_setting is True for v in views)


async def test_clearing_guild_overrides_falls_back_to_all_guilds(services):
    await services.notifications.set_all(USER, True, guild_id=None, actor=MODERATOR)
    await services.notifications.set_all(USER, False, guild_id=GUILD, actor=MODERATOR)
    assert not any(v.effective for v in await services.notifications.preferences(USER, GUILD))
    views = await services.notifications.clear_guild_preferences(USER, GUILD, actor=MODERATOR)
    assert all(v.effective and v.guild_setting is None for v in views)


async def test_changes_in_a_guild_are_audited(services):
    await services.notifications.set_preference(USER, 415, True, guild_id=GUILD, actor=MODERATOR)
    await services.notifications.set_all(USER, True, guild_id=None, actor=MODERATOR)
    async with services.db.read() as session:
        entries = (await session.scalars(select(AuditEntry).where(AuditEntry.action.like("notification.%")))).all()
    assert [(e.guild_id, e.details["scope"]) for e in entries] == [(GUILD, "guild")]


async def test_opting_in_lifts_a_dm_block(services):
    await services.players.touch(GUILD, USER, "alice")
    async with services.db.transaction() as session:
        player = await session.scalar(select(Player).where(Player.discord_user_id == USER))
        player.dm_blocked = True
    await services.notifications.set_preference(USER, 415, True, guild_id=GUILD, actor=MODERATOR)
    assert (await services.players.find(USER)).dm_blocked is False


@pytest.mark.parametrize(
    ("call", "field"),
    [
        ({"event_type": "live_race_exploded"}, "event_type"),
        ({"event_type": 414}, "event_type"),
        ({"event_type": True}, "event_type"),
        ({"enabled": "yes"}, "enabled"),
        ({"guild_id": -5}, "guild_id"),
        ({"discord_user_id": 0}, "discord_user_id"),
    ],
)
async def test_bad_input_is_refused_and_changes_nothing(services, call, field):
    arguments = {"discord_user_id": USER, "event_type": 415, "enabled": True, "guild_id": GUILD} | call
    with pytest.raises(ValidationFailed) as error:
        await services.notifications.set_preference(
            arguments["discord_user_id"],
            arguments["event_type"],
            arguments["enabled"],
            guild_id=arguments["guild_id"],
            actor=MODERATOR,
        )
    assert error.value.field == field
    assert await services.players.find(USER) is None


# ---- the DM buttons: one type off for one guild, every DM of one guild off ---------------------------------------
async def test_a_guild_the_member_is_not_on_and_an_unknown_code_change_nothing(services):
    await services.players.upsert(GUILD, USER, MODERATOR, display_name="u")
    with pytest.raises(NotFound):
        await services.notifications.set_guild_dms(USER, OTHER_GUILD, False, actor=MODERATOR)
    with pytest.raises(NotFound):
        await services.notifications.set_type_in_guild(USER, OTHER_GUILD, 415, False, actor=MODERATOR)
    with pytest.raises(ValidationFailed):
        await services.notifications.set_type_in_guild(USER, GUILD, 999, False, actor=MODERATOR)
    assert await services.players.guilds_of(USER) == [GUILD]  # no roster entry was made elsewhere
    assert all(v.guild_setting is None for v in await services.notifications.preferences(USER, GUILD))


async def test_dms_off_leaves_the_member_out_of_one_guild_only_and_a_type_turned_on_there_ends_it(services):
    for guild in (GUILD, OTHER_GUILD):
        await services.players.upsert(guild, USER, MODERATOR, display_name="u")
        await services.notifications.set_all(USER, True, guild_id=guild, actor=MODERATOR)
    player = (await services.players.find(USER)).id
    change = await services.notifications.set_guild_dms(USER, GUILD, False, actor=MODERATOR)
    assert (
        change.changed and not (await services.notifications.set_guild_dms(USER, GUILD, False, actor=MODERATOR)).changed
    )
    async with services.db.read() as session:
        assert await subscribed_player_ids(session, GUILD, EventType.LIVE_RACE_SCHEDULED) == set()
        assert await subscribed_player_ids(session, OTHER_GUILD, EventType.LIVE_RACE_SCHEDULED) == {player}
    assert all(v.effective for v in await services.notifications.preferences(USER, GUILD))  # choices kept
    await services.notifications.set_preference(
        USER, EventType.LIVE_RACE_STARTED, True, guild_id=GUILD, actor=MODERATOR
    )
    assert await services.notifications.guild_dms_off(USER, GUILD) is False
    async with services.db.read() as session:
        assert await subscribed_player_ids(session, GUILD, EventType.LIVE_RACE_SCHEDULED) == {player}
        actions = (await session.scalars(select(AuditEntry.action).where(AuditEntry.guild_id == GUILD))).all()
    assert "notification.guild_dms" in actions
