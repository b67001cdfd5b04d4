"""Shared fixtures: settings on a temporary SQLite file, the database, the services."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from bot.actors import Actor
from bot.api import registry
from bot.services import Services, build_services
from bot.settings import Settings, load_settings
from db.models import Base
from db.session import Database
from tests.databases import BASE_TEST_DATABASE_URL, TEST_DATABASE_URL, ensure_database, wipe_postgres

registry.CHECK_DATA_ANSWERS = True  # every plain-data API answer is checked against its route's model

# Run the suite against PostgreSQL by pointing this at an empty database you own (every test wipes it):
#   STARTLINE_TEST_DATABASE_URL=postgresql+asyncpg://startline:startline@127.0.0.1/startline_test ./test.sh

# The live race fixtures (`rt`, `clock`, `app`) shared by the lifecycle, poller, opener and notification tests.
pytest_plugins = ["tests.fakes.lifecycle"]

GUILD = 111_111_111_111_111_111
OTHER_GUILD = 222_222_222_222_222_222
MODERATOR = Actor.player(900_000_000_000_000_001, "moderator")


def pytest_sessionstart(session: pytest.Session) -> None:
    """Under pytest-xdist each worker runs on a PostgreSQL database of its own (tests/databases.py)."""
    if TEST_DATABASE_URL and BASE_TEST_DATABASE_URL and TEST_DATABASE_URL != BASE_TEST_DATABASE_URL:
        asyncio.run(ensure_database(TEST_DATABASE_URL, BASE_TEST_DATABASE_URL))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The tests that start real processes (`slow`) first, in their order: under pytest-xdist the long ones start
    while the short ones fill the other worker, instead of one long test running alone at the end."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


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
        asyncio.run(wipe_postgres(TEST_DATABASE_URL))
    return make_settings(tmp_path)


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
