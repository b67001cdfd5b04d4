"""Live races: the nine routes of the seed, plus record, results and the notification delivery log."""

from __future__ import annotations

from typing import Any

from bot.api.pages import items_page
from bot.api.registry import ApiCall, Reply, RouteTable
from bot.api.schemas import (
    CancelBody,
    Candidate,
    EligibilityOut,
    EntrantOut,
    Ineligible,
    ItemsPage,
    LiveRaceCreate,
    LiveRaceOut,
    LiveRaceQuery,
    LiveRaceUpdate,
    NotificationOut,
    NotificationQuery,
    RecordBody,
    ResentOut,
    ResultsOut,
    RsvpChange,
    RsvpList,
    RsvpOut,
    ScheduledQuery,
)
from bot.services.common import Page
from bot.services.live_race_views import LiveRaceListing, LiveRaceView, seed_is_public
from db.models import TokenScope

READ = TokenScope.READ
RACES = "/api/v1/tournaments/{tid}/live-races"
RACE = RACES + "/{rid}"

routes = RouteTable(tag="live races")


def live_race_data(view: LiveRaceView | LiveRaceListing, *, can_manage: bool) -> dict[str, Any]:
    """A race as plain data shaped like LiveRaceOut (lists encode it directly, see registry.encode_data).
    The seed stays hidden from read tokens until the room has opened."""
    race = view.race
    seed = view.seed
    show_seed = seed is not None and (can_manage or seed_is_public(race))
    pool = view.pool
    data: dict[str, Any] = {
        "id": race.id,
        "tournament_id": race.tournament_id,
        "pool": {"id": pool.id, "name": pool.name},
        "seed": {"id": seed.id, "url": seed.url} if show_seed else None,  # type: ignore[union-attr]
        "title": race.title,
        "episode_id": race.episode_id,
        "status": race.status,
        "scheduled_at": race.scheduled_at,
        "room_opens_at": view.room_opens_at,
        # the room's URL is stored absolute: the RaceTime.gg client resolves the room's path
        "racetime": {"slug": race.racetime_slug, "url": race.racetime_url, "status": race.racetime_status}
        if race.racetime_slug
        else None,
        "room_profile_id": race.room_profile_id,
        "room": dict(race.room_settings or {}),
        "room_opened_at": race.room_opened_at,
        "started_at": race.started_at,
        "ended_at": race.ended_at,
        "entrant_count": race.entrant_count,
        "participant_count": race.participant_count,
        "finisher_count": race.finisher_count,
        "cancel_reason": race.cancel_reason,
        "last_error": race.last_error,
        "created_by": race.created_by,
        "created_at": race.created_at,
        "updated_at": race.updated_at,
    }
    data["permalink"] = data["seed"]  # the old name, last as in LiveRaceOut (a computed field)
    return data


def live_race_out(view: LiveRaceView | LiveRaceListing, *, can_manage: bool) -> LiveRaceOut:
    return LiveRaceOut.model_validate(live_race_data(view, can_manage=can_manage))


def _races_page(call: ApiCall, page: Page[LiveRaceListing]) -> dict[str, Any]:
    """An ItemsPage[LiveRaceOut] as plain data: lists are the API's hot path."""
    can_manage = call.can_manage
    return {
        "items": [live_race_data(view, can_manage=can_manage) for view in page.items],
        "next_cursor": page.next_cursor,
    }


def _race(call: ApiCall, view: Any) -> LiveRaceOut:
    return live_race_out(view, can_manage=call.can_manage)


def _entrant_out(entrant: Any) -> EntrantOut:
    return EntrantOut(
        racetime_id=entrant.racetime_id,
        racetime_name=entrant.racetime_name,
        discord_user_id=entrant.discord_user_id,
        display_name=entrant.display_name,
        counted=entrant.counted,
        reason=entrant.reason,
        status=entrant.status,
        place=entrant.place,
        elapsed_seconds=None if entrant.elapsed_us is None else entrant.elapsed_us / 1_000_000,
        finished_at=entrant.finished_at,
        run_id=entrant.run_id,
        score=entrant.score,
    )


def _results_out(call: ApiCall, results: Any) -> ResultsOut:
    return ResultsOut(race=_race(call, results.view), entrants=[_entrant_out(e) for e in results.entrants])


def _room(body: LiveRaceCreate | LiveRaceUpdate) -> dict[str, Any] | None:
    return None if body.room is None else body.room.model_dump(exclude_none=True)


# ---- the seed's nine ------------------------------------------------------------------------------------


@routes.route(
    "GET",
    RACES,
    summary="List a tournament's live races",
    tag="live races",
    scope=READ,
    query=LiveRaceQuery,
    response=ItemsPage[LiveRaceOut],
)
async def list_live_races(call: ApiCall) -> dict[str, Any]:
    q: LiveRaceQuery = call.query
    page = await call.services.live_races.list(
        call.guild_id, tournament_id=call.path["tid"], statuses=q.status, limit=q.limit, cursor=q.cursor
    )
    return _races_page(call, page)


