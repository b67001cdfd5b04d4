"""Migration 0012: `permalinks` becomes `seeds` and `permalink_id` becomes `seed_id`, rows and references kept.

The database is built at 0013 (the revision before 0012) with plain SQL, so the test keeps meaning the same
whatever later migrations add; it goes up, down and up again, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import delete, inspect, select, text
from sqlalchemy.exc import IntegrityError

from db import migrate
from db.models import LiveRace, Run, Seed
from db.session import Database
from tests.conftest import GUILD

NOW = datetime(2026, 12, 1, 19, tzinfo=UTC)
BEFORE = "0013"


async def _rows(database: Database, sql: str) -> list[tuple]:
    async with database.engine.connect() as connection:
        return [tuple(row) for row in (await connection.execute(text(sql))).all()]


async def _schema(database: Database) -> dict[str, object]:
    """Tables, and the names of the constraints and indexes of the three renamed tables."""

    def named(name: str | None) -> bool:
        return name is not None and ("permalink" in name or "seed" in name)

    def read(connection) -> dict[str, object]:
        inspector = inspect(connection)
        tables = set(inspector.get_table_names())
        names: dict[str, object] = {"tables": tables & {"permalinks", "seeds"}}
        for table in sorted(tables & {"permalinks", "seeds", "live_races", "runs"}):
            own = table in {"permalinks", "seeds"}  # every constraint of the renamed table, else the named ones
            names[table] = {
                "columns": sorted(c["name"] for c in inspector.get_columns(table) if named(c["name"])),
                "foreign_keys": sorted(
                    (fk["name"], tuple(fk["constrained_columns"]), fk["referred_table"])
                    for fk in inspector.get_foreign_keys(table)
                    if own or named(fk["name"])
                ),
                "unique": sorted(u["name"] for u in inspector.get_unique_constraints(table) if own or named(u["name"])),
                "indexes": sorted(
                    i["name"]
                    for i in inspector.get_indexes(table)
                    if named(i["name"]) and not i.get("duplicates_constraint")  # PostgreSQL: a unique's index
                ),
                "primary_key": inspector.get_pk_constraint(table)["name"] if own else None,
            }
        return names

    async with database.engine.connect() as connection:
        return await connection.run_sync(read)


async def _fill(database: Database) -> None:
    async with database.engine.begin() as connection:
        for statement in (
            "INSERT INTO tournaments (id, guild_id, name, description, active, runs_per_pool, max_reattempts, "
            "created_at, updated_at) VALUES (1, :guild, 'Cup', '', true, 1, -1, :now, :now)",
            "INSERT INTO pools (id, tournament_id, name, description, created_at) VALUES (1, 1, 'A', '', :now)",
            "INSERT INTO permalinks (id, pool_id, url, notes, par_time, used_in_live_race, created_at) "
            "VALUES (1, 1, 'https://seed/1', 'hard', 3600.5, true, :now), (2, 1, 'https://seed/2', '', NULL, false, "
            ":now)",
            "INSERT INTO players (id, discord_user_id, dm_blocked, created_at, updated_at) "
            "VALUES (1, 11, false, :now, :now)",
            "INSERT INTO live_races (id, guild_id, tournament_id, pool_id, permalink_id, title, scheduled_at, "
            "room_settings, status, marker, open_attempts, participant_count, finisher_count, created_by, created_at, "
            "updated_at) VALUES (1, :guild, 1, 1, 1, 'Raced', :now, '{}', 'finished', 'm1', 0, 1, 1, 'x', :now, :now), "
            "(2, :guild, 1, 1, NULL, 'Later', :now, '{}', 'scheduled', 'm2', 0, 0, 0, 'x', :now, :now), "
            "(3, :guild, 1, 1, 2, 'Deleted', :now, '{}', 'scheduled', 'm3', 0, 0, 0, 'x', :now, :now)",
            "DELETE FROM live_races WHERE id = 3",  # the newest race's id stays used (migration 0015)
            "INSERT INTO runs (id, tournament_id, permalink_id, player_id, live_race_id, status, reattempted, "
            "source, created_at, updated_at) VALUES (1, 1, 1, 1, 1, 'finished', false, 'live_race', :now, :now)",
            "INSERT INTO audit_entries (guild_id, actor_type, actor_name, action, target_type, target_id, details, "
            "created_at) VALUES (:guild, 'system', 'x', 'permalink.create', 'permalink', 1, '{}', :now), "
            "(:guild, 'system', 'x', 'permalink.import', 'pool', 1, '{}', :now), "
            "(:guild, 'system', 'x', 'live_race.create', 'live_race', 1, '{}', :now)",
        ):
            await connection.execute(text(statement), {"now": NOW, "guild": GUILD})
        if connection.dialect.name == "postgresql":  # rows given their ids leave the sequence behind
            await connection.execute(text("SELECT setval('permalinks_id_seq', 2)"))


async def _race_counter(database: Database) -> list[tuple]:
    if database.engine.dialect.name != "sqlite":
        return [(3,)]
    return await _rows(database, "SELECT seq FROM sqlite_sequence WHERE name = 'live_races'")


async def test_seeds_are_renamed_with_their_rows_and_references_and_back(settings) -> None:
    database = Database(settings.database.url)
    try:
        await migrate.upgrade(database, BEFORE)
        await _fill(database)
        before = await _schema(database)
        assert before["tables"] == {"permalinks"}

        await migrate.upgrade(database)
        assert await _schema(database) == {
            "tables": {"seeds"},
            "live_races": {
                "columns": ["seed_id", "seed_reveal", "seed_revealed_at"],
                "foreign_keys": [("fk_live_races_seed_id_seeds", ("seed_id",), "seeds")],
                "unique": [],
                "indexes": [],
                "primary_key": None,
            },
            "runs": {
                "columns": ["seed_id"],
                "foreign_keys": [("fk_runs_seed_id_seeds", ("seed_id",), "seeds")],
                "unique": [],
                "indexes": ["ix_runs_seed_id"],
                "primary_key": None,
            },
            "seeds": {
                "columns": [],
                "foreign_keys": [("fk_seeds_pool_id_pools", ("pool_id",), "pools")],
                "unique": ["uq_seeds_pool_id_url"],
                "indexes": [],
                "primary_key": "pk_seeds",
            },
        }
        async with database.read() as session:
            seeds = (await session.scalars(select(Seed).order_by(Seed.id))).all()
            assert [(s.id, s.pool_id, s.url, s.notes, s.par_time, s.used_in_live_race) for s in seeds] == [
                (1, 1, "https://seed/1", "hard", 3600.5, True),
                (2, 1, "https://seed/2", "", None, False),
            ]
            assert (await session.execute(select(LiveRace.id, LiveRace.seed_id).order_by(LiveRace.id))).all() == [
                (1, 1),
                (2, None),
            ]
            assert (await session.execute(select(Run.id, Run.seed_id))).all() == [(1, 1)]
        assert await _rows(database, "SELECT action, target_type FROM audit_entries ORDER BY id") == [
            ("seed.create", "seed"),
            ("seed.import", "pool"),
            ("live_race.create", "live_race"),
        ]
        assert await _race_counter(database) == [(3,)]
        # The references hold: a raced seed cannot go; a new seed gets the next id (PostgreSQL: the renamed sequence).
        with pytest.raises(IntegrityError):
            async with database.transaction() as session:
                await session.execute(delete(Seed).where(Seed.id == 1))
        async with database.transaction() as session:
            session.add(Seed(pool_id=1, url="https://seed/3"))
        assert await _rows(database, "SELECT id FROM seeds ORDER BY id") == [(1,), (2,), (3,)]

        await migrate.downgrade(database, BEFORE)
        assert await _schema(database) == before
        assert await _rows(database, "SELECT id, url FROM permalinks ORDER BY id") == [
            (1, "https://seed/1"),
            (2, "https://seed/2"),
            (3, "https://seed/3"),
        ]
        assert await _rows(database, "SELECT id, permalink_id FROM live_races ORDER BY id") == [(1, 1), (2, None)]
        assert await _rows(database, "SELECT id, permalink_id FROM runs") == [(1, 1)]
        assert await _rows(database, "SELECT action, target_type FROM audit_entries ORDER BY id") == [
            ("permalink.create", "permalink"),
            ("permalink.import", "pool"),
            ("live_race.create", "live_race"),
        ]
        assert await _race_counter(database) == [(3,)]

        await migrate.upgrade(database)
        assert await migrate.current_revision(database) == migrate.head_revision()
        assert await _rows(database, "SELECT count(*) FROM seeds") == [(3,)]
    finally:
        await database.dispose()
