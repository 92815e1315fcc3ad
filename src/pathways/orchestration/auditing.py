"""What auditors read in the web application, without the web: the trail's entries for a search,
an enrollment, a decision, a pathway, a log query, and the chain's verification. Each function
checks ``audit.read`` first (a denial is audited, ``service.authorize``) and audits every read of
a patient's data (``patient_data.read``, with the page and the pseudonymous ids shown). The
entries are interpreted by ``pathways.views.audit`` (timelines, decisions, indicators), as the
``pathways audit`` commands do."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pathways.orchestration.service import authorize
from pathways.store.audit import Query, Record, Verification
from pathways.store.db import Store, UnknownEnrollment
from pathways.store.vocabulary import Action, Key

AUDIT = "audit.read"


class UnknownInTrail(LookupError):
    """A pathway or decision that the audit trail does not name (the message says what to try)."""


def check(store: Store, what: str, subject: str) -> None:
    """Refuse (and audit the refusal) unless the store's actor may read the audit trail."""
    authorize(store, AUDIT, what, subject)


def _read(store: Store, page: str, subject: str, enrollments: list[str], patient: str | None = None, **extra: Any) -> None:
    store.record_audit([Record(Action.PATIENT_DATA_READ, patient, enrollments[0] if len(enrollments) == 1 else None, subject=subject,
                               payload={Key.PAGE: page, Key.ENROLLMENTS: sorted(set(enrollments)), **extra})])


@dataclass(frozen=True)
class Found:
    enrollment: str | None  # the id searched was an enrollment
    patient: str | None  # ... or a pseudonymous patient with these enrollments
    enrollments: list[tuple[str, str | None]]


def find(store: Store, ident: str) -> Found:
    """An enrollment id or a pseudonymous patient id; UnknownInTrail when the trail has neither."""
    authorize(store, AUDIT, "search the audit trail", "audit search")
    if store.trail.has_enrollment(ident):
        return Found(ident, None, [])
    enrollments = store.trail.enrollments_of(ident)
    if not enrollments:
        raise UnknownInTrail(f"no enrollment or pseudonymous patient '{ident}' in the audit trail: give an enrollment id "
                             "(e.g. diabetes-88e861457669) or a patient's pseudonymous id, as the timeline and the worklist show them")
    _read(store, "audit search", ident, [e for e, _ in enrollments], ident)
    return Found(None, ident, enrollments)


def published(store: Store) -> list[dict[str, Any]]:
    """The ``pathway.published`` entries (with the files of each version): ``views.audit.Catalog``."""
    return store.trail.entries(Query(action=Action.PATHWAY_PUBLISHED))


def enrollment_trail(store: Store, enrollment: str) -> list[dict[str, Any]]:
    """An enrollment's entries (its timeline); UnknownEnrollment without any."""
    authorize(store, AUDIT, f"read the timeline of {enrollment}", enrollment)
    found = store.trail.entries(Query(enrollment=enrollment))
    if not found:
        raise UnknownEnrollment(f"unknown enrollment '{enrollment}': the audit trail has no entry for it")
    _read(store, "audit timeline", enrollment, [enrollment], found[0]["patient_id"])
    return found


def decision_trail(store: Store, decision: str) -> tuple[str, int | None, list[dict[str, Any]]]:
    """A decision's key, id and entries (by key or id); UnknownInTrail without any."""
    authorize(store, AUDIT, f"read decision {decision}", decision)
    key, decision_id, found = store.trail.find_decision(decision)
    if not found:
        raise UnknownInTrail(f"unknown decision '{decision}': open it from an enrollment's timeline or the audit log (action step.)")
    _read(store, "audit decision", key, [found[0]["enrollment_id"]], found[0]["patient_id"])
    return key, decision_id, found


def pathways(store: Store) -> list[str]:
    authorize(store, AUDIT, "read quality indicators", "indicators")
    return store.trail.pathway_names()


def pathway_trail(store: Store, pathway: str) -> list[dict[str, Any]]:
    """A pathway's entries, for its indicators (aggregates: the read is audited when a drill-down
    shows the enrollments behind a number, ``shown``)."""
    known = pathways(store)
    if pathway not in known:
        from pathways.errors import did_you_mean

        hint = did_you_mean(pathway, known) or ("known: " + ", ".join(known) if known else "the trail names no pathway yet")
        raise UnknownInTrail(f"no pathway '{pathway}' in the audit trail ({hint})")
    return store.trail.entries(Query(pathway=pathway))


def shown(store: Store, page: str, subject: str, enrollments: list[str], **extra: Any) -> None:
    """Audit that a page showed these enrollments (a drill-down from an indicator)."""
    if enrollments:
        _read(store, page, subject, enrollments, **extra)


def verification(store: Store, anchor: tuple[int, str] | None = None) -> Verification:
    authorize(store, AUDIT, "verify the audit trail", "audit verify")
    return store.trail.verify(anchor)


def log(store: Store, query: Query, page: str = "audit log", limit: int | None = None) -> tuple[list[dict[str, Any]], int]:
    """The entries matching ``query`` (the first ``limit``, and how many there are); the read is audited."""
    authorize(store, AUDIT, "read the audit log", page)
    rows = store.trail.entries(query)
    shown_rows = rows if limit is None else rows[:limit]
    filters = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in vars(query).items() if v is not None}
    _read(store, page, page, [r["enrollment_id"] for r in shown_rows if r["enrollment_id"]], filters=filters, entries=len(shown_rows))
    return shown_rows, len(rows)
