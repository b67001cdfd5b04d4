"""/tournament, /pool, /seed and /roomprofile: setting up what live races are made of."""

from __future__ import annotations

import asyncio
import io
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import discord
from discord import app_commands
from discord.app_commands import Transform

from bot.errors import ValidationFailed
from bot.services.room_profiles import ROOM_SETTINGS
from bot.services.seed_import import MAX_IMPORT_BYTES, SeedBatch, decode, parse_csv, parse_lines
from bot.services.standings import RunLine, Standing
from cogs._common import options
from cogs._common.base import StartlineCog
from cogs._common.charts import score_chart
from cogs._common.checks import admin_group, moderator_group, moderator_only, player_group
from cogs._common.formatting import EMBED_COLOUR, LINES_PER_PAGE, on_off, pages, run_time, safe, shorten
from cogs._common.options import (
    LeadMinutes,
    MaxReattempts,
    PoolOption,
    RoomProfileOption,
    RunsPerPool,
    SeedOption,
    TournamentOption,
)
from cogs._common.respond import report_error, respond, think
from cogs._common.room_options import RoomValues, room_setting_options
from cogs._common.views import ConfirmView, OwnedView, Paginator
from db.models import Pool, RoomProfile, RunStatus, Seed, Tournament

CHART_FILE = "scores.png"


class SeedListModal(discord.ui.Modal):
    """One URL a line (notes after a space), for /seed import without a file."""

    urls: discord.ui.TextInput = discord.ui.TextInput(
        label="Seeds: one URL a line, notes after a space",
        custom_id="urls",
        style=discord.TextStyle.paragraph,
        placeholder="https://alttpr.com/h/abc123 easy one\nhttps://alttpr.com/h/def456",
        max_length=4000,
    )

    def __init__(self, pool_name: str, action: Callable[[discord.Interaction, SeedBatch], Awaitable[None]]) -> None:
        super().__init__(title=shorten(f"Seeds for {pool_name}", 45), timeout=900)
        self.action = action

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await self.action(interaction, parse_lines(self.urls.value))

    async def on_error(self, interaction: discord.Interaction, error: Exception) -> None:
        await report_error(interaction, error)


async def only_active_tournament(services, guild_id: int) -> Tournament:
    page = await services.tournaments.list_tournaments(guild_id, active=True, limit=2)
    if len(page.items) == 1:
        return page.items[0]
    if not page.items:
        raise ValidationFailed("there is no active tournament in this server", field="tournament")
    raise ValidationFailed(
        "this server has several active tournaments; pick one with the `tournament` option", field="tournament"
    )


def run_text(run: RunLine) -> str:
    text = run_time(run.elapsed_us) if run.status is RunStatus.FINISHED else run.status.value.replace("_", " ")
    if run.score is not None:
        text += f" · {run.score:.1f}"
    return f"~~{text}~~ (reattempted)" if run.reattempted else text


def standing_embed(standing: Standing) -> discord.Embed:
    """Rank, unfinished runs, then a line per pool: its score, the runs, and whether they may play it now."""
    head = (
        f"Rank **{standing.rank}** of {standing.ranked} · score **{standing.score:.2f}**"
        if standing.rank is not None
        else "No scored run yet."
    )
    names = {pool.pool_id: pool.name for pool in standing.pools}
    lines = [head]
    lines += [
        f"⏳ Unfinished run in {safe(names[run.pool_id], 40)} ({run.status.value.replace('_', ' ')}): it must end "
        "before another race counts for you."
        for run in standing.unfinished
    ]
    lines.append("")
    per_pool = standing.runs_per_pool
    for pool in standing.pools:
        score = f"{pool.score:.1f}" if pool.score is not None else "no run yet"
        runs = ", ".join(run_text(run) for run in pool.runs)
        verdict = "✅ may play" if pool.reason is None else f"❌ {safe(pool.reason, 80)}"
        lines.append(f"**{safe(pool.name, 40)}** — {score}" + (f" ({runs})" if runs else "") + f" · {verdict}")
    if not standing.pools:
        lines.append("This tournament has no pools yet.")
    description = "\n".join(lines)
    if len(description) > 4000:
        description = description[:3990].rsplit("\n", 1)[0] + "\n…"
    embed = discord.Embed(
        title=f"{shorten(standing.tournament.name, 100)} — {shorten(standing.display_name, 60)}",
        description=description,
        colour=EMBED_COLOUR,
    )
    embed.set_footer(
        text=f"{per_pool} run{'s' if per_pool != 1 else ''} per pool count; the chart shows each pool's score"
    )
    return embed


