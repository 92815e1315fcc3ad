"""user accounts of the web application: name, role, argon2 password hash

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 18:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
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


def downgrade() -> None:
    op.drop_table('user_account')
