"""The engine's connection pool: sized from the settings; concurrent sessions reuse connections, not make new ones."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

from sqlalchemy import event, text

from bot.settings import DatabaseSettings
from db.session import DEFAULT_POOL_SIZE, Database


async def test_concurrent_sessions_reuse_their_connections(tmp_path) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'pool.db'}")
    opened = []
    event.listen(database.engine.sync_engine, "connect", lambda *_: opened.append(1))
    concurrent = min(12, DEFAULT_POOL_SIZE)

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


async def test_the_pool_is_sized_from_the_settings(tmp_path) -> None:
    sized = DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path / 'sized.db'}", pool_size=3, max_overflow=0)
    database = Database.from_settings(sized)
    try:
        async with AsyncExitStack() as stack:
            for _ in range(3):
                session = await stack.enter_async_context(database.read())
                await session.execute(text("SELECT 1"))
            # pool_size 3 and no overflow: all three connections are out, none beyond them was made
            assert database.engine.pool.size() == 3
            assert database.engine.pool.checkedout() == 3
            assert database.engine.pool.overflow() == 0
    finally:
        await database.dispose()
