"""The personal plan of one patient across their pathways (issue 28), without Prefect: read the
patient's enrollments and facts from the store, run each enrollment's pinned version (as
published), project each enrollment to the plan's date in memory (the
stored enrollments change only by `pathways advance`), evaluate the cross-pathway interaction rules, build the plan (runtime/plan.py) and
keep it in the store with its decisions audited once (store/plans.py). Prefect flow runs stay per
pathway version; the plan lives in the store.

``replan``: after an advance (one enrollment, or the daily due run over every pathway), the plan
of every patient touched is made again for that day, once per patient whatever the number of
their pathways advanced (orchestration/flows.py calls it when the pathway flow runs are done)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from pathways.clock import FixedClock
from pathways.definition.interactions import Interaction, interactions_file, read_interactions
from pathways.definition.loader import pathway_roots
from pathways.errors import ProblemsFound
from pathways.orchestration.service import Runtimes, authorize
from pathways.runtime.interactions import conflicts
from pathways.runtime.plan import DEFAULT_WINDOW_DAYS, Enrolled, PersonalPlan, PlanError, build_plan, check_window, gated_steps
from pathways.store.db import Store
from pathways.store.plans import Stored, in_several_pathways, store_plan, unplanned_patients


def interaction_rules(folder: Path | None = None) -> tuple[Interaction, ...]:
    """The interaction library of ``folder``, else of the first pathway root that has one
    (PATHWAYS_PATH, ./pathways, the shipped pathways); none: no rules."""
    folders = [folder] if folder is not None else pathway_roots()
    for root in folders:
        file = interactions_file(root)
        if file is None:
            continue
        doc, problems = read_interactions(file)
        if problems:
            raise ProblemsFound(problems)
        return doc.library.interactions
    return ()


def make_plan(store: Store, runtimes: Runtimes, patient: str, at: dt.date, window_days: int = DEFAULT_WINDOW_DAYS,
              rules: tuple[Interaction, ...] | None = None) -> tuple[PersonalPlan, Stored]:
    """The patient's plan at ``at``, stored; PlanError for an unknown patient or one in no pathway."""
    check_window(window_days)  # contradictory parameters stop here, before anything is read or stored
    authorize(store, "input.record", f"make the care plan of {patient}", patient)
    if not store.has_patient(patient):
        raise PlanError([f"unknown patient '{patient}': no facts or enrollments stored for this pseudonymous id"])
    ids = [eid for eid, _, _ in store.enrollments_of(patient)]
    if not ids:
        raise PlanError([f"patient '{patient}' is in no pathway: enrol them first (`pathways enroll {patient} --pathway NAME`)"])
    states = store.load_many(ids)
    facts = store.patient_facts(patient)
    enrolled, evaluators = [], {}
    for eid in ids:
        state = states[eid][0]
        runtime = runtimes.get_version(state.version_key, store)  # the version it runs, as published
        # as it stands on the plan's date: advanced in memory only (`pathways advance` decides and stores)
        state, _, evaluation = runtime.advance(state, facts, FixedClock.on(max(at, state.as_of)))
        enrolled.append(Enrolled(state, runtime.loaded, gated_steps(evaluation)))
        evaluators.setdefault(state.pathway, runtime.evaluator)
    found = conflicts(interaction_rules() if rules is None else rules, evaluators, facts, at)
    plan = build_plan(patient, enrolled, at, window_days, found)
    return plan, store_plan(store, plan)


@dataclass
class Replanned:
    patients: int  # plans made again
    changed: int  # of which new or different from the one stored for the day
    decisions_added: int  # bundling and conflict decisions new to the store
    problems: list[str] = field(default_factory=list)  # plans that could not be made (the advance stands)


def replan(store: Store, runtimes: Runtimes, enrollments: list[str], at: dt.date,
           window_days: int = DEFAULT_WINDOW_DAYS) -> Replanned:
    """Make again, for ``at``, the stored plan of every patient of these enrollments who is in
    several pathways, once per patient (a patient in three pathways advanced the same day: one
    plan, not three), and of every such patient advanced to ``at`` whose plan for that day is
    missing (a run stopped half-way). A patient in one pathway has no plan to combine: the
    pathway's own steps are the plan, and `pathways plan` makes it on request."""
    touched = set(in_several_pathways(store, sorted(set(enrollments)))) if enrollments else set()
    patients = sorted(touched | set(unplanned_patients(store, at)))
    rules = interaction_rules()
    done = Replanned(len(patients), 0, 0, [])
    for patient in patients:
        try:
            _, stored = make_plan(store, runtimes, patient, at, window_days, rules)
        except PlanError as exc:  # e.g. in two versions of one pathway: `pathways plan` says what to do
            done.problems.append(str(exc))
            continue
        done.changed += stored.plan_changed
        done.decisions_added += stored.decisions_added
    return done


def plan_parts(store: Store, runtimes: Runtimes, patient: str) -> list:
    """The patient's enrollments as stored, each with the pathway version it runs: the parts of
    the patient-level plan (FHIR export) and the titles of the zorgplan."""
    ids = [eid for eid, _, _ in store.enrollments_of(patient)]
    states = store.load_many(ids)
    return [(runtimes.get_version(states[e][0].version_key, store).loaded, states[e][0]) for e in ids]
