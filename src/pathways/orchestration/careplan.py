"""The personal plan of one patient across their pathways (issue 28), without Prefect: read the
patient's enrollments and facts from the store, run each enrollment's pinned version (as
published), project each enrollment to the plan's date in memory (the
stored enrollments change only by `pathways advance`), evaluate the cross-pathway interaction rules, build the plan (runtime/plan.py) and
keep it in the store with its decisions audited once (store/plans.py). Prefect flow runs stay per
pathway version; the plan lives in the store. ``make_plans`` does it for many patients
batch-wise (reads per batch, each version's rules in bulk, one write transaction per batch);
``make_plan`` and ``replan`` are built on it (bench/plan.py, docs/performance.md).

``replan``: after an advance (one enrollment, or the daily due run over every pathway), the plan
of every patient touched is made again for that day, once per patient whatever the number of
their pathways advanced (orchestration/followup.py's ``replan_for``, called when the pathway flow runs are done),
with the care network's bundling window (orchestration/network.py).

``record_priorities``: the patient's own goal priorities (`--priority PATHWAY.GOAL=N`), checked
against the goals of their pathways and stored (store/plans.py). ``resolve_plan_escalation``:
close the escalations a conflict opened on the plan (`--resolve RULE --reason TEXT`).

``plan_page``: the plan as `pathways plan` makes it (the care network's window), for the web
application's plan page, its read audited as the other patient pages' are."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from pathways.clock import FixedClock
from pathways.definition.interactions import Interaction, interactions_file, read_interactions
from pathways.definition.loader import pathway_roots
from pathways.orchestration.settings import current
from pathways.errors import ProblemsFound
from pathways.orchestration.service import Runtimes, authorize
from pathways.runtime.interactions import conflicts
from pathways.orchestration.network import bundling_window
from pathways.runtime.plan import DEFAULT_WINDOW_DAYS, Enrolled, PersonalPlan, PlanError, build_plan, check_window, gated_steps
from pathways.store.audit import Record
from pathways.store.db import Store
from pathways.store.plans import (Stored, goal_priorities_many, in_several_pathways, patients_enrollments, plan_escalations,
                                  plan_escalations_many, resolve_escalations, set_priorities, store_plans, unplanned_patients)
from pathways.store.vocabulary import Action, Key


def interaction_rules(folder: Path | None = None) -> tuple[Interaction, ...]:
    """The interaction library of ``folder``, else of the first pathway root that has one
    (PATHWAYS_PATH, ./pathways, the shipped pathways); none: no rules."""
    folders = [folder] if folder is not None else pathway_roots(current().places)
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
    made = make_plans(store, runtimes, [patient], at, window_days, rules)[patient]
    if isinstance(made, PlanError):
        raise made
    return made


def make_plans(store: Store, runtimes: Runtimes, patients: list[str], at: dt.date, window_days: int = DEFAULT_WINDOW_DAYS,
               rules: tuple[Interaction, ...] | None = None) -> dict[str, tuple[PersonalPlan, Stored] | PlanError]:
    """``make_plan`` for many patients, batch-wise: per batch, the enrollments, states, facts,
    priorities and escalations read at once, each pathway version's rules evaluated in bulk
    (``PathwayEvaluator.evaluate_many``, per date), the plans and decisions stored in one
    transaction. Per patient: the plan and what was stored, or the PlanError that stopped it."""
    check_window(window_days)  # contradictory parameters stop here, before anything is read or stored
    patients = list(dict.fromkeys(patients))
    if patients:
        authorize(store, "input.record", f"make the care plan of {patients[0]}" if len(patients) == 1
                  else f"make the care plans of {len(patients)} patients", patients[0] if len(patients) == 1 else None)
    rules = interaction_rules() if rules is None else rules
    done: dict[str, tuple[PersonalPlan, Stored] | PlanError] = {}
    for start in range(0, len(patients), BATCH):
        done.update(_make_batch(store, runtimes, patients[start:start + BATCH], at, window_days, rules))
    return {p: done[p] for p in patients}


BATCH = 500  # patients per batch: a batch's reads and its one write transaction


def _make_batch(store: Store, runtimes: Runtimes, patients: list[str], at: dt.date, window_days: int,
                rules: tuple[Interaction, ...]) -> dict[str, tuple[PersonalPlan, Stored] | PlanError]:
    known, enrollments = patients_enrollments(store, patients)
    done: dict[str, tuple[PersonalPlan, Stored] | PlanError] = {}
    for patient in patients:
        if patient not in known:
            done[patient] = PlanError([f"unknown patient '{patient}': no facts or enrollments stored for this pseudonymous id"])
        elif not enrollments.get(patient):
            done[patient] = PlanError([f"patient '{patient}' is in no pathway: enrol them first (`pathways enroll {patient} --pathway NAME`)"])
    ready = [p for p in patients if p not in done]
    if not ready:
        return done
    ids = [eid for p in ready for eid in enrollments[p]]
    states = store.load_many(ids)
    facts = store.patient_facts_many(ready)
    groups: dict[tuple[str, dt.date], list[str]] = {}  # per pathway version and date, its enrollments: evaluated in bulk
    for eid in ids:
        state = states[eid][0]
        runtimes.get_version(state.version_key, store)  # the version it runs, as published
        groups.setdefault((state.version_key, max(at, state.as_of)), []).append(eid)
    evaluations, timelines = {}, {}  # the timelines at ``at`` serve the interaction rules too
    for (key, day), members in groups.items():
        evaluator = runtimes.get_version(key, store).evaluator
        resolved = [evaluator.timeline(facts[states[e][0].patient], day) for e in members]
        made = evaluator.evaluate_many([facts[states[e][0].patient] for e in members], day, day, resolved)
        evaluations.update(zip(members, made))
        if day == at:
            timelines.update(zip(members, resolved))
    priorities, escalations = goal_priorities_many(store, ready), plan_escalations_many(store, ready)
    plans = []
    for patient in ready:
        enrolled, evaluators, resolved = [], {}, {}
        for eid in enrollments[patient]:
            state = states[eid][0]
            runtime = runtimes.get_version(state.version_key, store)
            # as it stands on the plan's date: advanced in memory only (`pathways advance` decides and stores)
            state, _, evaluation = runtime.advance(state, facts[patient], FixedClock.on(max(at, state.as_of)), evaluations[eid])
            enrolled.append(Enrolled(state, runtime.loaded, gated_steps(evaluation)))
            if state.pathway not in evaluators and eid in timelines:
                resolved[state.pathway] = timelines[eid]
            evaluators.setdefault(state.pathway, runtime.evaluator)
        try:
            found = conflicts(rules, evaluators, facts[patient], at, timelines=resolved)
            plans.append(build_plan(patient, enrolled, at, window_days, found, priorities[patient], escalations[patient]))
        except PlanError as exc:
            done[patient] = exc
    for plan, stored in zip(plans, store_plans(store, plans)):
        done[plan.patient] = (plan, stored)
    return done


@dataclass
class Replanned:
    patients: int  # plans made again
    changed: int  # of which new or different from the one stored for the day
    decisions_added: int  # bundling and conflict decisions new to the store
    problems: list[str] = field(default_factory=list)  # plans that could not be made (the advance stands)


def replan(store: Store, runtimes: Runtimes, enrollments: list[str], at: dt.date,
           window_days: int | None = None) -> Replanned:
    """Make again, for ``at``, the stored plan of every patient of these enrollments who is in
    several pathways, once per patient (a patient in three pathways advanced the same day: one
    plan, not three), and of every such patient advanced to ``at`` whose plan for that day is
    missing (a run stopped half-way). A patient in one pathway has no plan to combine: the
    pathway's own steps are the plan, and `pathways plan` makes it on request. ``window_days``:
    the care network's (orchestration/network.py) unless given."""
    try:
        window_days = bundling_window(window_days)
    except (PlanError, ProblemsFound) as exc:  # the advance stands; `pathways plan` says what to fix
        return Replanned(0, 0, 0, [str(exc)])
    touched = set(in_several_pathways(store, sorted(set(enrollments)))) if enrollments else set()
    patients = sorted(touched | set(unplanned_patients(store, at)))
    rules = interaction_rules()
    done = Replanned(len(patients), 0, 0, [])
    for made in make_plans(store, runtimes, patients, at, window_days, rules).values():
        if isinstance(made, PlanError):  # e.g. in two versions of one pathway: `pathways plan` says what to do
            done.problems.append(str(made))
            continue
        done.changed += made[1].plan_changed
        done.decisions_added += made[1].decisions_added
    return done


