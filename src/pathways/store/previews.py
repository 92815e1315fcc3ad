"""Migration previews in the store, and the writes that apply and revert them.

A preview is kept with one row per enrollment: what was read (state version, as of, version key,
a digest of the patient's facts), what would change, and, once applied, the state from before
(for revert). Applying and reverting write one enrollment per transaction, with the state version
read as the optimistic lock (a concurrent advance makes one of the two lose, cleanly), and audit
each enrollment moved in that same transaction.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select, update
from sqlmodel import Session

from pathways.runtime.core import EnrollmentState
from pathways.store.audit import Record
from pathways.store.connect import retrying
from pathways.store.db import StaleState, Store
from pathways.store.rows import chunks, next_due, state_json
from pathways.store.models import Enrollment, Fact, MigrationItem, MigrationPreview


@dataclass(frozen=True)
class Read:
    """What a preview read of one enrollment: it is applied only while all of it is unchanged."""

    enrollment: str
    patient: str
    from_key: str
    state_version: int
    as_of: dt.date
    facts_digest: str

    def line(self) -> str:
        return f"{self.enrollment}|{self.from_key}|{self.state_version}|{self.as_of.isoformat()}|{self.facts_digest}\n"


def enrollments_of(store: Store, pathway: str) -> list[tuple[str, str]]:
    """The pathway's enrollments (id, version key), in id order."""
    def read() -> list[tuple[str, str]]:
        with Session(store.engine) as session:
            rows = session.execute(select(Enrollment.id, Enrollment.version_key).where(Enrollment.pathway == pathway).order_by(Enrollment.id))
            return [(eid, key) for eid, key in rows]
    return retrying(read, what=store.where)


def fact_digests(store: Store, patients: list[str]) -> dict[str, str]:
    """Per patient, a sha256 over the fingerprints of their facts, in the order stored: any fact
    added since changes it."""
    def read() -> dict[str, str]:
        digests = {p: hashlib.sha256() for p in patients}
        with Session(store.engine) as session:
            for chunk in chunks(patients):
                for patient, print_ in session.execute(select(Fact.patient_id, Fact.fingerprint).where(Fact.patient_id.in_(chunk)).order_by(Fact.id)):
                    digests[patient].update(print_.encode() + b"\n")
        return {p: d.hexdigest() for p, d in digests.items()}
    return retrying(read, what=store.where)


def current_reads(store: Store, enrollments: list[str]) -> dict[str, Read]:
    """What a preview would read of these enrollments now (those that exist)."""
    def read() -> dict[str, tuple]:
        found = {}
        with Session(store.engine) as session:
            for chunk in chunks(enrollments):
                rows = session.execute(select(Enrollment.id, Enrollment.patient_id, Enrollment.version_key, Enrollment.state_version,
                                              Enrollment.as_of).where(Enrollment.id.in_(chunk)))
                found.update({row[0]: tuple(row) for row in rows})
        return found
    rows = retrying(read, what=store.where)
    digests = fact_digests(store, sorted({row[1] for row in rows.values()}))
    return {eid: Read(eid, patient, key, version, as_of, digests[patient]) for eid, (_, patient, key, version, as_of) in rows.items()}


def save(store: Store, digest: str, pathway: str, to_key: str, at: dt.date, summary: dict[str, Any], items: list[dict[str, Any]]) -> None:
    """Keep a preview (the same inputs give the same hash: a preview made again replaces its copy)."""
    def write() -> None:
        with Session(store.engine) as session, session.begin():
            session.execute(delete(MigrationItem).where(MigrationItem.preview_hash == digest))
            session.execute(delete(MigrationPreview).where(MigrationPreview.hash == digest))
            session.add(MigrationPreview(hash=digest, pathway=pathway, to_key=to_key, at=at, status="previewed",
                                         created_at=store.now().isoformat(), summary=json.dumps(summary, sort_keys=True)))
            session.flush()
            for chunk in chunks(items):
                session.execute(MigrationItem.__table__.insert(), chunk)
    retrying(write, what=store.where)


def find(store: Store, digest: str) -> tuple[MigrationPreview, list[MigrationItem]] | None:
    """A kept preview by its hash (or an unambiguous prefix of it, at least 8 characters)."""
    def read():
        with Session(store.engine) as session:
            found = session.execute(select(MigrationPreview).where(MigrationPreview.hash.startswith(digest))).scalars().all() if len(digest) >= 8 else []
            if len(found) != 1:
                return None
            items = session.execute(select(MigrationItem).where(MigrationItem.preview_hash == found[0].hash)
                                    .order_by(MigrationItem.enrollment_id)).scalars().all()
            session.expunge_all()
            return found[0], list(items)
    return retrying(read, what=store.where)


def set_status(store: Store, digest: str, status: str) -> None:
    def write() -> None:
        with Session(store.engine) as session, session.begin():
            session.execute(update(MigrationPreview).where(MigrationPreview.hash == digest).values(status=status))
    retrying(write, what=store.where)


def move(store: Store, digest: str, old: EnrollmentState, read_version: int, new: EnrollmentState, action: str,
         payload: dict[str, Any], keep_old: bool) -> int:
    """Replace an enrollment's state (``old``, read at ``read_version``) by ``new`` (on another
    pathway version) in one transaction, audited as ``action``; StaleState if it changed since it
    was read. ``keep_old`` (apply): the state from before is kept with the preview, for revert, and the
enrollment is due at once, so the next `advance --due` decides under the new version (what the
preview showed) instead of waiting for its next due date."""
    def write() -> int:
        with store.transaction() as session:
            done = session.execute(
                update(Enrollment).where(Enrollment.id == old.enrollment, Enrollment.state_version == read_version)
                .values(state=state_json(new), state_version=read_version + 1, version=new.version, version_key=new.version_key,
                        as_of=new.as_of, next_due=new.as_of if keep_old else next_due(new), updated_at=store.now()))
            if done.rowcount != 1:
                raise StaleState(f"enrollment '{old.enrollment}' changed since it was read (version {read_version})")
            if keep_old:
                session.execute(update(MigrationItem).where(MigrationItem.preview_hash == digest, MigrationItem.enrollment_id == old.enrollment)
                                .values(old_state=state_json(old), applied_version=read_version + 1))
            store.audit(session, [Record(action, old.patient, old.enrollment, new.pathway, new.version, new.version_key,
                                         old.enrollment, payload)])
            return read_version + 1
    return retrying(write, what=store.where)
