"""Personal care plans in the store: the plan per patient and date, and its bundling and conflict
decisions, each stored and audited once (by key), in one transaction with the plan.

Keys: a bundle is the patient, the appointment's date and discipline and the step occurrences it
joins; a conflict is the patient, the rule, its source steps and the facts it read (the same
conflict on the same values is one decision, whatever day the plan is made again).

Also the patient's own goal priorities (``set_priorities``, audited `plan.priority`) and the
escalations conflicts open on the plan (opened with the plan that found them, audited
`plan.escalated`; closed by ``resolve_escalations``, audited `plan.resolved`).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlmodel import Session

from pathways.runtime.plan import PersonalPlan
from pathways.store.audit import Record, dumps
from pathways.store.connect import retrying
from pathways.store.db import Store
from pathways.store.models import CarePlan, CarePlanDecision, CarePlanEscalation, Enrollment, GoalPriority, Patient
from pathways.store.vocabulary import PLAN_ACTION, Action, Key


@dataclass
class Stored:
    plan_changed: bool  # a new plan, or different from the one stored for that date
    decisions_added: int  # bundling and conflict decisions new to the store (each audited)


def decisions_of(plan: PersonalPlan) -> list[tuple[str, str, dict]]:
    """(key, kind, detail) of every decision in the plan: each appointment that bundles two
    or more steps, and each conflict."""
    found = []
    for appointment in plan.appointments:
        if len(appointment.steps) > 1:
            found.append((f"{plan.patient}:bundle:{appointment.key}", "bundle", appointment.decision))
    for conflict in plan.conflicts:
        found.append((f"{plan.patient}:conflict:{conflict.decision_key}", "conflict", conflict.to_json()))
    return found


def store_plan(store: Store, plan: PersonalPlan) -> Stored:
    """Keep the plan for its date and audit what is new in it; the same plan again: nothing."""
    return store_plans(store, [plan])[0]


def store_plans(store: Store, plans: list[PersonalPlan]) -> list[Stored]:
    """``store_plan`` for a batch of plans of different patients, in one transaction (the stored
    plans and decisions read per chunk of patients, not per patient); the Stored of each, in order."""
    prepared = [(plan, plan.digest, decisions_of(plan)) for plan in plans]

    def write() -> list[Stored]:
        done, records = [], []
        with store.transaction() as session:
            kept: dict[tuple[str, dt.date], CarePlan] = {}
            known: dict[str, set[str]] = {}
            for chunk in _chunks(plans):
                patients = [plan.patient for plan in chunk]
                for row in session.execute(select(CarePlan).where(CarePlan.patient_id.in_(patients))
                                           .where(CarePlan.plan_on.in_(sorted({plan.at for plan in chunk})))).scalars():
                    kept[(row.patient_id, row.plan_on)] = row
                for patient, key in session.execute(select(CarePlanDecision.patient_id, CarePlanDecision.key)
                                                    .where(CarePlanDecision.patient_id.in_(patients))):
                    known.setdefault(patient, set()).add(key)
            for plan, digest, decisions in prepared:
                done.append(_write_plan(store, session, plan, digest, decisions, kept.get((plan.patient, plan.at)),
                                        known.setdefault(plan.patient, set()), records))
            if records:
                store.audit(session, records)
        return done
    return retrying(write, what=store.where)


def _write_plan(store: Store, session: Session, plan: PersonalPlan, digest: str, decisions: list[tuple[str, str, dict]],
                kept: CarePlan | None, known: set[str], records: list[Record]) -> Stored:
    """Add one plan, its new decisions and escalations to the session; their audit records to
    ``records``. ``kept``: the plan stored for that patient and date, if any (read already)."""
    changed = kept is None or kept.digest != digest
    if kept is None:
        session.add(CarePlan(patient_id=plan.patient, plan_on=plan.at, window_days=plan.window_days, digest=digest,
                             plan=dumps(plan.to_json()), updated_at=store.now()))
    elif changed:
        kept.window_days, kept.digest, kept.plan, kept.updated_at = plan.window_days, digest, dumps(plan.to_json()), store.now()
        session.add(kept)
    if changed:
        records.append(Record(Action.PLAN_MADE, plan.patient, subject=f"{plan.patient}:{plan.at}", payload={
            Key.AT: plan.at.isoformat(), "digest": digest, "window_days": plan.window_days,
            Key.PATHWAYS: list(plan.pathways), Key.APPOINTMENTS: len(plan.appointments), "conflicts": len(plan.conflicts),
            Key.CONFLICT_RULES: sorted({c.rule for c in plan.conflicts}),
            # for the auditors' indicators (views/plan_indicators.py)
            Key.STEPS: sum(len(a.steps) for a in plan.appointments),
            Key.COMBINED_APPOINTMENTS: sum(len({s.pathway for s in a.steps}) > 1 for a in plan.appointments)}))
    added = 0
    for key, kind, detail in decisions:
        if key in known:
            continue
        known.add(key)
        session.add(CarePlanDecision(key=key, patient_id=plan.patient, kind=kind, plan_on=plan.at, detail=dumps(detail)))
        records.append(Record(PLAN_ACTION[kind], plan.patient, subject=key[:300], payload={Key.AT: plan.at.isoformat(), **detail}))
        added += 1
    for e in plan.escalations:
        if not e.get("new") or session.get(CarePlanEscalation, _escalation_key(plan.patient, e["key"])) is not None:
            continue
        session.add(CarePlanEscalation(key=_escalation_key(plan.patient, e["key"]), patient_id=plan.patient, rule=e["rule"],
                                       severity=e["severity"], action=e["action"], steps=dumps(e["steps"]),
                                       opened_on=plan.at))
        records.append(Record(Action.PLAN_ESCALATED, plan.patient, subject=_escalation_key(plan.patient, e["key"])[:300],
                              payload={Key.AT: plan.at.isoformat(), **{k: v for k, v in e.items() if k != "new"}}))
    return Stored(changed, added)


def _chunks(items: list, size: int = 500) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def patients_enrollments(store: Store, patients: list[str]) -> tuple[set[str], dict[str, list[str]]]:
    """Of ``patients``: those the store knows, and the enrollments of each (ids in id order), read per chunk."""
    def read() -> tuple[set[str], dict[str, list[str]]]:
        known: set[str] = set()
        enrollments: dict[str, list[str]] = {}
        with Session(store.engine) as session:
            for chunk in _chunks(patients):
                known.update(session.execute(select(Patient.id).where(Patient.id.in_(chunk))).scalars())
                for eid, patient in session.execute(select(Enrollment.id, Enrollment.patient_id)
                                                    .where(Enrollment.patient_id.in_(chunk)).order_by(Enrollment.id)):
                    enrollments.setdefault(patient, []).append(eid)
        return known, enrollments
    return retrying(read, what=store.where)


def stored_plan(store: Store, patient: str, on: dt.date) -> dict | None:
    with Session(store.engine) as session:
        kept = session.get(CarePlan, (patient, on))
        return None if kept is None else json.loads(kept.plan)


def _in_several_pathways():
    """The patients with enrollments in more than one pathway: those whose plan combines pathways."""
    return select(Enrollment.patient_id).group_by(Enrollment.patient_id).having(func.count(func.distinct(Enrollment.pathway)) > 1)


def unplanned_patients(store: Store, on: dt.date) -> list[str]:
    """Patients in several pathways with an enrollment advanced to ``on`` but no plan for ``on``
    (a run stopped before it made the plans: the next run for that day makes them)."""
    def read() -> list[str]:
        with Session(store.engine) as session:
            planned = select(CarePlan.patient_id).where(CarePlan.plan_on == on)
            rows = session.execute(select(Enrollment.patient_id).where(Enrollment.as_of == on)
                                   .where(Enrollment.patient_id.in_(_in_several_pathways()))
                                   .where(Enrollment.patient_id.not_in(planned)).distinct().order_by(Enrollment.patient_id))
            return list(rows.scalars())
    return retrying(read, what=store.where)


def in_several_pathways(store: Store, enrollments: list[str]) -> list[str]:
    """The patients of ``enrollments`` who are enrolled in more than one pathway (one query per
    chunk: a daily run touches thousands of patients, most of them in one pathway)."""
    def read() -> list[str]:
        found: set[str] = set()
        with Session(store.engine) as session:
            for start in range(0, len(enrollments), 500):
                chunk = enrollments[start:start + 500]
                mine = select(Enrollment.patient_id).where(Enrollment.id.in_(chunk))
                found.update(session.execute(_in_several_pathways().where(Enrollment.patient_id.in_(mine))).scalars())
        return sorted(found)
    return retrying(read, what=store.where)


def _escalation_key(patient: str, key: str) -> str:
    return f"{patient}:escalation:{key}"[:300]


def plan_escalations(store: Store, patient: str) -> dict[str, dict]:
    """Every escalation opened on the patient's plans, open or resolved, by its conflict's key."""
    return plan_escalations_many(store, [patient])[patient]


def plan_escalations_many(store: Store, patients: list[str]) -> dict[str, dict[str, dict]]:
    """``plan_escalations`` of each of ``patients``, read per chunk."""
    def read() -> dict[str, dict[str, dict]]:
        found: dict[str, dict[str, dict]] = {p: {} for p in patients}
        with Session(store.engine) as session:
            for chunk in _chunks(patients):
                for r in session.execute(select(CarePlanEscalation).where(CarePlanEscalation.patient_id.in_(chunk))).scalars():
                    key = r.key.removeprefix(_escalation_key(r.patient_id, ""))
                    found[r.patient_id][key] = {
                        "key": key, "rule": r.rule, "severity": r.severity, "action": r.action,
                        "steps": json.loads(r.steps), "opened_on": r.opened_on.isoformat(),
                        "resolved_on": r.resolved_on.isoformat() if r.resolved_on else None, "reason": r.reason}
        return found
    return retrying(read, what=store.where)


def resolve_escalations(store: Store, patient: str, rule: str, reason: str, on: dt.date) -> list[str]:
    """Close the patient's open plan escalations of ``rule`` for a documented reason, audited;
    the keys closed (none: nothing changed)."""
    def write() -> list[str]:
        with store.transaction() as session:
            rows = list(session.execute(select(CarePlanEscalation).where(CarePlanEscalation.patient_id == patient)
                                        .where(CarePlanEscalation.rule == rule).where(CarePlanEscalation.resolved_on.is_(None))).scalars())
            for row in rows:
                row.resolved_on, row.reason = on, reason
                session.add(row)
            if rows:
                store.audit(session, [Record(Action.PLAN_RESOLVED, patient, subject=row.key, payload={
                    Key.AT: on.isoformat(), Key.RULE: rule, "reason": reason, "opened_on": row.opened_on.isoformat()}) for row in rows])
            return [row.key for row in rows]
    return retrying(write, what=store.where)


def goal_priorities(store: Store, patient: str) -> dict[tuple[str, str], int]:
    """The patient's own goal priorities: (pathway, goal) -> 1 high, 2 medium, 3 low."""
    return goal_priorities_many(store, [patient])[patient]


