"""Race templates, recurring series, batch creation, tournament phases and seasons (issue 15)."""

from __future__ import annotations

from typing import Any

from bot.api.live_races import RACES, live_race_out
from bot.api.pages import items_page, page_of
from bot.api.registry import ApiCall, Reply, RouteTable
from bot.api.runs import leaderboard_out
from bot.api.schemas import (
    BatchCreate,
    BatchOut,
    BatchPlanned,
    ItemsPage,
    LeaderboardOut,
    LiveRaceOut,
    OccurrenceOut,
    PageQuery,
    PhaseClose,
    PhaseCreate,
    PhaseOut,
    PhaseUpdate,
    Ref,
    SeasonCreate,
    SeasonEntryOut,
    SeasonLeaderboardOut,
    SeasonOut,
    SeasonUpdate,
    SeriesCreate,
    SeriesMove,
    SeriesOut,
    SeriesSkip,
    SeriesUpdate,
    StandingOut,
    StandingsOut,
    TemplateCreate,
    TemplateOut,
    TemplateRaceCreate,
    TemplateUpdate,
)
from bot.services.phases import PhaseView, StandingView
from bot.services.seasons import SeasonView
from bot.services.series import SeriesView
from db.models import RaceTemplate

TOURNAMENT = "/api/v1/tournaments/{tid}"
TEMPLATES = TOURNAMENT + "/templates"
TEMPLATE = TEMPLATES + "/{template_id}"
SERIES = TOURNAMENT + "/series"
ONE_SERIES = SERIES + "/{series_id}"
PHASES = TOURNAMENT + "/phases"
PHASE = PHASES + "/{phase_id}"
SEASONS = "/api/v1/seasons"
SEASON = SEASONS + "/{season_id}"

routes = RouteTable()
template_routes = routes.section("templates")
series_routes = routes.section("series")
batch_routes = routes.section("batches")
phase_routes = routes.section("phases")
season_routes = routes.section("seasons")


def template_out(template: RaceTemplate) -> TemplateOut:
    return TemplateOut(
        id=template.id,
        tournament_id=template.tournament_id,
        name=template.name,
        pool_ids=list(template.pool_ids),
        title_pattern=template.title_pattern,
        start_time=template.start_time,
        timezone=template.timezone,
        room_profile_id=template.room_profile_id,
        room=dict(template.room_settings or {}),
        room_open_lead_minutes=template.room_open_lead_minutes,
        announcement_channel_id=template.announcement_channel_id,
        announcement_role_id=template.announcement_role_id,
        created_at=template.created_at,
        updated_at=template.updated_at,
    )


def series_out(view: SeriesView) -> SeriesOut:
    series = view.series
    return SeriesOut(
        id=series.id,
        tournament_id=series.tournament_id,
        name=series.name,
        template=template_out(view.template),
        rrule=series.rrule,
        timezone=series.timezone,
        starts_on=series.starts_on.isoformat(),
        until=series.until,
        count=series.count,
        status=series.status.value,
        status_reason=series.status_reason,
        next_occurrences=[
            OccurrenceOut(number=o.number, date=o.local_date.isoformat(), starts_at=o.starts_at)
            for o in view.next_occurrences
        ],
        created_by=series.created_by,
        created_at=series.created_at,
        updated_at=series.updated_at,
    )


def phase_out(view: PhaseView) -> PhaseOut:
    phase = view.phase
    return PhaseOut(
        id=phase.id,
        tournament_id=phase.tournament_id,
        name=phase.name,
        position=phase.position,
        status=phase.status.value,
        advance_count=phase.advance_count,
        pools=[Ref(id=pool.id, name=pool.name) for pool in view.pools],
        closed_at=phase.closed_at,
    )


def standings_out(phase_id: int, standings: list[StandingView]) -> StandingsOut:
    return StandingsOut(
        phase_id=phase_id,
        standings=[
            StandingOut(
                discord_user_id=s.discord_user_id,
                display_name=s.display_name,
                rank=s.rank,
                score=s.score,
                advanced=s.advanced,
            )
            for s in standings
        ],
    )


def season_out(view: SeasonView) -> SeasonOut:
    season = view.season
    return SeasonOut(
        id=season.id,
        name=season.name,
        description=season.description,
        rule=season.rule.value,
        best_of=season.best_of,
        tournaments=[Ref(id=t.id, name=t.name) for t in view.tournaments],
        created_at=season.created_at,
        updated_at=season.updated_at,
    )


