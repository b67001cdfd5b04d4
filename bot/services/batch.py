"""Batch creation of live races: a CSV (Discord) or a JSON list (API), all or nothing.

Every line is checked first, set-wise (the tournament's pools and seeds, the guild's room profiles and the episode
ids in use are read once, not per line), and every line's errors are listed (line number, field, message). Only
a batch without an error is created, in one transaction, each race through `LiveRaceService.create_in` (the same
audit entry and `LiveRaceScheduled` event as `/liverace create`). `dry_run` checks and shows, and creates nothing.

CSV: a header line naming the columns (`pool` and `scheduled_at` required; `title`, `seed`, `episode_id`,
`room_profile` optional; any order), then one race per line. `pool`, `seed` and `room_profile` take a name (a
seed: its URL) or an id; `scheduled_at` is ISO 8601 (`2026-12-05T20:00+01:00`), and a time without an offset is
read in the guild's time zone. JSON: a list of objects with the fields of `POST …/live-races`. Lines are numbered
as a person sees them: the CSV's physical lines (the header is line 1), the JSON list's items from 1.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from bot.actors import Actor
from bot.errors import DomainError, ValidationFailed
from bot.services.common import clean_name
from bot.services.live_race_views import LISTING, LiveRaceListing, live_races_table
from bot.services.live_races import MAX_TITLE, LiveRaceService
from bot.services.recurrence import localize
from db.models import LiveRace, Pool, RoomProfile, Seed

CSV_COLUMNS = ("pool", "scheduled_at", "title", "seed", "episode_id", "room_profile")
CSV_REQUIRED = ("pool", "scheduled_at")
ROW_FIELDS = ("pool_id", "scheduled_at", "title", "seed_id", "episode_id", "room_profile_id", "room")
MAX_CSV_BYTES = 512 * 1024


@dataclass(frozen=True)
class LineError:
    line: int
    field: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, for the API's and the command's error list."""
        return {"line": self.line, "field": self.field, "message": self.message}


@dataclass(frozen=True)
class PlannedRace:
    line: int
    pool: Pool
    scheduled_at: datetime
    title: str
    seed_id: int | None
    episode_id: str | None
    room_profile_id: int | None


@dataclass
class BatchResult:
    dry_run: bool
    planned: list[PlannedRace] = field(default_factory=list)
    created: list[LiveRaceListing] = field(default_factory=list)


def rows_from_csv(text: str, *, timezone: str = "UTC") -> list[tuple[int, dict[str, Any]]]:
    """(line number, raw fields) per data line; a wrong header is refused at once, naming what is wrong."""
    if len(text.encode()) > MAX_CSV_BYTES:
        raise ValidationFailed(f"the CSV must be at most {MAX_CSV_BYTES // 1024} KiB", field="file")
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    try:
        header = [name.strip().lower() for name in next(reader)]
    except StopIteration:
        raise ValidationFailed("the CSV is empty; its first line names the columns", field="header") from None
    expected = f"expected columns: {', '.join(CSV_COLUMNS)} (pool and scheduled_at required)"
    unknown = [name for name in header if name not in CSV_COLUMNS]
    missing = [name for name in CSV_REQUIRED if name not in header]
    duplicated = sorted({name for name in header if header.count(name) > 1})
    if unknown or missing or duplicated:
        problem = (
            f"unknown column {unknown[0]!r}"
            if unknown
            else f"missing column {missing[0]!r}"
            if missing
            else f"column {duplicated[0]!r} appears twice"
        )
        raise ValidationFailed(f"the CSV header is wrong: {problem}; {expected}", field="header")
    zone = ZoneInfo(timezone)
    rows: list[tuple[int, dict[str, Any]]] = []
    for values in reader:
        line = reader.line_num
        if not any(value.strip() for value in values):
            continue
        raw = dict(zip(header, (value.strip() for value in values), strict=False))
        if len(values) != len(header):
            raw["__columns__"] = f"has {len(values)} values for {len(header)} columns"
        raw["__zone__"] = zone
        rows.append((line, raw))
    return rows


