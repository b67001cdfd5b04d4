"""Migration 0015: a live race id is never used twice, also on a SQLite database made before it.

SQLite used to hand a new race the id of the newest race just deleted, and with it that race's outbox dedupe keys
(so the new race's scheduled notice was swallowed) and its living announcement.
"""

from __future__ import annotations

from datetime import timedelta

from alembic import command
from sqlalchemy import select, text

from bot.services import build_services
from bot.settings import Settings
from db import migrate
from db.models import GuildSettings, LiveRace, Notification, Run, RunStatus
from db.session import Database
from tests.conftest import GUILD, MODERATOR
from tests.fakes.lifecycle import Clock, add_player, make_world


def _downgrade_to(connection, revision: str) -> None:
    config = migrate.alembic_config()
    config.attributes["connection"] = connection
    command.downgrade(config, revision)


async def _schema_before_0015(database: Database) -> None:
    await migrate.upgrade(database)
    async with database.engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            await migrate._sqlite_foreign_keys(connection, on=False)
        try:
            async with connection.begin():
                await connection.run_sync(_downgrade_to, "0011")
        finally:
            if connection.dialect.name == "sqlite":
                await migrate._sqlite_foreign_keys(connection, on=True)


async def test_a_race_made_after_the_newest_was_deleted_gets_a_new_id_and_its_notice(settings: Settings) -> None:
    database = Database(settings.database.url)
    try:
        await _schema_before_0015(database)
        services = build_services(settings, database)
        clock = Clock()
        services.live_races.clock = clock
        world = await make_world(services)
        player = await add_player(services, 5001, "Alice", "7BzeW5ErWom9Xgpb")
        async with database.transaction() as session:
            session.add(GuildSettings(guild_id=GUILD, announcement_channel_id=777))
        create = services.live_races.create
        kept = await create(
            GUILD, world.tournament.id, MODERATOR, pool_id=world.pool.id, scheduled_at=clock.now + timedelta(hours=1)
        )
        async with database.transaction() as session:
            run = Run(
                tournament_id=world.tournament.id,
                permalink_id=world.seeds[0].id,
                player_id=player.id,
                live_race_id=kept.race.id,
                status=RunStatus.FORFEIT,
                score=0.0,
            )
            session.add(run)
        later = clock.now + timedelta(hours=3)
        gone = await create(GUILD, world.tournament.id, MODERATOR, pool_id=world.pool.id, scheduled_at=later)
        await services.live_races.delete(GUILD, gone.race.id, MODERATOR)

        await migrate.upgrade(database)  # 0015 rebuilds the table with the rows that refer to it in place

        async with database.read() as session:
            assert (await session.scalar(select(Run.live_race_id))) == kept.race.id  # no ON DELETE ran
            assert list(await session.scalars(select(LiveRace.id))) == [kept.race.id]
        new = await create(GUILD, world.tournament.id, MODERATOR, pool_id=world.pool.id, scheduled_at=later)
        assert new.race.id > gone.race.id
        async with database.read() as session:
            keys = list(
                await session.scalars(select(Notification.dedupe_key).where(Notification.live_race_id == new.race.id))
            )
        assert keys == [f"channel:live_race_scheduled:race:{new.race.id}:channel:777"]
        async with database.engine.connect() as connection:
            if connection.dialect.name == "sqlite":
                assert (await connection.execute(text("PRAGMA foreign_keys"))).scalar() == 1  # enforced again
    finally:
        await database.dispose()
