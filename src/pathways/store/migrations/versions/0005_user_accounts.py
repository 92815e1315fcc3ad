"""user accounts of the web application (name, role, argon2 password hash); the worklist's index
(due step runs by due date)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 18:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('user_account',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('password_hash', sa.String(length=256), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('disabled', sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_index('ix_step_run_status_due_on', 'step_run', ['status', 'due_on'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_step_run_status_due_on', table_name='step_run')
    op.drop_table('user_account')