@routes.read(RACE, "Get a live race", LiveRaceOut)
async def get_live_race(call: ApiCall) -> LiveRaceOut:
    view = await call.services.live_races.get(call.guild_id, call.path["rid"], tournament_id=call.path["tid"])
    return _race(call, view)


@routes.create(
    RACES,
    "Schedule a live race",
    LiveRaceCreate,
    LiveRaceOut,
    description="`scheduled_at` must be in the future and carry an offset; the seed, if given, must be in the pool.",
)
async def create_live_race(call: ApiCall) -> Reply:
    body: LiveRaceCreate = call.body
    fields = body.model_dump(exclude_unset=True, exclude={"room"})
    tid = call.path["tid"]
    view = await call.services.live_races.create(call.guild_id, tid, call.actor, **fields, room=_room(body))
    return Reply(_race(call, view), 201, f"/api/v1/tournaments/{tid}/live-races/{view.race.id}")


@routes.read(RACE + "/eligible", "Who may race it, and why not", EligibilityOut)
async def live_race_eligibility(call: ApiCall) -> EligibilityOut:
    report = await call.services.live_races.eligibility(call.guild_id, call.path["rid"], tournament_id=call.path["tid"])
    return EligibilityOut(
        race_id=call.path["rid"],
        tournament_id=report.tournament_id,
        pool_id=report.pool_id,
        eligible=[Candidate.model_validate(c) for c in report.eligible],
        ineligible=[Ineligible(player=Candidate.model_validate(c), reason=r) for c, r in report.ineligible],
    )


@routes.manage(
    "POST",
    RACE + "/open",
    "Open the RaceTime.gg room now",
    response=LiveRaceOut,
    errors=(409, 422, 503),
    description="Only a `scheduled` race can open (409 otherwise, and when its pool has no seed left); 422 when "
    "RaceTime.gg refuses the room (its goal or settings); 503 when RaceTime.gg cannot be reached.",
)
async def open_live_race(call: ApiCall) -> LiveRaceOut:
    view = await call.services.live_races.open_now(
        call.guild_id, call.path["rid"], call.actor, tournament_id=call.path["tid"]
    )
    return _race(call, view)


@routes.update(
    RACE,
    "Change a live race",
    LiveRaceUpdate,
    LiveRaceOut,
    description="Every field while `scheduled`, only `title` while `room_open`, nothing afterwards (409). A new "
    "`scheduled_at` sends the rescheduled notice (420), collapsed with other moves within "
    "`notifications.reschedule_collapse_seconds`.",
)
async def update_live_race(call: ApiCall) -> LiveRaceOut:
    body: LiveRaceUpdate = call.body
    changes = body.model_dump(exclude_unset=True, exclude={"room"})
    if "room" in body.model_fields_set:
        changes["room"] = _room(body)
    view = await call.services.live_races.edit(
        call.guild_id, call.path["rid"], call.actor, tournament_id=call.path["tid"], **changes
    )
    return _race(call, view)


@routes.manage(
    "POST",
    RACE + "/cancel",
    "Cancel a live race",
    body=CancelBody,
    response=LiveRaceOut,
    errors=(409, 503),
    description="Allowed before `finished`; also cancels the RaceTime.gg room when one exists.",
)
async def cancel_live_race(call: ApiCall) -> LiveRaceOut:
    view = await call.services.live_races.cancel(
        call.guild_id, call.path["rid"], call.actor, reason=call.body.reason, tournament_id=call.path["tid"]
    )
    return _race(call, view)


@routes.delete(
    RACE,
    "Delete a live race",
    errors=(409,),
    description="Only `scheduled` or `cancelled` races; recorded runs are never deleted. Deleting a scheduled race "
    "players were told about sends them (and the announcement) the cancelled notice, *Removed by the moderators*.",
)
async def delete_live_race(call: ApiCall) -> None:
    await call.services.live_races.delete(call.guild_id, call.path["rid"], call.actor, tournament_id=call.path["tid"])


@routes.page("/api/v1/live-races/scheduled", "Upcoming live races of the guild", LiveRaceOut, ScheduledQuery)
async def list_scheduled_live_races(call: ApiCall) -> dict[str, Any]:
    q: ScheduledQuery = call.query
    page = await call.services.live_races.upcoming(
        call.guild_id, tournament_id=q.tournament_id, limit=q.limit, cursor=q.cursor
    )
    return _races_page(call, page)


# ---- results and notifications --------------------------------------------------------------------------


