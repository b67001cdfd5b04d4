"""/racetime link | unlink | status, /racetime-admin assign: the player's RaceTime.gg account."""

from __future__ import annotations

import discord
from discord import app_commands

from bot.errors import PermissionDenied
from bot.services.players import RosterEntry
from cogs._common.base import StartlineCog
from cogs._common.checks import admin_group, is_moderator, moderator_only, player_group
from cogs._common.formatting import safe, ts
from cogs._common.respond import respond


class RacetimeCog(StartlineCog):
    racetime = player_group("racetime", "Your RaceTime.gg account")
    racetime_admin = admin_group("racetime", "Players' RaceTime.gg accounts (moderators)")

    def profile_url(self, racetime_id: str) -> str:
        return f"{self.services.settings.racetime.base_url}/user/{racetime_id}"

    @racetime.command(name="link", description="Link your RaceTime.gg account (opens RaceTime.gg in your browser)")
    async def link(self, interaction: discord.Interaction) -> None:
        url = await self.services.account_links.authorize_url(self.guild_id(interaction), interaction.user.id)
        view = discord.ui.View()
        view.add_item(discord.ui.Button(label="Link on RaceTime.gg", url=url, style=discord.ButtonStyle.link))
        await respond(
            interaction,
            "Press the button, log in to RaceTime.gg if asked and allow Startline to see your name. "
            "This link is yours alone and works for 10 minutes.",
            view=view,
        )

    @racetime.command(name="unlink", description="Remove the link to your RaceTime.gg account")
    async def unlink(self, interaction: discord.Interaction) -> None:
        await self.services.players.unlink_racetime(
            self.guild_id(interaction), interaction.user.id, self.actor(interaction)
        )
        await respond(
            interaction,
            "Unlinked your RaceTime.gg account. You cannot join live races until you link one again with "
            "`/racetime link`.",
        )

    @racetime.command(name="status", description="Which RaceTime.gg account is linked")
    @app_commands.describe(member="Someone else's link (moderators only)")
    async def status(self, interaction: discord.Interaction, member: discord.Member | None = None) -> None:
        target = member or interaction.user
        if target.id != interaction.user.id and not await is_moderator(interaction):
            raise PermissionDenied("only moderators can look at someone else's link; use /racetime status alone")
        player = await self.services.players.entry(self.guild_id(interaction), target.id)
        await respond(interaction, self.describe(player, yourself=target.id == interaction.user.id))

    def describe(self, player: RosterEntry | None, *, yourself: bool) -> str:
        who = "You have" if yourself else "This member has"
        if player is None or player.racetime_id is None:
            lines = [f"{who} no RaceTime.gg account linked. Link one with `/racetime link`."]
        else:
            how = (
                "verified through RaceTime.gg"
                if player.racetime_verified
                else "set by a moderator of this server, not verified"
            )
            since = f", since {ts(player.racetime_linked_at, 'D')}" if player.racetime_linked_at else ""
            lines = [
                f"{who} linked [{safe(player.racetime_name)}]({self.profile_url(player.racetime_id)}) "
                f"(`{player.racetime_id}`), {how}{since}."
            ]
        # Both only ever seen by moderators: any command of the member's own brings them back and lifts the pause.
        if player is not None and player.left_at is not None:
            lines.append(f"This member left the server {ts(player.left_at, 'R')}: not eligible, no DMs from here.")
        if player is not None and player.dm_blocked:
            lines.append(
                "⚠️ Direct messages to this member failed, so their notifications are paused until they use a "
                "Startline command again."
            )
        return "\n".join(lines)

    @racetime_admin.command(name="assign", description="Link a member to a RaceTime.gg account by hand (for imports)")
    @app_commands.describe(
        member="The member",
        racetime_id="The id in their RaceTime.gg profile URL (racetime.gg/user/<id>)",
        racetime_name="Their RaceTime.gg name (defaults to the id)",
    )
    @moderator_only()
    async def assign(
        self,
        interaction: discord.Interaction,
        member: discord.Member,
        racetime_id: str,
        racetime_name: str | None = None,
    ) -> None:
        player = await self.services.players.link_racetime(
            self.guild_id(interaction),
            member.id,
            racetime_id,
            racetime_name or racetime_id,
            self.actor(interaction),
            verified=False,
            display_name=member.display_name,
        )
        how = (
            "which they verified themselves"
            if player.racetime_verified
            else "in this server, unverified: it gives way if the account's owner links it themselves"
        )
        await respond(
            interaction,
            f"Linked {member.mention} to RaceTime.gg account **{safe(player.racetime_name)}** "
            f"(`{player.racetime_id}`), {how}.",
        )


async def setup(bot) -> None:
    await bot.add_cog(RacetimeCog(bot))
