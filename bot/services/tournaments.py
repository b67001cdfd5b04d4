"""Tournaments, their pools and their seeds."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.actors import Actor
from bot.errors import Conflict, NotFound, ValidationFailed
from bot.services import audit
from bot.services.common import (
    ROOM_OPEN_LEAD_MINUTES,
    IntRange,
    Keyset,
    Page,
    check_url,
    clean_name,
    clean_text,
)
from bot.services.room_profiles import profile_or_404
from bot.services.seed_import import LineError, SeedBatch, summary
from db.models import LiveRace, Pool, RaceStatus, Run, Seed, Tournament
from db.session import Database

if TYPE_CHECKING:
    from racetime.clients import RacetimeClients

RUNS_PER_POOL = IntRange(1, 20)
MAX_REATTEMPTS = IntRange(-1, 100)  # -1: unlimited
TOURNAMENT_FIELDS = (
    "name",
    "description",
    "active",
    "runs_per_pool",
    "max_reattempts",
    "racetime_category",
    "racetime_goal",
    "custom_goal",
    "announcement_channel_id",
    "announcement_role_id",
    "room_profile_id",
    "room_open_lead_minutes",
    "scheduled_events",
)


async def tournament_or_404(session: AsyncSession, guild_id: int, tournament_id: int) -> Tournament:
    tournament = await session.get(Tournament, tournament_id)
    if tournament is None or tournament.guild_id != guild_id:
        raise NotFound(f"tournament {tournament_id} not found", field="tournament_id")
    return tournament


async def pool_or_404(session: AsyncSession, guild_id: int, tournament_id: int, pool_id: int) -> Pool:
    await tournament_or_404(session, guild_id, tournament_id)
    pool = await session.get(Pool, pool_id)
    if pool is None or pool.tournament_id != tournament_id:
        raise NotFound(f"pool {pool_id} not found in this tournament", field="pool_id")
    return pool


async def seed_in_tournament(
    session: AsyncSession, guild_id: int, tournament_id: int, seed_id: int
) -> tuple[Seed, Pool]:
    await tournament_or_404(session, guild_id, tournament_id)
    row = (
        await session.execute(
            select(Seed, Pool)
            .join(Pool, Pool.id == Seed.pool_id)
            .where(Seed.id == seed_id, Pool.tournament_id == tournament_id)
        )
    ).first()
    if row is None:
        raise NotFound(f"seed {seed_id} not found in this tournament", field="seed_id")
    return row[0], row[1]


def _check_category(value: str | None) -> str | None:
    if value is None or value.strip() == "":
        return None
    value = value.strip()
    if len(value) > 50 or not all(ch.isalnum() or ch in "-_" for ch in value):
        raise ValidationFailed(
            "racetime_category must be a RaceTime.gg category slug, like alttpr", field="racetime_category"
        )
    return value


def _optional_text(value: str | None, field: str, max_length: int = 255) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if len(value) > max_length:
        raise ValidationFailed(f"{field} must be at most {max_length} characters", field=field)
    return value


def _validate_tournament_fields(values: dict[str, Any]) -> dict[str, Any]:
    unknown = set(values) - set(TOURNAMENT_FIELDS)
    if unknown:
        field = sorted(unknown)[0]
        raise ValidationFailed(f"unknown tournament field {field!r}", field=field)
    cleaned = dict(values)
    if "name" in cleaned:
        cleaned["name"] = clean_name(cleaned["name"], "name")
    if "description" in cleaned:
        cleaned["description"] = clean_text(cleaned["description"], "description")
    if "active" in cleaned and not isinstance(cleaned["active"], bool):
        raise ValidationFailed("active must be true or false", field="active")
    if "runs_per_pool" in cleaned:
        RUNS_PER_POOL.check(cleaned["runs_per_pool"], "runs_per_pool")
    if "max_reattempts" in cleaned:
        MAX_REATTEMPTS.check(cleaned["max_reattempts"], "max_reattempts")
    if "racetime_category" in cleaned:
        cleaned["racetime_category"] = _check_category(cleaned["racetime_category"])
    for field in ("racetime_goal", "custom_goal"):
        if field in cleaned:
            cleaned[field] = _optional_text(cleaned[field], field)
    if cleaned.get("room_open_lead_minutes") is not None:
        ROOM_OPEN_LEAD_MINUTES.check(cleaned["room_open_lead_minutes"], "room_open_lead_minutes")
    return cleaned


class TournamentService:
    def __init__(
        self, db: Database, *, racetime: RacetimeClients | None = None, default_category: str = "alttpr"
    ) -> None:
        self.db = db
        self.racetime = racetime  # which categories have a bot; None: no RaceTime.gg bot at all
        self.default_category = default_category

    def _check_category_has_bot(self, values: dict[str, Any]) -> None:
        """A tournament's rooms are opened by its category's bot: refuse a category without one.

        Without any bot configured (a process that only records imported runs) every category is accepted; the
        status report says that rooms cannot open.
        """
        if self.racetime is None:
            return
        category = values.get("racetime_category") or self.default_category
        if not self.racetime.serves(category):
            configured = ", ".join(self.racetime.categories)
            raise ValidationFailed(
                f"no RaceTime.gg bot is configured for category {category}, so its rooms could not open; "
                f"configured categories: {configured} (an administrator adds a bot per category, see the admin guide)",
                field="racetime_category",
            )

    # ---- tournaments -------------------------------------------------------------------------------
    async def create_tournament(self, guild_id: int, actor: Actor, *, name: str, **fields: Any) -> Tournament:
        """Create a tournament of the guild (fields validated, audited)."""
        values = _validate_tournament_fields({"name": name, **fields})
        self._check_category_has_bot(values)
        async with self.db.transaction() as session:
            await self._check_goal_choice(values)
            await self._check_unique_name(session, guild_id, values["name"])
            await self._check_profile(session, guild_id, values.get("room_profile_id"))
            tournament = Tournament(guild_id=guild_id, **values)
            session.add(tournament)
            await session.flush()
            await audit.record(
                session,
                guild_id=guild_id,
                actor=actor,
                action="tournament.create",
                target_type="tournament",
                target_id=tournament.id,
                details=values,
            )
            return tournament

    async def update_tournament(self, guild_id: int, tournament_id: int, actor: Actor, **changes: Any) -> Tournament:
        """Change a tournament's fields (validated, audited)."""
        values = _validate_tournament_fields(changes)
        if "racetime_category" in values:
            self._check_category_has_bot(values)
        async with self.db.transaction() as session:
            tournament = await tournament_or_404(session, guild_id, tournament_id)
            merged_goal = {
                "racetime_goal": values.get("racetime_goal", tournament.racetime_goal),
                "custom_goal": values.get("custom_goal", tournament.custom_goal),
            }
            # Setting one kind of goal clears the other, so a moderator can switch with one edit.
            if values.get("racetime_goal") and "custom_goal" not in values:
                merged_goal["custom_goal"] = None
                values["custom_goal"] = None
            if values.get("custom_goal") and "racetime_goal" not in values:
                merged_goal["racetime_goal"] = None
                values["racetime_goal"] = None
            await self._check_goal_choice(merged_goal)
            if "name" in values and values["name"] != tournament.name:
                await self._check_unique_name(session, guild_id, values["name"])
            if "room_profile_id" in values:
                await self._check_profile(session, guild_id, values["room_profile_id"])
            before = {key: getattr(tournament, key) for key in values}
            for key, value in values.items():
                setattr(tournament, key, value)
            await audit.record(
                session,
                guild_id=guild_id,
                actor=actor,
                action="tournament.update",
                target_type="tournament",
                target_id=tournament.id,
                details={"before": before, "after": values},
            )
            return tournament

    async def delete_tournament(self, guild_id: int, tournament_id: int, actor: Actor) -> None:
        """Delete a tournament (audited); Conflict once it has runs or live races that opened."""
        async with self.db.transaction() as session:
            tournament = await tournament_or_404(session, guild_id, tournament_id)
            if await session.scalar(select(exists().where(Run.tournament_id == tournament_id))):
                raise Conflict("this tournament has recorded runs; deactivate it instead of deleting it")
            if await session.scalar(
                select(
                    exists().where(
                        LiveRace.tournament_id == tournament_id,
                        LiveRace.status.in_([RaceStatus.ROOM_OPEN, RaceStatus.IN_PROGRESS, RaceStatus.FINISHED]),
                    )
                )
            ):
                raise Conflict("this tournament has live races that opened a room; deactivate it instead")
            await audit.record(
                session,
                guild_id=guild_id,
                actor=actor,
                action="tournament.delete",
                target_type="tournament",
                target_id=tournament.id,
                details={"name": tournament.name},
            )
            await session.delete(tournament)

    async def get_tournament(self, guild_id: int, tournament_id: int) -> Tournament:
        """The guild's tournament; NotFound otherwise."""
        async with self.db.read() as session:
            return await tournament_or_404(session, guild_id, tournament_id)

    async def list_tournaments(
        self,
        guild_id: int,
        *,
        active: bool | None = None,
        search: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Tournament]:
        """One page of the guild's tournaments, filtered as given."""
        window = Keyset.of(limit, cursor)
        query = window.select(select(Tournament).where(Tournament.guild_id == guild_id), Tournament.id)
        if active is not None:
            query = query.where(Tournament.active.is_(active))
        if search:
            query = query.where(Tournament.name.ilike(f"%{search}%"))
        async with self.db.read() as session:
            rows = list((await session.scalars(query)).all())
        return window.page(rows, lambda t: t.id)

    async def _check_unique_name(self, session: AsyncSession, guild_id: int, name: str) -> None:
        clash = await session.scalar(
            select(Tournament.id).where(
                Tournament.guild_id == guild_id, func.lower(Tournament.name) == func.lower(name)
            )
        )
        if clash is not None:
            raise Conflict(f"a tournament named {name!r} already exists", field="name")

    async def _check_profile(self, session: AsyncSession, guild_id: int, profile_id: int | None) -> None:
        if profile_id is not None:
            await profile_or_404(session, guild_id, profile_id)

    @staticmethod
    async def _check_goal_choice(values: dict[str, Any]) -> None:
        if values.get("racetime_goal") and values.get("custom_goal"):
            raise ValidationFailed(
                "set either racetime_goal (a goal name of the category) or custom_goal, not both",
                field="custom_goal",
            )

    # ---- pools -------------------------------------------------------------------------------------
    async def add_pool(
        self, guild_id: int, tournament_id: int, actor: Actor, *, name: str, description: str = ""
    ) -> Pool:
        """Add a pool to the guild's tournament (audited)."""
        name = clean_name(name, "name")
        description = clean_text(description, "description")
        async with self.db.transaction() as session:
            await tournament_or_404(session, guild_id, tournament_id)
            await self._check_unique_pool(session, tournament_id, name)
            pool = Pool(tournament_id=tournament_id, name=name, description=description)
            session.add(pool)
            await session.flush()
            await audit.record(
                session,
                guild_id=guild_id,
                actor=actor,
                action="pool.create",
                target_type="pool",
                target_id=pool.id,
                details={"tournament_id": tournament_id, "name": name},
            )
            return pool

    async def update_pool(
        self,
        guild_id: int,
        tournament_id: int,
        pool_id: int,
        actor: Actor,
        *,
        name: str | None = None,
        description: str | None = None,
    ) -> Pool:
        """Change a pool's name or description (audited)."""
        async with self.db.transaction() as session:
            pool = await pool_or_404(session, guild_id, tournament_id, pool_id)
            changes: dict[str, Any] = {}
            if name is not None:
                name = clean_name(name, "name")
                if name.lower() != pool.name.lower():
                    await self._check_unique_pool(session, tournament_id, name)
                changes["name"] = name
            if description is not None:
                changes["description"] = clean_text(description, "description")
            for key, value in changes.items():
                setattr(pool, key, value)
            await audit.record(
                session,
                guild_id=guild_id,
                actor=actor,
                action="pool.update",
                target_type="pool",
                target_id=pool.id,
                details=changes,
            )
            return pool

    async def remove_pool(self, guild_id: int, tournament_id: int, pool_id: int, actor: Actor) -> None:
        """Remove a pool (audited); Conflict once it has runs or live races."""
        async with self.db.transaction() as session:
            pool = await pool_or_404(session, guild_id, tournament_id, pool_id)
            has_runs = await session.scalar(select(exists().where(Run.seed_id == Seed.id, Seed.pool_id == pool_id)))
            if has_runs:
                raise Conflict(f"pool {pool.name!r} has recorded runs and cannot be removed")
            if await session.scalar(select(exists().where(LiveRace.pool_id == pool_id))):
                raise Conflict(f"pool {pool.name!r} has live races; delete them first")
            await audit.record(
                session,
                guild_id=guild_id,
                actor=actor,
                action="pool.delete",
                target_type="pool",
                target_id=pool.id,
                details={"tournament_id": tournament_id, "name": pool.name},
            )
            await session.delete(pool)

    async def list_pools(self, guild_id: int, tournament_id: int, *, search: str | None = None) -> list[Pool]:
        """The pools of the guild's tournament, optionally matching a search."""
        async with self.db.read() as session:
            await tournament_or_404(session, guild_id, tournament_id)
            query = select(Pool).where(Pool.tournament_id == tournament_id).order_by(Pool.id)
            if search:
                query = query.where(Pool.name.ilike(f"%{search}%"))
            return list((await session.scalars(query)).all())

    async def get_pool(self, guild_id: int, tournament_id: int, pool_id: int) -> Pool:
        """One pool of the guild's tournament; NotFound otherwise."""
        async with self.db.read() as session:
            return await pool_or_404(session, guild_id, tournament_id, pool_id)

    async def _check_unique_pool(self, session: AsyncSession, tournament_id: int, name: str) -> None:
        clash = await session.scalar(
            select(Pool.id).where(Pool.tournament_id == tournament_id, func.lower(Pool.name) == func.lower(name))
        )
        if clash is not None:
            raise Conflict(f"a pool named {name!r} already exists in this tournament", field="name")

    # ---- seeds ---------------------------------------------------------------------------------
    async def add_seed(
        self, guild_id: int, tournament_id: int, pool_id: int, actor: Actor, *, url: str, notes: str = ""
    ) -> Seed:
        """Add a seed to a pool (URL checked, audited); Conflict when the pool has it already."""
        url = check_url(url)
        notes = clean_text(notes, "notes", max_length=1000)
        async with self.db.transaction() as session:
            await pool_or_404(session, guild_id, tournament_id, pool_id)
            clash = await session.scalar(select(Seed.id).where(Seed.pool_id == pool_id, Seed.url == url))
            if clash is not None:
                raise Conflict("this seed is already in the pool", field="url")
            seed = Seed(pool_id=pool_id, url=url, notes=notes)
            session.add(seed)
            await session.flush()
            await audit.record(
                session,
                guild_id=guild_id,
                actor=actor,
                action="seed.create",
                target_type="seed",
                target_id=seed.id,
                details={"pool_id": pool_id, "url": url},
            )
            return seed

    async def import_seeds(
        self,
        guild_id: int,
        tournament_id: int,
        actor: Actor,
        batch: SeedBatch,
        *,
        default_pool_id: int | None = None,
    ) -> list[Seed]:
        """Add every seed of `batch` to its pool, or none: all lines are checked first (pool, URL, notes, already in
        the pool, twice in the batch), and any problem, with the lines that could not be read, refuses the whole
        batch with each bad line named (`details["errors"]`). One transaction, one audit entry."""
        errors = list(batch.errors)
        async with self.db.transaction() as session:
            await tournament_or_404(session, guild_id, tournament_id)
            default = None
            if default_pool_id is not None:
                default = await pool_or_404(session, guild_id, tournament_id, default_pool_id)
            pools = list(await session.scalars(select(Pool).where(Pool.tournament_id == tournament_id)))
            by_name = {pool.name.lower(): pool for pool in pools} | {str(pool.id): pool for pool in pools}
            taken = set(
                (
                    await session.execute(select(Seed.pool_id, Seed.url).where(Seed.pool_id.in_([p.id for p in pools])))
                ).all()
            )
            first_seen: dict[tuple[int, str], int] = {}
            accepted: list[tuple[Pool, str, str]] = []
            for line in batch.lines:
                pool = default if line.pool is None else by_name.get(line.pool.strip().lstrip("#").lower())
                if pool is None:
                    problem = (
                        "empty; name the pool" if line.pool is None else f"this tournament has no pool {line.pool!r}"
                    )
                    errors.append(LineError(line.line, "pool", problem))
                try:
                    url = check_url(line.url)
                    notes = clean_text(line.notes, "notes", max_length=1000)
                except ValidationFailed as bad:
                    errors.append(LineError(line.line, bad.field or "url", bad.message))
                    continue
                if pool is None:
                    continue
                if (pool.id, url) in taken:
                    errors.append(LineError(line.line, "url", f"this seed is already in pool {pool.name}"))
                elif (pool.id, url) in first_seen:
                    errors.append(LineError(line.line, "url", f"the same seed as line {first_seen[(pool.id, url)]}"))
                else:
                    first_seen[(pool.id, url)] = line.line
                    accepted.append((pool, url, notes))
            if errors:
                errors.sort(key=lambda error: error.line)
                raise ValidationFailed(
                    summary(errors),
                    field="seeds",
                    details={"errors": [{"line": e.line, "field": e.field, "message": e.message} for e in errors]},
                )
            created = [Seed(pool_id=pool.id, url=url, notes=notes) for pool, url, notes in accepted]
            session.add_all(created)
            await session.flush()
            counts: dict[str, int] = {}
            for pool, _, _ in accepted:
                counts[str(pool.id)] = counts.get(str(pool.id), 0) + 1
            await audit.record(
                session,
                guild_id=guild_id,
                actor=actor,
                action="seed.import",
                target_type="tournament",
                target_id=tournament_id,
                details={"count": len(created), "per_pool": counts, "ids": [p.id for p in created]},
            )
            return created

    async def update_seed(
        self,
        guild_id: int,
        tournament_id: int,
        pool_id: int,
        seed_id: int,
        actor: Actor,
        *,
        url: str | None = None,
        notes: str | None = None,
    ) -> Seed:
        """Change a seed's URL or notes (audited)."""
        async with self.db.transaction() as session:
            seed = await self._seed_in_pool(session, guild_id, tournament_id, pool_id, seed_id)
            changes: dict[str, Any] = {}
            if url is not None:
                url = check_url(url)
                if url != seed.url:
                    if await self._seed_in_use(session, seed_id):
                        raise Conflict("this seed has been raced; its URL can no longer change", field="url")
                    changes["url"] = url
            if notes is not None:
                changes["notes"] = clean_text(notes, "notes", max_length=1000)
            for key, value in changes.items():
                setattr(seed, key, value)
            await audit.record(
                session,
                guild_id=guild_id,
                actor=actor,
                action="seed.update",
                target_type="seed",
                target_id=seed.id,
                details=changes,
            )
            return seed

    async def remove_seed(self, guild_id: int, tournament_id: int, pool_id: int, seed_id: int, actor: Actor) -> None:
        """Remove a seed (audited); Conflict once it has runs or live races."""
        async with self.db.transaction() as session:
            seed = await self._seed_in_pool(session, guild_id, tournament_id, pool_id, seed_id)
            if await self._seed_in_use(session, seed_id):
                raise Conflict("this seed has runs or live races and cannot be removed")
            await audit.record(
                session,
                guild_id=guild_id,
                actor=actor,
                action="seed.delete",
                target_type="seed",
                target_id=seed.id,
                details={"pool_id": pool_id, "url": seed.url},
            )
            await session.delete(seed)

    async def list_seeds(self, guild_id: int, tournament_id: int, pool_id: int) -> list[Seed]:
        """The seeds of a pool of the guild's tournament."""
        async with self.db.read() as session:
            await pool_or_404(session, guild_id, tournament_id, pool_id)
            return list(await session.scalars(select(Seed).where(Seed.pool_id == pool_id).order_by(Seed.id)))

    async def get_seed(self, guild_id: int, tournament_id: int, pool_id: int, seed_id: int) -> Seed:
        """One seed of a pool of the guild's tournament; NotFound otherwise."""
        async with self.db.read() as session:
            return await self._seed_in_pool(session, guild_id, tournament_id, pool_id, seed_id)

    async def _seed_in_pool(
        self, session: AsyncSession, guild_id: int, tournament_id: int, pool_id: int, seed_id: int
    ) -> Seed:
        await pool_or_404(session, guild_id, tournament_id, pool_id)
        seed = await session.get(Seed, seed_id)
        if seed is None or seed.pool_id != pool_id:
            raise NotFound(f"seed {seed_id} not found in this pool", field="seed_id")
        return seed

    @staticmethod
    async def _seed_in_use(session: AsyncSession, seed_id: int) -> bool:
        return bool(
            await session.scalar(select(exists().where(Run.seed_id == seed_id)))
            or await session.scalar(select(exists().where(LiveRace.seed_id == seed_id)))
        )
