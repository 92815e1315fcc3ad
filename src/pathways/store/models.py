"""The project's own store (sqlmodel). Clinical detail lives here, never in Prefect.

- patient: pseudonymous id only; identifying data (BSN as a keyed hash, name, birth date) sits
  apart in patient_identity, optional, and is never sent to Prefect.
- fact: append-only, and the patient's (not an enrollment's): what was known, where it came from,
  when it was observed and recorded. Each is stored once per patient: ``fingerprint`` (what was
  observed, its value and time, as JSON) is unique per patient, so a file read twice, or a patient
  enrolled in a second pathway, adds nothing that is already known.
- enrollment: one patient in one pathway version; its runtime state as JSON with a version
  number for optimistic concurrency.
- step_run: one row per enrollment, step and due date (run_key, unique).
- decision: every decision with its idempotency key (unique): outcome, reasons (explanation),
  the facts it read, pathway version and content hash, decision date.
- goal: SMART goal progress per enrollment.
- care_plan, care_plan_decision: the personal plan per patient across pathways and its bundling and
  conflict decisions (each decision stored and audited once).
- user_account: who may log in to the web application, in which role, with a password hash.
- migration_preview, migration_item: a preview of moving enrollments to another version, one
  item per enrollment (store/previews.py).
The audit trail's tables (audit_entry, audit_head) are in store/audit.py.
"""

from __future__ import annotations

import datetime as dt
from typing import Optional

from sqlalchemy import Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


class Patient(SQLModel, table=True):
    id: str = Field(primary_key=True, max_length=128)
    created_at: dt.datetime


class PatientIdentity(SQLModel, table=True):
    __tablename__ = "patient_identity"
    patient_id: str = Field(primary_key=True, foreign_key="patient.id", max_length=128)
    bsn_hmac: Optional[str] = Field(default=None, max_length=128)  # HMAC-SHA256 with the configured secret
    bsn: Optional[str] = Field(default=None, max_length=16)  # only when PATHWAYS_BSN_STORAGE=plain
    name: Optional[str] = Field(default=None, max_length=256)
    birth_date: Optional[dt.date] = None