def _template_fields(body: Any) -> dict[str, Any]:
    fields = body.model_dump(exclude_unset=True, exclude={"room"})
    if "room" in body.model_fields_set:
        fields["room"] = None if body.room is None else body.room.model_dump(exclude_none=True)
    return fields


# ---- templates ------------------------------------------------------------------------------------------


@template_routes.page(TEMPLATES, "List a tournament's race templates", TemplateOut)
async def list_templates(call: ApiCall) -> ItemsPage[TemplateOut]:
    templates = await call.services.templates.list(call.guild_id, call.path["tid"])
    return items_page(ItemsPage[TemplateOut], page_of(templates, call.query, lambda t: t.id), template_out)


@template_routes.create(TEMPLATES, "Create a race template", TemplateCreate, TemplateOut)
async def create_template(call: ApiCall) -> Reply:
    tid = call.path["tid"]
    template = await call.services.templates.create(call.guild_id, tid, call.actor, **_template_fields(call.body))
    return Reply(template_out(template), 201, f"/api/v1/tournaments/{tid}/templates/{template.id}")


@template_routes.read(TEMPLATE, "Get a race template", TemplateOut)
async def get_template(call: ApiCall) -> TemplateOut:
    return template_out(await call.services.templates.get(call.guild_id, call.path["tid"], call.path["template_id"]))


@template_routes.update(
    TEMPLATE,
    "Change a race template",
    TemplateUpdate,
    TemplateOut,
    description="Series made from it follow at once: their future races made by the rule take the new time, title, "
    "pool, lead time, announcement channel and role.",
)
async def update_template(call: ApiCall) -> TemplateOut:
    template = await call.services.templates.update(
        call.guild_id, call.path["tid"], call.path["template_id"], call.actor, **_template_fields(call.body)
    )
    return template_out(template)


@template_routes.delete(
    TEMPLATE, "Delete a race template", errors=(409,), description="Refused (409) while a series uses it."
)
async def delete_template(call: ApiCall) -> None:
    await call.services.templates.delete(call.guild_id, call.path["tid"], call.path["template_id"], call.actor)


@template_routes.create(
    TEMPLATE + "/races",
    "Schedule a live race from a template",
    TemplateRaceCreate,
    LiveRaceOut,
    description="`when` is a date (the race starts at the template's local time in its time zone) or an instant.",
)
async def create_race_from_template(call: ApiCall) -> Reply:
    tid = call.path["tid"]
    fields = call.body.model_dump(exclude_unset=True)
    when = fields.pop("when")
    view = await call.services.templates.create_race(
        call.guild_id, tid, call.path["template_id"], call.actor, when=when, **fields
    )
    return Reply(live_race_out(view, can_manage=True), 201, f"{RACES.format(tid=tid)}/{view.race.id}")


# ---- series ---------------------------------------------------------------------------------------------


@series_routes.page(SERIES, "List a tournament's race series", SeriesOut)
async def list_series(call: ApiCall) -> ItemsPage[SeriesOut]:
    q: PageQuery = call.query
    page = await call.services.series.list(call.guild_id, call.path["tid"], limit=q.limit, cursor=q.cursor)
    return items_page(ItemsPage[SeriesOut], page, series_out)


@series_routes.create(
    SERIES,
    "Create a recurring race series",
    SeriesCreate,
    SeriesOut,
    description="A template (`template_id`, or `template` fields) plus an iCalendar RRULE in a time zone. Refused "
    "(422) when the rule does not parse, never occurs, repeats more often than `series.min_interval_minutes`, or "
    "puts the start time in a daylight-saving gap. The occurrences of the next `series.window_days` are created "
    "at once.",
)
async def create_series(call: ApiCall) -> Reply:
    body: SeriesCreate = call.body
    fields = body.model_dump(exclude_unset=True, exclude={"template"})
    if body.template is not None:
        fields["template"] = _template_fields(body.template)
    tid = call.path["tid"]
    view = await call.services.series.create(call.guild_id, tid, call.actor, **fields)
    return Reply(series_out(view), 201, f"/api/v1/tournaments/{tid}/series/{view.series.id}")


@series_routes.read(ONE_SERIES, "Get a race series", SeriesOut)
async def get_series(call: ApiCall) -> SeriesOut:
    return series_out(await call.services.series.get(call.guild_id, call.path["tid"], call.path["series_id"]))


