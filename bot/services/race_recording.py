"""Applying what a RaceTime.gg room shows to its live race: start, finish, cancel.

Every function runs in the caller's transaction and is idempotent: the live race's status says what has been
applied already, entrants are keyed by RaceTime.gg user id and runs by (live race, player), so applying the same
room twice changes nothing. Nothing goes backwards: a finished or cancelled race ignores the room, except for a
moderator's forced re-record of a finished race, which reconciles the results with the room.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.actors import Actor
from bot.events import EventBus, LiveRaceCancelled, LiveRaceEvent, LiveRaceFinished, LiveRaceStarted
from bot.services import audit
from bot.services.eligibility import race_eligibility
from bot.services.players import EFFECTIVE_RACETIME_ID, roster_entry_of
from bot.services.race_locks import lock_seed_of
from bot.services.room_opener import mark_seed_published
from bot.services.scoring import recompute_seed
from db.models import (
    GuildPlayer,
    LiveRace,
    LiveRaceEntrant,
    Player,
    Pool,
    RaceStatus,
    Run,
    RunStatus,
    Tournament,
)
from racetime.models import Race
from racetime.results import EntrantResult, entrant_results, participants_at_start, race_has_started

REASON_UNKNOWN_USER = "Not linked to a player of this server"
REASON_NOT_AT_START = "Was not in the race when it started"
REASON_RUN_REMOVED = "The race was cancelled before this run ended"
ROOM_CANCELLED_REASON = "The RaceTime.gg room was cancelled"
ROOM_PARTITIONED_REASON = "RaceTime.gg split the room into separate 1v1 races, which a live race cannot follow"

# RaceTime.gg statuses grouped by what they mean for a live race.
PRESTART_STATUSES = frozenset({"open", "invitational", "pending"})
DONE_STATUSES = frozenset({"finished", "cancelled", "partitioned"})

_FINAL_RUN_STATUS = {
    "finished": RunStatus.FINISHED,
    "forfeit": RunStatus.FORFEIT,
    "disqualified": RunStatus.DISQUALIFIED,
}


def room_phase(status: str | None) -> str | None:
    """`pending` counts as not started: RaceTime.gg sets `started_at` in the future while counting down."""
    if status is None:
        return None
    if status in PRESTART_STATUSES:
        return "prestart"
    return status


def elapsed_us(elapsed: timedelta | None) -> int | None:
    """Exact microseconds of a RaceTime.gg `finish_time` (integer arithmetic, no float rounding)."""
    return None if elapsed is None else elapsed // timedelta(microseconds=1)


def _count(race: LiveRace, entrants: Iterable[LiveRaceEntrant]) -> None:
    """`participant_count`: the players who got a run; `finisher_count`: those of them who finished.
    (`entrant_count`, everyone in the room at the start, is set once, at the start.)"""
    participants = [entrant for entrant in entrants if entrant.run_id is not None]
    race.participant_count = len(participants)
    race.finisher_count = sum(1 for entrant in participants if entrant.status == "finished")


@dataclass(frozen=True)
class FinalResult:
    status: str  # finished | forfeit | disqualified
    elapsed_us: int | None
    place: int | None
    finished_at: datetime | None


def final_result(result: EntrantResult | None) -> FinalResult:
    """An entrant's outcome once the race is over; anyone still running (or gone) when it ended forfeits."""
    if result is None or result.status not in _FINAL_RUN_STATUS:
        return FinalResult("forfeit", None, None, None)
    if result.status == "finished":
        return FinalResult("finished", elapsed_us(result.elapsed), result.place, result.finished_at)
    return FinalResult(result.status, None, None, None)


