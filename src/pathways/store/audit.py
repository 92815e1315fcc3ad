"""The audit trail: append-only, hash-chained, written in the same transaction as the change it
records.

Each entry has a sequence number, the time (from the clock), the actor (user and role), the
action, its subject (pseudonymous ids only), the pathway and rule versions, a JSON payload
(explanation, facts used, Prefect run ids) and two SHA-256 hashes: the previous entry's and its
own, computed over all of the above. ``audit_head`` holds the last sequence number and hash; a
writer locks it first, so concurrent writers queue instead of forking the chain, and a deleted
tail is noticed by comparing the head with the last entry. The database refuses UPDATE and
DELETE on ``audit_entry`` (SQLite triggers, a PostgreSQL trigger; migration 0002).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Optional

import orjson

from sqlalchemy import Column, Integer, Text, insert, or_, select, text, update
from sqlalchemy.engine import Connection
from sqlmodel import Field, SQLModel

from pathways.store import bulk
from pathways.store.vocabulary import DECISION_PREFIXES, Action, Key

GENESIS = "0" * 64
FIELDS = ("seq", "at", "actor", "role", "action", "patient_id", "enrollment_id", "pathway", "pathway_version",
          "version_key", "subject", "payload", "prev_hash", "hash")


class AuditEntry(SQLModel, table=True):
    __tablename__ = "audit_entry"
    seq: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    at: str = Field(max_length=40, index=True)  # ISO 8601 with offset, as hashed
    actor: str = Field(max_length=64)
    role: str = Field(max_length=16)
    action: str = Field(max_length=40, index=True)
    patient_id: Optional[str] = Field(default=None, max_length=128, index=True)
    enrollment_id: Optional[str] = Field(default=None, max_length=128, index=True)
    pathway: Optional[str] = Field(default=None, max_length=64, index=True)
    pathway_version: Optional[str] = Field(default=None, max_length=32)
    version_key: Optional[str] = Field(default=None, max_length=128)
    subject: Optional[str] = Field(default=None, max_length=300, index=True)
    payload: str = Field(sa_column=Column(Text, nullable=False))
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class AuditHead(SQLModel, table=True):
    __tablename__ = "audit_head"
    id: int = Field(default=1, primary_key=True)
    seq: int = 0
    hash: str = Field(default=GENESIS, max_length=64)


@dataclass
class Record:
    """One thing to audit, before it gets its place in the chain."""

    action: str
    patient: str | None = None
    enrollment: str | None = None
    pathway: str | None = None
    pathway_version: str | None = None
    version_key: str | None = None
    subject: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)


def document_rendered(state: Any, document: str, fmt: str, lang: str, data: bytes, identifying: bool) -> Record:
    """What the trail keeps of a document rendered for an enrollment (``state``): which document,
    in which format and language, a hash of what was disclosed (never its text) and whether it
    named the patient."""
    return Record(Action.DOCUMENT_RENDERED, state.patient, state.enrollment, state.pathway, state.version, state.version_key,
                  f"{state.enrollment}:{document}", {Key.DOCUMENT: document, Key.FORMAT: fmt, Key.LANG: lang,
                                                     Key.SHA256: hashlib.sha256(data).hexdigest(), Key.IDENTIFYING: identifying})


_ORJSON = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME  # dates through str(), as json does


def canonical(payload: dict[str, Any]) -> str:
    """Compact JSON with sorted keys (the stored text is what is hashed; it is never rebuilt)."""
    try:
        return orjson.dumps(payload, default=str, option=_ORJSON).decode()
    except (TypeError, orjson.JSONEncodeError):  # what orjson refuses (a lone surrogate, a huge int): the standard library's text
        return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def dumps(value: Any) -> str:
    """Compact JSON, keys in their order (decision reasons and details)."""
    try:
        return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME).decode()
    except (TypeError, orjson.JSONEncodeError):
        return json.dumps(value, ensure_ascii=False, default=str)


def entry_hash(row: dict[str, Any]) -> str:
    """SHA-256 over every field but the hash itself, as a canonical JSON array: the standard
    library's compact encoding with non-ASCII kept, in UTF-8. For the strings, whole numbers and
    nulls of a row orjson writes the same bytes (a test compares them), five times faster."""
    data = [row[name] for name in FIELDS[:-1]]
    try:
        text = orjson.dumps(data)
    except (TypeError, orjson.JSONEncodeError):  # a lone surrogate, a huge number: as it always was
        text = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(text).hexdigest()


def lock(connection: Connection) -> None:
    """Take the audit head's row lock (PostgreSQL) or the write lock (SQLite) for this transaction."""
    connection.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=AuditHead.seq))


