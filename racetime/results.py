"""Map a RaceTime.gg race to per-entrant results (pure functions, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from racetime.models import Entrant, Race

# Statuses of joined entrants. The others (invited, requested, declined, partitioned) are people who
# are not, or no longer, in this race.
_JOINED = frozenset({"done", "dnf", "dq", "in_progress", "ready", "not_ready"})


@dataclass(frozen=True)
class EntrantResult:
    racetime_id: str
    racetime_name: str  # the user's name without discriminator, e.g. "Alice"
    status: str  # "finished" | "forfeit" | "disqualified" | "in_progress" | "not_started"
    elapsed: timedelta | None  # exactly RaceTime.gg's finish_time (microseconds kept)
    place: int | None
    finished_at: datetime | None


def race_has_started(race: Race) -> bool:
    """Whether the race clock ever ran.

    ``started_at`` alone is not enough: it is set, in the future, as soon as the countdown begins.
    """
    if race.status in ("in_progress", "finished"):
        return True
    if race.status == "cancelled":
        return race.started_at is not None and race.cancelled_at is not None and race.started_at <= race.cancelled_at
    return False


def _entrant_result(entrant: Entrant, started: bool) -> EntrantResult:
    assert entrant.user is not None
    status = entrant.status
    elapsed = place = finished_at = None
    if status == "done":
        result = "finished"
        elapsed, place, finished_at = entrant.finish_time, entrant.place, entrant.finished_at
    elif status == "dnf":
        result = "forfeit"
    elif status == "dq":
        # RaceTime.gg keeps finish_time when a finisher is disqualified; it is not a result.
        result = "disqualified"
    else:
        # A cancelled race shows the entrants who were still running as "ready" again.
        result = "in_progress" if started else "not_started"
    return EntrantResult(
        racetime_id=entrant.user.id,
        racetime_name=entrant.user.name,
        status=result,
        elapsed=elapsed,
        place=place,
        finished_at=finished_at,
    )


def _joined(race: Race) -> list[Entrant]:
    return [e for e in race.entrants if e.user is not None and e.status in _JOINED]


def entrant_results(race: Race) -> list[EntrantResult]:
    """Results of the joined entrants, in RaceTime.gg's order (finishers by place first).

    Invited, requested, declined and partitioned entrants are not participants and are left out,
    as are entrants whose account was deleted (``user`` is null).
    """
    started = race_has_started(race)
    return [_entrant_result(e, started) for e in _joined(race)]


def participants_at_start(race: Race) -> list[EntrantResult]:
    """The entrants who were in the race when it started; empty while the room is still preparing.

    Once the countdown begins RaceTime.gg removes everyone not ready and nobody can join any more,
    so every joined entrant of a pending, running or finished race (or of a race cancelled after
    its countdown began) took part.
    """
    if race.status in ("open", "invitational", "partitioned"):
        return []
    if race.status == "cancelled" and race.started_at is None:
        return []
    return entrant_results(race)
