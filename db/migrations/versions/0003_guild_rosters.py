"""guild rosters: names, unverified RaceTime.gg links and leaving are per guild

Revision ID: 0003
Revises: 0001

A player's display name and a moderator's (unverified) RaceTime.gg link move from `players` to each of the
player's `guild_players` rows, so a guild changes only its own roster entry; `players` keeps the verified link
(the one the player proved through OAuth), which wins in every guild. `guild_players.left_at` marks a member who
left the server or was banned.

Data: every membership gets its player's name, and the player's unverified link if they had one (the old global
uniqueness of `players.racetime_id` makes it unique per guild); unverified links are then removed from `players`.

SQLite: the two columns of `players` are dropped with SQLite's own ALTER TABLE … DROP COLUMN (3.35 or newer),
never by recreating the table: dropping `players` with foreign keys on would run the ON DELETE actions of every
table that refers to it. `guild_players` (which nothing refers to) is recreated in batch mode.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import db.types

revision: str = "0003"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

players = sa.table(
    "players",
    sa.column("id", sa.Integer()),
    sa.column("display_name", sa.String()),
    sa.column("racetime_id", sa.String()),
    sa.column("racetime_name", sa.String()),
    sa.column("racetime_verified", sa.Boolean()),
    sa.column("racetime_linked_at", db.types.UTCDateTime()),
)
guild_players = sa.table(
    "guild_players",
    sa.column("guild_id", sa.BigInteger()),
    sa.column("player_id", sa.Integer()),
    sa.column("display_name", sa.String()),
    sa.column("racetime_id", sa.String()),
    sa.column("racetime_name", sa.String()),
    sa.column("racetime_linked_at", db.types.UTCDateTime()),
    sa.column("joined_at", db.types.UTCDateTime()),
    sa.column("updated_at", db.types.UTCDateTime()),
)


def _require_native_drop_column() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite" and bind.dialect.dbapi.sqlite_version_info < (3, 35, 0):
        raise RuntimeError(
            f"this migration needs SQLite 3.35 or newer (ALTER TABLE … DROP COLUMN); this Python has "
            f"{bind.dialect.dbapi.sqlite_version}"
        )


def _of_player(column: str) -> sa.ScalarSelect:
    return sa.select(players.c[column]).where(players.c.id == guild_players.c.player_id).scalar_subquery()


def upgrade() -> None:
    _require_native_drop_column()
    with op.batch_alter_table("guild_players", schema=None) as batch_op:
        batch_op.add_column(sa.Column("display_name", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("racetime_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("racetime_name", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("racetime_linked_at", db.types.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("left_at", db.types.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("updated_at", db.types.UTCDateTime(), nullable=True))

    # Every membership gets the player's name; the unverified links go to every membership of their player.
    op.execute(guild_players.update().values(display_name=_of_player("display_name"), updated_at=guild_players.c.joined_at))
    unverified = sa.exists().where(
        players.c.id == guild_players.c.player_id,
        players.c.racetime_id.is_not(None),
        players.c.racetime_verified.is_(False),
    )
    op.execute(
        guild_players.update()
        .where(unverified)
        .values(
            racetime_id=_of_player("racetime_id"),
            racetime_name=_of_player("racetime_name"),
            racetime_linked_at=_of_player("racetime_linked_at"),
        )
    )
    op.execute(
        players.update()
        .where(players.c.racetime_verified.is_(False))
        .values(racetime_id=None, racetime_name=None, racetime_linked_at=None)
    )

    with op.batch_alter_table("guild_players", schema=None) as batch_op:
        batch_op.alter_column("display_name", existing_type=sa.String(length=100), nullable=False)
        batch_op.alter_column("updated_at", existing_type=db.types.UTCDateTime(), nullable=False)
        batch_op.create_unique_constraint(op.f("uq_guild_players_guild_id_racetime_id"), ["guild_id", "racetime_id"])

    op.drop_column("players", "display_name")
    op.drop_column("players", "racetime_verified")


def downgrade() -> None:
    _require_native_drop_column()
    # Added NOT NULL with a default (SQLite cannot tighten a column of `players` without recreating it).
    op.add_column("players", sa.Column("display_name", sa.String(length=100), nullable=False, server_default=""))
    op.add_column("players", sa.Column("racetime_verified", sa.Boolean(), nullable=False, server_default=sa.false()))
    bind = op.get_bind()
    bind.execute(players.update().where(players.c.racetime_id.is_not(None)).values(racetime_verified=True))
    # A player's name: the one of the guild they joined first. Their unverified link: the first one found, when
    # no other player has that account (a link was unique across guilds before this revision).
    rows = bind.execute(
        sa.select(
            guild_players.c.player_id,
            guild_players.c.display_name,
            guild_players.c.racetime_id,
            guild_players.c.racetime_name,
            guild_players.c.racetime_linked_at,
        ).order_by(guild_players.c.joined_at, guild_players.c.guild_id)
    ).all()
    taken = set(bind.execute(sa.select(players.c.racetime_id).where(players.c.racetime_id.is_not(None))).scalars())
    named: set[int] = set()
    linked = {
        player_id for (player_id,) in bind.execute(sa.select(players.c.id).where(players.c.racetime_id.is_not(None)))
    }
    for player_id, name, racetime_id, racetime_name, linked_at in rows:
        values: dict[str, object] = {}
        if player_id not in named:
            named.add(player_id)
            values["display_name"] = name
        if racetime_id is not None and player_id not in linked and racetime_id not in taken:
            linked.add(player_id)
            taken.add(racetime_id)
            values.update(racetime_id=racetime_id, racetime_name=racetime_name, racetime_linked_at=linked_at)
        if values:
            bind.execute(players.update().where(players.c.id == player_id).values(**values))

    with op.batch_alter_table("guild_players", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("uq_guild_players_guild_id_racetime_id"), type_="unique")
        batch_op.drop_column("updated_at")
        batch_op.drop_column("left_at")
        batch_op.drop_column("racetime_linked_at")
        batch_op.drop_column("racetime_name")
        batch_op.drop_column("racetime_id")
        batch_op.drop_column("display_name")
