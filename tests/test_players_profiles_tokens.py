"""Players and their RaceTime.gg link, room profiles and their resolution, API tokens, guild settings."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.actors import Actor
from bot.errors import Conflict, NotFound, ValidationFailed
from bot.services.room_profiles import built_in_settings, resolve, validate_room_settings
from bot.services.tokens import hash_secret
from db.models import ApiToken, Player
from tests.conftest import GUILD, MODERATOR, OTHER_GUILD

ALICE = 1_000_000_000_000_001
ALICE_RT = "7BzeW5ErWom9Xgpb"


async def test_upsert_creates_then_updates_and_registers_membership(services) -> None:
    player, created = await services.players.upsert(
        GUILD, ALICE, MODERATOR, display_name="alice", racetime_id=ALICE_RT, racetime_name="Alice"
    )
    assert created and player.racetime_id == ALICE_RT and not player.racetime_verified
    player, created = await services.players.upsert(GUILD, ALICE, MODERATOR, display_name="Alice B")
    assert not created and player.display_name == "Alice B" and player.racetime_id == ALICE_RT
    # the same Discord user imported into another guild is the same player, now a member of both
    _, created_elsewhere = await services.players.upsert(OTHER_GUILD, ALICE, MODERATOR, display_name="alice")
    assert created_elsewhere
    assert [p.discord_user_id for p in (await services.players.list(GUILD)).items] == [ALICE]
    assert [p.discord_user_id for p in (await services.players.list(OTHER_GUILD)).items] == [ALICE]
    with pytest.raises(NotFound):
        await services.players.get(OTHER_GUILD + 1, ALICE)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"discord_user_id": 0}, "discord_user_id"),
        ({"discord_user_id": -5}, "discord_user_id"),
        ({"discord_user_id": 2**64}, "discord_user_id"),
        ({"display_name": " "}, "display_name"),
        ({"racetime_id": "short"}, "racetime_id"),
        ({"racetime_id": "has spaces in it!"}, "racetime_id"),
    ],
)
async def test_upsert_validation(services, kwargs, field) -> None:
    args = {"discord_user_id": ALICE, "display_name": "alice", **kwargs}
    user = args.pop("discord_user_id")
    with pytest.raises(ValidationFailed) as info:
        await services.players.upsert(GUILD, user, MODERATOR, **args)
    assert info.value.field == field
    assert (await services.players.list(GUILD)).items == []


async def test_racetime_account_links(services) -> None:
    bob = ALICE + 1
    await services.players.upsert(GUILD, bob, MODERATOR, display_name="bob", racetime_id=ALICE_RT)
    # Alice proves the account through OAuth: the moderator's unverified link on Bob gives way
    alice = await services.players.link_racetime(
        GUILD, ALICE, ALICE_RT, "Alice", Actor.player(ALICE, "alice"), verified=True, display_name="alice"
    )
    assert alice.racetime_verified and alice.racetime_id == ALICE_RT
    assert (await services.players.get(GUILD, bob)).racetime_id is None
    # nobody may take a verified link, and moderators may not overwrite it
    with pytest.raises(Conflict):
        await services.players.upsert(GUILD, bob, MODERATOR, display_name="bob", racetime_id=ALICE_RT)
    with pytest.raises(Conflict):
        await services.players.upsert(GUILD, ALICE, MODERATOR, display_name="alice", racetime_id="xr85vpEMBoX32zJ4")
    unlinked = await services.players.unlink_racetime(GUILD, ALICE, Actor.player(ALICE, "alice"))
    assert unlinked.racetime_id is None and not unlinked.racetime_verified
    with pytest.raises(Conflict):
        await services.players.unlink_racetime(GUILD, ALICE, Actor.player(ALICE, "alice"))


async def test_touch_clears_dm_block(services) -> None:
    player = await services.players.touch(GUILD, ALICE, "alice")
    async with services.db.transaction() as session:
        stored = await session.get(Player, player.id)
        stored.dm_blocked = True
    assert (await services.players.get(GUILD, ALICE)).dm_blocked
    assert not (await services.players.touch(GUILD, ALICE, "alice")).dm_blocked


def test_room_setting_validation_and_resolution() -> None:
    assert validate_room_settings({"start_delay": 30, "unlisted": True, "time_limit": None}) == {
        "start_delay": 30,
        "unlisted": True,
    }
    for bad in (
        {"start_delay": 9},
        {"start_delay": 61},
        {"time_limit": 0},
        {"time_limit": 73},
        {"chat_message_delay": 91},
        {"auto_start": "yes"},
        {"start_delay": True},
        {"colour": 1},
    ):
        with pytest.raises(ValidationFailed):
            validate_room_settings(bad)
    resolved = resolve({"start_delay": 20}, {"start_delay": 45, "time_limit": 2}, {}, {"unlisted": True})
    assert resolved["start_delay"] == 20 and resolved["time_limit"] == 2 and resolved["unlisted"] is True
    assert resolved["auto_start"] is True and resolved["streaming_required"] is False
    assert resolve() == built_in_settings()


async def test_room_profiles_crud(services) -> None:
    profile = await services.room_profiles.create(GUILD, MODERATOR, name="Fast", start_delay=10, unlisted=True)
    with pytest.raises(Conflict):
        await services.room_profiles.create(GUILD, MODERATOR, name="fast")
    with pytest.raises(ValidationFailed):
        await services.room_profiles.create(GUILD, MODERATOR, name="Slow", time_limit=100)
    updated = await services.room_profiles.update(GUILD, profile.id, MODERATOR, start_delay=None, time_limit=3)
    assert updated.start_delay is None and updated.time_limit == 3 and updated.unlisted is True
    with pytest.raises(NotFound):
        await services.room_profiles.get(OTHER_GUILD, profile.id)
    t = await services.tournaments.create_tournament(GUILD, MODERATOR, name="Q", room_profile_id=profile.id)
    await services.guilds.update(GUILD, MODERATOR, default_room_profile_id=profile.id)
    with pytest.raises(NotFound):
        await services.tournaments.create_tournament(OTHER_GUILD, MODERATOR, name="Q", room_profile_id=profile.id)
    await services.room_profiles.delete(GUILD, profile.id, MODERATOR)
    assert (await services.tournaments.get_tournament(GUILD, t.id)).room_profile_id is None
    assert (await services.guilds.get(GUILD)).default_room_profile_id is None


async def test_tokens_are_hashed_shown_once_and_revocable(services) -> None:
    issued = await services.tokens.create(GUILD, MODERATOR, name="ci", scope="manage")
    assert issued.secret.startswith("slt_") and len(issued.secret) > 40
    async with services.db.read() as session:
        stored = await session.scalar(select(ApiToken))
    assert stored.token_hash == hash_secret(issued.secret) and issued.secret not in stored.token_hash
    assert stored.token_prefix == issued.secret[:10]
    token = await services.tokens.authenticate(issued.secret)
    assert token is not None and token.guild_id == GUILD and token.last_used_at is not None
    for wrong in ("", "slt_wrong", issued.secret + "x", "Bearer " + issued.secret, issued.secret[:-1]):
        assert await services.tokens.authenticate(wrong) is None
    with pytest.raises(Conflict):
        await services.tokens.create(GUILD, MODERATOR, name="ci", scope="read")
    with pytest.raises(ValidationFailed):
        await services.tokens.create(GUILD, MODERATOR, name="x", scope="admin")
    with pytest.raises(NotFound):
        await services.tokens.revoke(OTHER_GUILD, token.id, MODERATOR)
    await services.tokens.revoke(GUILD, token.id, MODERATOR)
    assert await services.tokens.authenticate(issued.secret) is None
    assert await services.tokens.list(GUILD) == []
    assert len(await services.tokens.list(GUILD, include_revoked=True)) == 1


async def test_guild_settings(services) -> None:
    defaults = await services.guilds.get(GUILD)
    assert defaults.timezone == "UTC" and defaults.room_open_lead_minutes is None
    updated = await services.guilds.update(GUILD, MODERATOR, timezone="Europe/Berlin", room_open_lead_minutes=30)
    assert updated.timezone == "Europe/Berlin"
    with pytest.raises(ValidationFailed):
        await services.guilds.update(GUILD, MODERATOR, timezone="Mars/Olympus")
    with pytest.raises(ValidationFailed):
        await services.guilds.update(GUILD, MODERATOR, room_open_lead_minutes=-1)
    with pytest.raises(ValidationFailed):
        await services.guilds.update(GUILD, MODERATOR, colour="blue")
    secret = await services.guilds.calendar_secret(GUILD)
    assert await services.guilds.guild_for_calendar_secret(secret) == GUILD
    assert await services.guilds.calendar_secret(GUILD) == secret
    rotated = await services.guilds.calendar_secret(GUILD, rotate=True)
    assert rotated != secret and await services.guilds.guild_for_calendar_secret(secret) is None
    assert (await services.guilds.get(OTHER_GUILD)).timezone == "UTC"
