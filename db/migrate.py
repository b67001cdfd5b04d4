"""Apply Alembic migrations from inside the running event loop (at start-up and `run.py db upgrade`)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection

from db.session import Database

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _migrate(connection: Connection, revision: str, *, down: bool) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    (command.downgrade if down else command.upgrade)(config, revision)


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


# Two processes starting at once on PostgreSQL would both migrate; this lock makes the second wait for the first and
# then find nothing to do. (SQLite: the write lock of the first statement does the same.)
MIGRATION_LOCK_ID = 0x5354_4C4E  # "STLN"


async def upgrade(database: Database, revision: str = "head") -> None:
    await _run(database, revision, down=False)


async def downgrade(database: Database, revision: str) -> None:
    """Back to `revision` (operators, and the migration tests), with the same care as `upgrade`."""
    await _run(database, revision, down=True)


async def _run(database: Database, revision: str, *, down: bool) -> None:
    async with database.engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # A migration that rebuilds a table (SQLite cannot alter a primary key) drops the old one: with foreign
            # keys enforced, that drop would first run every ON DELETE action of the rows that refer to it. The
            # pragma only takes effect outside a transaction, so it is set on the driver's connection before the
            # migration's transaction begins, and the references are checked before it commits.
            await _sqlite_foreign_keys(connection, on=False)
        try:
            async with connection.begin():
                if connection.dialect.name == "postgresql":
                    await connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
                await connection.run_sync(_migrate, revision, down=down)
                if sqlite:
                    broken = (await connection.exec_driver_sql("PRAGMA foreign_key_check")).fetchall()
                    if broken:
                        raise RuntimeError(f"a migration left rows whose references do not resolve: {broken[:5]}")
        finally:
            if sqlite:
                await _sqlite_foreign_keys(connection, on=True)


async def _sqlite_foreign_keys(connection, *, on: bool) -> None:
    raw = await connection.get_raw_connection()
    await raw.driver_connection.execute(f"PRAGMA foreign_keys = {'ON' if on else 'OFF'}")


async def current_revision(database: Database) -> str | None:
    async with database.engine.connect() as connection:
        return await connection.run_sync(_current)
