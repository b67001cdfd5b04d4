"""A member can turn every DM from one server off: guild_players.dms_off_at

Revision ID: 0016
Revises: 0012
Create Date: 2026-12-07 01:30:00

A nullable column (backward compatible): NULL, the default, changes nothing. Set by a DM's "No more DMs from …"
button; the outbox, the reminders job and the dispatcher then leave that member's DMs from that server out.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import db.types

revision: str = "0016"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("guild_players") as batch:
        batch.add_column(sa.Column("dms_off_at", db.types.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("guild_players") as batch:
        batch.drop_column("dms_off_at")
