"""Interested on a race's Discord Scheduled Event, and the guild's default reminder offsets

Revision ID: 0009
Revises: 0012
Create Date: 2026-12-07 01:30:00

A new table (`race_interests`), a nullable column (`guild_settings.default_reminder_offsets`) and an index on
`race_scheduled_events (guild_id, event_id)`: backward compatible, the previous release ignores all three.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import db.types

revision: str = "0009"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "race_interests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("guild_id", sa.BigInteger(), nullable=False),
        sa.Column("live_race_id", sa.Integer(), nullable=False),
        sa.Column("player_id", sa.Integer(), nullable=False),
        sa.Column("interested", sa.Boolean(), nullable=False),
        sa.Column("updated_at", db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["live_race_id"],
            ["live_races.id"],
            name=op.f("fk_race_interests_live_race_id_live_races"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["player_id"], ["players.id"], name=op.f("fk_race_interests_player_id_players"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_race_interests")),
        sa.UniqueConstraint("live_race_id", "player_id", name=op.f("uq_race_interests_live_race_id_player_id")),
    )
    op.create_index("ix_race_interests_guild_id_player_id", "race_interests", ["guild_id", "player_id"])
    op.create_index(
        "ix_race_scheduled_events_guild_id_event_id", "race_scheduled_events", ["guild_id", "event_id"]
    )
    with op.batch_alter_table("guild_settings") as batch:
        batch.add_column(sa.Column("default_reminder_offsets", sa.String(length=100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("guild_settings") as batch:
        batch.drop_column("default_reminder_offsets")
    op.drop_index("ix_race_scheduled_events_guild_id_event_id", table_name="race_scheduled_events")
    op.drop_index("ix_race_interests_guild_id_player_id", table_name="race_interests")
    op.drop_table("race_interests")
