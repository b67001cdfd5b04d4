"""Discord Scheduled Events: each race's event id, the guild's and the tournament's switch, the guild's block

Revision ID: 0013
Revises: 0014
Create Date: 2026-12-06 23:40:00

Backward compatible: a new table and nullable (or defaulted) columns. `notifications.kind` is a VARCHAR without a
CHECK constraint, so its new value `scheduled_event` needs no change to the table.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import db.types

revision: str = "0013"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "race_scheduled_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("guild_id", sa.BigInteger(), nullable=False),
        sa.Column("live_race_id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("created_at", db.types.UTCDateTime(), nullable=False),
        sa.Column("updated_at", db.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_race_scheduled_events")),
        sa.UniqueConstraint("live_race_id", name=op.f("uq_race_scheduled_events_live_race_id")),
    )
    with op.batch_alter_table("guild_settings") as batch:
        batch.add_column(sa.Column("scheduled_events", sa.Boolean(), nullable=False, server_default=sa.true()))
        batch.add_column(sa.Column("scheduled_events_blocked_at", db.types.UTCDateTime(), nullable=True))
    with op.batch_alter_table("tournaments") as batch:
        batch.add_column(sa.Column("scheduled_events", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tournaments") as batch:
        batch.drop_column("scheduled_events")
    with op.batch_alter_table("guild_settings") as batch:
        batch.drop_column("scheduled_events_blocked_at")
        batch.drop_column("scheduled_events")
    op.drop_table("race_scheduled_events")