def goal_priorities_many(store: Store, patients: list[str]) -> dict[str, dict[tuple[str, str], int]]:
    """``goal_priorities`` of each of ``patients``, read per chunk."""
    def read() -> dict[str, dict[tuple[str, str], int]]:
        found: dict[str, dict[tuple[str, str], int]] = {p: {} for p in patients}
        with Session(store.engine) as session:
            for chunk in _chunks(patients):
                for r in session.execute(select(GoalPriority).where(GoalPriority.patient_id.in_(chunk))).scalars():
                    found[r.patient_id][(r.pathway, r.goal)] = r.priority
        return found
    return retrying(read, what=store.where)


def set_priorities(store: Store, patient: str, priorities: list[tuple[str, str, int | None]], on: dt.date) -> int:
    """Record the patient's priorities ((pathway, goal, 1..3, or None to forget it)) in one
    transaction, each change audited (`plan.priority`); the number changed."""
    def write() -> int:
        changed = 0
        with store.transaction() as session:
            records = []
            for pathway, goal, priority in priorities:
                kept = session.get(GoalPriority, (patient, pathway, goal))
                if (kept.priority if kept else None) == priority:
                    continue
                if priority is None:
                    session.delete(kept)
                else:
                    session.merge(GoalPriority(patient_id=patient, pathway=pathway, goal=goal, priority=priority, set_on=on))
                records.append(Record(Action.PLAN_PRIORITY, patient, subject=f"{patient}:{pathway}.{goal}", payload={
                    Key.AT: on.isoformat(), "pathway": pathway, Key.GOAL: goal, "priority": priority,
                    "was": kept.priority if kept else None}))
                changed += 1
            if records:
                store.audit(session, records)
        return changed
    return retrying(write, what=store.where)
