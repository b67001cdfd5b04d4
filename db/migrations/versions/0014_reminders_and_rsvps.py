"""Reminders at chosen offsets and RSVPs: two new tables

Revision ID: 0014
Revises: 0007
Create Date: 2026-12-06 23:45:00

New tables only (backward compatible). Reminder rows in `notifications` have no event_type (their payload names
`live_race_reminder`), so the outbox needs no change.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import db.types

revision: str = "0014"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "race_rsvps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("guild_id", sa.BigInteger(), nullable=False),
        sa.Column("live_race_id", sa.Integer(), nullable=False),
        sa.Column("player_id", sa.Integer(), nullable=False),
        sa.Column("created_at", db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["live_race_id"], ["live_races.id"], name=op.f("fk_race_rsvps_live_race_id_live_races"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["player_id"], ["players.id"], name=op.f("fk_race_rsvps_player_id_players"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_race_rsvps")),
        sa.UniqueConstraint("live_race_id", "player_id", name=op.f("uq_race_rsvps_live_race_id_player_id")),
    )
    op.create_index("ix_race_rsvps_player_id", "race_rsvps", ["player_id"])
    op.create_table(
        "reminder_preferences",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("guild_id", sa.BigInteger(), nullable=False),
        sa.Column("player_id", sa.Integer(), nullable=False),
        sa.Column("offsets", sa.String(length=100), nullable=False),
        sa.Column("updated_at", db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["player_id"], ["players.id"], name=op.f("fk_reminder_preferences_player_id_players"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reminder_preferences")),
        sa.UniqueConstraint("guild_id", "player_id", name=op.f("uq_reminder_preferences_guild_id_player_id")),
    )


def downgrade() -> None:
    op.drop_table("reminder_preferences")
    op.drop_index("ix_race_rsvps_player_id", table_name="race_rsvps")
    op.drop_table("race_rsvps")
