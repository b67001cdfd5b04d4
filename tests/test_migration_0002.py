"""Migration 0002 on a database that has live races: the counts are recounted from the entrants."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import command
from sqlalchemy import text

from db import migrate
from db.session import Database

NOW = datetime(2026, 12, 1, 19, tzinfo=UTC)


def _upgrade_to(connection, revision: str) -> None:
    config = migrate.alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


async def test_counts_of_existing_races_are_recounted(settings) -> None:
    database = Database(settings.database.url)
    try:
        async with database.engine.begin() as connection:
            await connection.run_sync(_upgrade_to, "0001")
            for statement in (
                "INSERT INTO tournaments (id, guild_id, name, description, active, runs_per_pool, max_reattempts, "
                "created_at, updated_at) VALUES (1, 1, 'Cup', '', true, 1, -1, :now, :now)",
                "INSERT INTO pools (id, tournament_id, name, description, created_at) VALUES (1, 1, 'A', '', :now)",
                "INSERT INTO permalinks (id, pool_id, url, notes, used_in_live_race, created_at) "
                "VALUES (1, 1, 'https://seed/1', '', true, :now)",
                "INSERT INTO players (id, discord_user_id, display_name, racetime_verified, dm_blocked, created_at, "
                "updated_at) VALUES (1, 11, 'Alice', false, false, :now, :now), (2, 12, 'Bob', false, false, :now, "
                ":now)",
                # A finished race of the old counting: 4 entrants, 3 finished, 2 of them with a run (1 finished).
                "INSERT INTO live_races (id, guild_id, tournament_id, pool_id, permalink_id, title, scheduled_at, "
                "room_settings, status, marker, open_attempts, participant_count, finisher_count, created_by, "
                "created_at, updated_at) VALUES (1, 1, 1, 1, 1, 'Race', :now, '{}', 'finished', 'abc', 0, 4, 3, "
                "'x', :now, :now), (2, 1, 1, 1, NULL, 'Later', :now, '{}', 'scheduled', 'def', 0, 0, 0, 'x', :now, "
                ":now)",
                "INSERT INTO runs (id, tournament_id, permalink_id, player_id, live_race_id, status, reattempted, "
                "source, created_at, updated_at) VALUES (1, 1, 1, 1, 1, 'finished', false, 'live_race', :now, :now), "
                "(2, 1, 1, 2, 1, 'forfeit', false, 'live_race', :now, :now)",
                "INSERT INTO live_race_entrants (id, live_race_id, racetime_id, racetime_name, player_id, run_id, "
                "counted, status) VALUES (1, 1, 'a', 'Alice', 1, 1, true, 'finished'), "
                "(2, 1, 'b', 'Bob', 2, 2, true, 'forfeit'), (3, 1, 'c', 'Stranger', NULL, NULL, false, 'finished'), "
                "(4, 1, 'd', 'Carol', NULL, NULL, false, 'finished')",
            ):
                await connection.execute(text(statement), {"now": NOW})
        await migrate.upgrade(database)
        async with database.engine.connect() as connection:
            rows = (
                await connection.execute(
                    text(
                        "SELECT id, entrant_count, participant_count, finisher_count, room_search_after "
                        "FROM live_races ORDER BY id"
                    )
                )
            ).all()
    finally:
        await database.dispose()
    assert [tuple(row) for row in rows] == [(1, 4, 2, 1, None), (2, 0, 0, 0, None)]
