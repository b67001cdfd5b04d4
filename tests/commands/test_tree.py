"""What every command shares: guild only, player registration, one error handler, permissions, metadata."""

from __future__ import annotations

import logging

import discord
from discord import app_commands

from bot.discord_bot import cog_extensions
from bot.services.common import RECORD_ID, ROOM_OPEN_LEAD_MINUTES
from bot.services.room_profiles import ROOM_SETTINGS
from bot.services.tournaments import MAX_REATTEMPTS, RUNS_PER_POOL
from cogs._common import options
from cogs._common.checks import ADMIN_SUFFIX, MODERATOR_DEFAULT
from cogs._common.respond import GENERIC_FAILURE
from cogs._common.room_options import option_description
from cogs._common.tree import DM_COMMANDS
from db.models import GuildPlayer
from tests.commands.conftest import MODERATOR_PERMS

PLAYER_COMMANDS = {
    "tournament list",
    "tournament info",
    "tournament leaderboard",
    "tournament me",
    "pool list",
    "liverace list",
    "liverace upcoming",
    "liverace info",
    "liverace eligible",
    "liverace rsvp",
    "racetime link",
    "racetime unlink",
    "racetime status",
    "notify",
    "template list",
    "series list",
    "phase list",
    "phase leaderboard",
    "season list",
    "season leaderboard",
    "timezone set",
    "timezone show",
    "timezone clear",
    "calendar show",
    "calendar reset",
}


def all_commands(bot) -> dict[str, app_commands.Command]:
    found = {}
    for command in bot.tree.get_commands():
        if isinstance(command, app_commands.Group):
            for sub in command.walk_commands():
                found[sub.qualified_name] = sub
        else:
            found[command.qualified_name] = command
    return found


def test_every_cog_module_is_an_extension_and_helpers_are_not() -> None:
    assert sorted(cog_extensions()) == [
        "cogs.admin",
        "cogs.buttons",
        "cogs.liverace",
        "cogs.notify",
        "cogs.personal",
        "cogs.racetime",
        "cogs.seasons",
        "cogs.tournament",
    ]


def test_the_commands_of_the_spec_exist(bot) -> None:
    names = set(all_commands(bot))
    expected = {
        *(f"liverace-admin {sub}" for sub in ["create", "edit", "cancel", "delete", "open", "record", "resend"]),
        "liverace-admin history",
        *(f"liverace {sub}" for sub in ["list", "info", "eligible", "upcoming"]),
        *(f"tournament-admin {sub}" for sub in ["create", "edit"]),
        *(f"tournament {sub}" for sub in ["list", "info", "leaderboard"]),
        "pool-admin add", "pool list", "pool-admin remove", "seed add", "seed list", "seed remove",
        *(f"roomprofile {sub}" for sub in ["create", "edit", "list", "delete"]),
        "notify", "racetime link", "racetime unlink", "racetime status", "racetime-admin assign",
        "startline config", "startline sync", "apitoken create", "apitoken list", "apitoken revoke",
    }  # fmt: skip
    assert expected <= names


def test_moderator_commands_carry_a_real_check_and_all_are_guild_only(bot) -> None:
    commands = all_commands(bot)
    assert set(commands) >= PLAYER_COMMANDS
    for name, command in commands.items():
        if name in DM_COMMANDS:  # works in DMs too, where it asks which server
            assert not command.guild_only and command.allowed_contexts.dm_channel, name
        else:
            assert command.guild_only or (command.parent and command.parent.guild_only), name
        if name in PLAYER_COMMANDS:
            assert command.checks == [], name
        else:
            assert len(command.checks) == 1, name  # moderator, Manage Server or owner


def test_moderator_commands_are_hidden_from_players_by_default(bot) -> None:
    """Discord applies default permissions per top-level command, so each top-level command is wholly for players
    (none) or wholly for moderators (Manage Server), as published; a mixed group `x` is split into `x` and
    `x-admin`."""
    commands = all_commands(bot)
    published = {payload["name"]: payload for payload in (c.to_dict(bot.tree) for c in bot.tree.get_commands())}
    for top, payload in published.items():
        subcommands = {name for name in commands if name == top or name.startswith(top + " ")}
        players = subcommands & PLAYER_COMMANDS
        if players:
            assert players == subcommands, f"/{top} mixes player and moderator commands: split it"
            assert payload["default_member_permissions"] is None, top
            assert not top.endswith(ADMIN_SUFFIX), top
        else:
            assert int(payload["default_member_permissions"]) == MODERATOR_DEFAULT.value, top
        assert payload["dm_permission"] is (top in DM_COMMANDS), top  # guild only, but for /notify
    for base in {top.removesuffix(ADMIN_SUFFIX) for top in published if top.endswith(ADMIN_SUFFIX)}:
        assert base in published, f"/{base}{ADMIN_SUFFIX} is the moderator half of a group /{base} that is missing"


