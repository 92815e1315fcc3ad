"""migration previews: what moving a pathway's enrollments to another version would change (issue 25)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 18:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('migration_preview',
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.Column('pathway', sa.String(length=64), nullable=False),
    sa.Column('to_key', sa.String(length=128), nullable=False),
    sa.Column('at', sa.Date(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.String(length=40), nullable=False),
    sa.Column('summary', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('hash')
    )
    op.create_table('migration_item',
    sa.Column('preview_hash', sa.String(length=64), nullable=False),
    sa.Column('enrollment_id', sa.String(length=128), nullable=False),
    sa.Column('from_key', sa.String(length=128), nullable=False),
    sa.Column('state_version', sa.Integer(), nullable=False),
    sa.Column('as_of', sa.Date(), nullable=False),
    sa.Column('facts_digest', sa.String(length=64), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('changes', sa.Text(), nullable=False),
    sa.Column('blocked', sa.Text(), nullable=False),
    sa.Column('old_state', sa.Text(), nullable=True),
    sa.Column('applied_version', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['preview_hash'], ['migration_preview.hash'], ),
    sa.ForeignKeyConstraint(['enrollment_id'], ['enrollment.id'], ),
    sa.PrimaryKeyConstraint('preview_hash', 'enrollment_id')
    )


def downgrade() -> None:
    op.drop_table('migration_item')
    op.drop_table('migration_preview')