class BatchService:
    def __init__(self, live_races: LiveRaceService, *, max_lines: int) -> None:
        self.live_races = live_races
        self.db = live_races.db
        self.max_lines = max_lines

    async def create_from_csv(
        self, guild_id: int, tournament_id: int, actor: Actor, text: str, *, timezone: str, dry_run: bool = False
    ) -> BatchResult:
        """Schedule the live races of a CSV text (times read in `timezone`); `dry_run` checks every line, writes
        nothing."""
        return await self._create(guild_id, tournament_id, actor, rows_from_csv(text, timezone=timezone), dry_run)

    async def create(
        self, guild_id: int, tournament_id: int, actor: Actor, items: list[dict[str, Any]], *, dry_run: bool = False
    ) -> BatchResult:
        """JSON items with the fields of one `POST …/live-races` each."""
        return await self._create(guild_id, tournament_id, actor, list(enumerate(items, start=1)), dry_run)

    async def _create(
        self,
        guild_id: int,
        tournament_id: int,
        actor: Actor,
        rows: list[tuple[int, dict[str, Any]]],
        dry_run: bool,
    ) -> BatchResult:
        if not rows:
            raise ValidationFailed("the batch has no race in it", field="lines")
        if len(rows) > self.max_lines:
            raise ValidationFailed(f"a batch holds at most {self.max_lines} races, not {len(rows)}", field="lines")
        result = BatchResult(dry_run)
        async with self.db.transaction() as session:
            tournament = await self.live_races.schedulable_tournament(session, guild_id, tournament_id)
            pools = list((await session.scalars(select(Pool).where(Pool.tournament_id == tournament.id))).all())
            seeds = (
                await session.execute(
                    select(Seed.id, Seed.url, Seed.pool_id).where(Seed.pool_id.in_([pool.id for pool in pools]))
                )
            ).all()
            profiles = (
                await session.execute(select(RoomProfile.id, RoomProfile.name).where(RoomProfile.guild_id == guild_id))
            ).all()
            lookup = _Lookup(pools, seeds, profiles)
            errors: list[LineError] = []
            checked: list[tuple[int, Pool, dict[str, Any]]] = []
            episodes: dict[str, int] = {}
            seeds_taken: dict[int, int] = {}
            for line, raw in rows:
                line_errors, pool, fields = self._check_line(line, raw, lookup)
                if fields is not None:
                    episode = fields["episode_id"]
                    if episode is not None and episode in episodes:
                        line_errors.append(
                            LineError(line, "episode_id", f"episode_id {episode!r} is also on line {episodes[episode]}")
                        )
                    elif episode is not None:
                        episodes[episode] = line
                    seed = fields["seed_id"]
                    if seed is not None and seed in seeds_taken:
                        line_errors.append(LineError(line, "seed", f"this seed is also on line {seeds_taken[seed]}"))
                    elif seed is not None:
                        seeds_taken[seed] = line
                errors.extend(line_errors)
                if not line_errors and pool is not None and fields is not None:
                    checked.append((line, pool, fields))
            if episodes:
                used = (
                    await session.execute(
                        select(LiveRace.episode_id, LiveRace.id).where(
                            LiveRace.guild_id == guild_id, LiveRace.episode_id.in_(list(episodes))
                        )
                    )
                ).all()
                for episode, race_id in used:
                    errors.append(
                        LineError(
                            episodes[episode], "episode_id", f"episode_id {episode!r} is used by live race {race_id}"
                        )
                    )
            if errors:
                errors.sort(key=lambda error: (error.line, error.field))
                bad_lines = len({error.line for error in errors})
                raise ValidationFailed(
                    f"{bad_lines} of {len(rows)} lines have errors; nothing was created",
                    field="lines",
                    details={"errors": [error.as_dict() for error in errors]},
                )
            for line, pool, fields in checked:
                title = self.live_races._title(fields["title"], tournament, pool)
                result.planned.append(
                    PlannedRace(
                        line,
                        pool,
                        fields["scheduled_at"],
                        title,
                        fields["seed_id"],
                        fields["episode_id"],
                        fields["room_profile_id"],
                    )
                )
            if dry_run:
                return result
            ids = await self.live_races.create_many_in(
                session, actor, tournament, [(pool, fields) for _, pool, fields in checked]
            )
            rows_out = (
                await session.execute(
                    LISTING.where(live_races_table.c.id.in_(ids)).order_by(
                        live_races_table.c.scheduled_at, live_races_table.c.id
                    )
                )
            ).all()
            result.created = self.live_races._listings(rows_out)
        return result

    def _check_line(
        self, line: int, raw: dict[str, Any], lookup: _Lookup
    ) -> tuple[list[LineError], Pool | None, dict[str, Any] | None]:
        errors: list[LineError] = []
        if "__columns__" in raw:
            errors.append(LineError(line, "line", raw["__columns__"]))
        from_csv = "__zone__" in raw
        if not from_csv:
            unknown = sorted(set(raw) - set(ROW_FIELDS))
            errors.extend(LineError(line, key, f"{key} is not a field of a live race") for key in unknown)
        pool = self._guard(
            errors, line, "pool", lambda: lookup.pool(raw.get("pool") if from_csv else raw.get("pool_id"))
        )
        values: dict[str, Any] = {}
        for key, compute in (
            ("scheduled_at", lambda: _when(raw.get("scheduled_at"), raw.get("__zone__"))),
            ("seed_id", lambda: lookup.seed(raw.get("seed") if from_csv else raw.get("seed_id"), pool)),
            (
                "room_profile_id",
                lambda: lookup.profile(raw.get("room_profile") if from_csv else raw.get("room_profile_id")),
            ),
        ):
            values[key] = self._guard(errors, line, key, compute)
        if errors:
            return errors, pool, None
        try:
            fields = self.live_races.check_fields(
                scheduled_at=values["scheduled_at"],
                title=raw.get("title") or None,
                seed_id=values["seed_id"],
                episode_id=raw.get("episode_id") or None,
                room_profile_id=values["room_profile_id"],
                room=raw.get("room"),
            )
            if fields["title"] is not None:
                fields["title"] = clean_name(fields["title"], "title", max_length=MAX_TITLE)
        except DomainError as exc:
            errors.append(LineError(line, exc.field or "line", exc.message))
            return errors, pool, None
        return errors, pool, fields

    @staticmethod
    def _guard(errors: list[LineError], line: int, name: str, compute: Any) -> Any:
        try:
            return compute()
        except DomainError as exc:
            errors.append(LineError(line, exc.field or name, exc.message))
            return None


