"""What the commands and the Prefect flows do, without Prefect: the store's settings
(``PATHWAYS_DATABASE_URL``, ``PATHWAYS_BATCH_SIZE``, ``PATHWAYS_WORKERS``, recorded when they
change), patient identity (BSN as a keyed hash), permission checks, publishing pathway versions
and keeping one runtime per version (``Runtimes``), and enrol patients, advance enrollments
(one, or a batch: ``advance_many``), record human input and resolve escalations. Each advance
reads the state, runs the runtime core and writes the result in one transaction; a stale read is
retried from the start."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pathways.access import AccessDenied, Actor, actor_from_environment
from pathways.clock import Clock
from pathways.errors import ProblemsFound, SettingError
from pathways.definition.loader import LoadedPathway, load_pathway
from pathways.facts.load import load_patient_file
from pathways.rules.evaluate import PathwayEvaluator
from pathways.runtime.core import Event, Runtime, enroll
from pathways.store.audit import Record
from pathways.store.db import DEFAULT_URL, StaleState, Store, make_engine, migrate, retrying


def database_url() -> str:
    return os.environ.get("PATHWAYS_DATABASE_URL") or DEFAULT_URL


def check_database_url(url: str) -> None:
    """A URL that SQLAlchemy cannot parse is a SettingError before anything runs."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        make_url(url)
    except ArgumentError:
        raise SettingError(f"PATHWAYS_DATABASE_URL: '{url.split('@', 1)[-1]}' is not a database URL; "
                           "write sqlite:///path/to/pathways.db or postgresql://user@host/database") from None


_MIGRATED: set[str] = set()
_CONFIGURED: set[tuple[str, str]] = set()


def open_store(clock: Clock, url: str | None = None, actor: Actor | None = None, context: dict[str, Any] | None = None,
               migrated: bool = False) -> Store:
    """A store on the configured database, brought to the current schema (once per process;
    ``migrated``: the caller knows it is), acting for ``actor`` (default: from the environment).
    A configuration that differs from the last one recorded is audited (``config.changed``)."""
    url = url or database_url()
    check_database_url(url)
    worker_count()  # a bad setting stops here, before the database is touched (this one changes no outcome: not recorded)
    settings = configuration(url)
    if migrated:
        _MIGRATED.add(url)
    engine = migrate_once(url)
    store = Store(engine, clock.now, actor or actor_from_environment(os.environ), context)
    note_configuration(store, url, settings)
    return store


def migrate_once(url: str):
    """The engine of ``url``, its database brought to the current schema once per process
    (Alembic's command API is not thread-safe: one migration at a time)."""
    engine = make_engine(url)
    if url not in _MIGRATED:
        with _MIGRATING:
            if url not in _MIGRATED:
                migrate(engine)
                _MIGRATED.add(url)
    return engine


_MIGRATING = threading.Lock()


def batch_size() -> int:
    """PATHWAYS_BATCH_SIZE: enrollments per batch (one Prefect task each), default 500."""
    value = os.environ.get("PATHWAYS_BATCH_SIZE", "500")
    try:
        size = int(value)
    except ValueError:
        raise SettingError(f"PATHWAYS_BATCH_SIZE: '{value}' is not a whole number (enrollments per batch, default 500)") from None
    if size < 1:
        raise SettingError(f"PATHWAYS_BATCH_SIZE: {size} enrollments per batch would advance nobody; set a whole number of at least 1, or unset it for the default 500")
    return size


def worker_count() -> int:
    """PATHWAYS_WORKERS: processes that advance batches side by side (default: the cores, at most 4)."""
    value = os.environ.get("PATHWAYS_WORKERS")
    if not value:
        return max(1, min(4, os.cpu_count() or 1))
    try:
        return max(1, int(value))
    except ValueError:
        raise SettingError(f"PATHWAYS_WORKERS: '{value}' is not a whole number (1 advances every batch in the flow's own process)") from None


