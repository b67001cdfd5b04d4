"""/notify: a private panel to turn race DMs on and off, per event type, for this server or for all servers."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands

from bot.errors import ValidationFailed
from bot.services.reminders import describe_offset
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

    def __init__(
        self,
        cog: NotifyCog,
        interaction: discord.Interaction,
        prefs: list[PreferenceView],
        *,
        guild_id: int | None = None,
        guild_name: str | None = None,
        dms_off: bool = False,
    ) -> None:
        super().__init__(interaction.user.id, timeout=PANEL_TIMEOUT)
        self.cog = cog
        self.guild_id: int = guild_id or interaction.guild_id  # type: ignore[assignment]
        self.guild_name = guild_name or (interaction.guild.name if interaction.guild else "this server")
        self.prefs = prefs
        self.dms_off = dms_off  # "No more DMs from this server" (a DM's button): nothing comes from here
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
        if self.dms_off and not self.all_servers:
            lines.append(
                "\n⛔ **No DMs from this server at all**: you pressed *No more DMs* under one of its DMs. Turning any "
                "type on here (or All on) allows its DMs again."
            )
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
        enabled = not self.shown(pref)
        prefs = await self.cog.services.notifications.set_preference(
            interaction.user.id,
            pref.event_type,
            enabled,
            guild_id=self.scope_guild,
            actor=self.cog.actor(interaction),
            display_name=interaction.user.display_name,
        )
        self.dms_off &= not (enabled and not self.all_servers)  # a type on here allows this server's DMs again
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
            self.dms_off &= not (action == "all_on" and not self.all_servers)
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
    @app_commands.allowed_contexts(guilds=True, dms=True, private_channels=False)
    @app_commands.describe(
        server="In direct messages: the server whose DMs to set (in a server: that server)",
        reminders="Reminders before the start, like 24h,1h,10m (from 10m, 30m, 1h, 3h, 12h, 24h), or none",
    )
    async def notify(
        self, interaction: discord.Interaction, server: str | None = None, reminders: str | None = None
    ) -> None:
        guild_id = interaction.guild_id
        if guild_id is None:  # in DMs: which server?
            guild_id = await self._server_in_dm(interaction, server)
            if guild_id is None:
                return
        if reminders is not None:
            await self._set_reminders(interaction, guild_id, reminders)
            return
        prefs = await self.services.notifications.preferences(interaction.user.id, guild_id)
        dms_off = await self.services.notifications.guild_dms_off(interaction.user.id, guild_id)
        panel = NotifyPanel(
            self, interaction, prefs, guild_id=guild_id, guild_name=self._guild_name(guild_id), dms_off=dms_off
        )
        panel.origin = interaction
        await respond(interaction, embed=panel.embed(), view=panel)

    async def _set_reminders(self, interaction: discord.Interaction, guild_id: int, reminders: str) -> None:
        try:
            chosen = await self.services.reminders.set_offsets(
                interaction.user.id, guild_id, reminders, display_name=interaction.user.display_name
            )
        except ValidationFailed as exc:
            await respond(interaction, f"❌ {exc} Nothing changed.")
            return
        where = f"**{discord.utils.escape_markdown(self._guild_name(guild_id))}**"
        if not chosen:
            personal = await self.services.reminders.personal_offsets(interaction.user.id, guild_id)
            when = ", ".join(describe_offset(m) for m in personal)
            await respond(
                interaction,
                f"Reminders off for {where}: races you RSVP'd, or pressed Interested on in Discord's events, still "
                f"remind you {when} before. Undo: `/notify reminders:24h,1h`.",
            )
            return
        offsets = ", ".join(describe_offset(m) for m in chosen)
        await respond(
            interaction,
            f"Reminders for {where}: {offsets} before the start of races you RSVP'd (`/liverace rsvp`) or pressed "
            "Interested on (the server's Discord events) and, if "
            "the **Scheduled** DM is on, of races you may race. Stop them: `/notify reminders:none`.",
        )

    async def _server_in_dm(self, interaction: discord.Interaction, server: str | None) -> int | None:
        """The server /notify sets when used in DMs: the one named, else the only one; otherwise it asks."""
        guilds = await self.services.players.guilds_of(interaction.user.id)
        if server is not None:
            chosen = int(server) if server.strip().isdigit() else None
            if chosen not in guilds:
                names = ", ".join(f"**{self._guild_name(g)}**" for g in guilds) or "none yet"
                await respond(
                    interaction,
                    f"You get no race DMs from that server. Your servers with Startline: {names}. "
                    "Pick one from the `server` option's list.",
                )
                return None
            return chosen
        if len(guilds) == 1:
            return guilds[0]
        if not guilds:
            await respond(
                interaction,
                "No server sends you race DMs yet: use any Startline command in a server first, then /notify here "
                "or there.",
            )
            return None
        names = "\n".join(f"- **{self._guild_name(g)}**" for g in guilds)
        await respond(interaction, f"Which server? Run `/notify` again and pick it in the `server` option:\n{names}")
        return None

    def _guild_name(self, guild_id: int) -> str:
        guild = self.bot.get_guild(guild_id)
        return guild.name if guild is not None else f"server {guild_id}"

    @notify.autocomplete("server")
    async def _server_choices(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        guilds = await self.services.players.guilds_of(interaction.user.id)
        named = [(self._guild_name(g), g) for g in guilds]
        return [
            app_commands.Choice(name=name[:100], value=str(g)) for name, g in named if current.lower() in name.lower()
        ][:25]


async def setup(bot) -> None:
    await bot.add_cog(NotifyCog(bot))
