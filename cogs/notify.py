"""/notify: a private panel to turn race DMs on and off, per event type, for this server or for all servers."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands

from cogs._common.base import StartlineCog
from cogs._common.formatting import EMBED_COLOUR
from cogs._common.respond import respond
from cogs._common.views import OwnedView

if TYPE_CHECKING:
    from bot.services.notifications import PreferenceView

PANEL_TIMEOUT = 600.0
BUTTONS_PER_ROW = 5  # Discord's limit for one row of buttons


class NotifyPanel(OwnedView):
    """One toggle per event type, a scope switch, and all on / all off; every press saves at once."""

    def __init__(self, cog: NotifyCog, interaction: discord.Interaction, prefs: list[PreferenceView]) -> None:
        super().__init__(interaction.user.id, timeout=PANEL_TIMEOUT)
        self.cog = cog
        self.guild_id: int = interaction.guild_id  # type: ignore[assignment]
        self.guild_name = interaction.guild.name if interaction.guild else "this server"
        self.prefs = prefs
        self.all_servers = False
        self.render()

    # ---- state -----------------------------------------------------------------------------------------------------
    def shown(self, pref: PreferenceView) -> bool:
        """The setting the panel toggles in its current scope."""
        return bool(pref.global_setting) if self.all_servers else pref.effective

    @property
    def scope_guild(self) -> int | None:
        return None if self.all_servers else self.guild_id

    def embed(self) -> discord.Embed:
        scope = "all servers" if self.all_servers else f"**{discord.utils.escape_markdown(self.guild_name)}**"
        lines = []
        for pref in self.prefs:
            mark = "✅" if self.shown(pref) else "⬜"
            origin = ""
            if not self.all_servers and pref.guild_setting is None:
                origin = " (from your all-servers setting)"
            elif self.all_servers and pref.guild_setting is not None:
                origin = f" (overridden here: {'on' if pref.guild_setting else 'off'})"
            lines.append(f"{mark} `{pref.code}` {pref.label}{origin}")
        embed = discord.Embed(
            title="Race notifications by DM",
            description=f"Showing: {scope}\n\n" + "\n".join(lines),
            colour=EMBED_COLOUR,
        )
        embed.set_footer(text="Press a button to switch it; changes are saved at once.")
        return embed

    def render(self) -> None:
        self.clear_items()
        for index, pref in enumerate(self.prefs):  # one toggle per notification type, five to a row
            self.add_item(ToggleButton(pref, on=self.shown(pref), row=index // BUTTONS_PER_ROW))
        controls = -(-len(self.prefs) // BUTTONS_PER_ROW)  # the row after the toggles
        label = "Scope: all servers" if self.all_servers else "Scope: this server"
        self.add_item(PanelButton(label, "scope", discord.ButtonStyle.primary, row=controls))
        self.add_item(PanelButton("All on", "all_on", discord.ButtonStyle.success, row=controls))
        self.add_item(PanelButton("All off", "all_off", discord.ButtonStyle.danger, row=controls))
        if not self.all_servers and any(pref.guild_setting is not None for pref in self.prefs):
            reset = PanelButton(
                "Use my all-servers settings here", "reset", discord.ButtonStyle.secondary, row=controls
            )
            self.add_item(reset)

    async def refresh(self, interaction: discord.Interaction, prefs: list[PreferenceView] | None = None) -> None:
        if prefs is not None:
            self.prefs = prefs
        self.render()
        await interaction.response.edit_message(embed=self.embed(), view=self)

    # ---- actions -----------------------------------------------------------------------------------------------------
    async def toggle(self, interaction: discord.Interaction, pref: PreferenceView) -> None:
        prefs = await self.cog.services.notifications.set_preference(
            interaction.user.id,
            pref.event_type,
            not self.shown(pref),
            guild_id=self.scope_guild,
            actor=self.cog.actor(interaction),
            display_name=interaction.user.display_name,
        )
        await self.refresh(interaction, prefs)

    async def act(self, interaction: discord.Interaction, action: str) -> None:
        service = self.cog.services.notifications
        actor = self.cog.actor(interaction)
        if action == "scope":
            self.all_servers = not self.all_servers
            await self.refresh(interaction)
        elif action == "reset":
            await self.refresh(
                interaction, await service.clear_guild_preferences(interaction.user.id, self.guild_id, actor=actor)
            )
        else:
            prefs = await service.set_all(
                interaction.user.id,
                action == "all_on",
                guild_id=self.scope_guild,
                actor=actor,
                display_name=interaction.user.display_name,
            )
            await self.refresh(interaction, prefs)


class ToggleButton(discord.ui.Button["NotifyPanel"]):
    def __init__(self, pref: PreferenceView, *, on: bool, row: int) -> None:
        label = f"{pref.event_type.spec.short_label}: {'on' if on else 'off'}"
        style = discord.ButtonStyle.success if on else discord.ButtonStyle.secondary
        super().__init__(label=label, style=style, row=row)
        self.pref = pref

    async def callback(self, interaction: discord.Interaction) -> None:
        assert self.view is not None
        await self.view.toggle(interaction, self.pref)


class PanelButton(discord.ui.Button["NotifyPanel"]):
    def __init__(self, label: str, action: str, style: discord.ButtonStyle, *, row: int) -> None:
        super().__init__(label=label, style=style, row=row)
        self.action = action

    async def callback(self, interaction: discord.Interaction) -> None:
        assert self.view is not None
        await self.view.act(interaction, self.action)


class NotifyCog(StartlineCog):
    @app_commands.command(name="notify", description="Choose which race DMs you get")
    @app_commands.guild_only()
    async def notify(self, interaction: discord.Interaction) -> None:
        prefs = await self.services.notifications.preferences(interaction.user.id, self.guild_id(interaction))
        panel = NotifyPanel(self, interaction, prefs)
        panel.origin = interaction
        await respond(interaction, embed=panel.embed(), view=panel)


async def setup(bot) -> None:
    await bot.add_cog(NotifyCog(bot))
