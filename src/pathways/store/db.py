"""Store access: SQLite by default, any SQLAlchemy URL via PATHWAYS_DATABASE_URL (PostgreSQL
through psycopg 3). The schema is versioned with Alembic; ``migrate`` brings a database to the
current schema. Each advance is written in one transaction; idempotency keys are enforced by
unique constraints, and a stale state version makes the write fail (someone else advanced).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

from sqlalchemy import bindparam, create_engine, event, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session

from pathways.access import SERVICE, Actor
from pathways.facts.model import Observation, PatientFacts
from pathways.runtime.core import EnrollmentState, Event
from pathways.runtime.stateformat import CURRENT_PREFIX, StateFormatError, dump_state, load_state
from pathways.store import audit, bulk, factrows
from pathways.store.audit import Record
from pathways.store.defaults import DEFAULT_URL  # (apart: the settings read it without SQLAlchemy)
from pathways.store.models import Decision, Enrollment, Fact, Goal, Patient, PatientIdentity, StepRun
from pathways.store.trail import Trail
from pathways.store.vocabulary import DECISION_ACTION, Action, Key

T = TypeVar("T")
MIGRATIONS = Path(__file__).parent / "migrations"


class StoreError(RuntimeError):
    pass


class StoreUnavailable(StoreError):
    pass


class StaleState(StoreError):
    """The enrollment was advanced by someone else since it was read."""


class UnknownEnrollment(StoreError):
    pass


class UnreadableState(StoreError):
    """A stored enrollment state this code cannot read (e.g. written by a newer pathways)."""


class VersionTaken(StoreError):
    """Publishing a version number that is published already with other content."""


def normalise_url(url: str) -> str:
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        folder = Path(url.removeprefix("sqlite:///").split("?", 1)[0]).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"the store's folder {folder} (PATHWAYS_DATABASE_URL) cannot be created: {exc.strerror}; "
                             "set PATHWAYS_DATABASE_URL to a place you can write") from None
    engine = _create_engine(url, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        @event.listens_for(engine, "connect")
        def _pragmas(connection, _):  # wait for a lock instead of failing at once; keep foreign keys
            cursor = connection.cursor()
            cursor.execute("PRAGMA busy_timeout = 5000")
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.close()
    return engine


def migrate(engine: Engine) -> None:
    """Bring the database to the current schema, in one transaction. A database that cannot be
    reached (or stays locked) is retried with backoff, then a StoreUnavailable naming it."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))

    def upgrade() -> None:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    retrying(upgrade, what=f"the database {shown(engine.url)} (PATHWAYS_DATABASE_URL)")


def _create_engine(url: str, **options) -> Engine:
    """SQLAlchemy's engine; a URL it cannot use is a StoreError that says what to write."""
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        return create_engine(url, **options)
    except (ArgumentError, NoSuchModuleError, ImportError, ValueError) as exc:
        raise StoreError(
            f"PATHWAYS_DATABASE_URL: '{shown(url)}' is not a database URL this can use ({str(exc).splitlines()[0]}); "
            "write sqlite:///path/to/pathways.db or postgresql://user@host/database"
        ) from None


def shown(url: str | URL) -> str:
    """A database URL (text or SQLAlchemy's) as it may be shown: without its password."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        text = make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return str(url).split("@", 1)[-1]
    return text.replace("postgresql+psycopg://", "postgresql://", 1)  # as it is set (normalise_url adds the driver)


def is_database_url(url: str) -> bool:
    """Whether SQLAlchemy can parse ``url`` (the settings check it before anything runs)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        make_url(url)
    except ArgumentError:
        return False
    return True


