"""Batches advanced in worker processes decide exactly what the flow's own process decides; a
worker that dies costs nothing but time; kept runtimes follow their files."""

from __future__ import annotations

import os
import pickle
import shutil
import signal
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from conftest import ROOT
from pathways.access import SERVICE, AccessDenied
from pathways.errors import SettingError
from pathways.orchestration import workers
from pathways.orchestration.service import Runtimes
from pathways.store import audit
from pathways.store.connect import make_engine
from test_faults import AT, populate


def enrollment_ids(count: int) -> list[str]:
    """The ids of the enrollments test_faults.populate stores."""
    from pathways.definition.loader import load_pathway
    from pathways.orchestration.service import enrollment_id

    loaded = load_pathway("diabetes")
    return [enrollment_id(loaded, f"fault-{i:04d}") for i in range(count)]


def decisions(url: str) -> list[tuple]:
    engine = make_engine(url)
    with engine.connect() as c:
        rows = [tuple(r) for r in c.execute(sa.text("select key, kind, step, reasons, detail from decision order by key"))]
        verified = audit.verify(c)
        actions = sorted(r[0] for r in c.execute(sa.text("select action from audit_entry where action like 'step.%' or action like 'escalation.%'")))
    engine.dispose()
    assert verified.intact, verified.reason
    return rows, actions