def append(connection: Connection, records: Iterable[Record], actor: Any, now: dt.datetime, context: dict[str, Any] | None = None) -> int:
    """Append records to the chain inside the caller's transaction; returns how many."""
    return chain(connection, entries_for(records, actor, now, context))


def entries_for(records: Iterable[Record], actor: Any, now: dt.datetime, context: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The entries of ``records`` as far as they can be written before the transaction: all but
    their place in the chain (sequence number and hashes), which ``chain`` gives them."""
    at = now.isoformat()
    entries = []
    for record in records:
        payload = dict(record.payload)
        if context:
            payload.setdefault(Key.CONTEXT, context)
        entries.append({
            "at": at, "actor": actor.user, "role": actor.role, "action": record.action,
            "patient_id": record.patient, "enrollment_id": record.enrollment, "pathway": record.pathway,
            "pathway_version": record.pathway_version, "version_key": record.version_key, "subject": record.subject,
            "payload": canonical(payload),
        })
    return entries


_INSERT = insert(AuditEntry.__table__)  # built once (store/bulk.py compiles it once)


def chain(connection: Connection, entries: list[dict[str, Any]]) -> int:
    """Give ``entries`` (from ``entries_for``) the next places in the chain and insert them, inside
    the caller's transaction; returns how many. The head row is locked first (an UPDATE), so a
    second writer waits for this transaction."""
    if not entries:
        return 0
    lock(connection)
    head = connection.execute(select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)).one_or_none()
    if head is None:
        raise RuntimeError("the audit head is missing: the store was not migrated (pathways migrations 0002)")
    seq, previous = head
    rows = []
    for entry in entries:
        seq += 1
        row = {"seq": seq, **entry, "prev_hash": previous}
        row["hash"] = previous = entry_hash(row)
        rows.append(row)
    bulk.executemany(connection, _INSERT, rows, chunk=500)
    connection.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=seq, hash=previous))
    return len(rows)


# -- verification ------------------------------------------------------------------------

@dataclass
class Verification:
    entries: int
    head_seq: int
    head_hash: str
    broken_at: int | None = None  # the first broken sequence number
    reason: str = ""

    @property
    def intact(self) -> bool:
        return self.broken_at is None


def verify(connection: Connection, anchor: tuple[int, str] | None = None) -> Verification:
    """Recompute the chain from the first entry; name the first broken one.

    ``anchor`` (seq, hash), kept outside the database from an earlier verification, also proves
    that nobody rewrote the whole chain up to that point."""
    expected_seq, previous, count = 1, GENESIS, 0
    found_anchor = anchor is None
    result = connection.execute(select(*[getattr(AuditEntry, f) for f in FIELDS]).order_by(AuditEntry.seq)).mappings()
    for row in result:
        count += 1
        row = dict(row)
        seq = row["seq"]
        if seq != expected_seq:
            if seq > expected_seq:
                why = f"entry {expected_seq} is missing (the next entry is {seq}): a row was deleted"
            else:
                why = f"entry {seq} appears twice or out of order"
            return Verification(count, *_head(connection), broken_at=expected_seq, reason=why)
        if row["prev_hash"] != previous:
            return Verification(count, *_head(connection), broken_at=seq,
                                reason=f"entry {seq} does not follow entry {seq - 1}: its previous-hash differs (a row was inserted, removed or moved)")
        if entry_hash(row) != row["hash"]:
            return Verification(count, *_head(connection), broken_at=seq,
                                reason=f"entry {seq} ({row['action']}) was changed after it was written: its content does not match its hash")
        if anchor is not None and seq == anchor[0]:
            if row["hash"] != anchor[1]:
                return Verification(count, *_head(connection), broken_at=seq,
                                    reason=f"entry {seq} does not match the anchor kept outside the database: the chain was rewritten")
            found_anchor = True
        previous, expected_seq = row["hash"], seq + 1
    head_seq, head_hash = _head(connection)
    last = expected_seq - 1
    if head_seq != last or head_hash != previous:
        return Verification(count, head_seq, head_hash, broken_at=min(head_seq, last) + 1,
                            reason=f"the chain ends at entry {last} but its head says {head_seq}: entries were removed from or added to the end")
    if not found_anchor:
        return Verification(count, head_seq, head_hash, broken_at=anchor[0],
                            reason=f"the anchor entry {anchor[0]} is not in the chain (it ends at {last})")
    return Verification(count, head_seq, head_hash)


def _head(connection: Connection) -> tuple[int, str]:
    head = connection.execute(select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)).one_or_none()
    return (head[0], head[1]) if head else (0, GENESIS)


# -- reading -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Query:
    patient: str | None = None
    enrollment: str | None = None
    pathway: str | None = None
    since: dt.date | None = None
    until: dt.date | None = None  # inclusive
    actor: str | None = None
    action: str | None = None  # see action_matches: "escalation" or "step." (everything under it), "step.done"
    subject: str | None = None


def entries(connection: Connection, query: Query = Query()) -> Iterator[dict[str, Any]]:
    statement = select(*[getattr(AuditEntry, f) for f in FIELDS]).order_by(AuditEntry.seq)
    for name in ("patient", "enrollment", "pathway", "actor", "subject"):
        value = getattr(query, name)
        if value is not None:
            column = {"patient": AuditEntry.patient_id, "enrollment": AuditEntry.enrollment_id}.get(name) or getattr(AuditEntry, name)
            statement = statement.where(column == value)
    if query.action:
        statement = statement.where(action_matches(query.action))
    if query.since:
        statement = statement.where(AuditEntry.at >= query.since.isoformat())
    if query.until:
        statement = statement.where(AuditEntry.at < (query.until + dt.timedelta(days=1)).isoformat())
    for row in connection.execute(statement).mappings():
        entry = dict(row)
        entry["payload"] = json.loads(entry["payload"])
        yield entry


def action_matches(typed: str):
    """The actions an auditor means by ``typed``: a prefix ending in '.' (``step.``) matches every
    action under it; a name matches itself and the actions under it (``escalation`` matches
    ``escalation.opened`` and ``escalation.resolved``, ``step.done`` matches only itself)."""
    if typed.endswith("."):
        return AuditEntry.action.startswith(typed, autoescape=True)
    return or_(AuditEntry.action == typed, AuditEntry.action.startswith(typed + ".", autoescape=True))


def pathway_names(connection: Connection) -> list[str]:
    """The pathways the trail names, sorted."""
    found = connection.execute(select(AuditEntry.pathway).where(AuditEntry.pathway.is_not(None)).distinct()).scalars()
    return sorted(set(found))


def has_enrollment(connection: Connection, enrollment: str) -> bool:
    return connection.execute(select(AuditEntry.seq).where(AuditEntry.enrollment_id == enrollment).limit(1)).scalar() is not None


def enrollments_of(connection: Connection, patient: str) -> list[tuple[str, str | None]]:
    """The (enrollment, pathway) pairs of a pseudonymous patient in the trail, first enrolled first."""
    rows = connection.execute(select(AuditEntry.enrollment_id, AuditEntry.pathway)
                              .where(AuditEntry.patient_id == patient, AuditEntry.action == Action.ENROLLMENT_CREATED).order_by(AuditEntry.seq))
    return [(enrollment, pathway) for enrollment, pathway in rows]


DECISION_ACTIONS = DECISION_PREFIXES


def find_decision(connection: Connection, decision: str) -> tuple[str, int | None, list[dict[str, Any]]]:
    """A decision by key (ENROLLMENT:STEP:DATE:KIND) or by id: its key, id and decision entries
    (empty when there is no such decision)."""
    from pathways.store.models import Decision

    key = decision
    if decision.isdigit():
        key = connection.execute(select(Decision.key).where(Decision.id == int(decision))).scalar() or decision
    found = [e for e in entries(connection, Query(subject=key)) if e["action"].startswith(DECISION_ACTIONS)]
    decision_id = connection.execute(select(Decision.id).where(Decision.key == key)).scalar()
    return key, decision_id, found


def last_payload(connection: Connection, action: str) -> dict[str, Any] | None:
    row = connection.execute(select(AuditEntry.payload).where(AuditEntry.action == action).order_by(AuditEntry.seq.desc()).limit(1)).scalar()
    return json.loads(row) if row else None


def published(connection: Connection, version_key: str) -> bool:
    return connection.execute(
        select(AuditEntry.seq).where(AuditEntry.action == Action.PATHWAY_PUBLISHED, AuditEntry.version_key == version_key).limit(1)
    ).scalar() is not None


def published_payload(connection: Connection, version_key: str) -> dict[str, Any] | None:
    """What ``pathways publish`` kept of a version (its files), or None if it is not published."""
    row = connection.execute(
        select(AuditEntry.payload).where(AuditEntry.action == Action.PATHWAY_PUBLISHED, AuditEntry.version_key == version_key)
        .order_by(AuditEntry.seq).limit(1)
    ).scalar()
    return json.loads(row) if row else None


def published_versions(connection: Connection, pathway: str) -> list[tuple[str, str]]:
    """The (version, version key) pairs of a pathway published in this trail, oldest first."""
    rows = connection.execute(
        select(AuditEntry.pathway_version, AuditEntry.version_key)
        .where(AuditEntry.action == Action.PATHWAY_PUBLISHED, AuditEntry.pathway == pathway).order_by(AuditEntry.seq)
    )
    return [(version, key) for version, key in rows]


def publications(connection: Connection, pathway: str | None = None) -> list[dict[str, Any]]:
    """Who published which pathway version when (the trail's ``pathway.published`` entries, without
    the files they keep), oldest first."""
    statement = (select(AuditEntry.pathway, AuditEntry.pathway_version, AuditEntry.version_key, AuditEntry.actor, AuditEntry.role,
                        AuditEntry.at).where(AuditEntry.action == Action.PATHWAY_PUBLISHED).order_by(AuditEntry.seq))
    if pathway is not None:
        statement = statement.where(AuditEntry.pathway == pathway)
    return [dict(row) for row in connection.execute(statement).mappings()]


SQLITE_TRIGGERS = [
    "CREATE TRIGGER audit_entry_no_update BEFORE UPDATE ON audit_entry "
    "BEGIN SELECT RAISE(ABORT, 'audit entries are append-only: UPDATE refused'); END",
    "CREATE TRIGGER audit_entry_no_delete BEFORE DELETE ON audit_entry "
    "BEGIN SELECT RAISE(ABORT, 'audit entries are append-only: DELETE refused'); END",
]
POSTGRES_TRIGGERS = [
    "CREATE OR REPLACE FUNCTION audit_entry_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "BEGIN RAISE EXCEPTION 'audit entries are append-only: % refused', TG_OP; END $$",
    "CREATE TRIGGER audit_entry_no_change BEFORE UPDATE OR DELETE ON audit_entry "
    "FOR EACH ROW EXECUTE FUNCTION audit_entry_append_only()",
    "CREATE TRIGGER audit_entry_no_truncate BEFORE TRUNCATE ON audit_entry "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_entry_append_only()",
]


def install_triggers(connection: Connection) -> None:
    for statement in (POSTGRES_TRIGGERS if connection.dialect.name == "postgresql" else SQLITE_TRIGGERS):
        connection.execute(text(statement))