def without_password(url: str) -> str:
    """``url`` as SQLAlchemy renders it with its password hidden: what ``config.changed`` records
    (the text is compared with the last one recorded: keep it as it is)."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def retrying(action: Callable[[], T], attempts: int = 5, first_wait: float = 0.2, what: str = "the database",
             sleep: Callable[[float], Any] | None = None) -> T:
    """Retry on a locked or unreachable database with exponential backoff, then a clear error.
    ``sleep`` waits between attempts (default ``time.sleep``; tests pass one that only records)."""
    sleep = sleep or time.sleep
    wait = first_wait
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except OperationalError as exc:
            if attempt == attempts:
                raise StoreUnavailable(f"{what} is unavailable after {attempts} attempts: {_reason(exc)}") from None
            sleep(wait)
            wait *= 2
    raise AssertionError("unreachable")


def _reason(exc) -> str:
    """The database's own first line of an error, without SQLAlchemy's wrapping."""
    return str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc).splitlines()[0]


# the audit action of each kind of decision event


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
                    self._write_events(session, prepared)
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
            return _facts_from_rows(patient, rows)
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
                return _loaded(enrollment, row.state), row.state_version
        return retrying(read, what=self.where, sleep=self.sleep)

    def load_many(self, enrollments: list[str]) -> dict[str, tuple[EnrollmentState, int]]:
        def read() -> dict[str, tuple[EnrollmentState, int]]:
            found: dict[str, tuple[EnrollmentState, int]] = {}
            with Session(self.engine) as session:
                for chunk in _chunks(enrollments):
                    rows = session.execute(select(Enrollment.id, Enrollment.state, Enrollment.state_version).where(Enrollment.id.in_(chunk)))
                    for eid, state, version in rows:
                        found[eid] = (_loaded(eid, state), version)
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
                for chunk in _chunks(enrollments):
                    rows = session.execute(select(Enrollment.id, Enrollment.state).where(
                        Enrollment.id.in_(chunk), Enrollment.state.startswith('{"format":', autoescape=True),
                        ~Enrollment.state.startswith(CURRENT_PREFIX, autoescape=True)).order_by(Enrollment.id))
                    for eid, state in rows:
                        _loaded(eid, state)
        retrying(read, what=self.where, sleep=self.sleep)

    def patient_facts_many(self, patients: list[str]) -> dict[str, PatientFacts]:
        def read() -> dict[str, PatientFacts]:
            rows_by_patient: dict[str, list] = {p: [] for p in patients}
            with Session(self.engine) as session:
                for chunk in _chunks(patients):  # plain tuples, not ORM objects: this is the hot path of a cohort
                    statement = select(Fact.patient_id, Fact.kind, Fact.payload).where(Fact.patient_id.in_(chunk)).order_by(Fact.id)
                    for patient, kind, payload in session.execute(statement):
                        rows_by_patient[patient].append((kind, payload))
            return {p: _facts_from_pairs(p, pairs) for p, pairs in rows_by_patient.items()}
        return retrying(read, what=self.where, sleep=self.sleep)

    def apply_many(self, writes: list[tuple[EnrollmentState, int, list[Event]]]) -> None:
        """Write many advances in one transaction; StaleState (and nothing written) if any
        enrollment changed since it was read. Every row is prepared before the transaction
        begins: the store's write lock is held only to write them."""
        now = self.now()
        params = [{"b_id": s.enrollment, "b_version": v, "b_state": state_json(s), "b_next": v + 1,
                   "b_as_of": s.as_of, "b_next_due": _next_due(s), "b_updated": now} for s, v, _ in writes]
        prepared = self._prepare_events([(s, events) for s, _, events in writes])
        goals = _goal_rows([s for s, _, _ in writes])

        def write() -> None:
            with self.transaction() as session:
                connection = session.connection()
                changed = bulk.executemany(connection, _ADVANCE, params)
                if changed not in (len(params), -1):
                    raise StaleState(f"{len(params) - changed} of {len(params)} enrollments changed since they were read")
                if changed == -1:  # the driver does not say: check the versions
                    for chunk in _chunks(params):
                        ids = [p["b_id"] for p in chunk]
                        versions = dict(session.execute(select(Enrollment.id, Enrollment.state_version).where(Enrollment.id.in_(ids))).all())
                        if any(versions[p["b_id"]] != p["b_next"] for p in chunk):
                            raise StaleState("enrollments changed since they were read")
                self._write_events(session, prepared)
                bulk.executemany(connection, _statements(connection.dialect.name)["goal"], goals)
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
        goals = _goal_rows([state])

        def write() -> int:
            with self.transaction() as session:
                done = session.execute(
                    update(Enrollment)
                    .where(Enrollment.id == state.enrollment, Enrollment.state_version == read_version)
                    .values(state=state_json(state), state_version=read_version + 1, as_of=state.as_of,
                            next_due=_next_due(state), updated_at=self.now())
                )
                if done.rowcount != 1:
                    raise StaleState(f"enrollment '{state.enrollment}' changed since it was read (version {read_version})")
                if observations:
                    self._append(session, state.patient, PatientFacts(patient=state.patient, observations=tuple(observations)), source)
                self._write_events(session, prepared)
                if fail_after is not None:
                    fail_after(session)
                connection = session.connection()
                bulk.executemany(connection, _statements(connection.dialect.name)["goal"], goals)
                return read_version + 1
        return retrying(write, what=self.where, sleep=self.sleep)

    def _prepare_events(self, batches: list[tuple[EnrollmentState, list[Event]]], extra: list[Record] | None = None) -> _Prepared:
        """The rows of the events' step runs and decisions, and the audit entry of each decision
        (``extra`` records first), built before the transaction; which decisions are new is
        known only inside it."""
        runs: dict[str, dict] = {}
        decisions: dict[str, dict] = {}
        records: list[Record] = []
        for state, events in batches:
            for e in events:
                if e.step is not None and e.kind in ("due", "gated", "done", "done_before", "skipped"):
                    runs[e.run_key] = {"run_key": e.run_key, "enrollment_id": state.enrollment, "step": e.step,
                                       "due_on": e.on, "status": e.kind, "updated_on": e.decided}
                if e.key in decisions:
                    continue
                decisions[e.key] = {
                    "key": e.key, "run_key": e.run_key, "enrollment_id": state.enrollment, "kind": e.kind, "step": e.step,
                    "due_on": e.on, "decided_on": e.decided, "pathway_version": state.version, "version_key": state.version_key,
                    "reasons": audit.dumps(list(e.reasons)),
                    "detail": audit.dumps(e.detail),
                }
                payload = {Key.KIND: e.kind, Key.STEP: e.step, Key.DUE_ON: e.on.isoformat(), Key.DECIDED_ON: e.decided.isoformat(),
                           Key.REASONS: list(e.reasons), **e.detail}
                records.append(Record(DECISION_ACTION.get(e.kind, f"decision.{e.kind}"), state.patient, state.enrollment, state.pathway,
                                      state.version, state.version_key, e.key, payload))
        now = self.now()
        entries = audit.entries_for(records, self.actor, now, self.context)
        return _Prepared(list(runs.values()), decisions, dict(zip(decisions, entries)), audit.entries_for(extra or [], self.actor, now, self.context))

    def _write_events(self, session: Session, prepared: _Prepared) -> None:
        """Step runs upserted by run_key and decisions inserted by key, in bulk; repeats add nothing.
        Each new decision is audited (after the ``extra`` records) in the same transaction."""
        connection = session.connection()  # Core statements on the tables: no ORM bulk machinery on the hot path
        statements = _statements(connection.dialect.name)
        bulk.executemany(connection, statements["step_run"], prepared.runs)
        existing: set[str] = set()
        for chunk in _chunks(list(prepared.decisions), 500):
            existing.update(connection.execute(select(Decision.key).where(Decision.key.in_(chunk))).scalars())
        new = [key for key in prepared.decisions if key not in existing]
        bulk.executemany(connection, statements["decision"], [prepared.decisions[key] for key in new])
        audit.chain(connection, prepared.extra + [prepared.entries[key] for key in new])

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


