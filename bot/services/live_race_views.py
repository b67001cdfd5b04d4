"""What the live race service hands to adapters, and the queries and cursors of its lists.

A single race comes as a `LiveRaceView` (ORM objects: the mutations work on them); a race of a list as a
`LiveRaceListing`, read from plain rows of one prebuilt select, since lists are read often and long.
"""

from __future__ import annotations

import base64
import binascii
import functools
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import Select, and_, bindparam, func, or_, select

from bot.errors import ValidationFailed
from db.models import GuildSettings, LiveRace, Pool, Seed, Tournament

# Order of entrants in results: finishers by place, then the others by how far they got.
ENTRANT_ORDER = {"finished": 0, "in_progress": 1, "forfeit": 2, "disqualified": 3, "cancelled": 4}


def seed_is_public(race: Any) -> bool:
    """A live race's seed is published with its room (a LiveRace or a listing row), or later when the room was
    opened with another seed policy (`seed_reveal`: before_start, at_start) until room presence shows it
    (`seed_revealed_at`): until then only moderators may see it, also once the race was cancelled."""
    if race.room_opened_at is None:
        return False
    return race.seed_reveal in (None, "at_open") or race.seed_revealed_at is not None


@dataclass(frozen=True)
class LiveRaceView:
    """What adapters render."""

    race: LiveRace
    tournament: Tournament
    pool: Pool
    seed: Seed | None
    room_opens_at: datetime  # scheduled_at - resolved lead minutes

    @property
    def lead_minutes(self) -> int:
        """Minutes between the room opening and the race's start."""
        return int((self.race.scheduled_at - self.room_opens_at).total_seconds() // 60)


class NameRef(NamedTuple):
    """A tournament or pool as a list names it."""

    id: int
    name: str


class SeedRef(NamedTuple):
    id: int
    url: str


class LiveRaceListing(NamedTuple):
    """One race of a list (list, upcoming, search): the race and the names around it.

    `race` is the live_races row itself (a read-only named tuple with the attributes of LiveRace's columns but the
    opener's `BOOKKEEPING`, from `Database.rows`), not an ORM object: lists are read often and long, and plain rows
    cost a fraction of whole ORM objects. A single race (`get` and the mutations) comes as a LiveRaceView. Named
    tuples throughout, since a page builds 50 of them (a frozen dataclass's `__init__` costs several times more).
    """

    race: Any
    tournament: NameRef
    pool: NameRef
    seed: SeedRef | None
    room_opens_at: datetime


@dataclass(frozen=True)
class EntrantView:
    racetime_id: str
    racetime_name: str
    player_id: int | None
    discord_user_id: int | None
    display_name: str | None
    counted: bool
    reason: str | None  # why not counted
    status: str
    place: int | None
    elapsed_us: int | None
    finished_at: datetime | None
    run_id: int | None
    score: float | None


@dataclass(frozen=True)
class RaceResults:
    view: LiveRaceView
    entrants: list[EntrantView]


def encode_race_cursor(scheduled_at: datetime, race_id: int) -> str:
    raw = f"ts:{scheduled_at.astimezone(UTC).isoformat()}|{race_id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_race_cursor(cursor: str | None) -> tuple[datetime, int] | None:
    """Keyset cursor over (scheduled_at, id); opaque to clients."""
    if cursor is None or cursor == "":
        return None
    try:
        raw = base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode()).decode()
        prefix, _, rest = raw.partition(":")
        stamp, _, race_id = rest.rpartition("|")
        if prefix != "ts":
            raise ValueError(raw)
        scheduled_at = datetime.fromisoformat(stamp)
        if scheduled_at.tzinfo is None:
            raise ValueError(raw)
        return scheduled_at, int(race_id)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ValidationFailed("cursor is not one this API returned", field="cursor") from None


live_races_table, _tournaments, _pools, _seeds = (model.__table__ for model in (LiveRace, Tournament, Pool, Seed))
# The room opener's and the recorder's bookkeeping: no list shows it, and a page of 50 reads it for nothing (seven
# columns, four of them times to parse: about a tenth of a page's server time).
BOOKKEEPING = frozenset(
    {
        "marker",
        "open_attempts",
        "next_open_attempt_at",
        "open_claim_id",
        "open_claimed_at",
        "room_search_after",
        "results_recorded_at",
    }
)
# Built once: a list request only adds its filters, order and limit.
LISTING = (
    select(
        *(column for column in live_races_table.c if column.key not in BOOKKEEPING),
        _tournaments.c.name.label("tournament_name"),
        _pools.c.name.label("pool_name"),
        _seeds.c.url.label("seed_url"),
        # The race's own lead (from its template), else the tournament's: what `room_open_lead` takes first.
        func.coalesce(live_races_table.c.room_open_lead_minutes, _tournaments.c.room_open_lead_minutes).label(
            "tournament_lead"
        ),
        GuildSettings.__table__.c.room_open_lead_minutes.label("guild_lead"),
    )
    .join(_tournaments, _tournaments.c.id == live_races_table.c.tournament_id)
    .join(_pools, _pools.c.id == live_races_table.c.pool_id)
    .outerjoin(_seeds, _seeds.c.id == live_races_table.c.seed_id)
    .outerjoin(GuildSettings.__table__, GuildSettings.__table__.c.guild_id == live_races_table.c.guild_id)
)


@functools.cache
def listing_query(*, newest_first: bool, tournament: bool, statuses: bool, after: bool) -> Select:
    """The list select for one combination of filters, built once with bound parameters (`guild_id`, `limit`, and
    as used `tournament_id`, `statuses`, `after_at`, `after_id`): building a select and its cache key cost more
    than a page's rows (measured: 0.2 ms to build, 0.7 ms for SQLAlchemy's cache key; a built statement's key is
    kept on it)."""
    race = live_races_table.c
    query = LISTING.where(race.guild_id == bindparam("guild_id", type_=race.guild_id.type))
    if tournament:
        query = query.where(race.tournament_id == bindparam("tournament_id", type_=race.tournament_id.type))
    if statuses:
        query = query.where(race.status.in_(bindparam("statuses", expanding=True)))
    if after:
        at = bindparam("after_at", type_=race.scheduled_at.type)
        race_id = bindparam("after_id", type_=race.id.type)
        if newest_first:
            query = query.where(or_(race.scheduled_at < at, and_(race.scheduled_at == at, race.id < race_id)))
        else:
            query = query.where(or_(race.scheduled_at > at, and_(race.scheduled_at == at, race.id > race_id)))
    if newest_first:
        query = query.order_by(race.scheduled_at.desc(), race.id.desc())
    else:
        query = query.order_by(race.scheduled_at, race.id)
    return query.limit(bindparam("limit", type_=race.id.type))


def view_query() -> Select:
    return (
        select(LiveRace, Tournament, Pool, Seed, GuildSettings.room_open_lead_minutes)
        .join(Tournament, Tournament.id == LiveRace.tournament_id)
        .join(Pool, Pool.id == LiveRace.pool_id)
        .outerjoin(Seed, Seed.id == LiveRace.seed_id)
        .outerjoin(GuildSettings, GuildSettings.guild_id == LiveRace.guild_id)
    )