class _Lookup:
    """The tournament's pools and seeds and the guild's room profiles, by id or by name (a seed: by URL)."""

    def __init__(self, pools: list[Pool], seeds: list[Any], profiles: list[Any]) -> None:
        self.pools_by_id = {pool.id: pool for pool in pools}
        self.pools_by_name = {pool.name.lower(): pool for pool in pools}
        self.seeds_by_id = {seed.id: seed.pool_id for seed in seeds}
        self.seeds_by_url = {(seed.pool_id, seed.url): seed.id for seed in seeds}
        self.profiles_by_id = {profile.id for profile in profiles}
        self.profiles_by_name = {profile.name.lower(): profile.id for profile in profiles}

    def pool(self, value: Any) -> Pool:
        if value is None or value == "":
            raise ValidationFailed("pool is required", field="pool")
        pool = self.pools_by_id.get(_id(value)) or self.pools_by_name.get(str(value).strip().lower())
        if pool is None:
            raise ValidationFailed(f"pool {value!r} is not a pool of this tournament", field="pool")
        return pool

    def seed(self, value: Any, pool: Pool | None) -> int | None:
        if value is None or value == "" or pool is None:
            return None
        seed_id = _id(value)
        if seed_id is not None and self.seeds_by_id.get(seed_id) == pool.id:
            return seed_id
        found = self.seeds_by_url.get((pool.id, str(value).strip()))
        if found is None:
            raise ValidationFailed(f"seed {value!r} is not a seed of pool {pool.name}", field="seed")
        return found

    def profile(self, value: Any) -> int | None:
        if value is None or value == "":
            return None
        profile_id = _id(value)
        if profile_id in self.profiles_by_id:
            return profile_id
        found = self.profiles_by_name.get(str(value).strip().lower())
        if found is None:
            raise ValidationFailed(f"room profile {value!r} does not exist", field="room_profile")
        return found


def _id(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    text = str(value).strip().lstrip("#")
    return int(text) if text.isdigit() and len(text) < 19 else None


def _when(value: Any, zone: ZoneInfo | None) -> datetime:
    if isinstance(value, datetime):
        return value
    text = str(value or "").strip()
    if not text:
        raise ValidationFailed("scheduled_at is required", field="scheduled_at")
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationFailed(
            f"scheduled_at {text!r} is not a date and time like 2026-12-05T20:00+01:00", field="scheduled_at"
        ) from None
    if parsed.tzinfo is not None or zone is None:
        return parsed
    instant = localize(parsed, zone)
    if instant is None:
        raise ValidationFailed(
            f"{text} does not exist in {zone.key} (the clocks go forward then)", field="scheduled_at"
        )
    return instant
