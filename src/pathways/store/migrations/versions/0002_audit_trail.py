"""audit trail: append-only hash-chained entries, their head, and identity as configured

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 13:40:00
"""
from alembic import op
import sqlalchemy as sa

from pathways.store.audit import GENESIS, install_triggers


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_entry',
    sa.Column('seq', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('at', sa.String(length=40), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('action', sa.String(length=40), nullable=False),
    sa.Column('patient_id', sa.String(length=128), nullable=True),
    sa.Column('enrollment_id', sa.String(length=128), nullable=True),
    sa.Column('pathway', sa.String(length=64), nullable=True),
    sa.Column('pathway_version', sa.String(length=32), nullable=True),
    sa.Column('version_key', sa.String(length=128), nullable=True),
    sa.Column('subject', sa.String(length=300), nullable=True),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('seq')
    )
    for column in ('at', 'action', 'patient_id', 'enrollment_id', 'pathway', 'subject'):
        op.create_index(f'ix_audit_entry_{column}', 'audit_entry', [column], unique=False)
    head = op.create_table('audit_head',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.bulk_insert(head, [{'id': 1, 'seq': 0, 'hash': GENESIS}])
    install_triggers(op.get_bind())
    with op.batch_alter_table('patient_identity') as batch:
        batch.add_column(sa.Column('bsn', sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('patient_identity') as batch:
        batch.drop_column('bsn')
    op.drop_table('audit_head')
    op.drop_table('audit_entry')
