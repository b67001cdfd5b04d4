"""Permission checks that are enforced, not hinted.

`default_permissions` only tells Discord whom to show a command to, and server admins can override it, so every
moderator command carries one of these real checks. A refusal says what is missing.
"""

from __future__ import annotations

from typing import cast

import discord
from discord import app_commands
from discord.ext import commands

from cogs._common.base import services_of

# Whom Discord shows moderator commands to by default. Only a hint: server admins can change it under Server
# Settings → Integrations, so every moderator command also carries one of the checks below.
MODERATOR_DEFAULT = discord.Permissions(manage_guild=True)
ADMIN_SUFFIX = "-admin"  # the moderator half of a group players also use: /liverace and /liverace-admin


def admin_group(name: str, description: str) -> app_commands.Group:
    """The moderator half of the group `name`: hidden from members without Manage Server by default."""
    return app_commands.Group(
        name=name + ADMIN_SUFFIX, description=description, guild_only=True, default_permissions=MODERATOR_DEFAULT
    )


def moderator_group(name: str, description: str) -> app_commands.Group:
    """A group all of whose commands are for moderators."""
    return app_commands.Group(
        name=name, description=description, guild_only=True, default_permissions=MODERATOR_DEFAULT
    )


def player_group(name: str, description: str) -> app_commands.Group:
    """A group all of whose commands are for everyone (moderators' commands go to `admin_group(name, …)`)."""
    return app_commands.Group(name=name, description=description, guild_only=True)


class MissingModeratorRights(app_commands.CheckFailure):
    """The user has neither Manage Server nor the guild's organizer role."""


class NotOwner(app_commands.CheckFailure):
    pass


def has_manage_server(interaction: discord.Interaction) -> bool:
    permissions = interaction.permissions
    return permissions.manage_guild or permissions.administrator


async def is_moderator(interaction: discord.Interaction) -> bool:
    """Manage Server, or the guild's organizer role."""
    if interaction.guild_id is None:
        return False
    if has_manage_server(interaction):
        return True
    role_id = await _organizer_role_id(interaction)
    return role_id is not None and _has_role(interaction.user, role_id)


async def _organizer_role_id(interaction: discord.Interaction) -> int | None:
    settings = await services_of(interaction).guilds.get(interaction.guild_id)  # type: ignore[arg-type]
    return settings.organizer_role_id


def _has_role(user: discord.abc.User, role_id: int) -> bool:
    return isinstance(user, discord.Member) and user.get_role(role_id) is not None


def moderator_only():
    """Manage Server or the organizer role; the refusal names both."""

    async def predicate(interaction: discord.Interaction) -> bool:
        if await is_moderator(interaction):
            return True
        role_id = await _organizer_role_id(interaction)
        if role_id is None:
            raise MissingModeratorRights("You need the Manage Server permission to do that.")
        raise MissingModeratorRights(f"You need the Manage Server permission or the <@&{role_id}> role to do that.")

    return app_commands.check(predicate)


def manage_server_only():
    """Server-level settings: Manage Server itself (the organizer role is one of the things it controls)."""

    async def predicate(interaction: discord.Interaction) -> bool:
        if has_manage_server(interaction):
            return True
        raise MissingModeratorRights("You need the Manage Server permission to do that.")

    return app_commands.check(predicate)


def owner_only():
    """Bot owners (`discord.owner_ids`, else the application's owner)."""

    async def predicate(interaction: discord.Interaction) -> bool:
        bot = cast(commands.Bot, interaction.client)
        if await bot.is_owner(interaction.user):
            return True
        raise NotOwner("Only the bot's owners can do that.")

    return app_commands.check(predicate)
