"""live race concurrency: room_search_after, entrant_count; participant and finisher counts count runs

Revision ID: 0002
Revises: 0003
Create Date: 2026-12-08 10:00:00

`participant_count` used to count every RaceTime.gg entrant at the start: that number moves to the new
`entrant_count`, and `participant_count` / `finisher_count` are recounted from the entrants that got a run.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import db.types

revision: str = "0002"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COUNTED = "SELECT COUNT(*) FROM live_race_entrants e WHERE e.live_race_id = live_races.id AND e.run_id IS NOT NULL"


def upgrade() -> None:
    with op.batch_alter_table("live_races", schema=None) as batch_op:
        batch_op.add_column(sa.Column("room_search_after", db.types.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("entrant_count", sa.Integer(), nullable=False, server_default="0"))
    op.execute("UPDATE live_races SET entrant_count = participant_count")
    op.execute(
        f"UPDATE live_races SET participant_count = ({_COUNTED}), "
        f"finisher_count = ({_COUNTED} AND e.status = 'finished')"
    )


def downgrade() -> None:
    op.execute("UPDATE live_races SET participant_count = entrant_count")
    op.execute(
        "UPDATE live_races SET finisher_count = (SELECT COUNT(*) FROM live_race_entrants e "
        "WHERE e.live_race_id = live_races.id AND e.status = 'finished')"
    )
    with op.batch_alter_table("live_races", schema=None) as batch_op:
        batch_op.drop_column("entrant_count")
        batch_op.drop_column("room_search_after")