@routes.manage(
    "POST",
    RACE + "/record",
    "Record the results now",
    body=RecordBody,
    response=LiveRaceOut,
    errors=(409, 503),
    description="Re-reads the room on RaceTime.gg and records what it shows (the room must be over). "
    "`force` records a room still running as it stands, or reconciles a race already recorded. "
    "GET …/results then shows the entrants.",
)
async def record_live_race(call: ApiCall) -> LiveRaceOut:
    view = await call.services.live_races.record(
        call.guild_id, call.path["rid"], call.actor, force=call.body.force, tournament_id=call.path["tid"]
    )
    return _race(call, view)


@routes.read(RACE + "/results", "Results and entrants", ResultsOut)
async def live_race_results(call: ApiCall) -> ResultsOut:
    results = await call.services.live_races.results(call.guild_id, call.path["rid"], tournament_id=call.path["tid"])
    return _results_out(call, results)


@routes.manage(
    "GET",
    RACE + "/notifications",
    "Notification delivery log",
    description="`kind` is `dm`, `channel` (a post: the race's announcement, a room-open reply to it, a moderator "
    "alert) or `channel_edit` (an edit of the race's living announcement); `event_code` 420 is the rescheduled "
    "notice.",
    query=NotificationQuery,
    response=ItemsPage[NotificationOut],
)
async def live_race_notifications(call: ApiCall) -> ItemsPage[NotificationOut]:
    # The delivery log is keyed by race only; the lookup keeps the tournament in the path honest.
    await call.services.live_races.get(call.guild_id, call.path["rid"], tournament_id=call.path["tid"])
    q: NotificationQuery = call.query
    page = await call.services.notifications.delivery_log(
        call.guild_id, call.path["rid"], status=q.status, limit=q.limit, cursor=q.cursor
    )
    return items_page(ItemsPage[NotificationOut], page, _notification_out)


@routes.manage(
    "POST",
    RACE + "/notifications/resend",
    "Retry failed notifications",
    response=ResentOut,
    description="Queues the race's `failed` notifications again; those gone stale meanwhile (a room-open DM "
    "for a race that started, …) become `expired` instead.",
)
async def resend_live_race_notifications(call: ApiCall) -> ResentOut:
    await call.services.live_races.get(call.guild_id, call.path["rid"], tournament_id=call.path["tid"])
    report = await call.services.notifications.resend_failed(call.guild_id, call.path["rid"], call.actor)
    return ResentOut(requeued=report.requeued, expired=report.expired)


def _notification_out(notification: Any) -> NotificationOut:
    return NotificationOut(
        id=notification.id,
        kind=notification.kind,
        event_type=notification.event_type,
        event_code=notification.event_type.code if notification.event_type else None,
        player_id=notification.player_id,
        channel_id=notification.channel_id,
        status=notification.status,
        attempts=notification.attempts,
        next_attempt_at=notification.next_attempt_at,
        error=notification.error,
        created_at=notification.created_at,
        sent_at=notification.sent_at,
    )


# ---- RSVPs --------------------------------------------------------------------------------------------------


@routes.read(
    RACE + "/rsvps",
    "Who RSVP'd the race",
    RsvpList,
    description="Players who said they will race it, oldest first. They get its reminders and its rescheduled "
    "notice even without the type preference. `interested`: who pressed Interested on the race's Discord Scheduled "
    "Event; they get its reminders too, and its rescheduled and cancelled notices unless they turned those off.",
)
async def live_race_rsvps(call: ApiCall) -> RsvpList:
    await call.services.live_races.get(call.guild_id, call.path["rid"], tournament_id=call.path["tid"])
    rsvps = await call.services.reminders.rsvps(call.guild_id, call.path["rid"])
    interested = await call.services.reminders.interested(call.guild_id, call.path["rid"])
    return RsvpList(
        items=[RsvpOut(discord_user_id=str(uid), display_name=name) for uid, name in rsvps],
        interested=[RsvpOut(discord_user_id=str(uid), display_name=name) for uid, name in interested],
    )


@routes.manage(
    "PUT",
    RACE + "/rsvps/{discord_user_id}",
    "RSVP a player for the race",
    response=RsvpChange,
    description="Only while the race is `scheduled` (422 otherwise). Repeating it changes nothing.",
)
async def put_live_race_rsvp(call: ApiCall) -> RsvpChange:
    await call.services.live_races.get(call.guild_id, call.path["rid"], tournament_id=call.path["tid"])
    changed = await call.services.reminders.set_rsvp(
        call.guild_id, call.path["rid"], call.path["discord_user_id"], True
    )
    return RsvpChange(changed=changed)


@routes.manage("DELETE", RACE + "/rsvps/{discord_user_id}", "Take back a player's RSVP", response=RsvpChange)
async def delete_live_race_rsvp(call: ApiCall) -> RsvpChange:
    await call.services.live_races.get(call.guild_id, call.path["rid"], tournament_id=call.path["tid"])
    changed = await call.services.reminders.set_rsvp(
        call.guild_id, call.path["rid"], call.path["discord_user_id"], False
    )
    return RsvpChange(changed=changed)
