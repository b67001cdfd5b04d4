"""templates: lead time, announcement channel and ping role (and the races made from them); missed occurrences

Revision ID: 0011
Revises: 0010

New nullable columns only, added with ALTER TABLE … ADD COLUMN (no table is recreated, so SQLite runs no ON DELETE
action of the tables that refer to them); NULL keeps today's behaviour:

- `race_templates` and `live_races`: `room_open_lead_minutes`, `announcement_channel_id`, `announcement_role_id`.
  A race made from a template copies them; a race's own value wins over its tournament's, which wins over the
  server's. Existing races and templates have none.
- `race_series.checked_through`: the instant up to which the series job has accounted for every occurrence (made
  it, or reported it missed). NULL for existing series: the job sets it on its first run and reports nothing before.

`series_occurrences.kind` is a VARCHAR (enums are stored as strings, without a CHECK constraint), so its new value
`missed` needs no change to the table.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import db.types

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_RACE_COLUMNS = ("race_templates", "live_races")


def upgrade() -> None:
    for table in _RACE_COLUMNS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("room_open_lead_minutes", sa.Integer(), nullable=True))
            batch_op.add_column(sa.Column("announcement_channel_id", sa.BigInteger(), nullable=True))
            batch_op.add_column(sa.Column("announcement_role_id", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("race_series", schema=None) as batch_op:
        batch_op.add_column(sa.Column("checked_through", db.types.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("race_series", schema=None) as batch_op:
        batch_op.drop_column("checked_through")
    for table in _RACE_COLUMNS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("announcement_role_id")
            batch_op.drop_column("announcement_channel_id")
            batch_op.drop_column("room_open_lead_minutes")