async def standing_reply(
    services, guild_id: int, tournament_id: int, discord_user_id: int
) -> tuple[discord.Embed, discord.File]:
    """The embed and its chart (a PNG, drawn in a thread) of one player's standing."""
    standing = await services.standings.of_player(guild_id, tournament_id, discord_user_id)
    bars = [(pool.name, pool.score) for pool in standing.pools]
    title = f"{standing.tournament.name} - {standing.display_name}"
    png = await asyncio.to_thread(score_chart, bars, title=title)
    embed = standing_embed(standing)
    embed.set_image(url=f"attachment://{CHART_FILE}")
    return embed, discord.File(io.BytesIO(png), filename=CHART_FILE)


class TournamentPicker(OwnedView):
    """For the profile menu when several tournaments are active: pick one, see the member's standing in it."""

    def __init__(self, owner_id: int, services, guild_id: int, member_id: int, tournaments: list[Tournament]) -> None:
        super().__init__(owner_id, timeout=180)
        self.services, self.guild_id, self.member_id = services, guild_id, member_id
        select = discord.ui.Select(
            placeholder="Which tournament?",
            options=[discord.SelectOption(label=shorten(t.name, 100), value=str(t.id)) for t in tournaments[:25]],
        )
        select.callback = self.picked
        self.add_item(select)
        self.select = select

    async def picked(self, interaction: discord.Interaction) -> None:
        self.stop()
        embed, chart = await standing_reply(self.services, self.guild_id, int(self.select.values[0]), self.member_id)
        await interaction.response.edit_message(embed=embed, attachments=[chart], view=None)


@app_commands.context_menu(name="Startline profile")
@app_commands.guild_only()
@app_commands.default_permissions(manage_guild=True)
@moderator_only()
async def startline_profile(interaction: discord.Interaction, member: discord.Member) -> None:
    """A member's standing in the server's active tournament (a menu to pick one when there are several)."""
    services = options.services_of(interaction)
    guild_id = interaction.guild_id
    assert guild_id is not None
    page = await services.tournaments.list_tournaments(guild_id, active=True, limit=25)
    if len(page.items) > 1:
        picker = TournamentPicker(interaction.user.id, services, guild_id, member.id, page.items)
        picker.origin = interaction
        await respond(interaction, f"Startline profile of {member.mention}: pick a tournament.", view=picker)
        return
    tournament = await only_active_tournament(services, guild_id)
    await think(interaction)
    embed, chart = await standing_reply(services, guild_id, tournament.id, member.id)
    await respond(interaction, embed=embed, file=chart)


