"""The one way to change a live race: lock its row first (docs/architecture.md, "Live race lifecycle").

Every moderator action (edit, delete, cancel, open now, record) and every job step (the opener's claim, record and
failure, the poller's apply, closing stray rooms) starts its write transaction with `lock_race`, re-reads the race
there and decides on what it finds. On PostgreSQL that is `SELECT … FOR UPDATE`: a second writer of the same race
waits for the first to commit and then reads its result. On SQLite `db.transaction()` already began with
`BEGIN IMMEDIATE`, which excludes every other writer of the database until the commit, so the same holds. HTTP
calls to RaceTime.gg are made outside these transactions: a step decides under the lock, calls RaceTime.gg, then
locks again and re-checks before it records what happened.

Lock order, so no two writers wait on each other: the race, then its seed (`lock_seed`), then the seed's runs.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.logs import bind_log_context
from bot.services.session_cache import hold, remember_guild_settings
from db.models import GuildSettings, LiveRace, Pool, Seed, Tournament


async def lock_race(session: AsyncSession, race_id: int, *, guild_id: int | None = None) -> LiveRace | None:
    """The race row, locked until the transaction ends and freshly read (None when it does not exist)."""
    query = select(LiveRace).where(LiveRace.id == race_id)
    if guild_id is not None:
        query = query.where(LiveRace.guild_id == guild_id)
    race = await session.scalar(query.with_for_update().execution_options(populate_existing=True))
    # The rest of this job run or request logs with the race's ids (docs/architecture.md, "Logs").
    bind_log_context(race_id=race_id, guild_id=race.guild_id if race is not None else guild_id)
    return race


async def lock_races(
    session: AsyncSession, race_ids: list[int], *, skip_locked: bool = True, with_context: bool = False
) -> dict[int, LiveRace]:
    """Several races at once, locked and freshly read like `lock_race`, for a job that claims a batch of them in one
    transaction (the room opener). Locked in id order, so two such batches never wait on each other in a cycle; on
    PostgreSQL a race another transaction holds right now (a moderator's edit, another process's claim) is skipped
    (`SKIP LOCKED`) and left for the next run, instead of stalling the whole batch; with `skip_locked=False` the
    batch waits for it (the opener's records: a race's lock is held briefly, and the record must see the result).
    The log context is not bound (no
    single race). Missing and skipped races are absent from the result.

    `with_context`: the same statement also reads each race's tournament, pool, seed and guild settings (outer
    joins; only the races are locked, `FOR UPDATE OF live_races`), held for the rest of the transaction
    (`session_cache`): `session.get` finds them without a statement, and so does the outbox writer queuing the
    batch's notifications. Only for a transaction that never writes guild settings (the room opener's)."""
    if not race_ids:
        return {}
    if not with_context:
        query = (
            select(LiveRace)
            .where(LiveRace.id.in_(race_ids))
            .order_by(LiveRace.id)
            .with_for_update(skip_locked=skip_locked)
            .execution_options(populate_existing=True)
        )
        return {race.id: race for race in (await session.scalars(query)).all()}
    query = (
        select(LiveRace, Tournament, Pool, Seed, GuildSettings)
        .outerjoin(Tournament, Tournament.id == LiveRace.tournament_id)
        .outerjoin(Pool, Pool.id == LiveRace.pool_id)
        .outerjoin(Seed, Seed.id == LiveRace.seed_id)
        .outerjoin(GuildSettings, GuildSettings.guild_id == LiveRace.guild_id)
        .where(LiveRace.id.in_(race_ids))
        .order_by(LiveRace.id)
        .with_for_update(skip_locked=skip_locked, of=LiveRace)
        .execution_options(populate_existing=True)
    )
    races: dict[int, LiveRace] = {}
    for race, tournament, pool, seed, guild in (await session.execute(query)).all():
        races[race.id] = race
        hold(session, (race, tournament, pool, seed))
        remember_guild_settings(session, race.guild_id, guild)
    return races


async def lock_seed(session: AsyncSession, seed_id: int) -> None:
    """Lock a seed's row before its runs are written or rescored (PostgreSQL: `FOR NO KEY UPDATE`, which still lets
    new runs reference it). Every writer of a seed's runs takes it first, after the race lock if it holds one, so
    two writers of one seed's runs (a result being recorded and the score upkeep, two processes' upkeep) queue
    instead of deadlocking."""
    await session.execute(select(Seed.id).where(Seed.id == seed_id).with_for_update(key_share=True))


async def lock_seed_of(session: AsyncSession, race: LiveRace) -> None:
    """After `lock_race`, before a race's runs are written: its seed's row (`lock_seed`)."""
    if race.seed_id is not None:
        await lock_seed(session, race.seed_id)
