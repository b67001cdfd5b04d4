"""Idempotency keys of API requests that create something; notifications that expire

Revision ID: 0004
Revises: 0008
Create Date: 2026-12-02 10:00:00

`notifications.status` is a VARCHAR (enums are stored as strings, without a CHECK constraint), so its new value
`expired` needs no change to the table; no existing row becomes expired. `notifications.maybe_delivered` starts
false for every existing row (the server default), except rows whose claim lapsed mid-send: the dispatcher sets it
when it claims them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import db.types

revision: str = "0004"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.add_column(sa.Column("maybe_delivered", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.create_table(
        "idempotency_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("guild_id", sa.BigInteger(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("request", sa.String(length=300), nullable=False),
        sa.Column(
            "state",
            sa.Enum("in_progress", "created", "done", name="idempotency_state", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("claim_id", sa.String(length=40), nullable=False),
        sa.Column("claimed_at", db.types.UTCDateTime(), nullable=False),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("response_body", sa.Text(), nullable=True),
        sa.Column("response_location", sa.String(length=500), nullable=True),
        sa.Column("created_at", db.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idempotency_keys")),
        sa.UniqueConstraint("guild_id", "key", name=op.f("uq_idempotency_keys_guild_id_key")),
    )
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.create_index("ix_idempotency_keys_created_at", ["created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_column("maybe_delivered")
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.drop_index("ix_idempotency_keys_created_at")
    op.drop_table("idempotency_keys")