def _facts_from_rows(patient: str, rows) -> PatientFacts:
    """Rebuild a patient's facts from their rows (with ``kind`` and ``payload``), in order."""
    return _facts_from_pairs(patient, [(row.kind, row.payload) for row in rows])


_facts_from_pairs = factrows.facts_from_pairs


@dataclass
class _Prepared:
    """An advance's rows, built before its transaction (Store._prepare_events)."""

    runs: list[dict[str, Any]]  # step runs
    decisions: dict[str, dict[str, Any]]  # decision key -> its row
    entries: dict[str, dict[str, Any]]  # decision key -> its audit entry, not yet chained
    extra: list[dict[str, Any]]  # audit entries written before the decisions' (a recorded input)


_ADVANCE = (  # an advance's new state, only if the state is still the one that was read
    update(Enrollment.__table__)
    .where(Enrollment.__table__.c.id == bindparam("b_id"), Enrollment.__table__.c.state_version == bindparam("b_version"))
    .values(state=bindparam("b_state"), state_version=bindparam("b_next"), as_of=bindparam("b_as_of"),
            next_due=bindparam("b_next_due"), updated_at=bindparam("b_updated"))
)
GOAL_FIELDS = ("fact", "target", "agreed_on", "deadline", "baseline", "latest", "status")


