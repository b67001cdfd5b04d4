"""Which database the suite runs on: temporary SQLite files, or the PostgreSQL database named by
STARTLINE_TEST_DATABASE_URL (an empty database you own; every test wipes it).

Under pytest-xdist every worker has a database of its own, named after the given one and the worker
(`startline_ci` -> `startline_ci_gw0`, `startline_ci_gw1`, …): `.ci/postgres.sh` creates them, and
`ensure_database` creates a missing one when the role may (CREATEDB), so `-n 2` works on a developer's database too.
"""

from __future__ import annotations

import os

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

BASE_TEST_DATABASE_URL = os.environ.get("STARTLINE_TEST_DATABASE_URL")
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER")  # "gw0", "gw1", … in a pytest-xdist worker


def worker_database_url(url: str | None, worker: str | None) -> str | None:
    """The database of one xdist worker: the given URL with `_<worker>` appended to the database name."""
    if not url or not worker:
        return url
    parsed = make_url(url)
    return parsed.set(database=f"{parsed.database}_{worker}").render_as_string(hide_password=False)


TEST_DATABASE_URL = worker_database_url(BASE_TEST_DATABASE_URL, XDIST_WORKER)


async def ensure_database(url: str, base_url: str) -> None:
    """Create the database of `url` (connecting through `base_url`'s database) unless it exists."""
    name = make_url(url).database
    engine = create_async_engine(base_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            exists = await connection.execute(text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name})
            if exists.first() is None:
                await connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    finally:
        await engine.dispose()


async def wipe_postgres(url: str) -> None:
    engine = create_async_engine(url)
    async with engine.begin() as connection:
        await connection.exec_driver_sql("DROP SCHEMA public CASCADE")
        await connection.exec_driver_sql("CREATE SCHEMA public")
    await engine.dispose()
