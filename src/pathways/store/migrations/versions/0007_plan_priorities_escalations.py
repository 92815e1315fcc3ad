"""personal plans: the patient's own goal priorities, and escalations opened by conflicts

``goal_priority`` keeps the patient's priority of a pathway goal (1 high, 2 medium, 3 low);
``care_plan_escalation`` keeps each escalation a conflict opened on a plan (its interaction rule
declares ``escalate``), open until resolved with a reason (issue 28).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 19:45:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('goal_priority',
    sa.Column('patient_id', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('pathway', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('goal', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('set_on', sa.Date(), nullable=False),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], ),
    sa.PrimaryKeyConstraint('patient_id', 'pathway', 'goal')
    )
    op.create_table('care_plan_escalation',
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('patient_id', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('rule', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('severity', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('action', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('steps', sa.Text(), nullable=False),
    sa.Column('opened_on', sa.Date(), nullable=False),
    sa.Column('resolved_on', sa.Date(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], ),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_index('ix_care_plan_escalation_patient_id', 'care_plan_escalation', ['patient_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_care_plan_escalation_patient_id', table_name='care_plan_escalation')
    op.drop_table('care_plan_escalation')
    op.drop_table('goal_priority')
