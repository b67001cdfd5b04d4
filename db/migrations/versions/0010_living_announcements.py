"""Living announcements: the message id of each race's announcement post, edited in place

Revision ID: 0010
Revises: 0004
Create Date: 2026-12-06 22:30:00

A new table only (backward compatible). `notifications.kind` is a VARCHAR without a CHECK constraint, so its new
value `channel_edit` and the new event type `live_race_rescheduled` need no change to the table.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import db.types

revision: str = "0010"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "announcement_posts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("guild_id", sa.BigInteger(), nullable=False),
        sa.Column("live_race_id", sa.Integer(), nullable=False),
        sa.Column("channel_id", sa.BigInteger(), nullable=False),
        sa.Column("message_id", sa.BigInteger(), nullable=False),
        sa.Column("recreated", sa.Integer(), nullable=False),
        sa.Column("created_at", db.types.UTCDateTime(), nullable=False),
        sa.Column("updated_at", db.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_announcement_posts")),
        sa.UniqueConstraint(
            "live_race_id", "channel_id", name=op.f("uq_announcement_posts_live_race_id_channel_id")
        ),
    )


def downgrade() -> None:
    op.drop_table("announcement_posts")
