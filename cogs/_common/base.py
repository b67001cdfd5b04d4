"""The base class of Startline's cogs: access to the services and the acting user."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord.ext import commands

from bot.actors import Actor

if TYPE_CHECKING:
    from bot.app import Application
    from bot.services import Services


def app_of(client: discord.Client) -> Application:
    """The application behind the bot (`StartlineBot.app`), typed here so that nothing in cogs/ imports
    bot/discord_bot, which loads cogs/."""
    return client.app  # type: ignore[attr-defined]


def services_of(interaction: discord.Interaction) -> Services:
    """The services, for a command, a check, the tree or an autocomplete: the one accessor."""
    return app_of(interaction.client).services


class StartlineCog(commands.Cog):
    def __init__(self, bot: commands.Bot) -> None:
        self.bot = bot

    @property
    def app(self) -> Application:
        return app_of(self.bot)

    @property
    def services(self) -> Services:
        return self.app.services

    @staticmethod
    def actor(interaction: discord.Interaction) -> Actor:
        return Actor.player(interaction.user.id, interaction.user.display_name)

    @staticmethod
    def guild_id(interaction: discord.Interaction) -> int:
        # The tree refuses interactions outside a guild before any command runs.
        assert interaction.guild_id is not None
        return interaction.guild_id
