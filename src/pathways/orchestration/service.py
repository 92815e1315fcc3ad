"""What the commands and the Prefect flows do, without Prefect: enrol patients, advance
enrollments, record human input. Each advance reads the state, runs the runtime core and
writes the result in one transaction; a stale read is retried from the start."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pathways.clock import Clock
from pathways.definition.loader import LoadedPathway, load_pathway
from pathways.facts.load import load_patient_file
from pathways.rules.evaluate import PathwayEvaluator
from pathways.runtime.core import Event, Runtime, enroll
from pathways.store.db import DEFAULT_URL, StaleState, Store, make_engine, migrate


def database_url() -> str:
    return os.environ.get("PATHWAYS_DATABASE_URL") or DEFAULT_URL


_MIGRATED: set[str] = set()


def open_store(clock: Clock, url: str | None = None) -> Store:
    """A store on the configured database, brought to the current schema (once per process)."""
    url = url or database_url()
    engine = make_engine(url)
    if url not in _MIGRATED:
        migrate(engine)
        _MIGRATED.add(url)
    return Store(engine, clock.now)


class Runtimes:
    """One runtime (and compiled ruleset) per pathway version, shared by all enrollments."""

    def __init__(self):
        self._by_name: dict[str, Runtime] = {}

    def get(self, pathway: str) -> Runtime:
        if pathway not in self._by_name:
            loaded = load_pathway(pathway)
            # decisions come from durable-rules; the reference explains those that become events
            # (`pathways evaluate` and the tests compare the two on every condition)
            self._by_name[pathway] = Runtime(loaded, PathwayEvaluator(loaded, cross_check=False))
        return self._by_name[pathway]


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


def enroll_file(store: Store, runtimes: Runtimes, pathway: str, path: Path, clock: Clock, patient_id: str | None = None) -> Enrolled:
    """Read a patient file (facts JSON or FHIR), store its facts, enrol the patient
    (under ``patient_id`` when given, else the file's pseudonym)."""
    from sqlmodel import Session

    from pathways.store.models import Enrollment

    runtime = runtimes.get(pathway)
    patient = load_patient_file(path)
    facts = patient.facts if patient_id is None else patient.facts.model_copy(update={"patient": patient_id})
    eid = enrollment_id(runtime.loaded, facts.patient)
    with Session(store.engine) as session:
        exists = session.get(Enrollment, eid) is not None
    if exists:
        return Enrolled(eid, facts.patient, False, patient.notes)
    store.add_patient_facts(facts, f"file:{path.name}")
    store.create_enrollment(enroll(runtime.loaded, eid, facts.patient, clock.today(), runtime.evaluator))
    return Enrolled(eid, facts.patient, True, patient.notes)


@dataclass
class Advanced:
    enrollment: str
    events: list[Event]
    statuses: dict[str, str]  # step -> status after the advance


def advance_one(store: Store, runtimes: Runtimes, enrollment: str, clock: Clock, attempts: int = 3) -> Advanced:
    for attempt in range(attempts):
        state, version = store.load(enrollment)
        runtime = runtimes.get(state.pathway)
        if state.version_key != runtime.evaluator.plan.version_key:
            raise RuntimeError(f"{enrollment} runs {state.version_key}, but {state.pathway} is now {runtime.evaluator.plan.version_key}")
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
    states = store.load_many(enrollments)
    facts = store.patient_facts_many(sorted({state.patient for state, _ in states.values()}))
    results: list[Advanced] = []
    writes = []
    for enrollment in enrollments:
        state, version = states[enrollment]
        runtime = runtimes.get(state.pathway)
        if state.version_key != runtime.evaluator.plan.version_key:
            raise RuntimeError(f"{enrollment} runs {state.version_key}, but {state.pathway} is now {runtime.evaluator.plan.version_key}")
        new, events, _ = runtime.advance(state, facts[state.patient], clock)
        writes.append((new, version, events))
        statuses = {s: p.status for s, p in new.steps.items()}
        statuses.update({s: "escalated" for s in new.escalations})
        results.append(Advanced(enrollment, events, statuses))
    try:
        store.apply_many(writes)
    except StaleState:
        return [advance_one(store, runtimes, enrollment, clock) for enrollment in enrollments]
    return results


def record_step(store: Store, runtimes: Runtimes, enrollment: str, step: str, data: dict[str, Any], clock: Clock) -> list[Event]:
    state, version = store.load(enrollment)
    runtime = runtimes.get(state.pathway)
    facts = store.patient_facts(state.patient)
    new, events, observations = runtime.record(state, step, data, facts, clock)
    store.apply(new, version, events, observations, source=f"record:{enrollment}:{step}")
    return events


def at_clock(clock: Clock, at: dt.date | None) -> Clock:
    """The given clock, or a fixed one at ``at`` (for `--at DATE`)."""
    if at is None:
        return clock
    from pathways.clock import FixedClock

    return FixedClock.on(at)