def plan_page(store: Store, runtimes: Runtimes, patient: str, at: dt.date) -> PersonalPlan:
    """The patient's plan at ``at`` as `pathways plan PATIENT` makes it (the care network's
    bundling window; stored, its decisions audited once), and the page's read of it audited
    (``patient_data.read``, as the enrollment page's). PlanError for an unknown patient or one in
    no pathway; ProblemsFound for a bad network or interaction file."""
    made, _ = make_plan(store, runtimes, patient, at, bundling_window(None))
    store.record_audit([Record(Action.PATIENT_DATA_READ, patient, subject=f"{patient}:plan",
                               payload={Key.PAGE: "plan", Key.AT: at.isoformat(),
                                        Key.ENROLLMENTS: [p["enrollment"] for p in made.to_json()["pathways"]]})])
    return made


def plan_parts(store: Store, runtimes: Runtimes, patient: str) -> list:
    """The patient's enrollments as stored, each with the pathway version it runs: the parts of
    the patient-level plan (FHIR export) and the titles of the zorgplan."""
    ids = [eid for eid, _, _ in store.enrollments_of(patient)]
    states = store.load_many(ids)
    return [(runtimes.get_version(states[e][0].version_key, store).loaded, states[e][0]) for e in ids]


def record_priorities(store: Store, runtimes: Runtimes, patient: str, given: list[str], on: dt.date, option: str = "--priority") -> int:
    """Store the patient's goal priorities from ``PATHWAY.GOAL=N`` or ``GOAL=N`` (N: 1 high,
    2 medium, 3 low; ``none`` forgets it), all or none; PlanError naming every bad one. The
    goal must be one of the patient's pathways' (``GOAL`` alone: when only one pathway has it).
    ``option``: how the problems name where a value came from (the CLI's option, the web's form)."""
    authorize(store, "input.record", f"record the goal priorities of {patient}", patient)
    if not store.has_patient(patient):
        raise PlanError([f"unknown patient '{patient}': no facts or enrollments stored for this pseudonymous id"])
    goals: dict[str, list[str]] = {}  # goal -> pathways that have it
    for loaded, _ in plan_parts(store, runtimes, patient):
        for step in loaded.spec.steps:
            for goal in step.goals:
                goals.setdefault(goal.id, []).append(loaded.spec.id)
    known = ", ".join(sorted(f"{p}.{g}" for g, ps in goals.items() for p in ps)) or "none (the patient is in no pathway with goals)"
    problems, found = [], []
    for item in given:
        name, sep, value = item.partition("=")
        pathway, dot, goal = name.strip().rpartition(".")
        value = value.strip().lower()
        if not sep or not goal:
            problems.append(f"{option} '{item}': write PATHWAY.GOAL=N (N: 1 high, 2 medium, 3 low, or none)")
            continue
        if value not in ("1", "2", "3", "none"):
            problems.append(f"{option} '{item}': the priority must be 1 (high), 2 (medium), 3 (low) or none, not '{value}'")
            continue
        owners = goals.get(goal, [])
        if pathway and pathway not in owners or not owners:
            problems.append(f"{option} '{item}': {patient} has no goal '{name.strip()}' in their pathways; known: {known}")
            continue
        if not pathway and len(owners) > 1:
            problems.append(f"{option} '{item}': goal '{goal}' is in {' and '.join(owners)}: write PATHWAY.{goal}={value}")
            continue
        found.append((pathway or owners[0], goal, None if value == "none" else int(value)))
    if problems:
        raise PlanError(problems)
    return set_priorities(store, patient, found, on)


def resolve_plan_escalation(store: Store, patient: str, rule: str, reason: str, on: dt.date,
                            options: tuple[str, str] = ("--resolve", "--reason")) -> int:
    """Close the escalations the conflicts of ``rule`` opened on the patient's plan, for a
    documented reason; PlanError when none is open (naming those that are). ``options``: how the
    problems name the rule and the reason (the CLI's options, the web's form fields)."""
    authorize(store, "input.record", f"resolve the plan escalation {rule} of {patient}", patient)
    if not reason.strip():
        raise PlanError([f"{options[1]}: say why the escalation is closed (kept in the audit trail)"])
    if not store.has_patient(patient):
        raise PlanError([f"unknown patient '{patient}': no facts or enrollments stored for this pseudonymous id"])
    closed = resolve_escalations(store, patient, rule, reason.strip(), on)
    if not closed:
        still = sorted({e["rule"] for e in plan_escalations(store, patient).values() if e["resolved_on"] is None})
        raise PlanError([f"{options[0]} {rule}: no escalation of rule '{rule}' is open on the plan of {patient} "
                         f"(open: {', '.join(still) or 'none'})"])
    return len(closed)
