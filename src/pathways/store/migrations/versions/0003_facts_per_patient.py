"""facts belong to the patient: each fact stored once per patient (fingerprint), duplicates removed and audited

A store written before this revision holds a patient's facts once per enrollment (and once per
file read): every observation of a patient in two pathways twice, so that counts over a window
doubled. This revision gives every fact its fingerprint (store/factrows.py), keeps the first row
of each fact, removes the others, and writes one ``facts.deduplicated`` audit entry per patient
that had any, with how many of each kind were removed.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 15:30:00
"""
import datetime as dt
import json

from alembic import op
import sqlalchemy as sa

from pathways.access import SERVICE
from pathways.store import audit, factrows


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

fact = sa.table('fact', sa.column('id', sa.Integer), sa.column('patient_id', sa.String), sa.column('kind', sa.String),
                sa.column('payload', sa.Text), sa.column('fingerprint', sa.String))


def upgrade() -> None:
    with op.batch_alter_table('fact') as batch:
        batch.add_column(sa.Column('fingerprint', sa.String(length=64), nullable=True))
    connection = op.get_bind()
    removed: dict[str, dict[str, int]] = {}
    prints: list[dict] = []
    doomed: list[int] = []
    patient, known = None, None
    rows = connection.execute(sa.select(fact.c.id, fact.c.patient_id, fact.c.kind, fact.c.payload).order_by(fact.c.patient_id, fact.c.id))
    for fid, pid, kind, payload in rows:
        if pid != patient:
            patient, known = pid, factrows.Known(set(), {}, {})
        empty = kind in factrows.SINGLE and not any(v is not None for v in json.loads(payload).values())
        fresh, _ = ([], 1) if empty else factrows.new_rows([factrows.FactRow(kind, payload, None)], known)
        if fresh:
            prints.append({"b_id": fid, "b_print": fresh[0][1]})
        else:
            doomed.append(fid)
            if not empty:  # an empty record said nothing: removing it is not worth an audit entry
                counts = removed.setdefault(pid, {})
                counts[kind] = counts.get(kind, 0) + 1
    for start in range(0, len(doomed), 500):
        connection.execute(sa.delete(fact).where(fact.c.id.in_(doomed[start:start + 500])))
    if prints:
        connection.execute(sa.update(fact).where(fact.c.id == sa.bindparam('b_id')).values(fingerprint=sa.bindparam('b_print')), prints)
    with op.batch_alter_table('fact') as batch:
        batch.alter_column('fingerprint', existing_type=sa.String(length=64), nullable=False)
        batch.create_unique_constraint('uq_fact_patient_fingerprint', ['patient_id', 'fingerprint'])
    if removed:
        # a migration has no clock (the store reads none): its entries carry the time of the trail's last entry,
        # the state of the store they describe
        last = connection.execute(sa.text("select max(at) from audit_entry")).scalar()
        audit.lock(connection)
        audit.append(connection, [audit.Record("facts.deduplicated", patient=pid, subject=pid,
                                               payload={"removed": dict(sorted(counts.items())), "total": sum(counts.values()),
                                                        "why": "a fact is stored once per patient (store migration 0003)"})
                                  for pid, counts in sorted(removed.items())],
                     SERVICE, dt.datetime.fromisoformat(last) if last else dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc))


def downgrade() -> None:
    with op.batch_alter_table('fact') as batch:
        batch.drop_constraint('uq_fact_patient_fingerprint', type_='unique')
        batch.drop_column('fingerprint')
