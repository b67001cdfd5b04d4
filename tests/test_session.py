"""The engine's connection pool on SQLite: concurrent sessions reuse connections instead of making new ones."""

from __future__ import annotations

import asyncio

from sqlalchemy import event, text

from db.session import SQLITE_POOL_SIZE, Database


async def test_concurrent_sessions_reuse_their_connections(tmp_path) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'pool.db'}")
    opened = []
    event.listen(database.engine.sync_engine, "connect", lambda *_: opened.append(1))
    concurrent = min(12, SQLITE_POOL_SIZE)

    async def read() -> None:
        async with database.read() as session:
            await session.execute(text("SELECT 1"))
            await asyncio.sleep(0.01)  # hold the connection while the others ask for theirs

    try:
        for _ in range(3):
            await asyncio.gather(*(read() for _ in range(concurrent)))
    finally:
        await database.dispose()
    # Each aiosqlite connection is a thread and an open file: a burst of requests must not make new ones each time.
    assert len(opened) <= concurrent
