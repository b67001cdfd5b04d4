"""Migration 0015: a live race id is never used twice, also on a SQLite database made before it.

SQLite used to hand a new race the id of the newest race just deleted, and with it that race's outbox dedupe keys
(so the new race's scheduled notice was swallowed) and its living announcement. The database is built at 0011 (the
revision before 0015) with plain SQL, so the test keeps meaning the same whatever later migrations add.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from sqlalchemy import select, text

from bot.services import build_services
from bot.settings import Settings
from db import migrate
from db.models import GuildSettings, LiveRace, Notification, NotificationKind
from db.session import Database
from tests.conftest import GUILD, MODERATOR
from tests.databases import TEST_DATABASE_URL
from tests.fakes.lifecycle import Clock

NOW = datetime(2026, 12, 1, 19, tzinfo=UTC)


def _upgrade_to(connection, revision: str) -> None:
    config = migrate.alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


@pytest.mark.skipif(bool(TEST_DATABASE_URL), reason="SQLite only: PostgreSQL's sequences never reuse an id")
async def test_a_race_made_after_the_newest_was_deleted_gets_a_new_id_and_its_notice(settings: Settings) -> None:
    database = Database(settings.database.url)
    try:
        async with database.engine.begin() as connection:
            await connection.run_sync(_upgrade_to, "0011")
            for statement in (
                "INSERT INTO tournaments (id, guild_id, name, description, active, runs_per_pool, max_reattempts, "
                "created_at, updated_at) VALUES (1, :guild, 'Cup', '', true, 1, -1, :now, :now)",
                "INSERT INTO pools (id, tournament_id, name, description, created_at) VALUES (1, 1, 'A', '', :now)",
                # Race 1 stays; race 2, the newest, was deleted (the audit log remembers it).
                "INSERT INTO live_races (id, guild_id, tournament_id, pool_id, title, scheduled_at, room_settings, "
                "status, marker, open_attempts, participant_count, finisher_count, created_by, created_at, "
                "updated_at) VALUES (1, :guild, 1, 1, 'Kept', :now, '{}', 'scheduled', 'kept', 0, 0, 0, 'x', :now, "
                ":now)",
                "INSERT INTO notifications (kind, guild_id, live_race_id, payload, dedupe_key, status, attempts, "
                "next_attempt_at, created_at) VALUES ('channel', :guild, 1, '{}', 'kept-key', 'sent', 1, :now, :now), "
                "('channel', :guild, NULL, '{}', 'channel:live_race_scheduled:race:2:channel:777', 'expired', 0, "
                ":now, :now)",
                "INSERT INTO audit_entries (guild_id, actor_type, actor_name, action, target_type, target_id, "
                "details, created_at) VALUES (:guild, 'system', 'x', 'live_race.create', 'live_race', 2, '{}', :now)",
            ):
                await connection.execute(text(statement), {"now": NOW, "guild": GUILD})

        await migrate.upgrade(database)  # 0015 rebuilds the table with the rows that refer to it in place

        async with database.read() as session:
            kept = await session.scalar(select(Notification.live_race_id).where(Notification.dedupe_key == "kept-key"))
            assert kept == 1  # no ON DELETE action ran while the table was rebuilt
            assert list(await session.scalars(select(LiveRace.id))) == [1]
        async with database.transaction() as session:
            session.add(GuildSettings(guild_id=GUILD, announcement_channel_id=777))
        services = build_services(settings, database)
        clock = Clock()
        services.live_races.clock = clock
        new = await services.live_races.create(
            GUILD, 1, MODERATOR, pool_id=1, scheduled_at=clock.now + timedelta(hours=3)
        )
        assert new.race.id == 3
        async with database.read() as session:
            keys = select(Notification.dedupe_key).where(
                Notification.live_race_id == new.race.id, Notification.kind != NotificationKind.SCHEDULED_EVENT
            )
            assert list(await session.scalars(keys)) == ["channel:live_race_scheduled:race:3:channel:777"]
        async with database.engine.connect() as connection:
            if connection.dialect.name == "sqlite":
                assert (await connection.execute(text("PRAGMA foreign_keys"))).scalar() == 1  # enforced again
    finally:
        await database.dispose()