class Fact(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("patient_id", "fingerprint", name="uq_fact_patient_fingerprint"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    patient_id: str = Field(foreign_key="patient.id", index=True, max_length=128)
    kind: str = Field(max_length=32)  # observation | condition | medication | event | demographics | indications
    payload: str = Field(sa_column=Column(Text, nullable=False))  # the entry as JSON (facts model)
    observed_on: Optional[dt.date] = None
    source: str = Field(max_length=256)  # file, FHIR resource, or "record:<enrollment>:<step>"
    recorded_at: dt.datetime
    fingerprint: str = Field(max_length=64)  # sha256 of kind and payload: the same fact is stored once per patient


class Enrollment(SQLModel, table=True):
    id: str = Field(primary_key=True, max_length=128)
    patient_id: str = Field(foreign_key="patient.id", index=True, max_length=128)
    pathway: str = Field(max_length=64, index=True)
    version: str = Field(max_length=32)
    version_key: str = Field(max_length=128)
    enrolled_on: dt.date
    as_of: dt.date = Field(index=True)
    next_due: Optional[dt.date] = Field(default=None, index=True)
    state: str = Field(sa_column=Column(Text, nullable=False))
    state_version: int = 0
    updated_at: dt.datetime


class StepRun(SQLModel, table=True):
    __tablename__ = "step_run"
    __table_args__ = (UniqueConstraint("run_key", name="uq_step_run_key"),
                      Index("ix_step_run_status_due_on", "status", "due_on"))  # the worklist: due runs by due date
    id: Optional[int] = Field(default=None, primary_key=True)
    run_key: str = Field(max_length=256)
    enrollment_id: str = Field(foreign_key="enrollment.id", index=True, max_length=128)
    step: str = Field(max_length=64)
    due_on: dt.date
    status: str = Field(max_length=16)
    updated_on: dt.date


class Decision(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("key", name="uq_decision_key"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    key: str = Field(max_length=300)
    run_key: str = Field(max_length=256, index=True)
    enrollment_id: str = Field(foreign_key="enrollment.id", index=True, max_length=128)
    kind: str = Field(max_length=32)
    step: Optional[str] = Field(default=None, max_length=64)
    due_on: dt.date
    decided_on: dt.date
    pathway_version: str = Field(max_length=32)
    version_key: str = Field(max_length=128)
    reasons: str = Field(sa_column=Column(Text, nullable=False))  # JSON list
    detail: str = Field(sa_column=Column(Text, nullable=False))  # JSON object: facts read, severity, ...


class Goal(SQLModel, table=True):
    enrollment_id: str = Field(foreign_key="enrollment.id", primary_key=True, max_length=128)
    goal: str = Field(primary_key=True, max_length=64)
    fact: str = Field(max_length=64)
    target: str = Field(max_length=256)
    agreed_on: dt.date
    deadline: dt.date
    baseline: Optional[float] = None
    latest: Optional[float] = None
    status: str = Field(max_length=16)


class CarePlan(SQLModel, table=True):
    """The patient's one personal plan across their pathways (runtime/plan.py), per plan date:
    the latest made for that date, with its digest (the same plan made again changes nothing)."""

    __tablename__ = "care_plan"
    patient_id: str = Field(foreign_key="patient.id", primary_key=True, max_length=128)
    plan_on: dt.date = Field(primary_key=True)
    window_days: int
    digest: str = Field(max_length=64)
    plan: str = Field(sa_column=Column(Text, nullable=False))  # the plan as JSON (`pathways plan --json`)
    updated_at: dt.datetime


class CarePlanDecision(SQLModel, table=True):
    """A bundling or conflict decision of a personal plan, once per key (audited once)."""

    __tablename__ = "care_plan_decision"
    key: str = Field(primary_key=True, max_length=300)
    patient_id: str = Field(foreign_key="patient.id", index=True, max_length=128)
    kind: str = Field(max_length=16)  # bundle | conflict
    plan_on: dt.date
    detail: str = Field(sa_column=Column(Text, nullable=False))  # JSON: steps, rule, window, reasons


class GoalPriority(SQLModel, table=True):
    """The patient's own priority of one goal of a pathway (1 high, 2 medium, 3 low), as
    recorded by `pathways plan PATIENT --priority PATHWAY.GOAL=N`: shown on their plan."""

    __tablename__ = "goal_priority"
    patient_id: str = Field(foreign_key="patient.id", primary_key=True, max_length=128)
    pathway: str = Field(primary_key=True, max_length=64)
    goal: str = Field(primary_key=True, max_length=64)
    priority: int
    set_on: dt.date


class CarePlanEscalation(SQLModel, table=True):
    """An escalation opened on a personal plan by a conflict whose interaction rule escalates
    (key: the conflict decision's); open until resolved with a reason."""

    __tablename__ = "care_plan_escalation"
    key: str = Field(primary_key=True, max_length=300)
    patient_id: str = Field(foreign_key="patient.id", index=True, max_length=128)
    rule: str = Field(max_length=64)
    severity: str = Field(max_length=16)
    action: str = Field(max_length=64)
    steps: str = Field(sa_column=Column(Text, nullable=False))  # JSON: [{"pathway", "step"}]
    opened_on: dt.date
    resolved_on: Optional[dt.date] = None
    reason: Optional[str] = Field(default=None, sa_column=Column(Text, nullable=True))


class UserAccount(SQLModel, table=True):
    """A person who logs in to the web application: a role of pathways.access, and a password
    hash (argon2, made above the store: the store keeps the hash, never a password)."""

    __tablename__ = "user_account"
    name: str = Field(primary_key=True, max_length=64)
    role: str = Field(max_length=16)
    password_hash: str = Field(max_length=256)
    created_at: dt.datetime
    disabled: bool = False


class MigrationPreview(SQLModel, table=True):
    """A migration preview (`pathways migrate preview`): what moving a pathway's enrollments to
    another version would change, keyed by a hash over everything it read (store/previews.py)."""

    __tablename__ = "migration_preview"
    hash: str = Field(primary_key=True, max_length=64)
    pathway: str = Field(max_length=64)
    to_key: str = Field(max_length=128)
    at: dt.date
    status: str = Field(max_length=16)  # previewed | applied | reverted
    created_at: str = Field(max_length=40)  # ISO time, as the audit trail writes it
    summary: str = Field(sa_column=Column(Text, nullable=False))  # JSON: counts, from versions


class MigrationItem(SQLModel, table=True):
    """One enrollment of a preview: what was read (to see at apply whether it changed), what would
    change, and once applied, the state it had before (for revert)."""

    __tablename__ = "migration_item"
    preview_hash: str = Field(foreign_key="migration_preview.hash", primary_key=True, max_length=64)
    enrollment_id: str = Field(foreign_key="enrollment.id", primary_key=True, max_length=128)
    from_key: str = Field(max_length=128)
    state_version: int
    as_of: dt.date
    facts_digest: str = Field(max_length=64)
    outcome: str = Field(max_length=16)  # unchanged | changed | blocked
    changes: str = Field(sa_column=Column(Text, nullable=False))  # JSON list
    blocked: str = Field(sa_column=Column(Text, nullable=False))  # JSON list
    old_state: Optional[str] = Field(default=None, sa_column=Column(Text, nullable=True))
    applied_version: Optional[int] = None  # the state version the migration wrote
