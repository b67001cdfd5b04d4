"""Live race ids are never used twice on SQLite (AUTOINCREMENT).

SQLite gives a new row the largest id plus one, so after the newest race is deleted the next race got its id, and
with it the deleted race's outbox dedupe keys (its scheduled notice was swallowed) and living announcement. The
table is rebuilt with AUTOINCREMENT; `db/migrate.py` runs migrations with foreign keys unenforced so the rebuild's
drop of the old table does not touch the rows that refer to it, and checks every reference before committing.
PostgreSQL's sequences never reuse a value: nothing to do there.

Revision ID: 0015
Revises: 0011
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0015"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table("live_races", recreate="always", table_kwargs={"sqlite_autoincrement": True}):
        pass
    # Every id handed out so far counts as used, deleted newest ones included where the audit log remembers them.
    op.execute("DELETE FROM sqlite_sequence WHERE name IN ('live_races', '_alembic_tmp_live_races')")
    op.execute(
        "INSERT INTO sqlite_sequence (name, seq) SELECT 'live_races', max(coalesce(m, 0)) FROM ("
        " SELECT max(id) AS m FROM live_races"
        " UNION ALL SELECT max(target_id) FROM audit_entries WHERE target_type = 'live_race')"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table("live_races", recreate="always", table_kwargs={"sqlite_autoincrement": False}):
        pass
