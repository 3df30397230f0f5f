"""security: sessions, failed logins, API tokens, request nonces

Revision ID: 0005
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'user_session',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('created_dts', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['user.id'], name=op.f('fk_user_session_user_id_user'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_user_session')),
        sa.UniqueConstraint('token_hash', name=op.f('uq_user_session_token_hash')),
    )
    op.create_index('ix_user_session_user_id', 'user_session', ['user_id'])
    op.create_table(
        'login_failure',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('username', sa.String(length=150), nullable=False),
        sa.Column('client_addr', sa.String(length=64), nullable=False),
        sa.Column('dts', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_login_failure')),
    )
    op.create_index('ix_login_failure_username_dts', 'login_failure', ['username', 'dts'])
    op.create_index('ix_login_failure_client_addr_dts', 'login_failure', ['client_addr', 'dts'])
    op.create_table(
        'api_token',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=255), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('created_dts', sa.DateTime(), nullable=False),
        sa.Column('expires_dts', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['user.id'], name=op.f('fk_api_token_user_id_user'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_api_token')),
        sa.UniqueConstraint('token_hash', name=op.f('uq_api_token_token_hash')),
    )
    op.create_index('ix_api_token_user_id', 'api_token', ['user_id'])
    op.create_table(
        'request_nonce',
        sa.Column('worker_id', sa.Integer(), nullable=False),
        sa.Column('nonce', sa.String(length=64), nullable=False),
        sa.Column('seen_dts', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['worker_id'], ['worker.id'],
                                name=op.f('fk_request_nonce_worker_id_worker'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('worker_id', 'nonce', name=op.f('pk_request_nonce')),
    )
    op.create_index('ix_request_nonce_seen_dts', 'request_nonce', ['seen_dts'])


def downgrade():
    op.drop_index('ix_request_nonce_seen_dts', table_name='request_nonce')
    op.drop_table('request_nonce')
    op.drop_index('ix_api_token_user_id', table_name='api_token')
    op.drop_table('api_token')
    op.drop_index('ix_login_failure_client_addr_dts', table_name='login_failure')
    op.drop_index('ix_login_failure_username_dts', table_name='login_failure')
    op.drop_table('login_failure')
    op.drop_index('ix_user_session_user_id', table_name='user_session')
    op.drop_table('user_session')
