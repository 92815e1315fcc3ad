"""The store: every read and write of patients, facts, enrollments, published pathway versions,
step runs and decisions, each write audited in its own transaction. Each advance is written in
one transaction; idempotency keys are enforced by unique constraints, and a stale state version
makes the write fail (someone else advanced). Opening the database (engine, migrations,
retries) is ``store.connect``; the rows written are built by ``store.rows``; the errors are
``store.errors``, re-exported here where most callers import them with the ``Store``.
"""

from __future__ import annotations

import datetime as dt
import json
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from pathways.access import SERVICE, Actor
from pathways.facts.model import Observation, PatientFacts
from pathways.runtime.core import EnrollmentState, Event
from pathways.runtime.stateformat import CURRENT_PREFIX
from pathways.store import audit, bulk, factrows
from pathways.store.audit import Record
from pathways.store.connect import retrying, shown
from pathways.store.errors import StaleState, StoreError, StoreUnavailable, UnknownEnrollment, UnreadableState, VersionTaken
from pathways.store.models import Decision, Enrollment, Fact, Patient, PatientIdentity
from pathways.store.rows import (
    ADVANCE, Prepared, chunks, facts_from_rows, goal_rows, loaded_state, next_due, prepare_events, state_json, statements, write_events)
from pathways.store.trail import Trail
from pathways.store.vocabulary import Action, Key

__all__ = ["IntegrityError", "Store", "StoreError", "StoreUnavailable", "StaleState", "UnknownEnrollment", "UnreadableState", "VersionTaken"]