def test_names_and_descriptions_fit_discords_limits(bot) -> None:
    """Discord refuses the whole sync for one description over 100 characters; nothing checks it before."""
    for name, command in all_commands(bot).items():
        if isinstance(command, app_commands.ContextMenu):  # a menu has a name (up to 32) and no description
            assert len(name) <= 32, name
            continue
        payload = command.to_dict(bot.tree)
        assert 1 <= len(command.description) <= 100, name
        for option in payload.get("options", []):
            assert len(option["name"]) <= 32 and 1 <= len(option["description"]) <= 100, (name, option["name"])
    for top in bot.tree.get_commands():
        assert len(top.name) <= 32 and len(getattr(top, "description", "")) <= 100, top.name


def test_commands_say_seed_never_permalink(bot) -> None:
    """One word for a seed (issue 12): no command, option or description shows Discord users the old name."""
    for top in bot.tree.get_commands():
        assert "permalink" not in str(top.to_dict(bot.tree)).lower(), top.name


def test_every_number_option_shows_its_range(bot) -> None:
    """Discord shows and enforces min_value/max_value; the service checks the same declaration."""
    seen = {}
    for name, command in all_commands(bot).items():
        for option, payload in options_of(bot, command).items():
            if payload["type"] in (OPTION_TYPES[int], discord.AppCommandOptionType.number.value):
                assert "min_value" in payload and "max_value" in payload, (name, option)
                seen[(name, option)] = (payload["min_value"], payload["max_value"])
    assert seen[("tournament-admin create", "runs_per_pool")] == (RUNS_PER_POOL.low, RUNS_PER_POOL.high)
    assert seen[("tournament-admin edit", "max_reattempts")] == (MAX_REATTEMPTS.low, MAX_REATTEMPTS.high)
    lead = (ROOM_OPEN_LEAD_MINUTES.low, ROOM_OPEN_LEAD_MINUTES.high)
    assert seen[("tournament-admin edit", "lead_minutes")] == seen[("startline config", "lead_minutes")] == lead
    assert seen[("apitoken revoke", "token")] == (RECORD_ID.low, RECORD_ID.high)


# Every option of these names, in any command, is resolved by its transformer (the callback gets the object).
NAMED_OPTIONS = {
    "tournament": options.TournamentOption,
    "pool": options.PoolOption,
    "seed": options.SeedOption,
    "race": options.RaceOption,  # or RaceNumberOption, its subclass
    "room_profile": options.RoomProfileOption,
    "profile": options.RoomProfileOption,
    "default_room_profile": options.RoomProfileOption,
    "when": options.WhenOption,
    "timezone": options.TimezoneOption,
    "template": options.TemplateOption,
    "series": options.SeriesOption,
    "phase": options.PhaseOption,
    "season": options.SeasonOption,
    "zone": options.TimezoneOption,
}
# The commands that take room settings: all of them, or those a single race may override.
ROOM_SETTING_COMMANDS = {
    "roomprofile create": False,
    "roomprofile edit": False,
    "liverace-admin create": True,
    "liverace-admin edit": True,
}
OPTION_TYPES = {
    int: discord.AppCommandOptionType.integer.value,
    bool: discord.AppCommandOptionType.boolean.value,
    str: discord.AppCommandOptionType.string.value,
}


def options_of(bot, command: app_commands.Command) -> dict[str, dict]:
    return {option["name"]: option for option in command.to_dict(bot.tree).get("options", [])}


def test_options_that_name_things_use_their_transformer(bot) -> None:
    seen = set()
    for name, command in all_commands(bot).items():
        described = options_of(bot, command)
        for option, transformer in NAMED_OPTIONS.items():
            if option not in described:
                continue
            seen.add(option)
            # discord.py keeps the transformer of a parameter as its (private) annotation
            assert isinstance(command._params[option]._annotation, transformer), (name, option)
            suggests = option != "when"  # a time is typed, never picked
            assert described[option].get("autocomplete", False) is suggests, (name, option)
    assert seen == set(NAMED_OPTIONS)


