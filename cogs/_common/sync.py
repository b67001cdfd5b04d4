"""Publishing the slash commands to Discord: only on demand (`run.py sync`, `/startline sync`), never at start.

A guild sync copies the global commands into that guild, so a development server sees changes at once; a global
sync takes up to an hour to reach every server and counts against Discord's daily command-creation limit.
"""

from __future__ import annotations

import discord
from discord import app_commands


async def sync_commands(
    tree: app_commands.CommandTree, *, guild_ids: list[int] = (), include_global: bool = False
) -> list[str]:
    """Sync to each guild, then globally if asked; one line per target says what happened."""
    report = []
    for guild_id in guild_ids:
        guild = discord.Object(id=guild_id)
        tree.copy_global_to(guild=guild)
        try:
            synced = await tree.sync(guild=guild)
        except discord.Forbidden:
            report.append(
                f"guild {guild_id}: refused — invite the bot there with the applications.commands scope first"
            )
            continue
        report.append(f"guild {guild_id}: {len(synced)} commands, available now")
    if include_global:
        synced = await tree.sync()
        report.append(f"global: {len(synced)} commands, every server within about an hour")
    return report
