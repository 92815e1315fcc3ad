"""The rows of the store's writes and reads, built outside its transactions: an enrollment's
state as stored (runtime/stateformat.py) and read back, its next due date, its goals' rows, an
advance's conditional update and the upserts per dialect, the step runs, decisions and audit
entries of its events (``prepare_events``, before the transaction; ``write_events``, inside it),
patient facts rebuilt from their rows, and ids in chunks for ``IN`` lists. Used by ``db.Store``
and the store's other writers (``previews``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable

from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from pathways.access import Actor
from pathways.facts.model import PatientFacts
from pathways.runtime.core import EnrollmentState, Event
from pathways.runtime.stateformat import StateFormatError, dump_state, load_state
from pathways.store import audit, bulk, factrows
from pathways.store.audit import Record
from pathways.store.errors import UnreadableState
from pathways.store.models import Decision, Enrollment, Goal, StepRun
from pathways.store.vocabulary import DECISION_ACTION, Key


@dataclass
class Prepared:
    """An advance's rows, built before its transaction (``prepare_events``)."""

    runs: list[dict[str, Any]]  # step runs
    decisions: dict[str, dict[str, Any]]  # decision key -> its row
    entries: dict[str, dict[str, Any]]  # decision key -> its audit entry, not yet chained
    extra: list[dict[str, Any]]  # audit entries written before the decisions' (a recorded input)


ADVANCE = (  # an advance's new state, only if the state is still the one that was read
    update(Enrollment.__table__)
    .where(Enrollment.__table__.c.id == bindparam("b_id"), Enrollment.__table__.c.state_version == bindparam("b_version"))
    .values(state=bindparam("b_state"), state_version=bindparam("b_next"), as_of=bindparam("b_as_of"),
            next_due=bindparam("b_next_due"), updated_at=bindparam("b_updated"))
)
GOAL_FIELDS = ("fact", "target", "agreed_on", "deadline", "baseline", "latest", "status")


@lru_cache(maxsize=None)
def statements(dialect: str) -> dict[str, Any]:
    """The upserts of a write, built once per dialect (store/bulk.py compiles each once)."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    runs = insert(StepRun.__table__)
    runs = runs.on_conflict_do_update(index_elements=["run_key"], set_={"status": runs.excluded.status, "updated_on": runs.excluded.updated_on})
    goals = insert(Goal.__table__)
    goals = goals.on_conflict_do_update(index_elements=["enrollment_id", "goal"], set_={name: getattr(goals.excluded, name) for name in GOAL_FIELDS})
    return {"step_run": runs, "decision": insert(Decision.__table__).on_conflict_do_nothing(index_elements=["key"]), "goal": goals}


def goal_rows(states: list[EnrollmentState]) -> list[dict[str, Any]]:
    """Goal progress rows (one per enrollment and goal), upserted."""
    return [{"enrollment_id": state.enrollment, "goal": goal_id, **goal.model_dump(include=set(GOAL_FIELDS))}
            for state in states for goal_id, goal in state.goals.items()]


def state_json(state: EnrollmentState) -> str:
    """An enrollment's state as stored (runtime/stateformat.py: the format, every field)."""
    return dump_state(state)


def loaded_state(enrollment: str, text: str) -> EnrollmentState:
    """A stored state read back (older formats upgraded); UnreadableState for one this code cannot read."""
    try:
        return load_state(text)
    except StateFormatError as e:
        raise UnreadableState(f"enrollment '{enrollment}': {e}") from None


def chunks(items: list, size: int = 500) -> list[list]:
    """``items`` in slices of ``size``: ``IN`` lists of a length every database takes."""
    return [items[i:i + size] for i in range(0, len(items), size)]


def next_due(state: EnrollmentState) -> dt.date | None:
    """The enrollment's ``next_due`` column: the first date one of its steps is (or comes) due."""
    dates = [p.due_on for p in state.steps.values() if p.due_on is not None and p.status in ("waiting", "due", "gated")]
    return min(dates) if dates else None


def prepare_events(batches: list[tuple[EnrollmentState, list[Event]]], extra: list[Record] | None, actor: Actor,
                   now: Callable[[], dt.datetime], context: dict[str, Any]) -> Prepared:
    """The rows of the events' step runs and decisions, and the audit entry of each decision
    (``extra`` records first), built before the transaction; which decisions are new is
    known only inside it (``write_events``). The audit entries are the ``actor``'s, stamped
    ``now()``, with the store's ``context``."""
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
    stamp = now()
    entries = audit.entries_for(records, actor, stamp, context)
    return Prepared(list(runs.values()), decisions, dict(zip(decisions, entries)), audit.entries_for(extra or [], actor, stamp, context))


def write_events(connection: Connection, prepared: Prepared) -> None:
    """Step runs upserted by run_key and decisions inserted by key, in bulk; repeats add nothing.
    Each new decision is audited (after the ``extra`` records) in the same transaction."""
    upserts = statements(connection.dialect.name)  # Core statements on the tables: no ORM bulk machinery on the hot path
    bulk.executemany(connection, upserts["step_run"], prepared.runs)
    existing: set[str] = set()
    for chunk in chunks(list(prepared.decisions), 500):
        existing.update(connection.execute(select(Decision.key).where(Decision.key.in_(chunk))).scalars())
    new = [key for key in prepared.decisions if key not in existing]
    bulk.executemany(connection, upserts["decision"], [prepared.decisions[key] for key in new])
    audit.chain(connection, prepared.extra + [prepared.entries[key] for key in new])


def facts_from_rows(patient: str, rows) -> PatientFacts:
    """Rebuild a patient's facts from their rows (with ``kind`` and ``payload``), in order."""
    return factrows.facts_from_pairs(patient, [(row.kind, row.payload) for row in rows])