@dataclass
class RoomApplier:
    """Applies rooms to races for one actor (the poller, or a moderator recording by hand)."""

    session: AsyncSession
    events: EventBus
    actor: Actor
    now: datetime

    async def apply(
        self, race: LiveRace, tournament: Tournament, pool: Pool, room: Race, *, force: bool = False
    ) -> bool:
        """Bring `race` up to date with `room`; returns whether anything changed.

        `force` (a moderator's manual record) also records a room that is still running (entrants not done
        forfeit) and reconciles a race that was already recorded.
        """
        if race.status is RaceStatus.CANCELLED or (race.status is RaceStatus.FINISHED and not force):
            return False
        await lock_seed_of(self.session, race)
        changed = False
        over = room.status in DONE_STATUSES
        if race.status is RaceStatus.ROOM_OPEN and race_has_started(room):
            await self._start(race, tournament, pool, room, announce=not over)
            changed = True
        if room.status in ("cancelled", "partitioned") and race.status is not RaceStatus.FINISHED:
            # a partitioned room (1v1-ladder categories) is over for us too: left alone, the race would stay
            # open forever and the poller would fetch the room every cycle
            reason = ROOM_CANCELLED_REASON if room.status == "cancelled" else ROOM_PARTITIONED_REASON
            await self.cancel(race, room, reason=reason)
            changed = True
        elif race.status is RaceStatus.IN_PROGRESS and (room.status == "finished" or force):
            await self._finish(race, room)
            changed = True
        elif race.status is RaceStatus.FINISHED and force:
            changed = await self._reconcile_finished(race, room) or changed
        if race.racetime_status != room.status:
            race.racetime_status = room.status
            changed = True
        return changed

    # ---- start -----------------------------------------------------------------------------------------
    async def _start(self, race: LiveRace, tournament: Tournament, pool: Pool, room: Race, *, announce: bool) -> None:
        """Give a run to every eligible entrant present at the start; list the others with the reason."""
        if race.seed_id is None:  # the opener always sets it with the room; never guess a seed here
            raise RuntimeError(f"live race {race.id} has a room but no seed")
        participants = participants_at_start(room)
        counted = await self._add_entrants(race, tournament, pool, room, participants)
        race.status = RaceStatus.IN_PROGRESS
        race.started_at = room.started_at or self.now
        race.entrant_count = len(participants)
        _count(race, (await self._entrants(race)).values())
        await self._audit(
            race,
            "live_race.start",
            {
                "racetime_slug": race.racetime_slug,
                "started_at": race.started_at,
                "entrants": len(participants),
                "counted_player_ids": counted,
            },
        )
        if announce:
            await self._publish(LiveRaceStarted, race, participant_player_ids=tuple(counted))

    async def _add_entrants(
        self, race: LiveRace, tournament: Tournament, pool: Pool, room: Race, participants: list[EntrantResult]
    ) -> list[int]:
        existing = await self._entrants(race)
        new = [p for p in participants if p.racetime_id not in existing]
        players = await self._members_by_racetime_id(race.guild_id, [p.racetime_id for p in new])
        report = await race_eligibility(
            self.session, race, tournament, pool, player_ids=[player.id for player in players.values()]
        )
        for participant in new:
            player = players.get(participant.racetime_id)
            reason = REASON_UNKNOWN_USER if player is None else report.reason_for(player.id)
            entrant = LiveRaceEntrant(
                live_race_id=race.id,
                racetime_id=participant.racetime_id,
                racetime_name=participant.racetime_name[:100],
                player_id=player.id if player else None,
                counted=reason is None,
                reason=reason,
                status="in_progress",
            )
            if reason is None:
                assert player is not None
                run = Run(
                    tournament_id=race.tournament_id,
                    seed_id=race.seed_id,
                    player_id=player.id,
                    live_race_id=race.id,
                    status=RunStatus.IN_PROGRESS,
                    start_time=room.started_at or self.now,
                    source="live_race",
                )
                self.session.add(run)
                await self.session.flush()
                entrant.run_id = run.id
            self.session.add(entrant)
        await self.session.flush()
        return sorted(e.player_id for e in (await self._entrants(race)).values() if e.counted and e.player_id)

    # ---- finish ----------------------------------------------------------------------------------------
    async def _finish(self, race: LiveRace, room: Race) -> None:
        await self._write_results(race, room)
        race.status = RaceStatus.FINISHED
        race.ended_at = room.ended_at or self.now
        race.results_recorded_at = self.now
        await mark_seed_published(self.session, race.seed_id)
        await recompute_seed(self.session, race.seed_id)
        counted = await self._counted_player_ids(race)
        await self._audit(
            race,
            "live_race.finish",
            {
                "racetime_slug": race.racetime_slug,
                "racetime_status": room.status,
                "ended_at": race.ended_at,
                "finishers": race.finisher_count,
                "counted_player_ids": counted,
            },
        )
        await self._publish(LiveRaceFinished, race, participant_player_ids=tuple(counted))

    async def _write_results(self, race: LiveRace, room: Race) -> list[str]:
        """Set every entrant's and run's final result; returns the RaceTime ids whose result changed."""
        results = {result.racetime_id: result for result in entrant_results(room)}
        entrants = await self._entrants(race)
        for racetime_id, result in results.items():
            if racetime_id not in entrants:  # cannot join after the start; listed, never counted
                entrant = LiveRaceEntrant(
                    live_race_id=race.id,
                    racetime_id=racetime_id,
                    racetime_name=result.racetime_name[:100],
                    counted=False,
                    reason=REASON_NOT_AT_START,
                    status="in_progress",
                )
                self.session.add(entrant)
                entrants[racetime_id] = entrant
        runs = await self._runs(race)
        changed: list[str] = []
        for racetime_id, entrant in entrants.items():
            final = final_result(results.get(racetime_id))
            values = {
                "status": final.status,
                "place": final.place,
                "elapsed_us": final.elapsed_us,
                "finished_at": final.finished_at,
            }
            if any(getattr(entrant, key) != value for key, value in values.items()):
                changed.append(racetime_id)
                for key, value in values.items():
                    setattr(entrant, key, value)
            run = runs.get(entrant.run_id) if entrant.run_id else None
            if run is not None:
                run.status = _FINAL_RUN_STATUS[final.status]
                run.elapsed_us = final.elapsed_us
                run.place = final.place
                run.end_time = final.finished_at
        _count(race, entrants.values())
        await self.session.flush()
        return changed

    async def _reconcile_finished(self, race: LiveRace, room: Race) -> bool:
        """A forced re-record of a recorded race: results follow the room again (a late DQ, an undo)."""
        if room.status not in ("finished", "in_progress"):
            return False
        changed = await self._write_results(race, room)
        if not changed:
            return False
        await recompute_seed(self.session, race.seed_id)
        race.results_recorded_at = self.now
        await self._audit(race, "live_race.rerecord", {"changed_racetime_ids": changed})
        return True

    # ---- cancel ----------------------------------------------------------------------------------------
    async def cancel(self, race: LiveRace, room: Race | None, *, reason: str) -> None:
        """Cancel a race that has not finished.

        Runs of a started race stay (as forfeit or disqualified) only when the room says the entrant forfeited
        or was disqualified; every other run is removed, since a cancelled race is no result.
        """
        await lock_seed_of(self.session, race)
        previous = race.status
        results = {result.racetime_id: result for result in entrant_results(room)} if room is not None else {}
        counted = await self._counted_player_ids(race)
        kept_any = False
        runs = await self._runs(race)
        for entrant in (await self._entrants(race)).values():
            result = results.get(entrant.racetime_id)
            if result is not None and result.status in ("forfeit", "disqualified"):
                entrant.status = result.status
                if entrant.run_id in runs:
                    runs[entrant.run_id].status = _FINAL_RUN_STATUS[result.status]
                    kept_any = True
                continue
            entrant.status = "cancelled"
            run = runs.get(entrant.run_id) if entrant.run_id is not None else None
            if run is not None:
                entrant.run_id = None
                entrant.counted = False
                entrant.reason = REASON_RUN_REMOVED
                await self.session.flush()
                await self.session.delete(run)
        if kept_any and race.seed_id is not None:
            await recompute_seed(self.session, race.seed_id)
        _count(race, (await self._entrants(race)).values())
        race.status = RaceStatus.CANCELLED
        race.cancel_reason = reason
        race.open_claim_id = None
        if previous is not RaceStatus.SCHEDULED:
            race.ended_at = (room.cancelled_at if room is not None else None) or self.now
            await mark_seed_published(self.session, race.seed_id)
        await self._audit(
            race, "live_race.cancel", {"reason": reason, "previous_status": previous.value, "runs_kept": kept_any}
        )
        await self._publish(
            LiveRaceCancelled,
            race,
            reason=reason,
            previous_status=previous.value,
            participant_player_ids=tuple(counted),
        )

    # ---- what every change records: its audit entry and its event --------------------------------------
    async def _audit(self, race: LiveRace, action: str, details: dict[str, Any]) -> None:
        await audit.record(
            self.session,
            guild_id=race.guild_id,
            actor=self.actor,
            action=action,
            target_type="live_race",
            target_id=race.id,
            details=details,
        )

    async def _publish(self, event_type: type[LiveRaceEvent], race: LiveRace, **fields: Any) -> None:
        event = event_type(
            guild_id=race.guild_id,
            tournament_id=race.tournament_id,
            live_race_id=race.id,
            occurred_at=self.now,
            **fields,
        )
        await self.events.publish(self.session, event)

    # ---- lookups ---------------------------------------------------------------------------------------
    async def _entrants(self, race: LiveRace) -> dict[str, LiveRaceEntrant]:
        rows = await self.session.scalars(select(LiveRaceEntrant).where(LiveRaceEntrant.live_race_id == race.id))
        return {entrant.racetime_id: entrant for entrant in rows}

    async def _runs(self, race: LiveRace) -> dict[int, Run]:
        return {run.id: run for run in await self.session.scalars(select(Run).where(Run.live_race_id == race.id))}

    async def _counted_player_ids(self, race: LiveRace) -> list[int]:
        rows = await self.session.scalars(
            select(LiveRaceEntrant.player_id).where(
                LiveRaceEntrant.live_race_id == race.id,
                LiveRaceEntrant.counted.is_(True),
                LiveRaceEntrant.player_id.is_not(None),
            )
        )
        return sorted(rows)

    async def _members_by_racetime_id(self, guild_id: int, racetime_ids: list[str]) -> dict[str, Player]:
        """The guild's players with these RaceTime.gg accounts, by the link that counts in this guild: the player's
        verified link, else the guild's own. Players are global, but someone who only plays in another guild, or
        whom only another guild linked to the account, is an unknown user here: a guild's results never name
        another guild's players, and no other guild decides whose run an entrant becomes."""
        if not racetime_ids:
            return {}
        rows = await self.session.execute(
            select(Player, EFFECTIVE_RACETIME_ID)
            .join(GuildPlayer, roster_entry_of(guild_id))
            .where(or_(Player.racetime_id.in_(racetime_ids), GuildPlayer.racetime_id.in_(racetime_ids)))
        )
        wanted = set(racetime_ids)
        return {racetime_id: player for player, racetime_id in rows.all() if racetime_id in wanted}