@lru_cache(maxsize=None)
def _statements(dialect: str) -> dict[str, Any]:
    """The upserts of a write, built once per dialect (store/bulk.py compiles each once)."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    runs = insert(StepRun.__table__)
    runs = runs.on_conflict_do_update(index_elements=["run_key"], set_={"status": runs.excluded.status, "updated_on": runs.excluded.updated_on})
    goals = insert(Goal.__table__)
    goals = goals.on_conflict_do_update(index_elements=["enrollment_id", "goal"], set_={name: getattr(goals.excluded, name) for name in GOAL_FIELDS})
    return {"step_run": runs, "decision": insert(Decision.__table__).on_conflict_do_nothing(index_elements=["key"]), "goal": goals}


def _goal_rows(states: list[EnrollmentState]) -> list[dict[str, Any]]:
    """Goal progress rows (one per enrollment and goal), upserted."""
    return [{"enrollment_id": state.enrollment, "goal": goal_id, **goal.model_dump(include=set(GOAL_FIELDS))}
            for state in states for goal_id, goal in state.goals.items()]


def state_json(state: EnrollmentState) -> str:
    """An enrollment's state as stored (runtime/stateformat.py: the format, every field)."""
    return dump_state(state)


def _loaded(enrollment: str, text: str) -> EnrollmentState:
    try:
        return load_state(text)
    except StateFormatError as e:
        raise UnreadableState(f"enrollment '{enrollment}': {e}") from None


def _chunks(items: list, size: int = 500) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def _next_due(state: EnrollmentState) -> dt.date | None:
    dates = [p.due_on for p in state.steps.values() if p.due_on is not None and p.status in ("waiting", "due", "gated")]
    return min(dates) if dates else None


__all__ = ["IntegrityError", "Store", "StoreError", "StoreUnavailable", "StaleState", "UnknownEnrollment", "make_engine", "migrate", "retrying"]


def open_readonly(url: str) -> Engine:
    """An engine that can only read an existing store (audit commands): nothing is created,
    migrated or written. A missing, empty, corrupted or foreign database is a clear StoreError."""
    from sqlalchemy import inspect
    from sqlalchemy.exc import DatabaseError

    url = normalise_url(url)
    where = shown(url)
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///").split("?", 1)[0])
        where = str(path)
        if not path.is_file():
            raise StoreError(f"no pathways store at {path} (PATHWAYS_DATABASE_URL); nothing was created")
        if path.stat().st_size == 0:
            raise StoreError(f"{path} is empty: not a pathways store")
        engine = create_engine(f"sqlite:///file:{path.resolve()}?mode=ro&uri=true")
    else:
        engine = _create_engine(url, pool_pre_ping=True)

    def tables_of() -> set[str]:
        with engine.connect() as connection:
            return set(inspect(connection).get_table_names())

    try:
        tables = retrying(tables_of, what=f"the store {where} (PATHWAYS_DATABASE_URL)")
    except DatabaseError as exc:
        raise StoreError(f"{where} is not a readable database ({_reason(exc)}): the file may be corrupted; nothing was written") from None
    if "audit_entry" not in tables:
        raise StoreError(f"{where} has no audit trail: not a pathways store, or one that predates the audit trail "
                         f"(a writing command such as `pathways advance --due` migrates it)")
    return engine


def open_trail(url: str) -> Trail:
    """The audit trail of the store at ``url``, read-only (``open_readonly``): what the audit
    commands read, without a connection of their own."""
    return Trail(open_readonly(url))