def schedule_reviews_setting() -> str:
    """PATHWAYS_SCHEDULE_REVIEWS: 1 (schedule next due dates as flow runs), 0 (do not), or unset
    ("": on a Prefect server that has the batch deployment; flows.review_deployment decides)."""
    value = os.environ.get("PATHWAYS_SCHEDULE_REVIEWS", "").strip()
    if value not in ("", "0", "1"):
        raise SettingError(f"PATHWAYS_SCHEDULE_REVIEWS: '{value}' is not 1 (schedule next reviews) or 0 (do not); "
                           "unset, they are scheduled on a Prefect server that has the pathways-advance/batch deployment")
    return value


def configuration(url: str) -> dict[str, Any]:
    """The settings that change what the engine does or keeps (secrets as fingerprints only)."""
    from sqlalchemy.engine import make_url

    secret = identity_secret(create=False)
    return {
        "database": make_url(url).render_as_string(hide_password=True),
        "bsn_storage": bsn_storage(),
        "identity_secret": hashlib.sha256(secret).hexdigest()[:12] if secret else None,
        "batch_size": str(batch_size()),  # as recorded before it was checked
        "schedule_reviews": schedule_reviews_setting() == "1",
        "prefect_api": "server" if os.environ.get("PREFECT_API_URL") else "embedded",
        "roles_from": ("token-file" if os.environ.get("PATHWAYS_TOKEN_FILE") else "PATHWAYS_ROLE" if os.environ.get("PATHWAYS_ROLE") else "default (admin)"),
    }


def note_configuration(store: Store, url: str, settings: dict[str, Any] | None = None) -> None:
    from pathways.store import audit

    settings = settings or configuration(url)
    key = (url, json.dumps(settings, sort_keys=True))
    if key in _CONFIGURED:
        return

    def read() -> dict[str, Any] | None:
        with store.engine.connect() as connection:
            return audit.last_payload(connection, "config.changed")

    last = retrying(read, what=store.where)
    if last is None or last.get("settings") != settings:
        changed = sorted(k for k in settings if last is None or last.get("settings", {}).get(k) != settings[k])
        store.record_audit([Record("config.changed", subject="configuration", payload={"settings": settings, "changed": changed})])
    _CONFIGURED.add(key)


# -- identifying data ------------------------------------------------------------------

def bsn_storage() -> str:
    """PATHWAYS_BSN_STORAGE: hmac (default: a keyed hash), plain, or none (not kept)."""
    mode = os.environ.get("PATHWAYS_BSN_STORAGE", "hmac")
    if mode not in ("hmac", "plain", "none"):
        raise SettingError(f"PATHWAYS_BSN_STORAGE: '{mode}' is not one of hmac, plain, none")
    return mode


def identity_secret(create: bool = True) -> bytes | None:
    """The HMAC secret: PATHWAYS_IDENTITY_SECRET, else the file PATHWAYS_IDENTITY_SECRET_FILE
    (default .pathways/identity.key, created with 32 random bytes, readable by its owner only)."""
    value = os.environ.get("PATHWAYS_IDENTITY_SECRET")
    if value:
        return value.encode()
    path = Path(os.environ.get("PATHWAYS_IDENTITY_SECRET_FILE", ".pathways/identity.key"))
    if path.exists():
        return path.read_bytes().strip()
    if not create:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(secrets.token_hex(32).encode())
    return path.read_bytes().strip()


def identity_row(identity: dict[str, Any]) -> dict[str, Any] | None:
    """What the store keeps of a patient's identifying data, as configured."""
    if not identity or not any(identity.values()):
        return None
    mode = bsn_storage()
    bsn = identity.get("bsn")
    row: dict[str, Any] = {"name": identity.get("name"), "birth_date": identity.get("birth_date"), "bsn_hmac": None, "bsn": None}
    if bsn and mode == "hmac":
        row["bsn_hmac"] = bsn_hmac(bsn)
    elif bsn and mode == "plain":
        row["bsn"] = bsn
    return row if any(v is not None for v in row.values()) else None  # nothing kept: no identity row


def bsn_hmac(bsn: str) -> str:
    return hmac.new(identity_secret(), bsn.strip().encode(), hashlib.sha256).hexdigest()


# -- access ----------------------------------------------------------------------------