def tournament_embed(tournament: Tournament, pools: list, profile_name: str | None) -> discord.Embed:
    embed = discord.Embed(
        title=safe(tournament.name), description=safe(tournament.description, 1000) or None, colour=EMBED_COLOUR
    )
    embed.add_field(name="Status", value="active" if tournament.active else "inactive")
    embed.add_field(name="Runs per pool", value=str(tournament.runs_per_pool))
    reattempts = "unlimited" if tournament.max_reattempts < 0 else str(tournament.max_reattempts)
    embed.add_field(name="Reattempts", value=reattempts)
    goal = tournament.racetime_goal or (f"custom: {tournament.custom_goal}" if tournament.custom_goal else "—")
    embed.add_field(name="RaceTime.gg", value=f"{tournament.racetime_category or 'default category'} · {safe(goal)}")
    if tournament.announcement_channel_id:
        role = f" (pings <@&{tournament.announcement_role_id}>)" if tournament.announcement_role_id else ""
        embed.add_field(name="Announcements", value=f"<#{tournament.announcement_channel_id}>{role}")
    if profile_name:
        embed.add_field(name="Room profile", value=safe(profile_name))
    if tournament.room_open_lead_minutes is not None:
        embed.add_field(name="Room opens", value=f"{tournament.room_open_lead_minutes} min before the start")
    pool_names = ", ".join(safe(pool.name, 40) for pool in pools) or "none yet (add one with /pool-admin add)"
    embed.add_field(name=f"Pools ({len(pools)})", value=shorten(pool_names, 1024), inline=False)
    embed.set_footer(text=f"Tournament #{tournament.id}")
    return embed


def profile_line(profile: RoomProfile) -> str:
    settings = [
        f"{key}={getattr(profile, key)}"
        if not isinstance(getattr(profile, key), bool)
        else f"{key}={on_off(getattr(profile, key))}"
        for key in ROOM_SETTINGS
        if getattr(profile, key) is not None
    ]
    return f"`#{profile.id}` **{safe(profile.name, 60)}** · " + (", ".join(settings) or "inherits everything")


def tournament_fields(
    *,
    room_profile: RoomProfile | None,
    lead_minutes: int | None,
    category: str | None,
    goal: str | None,
    announcement_channel: discord.TextChannel | None,
    announcement_role: discord.Role | None,
    **plain: Any,
) -> dict[str, Any]:
    """The service's fields for the options of /tournament create and edit that the user filled in."""
    return options.given(
        racetime_category=category,
        racetime_goal=goal,
        room_open_lead_minutes=lead_minutes,
        room_profile_id=room_profile.id if room_profile else None,
        announcement_channel_id=announcement_channel.id if announcement_channel else None,
        announcement_role_id=announcement_role.id if announcement_role else None,
        **plain,
    )


