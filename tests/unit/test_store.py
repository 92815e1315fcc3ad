"""The store on SQLite and on a real PostgreSQL server (when PATHWAYS_TEST_DATABASE_URL names
one; CI always sets it). Each PostgreSQL test creates and drops its own database."""

from __future__ import annotations

import datetime as dt
import os
import threading

import pytest
import sqlalchemy as sa

from pathways.clock import FixedClock
from pathways.definition.loader import load_pathway
from pathways.facts.model import Condition, Demographics, Observation, PatientFacts
from pathways.runtime.core import Runtime, enroll
from pathways.store.connect import make_engine, migrate, retrying
from pathways.store.db import StaleState, Store, StoreUnavailable

SERVER = os.environ.get("PATHWAYS_TEST_DATABASE_URL")
START = dt.datetime(2026, 1, 5, 9, tzinfo=dt.timezone.utc)


def patient() -> PatientFacts:
    return PatientFacts(
        patient="p-store-1",
        demographics=Demographics(birth_date=dt.date(1950, 3, 1), sex="female"),
        conditions=(Condition(fact="hf_diagnosis", onset=dt.date(2020, 1, 1)),),
        observations=(Observation(fact="potassium_mmol_l", value=5.9, unit="mmol/L", at=dt.date(2026, 1, 2)),),
    )


def setup(engine):
    migrate(engine)
    clock = FixedClock(START)
    store = Store(engine, clock.now)
    loaded = load_pathway("heartfailure")
    runtime = Runtime(loaded)
    store.add_patient_facts(patient(), "test")
    state = enroll(loaded, "enr-1", "p-store-1", clock.today(), runtime.evaluator)
    store.create_enrollment(state)
    return store, runtime, clock


def test_migrations_create_the_schema_and_are_idempotent(engine):
    migrate(engine)
    migrate(engine)
    tables = set(sa.inspect(engine).get_table_names())
    assert {"patient", "patient_identity", "fact", "enrollment", "step_run", "decision", "goal", "alembic_version"} <= tables


def test_advance_is_written_once_and_facts_round_trip(engine):
    store, runtime, clock = setup(engine)
    facts = store.patient_facts("p-store-1")
    assert facts == patient()
    state, version = store.load("enr-1")
    new, events, _ = runtime.advance(state, facts, clock)
    assert ("escalated", "hyperkaliemie") in [(e.kind, e.step) for e in events]
    version = store.apply(new, version, events)
    count = len(store.decisions("enr-1"))
    # the same advance again (a retry, or a second worker that read the same state): refused whole
    with pytest.raises(StaleState):
        store.apply(new, version - 1, events)
    # replaying the same events on the current version adds no decision
    store.apply(new, version, events)
    decisions = store.decisions("enr-1")
    assert len(decisions) == count
    assert len({d.key for d in decisions}) == len(decisions)
    escalation = next(d for d in decisions if d.kind == "escalated")
    assert escalation.version_key.startswith("heartfailure@1.1.0#") and "potassium_mmol_l > potassium_max: true" in escalation.reasons
    reloaded, _ = store.load("enr-1")
    assert reloaded == new


def test_a_crash_half_way_leaves_the_enrollment_as_it_was(engine):
    store, runtime, clock = setup(engine)
    state, version = store.load("enr-1")
    new, events, _ = runtime.advance(state, store.patient_facts("p-store-1"), clock)

    def crash(session):
        raise RuntimeError("worker killed")

    with pytest.raises(RuntimeError):
        store.apply(new, version, events, [Observation(fact="body_weight_kg", value=80, unit="kg", at=clock.today())], fail_after=crash)
    assert store.load("enr-1") == (state, version)
    assert store.decisions("enr-1") == []
    assert len(store.patient_facts("p-store-1").observations) == 1


def test_two_workers_advancing_at_once_write_each_decision_once(engine):
    store, runtime, clock = setup(engine)
    outcomes: list[str] = []

    def worker():
        state, version = store.load("enr-1")
        new, events, _ = runtime.advance(state, store.patient_facts("p-store-1"), clock)
        try:
            store.apply(new, version, events)
            outcomes.append("written")
        except StaleState:
            outcomes.append("stale")

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("written") >= 1
    keys = [d.key for d in store.decisions("enr-1")]
    assert len(keys) == len(set(keys)) and keys


def test_an_unreachable_database_is_retried_then_a_clear_error():
    engine = make_engine("postgresql://postgres@127.0.0.1:1/none")
    waits: list[float] = []
    with pytest.raises(StoreUnavailable) as info:
        retrying(lambda: engine.connect().close(), attempts=3, first_wait=0.01, sleep=waits.append)
    assert str(info.value).startswith("the database is unavailable after 3 attempts:")
    assert waits == [0.01, 0.02]  # backing off between its attempts, none after the last


def test_a_store_whose_database_goes_away_names_it_in_its_error():
    """What a batch worker meets mid-run (a read or a write after the schema check)."""
    waits: list[float] = []
    store = Store(make_engine("postgresql://postgres:s3cret@127.0.0.1:1/none"), lambda: dt.datetime(2026, 1, 5, tzinfo=dt.timezone.utc),
                  sleep=waits.append)
    for action in (lambda: store.load_many(["enr-1"]), lambda: store.due_by_pathway(dt.date(2026, 1, 5)), lambda: store.apply_many([])):
        waits.clear()
        with pytest.raises(StoreUnavailable) as info:
            action()
        assert str(info.value).startswith("the database postgresql://postgres:***@127.0.0.1:1/none is unavailable after 5 attempts: connection failed")
        assert waits == [0.2, 0.4, 0.8, 1.6]  # backing off between its attempts


