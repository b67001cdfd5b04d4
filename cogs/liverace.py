"""/liverace: scheduling, running and reading live races."""

from __future__ import annotations

from typing import Any, Literal

import discord
from discord import app_commands
from discord.app_commands import Transform

from bot.errors import ValidationFailed
from bot.services.batch import MAX_CSV_BYTES
from bot.services.live_race_views import LiveRaceView, seed_is_public
from cogs._common import options
from cogs._common.base import StartlineCog
from cogs._common.checks import admin_group, is_moderator, moderator_only, player_group
from cogs._common.formatting import (
    EMBED_COLOUR,
    pages,
    race_line,
    race_title,
    run_time,
    safe,
    shorten,
    status_label,
    ts,
    when_line,
)
from cogs._common.options import (
    DeletableRaceOption,
    EditableRaceOption,
    PoolOption,
    RaceNumberOption,
    RaceOption,
    RecordableRaceOption,
    RoomProfileOption,
    ScheduledRaceOption,
    SeedOption,
    StartOption,
    TemplateOption,
    TimezoneOption,
    TournamentOption,
    UnfinishedRaceOption,
    WhenOption,
)
from cogs._common.respond import respond, think
from cogs._common.room_options import RoomValues, room_setting_options
from cogs._common.timeparse import ReadDay, ReadTime
from cogs._common.views import Action, ConfirmView, Paginator
from cogs.buttons import rsvp_text
from db.models import SPECS_BY_NAME, LiveRace, Pool, RaceStatus, RaceTemplate, RoomProfile, Seed, Tournament

UPCOMING_LIMIT = 25  # each race's eligibility is computed for the caller; a page of races is plenty
LIST_LIMIT = 200
StatusFilter = Literal["active", "scheduled", "room_open", "in_progress", "finished", "cancelled"]
ACTIVE = (RaceStatus.SCHEDULED, RaceStatus.ROOM_OPEN, RaceStatus.IN_PROGRESS)


def _seed_visible(view, *, moderator: bool, public: bool) -> bool:
    """The seed stays secret until the room opens, except to moderators answered privately."""
    if view.seed is None:
        return False
    return seed_is_public(view.race) or (moderator and not public)


def _audit_details(details: dict[str, Any]) -> str:
    text = ", ".join(f"{key}={value}" for key, value in details.items() if key not in ("before",))
    return shorten(text, 150)


def _expired_details(details: dict[str, Any]) -> str:
    """`notification.expire`: what was not sent, and the race's state that made it stale."""
    kinds = ", ".join(
        f"{spec.label if (spec := SPECS_BY_NAME.get(name)) else name} ×{count}"
        for name, count in details.get("types", {}).items()
    )
    status = details.get("race_status")
    state = status_label(status) if status in {s.value for s in RaceStatus} else status  # or "deleted"
    return shorten(f"⌛ {details.get('expired', 0)} not sent, gone stale (race {state}): {kinds}", 150)


def _history_line(entry: Any) -> str:
    line = f"{ts(entry.created_at, 'f')} · **{entry.action}** by {safe(entry.actor_name, 40)}"
    if not entry.details:
        return line
    details = _expired_details if entry.action == "notification.expire" else _audit_details
    return f"{line}\n└ {safe(details(entry.details))}"


def resend_text(requeued: int, expired: int) -> str:
    """The answer to /liverace-admin resend."""
    if requeued == 0 and expired == 0:
        return "No failed notifications for this race: nothing to resend."
    parts = [f"Queued {requeued} failed notification{'s' if requeued != 1 else ''} again"] if requeued else []
    if expired:
        parts.append(f"{expired} had gone stale (the race moved on) and expired instead of being resent")
    return "; ".join(parts) + "."


async def _confirm(
    interaction: discord.Interaction,
    race: LiveRace,
    verb: str,
    action: Action,
    question_end: str,
) -> None:
    """Ask the moderator to confirm `verb` (Cancel, Delete) on a race, named with its status and start."""
    await ConfirmView(interaction.user.id, action, confirm_label=f"{verb} the race").ask(
        interaction,
        f"{verb} **{race_title(race)}** ({status_label(race.status)}, {ts(race.scheduled_at, 'f')}){question_end}",
    )


