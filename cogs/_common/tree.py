"""The command tree: a global gate (guild only, register the player) and the one error handler."""

from __future__ import annotations

import logging

import discord
from discord import app_commands

from cogs._common.base import services_of
from cogs._common.respond import report_error

log = logging.getLogger(__name__)

DM_REFUSAL = "Startline's commands work in a server, not in direct messages (except /notify)."
# Commands that also work in direct messages (they ask which server when it matters).
DM_COMMANDS = frozenset({"notify"})


class StartlineTree(app_commands.CommandTree):
    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        # `guild_only` on the groups is a hint to Discord clients; this is the enforcement.
        if interaction.guild_id is None:
            if (interaction.data or {}).get("name") in DM_COMMANDS:  # a command or its autocomplete
                return True
            if interaction.type is discord.InteractionType.application_command:
                await interaction.response.send_message(DM_REFUSAL, ephemeral=True)
            return False
        if interaction.type is discord.InteractionType.application_command:
            await self._register_player(interaction)
        return True

    async def _register_player(self, interaction: discord.Interaction) -> None:
        """Every command makes its user a player of the guild (an eligibility candidate)."""
        user = interaction.user
        try:
            await services_of(interaction).players.touch(interaction.guild_id, user.id, user.display_name)  # type: ignore[arg-type]
        except Exception:  # the command itself still runs and reports its own failure
            log.exception("could not register player %s in guild %s", user.id, interaction.guild_id)

    async def on_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError, /) -> None:
        await report_error(interaction, error)
