"""Shared fixtures: settings on a temporary SQLite file, the database, the services."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from bot.actors import Actor
from bot.services import Services, build_services
from bot.settings import Settings, load_settings
from db.models import Base
from db.session import Database

# Run the suite against PostgreSQL by pointing this at an empty database you own (every test wipes it):
#   STARTLINE_TEST_DATABASE_URL=postgresql+asyncpg://startline:startline@127.0.0.1/startline_test ./test.sh
TEST_DATABASE_URL = os.environ.get("STARTLINE_TEST_DATABASE_URL")

# The live race fixtures (`rt`, `clock`, `app`) shared by the lifecycle, poller, opener and notification tests.
pytest_plugins = ["tests.fakes.lifecycle"]

GUILD = 111_111_111_111_111_111
OTHER_GUILD = 222_222_222_222_222_222
MODERATOR = Actor.player(900_000_000_000_000_001, "moderator")


def make_settings(tmp_path: Path, **overrides) -> Settings:
    sections = {
        "database": {"url": TEST_DATABASE_URL or f"sqlite+aiosqlite:///{tmp_path / 'startline.db'}"},
        "api": {"port": 0, "host": "127.0.0.1"},
    }
    for section, values in overrides.items():
        sections.setdefault(section, {}).update(values)
    return load_settings(**sections)


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name in list(os.environ):
        if name.startswith("STARTLINE_"):
            monkeypatch.delenv(name)
    if TEST_DATABASE_URL:
        asyncio.run(_wipe_postgres(TEST_DATABASE_URL))
    return make_settings(tmp_path)


async def _wipe_postgres(url: str) -> None:
    database = Database(url)
    async with database.engine.begin() as connection:
        await connection.exec_driver_sql("DROP SCHEMA public CASCADE")
        await connection.exec_driver_sql("CREATE SCHEMA public")
    await database.dispose()


@pytest_asyncio.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    database = Database(settings.database.url)
    async with database.engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    yield database
    await database.dispose()


@pytest.fixture
def services(settings: Settings, db: Database) -> Services:
    return build_services(settings, db)
