"""seasons: race templates, recurring series, tournament phases and seasons

Revision ID: 0006
Revises: 0002

New tables only: race_templates, race_series, series_occurrences (one row per occurrence of a series: its live
race, or a skip; the primary key (series, date) is what makes the series job create each occurrence once),
tournament_phases, phase_pools (a pool's phase), phase_standings (a closed phase's ranks and who advanced),
seasons and season_tournaments. Existing tables are not altered (on SQLite, recreating `live_races` or `pools`
with foreign keys on would run the ON DELETE actions of the tables that refer to them), and existing rows need
no values: no race belongs to a series, no pool to a phase.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import db.types

revision: str = '0006'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('seasons',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('guild_id', sa.BigInteger(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('rule', sa.Enum('sum', 'best', name='season_rule', native_enum=False, length=32), nullable=False),
    sa.Column('best_of', sa.Integer(), nullable=True),
    sa.Column('created_at', db.types.UTCDateTime(), nullable=False),
    sa.Column('updated_at', db.types.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_seasons')),
    sa.UniqueConstraint('guild_id', 'name', name=op.f('uq_seasons_guild_id_name'))
    )
    op.create_table('race_templates',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('guild_id', sa.BigInteger(), nullable=False),
    sa.Column('tournament_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('pool_ids', sa.JSON(), nullable=False),
    sa.Column('title_pattern', sa.String(length=200), nullable=True),
    sa.Column('start_time', sa.String(length=5), nullable=True),
    sa.Column('timezone', sa.String(length=64), nullable=True),
    sa.Column('room_profile_id', sa.Integer(), nullable=True),
    sa.Column('room_settings', sa.JSON(), nullable=False),
    sa.Column('created_at', db.types.UTCDateTime(), nullable=False),
    sa.Column('updated_at', db.types.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['room_profile_id'], ['room_profiles.id'], name=op.f('fk_race_templates_room_profile_id_room_profiles'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['tournament_id'], ['tournaments.id'], name=op.f('fk_race_templates_tournament_id_tournaments'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_race_templates')),
    sa.UniqueConstraint('tournament_id', 'name', name=op.f('uq_race_templates_tournament_id_name'))
    )
    op.create_table('season_tournaments',
    sa.Column('season_id', sa.Integer(), nullable=False),
    sa.Column('tournament_id', sa.Integer(), nullable=False),
    sa.Column('added_at', db.types.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['season_id'], ['seasons.id'], name=op.f('fk_season_tournaments_season_id_seasons'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tournament_id'], ['tournaments.id'], name=op.f('fk_season_tournaments_tournament_id_tournaments'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('season_id', 'tournament_id', name=op.f('pk_season_tournaments'))
    )
    with op.batch_alter_table('season_tournaments', schema=None) as batch_op:
        batch_op.create_index('ix_season_tournaments_tournament_id', ['tournament_id'], unique=False)

    op.create_table('tournament_phases',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tournament_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('status', sa.Enum('open', 'closed', name='phase_status', native_enum=False, length=32), nullable=False),
    sa.Column('advance_count', sa.Integer(), nullable=True),
    sa.Column('closed_at', db.types.UTCDateTime(), nullable=True),
    sa.Column('created_at', db.types.UTCDateTime(), nullable=False),
    sa.Column('updated_at', db.types.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['tournament_id'], ['tournaments.id'], name=op.f('fk_tournament_phases_tournament_id_tournaments'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tournament_phases')),
    sa.UniqueConstraint('tournament_id', 'name', name=op.f('uq_tournament_phases_tournament_id_name')),
    sa.UniqueConstraint('tournament_id', 'position', name=op.f('uq_tournament_phases_tournament_id_position'))
    )
    op.create_table('phase_pools',
    sa.Column('pool_id', sa.Integer(), nullable=False),
    sa.Column('phase_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['phase_id'], ['tournament_phases.id'], name=op.f('fk_phase_pools_phase_id_tournament_phases'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['pool_id'], ['pools.id'], name=op.f('fk_phase_pools_pool_id_pools'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('pool_id', name=op.f('pk_phase_pools'))
    )
    with op.batch_alter_table('phase_pools', schema=None) as batch_op:
        batch_op.create_index('ix_phase_pools_phase_id', ['phase_id'], unique=False)

    op.create_table('phase_standings',
    sa.Column('phase_id', sa.Integer(), nullable=False),
    sa.Column('player_id', sa.Integer(), nullable=False),
    sa.Column('rank', sa.Integer(), nullable=True),
    sa.Column('score', sa.Float(), nullable=True),
    sa.Column('advanced', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['phase_id'], ['tournament_phases.id'], name=op.f('fk_phase_standings_phase_id_tournament_phases'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['player_id'], ['players.id'], name=op.f('fk_phase_standings_player_id_players'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('phase_id', 'player_id', name=op.f('pk_phase_standings'))
    )
    with op.batch_alter_table('phase_standings', schema=None) as batch_op:
        batch_op.create_index('ix_phase_standings_player_id', ['player_id'], unique=False)

    op.create_table('race_series',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('guild_id', sa.BigInteger(), nullable=False),
    sa.Column('tournament_id', sa.Integer(), nullable=False),
    sa.Column('template_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('rrule', sa.String(length=500), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('starts_on', sa.Date(), nullable=False),
    sa.Column('until', db.types.UTCDateTime(), nullable=True),
    sa.Column('count', sa.Integer(), nullable=True),
    sa.Column('status', sa.Enum('active', 'paused', 'ended', name='series_status', native_enum=False, length=32), nullable=False),
    sa.Column('status_reason', sa.Text(), nullable=True),
    sa.Column('created_by', sa.String(length=120), nullable=False),
    sa.Column('created_at', db.types.UTCDateTime(), nullable=False),
    sa.Column('updated_at', db.types.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['template_id'], ['race_templates.id'], name=op.f('fk_race_series_template_id_race_templates'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['tournament_id'], ['tournaments.id'], name=op.f('fk_race_series_tournament_id_tournaments'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_race_series')),
    sa.UniqueConstraint('tournament_id', 'name', name=op.f('uq_race_series_tournament_id_name'))
    )
    with op.batch_alter_table('race_series', schema=None) as batch_op:
        batch_op.create_index('ix_race_series_status', ['status'], unique=False)

    op.create_table('series_occurrences',
    sa.Column('series_id', sa.Integer(), nullable=False),
    sa.Column('occurrence_date', sa.Date(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('kind', sa.Enum('created', 'moved', 'skipped', name='occurrence_kind', native_enum=False, length=32), nullable=False),
    sa.Column('live_race_id', sa.Integer(), nullable=True),
    sa.Column('created_at', db.types.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['live_race_id'], ['live_races.id'], name=op.f('fk_series_occurrences_live_race_id_live_races'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['series_id'], ['race_series.id'], name=op.f('fk_series_occurrences_series_id_race_series'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('series_id', 'occurrence_date', name=op.f('pk_series_occurrences'))
    )
    with op.batch_alter_table('series_occurrences', schema=None) as batch_op:
        batch_op.create_index('ix_series_occurrences_live_race_id', ['live_race_id'], unique=True)



def downgrade() -> None:
    with op.batch_alter_table('series_occurrences', schema=None) as batch_op:
        batch_op.drop_index('ix_series_occurrences_live_race_id')

    op.drop_table('series_occurrences')
    with op.batch_alter_table('race_series', schema=None) as batch_op:
        batch_op.drop_index('ix_race_series_status')

    op.drop_table('race_series')
    with op.batch_alter_table('phase_standings', schema=None) as batch_op:
        batch_op.drop_index('ix_phase_standings_player_id')

    op.drop_table('phase_standings')
    with op.batch_alter_table('phase_pools', schema=None) as batch_op:
        batch_op.drop_index('ix_phase_pools_phase_id')

    op.drop_table('phase_pools')
    op.drop_table('tournament_phases')
    with op.batch_alter_table('season_tournaments', schema=None) as batch_op:
        batch_op.drop_index('ix_season_tournaments_tournament_id')

    op.drop_table('season_tournaments')
    op.drop_table('race_templates')
    op.drop_table('seasons')