def authorize(store: Store, permission: str, what: str, subject: str | None = None) -> None:
    """Raise AccessDenied (and audit the denial) unless the store's actor holds ``permission``."""
    if store.actor.may(permission):
        return
    store.record_audit([Record("access.denied", subject=subject or what,
                               payload={"permission": permission, "attempted": what, "via": store.actor.via})])
    raise AccessDenied(store.actor, permission, what)


def ensure_published(store: Store, runtime: Runtime) -> None:
    """A pathway version runs only once it is published in this store (its files are kept in
    the audit trail). Roles that may publish do it on first use; others are refused."""
    key = runtime.evaluator.plan.version_key
    known = _PUBLISHED.setdefault(str(store.engine.url), set())  # per database: a store is opened per batch
    if key in known or store.is_published(key):
        known.add(key)
        return
    spec = runtime.loaded.spec
    authorize(store, "pathway.publish", f"run {spec.id} {spec.version}, which is not published in this store yet "
              f"(a coordinator publishes it with `pathways publish {spec.id}`)", key)
    publish(store, runtime.loaded, key)
    known.add(key)


_PUBLISHED: dict[str, set[str]] = {}


def refuse_draft(store: Store, runtime: Runtime) -> None:
    """Raise DraftPathway when the files on disk are no version published in this store while
    others of the pathway are (an edit, or a new version not yet published). A store that holds
    no version of the pathway publishes the files on first use (``ensure_published``)."""
    key = runtime.evaluator.plan.version_key
    if key in _PUBLISHED.get(str(store.engine.url), set()) or store.is_published(key):
        return
    spec = runtime.loaded.spec
    published = store.published_versions(spec.id)
    if published:
        from pathways.orchestration.versions import draft_refusal

        raise draft_refusal(runtime.loaded.file, spec.id, spec.version, key, published)


def publish(store: Store, loaded: LoadedPathway, version_key: str) -> bool:
    """Record the pathway version with the text of its files (the trail stays self-sufficient)."""
    authorize(store, "pathway.publish", f"publish {loaded.spec.id} {loaded.spec.version}", version_key)
    files = {}
    for document in (loaded.document, *loaded.libraries):
        path = Path(document.source.file)
        text = path.read_text(encoding="utf-8")
        files[f"{document.model.id}@{document.model.version}"] = {
            "file": path.name, "sha256": hashlib.sha256(text.encode()).hexdigest(), "text": text,
            "kind": "pathway" if document is loaded.document else "library",
        }
    from pathways.definition.documents import template_dirs

    templates = {}
    for folder in reversed(template_dirs(Path(loaded.file), loaded.spec.id)):  # the first found wins, as in rendering
        for path in sorted(folder.glob("*.md.j2")):
            text = path.read_text(encoding="utf-8")
            templates[path.name] = {"file": path.name, "sha256": hashlib.sha256(text.encode()).hexdigest(), "text": text,
                                    "kind": "template", "from": str(folder)}
    files.update({f"template:{name}": info for name, info in sorted(templates.items())})
    return store.publish(loaded.spec.id, loaded.spec.version, version_key, {"files": files})