class Store:
    """The store, acting for ``actor``; every change is audited in the transaction that makes it.
    ``context`` (e.g. the Prefect flow-run and task-run ids) is added to each audit entry."""

    def __init__(self, engine: Engine, now: Callable[[], dt.datetime], actor: Actor = SERVICE, context: dict[str, Any] | None = None,
                 sleep: Callable[[float], Any] | None = None):
        self.engine = engine
        self.sleep = sleep  # the wait between retries of an unavailable database (None: time.sleep)
        self.where = f"the database {shown(engine.url)}"  # as errors name it
        self.now = now  # the clock's now(): the store reads no wall clock itself
        self.actor = actor
        self.context = dict(context or {})

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        with Session(self.engine) as session:
            with session.begin():
                # the audit head is locked first in every writing transaction: one lock order
                audit.lock(session.connection())
                yield session

    def audit(self, session: Session, records: list[Record]) -> int:
        return audit.append(session.connection(), records, self.actor, self.now(), self.context)

    @property
    def trail(self) -> Trail:
        """The audit trail's reads on this store (each opens its own connection)."""
        return Trail(self.engine)

    def record_audit(self, records: list[Record]) -> None:
        """Audit something that changes nothing else (an access denial, a configuration change)."""
        def write() -> None:
            with self.transaction() as session:
                self.audit(session, records)
        retrying(write, what=self.where, sleep=self.sleep)

    # -- patients and facts ---------------------------------------------------------------
    def add_patient_facts(self, facts: PatientFacts, source: str) -> tuple[int, int]:
        """Store what is new of a patient's facts (the patient too, if new); (added, already known)."""
        def write() -> tuple[int, int]:
            with self.transaction() as session:
                return self._add_patient(session, facts, source, None)
        return retrying(write, what=self.where, sleep=self.sleep)

    def has_patient(self, patient: str) -> bool:
        def read() -> bool:
            with Session(self.engine) as session:
                return session.get(Patient, patient) is not None
        return retrying(read, what=self.where, sleep=self.sleep)

    def has_enrollment(self, enrollment: str) -> bool:
        def read() -> bool:
            with Session(self.engine) as session:
                return session.get(Enrollment, enrollment) is not None
        return retrying(read, what=self.where, sleep=self.sleep)

    def patient_record(self, patient: str) -> tuple[dict[str, Any] | None, list[dict[str, Any]]] | None:
        """What `pathways patient` shows: the identifying data kept apart (None when none was
        stored) and the patient's enrollments; None for a patient the store does not know."""
        def read() -> tuple[dict[str, Any] | None, list[dict[str, Any]]] | None:
            with Session(self.engine) as session:
                if session.get(Patient, patient) is None:
                    return None
                row = session.get(PatientIdentity, patient)
                identity = None if row is None else {"name": row.name, "birth_date": row.birth_date, "bsn": row.bsn, "bsn_hmac": row.bsn_hmac}
                enrollments = [{"id": e.id, "pathway": e.pathway, "version": e.version, "enrolled_on": e.enrolled_on, "as_of": e.as_of}
                               for e in session.execute(select(Enrollment).where(Enrollment.patient_id == patient)).scalars()]
                return identity, enrollments
        return retrying(read, what=self.where, sleep=self.sleep)

    def enrollments_of(self, patient: str) -> list[tuple[str, str, dt.date]]:
        """The patient's enrollments: (id, pathway, as of), in id order."""
        def read() -> list[tuple[str, str, dt.date]]:
            with Session(self.engine) as session:
                rows = session.execute(select(Enrollment.id, Enrollment.pathway, Enrollment.as_of)
                                       .where(Enrollment.patient_id == patient).order_by(Enrollment.id))
                return [tuple(row) for row in rows]
        return retrying(read, what=self.where, sleep=self.sleep)

    def _add_patient(self, session: Session, facts: PatientFacts, source: str, identity: dict[str, Any] | None) -> tuple[int, int]:
        records = []
        if session.get(Patient, facts.patient) is None:
            session.add(Patient(id=facts.patient, created_at=self.now()))
            session.flush()
            records.append(Record(Action.PATIENT_CREATED, patient=facts.patient, payload={Key.SOURCE: source}))
        if identity:
            kept = session.get(PatientIdentity, facts.patient)
            if kept is None or any(getattr(kept, k) != v for k, v in identity.items()):
                session.merge(PatientIdentity(patient_id=facts.patient, **identity))
                records.append(Record(Action.IDENTITY_STORED, patient=facts.patient,
                                      payload={Key.FIELDS: sorted(k for k, v in identity.items() if v is not None)}))
        added, known, counts = self._append(session, facts.patient, facts, source)
        if added or records:  # a file that brought nothing new changed nothing: not audited
            records.append(Record(Action.FACTS_ADDED, patient=facts.patient,
                                  payload={Key.SOURCE: source, Key.COUNTS: counts, "added": added, "already_known": known}))
        if records:
            self.audit(session, records)
        return added, known

    def enroll(self, facts: PatientFacts, state: EnrollmentState, source: str, identity: dict[str, Any] | None = None,
               events: list[Event] = ()) -> tuple[int, int]:
        """Store the patient (and identity, if given), what is new of the facts and the enrollment
        (with ``events`` decided at enrollment) in one transaction; (facts added, already known)."""
        prepared = self._prepare_events([(state, list(events))]) if events else None

        def write() -> tuple[int, int]:
            with self.transaction() as session:
                added = self._add_patient(session, facts, source, identity)
                self._create_enrollment(session, state)
                if prepared is not None:
                    session.flush()  # the enrollment's row before its step runs (Core statements)
                    write_events(session.connection(), prepared)
                return added
        return retrying(write, what=self.where, sleep=self.sleep)

    def _append(self, session: Session, patient: str, facts: PatientFacts, source: str) -> tuple[int, int, dict[str, int]]:
        """Store the facts the patient does not have yet; returns (added, already known, the
        added entries' counts per kind)."""
        known = factrows.Known.from_rows(session.execute(
            select(Fact.kind, Fact.payload, Fact.fingerprint).where(Fact.patient_id == patient).order_by(Fact.id)).all())
        fresh, repeated = factrows.new_rows(factrows.rows_of(facts), known)
        now = self.now()
        for row, print_ in fresh:
            session.add(Fact(patient_id=patient, kind=row.kind, payload=row.payload, observed_on=row.observed_on,
                             source=source, recorded_at=now, fingerprint=print_))
        return len(fresh), repeated, factrows.counts(fresh)

    def patient_facts(self, patient: str, session: Session | None = None) -> PatientFacts:
        """Everything known about a patient, rebuilt from the append-only fact rows."""
        def read(s: Session) -> PatientFacts:
            rows = s.execute(select(Fact).where(Fact.patient_id == patient).order_by(Fact.id)).scalars().all()
            return facts_from_rows(patient, rows)
        if session is not None:
            return read(session)
        with Session(self.engine) as s:
            return read(s)

    # -- enrollments ----------------------------------------------------------------------
    def create_enrollment(self, state: EnrollmentState) -> None:
        def write() -> None:
            with self.transaction() as session:
                self._create_enrollment(session, state)
        retrying(write, what=self.where, sleep=self.sleep)

    def _create_enrollment(self, session: Session, state: EnrollmentState) -> None:
        session.add(Enrollment(
            id=state.enrollment, patient_id=state.patient, pathway=state.pathway, version=state.version,
            version_key=state.version_key, enrolled_on=state.enrolled_on, as_of=state.as_of,
            state=state_json(state), state_version=0, updated_at=self.now(),
        ))
        self.audit(session, [Record(Action.ENROLLMENT_CREATED, state.patient, state.enrollment, state.pathway, state.version,
                                    state.version_key, state.enrollment, {"enrolled_on": state.enrolled_on.isoformat()})])

    # -- pathway versions -----------------------------------------------------------------
    def is_published(self, version_key: str) -> bool:
        def read() -> bool:
            with self.engine.connect() as connection:
                return audit.published(connection, version_key)
        return retrying(read, what=self.where, sleep=self.sleep)

    def published_files(self, version_key: str) -> dict[str, Any] | None:
        """The files kept when ``version_key`` was published (None: not published here)."""
        def read() -> dict[str, Any] | None:
            with self.engine.connect() as connection:
                payload = audit.published_payload(connection, version_key)
            return None if payload is None else payload.get(Key.FILES, {})
        return retrying(read, what=self.where, sleep=self.sleep)

    def published_versions(self, pathway: str) -> list[tuple[str, str]]:
        def read() -> list[tuple[str, str]]:
            with self.engine.connect() as connection:
                return audit.published_versions(connection, pathway)
        return retrying(read, what=self.where, sleep=self.sleep)

    def publications(self, pathway: str | None = None) -> list[dict[str, Any]]:
        """Who published which version when (pathway, pathway_version, version_key, actor, role, at), oldest first."""
        def read() -> list[dict[str, Any]]:
            with self.engine.connect() as connection:
                return audit.publications(connection, pathway)
        return retrying(read, what=self.where, sleep=self.sleep)

    def publish(self, pathway: str, version: str, version_key: str, payload: dict[str, Any]) -> bool:
        """Record a pathway version (its files as published) once; False if it already was.
        A version number published before with other content is refused (VersionTaken)."""
        def write() -> bool:
            with self.transaction() as session:
                if audit.published(session.connection(), version_key):
                    return False
                taken = [k for v, k in audit.published_versions(session.connection(), pathway) if v == version]
                if taken:
                    raise VersionTaken(f"{pathway} {version} is published already with other content ({taken[0]}; "
                                       f"these files are {version_key}): give the pathway a new `version:` and publish that")
                self.audit(session, [Record(Action.PATHWAY_PUBLISHED, pathway=pathway, pathway_version=version,
                                            version_key=version_key, subject=version_key, payload=payload)])
                return True
        return retrying(write, what=self.where, sleep=self.sleep)

    def _unknown(self, session: Session, which: str) -> str:
        """'unknown enrollment X in store Y', saying when the store has no enrollment at all: a
        command run from another folder opens (and creates) a new store there."""
        empty = session.execute(select(Enrollment.id).limit(1)).first() is None
        hint = " (empty: was it created here just now? set PATHWAYS_DATABASE_URL to the store you meant)" if empty else ""
        url = self.engine.url
        where = shown(url)
        if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).is_absolute():
            where += f" (that is {Path(url.database).resolve()})"
        return f"unknown enrollment {which} in store {where}{hint}"

    def load(self, enrollment: str) -> tuple[EnrollmentState, int]:
        def read() -> tuple[EnrollmentState, int]:
            with Session(self.engine) as session:
                row = session.get(Enrollment, enrollment)
                if row is None:
                    raise UnknownEnrollment(self._unknown(session, f"'{enrollment}'"))
                return loaded_state(enrollment, row.state), row.state_version
        return retrying(read, what=self.where, sleep=self.sleep)

    def load_many(self, enrollments: list[str]) -> dict[str, tuple[EnrollmentState, int]]:
        def read() -> dict[str, tuple[EnrollmentState, int]]:
            found: dict[str, tuple[EnrollmentState, int]] = {}
            with Session(self.engine) as session:
                for chunk in chunks(enrollments):
                    rows = session.execute(select(Enrollment.id, Enrollment.state, Enrollment.state_version).where(Enrollment.id.in_(chunk)))
                    for eid, state, version in rows:
                        found[eid] = (loaded_state(eid, state), version)
            missing = [e for e in enrollments if e not in found]
            if missing:
                with Session(self.engine) as session:
                    raise UnknownEnrollment(self._unknown(session, f"'{missing[0]}'" + (f" and {len(missing) - 1} more" if len(missing) > 1 else "")))
            return found
        return retrying(read, what=self.where, sleep=self.sleep)

    def check_readable(self, enrollments: list[str]) -> None:
        """Raise UnreadableState for the first of these enrollments whose state has a format this
        code does not write (a newer one), before a run starts rather than half way through it.
        Only the states that start otherwise than the current format are read in full."""
        def read() -> None:
            with Session(self.engine) as session:
                for chunk in chunks(enrollments):
                    rows = session.execute(select(Enrollment.id, Enrollment.state).where(
                        Enrollment.id.in_(chunk), Enrollment.state.startswith('{"format":', autoescape=True),
                        ~Enrollment.state.startswith(CURRENT_PREFIX, autoescape=True)).order_by(Enrollment.id))
                    for eid, state in rows:
                        loaded_state(eid, state)
        retrying(read, what=self.where, sleep=self.sleep)

    def patient_facts_many(self, patients: list[str]) -> dict[str, PatientFacts]:
        def read() -> dict[str, PatientFacts]:
            rows_by_patient: dict[str, list] = {p: [] for p in patients}
            with Session(self.engine) as session:
                for chunk in chunks(patients):  # plain tuples, not ORM objects: this is the hot path of a cohort
                    statement = select(Fact.patient_id, Fact.kind, Fact.payload).where(Fact.patient_id.in_(chunk)).order_by(Fact.id)
                    for patient, kind, payload in session.execute(statement):
                        rows_by_patient[patient].append((kind, payload))
            return {p: factrows.facts_from_pairs(p, pairs) for p, pairs in rows_by_patient.items()}
        return retrying(read, what=self.where, sleep=self.sleep)

    def apply_many(self, writes: list[tuple[EnrollmentState, int, list[Event]]]) -> None:
        """Write many advances in one transaction; StaleState (and nothing written) if any
        enrollment changed since it was read. Every row is prepared before the transaction
        begins: the store's write lock is held only to write them."""
        now = self.now()
        params = [{"b_id": s.enrollment, "b_version": v, "b_state": state_json(s), "b_next": v + 1,
                   "b_as_of": s.as_of, "b_next_due": next_due(s), "b_updated": now} for s, v, _ in writes]
        prepared = self._prepare_events([(s, events) for s, _, events in writes])
        goals = goal_rows([s for s, _, _ in writes])

        def write() -> None:
            with self.transaction() as session:
                connection = session.connection()
                changed = bulk.executemany(connection, ADVANCE, params)
                if changed not in (len(params), -1):
                    raise StaleState(f"{len(params) - changed} of {len(params)} enrollments changed since they were read")
                if changed == -1:  # the driver does not say: check the versions
                    for chunk in chunks(params):
                        ids = [p["b_id"] for p in chunk]
                        versions = dict(session.execute(select(Enrollment.id, Enrollment.state_version).where(Enrollment.id.in_(ids))).all())
                        if any(versions[p["b_id"]] != p["b_next"] for p in chunk):
                            raise StaleState("enrollments changed since they were read")
                write_events(session.connection(), prepared)
                bulk.executemany(connection, statements(connection.dialect.name)["goal"], goals)
        retrying(write, what=self.where, sleep=self.sleep)

    def due_by_version(self, on: dt.date) -> dict[str, list[str]]:
        """The enrollments that have come due on ``on``, per pathway version key (ids in order):
        each enrollment runs the version it was enrolled in. One already advanced past ``on`` is
        not among them (a run for an earlier date cannot take it back)."""
        def read() -> dict[str, list[str]]:
            groups: dict[str, list[str]] = {}
            with Session(self.engine) as session:
                rows = session.execute(select(Enrollment.version_key, Enrollment.id)
                                       .where((Enrollment.next_due == None) | (Enrollment.next_due <= on))  # noqa: E711
                                       .where(Enrollment.as_of <= on).order_by(Enrollment.id))
                for key, eid in rows:
                    groups.setdefault(key, []).append(eid)
            return dict(sorted(groups.items()))
        return retrying(read, what=self.where, sleep=self.sleep)

    def due_by_pathway(self, on: dt.date) -> dict[str, list[str]]:
        """The enrollments that have come due on ``on``, per pathway (ids in order). One already
        advanced past ``on`` is not among them (a run for an earlier date cannot take it back)."""
        def read() -> dict[str, list[str]]:
            groups: dict[str, list[str]] = {}
            with Session(self.engine) as session:
                rows = session.execute(select(Enrollment.pathway, Enrollment.id)
                                       .where((Enrollment.next_due == None) | (Enrollment.next_due <= on))  # noqa: E711
                                       .where(Enrollment.as_of <= on).order_by(Enrollment.id))
                for pathway, eid in rows:
                    groups.setdefault(pathway, []).append(eid)
            return dict(sorted(groups.items()))
        return retrying(read, what=self.where, sleep=self.sleep)

    def apply(self, state: EnrollmentState, read_version: int, events: list[Event], observations: list[Observation] = (),
              source: str = "advance", fail_after: Callable[[Session], None] | None = None, recorded: Record | None = None) -> int:
        """Write one advance (or record) in one transaction; returns the new state version.

        Decisions and step runs are keyed: writing the same events again adds nothing. If the
        enrollment changed since ``read_version`` the whole write is refused (StaleState).
        ``fail_after`` lets tests crash the transaction half way.
        """
        prepared = self._prepare_events([(state, events)], [recorded] if recorded else None)
        goals = goal_rows([state])

        def write() -> int:
            with self.transaction() as session:
                done = session.execute(
                    update(Enrollment)
                    .where(Enrollment.id == state.enrollment, Enrollment.state_version == read_version)
                    .values(state=state_json(state), state_version=read_version + 1, as_of=state.as_of,
                            next_due=next_due(state), updated_at=self.now())
                )
                if done.rowcount != 1:
                    raise StaleState(f"enrollment '{state.enrollment}' changed since it was read (version {read_version})")
                if observations:
                    self._append(session, state.patient, PatientFacts(patient=state.patient, observations=tuple(observations)), source)
                write_events(session.connection(), prepared)
                if fail_after is not None:
                    fail_after(session)
                connection = session.connection()
                bulk.executemany(connection, statements(connection.dialect.name)["goal"], goals)
                return read_version + 1
        return retrying(write, what=self.where, sleep=self.sleep)

    def _prepare_events(self, batches: list[tuple[EnrollmentState, list[Event]]], extra: list[Record] | None = None) -> Prepared:
        """The rows of the events (store/rows.py), built before the transaction, audited as this store's actor."""
        return prepare_events(batches, extra, self.actor, self.now, self.context)

    def recorded_inputs(self, enrollment: str) -> list[tuple[dt.date, str, dict[str, Any]]]:
        """What people recorded for the enrollment's steps: (date, step, {fact: value})."""
        prefix = f"record:{enrollment}:"

        def read() -> list[tuple[dt.date, str, dict[str, Any]]]:
            grouped: dict[tuple[dt.date, str], dict[str, Any]] = {}
            with Session(self.engine) as session:
                rows = session.execute(select(Fact).where(Fact.source.startswith(prefix), Fact.kind == "observation").order_by(Fact.id)).scalars().all()
                for row in rows:
                    data = json.loads(row.payload)
                    grouped.setdefault((row.observed_on, row.source[len(prefix):]), {})[data["fact"]] = data["value"]
            return [(day, step, values) for (day, step), values in grouped.items()]
        return retrying(read, what=self.where, sleep=self.sleep)

    def identity(self, patient: str) -> dict[str, Any] | None:
        def read() -> dict[str, Any] | None:
            with Session(self.engine) as session:
                row = session.get(PatientIdentity, patient)
                return None if row is None else {"name": row.name, "birth_date": row.birth_date, "bsn_hmac": row.bsn_hmac}
        return retrying(read, what=self.where, sleep=self.sleep)

    def last_recorded(self, enrollment: str, step: str) -> dict[str, Any] | None:
        """The audit entry of the last input recorded for a step (who recorded it, when), if any."""
        def read() -> dict[str, Any] | None:
            with self.engine.connect() as connection:
                found = list(audit.entries(connection, audit.Query(enrollment=enrollment, action=Action.INPUT_RECORDED, subject=f"{enrollment}:{step}")))
            return found[-1] if found else None
        return retrying(read, what=self.where, sleep=self.sleep)

    def decisions(self, enrollment: str) -> list[Decision]:
        def read() -> list[Decision]:
            with Session(self.engine) as session:
                return list(session.execute(select(Decision).where(Decision.enrollment_id == enrollment).order_by(Decision.id)).scalars().all())
        return retrying(read, what=self.where, sleep=self.sleep)