def test_room_setting_options_carry_the_records_type_range_and_description(bot) -> None:
    numeric_seen = set()
    for name, command in all_commands(bot).items():
        described = options_of(bot, command)
        offered = [option for option in described if option in ROOM_SETTINGS]
        if name not in ROOM_SETTING_COMMANDS:
            assert offered == [], name
            continue
        per_race = ROOM_SETTING_COMMANDS[name]
        assert offered == [s.name for s in ROOM_SETTINGS.values() if s.per_race or not per_race], name
        for option in offered:
            setting, payload = ROOM_SETTINGS[option], described[option]
            assert payload["type"] == OPTION_TYPES[setting.kind] and not payload.get("required"), (name, option)
            assert (payload.get("min_value"), payload.get("max_value")) == (setting.low, setting.high), (name, option)
            assert payload["description"] == option_description(setting, per_race=per_race), (name, option)
            choices = [choice["value"] for choice in payload.get("choices", [])]
            assert choices == list(setting.choices), (name, option)
            if setting.kind is int:
                numeric_seen.add(option)
    assert numeric_seen == {s.name for s in ROOM_SETTINGS.values() if s.kind is int}


async def test_commands_are_refused_in_direct_messages(discord_) -> None:
    d = discord_
    reply = await d.harness.run_in_dm("tournament list", d.alice)
    assert reply.ephemeral and reply.text == (
        "Startline's commands work in a server, not in direct messages (except /notify)."
    )


async def test_any_command_registers_the_user_as_a_player_of_the_guild(discord_) -> None:
    d = discord_
    await d.harness.run("tournament list", d.bob)
    player = await d.services.players.get(d.guild.id, d.bob.id)
    assert player.display_name == d.bob.display_name
    async with d.services.db.read() as session:
        assert await session.get(GuildPlayer, (d.other_guild.id, player.id)) is None


async def test_a_member_who_left_is_back_when_they_use_a_command(discord_) -> None:
    d = discord_
    await d.harness.run("tournament list", d.bob)
    await d.services.players.member_left(d.guild.id, d.bob.id)
    shown = await d.harness.run("racetime status", d.mod, perms=MODERATOR_PERMS, member=d.bob)
    assert "left the server" in shown.text
    await d.harness.run("tournament list", d.bob)
    assert (await d.services.players.get(d.guild.id, d.bob.id)).left_at is None


async def test_unexpected_errors_get_a_short_private_message_and_a_log_entry(discord_, monkeypatch, caplog) -> None:
    d = discord_

    async def broken(*args, **kwargs):
        raise RuntimeError("database exploded")

    monkeypatch.setattr(d.services.tournaments, "list_tournaments", broken)
    with caplog.at_level(logging.ERROR):
        reply = await d.harness.run("tournament list", d.alice)
    assert reply.ephemeral and reply.text == GENERIC_FAILURE
    assert "database exploded" not in reply.text
    (record,) = [r for r in caplog.records if r.name == "cogs._common.respond"]
    assert "tournament list" in record.getMessage() and record.exc_info[1].args == ("database exploded",)


async def test_administrator_counts_as_manage_server(discord_) -> None:
    d = discord_
    reply = await d.harness.run(
        "tournament-admin create", d.alice, perms=discord.Permissions(administrator=True), name="Admin Cup"
    )
    assert "Created tournament" in reply.text


async def test_sync_is_for_owners_only(discord_, monkeypatch) -> None:
    d = discord_
    calls = []

    async def bulk_upsert_guild_commands(application_id, guild_id, payload):
        calls.append((guild_id, [command["name"] for command in payload]))
        return [
            {"description": "", **command, "id": str(index + 1), "application_id": str(application_id), "version": "1"}
            for index, command in enumerate(payload)
        ]  # fmt: skip (Discord answers "" for menus)

    # The tree keeps the HTTP client it was built with (dpytest swaps only the bot's): answer in its place.
    monkeypatch.setattr(d.bot.tree._http, "bulk_upsert_guild_commands", bulk_upsert_guild_commands)
    refused = await d.harness.run("startline sync", d.mod, perms=MODERATOR_PERMS)
    assert refused.text == "Only the bot's owners can do that." and calls == []
    d.bot.owner_id, d.bot.owner_ids = None, {d.mod.id}  # the first check cached the application owner
    synced = await d.harness.run("startline sync", d.mod, perms=MODERATOR_PERMS)
    assert synced.first.type == 5  # deferred before talking to Discord
    ((guild_id, names),) = calls
    assert guild_id == d.guild.id and {"liverace", "tournament", "notify", "Startline profile"} <= set(names)
    assert f"guild {d.guild.id}: {len(names)} commands, available now" in synced.text


def test_the_profile_menu_is_for_moderators(bot) -> None:
    (menu,) = bot.tree.get_commands(type=discord.AppCommandType.user)
    payload = menu.to_dict(bot.tree)
    assert menu.name == "Startline profile" and payload["type"] == discord.AppCommandType.user.value
    assert int(payload["default_member_permissions"]) == MODERATOR_DEFAULT.value and payload["dm_permission"] is False
    assert len(menu.checks) == 1  # the real guard
