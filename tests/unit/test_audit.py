"""The audit trail in the store, on SQLite and on a real PostgreSQL server: written in the same
transaction as each change, refused UPDATE and DELETE by the database itself, and every kind of
tampering (with the triggers dropped) found by verification."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import threading

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from pathways.access import Actor
from pathways.clock import FixedClock
from pathways.definition.loader import load_pathway
from pathways.facts.model import Condition, Demographics, Observation, PatientFacts
from pathways.runtime.core import Runtime, enroll
from pathways.store import audit
from pathways.store.audit import Query, entries, verify
from pathways.store.connect import migrate
from pathways.store.db import StaleState, Store

START = dt.datetime(2026, 1, 5, 9, tzinfo=dt.timezone.utc)
NURSE = Actor("poh-jansen", "scheduler", "environment")


def facts(pid: str = "p-audit-1") -> PatientFacts:
    return PatientFacts(
        patient=pid,
        demographics=Demographics(birth_date=dt.date(1950, 3, 1), sex="female"),
        conditions=(Condition(fact="hf_diagnosis", onset=dt.date(2020, 1, 1)),),
        observations=(Observation(fact="potassium_mmol_l", value=5.9, unit="mmol/L", at=dt.date(2026, 1, 2)),),
    )


def setup(engine, patients: int = 1):
    migrate(engine)
    clock = FixedClock(START)
    store = Store(engine, clock.now, NURSE, {"prefect_flow_run": "fr-1", "prefect_task_run": "tr-1"})
    loaded = load_pathway("heartfailure")
    runtime = Runtime(loaded)
    for i in range(1, patients + 1):
        state = enroll(loaded, f"enr-{i}", f"p-audit-{i}", clock.today(), runtime.evaluator)
        store.enroll(facts(f"p-audit-{i}"), state, "test", {"name": "X", "birth_date": None, "bsn_hmac": "ab" * 32, "bsn": None})
    return store, runtime, clock


def advance(store, runtime, clock, enrollment="enr-1"):
    state, version = store.load(enrollment)
    new, events, _ = runtime.advance(state, store.patient_facts(state.patient), clock)
    store.apply(new, version, events)
    return events


def all_entries(engine, **query):
    with engine.connect() as c:
        return list(entries(c, Query(**query)))


def check(engine, anchor=None):
    with engine.connect() as c:
        return verify(c, anchor)


def raw(engine, *statements):
    with engine.begin() as c:
        for statement in statements:
            c.execute(sa.text(statement))


def drop_triggers(engine):
    if engine.dialect.name == "postgresql":
        raw(engine, "ALTER TABLE audit_entry DISABLE TRIGGER USER")
    else:
        raw(engine, "DROP TRIGGER audit_entry_no_update", "DROP TRIGGER audit_entry_no_delete")


def test_every_change_is_audited_with_actor_versions_facts_and_run_ids(engine):
    store, runtime, clock = setup(engine)
    events = advance(store, runtime, clock)
    trail = all_entries(engine)
    actions = [e["action"] for e in trail]
    assert actions[:4] == ["patient.created", "identity.stored", "facts.added", "enrollment.created"]
    decided = [e for e in trail if e["subject"] and e["subject"].endswith(tuple(f":{ev.kind}" for ev in events))]
    assert sorted(e["subject"] for e in decided) == sorted(ev.key for ev in events)  # one entry per decision
    escalation = next(e for e in trail if e["action"] == "escalation.opened")
    assert (escalation["actor"], escalation["role"]) == ("poh-jansen", "scheduler")
    assert escalation["version_key"] == runtime.evaluator.plan.version_key and escalation["pathway_version"] == "1.1.0"
    p = escalation["payload"]
    assert p["facts"]["potassium_mmol_l"] == 5.9 and "potassium_max" not in p["facts"]
    assert any("potassium_mmol_l > potassium_max: true" in r for r in p["reasons"])
    assert p["context"] == {"prefect_flow_run": "fr-1", "prefect_task_run": "tr-1"}
    assert p["conditions"][0]["id"] == "trigger:hyperkaliemie"
    assert escalation["at"] == START.isoformat() and [e["seq"] for e in trail] == list(range(1, len(trail) + 1))
    assert check(engine).intact
    # the same advance replayed adds nothing to the trail
    state, version = store.load("enr-1")
    store.apply(state, version, events)
    assert len(all_entries(engine)) == len(trail)


def test_a_failed_transaction_leaves_no_audit_entry(engine):
    store, runtime, clock = setup(engine)
    before = all_entries(engine)
    state, version = store.load("enr-1")
    new, events, _ = runtime.advance(state, store.patient_facts("p-audit-1"), clock)

    def crash(session):
        raise RuntimeError("worker killed")

    with pytest.raises(RuntimeError):
        store.apply(new, version, events, fail_after=crash)
    assert all_entries(engine) == before
    with pytest.raises(StaleState):
        store.apply(new, version + 5, events)
    assert all_entries(engine) == before and check(engine).intact


def test_the_database_refuses_update_and_delete_of_audit_entries(engine):
    store, runtime, clock = setup(engine)
    for statement in ("UPDATE audit_entry SET actor = 'someone-else' WHERE seq = 2", "DELETE FROM audit_entry WHERE seq = 3",
                      "DELETE FROM audit_entry"):
        with pytest.raises(DBAPIError) as info:
            raw(engine, statement)
        assert "append-only" in str(info.value)
    if engine.dialect.name == "postgresql":
        with pytest.raises(DBAPIError):
            raw(engine, "TRUNCATE audit_entry")
    assert check(engine).intact and len(all_entries(engine)) == 4


@pytest.mark.parametrize("tamper", ["payload", "deleted", "reordered", "inserted", "tail", "head_and_tail"])
def test_verify_names_the_first_tampered_entry(engine, tamper):
    store, runtime, clock = setup(engine, patients=2)
    advance(store, runtime, clock, "enr-1")
    advance(store, runtime, clock, "enr-2")
    trail = all_entries(engine)
    last = trail[-1]["seq"]
    intact = check(engine)
    assert intact.intact and intact.entries == last
    anchor = (intact.head_seq, intact.head_hash)
    drop_triggers(engine)
    if tamper == "payload":  # a fact value changed after the decision
        row = next(e for e in trail if e["action"] == "escalation.opened")
        changed = json.dumps({**row["payload"], "facts": {"potassium_mmol_l": 4.1}})
        raw(engine, f"UPDATE audit_entry SET payload = '{changed}' WHERE seq = {row['seq']}")
        expected = row["seq"]
    elif tamper == "deleted":
        raw(engine, "DELETE FROM audit_entry WHERE seq = 6")
        expected = 6
    elif tamper == "reordered":  # two entries swap places
        raw(engine, "UPDATE audit_entry SET seq = -1 WHERE seq = 7", "UPDATE audit_entry SET seq = 7 WHERE seq = 8",
            "UPDATE audit_entry SET seq = 8 WHERE seq = -1")
        expected = 7
    elif tamper == "inserted":  # a row slipped in at 5, the rest moved up
        for seq in range(last, 4, -1):
            raw(engine, f"UPDATE audit_entry SET seq = {seq + 1} WHERE seq = {seq}")
        forged = dict.fromkeys(audit.FIELDS)  # a careful forger: a correct hash, chained to entry 4
        forged.update(seq=5, at=trail[4]["at"], actor="intruder", role="admin", action="step.due",
                      payload=json.dumps({"note": "forged"}), prev_hash=trail[3]["hash"])
        forged["hash"] = audit.entry_hash(forged)
        raw(engine, "INSERT INTO audit_entry (seq, at, actor, role, action, payload, prev_hash, hash) VALUES "
                    f"(5, '{forged['at']}', 'intruder', 'admin', 'step.due', '{forged['payload']}', '{forged['prev_hash']}', '{forged['hash']}')")
        raw(engine, f"UPDATE audit_head SET seq = {last + 1}")
        expected = 6  # the forged row chains to 4, but entry 6 (the old 5) no longer follows it
    elif tamper == "tail":  # the last entries removed
        raw(engine, f"DELETE FROM audit_entry WHERE seq > {last - 2}")
        expected = last - 1
    else:  # the tail removed and the head rewritten to match: only the anchor kept outside shows it
        raw(engine, f"DELETE FROM audit_entry WHERE seq > {last - 2}",
            f"UPDATE audit_head SET seq = {last - 2}, hash = '{trail[last - 3]['hash']}'")
        assert check(engine).intact  # undetectable from inside the database alone...
        expected = last
    result = check(engine, anchor if tamper == "head_and_tail" else None)
    assert not result.intact
    assert result.broken_at == expected, result.reason
    assert result.reason


def test_concurrent_writers_queue_on_the_chain(engine):
    store, runtime, clock = setup(engine, patients=6)
    errors: list[BaseException] = []

    def worker(enrollment):
        try:
            for _ in range(3):
                try:
                    advance(store, runtime, clock, enrollment)
                    return
                except StaleState:
                    continue
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(f"enr-{i}",)) for i in range(1, 7)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    result = check(engine)
    assert result.intact and result.entries == len(all_entries(engine))
    assert len(all_entries(engine, action="escalation.opened")) == 6


def test_access_denials_and_configuration_are_audited(engine):
    store, runtime, clock = setup(engine)
    from pathways.access import AccessDenied
    from pathways.orchestration.service import Runtimes, advance_many, authorize

    auditor = Store(engine, clock.now, Actor("auditor-1", "auditor", "environment"))
    with pytest.raises(AccessDenied):
        advance_many(auditor, Runtimes(), ["enr-1"], clock)
    denied = all_entries(engine, action="access.denied")
    assert len(denied) == 1 and denied[0]["actor"] == "auditor-1" and denied[0]["payload"]["permission"] == "enrollment.write"
    assert all_entries(engine, action="step.") == []  # nothing was advanced
    coordinator = Store(engine, clock.now, Actor("coord", "coordinator", "environment"))
    with pytest.raises(AccessDenied):
        authorize(coordinator, "identity.read", "read identifying data")
    assert len(all_entries(engine, action="access.denied")) == 2 and check(engine).intact


def test_bsn_is_kept_as_a_keyed_hash(engine, monkeypatch):
    from sqlmodel import Session

    from pathways.orchestration.service import identity_row
    from pathways.store.models import PatientIdentity

    monkeypatch.setenv("PATHWAYS_IDENTITY_SECRET", "s3cret")
    row = identity_row({"bsn": "999911120", "name": "J. van Putten", "birth_date": dt.date(1934, 4, 28)})
    assert row["bsn"] is None and row["bsn_hmac"] == hmac.new(b"s3cret", b"999911120", hashlib.sha256).hexdigest()
    monkeypatch.setenv("PATHWAYS_BSN_STORAGE", "none")
    assert identity_row({"bsn": "999911120", "name": None, "birth_date": None}) is None or identity_row({"bsn": "999911120", "name": None, "birth_date": None})["bsn_hmac"] is None
    monkeypatch.setenv("PATHWAYS_BSN_STORAGE", "plain")
    assert identity_row({"bsn": "999911120", "name": None, "birth_date": None})["bsn"] == "999911120"
    monkeypatch.delenv("PATHWAYS_BSN_STORAGE")
    store, runtime, clock = setup(engine)
    with Session(engine) as session:
        kept = session.get(PatientIdentity, "p-audit-1")
    assert kept.bsn_hmac == "ab" * 32 and kept.bsn is None
    # the trail says identity was stored, never what it is
    stored = all_entries(engine, action="identity.stored")[0]
    assert stored["payload"]["fields"] == ["bsn_hmac", "name"] and "ab" * 32 not in json.dumps(stored)


def test_entry_hash_is_the_standard_librarys_encoding():
    """The chain's hash is over the standard library's compact JSON of the row (non-ASCII kept): a
    faster encoder may only be used where it writes the same bytes, so every existing chain still
    verifies. Rows with every control character, quotes, backslashes, non-ASCII, line and
    paragraph separators, emoji, nulls and large numbers."""
    import random

    chars = [chr(i) for i in range(0x250)] + ["\u2028", "\u2029", "\ufeff", "\U0001f600", "é", "\\", '"']
    rnd = random.Random(4)
    for n in range(3000):
        row = {name: "".join(rnd.choice(chars) for _ in range(rnd.randint(0, 40))) for name in audit.FIELDS}
        row["seq"] = rnd.choice([n, 2**63 - 1, -(2**62)])
        row["patient_id"] = None if n % 3 else row["patient_id"]
        data = [row[name] for name in audit.FIELDS[:-1]]
        expected = hashlib.sha256(json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")).hexdigest()
        assert audit.entry_hash(row) == expected, row
    huge = {name: "x" for name in audit.FIELDS} | {"seq": 2**80}  # beyond orjson: the standard library's text
    assert audit.entry_hash(huge) == hashlib.sha256(json.dumps([huge[f] for f in audit.FIELDS[:-1]], separators=(",", ":"), ensure_ascii=False).encode()).hexdigest()
