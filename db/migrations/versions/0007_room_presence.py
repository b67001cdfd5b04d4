"""room presence: the messages Startline sends in RaceTime.gg rooms; start and seed reveal room settings

Revision ID: 0007
Revises: 0015
Create Date: 2026-12-06 22:30:00

A new table, empty at first (a row is made when the room presence first sends a message in a room), four nullable
room profile columns (NULL inherits the built-in values) and two nullable live race columns (NULL: the seed shows
when the room opens, as before): no data migration. Backward compatible: a process of the previous release ignores it and never joins the rooms' sockets, so
an upgrade can start the new process before stopping the old one.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import db.types

revision: str = "0007"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "room_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("live_race_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("guid", sa.String(length=36), nullable=False),
        sa.Column("created_at", db.types.UTCDateTime(), nullable=False),
        sa.Column("sent_at", db.types.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["live_race_id"], ["live_races.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("live_race_id", "key"),
    )
    with op.batch_alter_table("room_profiles") as batch:
        batch.add_column(sa.Column("start_mode", sa.String(length=20), nullable=True))
        batch.add_column(sa.Column("min_ready", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("seed_reveal", sa.String(length=20), nullable=True))
        batch.add_column(sa.Column("seed_reveal_minutes", sa.Integer(), nullable=True))
    with op.batch_alter_table("live_races") as batch:
        batch.add_column(sa.Column("seed_reveal", sa.String(length=20), nullable=True))
        batch.add_column(sa.Column("seed_revealed_at", db.types.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("live_races") as batch:
        batch.drop_column("seed_revealed_at")
        batch.drop_column("seed_reveal")
    with op.batch_alter_table("room_profiles") as batch:
        batch.drop_column("seed_reveal_minutes")
        batch.drop_column("seed_reveal")
        batch.drop_column("min_ready")
        batch.drop_column("start_mode")
    op.drop_table("room_messages")
