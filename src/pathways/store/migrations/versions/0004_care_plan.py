"""personal care plans: one plan per patient and plan date, and its bundling and conflict decisions

A patient in several pathways gets one plan (runtime/plan.py): ``care_plan`` keeps the latest
plan made for a date with its digest; ``care_plan_decision`` keeps each bundling and conflict
decision once, by key, so that making the same plan again stores and audits nothing new.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 19:00:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('care_plan',
    sa.Column('patient_id', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('plan_on', sa.Date(), nullable=False),
    sa.Column('window_days', sa.Integer(), nullable=False),
    sa.Column('digest', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('plan', sa.Text(), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], ),
    sa.PrimaryKeyConstraint('patient_id', 'plan_on')
    )
    op.create_table('care_plan_decision',
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('patient_id', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('plan_on', sa.Date(), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], ),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_index('ix_care_plan_decision_patient_id', 'care_plan_decision', ['patient_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_care_plan_decision_patient_id', table_name='care_plan_decision')
    op.drop_table('care_plan_decision')
    op.drop_table('care_plan')