@series_routes.update(
    ONE_SERIES,
    "Change a series and its future occurrences",
    SeriesUpdate,
    SeriesOut,
    description="`status` pauses or resumes it. A new rule, zone, start, end or template changes every future "
    "occurrence not moved by hand; occurrences the rule no longer has are cancelled.",
)
async def update_series(call: ApiCall) -> SeriesOut:
    view = await call.services.series.update(
        call.guild_id, call.path["tid"], call.path["series_id"], call.actor, **call.body.model_dump(exclude_unset=True)
    )
    return series_out(view)


@series_routes.delete(
    ONE_SERIES,
    "Delete a series",
    description="Its future scheduled occurrences are cancelled (players are told); past races stay.",
)
async def delete_series(call: ApiCall) -> None:
    await call.services.series.delete(call.guild_id, call.path["tid"], call.path["series_id"], call.actor)


@series_routes.manage(
    "POST",
    ONE_SERIES + "/skip",
    "Skip one occurrence",
    body=SeriesSkip,
    response=SeriesOut,
    errors=(409,),
    description="`date` is the occurrence's local date; its race, if made, is cancelled, and it is never made again.",
)
async def skip_occurrence(call: ApiCall) -> SeriesOut:
    view = await call.services.series.skip(
        call.guild_id, call.path["tid"], call.path["series_id"], call.actor, day=call.body.date
    )
    return series_out(view)


@series_routes.manage(
    "POST",
    ONE_SERIES + "/move",
    "Move one occurrence",
    body=SeriesMove,
    response=SeriesOut,
    errors=(409,),
    description="The occurrence of `date` starts at `to` instead (made now if the job has not made it yet).",
)
async def move_occurrence(call: ApiCall) -> SeriesOut:
    body: SeriesMove = call.body
    view = await call.services.series.move(
        call.guild_id, call.path["tid"], call.path["series_id"], call.actor, day=body.date, to=body.to
    )
    return series_out(view)


# ---- batch ----------------------------------------------------------------------------------------------


@batch_routes.create(
    RACES + "/batch",
    "Schedule many live races at once",
    BatchCreate,
    BatchOut,
    description="All or nothing: every race is checked first; any error answers 422 with `details.errors` "
    "(`line` from 1, `field`, `message`) for every line, and nothing is created. `dry_run` answers 200 with the "
    "races that would be created.",
)
async def create_batch(call: ApiCall) -> Reply:
    body: BatchCreate = call.body
    items = [race.model_dump(exclude_unset=True, exclude={"room"}) for race in body.races]
    for item, race in zip(items, body.races, strict=True):
        if race.room is not None:
            item["room"] = race.room.model_dump(exclude_none=True)
    result = await call.services.batch.create(call.guild_id, call.path["tid"], call.actor, items, dry_run=body.dry_run)
    out = BatchOut(
        dry_run=result.dry_run,
        planned=[
            BatchPlanned(
                line=p.line,
                pool=Ref(id=p.pool.id, name=p.pool.name),
                scheduled_at=p.scheduled_at,
                title=p.title,
                seed_id=p.seed_id,
                episode_id=p.episode_id,
                room_profile_id=p.room_profile_id,
            )
            for p in result.planned
        ],
        created=[live_race_out(view, can_manage=True) for view in result.created],
    )
    return Reply(out, 200 if result.dry_run else 201)


# ---- phases ---------------------------------------------------------------------------------------------


@phase_routes.page(PHASES, "List a tournament's phases", PhaseOut)
async def list_phases(call: ApiCall) -> ItemsPage[PhaseOut]:
    phases = await call.services.phases.list(call.guild_id, call.path["tid"])
    return items_page(ItemsPage[PhaseOut], page_of(phases, call.query, lambda v: v.phase.id), phase_out)


@phase_routes.create(
    PHASES,
    "Add a phase after the last one",
    PhaseCreate,
    PhaseOut,
    description="`pool_ids` become this phase's pools (a pool belongs to one phase).",
)
async def create_phase(call: ApiCall) -> Reply:
    tid = call.path["tid"]
    view = await call.services.phases.create(call.guild_id, tid, call.actor, **call.body.model_dump())
    return Reply(phase_out(view), 201, f"/api/v1/tournaments/{tid}/phases/{view.phase.id}")


@phase_routes.read(PHASE, "Get a phase", PhaseOut)
async def get_phase(call: ApiCall) -> PhaseOut:
    return phase_out(await call.services.phases.get(call.guild_id, call.path["tid"], call.path["phase_id"]))


