"""schedules: cron expressions, time zones, overlap, timeouts, retries, misfires

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 22:30:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

# Plain ALTER TABLE ADD/DROP COLUMN, no batch mode: on SQLite a batch
# operation copies the table and drops the old one, and with foreign keys on
# that drop cascades to every run, exclude and log of the jobs. SQLite adds a
# NOT NULL column in place when its default is a constant, so the defaults
# are plain strings (a SQL expression would force the copy); dropping a
# column in place needs SQLite 3.35.
# The server defaults fill the rows that exist and keep older writers working.
JOB_COLUMNS = [
    sa.Column('cron_expression', sa.Text(), nullable=True),
    sa.Column('timezone', sa.Text(), nullable=True),
    sa.Column('concurrency_policy', sa.Text(), server_default='forbid', nullable=False),
    sa.Column('timeout', sa.Integer(), nullable=True),
    sa.Column('retries', sa.Integer(), server_default='0', nullable=False),
    sa.Column('retry_delay', sa.Integer(), server_default='60', nullable=False),
    sa.Column('misfire_policy', sa.Text(), server_default='skip', nullable=False),
]
RUN_COLUMNS = [
    sa.Column('attempt', sa.Integer(), server_default='1', nullable=False),
    # '0' reads as false on SQLite and on PostgreSQL alike.
    sa.Column('timed_out', sa.Boolean(), server_default='0', nullable=False),
]


def upgrade():
    for column in JOB_COLUMNS:
        op.add_column('job', column)
    for column in RUN_COLUMNS:
        op.add_column('run', column)


def downgrade():
    for column in reversed(RUN_COLUMNS):
        op.drop_column('run', column.name)
    for column in reversed(JOB_COLUMNS):
        op.drop_column('job', column.name)
