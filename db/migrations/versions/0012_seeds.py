"""One word for a seed: table `permalinks` becomes `seeds`, every `permalink_id` column becomes `seed_id`

Revision ID: 0012
Revises: 0013
Create Date: 2026-12-07 01:40:00

Renamed in place, rows and references kept: the table, its columns `live_races.permalink_id` and
`runs.permalink_id`, and every constraint and index named after them (`pk_seeds`, `uq_seeds_pool_id_url`,
`fk_seeds_pool_id_pools`, `fk_live_races_seed_id_seeds`, `fk_runs_seed_id_seeds`, `ix_runs_seed_id`), so a
migrated database has exactly the names a fresh one gets from the models. Audit entries about seeds are renamed
too (`permalink.create` -> `seed.create`, target type `permalink` -> `seed`); the details of older entries keep
the key they were written with (`permalink_id`).

PostgreSQL renames natively. SQLite cannot rename a constraint, so each of the three tables is rebuilt from its own
stored definition with the names replaced (rows copied as they are, indexes made again, the live races' AUTOINCREMENT
counter kept); `db/migrate.py` runs migrations with foreign keys unenforced, so dropping the old tables runs no ON
DELETE action, and checks every reference before committing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from alembic import op
from sqlalchemy import text

revision: str = "0012"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (old, new) for upgrade; downgrade swaps them. Matched as whole parts of a name: `seed_reveal` stays.
NAMES = (("permalinks", "seeds"), ("permalink_id", "seed_id"))
AUDIT_ACTIONS = ("create", "import", "update", "delete")


def _renamer(pairs: Sequence[tuple[str, str]]):
    pattern = re.compile(r"(?<![A-Za-z0-9])(" + "|".join(re.escape(old) for old, _ in pairs) + r")(?![A-Za-z0-9])")
    mapping = dict(pairs)
    return lambda sql: pattern.sub(lambda m: mapping[m.group(1)], sql)


def upgrade() -> None:
    _rename(NAMES)
    _rename_audit("permalink", "seed")


def downgrade() -> None:
    _rename_audit("seed", "permalink")
    _rename(tuple((new, old) for old, new in NAMES))


def _rename_audit(old: str, new: str) -> None:
    for action in AUDIT_ACTIONS:
        op.execute(
            text("UPDATE audit_entries SET action = :new WHERE action = :old").bindparams(
                old=f"{old}.{action}", new=f"{new}.{action}"
            )
        )
    op.execute(text("UPDATE audit_entries SET target_type = :new WHERE target_type = :old").bindparams(old=old, new=new))


def _rename(pairs: Sequence[tuple[str, str]]) -> None:
    (table_old, table_new), (column_old, column_new) = pairs
    if op.get_bind().dialect.name == "sqlite":
        _rename_sqlite(pairs, [(table_old, table_new), ("live_races", "live_races"), ("runs", "runs")])
        return
    op.rename_table(table_old, table_new)
    op.execute(f"ALTER SEQUENCE IF EXISTS {table_old}_id_seq RENAME TO {table_new}_id_seq")
    for constraint in ("pk_{t}", "uq_{t}_pool_id_url", "fk_{t}_pool_id_pools"):
        op.execute(
            f"ALTER TABLE {table_new} RENAME CONSTRAINT {constraint.format(t=table_old)} "
            f"TO {constraint.format(t=table_new)}"
        )
    for table in ("live_races", "runs"):
        op.alter_column(table, column_old, new_column_name=column_new)
        op.execute(
            f"ALTER TABLE {table} RENAME CONSTRAINT fk_{table}_{column_old}_{table_old} "
            f"TO fk_{table}_{column_new}_{table_new}"
        )
    op.execute(f"ALTER INDEX ix_runs_{column_old} RENAME TO ix_runs_{column_new}")


def _rename_sqlite(pairs: Sequence[tuple[str, str]], tables: Sequence[tuple[str, str]]) -> None:
    """Rebuild each table from its stored CREATE TABLE with the names replaced: the 12-step way of sqlite.org's
    "Making Other Kinds Of Table Schema Changes", driven by the table's own definition so no column is forgotten."""
    bind = op.get_bind()
    if bind.exec_driver_sql("PRAGMA foreign_keys").scalar():
        raise RuntimeError("migration 0012 rebuilds tables: run it through db/migrate.py (run.py db upgrade)")
    rename = _renamer(pairs)
    for old, new in tables:
        (create,) = bind.execute(
            text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = :name"), {"name": old}
        ).one()
        indexes = bind.execute(
            text("SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = :name AND sql IS NOT NULL"),
            {"name": old},
        ).scalars()
        indexes = [rename(sql) for sql in indexes]
        counter = bind.execute(text("SELECT seq FROM sqlite_sequence WHERE name = :name"), {"name": old}).scalar()
        temporary = f"_tmp_0012_{new}"
        header = re.compile(r'^\s*CREATE TABLE\s+("[^"]+"|\S+)\s*\(', re.IGNORECASE)
        body = header.sub("", rename(create), count=1)
        op.execute(f'CREATE TABLE "{temporary}" ({body}')
        op.execute(f'INSERT INTO "{temporary}" SELECT * FROM "{old}"')  # same columns, same order
        op.execute(f'DROP TABLE "{old}"')
        op.execute(f'ALTER TABLE "{temporary}" RENAME TO "{new}"')
        for sql in indexes:
            op.execute(sql)
        if counter is not None:  # AUTOINCREMENT (live races): ids handed out before stay used
            op.execute(text("DELETE FROM sqlite_sequence WHERE name IN (:new, :tmp)").bindparams(new=new, tmp=temporary))
            op.execute(text("INSERT INTO sqlite_sequence (name, seq) VALUES (:new, :seq)").bindparams(new=new, seq=counter))