@phase_routes.update(PHASE, "Change a phase", PhaseUpdate, PhaseOut)
async def update_phase(call: ApiCall) -> PhaseOut:
    view = await call.services.phases.update(
        call.guild_id, call.path["tid"], call.path["phase_id"], call.actor, **call.body.model_dump(exclude_unset=True)
    )
    return phase_out(view)


@phase_routes.delete(PHASE, "Delete an open phase", errors=(409,))
async def delete_phase(call: ApiCall) -> None:
    await call.services.phases.delete(call.guild_id, call.path["tid"], call.path["phase_id"], call.actor)


@phase_routes.manage(
    "POST",
    PHASE + "/close",
    "Close a phase and advance players",
    body=PhaseClose,
    response=StandingsOut,
    errors=(409,),
    description="Freezes the phase's standings and advances its top `top` (default `advance_count`; players tied "
    "at the cut all advance) or exactly `players`. Only advanced players are eligible for the next phase's races. "
    "Closing a closed phase is refused (409) and changes nothing.",
)
async def close_phase(call: ApiCall) -> StandingsOut:
    body: PhaseClose = call.body
    standings = await call.services.phases.close(
        call.guild_id,
        call.path["tid"],
        call.path["phase_id"],
        call.actor,
        top=body.top,
        advance_discord_user_ids=body.players,
    )
    return standings_out(call.path["phase_id"], standings)


@phase_routes.read(PHASE + "/standings", "A closed phase's standings", StandingsOut, errors=(409,))
async def phase_standings(call: ApiCall) -> StandingsOut:
    standings = await call.services.phases.standings(call.guild_id, call.path["tid"], call.path["phase_id"])
    return standings_out(call.path["phase_id"], standings)


@phase_routes.read(PHASE + "/leaderboard", "A phase's leaderboard", LeaderboardOut)
async def phase_leaderboard(call: ApiCall) -> LeaderboardOut:
    board = await call.services.phases.leaderboard(call.guild_id, call.path["tid"], call.path["phase_id"])
    return leaderboard_out(board)


# ---- seasons --------------------------------------------------------------------------------------------


@season_routes.page(SEASONS, "List seasons", SeasonOut)
async def list_seasons(call: ApiCall) -> ItemsPage[SeasonOut]:
    q: PageQuery = call.query
    page = await call.services.seasons.list(call.guild_id, limit=q.limit, cursor=q.cursor)
    return items_page(ItemsPage[SeasonOut], page, season_out)


@season_routes.create(SEASONS, "Create a season", SeasonCreate, SeasonOut)
async def create_season(call: ApiCall) -> Reply:
    view = await call.services.seasons.create(call.guild_id, call.actor, **call.body.model_dump())
    return Reply(season_out(view), 201, f"{SEASONS}/{view.season.id}")


@season_routes.read(SEASON, "Get a season", SeasonOut)
async def get_season(call: ApiCall) -> SeasonOut:
    return season_out(await call.services.seasons.get(call.guild_id, call.path["season_id"]))


@season_routes.update(
    SEASON,
    "Change a season",
    SeasonUpdate,
    SeasonOut,
    description="`tournament_ids` replaces the season's tournaments.",
)
async def update_season(call: ApiCall) -> SeasonOut:
    view = await call.services.seasons.update(
        call.guild_id, call.path["season_id"], call.actor, **call.body.model_dump(exclude_unset=True)
    )
    return season_out(view)


@season_routes.delete(SEASON, "Delete a season", description="Its tournaments and their results stay.")
async def delete_season(call: ApiCall) -> None:
    await call.services.seasons.delete(call.guild_id, call.path["season_id"], call.actor)


@season_routes.read(
    SEASON + "/leaderboard",
    "A season's leaderboard",
    SeasonLeaderboardOut,
    description="Tournament scores combined by the season's rule (`sum`, or the `best_of` best); ties as in a "
    "tournament leaderboard.",
)
async def season_leaderboard(call: ApiCall) -> SeasonLeaderboardOut:
    board = await call.services.seasons.leaderboard(call.guild_id, call.path["season_id"])
    return SeasonLeaderboardOut(
        season_id=board.season.id,
        rule=board.season.rule.value,
        best_of=board.season.best_of,
        tournaments=[Ref(id=t.id, name=t.name) for t in board.tournaments],
        entries=[
            SeasonEntryOut(
                rank=e.rank,
                discord_user_id=e.discord_user_id,
                display_name=e.display_name,
                score=e.score,
                tournament_scores={str(tid): score for tid, score in e.tournament_scores.items()},
                counted=list(e.counted),
            )
            for e in board.entries
        ],
    )
