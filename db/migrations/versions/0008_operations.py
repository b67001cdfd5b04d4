"""operations: process heartbeats, job leases, the last Discord permission check per guild

Revision ID: 0008
Revises: 0005
Create Date: 2026-12-10 10:00:00

New tables only, each empty at first (a process writes its heartbeat at start, a lease row is made the first time
its work is claimed, a permission check when /startline status runs): no data migration. Backward compatible: a
process of the previous release ignores them, so an upgrade can start the new process before stopping the old one.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import db.types

revision: str = '0008'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('process_heartbeats',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('hostname', sa.String(length=255), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('version', sa.String(length=40), nullable=False),
    sa.Column('discord', sa.String(length=40), nullable=False),
    sa.Column('started_at', db.types.UTCDateTime(), nullable=False),
    sa.Column('seen_at', db.types.UTCDateTime(), nullable=False),
    sa.Column('jobs', sa.JSON(), nullable=False),
    sa.Column('racetime', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_process_heartbeats'))
    )
    with op.batch_alter_table('process_heartbeats', schema=None) as batch_op:
        batch_op.create_index('ix_process_heartbeats_seen_at', ['seen_at'], unique=False)
    op.create_table('job_leases',
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('holder', sa.String(length=40), nullable=True),
    sa.Column('held_until', db.types.UTCDateTime(), nullable=True),
    sa.Column('done_at', db.types.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_job_leases'))
    )
    op.create_table('permission_checks',
    sa.Column('guild_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('checked_at', db.types.UTCDateTime(), nullable=False),
    sa.Column('result', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('guild_id', name=op.f('pk_permission_checks'))
    )


def downgrade() -> None:
    op.drop_table('permission_checks')
    op.drop_table('job_leases')
    with op.batch_alter_table('process_heartbeats', schema=None) as batch_op:
        batch_op.drop_index('ix_process_heartbeats_seen_at')
    op.drop_table('process_heartbeats')