class TournamentCog(StartlineCog):
    tournament = player_group("tournament", "Tournaments and standings")
    tournament_admin = admin_group("tournament", "Create and change tournaments (moderators)")
    pool = player_group("pool", "Pools of a tournament")
    pool_admin = admin_group("pool", "Add and remove pools (moderators)")
    seed = moderator_group("seed", "Seeds of a pool (moderators)")
    roomprofile = moderator_group("roomprofile", "Named RaceTime.gg room settings (moderators)")

    # ---- /tournament ---------------------------------------------------------------------------------------------
    @tournament_admin.command(name="create", description="Create a tournament")
    @app_commands.describe(
        name="Unique name in this server",
        description="What it is about",
        runs_per_pool="Runs of each pool that count (default 1)",
        max_reattempts="Reattempts allowed per player (-1 = unlimited, the default)",
        category="RaceTime.gg category slug, like alttpr (default: the bot's category)",
        goal="A goal of the category (or use custom_goal)",
        custom_goal="A custom goal text",
        room_profile="Room settings for its races",
        lead_minutes="How long before the start the room opens (default: the server's)",
        announcement_channel="Where its races are announced",
        announcement_role="Role to ping in announcements",
    )
    @moderator_only()
    async def tournament_create(
        self,
        interaction: discord.Interaction,
        name: str,
        description: str | None = None,
        runs_per_pool: RunsPerPool | None = None,
        max_reattempts: MaxReattempts | None = None,
        category: str | None = None,
        goal: str | None = None,
        custom_goal: str | None = None,
        room_profile: Transform[RoomProfile, RoomProfileOption] | None = None,
        lead_minutes: LeadMinutes | None = None,
        announcement_channel: discord.TextChannel | None = None,
        announcement_role: discord.Role | None = None,
    ) -> None:
        fields = tournament_fields(
            description=description,
            runs_per_pool=runs_per_pool,
            max_reattempts=max_reattempts,
            category=category,
            goal=goal,
            custom_goal=custom_goal,
            room_profile=room_profile,
            lead_minutes=lead_minutes,
            announcement_channel=announcement_channel,
            announcement_role=announcement_role,
        )
        created = await self.services.tournaments.create_tournament(
            self.guild_id(interaction), self.actor(interaction), name=name, **fields
        )
        await respond(
            interaction,
            f"Created tournament **{created.name}** (#{created.id}). Next: add pools with `/pool-admin add`.",
        )

    @tournament_admin.command(name="edit", description="Change a tournament")
    @app_commands.describe(
        tournament="The tournament",
        name="New name",
        active="Whether players can still race it",
        description="What it is about",
        runs_per_pool="Runs of each pool that count",
        max_reattempts="Reattempts allowed per player (-1 = unlimited)",
        category="RaceTime.gg category slug",
        goal="A goal of the category (clears the custom goal)",
        custom_goal="A custom goal text (clears the category goal)",
        room_profile="Room settings for its races",
        lead_minutes="How long before the start the room opens",
        announcement_channel="Where its races are announced",
        announcement_role="Role to ping in announcements",
    )
    @moderator_only()
    async def tournament_edit(
        self,
        interaction: discord.Interaction,
        tournament: Transform[Tournament, TournamentOption],
        name: str | None = None,
        active: bool | None = None,
        description: str | None = None,
        runs_per_pool: RunsPerPool | None = None,
        max_reattempts: MaxReattempts | None = None,
        category: str | None = None,
        goal: str | None = None,
        custom_goal: str | None = None,
        room_profile: Transform[RoomProfile, RoomProfileOption] | None = None,
        lead_minutes: LeadMinutes | None = None,
        announcement_channel: discord.TextChannel | None = None,
        announcement_role: discord.Role | None = None,
    ) -> None:
        changes = options.given(name=name, active=active) | tournament_fields(
            description=description,
            runs_per_pool=runs_per_pool,
            max_reattempts=max_reattempts,
            category=category,
            goal=goal,
            custom_goal=custom_goal,
            room_profile=room_profile,
            lead_minutes=lead_minutes,
            announcement_channel=announcement_channel,
            announcement_role=announcement_role,
        )
        if not changes:
            await respond(interaction, "Nothing to change: fill in at least one option besides the tournament.")
            return
        updated = await self.services.tournaments.update_tournament(
            self.guild_id(interaction), tournament.id, self.actor(interaction), **changes
        )
        await respond(interaction, f"Updated **{updated.name}**: {', '.join(sorted(changes))}.")

    @tournament.command(name="list", description="The tournaments of this server")
    @app_commands.describe(include_inactive="Also list inactive tournaments")
    async def tournament_list(self, interaction: discord.Interaction, include_inactive: bool = False) -> None:
        page = await self.services.tournaments.list_tournaments(
            self.guild_id(interaction), active=None if include_inactive else True, limit=200
        )
        lines = [f"`#{t.id}` **{safe(t.name, 80)}**" + ("" if t.active else " (inactive)") for t in page.items]
        embeds = pages(
            "Tournaments",
            lines,
            empty="No tournaments yet. A moderator can create one with `/tournament-admin create`.",
            footer="only the first 200" if page.next_cursor else None,
        )
        await Paginator(interaction.user.id, embeds).start(interaction)

    @tournament.command(name="info", description="Settings and pools of a tournament")
    async def tournament_info(
        self, interaction: discord.Interaction, tournament: Transform[Tournament, TournamentOption]
    ) -> None:
        guild_id = self.guild_id(interaction)
        pools = await self.services.tournaments.list_pools(guild_id, tournament.id)
        profile_name = None
        if tournament.room_profile_id is not None:
            profile_name = (await self.services.room_profiles.get(guild_id, tournament.room_profile_id)).name
        await respond(interaction, embed=tournament_embed(tournament, pools, profile_name))

    @tournament.command(name="leaderboard", description="Standings of a tournament")
    @app_commands.describe(public="Post it in the channel for everyone (default: only you see it)")
    async def tournament_leaderboard(
        self,
        interaction: discord.Interaction,
        tournament: Transform[Tournament, TournamentOption],
        public: bool = False,
    ) -> None:
        guild_id = self.guild_id(interaction)
        board = await self.services.scoring.leaderboard(guild_id, tournament.id)
        lines = []
        mine = None
        for index, entry in enumerate(board.entries):
            you = entry.discord_user_id == interaction.user.id
            mine = index if you else mine
            lines.append(
                f"**{entry.rank}.** {safe(entry.display_name, 40)} — {entry.score:.2f}"
                f" ({entry.runs_counted} run{'s' if entry.runs_counted != 1 else ''})" + (" ◀ you" if you else "")
            )
        slots = len(board.pools) * board.runs_per_pool
        seasons = (await self.services.seasons.names_of_tournaments(guild_id, [tournament.id])).get(tournament.id, [])
        in_seasons = f" · season {', '.join(seasons)} (/season leaderboard)" if seasons else ""
        embeds = pages(
            f"Leaderboard — {shorten(tournament.name, 200)}",
            lines,
            empty="No scored runs yet.",
            footer=f"average over {slots} slot{'s' if slots != 1 else ''} ({board.runs_per_pool} per pool){in_seasons}",
        )
        my_page = None if mine is None else mine // LINES_PER_PAGE
        await Paginator(interaction.user.id, embeds, my_page=my_page).start(interaction, ephemeral=not public)

    @tournament.command(name="me", description="Your runs, scores and rank, and what you may still play")
    @app_commands.describe(tournament="The tournament (default: the server's only active one)")
    async def tournament_me(
        self, interaction: discord.Interaction, tournament: Transform[Tournament, TournamentOption] | None = None
    ) -> None:
        guild_id = self.guild_id(interaction)
        if tournament is None:
            tournament = await only_active_tournament(self.services, guild_id)
        await think(interaction)
        embed, chart = await standing_reply(self.services, guild_id, tournament.id, interaction.user.id)
        await respond(interaction, embed=embed, file=chart)

    # ---- /pool -------------------------------------------------------------------------------------------------------
    @pool_admin.command(name="add", description="Add a pool to a tournament")
    @app_commands.describe(tournament="The tournament", name="Unique name in the tournament", description="Optional")
    @moderator_only()
    async def pool_add(
        self,
        interaction: discord.Interaction,
        tournament: Transform[Tournament, TournamentOption],
        name: str,
        description: str | None = None,
    ) -> None:
        guild_id = self.guild_id(interaction)
        created = await self.services.tournaments.add_pool(
            guild_id, tournament.id, self.actor(interaction), name=name, description=description or ""
        )
        await respond(
            interaction,
            f"Added pool **{created.name}** (#{created.id}) to {tournament.name}. Next: add seeds with `/seed add`.",
        )

    @pool.command(name="list", description="The pools of a tournament")
    async def pool_list(
        self, interaction: discord.Interaction, tournament: Transform[Tournament, TournamentOption]
    ) -> None:
        guild_id = self.guild_id(interaction)
        pools = await self.services.tournaments.list_pools(guild_id, tournament.id)
        lines = [
            f"`#{pool.id}` **{safe(pool.name, 60)}**"
            + (f" — {safe(pool.description, 120)}" if pool.description else "")
            for pool in pools
        ]
        embeds = pages(f"Pools — {shorten(tournament.name, 200)}", lines, empty="No pools yet (`/pool-admin add`).")
        await Paginator(interaction.user.id, embeds).start(interaction)

    @pool_admin.command(name="remove", description="Remove a pool that has no runs and no live races")
    @moderator_only()
    async def pool_remove(
        self,
        interaction: discord.Interaction,
        tournament: Transform[Tournament, TournamentOption],
        pool: Transform[Pool, PoolOption],
    ) -> None:
        guild_id = self.guild_id(interaction)
        actor = self.actor(interaction)

        async def remove(_click: discord.Interaction) -> str:
            await self.services.tournaments.remove_pool(guild_id, tournament.id, pool.id, actor)
            return f"Removed pool **{safe(pool.name)}** and its seeds."

        await ConfirmView(interaction.user.id, remove, confirm_label="Remove pool").ask(
            interaction, f"Remove pool **{safe(pool.name)}** of {safe(tournament.name)}, with all its seeds?"
        )

    # ---- /seed -------------------------------------------------------------------------------------------------------
    @seed.command(name="add", description="Add a seed (its link) to a pool")
    @app_commands.describe(
        url="The seed link (its URL)", notes="Optional hint, shown to players with the seed once the room opens"
    )
    @moderator_only()
    async def seed_add(
        self,
        interaction: discord.Interaction,
        tournament: Transform[Tournament, TournamentOption],
        pool: Transform[Pool, PoolOption],
        url: str,
        notes: str | None = None,
    ) -> None:
        guild_id = self.guild_id(interaction)
        created = await self.services.tournaments.add_seed(
            guild_id, tournament.id, pool.id, self.actor(interaction), url=url, notes=notes or ""
        )
        await respond(interaction, f"Added seed #{created.id} to pool **{safe(pool.name)}**: <{created.url}>")

    @seed.command(name="import", description="Add many seeds at once: a CSV file, or a list of URLs to paste")
    @app_commands.describe(
        tournament="The tournament",
        pool="The pool of lines that name none; without a file, the pool to paste URLs into",
        file="A CSV file: pool, url, notes (a first row naming the columns is optional)",
    )
    @moderator_only()
    async def seed_import(
        self,
        interaction: discord.Interaction,
        tournament: Transform[Tournament, TournamentOption],
        pool: Transform[Pool, PoolOption] | None = None,
        file: discord.Attachment | None = None,
    ) -> None:
        guild_id = self.guild_id(interaction)
        actor = self.actor(interaction)

        async def import_batch(reply_to: discord.Interaction, batch: SeedBatch) -> None:
            created = await self.services.tournaments.import_seeds(
                guild_id, tournament.id, actor, batch, default_pool_id=pool.id if pool else None
            )
            names = {p.id: p.name for p in await self.services.tournaments.list_pools(guild_id, tournament.id)}
            per_pool = Counter(names[seed.pool_id] for seed in created)
            spread = ", ".join(f"{safe(name, 40)}: {count}" for name, count in per_pool.items())
            await respond(reply_to, f"Imported {len(created)} seed{'s' if len(created) != 1 else ''} ({spread}).")

        if file is None:
            if pool is None:
                raise ValidationFailed("attach a CSV file, or pick the pool to paste URLs into", field="file")
            await interaction.response.send_modal(SeedListModal(pool.name, import_batch))
            return
        if file.size > MAX_IMPORT_BYTES:
            raise ValidationFailed(f"the file is larger than {MAX_IMPORT_BYTES // 1024} KiB; split it", field="file")
        await think(interaction)
        text, problem = decode(await file.read())
        await import_batch(interaction, parse_csv(text) if text is not None else SeedBatch(errors=[problem]))

    @seed.command(name="list", description="The seeds of a pool (moderators only: seeds are secret until raced)")
    @moderator_only()
    async def seed_list(
        self,
        interaction: discord.Interaction,
        tournament: Transform[Tournament, TournamentOption],
        pool: Transform[Pool, PoolOption],
    ) -> None:
        guild_id = self.guild_id(interaction)
        seeds = await self.services.tournaments.list_seeds(guild_id, tournament.id, pool.id)
        lines = []
        for seed in seeds:
            par = f" · par {seed.par_time:.0f} s" if seed.par_time else ""
            used = " · raced" if seed.used_in_live_race else ""
            notes = f" — {safe(seed.notes, 80)}" if seed.notes else ""
            lines.append(f"`#{seed.id}` <{shorten(seed.url, 200)}>{par}{used}{notes}")
        embeds = pages(f"Seeds — {shorten(pool.name, 200)}", lines, empty="No seeds yet (`/seed add`).")
        await Paginator(interaction.user.id, embeds).start(interaction)

    @seed.command(name="remove", description="Remove a seed that nobody has raced")
    @moderator_only()
    async def seed_remove(
        self,
        interaction: discord.Interaction,
        tournament: Transform[Tournament, TournamentOption],
        pool: Transform[Pool, PoolOption],
        seed: Transform[Seed, SeedOption],
    ) -> None:
        guild_id = self.guild_id(interaction)
        actor = self.actor(interaction)

        async def remove(_click: discord.Interaction) -> str:
            await self.services.tournaments.remove_seed(guild_id, tournament.id, pool.id, seed.id, actor)
            return f"Removed seed #{seed.id} from pool **{safe(pool.name)}**."

        await ConfirmView(interaction.user.id, remove, confirm_label="Remove seed").ask(
            interaction, f"Remove seed #{seed.id} (<{seed.url}>) from pool **{safe(pool.name)}**?"
        )

    # ---- /roomprofile ------------------------------------------------------------------------------------------------
    @roomprofile.command(name="create", description="Create named room settings (unset fields inherit)")
    @app_commands.describe(name="Unique name in this server")
    @moderator_only()
    @room_setting_options()
    async def roomprofile_create(self, interaction: discord.Interaction, name: str, *, room: RoomValues) -> None:
        profile = await self.services.room_profiles.create(
            self.guild_id(interaction), self.actor(interaction), name=name, **room
        )
        await respond(interaction, f"Created room profile:\n{profile_line(profile)}")

    @roomprofile.command(name="edit", description="Change room settings of a profile")
    @app_commands.describe(profile="The profile", name="New name")
    @moderator_only()
    @room_setting_options()
    async def roomprofile_edit(
        self,
        interaction: discord.Interaction,
        profile: Transform[RoomProfile, RoomProfileOption],
        name: str | None = None,
        *,
        room: RoomValues,
    ) -> None:
        changes = options.given(name=name) | room
        if not changes:
            await respond(interaction, "Nothing to change: fill in at least one setting besides the profile.")
            return
        updated = await self.services.room_profiles.update(
            self.guild_id(interaction), profile.id, self.actor(interaction), **changes
        )
        await respond(interaction, f"Updated room profile:\n{profile_line(updated)}")

    @roomprofile.command(name="list", description="The room profiles of this server")
    @moderator_only()
    async def roomprofile_list(self, interaction: discord.Interaction) -> None:
        profiles = await self.services.room_profiles.list(self.guild_id(interaction))
        embeds = pages(
            "Room profiles",
            [profile_line(profile) for profile in profiles],
            empty="No room profiles yet (`/roomprofile create`). Races use the built-in settings.",
            per_page=8,
        )
        await Paginator(interaction.user.id, embeds).start(interaction)

    @roomprofile.command(name="delete", description="Delete a room profile (tournaments using it fall back)")
    @moderator_only()
    async def roomprofile_delete(
        self, interaction: discord.Interaction, profile: Transform[RoomProfile, RoomProfileOption]
    ) -> None:
        guild_id = self.guild_id(interaction)
        actor = self.actor(interaction)

        async def delete(_click: discord.Interaction) -> str:
            await self.services.room_profiles.delete(guild_id, profile.id, actor)
            return f"Deleted room profile **{safe(profile.name)}**."

        await ConfirmView(interaction.user.id, delete, confirm_label="Delete profile").ask(
            interaction,
            f"Delete room profile **{safe(profile.name)}**? Tournaments and the server default that use it "
            "go back to inheriting.",
        )


async def setup(bot) -> None:
    await bot.add_cog(TournamentCog(bot))
    bot.tree.add_command(startline_profile)


async def teardown(bot) -> None:
    bot.tree.remove_command(startline_profile.name, type=startline_profile.type)