def test_goal_progress_is_upserted_in_bulk(engine):
    from sqlmodel import Session, select

    from pathways.runtime.core import GoalProgress
    from pathways.store.models import Goal

    store, runtime, clock = setup(engine)
    state, version = store.load("enr-1")
    goal = GoalProgress(step="doelen_afspreken", fact="body_weight_kg", target="<= 80", agreed_on=clock.today(),
                        deadline=clock.today() + dt.timedelta(weeks=12), baseline=84.0, latest=84.0)
    first = state.model_copy(update={"goals": {"gewicht": goal}})
    version = store.apply(first, version, [])
    later = first.model_copy(update={"goals": {"gewicht": goal.model_copy(update={"latest": 79.5, "status": "met"})}})
    store.apply(later, version, [])
    with Session(engine) as session:
        rows = session.exec(select(Goal)).all()
    assert [(r.enrollment_id, r.goal, r.baseline, r.latest, r.status) for r in rows] == [("enr-1", "gewicht", 84.0, 79.5, "met")]


def test_bulk_writes_store_what_sqlalchemy_would_store(tmp_path):
    """On SQLite the hot writes go straight to the driver (store/bulk.py): the stored text must be
    exactly what SQLAlchemy writes for the same rows (dates, times with a zone, nulls, floats,
    booleans, non-ASCII), and an update reports how many rows it changed."""
    import sqlite3

    from pathways.store import bulk
    from pathways.store.rows import ADVANCE, statements
    from pathways.store.models import Enrollment, Goal

    stamp = dt.datetime(2026, 11, 30, 23, 59, 58, 123456, tzinfo=dt.timezone.utc)
    enrollments = [{"id": f"e{i}", "patient_id": "p", "pathway": "copd", "version": "1.0.0", "version_key": "k", "enrolled_on": dt.date(2026, 1, i + 1),
                    "as_of": dt.date(2026, 2, 1), "next_due": None if i % 2 else dt.date(2026, 3, i + 1), "state": '{"x":"é ✓"}',
                    "state_version": i, "updated_at": stamp} for i in range(5)]
    goals = [{"enrollment_id": f"e{i}", "goal": "pijn", "fact": "nrs_pain", "target": "<= 3", "agreed_on": dt.date(2026, 1, 5), "deadline": dt.date(2026, 4, 1),
              "baseline": 7.0 if i else None, "latest": 2.5, "status": "open"} for i in range(5)]
    advances = [{"b_id": f"e{i}", "b_version": 0 if i == 3 else i, "b_state": '{"y":1}', "b_next": i + 1, "b_as_of": dt.date(2026, 2, 2),
                 "b_next_due": None, "b_updated": stamp + dt.timedelta(hours=1)} for i in range(5)]
    forget = sa.delete(Goal.__table__).where(Goal.__table__.c.enrollment_id == sa.bindparam("b_id"))
    stored = {}
    for way in ("sqlalchemy", "driver"):
        url = f"sqlite:///{tmp_path / (way + '.db')}"
        engine = make_engine(url)
        migrate(engine)
        with engine.begin() as connection:
            connection.execute(sa.insert(sa.table("patient", sa.column("id"), sa.column("created_at"))).values(id="p", created_at="2026-01-01"))
            if way == "sqlalchemy":
                connection.execute(sa.insert(Enrollment.__table__), enrollments)
                connection.execute(statements("sqlite")["goal"], goals)
                changed = connection.execute(ADVANCE, advances).rowcount
                connection.execute(statements("sqlite")["goal"], goals)  # the upsert again
                removed = connection.execute(forget, [{"b_id": "e0"}, {"b_id": "e1"}, {"b_id": "nobody"}]).rowcount
            else:
                bulk.executemany(connection, sa.insert(Enrollment.__table__), enrollments)
                bulk.executemany(connection, statements("sqlite")["goal"], goals)
                changed = bulk.executemany(connection, ADVANCE, advances)
                bulk.executemany(connection, statements("sqlite")["goal"], goals)
                removed = bulk.executemany(connection, forget, [{"b_id": "e0"}, {"b_id": "e1"}, {"b_id": "nobody"}])  # one parameter
        assert changed == 4  # e3 was read at another version: not changed, and counted as such
        assert removed == 2
        raw = sqlite3.connect(tmp_path / (way + ".db"))
        stored[way] = [raw.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall() for table in ("enrollment", "goal")]
        raw.close()
        engine.dispose()
    assert stored["driver"] == stored["sqlalchemy"]
    assert ("e0", "p", "copd", "1.0.0", "k", "2026-01-01", "2026-02-02", None, '{"y":1}', 1, "2026-12-01 00:59:58.123456") == stored["driver"][0][0]
    assert len(stored["driver"][1]) == 3 and not {"e0", "e1"} & {value for row in stored["driver"][1] for value in row}