class LiveRaceCog(StartlineCog):
    liverace = player_group("liverace", "Live races: find them and look them up")
    liverace_admin = admin_group("liverace", "Live races: schedule and run them (moderators)")

    # ---- create / edit ---------------------------------------------------------------------------------------------
    @liverace_admin.command(name="batch", description="Schedule many live races from a CSV file, all or nothing")
    @app_commands.describe(
        file="CSV: a header line (pool,scheduled_at and optionally title,seed,episode_id,room_profile), a race a line",
        dry_run="Only check the file and show what would be scheduled",
        timezone="Timezone of times without an offset (default: the server's)",
    )
    @moderator_only()
    async def batch(
        self,
        interaction: discord.Interaction,
        tournament: Transform[Tournament, TournamentOption],
        file: discord.Attachment,
        dry_run: bool = False,
        timezone: Transform[str, TimezoneOption] | None = None,
    ) -> None:
        if file.size > MAX_CSV_BYTES:
            raise ValidationFailed(f"the file is larger than {MAX_CSV_BYTES // 1024} KiB; split it", field="file")
        await interaction.response.defer(ephemeral=True, thinking=True)
        guild_id = self.guild_id(interaction)
        zone = timezone or (await self.services.guilds.get(guild_id)).timezone
        try:
            text = (await file.read()).decode("utf-8")
        except UnicodeDecodeError:
            raise ValidationFailed("the file is not UTF-8 text; save the CSV as UTF-8", field="file") from None
        try:
            result = await self.services.batch.create_from_csv(
                guild_id, tournament.id, self.actor(interaction), text, timezone=zone, dry_run=dry_run
            )
        except ValidationFailed as refused:
            errors = refused.details.get("errors", [])
            lines = [f"line {e['line']} · {e['field']}: {e['message']}" for e in errors]
            await respond(interaction, shorten("\n".join([refused.message, *lines]), 1900))
            return
        what = "Would schedule" if dry_run else "Scheduled"
        lines = [
            f"line {p.line}: <t:{int(p.scheduled_at.timestamp())}:f> · {safe(p.title, 60)}" for p in result.planned
        ]
        await respond(interaction, shorten("\n".join([f"{what} {len(result.planned)} races:", *lines]), 1900))

    @liverace_admin.command(name="create", description="Schedule a live race (from a pool, or from a template)")
    @app_commands.describe(
        tournament="The tournament",
        when="Start: Friday 19:00, tomorrow 8pm, in 90 minutes, 2026-12-01 19:00; with a template a date alone",
        pool="The pool whose seed is raced (with a template: instead of the template's)",
        template="A race template of the tournament: it fills pool, title, room and start time (when: a date)",
        title="Title (default: tournament and pool)",
        seed="A specific seed of the pool (default: one nobody raced, chosen when the room opens)",
        episode="An external id (e.g. a restream episode); unique",
        room_profile="Room settings for this race",
        timezone="Time zone for `when` (default: yours from /timezone set, else the server's)",
    )
    @moderator_only()
    @room_setting_options(per_race=True)
    async def create(
        self,
        interaction: discord.Interaction,
        tournament: Transform[Tournament, TournamentOption],
        when: Transform[ReadTime | ReadDay, StartOption],
        pool: Transform[Pool, PoolOption] | None = None,
        template: Transform[RaceTemplate, TemplateOption] | None = None,
        title: str | None = None,
        seed: Transform[Seed, SeedOption] | None = None,
        episode: str | None = None,
        room_profile: Transform[RoomProfile, RoomProfileOption] | None = None,
        timezone: Transform[str, TimezoneOption] | None = None,  # read by `when`
        *,
        room: RoomValues,
    ) -> None:
        fields = {
            "title": title,
            "seed_id": seed.id if seed else None,
            "episode_id": episode,
            "room_profile_id": room_profile.id if room_profile else None,
            "room": room or None,
        }
        guild_id, actor = self.guild_id(interaction), self.actor(interaction)
        if template is not None:
            at = when.day if isinstance(when, ReadDay) else when.at
            view = await self.services.templates.create_race(
                guild_id, tournament.id, template.id, actor, when=at, pool_id=pool.id if pool else None, **fields
            )
        elif pool is None:
            raise ValidationFailed("pick the pool to race, or a template", field="pool")
        else:
            assert isinstance(when, ReadTime)  # a date alone is only read with a template
            view = await self.services.live_races.create(
                guild_id, tournament.id, actor, pool_id=pool.id, scheduled_at=when.at, **fields
            )
        await respond(
            interaction,
            f"Scheduled **{race_title(view.race)}** ({safe(view.tournament.name)} / {safe(view.pool.name)}): "
            f"starts {when_line(view.race.scheduled_at)}, the room opens {ts(view.room_opens_at, 'R')}.\n"
            f"Read `when` as {when.echo}.",
        )

    @liverace_admin.command(name="edit", description="Change a scheduled race (only the title once its room is open)")
    @app_commands.describe(
        race="The race",
        title="New title",
        when="New start (same formats as create)",
        timezone="Time zone for `when` (default: yours, else the server's)",
        pool="Another pool of the tournament",
        seed="A specific seed of the pool",
        episode="An external id; unique",
        room_profile="Room settings for this race",
    )
    @moderator_only()
    @room_setting_options(per_race=True)
    async def edit(
        self,
        interaction: discord.Interaction,
        race: Transform[LiveRaceView, EditableRaceOption],
        title: str | None = None,
        when: Transform[ReadTime, WhenOption] | None = None,
        timezone: Transform[str, TimezoneOption] | None = None,  # read by `when`
        pool: Transform[Pool, PoolOption] | None = None,
        seed: Transform[Seed, SeedOption] | None = None,
        episode: str | None = None,
        room_profile: Transform[RoomProfile, RoomProfileOption] | None = None,
        *,
        room: RoomValues,
    ) -> None:
        changes: dict[str, Any] = options.given(
            title=title,
            scheduled_at=when.at if when else None,
            pool_id=pool.id if pool else None,
            seed_id=seed.id if seed else None,
            episode_id=episode,
            room_profile_id=room_profile.id if room_profile else None,
        )
        if room:
            changes["room"] = {**(race.race.room_settings or {}), **room}
        if not changes:
            await respond(interaction, "Nothing to change: fill in at least one option besides the race.")
            return
        view = await self.services.live_races.edit(
            self.guild_id(interaction), race.race.id, self.actor(interaction), **changes
        )
        moved = int(view.race.scheduled_at.timestamp()) // 60 != int(race.race.scheduled_at.timestamp()) // 60
        await respond(
            interaction,
            f"Updated **{race_title(view.race)}** ({', '.join(sorted(changes))}). "
            f"Starts {when_line(view.race.scheduled_at)}."
            + (" Players who follow it are told of the new start." if moved else "")
            + (f"\nRead `when` as {when.echo}." if when else ""),
        )

    # ---- cancel / delete ---------------------------------------------------------------------------------------------
    @liverace_admin.command(name="cancel", description="Cancel a race (and its RaceTime.gg room)")
    @app_commands.describe(race="The race", reason="Told to the players")
    @moderator_only()
    async def cancel(
        self, interaction: discord.Interaction, race: Transform[LiveRaceView, UnfinishedRaceOption], reason: str
    ) -> None:
        guild_id = self.guild_id(interaction)
        view = race
        actor = self.actor(interaction)

        async def do_cancel(_click: discord.Interaction) -> str:
            cancelled = await self.services.live_races.cancel(guild_id, view.race.id, actor, reason=reason)
            done = f"Cancelled **{race_title(cancelled.race)}**. Players who follow it are told why."
            if cancelled.race.last_error:  # the race is cancelled here, but its room may still be open
                done += f"\n⚠️ {safe(cancelled.race.last_error, 300)}"
            return done

        room = " and close its RaceTime.gg room" if view.race.racetime_url else ""
        await _confirm(interaction, view.race, "Cancel", do_cancel, f"{room}?\nReason: {safe(reason, 300)}")

    @liverace_admin.command(name="delete", description="Delete a scheduled or cancelled race (recorded runs stay)")
    @moderator_only()
    async def delete(
        self, interaction: discord.Interaction, race: Transform[LiveRaceView, DeletableRaceOption]
    ) -> None:
        guild_id = self.guild_id(interaction)
        view = race
        actor = self.actor(interaction)

        async def do_delete(_click: discord.Interaction) -> str:
            told = await self.services.live_races.delete(guild_id, view.race.id, actor)
            notice = " Players who were told about it get the cancelled notice." if told else ""
            return f"Deleted **{race_title(view.race)}**.{notice}"

        await _confirm(interaction, view.race, "Delete", do_delete, "? This cannot be undone.")

    # ---- open / record / resend ----------------------------------------------------------------------------------
    @liverace_admin.command(name="open", description="Open the RaceTime.gg room now")
    @moderator_only()
    async def open(self, interaction: discord.Interaction, race: Transform[LiveRaceView, ScheduledRaceOption]) -> None:
        guild_id = self.guild_id(interaction)
        actor = self.actor(interaction)

        async def do_open(_click: discord.Interaction | None = None) -> str:
            view = await self.services.live_races.open_now(guild_id, race.race.id, actor)
            return f"Opened the room of **{race_title(view.race)}**: {view.race.racetime_url}"

        opens_at = race.room_opens_at
        if race.race.status is RaceStatus.SCHEDULED and self.services.live_races.clock() < opens_at:
            # Opening early publishes the seed early: ask first.
            await ConfirmView(interaction.user.id, do_open, confirm_label="Open it now").ask(
                interaction,
                f"The room of **{race_title(race.race)}** normally opens {ts(opens_at, 'R')} ({ts(opens_at, 'f')}). "
                "Opening it now shows its seed to everyone in the room that much earlier. Open it now?",
            )
            return
        await think(interaction)
        await respond(interaction, await do_open())

    @liverace_admin.command(name="record", description="Read the room and record the results now")
    @app_commands.describe(force="Record a room that is still running (unfinished entrants forfeit)")
    @moderator_only()
    async def record(
        self,
        interaction: discord.Interaction,
        race: Transform[LiveRaceView, RecordableRaceOption],
        force: bool = False,
    ) -> None:
        guild_id = self.guild_id(interaction)
        actor = self.actor(interaction)

        async def do_record(_click: discord.Interaction | None = None) -> str:
            view = await self.services.live_races.record(guild_id, race.race.id, actor, force=force)
            return (
                f"**{race_title(view.race)}** is {status_label(view.race.status)}: {view.race.finisher_count} of "
                f"{view.race.participant_count} participants finished. See `/liverace info`."
            )

        if force:
            await ConfirmView(interaction.user.id, do_record, confirm_label="Record with force").ask(
                interaction,
                f"Record **{race_title(race.race)}** with force? Results are taken from the room as it stands: "
                "entrants still running **forfeit** (score 0), and a race already recorded is reconciled with its "
                "room.",
            )
            return
        await think(interaction)
        await respond(interaction, await do_record())

    @liverace_admin.command(name="resend", description="Retry the notifications of a race that could not be delivered")
    @moderator_only()
    async def resend(self, interaction: discord.Interaction, race: Transform[LiveRaceView, RaceOption]) -> None:
        report = await self.services.notifications.resend_failed(
            self.guild_id(interaction), race.race.id, self.actor(interaction)
        )
        await respond(interaction, resend_text(report.requeued, report.expired))

    # ---- reading -----------------------------------------------------------------------------------------------------
    @liverace.command(name="list", description="Races of this server, newest first")
    @app_commands.describe(
        tournament="Only this tournament", status="Only races in this state", public="Post it in the channel"
    )
    async def list_races(
        self,
        interaction: discord.Interaction,
        tournament: Transform[Tournament, TournamentOption] | None = None,
        status: StatusFilter | None = None,
        public: bool = False,
    ) -> None:
        guild_id = self.guild_id(interaction)
        tournament_id = tournament.id if tournament else None
        statuses = None
        if status is not None:
            statuses = list(ACTIVE) if status == "active" else [RaceStatus(status)]
        page = await self.services.live_races.list(
            guild_id, tournament_id=tournament_id, statuses=statuses, limit=LIST_LIMIT
        )
        embeds = pages(
            "Live races",
            [race_line(view) for view in page.items],
            empty="No live races match. Moderators schedule them with `/liverace-admin create`.",
            footer=f"the newest {LIST_LIMIT}" if page.next_cursor else None,
        )
        await Paginator(interaction.user.id, embeds).start(interaction, ephemeral=not public)

    @liverace.command(name="upcoming", description="Races to come, and whether you may join each")
    @app_commands.describe(tournament="Only this tournament")
    async def upcoming(
        self,
        interaction: discord.Interaction,
        tournament: Transform[Tournament, TournamentOption] | None = None,
    ) -> None:
        guild_id = self.guild_id(interaction)
        tournament_id = tournament.id if tournament else None
        await think(interaction)
        page = await self.services.live_races.upcoming(guild_id, tournament_id=tournament_id, limit=UPCOMING_LIMIT)
        player = await self.services.players.get(guild_id, interaction.user.id)
        verdicts: dict[tuple[int, int, int | None], str | None] = {}
        lines = []
        for view in page.items:
            key = (view.tournament.id, view.pool.id, view.race.seed_id)  # same pool and seed, same answer
            if key not in verdicts:
                report = await self.services.live_races.eligibility(guild_id, view.race.id)
                verdicts[key] = report.reason_for(player.id)
            reason = verdicts[key]
            verdict = "✅ you may join" if reason is None else f"❌ {safe(reason)}"
            room = f" · [room]({view.race.racetime_url})" if view.race.racetime_url else ""
            lines.append(f"{race_line(view)}{room}\n└ {verdict}")
        embeds = pages(
            "Upcoming live races",
            lines,
            empty="No races are scheduled. `/notify` can tell you when one is.",
            per_page=5,
            footer=f"the next {UPCOMING_LIMIT}" if page.next_cursor else None,
        )
        await Paginator(interaction.user.id, embeds).start(interaction)

    @liverace.command(name="info", description="Everything about one race")
    @app_commands.describe(public="Post it in the channel (the seed then shows only once the room is open)")
    async def info(
        self, interaction: discord.Interaction, race: Transform[LiveRaceView, RaceOption], public: bool = False
    ) -> None:
        guild_id = self.guild_id(interaction)
        view = race
        moderator = await is_moderator(interaction)
        embed = discord.Embed(title=race_title(view.race), colour=EMBED_COLOUR)
        embed.description = status_label(view.race.status)
        if view.race.cancel_reason:
            embed.description += f"\nReason: {safe(view.race.cancel_reason, 500)}"
        if view.race.last_error and moderator and not public:
            # scheduled: why the room did not open; cancelled: why its RaceTime.gg room may still be open
            problem = "Opening the room failed: " if view.race.status is RaceStatus.SCHEDULED else ""
            embed.description += f"\n⚠️ {problem}{safe(view.race.last_error, 300)}"
        embed.add_field(name="Tournament / pool", value=f"{safe(view.tournament.name)} / {safe(view.pool.name)}")
        embed.add_field(name="Starts", value=when_line(view.race.scheduled_at), inline=False)
        if view.race.status is RaceStatus.SCHEDULED:
            embed.add_field(name="Room opens", value=when_line(view.room_opens_at), inline=False)
        if view.race.racetime_url:
            embed.add_field(name="Room", value=view.race.racetime_url, inline=False)
        if _seed_visible(view, moderator=moderator, public=public):
            embed.add_field(name="Seed", value=f"<{view.seed.url}>", inline=False)
        elif moderator and not public and view.race.status is RaceStatus.SCHEDULED:
            embed.add_field(name="Seed", value="chosen when the room opens (one nobody here has raced)", inline=False)
        if view.race.episode_id:
            embed.add_field(name="Episode", value=safe(view.race.episode_id))
        if view.race.status in (RaceStatus.IN_PROGRESS, RaceStatus.FINISHED) or view.race.participant_count:
            embed.add_field(
                name=f"Participants ({view.race.participant_count}, {view.race.finisher_count} finished)",
                value=await self._results_text(guild_id, view.race.id),
                inline=False,
            )
        rsvps = await self.services.reminders.rsvps(guild_id, view.race.id)
        if rsvps:
            names = ", ".join(safe(name or str(uid), 40) for uid, name in rsvps) if moderator and not public else ""
            embed.add_field(name=f"RSVPs ({len(rsvps)})", value=shorten(names, 1024) or "—", inline=False)
        interested = await self.services.reminders.interested(guild_id, view.race.id)
        if interested:  # pressed Interested on the race's Discord Scheduled Event: they get its reminders too
            names = _mentions([uid for uid, _ in interested], 1024) if moderator and not public else ""
            embed.add_field(
                name=f"Interested on Discord ({len(interested)})", value=shorten(names, 1024) or "—", inline=False
            )
        embed.set_footer(text=f"Tournament #{view.tournament.id} · pool #{view.pool.id}")
        await respond(interaction, embed=embed, ephemeral=not public)

    async def _results_text(self, guild_id: int, race_id: int) -> str:
        results = await self.services.live_races.results(guild_id, race_id)
        lines = []
        for entrant in results.entrants:
            who = safe(entrant.display_name or entrant.racetime_name, 40)
            if not entrant.counted:
                lines.append(f"· {who} — not counted: {safe(entrant.reason or 'not eligible', 80)}")
            elif entrant.place is not None:
                score = f" · {entrant.score:.1f}" if entrant.score is not None else ""
                lines.append(f"**{entrant.place}.** {who} — {run_time(entrant.elapsed_us)}{score}")
            else:
                lines.append(f"· {who} — {entrant.status}")
        return shorten("\n".join(lines), 1024) or "nobody yet"

    @liverace.command(name="rsvp", description="Say you will race it: you get its reminders and any change of start")
    @app_commands.describe(going="True: you will race it (the default); False: take your RSVP back")
    async def rsvp(
        self, interaction: discord.Interaction, race: Transform[LiveRaceView, RaceOption], going: bool = True
    ) -> None:
        outcome = await self.services.reminders.rsvp(
            self.guild_id(interaction),
            race.race.id,
            interaction.user.id,
            going,
            display_name=interaction.user.display_name,
        )
        await respond(interaction, rsvp_text(outcome))  # the announcement's RSVP buttons answer the same

    @liverace.command(name="eligible", description="Whether you may race it (moderators: everyone, with reasons)")
    async def eligible(self, interaction: discord.Interaction, race: Transform[LiveRaceView, RaceOption]) -> None:
        guild_id = self.guild_id(interaction)
        view = race
        report = await self.services.live_races.eligibility(guild_id, view.race.id)
        title = f"Eligibility — {race_title(view.race)}"
        counts = f"{len(report.eligible)} may race, {len(report.ineligible)} may not."
        if not await is_moderator(interaction):
            # Reasons are personal (an unfinished run, a seed already played): players see only their own.
            player = await self.services.players.get(guild_id, interaction.user.id)
            reason = report.reason_for(player.id)
            verdict = "✅ You may race it." if reason is None else f"❌ You may not race it: {safe(reason, 200)}."
            embed = discord.Embed(title=title, description=f"{verdict}\n\n{counts}", colour=EMBED_COLOUR)
            await respond(interaction, embed=embed)
            return
        lines = [f"✅ {safe(candidate.display_name, 60)}" for candidate in report.eligible]
        lines += [f"❌ {safe(candidate.display_name, 60)} — {safe(reason)}" for candidate, reason in report.ineligible]
        embeds = pages(
            title,
            lines,
            description=counts,
            empty="No players in this server yet: players appear once they use a Startline command.",
            per_page=15,
        )
        await Paginator(interaction.user.id, embeds).start(interaction)

    @liverace_admin.command(name="history", description="The audit trail of a race")
    @moderator_only()
    async def history(self, interaction: discord.Interaction, race: Transform[int, RaceNumberOption]) -> None:
        guild_id = self.guild_id(interaction)
        race_id = race  # a number, not a lookup: a deleted race keeps its history
        page = await self.services.audit.list(guild_id, target_type="live_race", target_id=race_id, limit=200)
        if not page.items:  # a deleted race keeps its history; an unknown one has none
            await self.services.live_races.get(guild_id, race_id)
        lines = [_history_line(entry) for entry in page.items]
        embeds = pages(f"History — race #{race_id}", lines, empty="No changes recorded.", per_page=8)
        await Paginator(interaction.user.id, embeds).start(interaction)


def _mentions(user_ids: list[int], limit: int) -> str:
    """Users as mentions (they render as names, and ping nobody in an embed), whole ones only, within `limit`."""
    text = ""
    for index, uid in enumerate(user_ids):
        more = f" … and {len(user_ids) - index} more"
        part = (", " if text else "") + f"<@{uid}>"
        if len(text) + len(part) + len(more) > limit:
            return text + more
        text += part
    return text


async def setup(bot) -> None:
    await bot.add_cog(LiveRaceCog(bot))
