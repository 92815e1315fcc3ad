"""What the commands and the Prefect flows do, without Prefect: enrol patients, advance
enrollments (one, or a batch: ``advance_many``), record human input and resolve escalations.
Each advance reads the state, runs the runtime core and writes the result in one transaction; a
stale read is retried from the start. The rest lives beside it, one job each: ``settings``
(``PATHWAYS_*``, one typed object), ``identity`` (BSN as a keyed hash), ``stores`` (opening the
store as configured, recording configuration changes, access checks) and ``runtimes``
(publishing pathway versions, one runtime per version); their names are re-exported here for
the modules that import them from ``service``."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pathways.clock import Clock
from pathways.definition.loader import LoadedPathway
from pathways.facts.load import load_patient_file
from pathways.runtime.core import Event, enroll
from pathways.store.audit import Record
from pathways.store.db import StaleState, Store
# re-exported: the names other modules import from ``service``
from pathways.orchestration.identity import bsn_hmac, identity_row, identity_secret  # noqa: F401
from pathways.orchestration.runtimes import (  # noqa: F401
    _PUBLISHED, Runtimes, by_version, ensure_published, publish, refuse_draft)
from pathways.orchestration.settings import (  # noqa: F401
    batch_size, bsn_storage, check_database_url, database_url, schedule_reviews_setting, worker_count)
from pathways.orchestration.stores import (  # noqa: F401
    _CONFIGURED, _MIGRATED, authorize, configuration, migrate_once, note_configuration, open_store)
from pathways.store.vocabulary import Action, Key


def enrollment_id(pathway: LoadedPathway, patient: str) -> str:
    """Stable: enrolling the same patient in the same pathway version twice is the same enrollment."""
    digest = hashlib.sha256(f"{pathway.spec.id}@{pathway.spec.version}:{patient}".encode()).hexdigest()[:12]
    return f"{pathway.spec.id}-{digest}"


@dataclass
class Enrolled:
    enrollment: str
    patient: str
    created: bool
    notes: list[str] = field(default_factory=list)
    facts_added: int = 0  # facts the store did not know yet
    facts_known: int = 0  # facts it knew already (from another file or another pathway)


def enroll_file(store: Store, runtimes: Runtimes, pathway: str, path: Path, clock: Clock, patient_id: str | None = None,
                from_stage: str | None = None) -> Enrolled:
    """Read a patient file (facts JSON or FHIR), store its facts, enrol the patient
    (under ``patient_id`` when given, else the file's pseudonym)."""
    from pathways.facts.load import PatientFileError

    try:
        return enroll_patient(store, runtimes, pathway, load_patient_file(path), f"file:{path.name}", clock, patient_id, from_stage)
    except PatientFileError as exc:  # the parts that parsed are checked against the pathway too: one round
        if not exc.schema:
            raise
        from pathways.facts.problems import every_problem

        raise PatientFileError(every_problem(path, exc.schema, exc.partial, runtimes.get(pathway).loaded.facts, clock.today())) from None
    except UnusableValues as exc:
        raise PatientFileError([f"{path}: {problem}" for problem in exc.problems] + [exc.summary]) from None


class UnknownPatient(ValueError):
    """Enrolling from the store a patient it does not know."""


def enroll_known(store: Store, runtimes: Runtimes, pathway: str, patient_id: str, clock: Clock, from_stage: str | None = None) -> Enrolled:
    """Enrol a patient the store knows (enrolled in another pathway, say) in one more pathway, on
    the facts stored for them: nothing to read again, nothing stored twice. UnknownPatient when
    the store has no facts for ``patient_id``."""
    from pathways.facts.load import PatientFile, PatientFileError

    authorize(store, "enrollment.write", f"enrol patients in {pathway}", patient_id)
    if not store.has_patient(patient_id):
        raise UnknownPatient(f"unknown patient '{patient_id}': no facts stored for this pseudonymous id; "
                             f"give --facts FILE.json or --fhir BUNDLE to store them")
    stored = PatientFile(facts=store.patient_facts(patient_id), source="store")
    try:
        return enroll_patient(store, runtimes, pathway, stored, "store", clock, None, from_stage)
    except UnusableValues as exc:
        raise PatientFileError([f"the facts stored for {patient_id}: {problem}" for problem in exc.problems] + [exc.summary]) from None


def enroll_patient(store: Store, runtimes: Runtimes, pathway: str, patient, source: str, clock: Clock, patient_id: str | None = None,
                   from_stage: str | None = None) -> Enrolled:
    """Store a read patient file's facts (identity apart) and enrol the patient. A patient
    already enrolled gets what is new of the file's facts (nothing is stored twice)."""
    runtime = runtimes.get(pathway)
    facts = patient.facts if patient_id is None else patient.facts.model_copy(update={"patient": patient_id})
    eid = enrollment_id(runtime.loaded, facts.patient)
    exists = store.has_enrollment(eid)
    other = [e for e, p, _ in store.enrollments_of(facts.patient) if p == runtime.spec.id and e != eid] if not exists else []
    if other:  # one enrollment per patient and pathway: a migrated one keeps its id on its new version
        state, _ = store.load(other[0])
        if state.version_key == runtime.evaluator.plan.version_key:
            eid, exists = other[0], True
        else:
            refuse_draft(store, runtime)
            raise EnrolledInOtherVersion(f"{facts.patient} is enrolled in {runtime.spec.id} {state.version} already ({other[0]}); "
                                         f"move it to {runtime.spec.version} with `pathways migrate preview {runtime.spec.id} "
                                         f"--to {runtime.spec.version}` and `pathways migrate apply HASH`")
    authorize(store, "enrollment.write", f"enrol patients in {pathway}", eid)
    # a value the pathway cannot use would silently count as missing: refused, as `pathways evaluate` refuses it
    unusable = runtime.evaluator.timeline(facts, clock.today()).unusable()
    if unusable:
        raise UnusableValues([str(issue) for issue in unusable])
    if exists:
        added, known = store.add_patient_facts(facts, source)
        return Enrolled(eid, facts.patient, False, patient.notes, added, known)
    refuse_draft(store, runtime)
    ensure_published(store, runtime)
    state = enroll(runtime.loaded, eid, facts.patient, clock.today(), runtime.evaluator)
    events = []
    if from_stage is not None:
        state, events = runtime.enroll_from(state, from_stage)
    added, known = store.enroll(facts, state, source, identity_row(patient.identity), events)
    return Enrolled(eid, facts.patient, True, patient.notes, added, known)


class EnrolledInOtherVersion(ValueError):
    """Enrolling a patient in a pathway version while they run another version of it: one
    enrollment per patient and pathway, moved between versions by `pathways migrate`."""


class UnusableValues(ValueError):
    """A patient file with values the pathway cannot use (``Timeline.unusable``): nothing is
    stored, the patient is not enrolled."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        self.summary = f"{len(problems)} problem{'s' if len(problems) > 1 else ''} in the patient file; nothing stored, not enrolled"
        super().__init__("; ".join(problems))


@dataclass
class Advanced:
    enrollment: str
    events: list[Event]
    statuses: dict[str, str]  # step -> status after the advance


def advance_one(store: Store, runtimes: Runtimes, enrollment: str, clock: Clock, attempts: int = 3, ahead: bool = False) -> Advanced:
    """``ahead``: an enrollment advanced past the clock's day already is left as it is (a batch of
    a run for an earlier day), instead of refused."""
    authorize(store, "enrollment.write", "advance enrollments", enrollment)
    for attempt in range(attempts):
        state, version = store.load(enrollment)
        if ahead and state.as_of > clock.today():
            return Advanced(enrollment, [], _statuses(state))
        runtime = runtimes.get_version(state.version_key, store)
        facts = store.patient_facts(state.patient)
        new, events, _ = runtime.advance(state, facts, clock)
        try:
            store.apply(new, version, events)
        except StaleState:
            if attempt == attempts - 1:
                raise
            continue  # someone else advanced it: read again; keyed decisions are never doubled
        statuses = {s: p.status for s, p in new.steps.items()}
        statuses.update({s: "escalated" for s in new.escalations})
        return Advanced(enrollment, events, statuses)
    raise AssertionError("unreachable")


def advance_many(store: Store, runtimes: Runtimes, enrollments: list[str], clock: Clock) -> list[Advanced]:
    """Advance a batch: states and facts read in bulk, all results written in one transaction.
    If any of them changed underneath (another worker), the batch write is rolled back whole
    and each enrollment is advanced on its own, re-reading its state."""
    authorize(store, "enrollment.write", "advance enrollments", enrollments[0] if len(enrollments) == 1 else f"{len(enrollments)} enrollments")
    states = store.load_many(enrollments)
    facts = store.patient_facts_many(sorted({state.patient for state, _ in states.values()}))
    at = clock.today()
    members: dict[str, list[str]] = {}  # per pathway version, its enrollments in the batch: the rules evaluated in bulk
    for enrollment in enrollments:
        state, _ = states[enrollment]
        runtimes.get_version(state.version_key, store)  # an unknown version stops the batch before anything is decided
        if state.as_of <= at:  # one advanced past ``at`` already (by a review run, say) is left as it is below
            members.setdefault(state.version_key, []).append(enrollment)
    evaluations = {}
    for key, ids in members.items():
        made = runtimes.get_version(key, store).evaluator.evaluate_many([facts[states[e][0].patient] for e in ids], at, at)
        evaluations.update(zip(ids, made))
    results: list[Advanced] = []
    writes = []
    for enrollment in enrollments:
        state, version = states[enrollment]
        if state.as_of > at:  # a run for an earlier day cannot take it back: nothing to decide
            results.append(Advanced(enrollment, [], _statuses(state)))
            continue
        runtime = runtimes.get_version(state.version_key, store)
        new, events, _ = runtime.advance(state, facts[state.patient], clock, evaluations.get(enrollment))
        writes.append((new, version, events))
        results.append(Advanced(enrollment, events, _statuses(new)))
    try:
        store.apply_many(writes)
    except StaleState:
        return [advance_one(store, runtimes, enrollment, clock, ahead=True) for enrollment in enrollments]
    return results


def _statuses(state) -> dict[str, str]:
    statuses = {s: p.status for s, p in state.steps.items()}
    statuses.update({s: "escalated" for s in state.escalations})
    return statuses


def record_step(store: Store, runtimes: Runtimes, enrollment: str, step: str, data: dict[str, Any], clock: Clock,
                require_all: bool = True, note: dict[str, Any] | None = None, today: dt.date | None = None) -> list[Event]:
    """Record a step done with people's input (``require_all=False``: simulations and tests may
    leave required outputs out when nothing is known of them), then advance the enrollment on
    that day at once (no earlier than it stands), in the same transaction: the step shows as done,
    what it unblocks comes due, and an urgent value escalates now, not at the next run.
    ``today``: the real date, when the clock is set to the day the step was done (--at)."""
    from pathways.clock import FixedClock
    from pathways.runtime.core import RecordError, StepNotOpen

    authorize(store, "input.record", f"record step {step}", enrollment)
    state, version = store.load(enrollment)
    at = clock.today()
    if at < state.enrolled_on:
        raise RecordError([f"{at} is before {enrollment} was enrolled ({state.enrolled_on}): give --at {state.enrolled_on} or later"])
    if today is not None and at > today:
        raise RecordError([f"{at} is in the future (today is {today}): record a step on the day it was done"])
    runtime = runtimes.get_version(state.version_key, store)
    progress = state.steps.get(step)
    if progress is not None and progress.done_on and progress.status != "due" and runtime.steps[step].escalation is None:
        raise StepNotOpen([_recorded_already(store, enrollment, step, progress)])
    facts = store.patient_facts(state.patient)
    new, events, observations = runtime.record(state, step, data, facts, clock, require_all)
    if observations:
        facts = facts.model_copy(update={"observations": (*facts.observations, *observations)})
    new, advanced, _ = runtime.advance(new, facts, FixedClock.on(max(at, state.as_of)))
    recorded = Record(Action.INPUT_RECORDED, state.patient, enrollment, state.pathway, state.version, state.version_key,
                      f"{enrollment}:{step}", {Key.STEP: step, Key.VALUES: data, Key.ON: at.isoformat(), **(note or {})})
    store.apply(new, version, events + advanced, observations, source=f"record:{enrollment}:{step}", recorded=recorded)
    return events + advanced


def _recorded_already(store: Store, enrollment: str, step: str, progress) -> str:
    """Why a step cannot be recorded again: when it was and by whom, and when it is due next."""
    entry = store.last_recorded(enrollment, step)
    by = f" by {entry['actor']} ({entry['role']}, entered {entry['at'][:10]})" if entry else ""
    nxt = (f"; its next occurrence is due on {progress.due_on}" if progress.status == "waiting" and progress.due_on
           else "; it is not due again" if progress.status in ("finished", "waiting") else f" (status {progress.status})")
    return f"step '{step}' was recorded already on {progress.done_on[-1]}{by}{nxt}"


SIGN_OFF_OUTCOMES = ("akkoord", "niet akkoord")


def sign_off(store: Store, runtimes: Runtimes, enrollment: str, step: str, signed_off_by: str, outcome: str, clock: Clock,
             via: str) -> list[Event]:
    """The answer to an open escalation's sign-off (e.g. the huisarts agreeing to a referral), as
    given in Prefect's paused ``pathways-signoff`` run or on the web: "akkoord" records the
    escalation step done (``record_step``, advanced at once), "niet akkoord" leaves it open.
    Both are written to the audit trail with who signed off. StepNotOpen when the escalation is
    not open (closed since, or never opened); RecordError for another outcome."""
    from pathways.runtime.core import RecordError, StepNotOpen

    authorize(store, "input.record", f"sign off {step}", enrollment)
    if outcome not in SIGN_OFF_OUTCOMES:
        raise RecordError([f"outcome '{outcome}': use akkoord or 'niet akkoord'"])
    state, _ = store.load(enrollment)
    if step not in state.escalations:
        raise StepNotOpen([f"'{step}' is not an open escalation of {enrollment} (open: {', '.join(sorted(state.escalations)) or 'none'})"])
    note = {Key.SIGNED_OFF_BY: signed_off_by, "outcome": outcome, Key.VIA: via}
    if outcome == "akkoord":
        return record_step(store, runtimes, enrollment, step, {}, clock, note=note)
    store.record_audit([Record(Action.SIGNOFF_DECLINED, state.patient, enrollment, state.pathway, state.version, state.version_key,
                               f"{enrollment}:{step}", {Key.STEP: step, **note})])
    return []


def resolve_escalation(store: Store, runtimes: Runtimes, enrollment: str, step: str, reason: str, clock: Clock) -> list[Event]:
    """Close an open escalation for a documented reason (audited with who and why)."""
    authorize(store, "input.record", f"resolve escalation {step}", enrollment)
    state, version = store.load(enrollment)
    runtime = runtimes.get_version(state.version_key, store)
    new, events = runtime.resolve(state, step, reason, clock)
    store.apply(new, version, events)
    return events


def at_clock(clock: Clock, at: dt.date | None) -> Clock:
    """The given clock, or a fixed one at ``at`` (for `--at DATE`)."""
    if at is None:
        return clock
    from pathways.clock import FixedClock

    return FixedClock.on(at)
