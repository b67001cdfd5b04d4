"""command ergonomics: a player's own time zone, personal calendar feed keys

Revision ID: 0005
Revises: 0006
Create Date: 2026-12-08 10:00:00

`players.timezone` is NULL for everyone at first (the server's zone applies), so no data migration is needed;
`calendar_keys` starts empty (a key is made when a member first asks for their feed).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import db.types

revision: str = '0005'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('players', schema=None) as batch_op:
        batch_op.add_column(sa.Column('timezone', sa.String(length=64), nullable=True))
    op.create_table('calendar_keys',
    sa.Column('guild_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('player_id', sa.Integer(), nullable=False),
    sa.Column('secret', sa.String(length=64), nullable=False),
    sa.Column('created_at', db.types.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['player_id'], ['players.id'], name=op.f('fk_calendar_keys_player_id_players'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('guild_id', 'player_id', name=op.f('pk_calendar_keys')),
    sa.UniqueConstraint('secret', name=op.f('uq_calendar_keys_secret'))
    )


def downgrade() -> None:
    op.drop_table('calendar_keys')
    with op.batch_alter_table('players', schema=None) as batch_op:
        batch_op.drop_column('timezone')
