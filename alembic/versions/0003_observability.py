"""observability: audit log, webhook outbox, retention tally, webhook fields

Revision ID: 0003
Revises: 0002
"""
from alembic import op
import sqlalchemy as sa

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

WEBHOOK_TABLES = ('project', 'worker_pool', 'job_template', 'job')
PENDING = "delivered_dts IS NULL AND failed_dts IS NULL"


def upgrade():
    op.create_table(
        'audit_event',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('dts', sa.DateTime(), nullable=False),
        sa.Column('actor', sa.String(length=255), nullable=False),
        sa.Column('action', sa.String(length=32), nullable=False),
        sa.Column('object_type', sa.String(length=64), nullable=False),
        sa.Column('object_id', sa.Integer(), nullable=True),
        sa.Column('project_id', sa.Integer(), nullable=True),
        sa.Column('changes', sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_event')),
    )
    op.create_index('ix_audit_event_dts', 'audit_event', ['dts'])
    op.create_index('ix_audit_event_object', 'audit_event', ['object_type', 'object_id'])
    op.create_index('ix_audit_event_actor', 'audit_event', ['actor'])
    op.create_index(op.f('ix_audit_event_project_id'), 'audit_event', ['project_id'])

    op.create_table(
        'webhook_delivery',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('created_dts', sa.DateTime(), nullable=False),
        sa.Column('event', sa.String(length=64), nullable=False),
        sa.Column('url', sa.Text(), nullable=False),
        sa.Column('body', sa.Text(), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_dts', sa.DateTime(), nullable=False),
        sa.Column('delivered_dts', sa.DateTime(), nullable=True),
        sa.Column('failed_dts', sa.DateTime(), nullable=True),
        sa.Column('last_status', sa.Integer(), nullable=True),
        sa.Column('last_error', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_delivery')),
    )
    op.create_index('ix_webhook_delivery_pending', 'webhook_delivery', ['next_attempt_dts'],
                    postgresql_where=sa.text(PENDING), sqlite_where=sa.text(PENDING))
    op.create_index('ix_webhook_delivery_created_dts', 'webhook_delivery', ['created_dts'])

    tally = op.create_table(
        'run_purge_tally',
        sa.Column('result', sa.String(length=16), nullable=False),
        sa.Column('count', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('result', name=op.f('pk_run_purge_tally')),
    )
    # Both rows exist from the start: purges only ever UPDATE them.
    op.bulk_insert(tally, [{'result': 'success', 'count': 0}, {'result': 'failure', 'count': 0}])

    # Plain ALTER TABLE ADD/DROP COLUMN, no batch mode: on SQLite a batch
    # operation copies the table and drops the old one, and with foreign keys
    # on, dropping the old job table would delete every run by cascade.
    for table in WEBHOOK_TABLES:
        op.add_column(table, sa.Column('webhook_urls', sa.Text(), nullable=False, server_default=''))
    op.add_column('job', sa.Column('webhook_on_success', sa.Boolean(), nullable=False,
                                   server_default=sa.false()))


def downgrade():
    op.drop_column('job', 'webhook_on_success')
    for table in reversed(WEBHOOK_TABLES):
        op.drop_column(table, 'webhook_urls')
    op.drop_table('run_purge_tally')
    op.drop_index('ix_webhook_delivery_created_dts', table_name='webhook_delivery')
    op.drop_index('ix_webhook_delivery_pending', table_name='webhook_delivery')
    op.drop_table('webhook_delivery')
    op.drop_index(op.f('ix_audit_event_project_id'), table_name='audit_event')
    op.drop_index('ix_audit_event_actor', table_name='audit_event')
    op.drop_index('ix_audit_event_object', table_name='audit_event')
    op.drop_index('ix_audit_event_dts', table_name='audit_event')
    op.drop_table('audit_event')
