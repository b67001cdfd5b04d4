"""Which database the suite runs on: temporary SQLite files, or the PostgreSQL database named by
STARTLINE_TEST_DATABASE_URL (an empty database you own; every test wipes it)."""

from __future__ import annotations

import os

from sqlalchemy.ext.asyncio import create_async_engine

TEST_DATABASE_URL = os.environ.get("STARTLINE_TEST_DATABASE_URL")


async def wipe_postgres(url: str) -> None:
    engine = create_async_engine(url)
    async with engine.begin() as connection:
        await connection.exec_driver_sql("DROP SCHEMA public CASCADE")
        await connection.exec_driver_sql("CREATE SCHEMA public")
    await engine.dispose()