@pytest.fixture
def settings(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATHWAYS_WORKERS", "2")
    yield
    workers.shutdown()


def test_batches_in_worker_processes_decide_what_one_process_decides(tmp_path, settings, monkeypatch):
    here, there = f"sqlite:///{tmp_path / 'here.db'}", f"sqlite:///{tmp_path / 'there.db'}"
    populate(here, 60)
    populate(there, 60)
    ids = enrollment_ids(60)
    context = {"prefect_flow_run": "test"}

    monkeypatch.setenv("PATHWAYS_DATABASE_URL", here)
    alone = [workers.advance(batch, AT.isoformat(), context, parallel=False) for batch in workers.batches(ids, 25, False)]
    monkeypatch.setenv("PATHWAYS_DATABASE_URL", there)  # the workers take the caller's settings with every batch
    batches = workers.batches(ids, 25, True)
    assert [len(b) for b in batches] == [15, 15, 15, 15]  # 3 batches of 25 would leave a worker idle: 4 of 15
    with ThreadPoolExecutor(4) as threads:  # as Prefect's task runner submits the batch tasks
        side_by_side = list(threads.map(lambda batch: workers.advance(batch, AT.isoformat(), context, parallel=True), batches))

    assert workers._pool is not None and len(workers._pool._processes) == 2  # really in two other processes
    assert os.getpid() not in workers._pool._processes
    assert decisions(here) == decisions(there) and len(decisions(here)[0]) > 60
    total = lambda summaries, key: sum((Counter(s[key]) for s in summaries), Counter())  # noqa: E731
    assert total(alone, "kinds") == total(side_by_side, "kinds") and sum(total(alone, "kinds").values()) == len(decisions(here)[0])
    assert sorted(e for s in alone for e in s["escalated"]) == sorted(e for s in side_by_side for e in s["escalated"])
    assert sum(s["advanced"] for s in side_by_side) == 60


def test_a_worker_that_dies_leaves_its_batch_to_the_calling_process(tmp_path, settings, monkeypatch):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    populate(url, 20)
    monkeypatch.setenv("PATHWAYS_DATABASE_URL", url)
    ids = enrollment_ids(20)
    workers.advance(ids[:10], AT.isoformat(), {}, parallel=True)  # starts the workers
    pool = workers._pool
    for pid in list(pool._processes):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while not pool._broken and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pool._broken
    summary = workers.advance(ids[10:], AT.isoformat(), {}, parallel=True)
    assert summary["advanced"] == 10 and sum(summary["kinds"].values()) > 10  # done here instead
    assert workers._pool is None  # the broken pool was let go; the next parallel batch starts a new one
    rows, _ = decisions(url)
    assert len({key.split(":")[0] for key, *_ in rows}) == 20


def test_errors_cross_back_from_a_worker_as_themselves(tmp_path, settings, monkeypatch):
    monkeypatch.setenv("PATHWAYS_DATABASE_URL", f"sqlite:///{tmp_path / 'store.db'}")
    populate(f"sqlite:///{tmp_path / 'store.db'}", 1)
    monkeypatch.setenv("PATHWAYS_ROLE", "auditor")
    with pytest.raises(AccessDenied) as denied:
        workers.advance(["diabetes-000000000000"], AT.isoformat(), {}, parallel=True)
    assert denied.value.permission == "enrollment.write"
    copy = pickle.loads(pickle.dumps(AccessDenied(SERVICE, "audit.read", "read the trail")))
    assert (copy.actor, copy.permission, str(copy)) == (SERVICE, "audit.read", str(AccessDenied(SERVICE, "audit.read", "read the trail")))


def test_worker_count_setting(monkeypatch):
    monkeypatch.setenv("PATHWAYS_WORKERS", "3")
    assert workers.worker_count() == 3
    monkeypatch.setenv("PATHWAYS_WORKERS", "0")
    assert workers.worker_count() == 1
    monkeypatch.setenv("PATHWAYS_WORKERS", "two")
    with pytest.raises(SettingError, match="PATHWAYS_WORKERS: .two. is not a whole number"):
        workers.worker_count()
    monkeypatch.delenv("PATHWAYS_WORKERS")
    assert 1 <= workers.worker_count() <= 4
    assert [len(b) for b in workers.batches(list(range(7)), 500, True)] == [7]  # one batch stays one batch
    assert [len(b) for b in workers.batches(list(range(1001)), 500, False)] == [334, 334, 333]


def test_kept_runtimes_follow_their_files(tmp_path, monkeypatch):
    shutil.copytree(ROOT / "pathways", tmp_path / "pathways")
    monkeypatch.setenv("PATHWAYS_PATH", str(tmp_path / "pathways"))
    first = Runtimes().get("copd")
    assert Runtimes().get("copd") is first  # loaded once per process
    unchecked = Runtimes(templates=False).get("copd")
    assert unchecked is not first  # kept apart: a worker's runtime never stands in for a fully checked one
    path = tmp_path / "pathways" / "copd" / "pathway.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("version: 1.1.0", "version: 1.1.1", 1), encoding="utf-8")
    again = Runtimes().get("copd")
    assert again is not first and again.spec.version == "1.1.1"
    template = tmp_path / "pathways" / "_shared" / "documents" / "zorgplan.nl.md.j2"
    template.write_text(template.read_text(encoding="utf-8") + "\n{{ onbekend }}\n", encoding="utf-8")
    from pathways.errors import ProblemsFound

    with pytest.raises(ProblemsFound, match="PW045"):  # a changed template is checked again before anything runs
        Runtimes().get("copd")


def test_a_bad_setting_is_one_line_naming_it(tmp_path):
    from conftest import run_cli

    for name, value in (("PATHWAYS_WORKERS", "two"), ("PATHWAYS_BATCH_SIZE", "many"), ("PATHWAYS_BSN_STORAGE", "bad")):
        result = run_cli("status", "diabetes-000000000000", cwd=tmp_path, env={name: value, "PATHWAYS_PATH": str(ROOT / "pathways")})
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith(f"error: {name}: '{value}' is not") and "Traceback" not in result.stderr
        assert not (tmp_path / ".pathways" / "pathways.db").exists()  # stopped before the store was touched


def test_atoms_cross_processes_without_this_process_hash():
    from pathways.definition.durations import Duration
    from pathways.facts.derive import Atom

    atom = Atom("min", "systolic_bp_mmhg", Duration(3, "months"))
    cached = (hash(atom), atom.key)  # both are cached on the atom once asked for
    copy = pickle.loads(pickle.dumps(atom))
    assert "_hash" not in copy.__dict__ and "_key" not in copy.__dict__  # string hashes differ per process
    assert copy == atom and (hash(copy), copy.key) == cached and {atom: 1}[copy] == 1


def test_workers_start_and_load_their_pathways_ahead_of_the_first_batch(tmp_path, settings, monkeypatch):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    populate(url, 20)
    monkeypatch.setenv("PATHWAYS_DATABASE_URL", url)
    loaded = workers.prepare(["diabetes"], wait=True)
    assert loaded <= set(workers._pool._processes) and os.getpid() not in loaded and loaded  # in the workers, not here
    assert workers.prepare(["diabetes"], wait=True) == set()  # once per pool: asked again, nothing is sent
    summary = workers.advance(enrollment_ids(20), AT.isoformat(), {}, parallel=True)
    assert sum(n for counts in summary["steps"].values() for n in counts.values()) > 20
    pool = workers._pool
    with pytest.raises(RuntimeError, match="PW007 unknown pathway 'no-such-pathway'"):  # fails in the worker, and says so here
        workers.prepare(["no-such-pathway"], wait=True)
    assert workers.prepare(["copd"], wait=True) and workers._pool is pool  # the pool survives it


def test_batches_run_without_the_cycle_collector_and_restore_it():
    import gc

    assert gc.isenabled()
    with workers._no_cycle_collection():
        assert not gc.isenabled()
    with pytest.raises(RuntimeError):
        with workers._no_cycle_collection():
            raise RuntimeError("a batch that fails")
    assert gc.isenabled()  # back on, even after an error
    gc.disable()
    try:
        with workers._no_cycle_collection():
            pass
        assert not gc.isenabled()  # a caller's choice is left as it was
    finally:
        gc.enable()


def test_a_runs_first_batch_goes_ahead_of_batches_waiting_for_a_worker():
    """One batch in flight per worker; among those waiting, every run's first batch goes first (so
    every run side by side gets its first results early), then the other batches run after run."""
    import threading

    queue = workers._Queue()
    order: list[str] = []
    release = threading.Event()

    def batch(name: str, first: bool) -> None:
        with queue.turn(first, slots=1, run=name[0]):
            order.append(name)
            if name == "a1":
                release.wait(10)

    threads = [threading.Thread(target=batch, args=("a1", True))]
    threads[0].start()
    while not order:  # a1 holds the only worker
        time.sleep(0.01)
    for name, first in (("a2", False), ("b2", False), ("a3", False), ("b1", True), ("a4", False), ("c1", True)):
        thread = threading.Thread(target=batch, args=(name, first))
        thread.start()
        threads.append(thread)
        time.sleep(0.05)  # arrive in this order
    release.set()
    for thread in threads:
        thread.join(10)
    assert order == ["a1", "b1", "c1", "a2", "a3", "a4", "b2"]
    assert queue._runs == {}  # forgotten once nothing waits


def test_a_batch_evaluated_in_bulk_decides_what_advancing_one_by_one_decides(tmp_path, monkeypatch):
    """advance_many evaluates a batch's rules in bulk (every durable-rules decision first, then
    the explanations); each enrollment advanced on its own is evaluated alone. Same states,
    same decisions with the same reasons and details, same audit entries."""
    import datetime as dt

    from pathways.clock import FixedClock
    from pathways.orchestration.service import advance_many, advance_one, open_store

    bulk, alone = f"sqlite:///{tmp_path / 'bulk.db'}", f"sqlite:///{tmp_path / 'alone.db'}"
    populate(bulk, 40)
    populate(alone, 40)
    ids = enrollment_ids(40)
    clock = FixedClock(dt.datetime(AT.year, AT.month, AT.day, 12, tzinfo=dt.timezone.utc))

    def states(url: str) -> list[tuple]:
        engine = make_engine(url)
        with engine.connect() as c:
            rows = [tuple(r) for r in c.execute(sa.text("select id, state, state_version, next_due from enrollment order by id"))]
        engine.dispose()
        return rows

    monkeypatch.setenv("PATHWAYS_DATABASE_URL", bulk)
    together = advance_many(open_store(clock), Runtimes(), ids, clock)
    monkeypatch.setenv("PATHWAYS_DATABASE_URL", alone)
    store = open_store(clock)
    one_by_one = [advance_one(store, Runtimes(), enrollment, clock) for enrollment in ids]

    assert [(a.enrollment, a.events, a.statuses) for a in together] == [(a.enrollment, a.events, a.statuses) for a in one_by_one]
    assert decisions(bulk) == decisions(alone) and len(decisions(bulk)[0]) > 40
    assert {kind for _, kind, *_ in decisions(bulk)[0]} >= {"indicated", "due", "escalated"}  # explanations of each kind compared
    assert states(bulk) == states(alone) and all(version == 1 for _, _, version, _ in states(bulk))


def test_an_evaluation_made_for_another_date_is_refused():
    import datetime as dt

    from pathways.clock import FixedClock
    from pathways.definition.loader import load_pathway
    from pathways.facts.model import PatientFacts
    from pathways.runtime.core import Runtime, enroll

    loaded = load_pathway("diabetes")
    runtime = Runtime(loaded)
    patient = PatientFacts(patient="p-1")
    state = enroll(loaded, "enr-1", "p-1", AT, runtime.evaluator)
    earlier = runtime.evaluator.evaluate_many([patient], AT, AT)[0]
    later = FixedClock(dt.datetime(AT.year, AT.month, AT.day, 12, tzinfo=dt.timezone.utc) + dt.timedelta(days=7))
    with pytest.raises(ValueError, match="not of diabetes@.* at "):
        runtime.advance(state, patient, later, earlier)
    assert runtime.advance(state, patient, FixedClock.on(AT), earlier)[0] == runtime.advance(state, patient, FixedClock.on(AT))[0]
