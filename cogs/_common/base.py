"""The base class of Startline's cogs: access to the services and the acting user."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord.ext import commands

from bot.actors import Actor

if TYPE_CHECKING:
    from bot.discord_bot import StartlineBot
    from bot.services import Services


class StartlineCog(commands.Cog):
    def __init__(self, bot: StartlineBot) -> None:
        self.bot = bot

    @property
    def services(self) -> Services:
        return self.bot.app.services

    @staticmethod
    def actor(interaction: discord.Interaction) -> Actor:
        return Actor.player(interaction.user.id, interaction.user.display_name)

    @staticmethod
    def guild_id(interaction: discord.Interaction) -> int:
        # The tree refuses interactions outside a guild before any command runs.
        assert interaction.guild_id is not None
        return interaction.guild_id