class Runtimes:
    """One runtime (and compiled ruleset) per pathway version, shared by all enrollments.

    Loading and checking a pathway (its libraries, every document template) costs about a
    quarter of a second, so runtimes are kept for the whole process: a Prefect worker advancing
    batch after batch loads each pathway once. A kept runtime is used only while the files it
    was loaded from are unchanged (same size and modification time, no template added or
    removed, same PATHWAYS_PATH and PATHWAYS_TEMPLATES); otherwise the pathway is loaded again.
    """

    _kept: dict[tuple[str, bool], tuple[tuple, Runtime]] = {}  # per process

    def __init__(self, templates: bool = True):
        self._by_name: dict[str, Runtime] = {}
        self.templates = templates  # False: document templates left unchecked (worker processes)

    _versions: dict[str, Runtime] = {}  # per process, per version key: a published version never changes

    def get_version(self, version_key: str, store: Store | None = None) -> Runtime:
        """The runtime of one pathway version, as published in the store (``store``, else the
        configured one): what an enrollment runs, whatever the files on disk say now. A version
        the trail does not hold runs from the files on disk only if they are that version."""
        kept = Runtimes._versions.get(version_key)
        if kept is not None:
            return kept
        from pathways.orchestration import versions

        engine = store.engine if store is not None else migrate_once(database_url())
        files = retrying(lambda: _published_files(engine, version_key), what="the store")
        pathway = version_key.split("@", 1)[0]
        if files is None:
            try:
                runtime = self.get(pathway)
            except ProblemsFound:
                raise versions.not_published(version_key, None) from None
            if runtime.evaluator.plan.version_key != version_key:
                raise versions.not_published(version_key, runtime.evaluator.plan.version_key)
        else:
            loaded = versions.rebuild(version_key, files)
            runtime = Runtime(loaded, PathwayEvaluator(loaded, cross_check=False))
            if runtime.evaluator.plan.version_key != version_key:
                raise versions.VersionNotPublished(f"the files published as {version_key} load as "
                                                   f"{runtime.evaluator.plan.version_key} with this code")
        Runtimes._versions[version_key] = runtime
        return runtime

    def get(self, pathway: str) -> Runtime:
        """The pathway as the files on disk say now (to enrol, publish, check); an enrollment
        runs its own version: ``get_version``."""
        if pathway not in self._by_name:
            kept = Runtimes._kept.get((pathway, self.templates))
            if kept is not None and kept[0] == _signature(kept[1].loaded):
                self._by_name[pathway] = kept[1]
            else:
                loaded = load_pathway(pathway, templates=self.templates)
                # decisions come from durable-rules; the reference explains those that become events
                # (`pathways evaluate` and the tests compare the two on every condition)
                runtime = Runtime(loaded, PathwayEvaluator(loaded, cross_check=False))
                Runtimes._kept[(pathway, self.templates)] = (_signature(loaded), runtime)
                self._by_name[pathway] = runtime
        return self._by_name[pathway]


def _published_files(engine, version_key: str) -> dict[str, Any] | None:
    from pathways.store import audit

    with engine.connect() as connection:
        payload = audit.published_payload(connection, version_key)
    return None if payload is None else payload.get("files", {})


def by_version(store: Store, enrollments: list[str]) -> dict[str, list[str]]:
    """Enrollments grouped by the pathway version each runs (version key), in order."""
    groups: dict[str, list[str]] = {}
    states = store.load_many(enrollments) if enrollments else {}
    for enrollment in enrollments:
        groups.setdefault(states[enrollment][0].version_key, []).append(enrollment)
    return groups


def _signature(loaded: LoadedPathway) -> tuple:
    """What a loaded pathway depends on: its files' sizes and modification times, the document
    templates it can see, and the settings that choose them."""
    from pathways.definition.documents import template_dirs

    files = [Path(d.source.file) for d in (loaded.document, *loaded.libraries)]
    for folder in template_dirs(Path(loaded.file), loaded.spec.id):
        files += sorted(folder.glob("*.md.j2"))
    stats = []
    for path in files:
        try:
            info = path.stat()
            stats.append((str(path), info.st_size, info.st_mtime_ns))
        except OSError:
            stats.append((str(path), None, None))
    return (os.environ.get("PATHWAYS_PATH"), os.environ.get("PATHWAYS_TEMPLATES"), tuple(stats))


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
    from sqlmodel import Session

    from pathways.store.models import Enrollment

    runtime = runtimes.get(pathway)
    facts = patient.facts if patient_id is None else patient.facts.model_copy(update={"patient": patient_id})
    eid = enrollment_id(runtime.loaded, facts.patient)
    with Session(store.engine) as session:
        exists = session.get(Enrollment, eid) is not None
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
    recorded = Record("input.recorded", state.patient, enrollment, state.pathway, state.version, state.version_key,
                      f"{enrollment}:{step}", {"step": step, "values": data, "on": at.isoformat(), **(note or {})})
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
    note = {"signed_off_by": signed_off_by, "outcome": outcome, "via": via}
    if outcome == "akkoord":
        return record_step(store, runtimes, enrollment, step, {}, clock, note=note)
    store.record_audit([Record("signoff.declined", state.patient, enrollment, state.pathway, state.version, state.version_key,
                               f"{enrollment}:{step}", {"step": step, **note})])
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
