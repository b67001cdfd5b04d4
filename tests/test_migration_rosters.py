"""Migration 0003 (guild rosters) on a database of 0.1.0 with data: each membership gets its player's name and
unverified link, verified links stay on the player, nothing that refers to a player is lost (on SQLite the columns
are dropped without recreating `players`, whose ON DELETE CASCADE would otherwise empty the memberships), and the
downgrade gives the old shape back."""

from __future__ import annotations

from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import text

from db import migrate
from db.session import Database

REVISION = "0003"
T0 = "2026-01-01 10:00:00.000000"
A, B = 1001, 2002


def _to(revision: str, *, down: bool = False):
    def run(connection) -> None:
        config = migrate.alembic_config()
        config.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(config, revision)

    return run


async def _rows(database: Database, sql: str) -> list[tuple]:
    async with database.engine.connect() as connection:
        return [tuple(row) for row in (await connection.execute(text(sql))).all()]


SEED = [
    # 1: verified link, member of A and B; 2: a moderator's link, member of A and B; 3: no link, member of A only
    "INSERT INTO players (id, discord_user_id, display_name, racetime_id, racetime_name, racetime_verified, "
    "racetime_linked_at, dm_blocked, created_at, updated_at) VALUES "
    f"(1, 11, 'alice', 'AliceRT00000001', 'alice#1', true, '{T0}', false, '{T0}', '{T0}'), "
    f"(2, 22, 'bob', 'BobRT0000000002', 'bob#2', false, '{T0}', false, '{T0}', '{T0}'), "
    f"(3, 33, 'carol', NULL, NULL, false, NULL, false, '{T0}', '{T0}')",
    "INSERT INTO guild_players (guild_id, player_id, joined_at) VALUES "
    f"({A}, 1, '{T0}'), ({B}, 1, '{T0}'), ({A}, 2, '{T0}'), ({B}, 2, '{T0}'), ({A}, 3, '{T0}')",
    "INSERT INTO notification_subscriptions (id, player_id, event_type, guild_id, active, created_at, updated_at) "
    f"VALUES (1, 2, 'live_race_started', NULL, true, '{T0}', '{T0}')",
]


async def test_names_and_unverified_links_move_to_every_membership(settings) -> None:
    database = Database(settings.database.url)
    try:
        async with database.engine.begin() as connection:
            await connection.run_sync(_to("0001"))
        async with database.engine.begin() as connection:
            for statement in SEED:
                await connection.execute(text(statement))
        async with database.engine.begin() as connection:
            await connection.run_sync(_to(REVISION))

        assert await _rows(
            database,
            "SELECT guild_id, player_id, display_name, racetime_id, racetime_name, left_at FROM guild_players "
            "ORDER BY player_id, guild_id",
        ) == [
            (A, 1, "alice", None, None, None),
            (B, 1, "alice", None, None, None),
            (A, 2, "bob", "BobRT0000000002", "bob#2", None),
            (B, 2, "bob", "BobRT0000000002", "bob#2", None),
            (A, 3, "carol", None, None, None),
        ]
        assert await _rows(database, "SELECT id, racetime_id, racetime_name FROM players ORDER BY id") == [
            (1, "AliceRT00000001", "alice#1"),
            (2, None, None),
            (3, None, None),
        ]
        assert await _rows(database, "SELECT player_id FROM notification_subscriptions") == [(2,)]

        down_revision = ScriptDirectory.from_config(migrate.alembic_config()).get_revision(REVISION).down_revision
        async with database.engine.begin() as connection:
            await connection.run_sync(_to(down_revision, down=True))
        assert await _rows(
            database, "SELECT id, display_name, racetime_id, racetime_verified FROM players ORDER BY id"
        ) == [
            (1, "alice", "AliceRT00000001", True),
            (2, "bob", "BobRT0000000002", False),
            (3, "carol", None, False),
        ]
        assert len(await _rows(database, "SELECT * FROM guild_players")) == 5
    finally:
        await database.dispose()
