"""Migrations: they apply cleanly, twice, and produce exactly the schema the models describe."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from db import migrate
from db.models import Base
from db.session import Database


async def test_upgrade_reaches_head_and_is_idempotent(settings) -> None:
    database = Database(settings.database.url)
    try:
        await migrate.upgrade(database)
        await migrate.upgrade(database)  # a second start must be a no-op
        assert await migrate.current_revision(database) == migrate.head_revision()
    finally:
        await database.dispose()


async def test_migrations_match_models(settings) -> None:
    database = Database(settings.database.url)
    try:
        await migrate.upgrade(database)
        async with database.engine.connect() as connection:

            def diff(sync_connection):
                context = MigrationContext.configure(sync_connection, opts={"compare_type": True})
                return compare_metadata(context, Base.metadata)

            differences = await connection.run_sync(diff)
            tables = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
    finally:
        await database.dispose()
    assert differences == []
    assert set(Base.metadata.tables) <= tables


async def test_sqlite_runs_in_wal_mode_with_foreign_keys(settings) -> None:
    if not settings.database.url.startswith("sqlite"):
        pytest.skip("SQLite pragmas")
    database = Database(settings.database.url)
    try:
        async with database.engine.connect() as connection:
            journal = (await connection.exec_driver_sql("PRAGMA journal_mode")).scalar()
            foreign_keys = (await connection.exec_driver_sql("PRAGMA foreign_keys")).scalar()
            busy = (await connection.exec_driver_sql("PRAGMA busy_timeout")).scalar()
    finally:
        await database.dispose()
    assert journal == "wal"
    assert foreign_keys == 1
    assert busy == settings.database.busy_timeout_ms
