"""Synthetic enrollments over the three pathways advanced through one review cycle, end to end
through Prefect (embedded server) with every decision persisted in the store.

Every pathway's flow run runs side by side, as `pathways advance --due` and the daily run do;
batches run in PATHWAYS_WORKERS worker processes (default: the number of cores, at most 4).
Started before the timing, as a long-running `pathways serve` or `pathways worker` process has
them: the embedded server, the batch workers, and each pathway's flow, run once (for its first
enrollment, which the timed run leaves out). Prints enrollments per second, peak memory, and as its last line ``ratio R`` where
R = end-to-end time / floor, the floor being the bare durable-rules evaluation of the same facts
plus one bulk insert of the same decisions, measured in the same run: the evaluation once before
the end-to-end run and once after it (their mean counts: this machine's speed drifts by a fifth
within minutes), the insert after it. The insert writes the rows the run wrote (read back before
its timing, their reasons and details as stored, under keys of their own) through the store's own
bulk path. Until 2026-12-01's seventh session it wrote as many stand-in rows (empty reasons)
through SQLAlchemy's slower ORM insert; that figure is still printed for comparison. Garbage is
collected before every timed part, so that none pays for what another left (one of three rounds
did, which made its floor 0.5 s longer).

The end-to-end run and its floor are measured in ``--rounds`` rounds (default 3), each on its
own copy of the stored cohort (made before any timing), one after the other; every round's
figures and ratio are printed, and the last line is the median of the rounds' ratios. On the
shared two-core machines this runs on, one run's R moved by 0.3-0.7 between runs of the same
code (the second core's speed, see the two-core check); the median of three moves less.
Usage: python bench/cohort.py [--enrollments 10000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

# one folder per bench run: the processes it spawns (batch workers, the two-core check) import
# this file again and find the folder in their environment instead of making another
WORK = Path(os.environ.get("PATHWAYS_BENCH_WORK") or tempfile.mkdtemp(prefix="pathways-bench-"))
os.environ["PATHWAYS_BENCH_WORK"] = str(WORK)
os.environ["PATHWAYS_DATABASE_URL"] = f"sqlite:///{WORK / 'store.db'}"
os.environ.setdefault("PREFECT_HOME", str(WORK / "prefect"))
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ["DO_NOT_TRACK"] = "1"

from sqlalchemy import insert, select  # noqa: E402

from pathways.clock import FixedClock  # noqa: E402
from pathways.orchestration.service import Runtimes, enrollment_id, ensure_published, open_store  # noqa: E402
from pathways.rules.evaluate import message_for  # noqa: E402
from pathways.facts.derive import Reader  # noqa: E402
from pathways.runtime.core import enroll  # noqa: E402
from pathways.store import bulk  # noqa: E402
from pathways.store.rows import state_json  # noqa: E402
from pathways.store.models import Decision, Enrollment, Fact, Patient  # noqa: E402
from rules import AT, synthetic  # noqa: E402

NAMES = ["diabetes", "copd", "heartfailure"]
DECISION_INSERT = insert(Decision.__table__)  # the store's own bulk path (store/bulk.py), as the run's writes use
DECISION_COLUMNS = tuple(c.name for c in Decision.__table__.columns if not c.primary_key)  # a decision row as written, without its id


def _spin(_: int = 0) -> float:
    """A fixed piece of pure-Python work; its duration in seconds."""
    start, total = time.perf_counter(), 0
    for i in range(3_000_000):
        total += i * i
    return time.perf_counter() - start


def two_core_check() -> float:
    """How fast two processes run the same fixed work side by side, as a share of one process
    alone (1.0: two full cores). The floor uses one core and the end to end run two, so R also
    reflects what the machine gives its second core at the time (seen here: 0.82-1.00)."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(2) as pool:
        pool.map(_spin, [0, 0])  # started and warm
        alone = min(_spin() for _ in range(2))
        both = max(pool.map(_spin, [0, 1]))
    return alone / both


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--enrollments", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3, help="end-to-end runs, each on its own copy of the stored cohort, "
                        "each with its own floor; the last line is the median of their ratios (default 3)")
    parser.add_argument("--prefect-db", default="sqlite", choices=["sqlite", "postgresql"],
                        help="the database of Prefect's embedded server: its own SQLite file (the default set-up), or a fresh "
                             "PostgreSQL database on PATHWAYS_BENCH_PG (default postgresql://postgres@127.0.0.1:5432/postgres)")
    args = parser.parse_args()
    if args.prefect_db == "postgresql":
        import sqlalchemy as sa

        server = os.environ.get("PATHWAYS_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
        prefect_db = f"pathways_bench_prefect_{os.getpid()}"
        admin = sa.create_engine(server.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(sa.text(f'CREATE DATABASE "{prefect_db}"'))
        os.environ["PREFECT_API_DATABASE_CONNECTION_URL"] = server.replace("postgresql://", "postgresql+asyncpg://").rsplit("/", 1)[0] + f"/{prefect_db}"
        print(f"Prefect's embedded server on PostgreSQL database {prefect_db}")
    clock = FixedClock(dt.datetime(AT.year, AT.month, AT.day, 12, tzinfo=dt.timezone.utc))
    store = open_store(clock)
    runtimes = Runtimes()
    rnd = random.Random(7)
    per = args.enrollments // len(NAMES)
    cohorts: dict[str, list[str]] = {}
    patients = {}
    start = time.perf_counter()
    for name in NAMES:  # each version published, as the first enrollment of `pathways enroll` does: the runs load it from the trail
        ensure_published(store, runtimes.get(name))
    with store.transaction() as session:  # set-up, not measured: patients, facts, enrollments
        for name in NAMES:
            runtime = runtimes.get(name)
            ids = []
            for i in range(per):
                facts = synthetic(name, i, rnd)
                patients[facts.patient] = (name, facts)
                eid = enrollment_id(runtime.loaded, facts.patient)
                state = enroll(runtime.loaded, eid, facts.patient, AT, runtime.evaluator)
                session.add(Patient(id=facts.patient, created_at=clock.now()))
                session.flush()
                store._append(session, facts.patient, facts, "bench")
                session.add(Enrollment(id=eid, patient_id=facts.patient, pathway=name, version=state.version, version_key=state.version_key,
                                       enrolled_on=AT, as_of=AT, state=state_json(state), state_version=0, updated_at=clock.now()))
                ids.append(eid)
            cohorts[name] = ids
    total = per * len(NAMES)
    print(f"set-up: {total} enrollments stored in {time.perf_counter() - start:.1f} s ({WORK})")

    from pathways.orchestration import prefect_edge
    from pathways.orchestration.advancing import advance_pathways_with_prefect, advance_with_prefect

    prefect_edge.configure()

    # Outside the timing, as a long-running `pathways serve` or `pathways worker` process has them:
    # the embedded server started, each pathway's flow run once (registered with the server, its
    # parameters' model built: 0.05-0.1 s the first time), the batch worker processes started.
    warm = time.perf_counter()
    for name in NAMES:
        advance_with_prefect(name, cohorts[name][:1], AT)
    from pathways.orchestration import workers
    from pathways.orchestration.flows import pathway_flow

    keys = {name: runtimes.get(name).evaluator.plan.version_key for name in NAMES}  # what the enrollments run
    for name in NAMES:
        pathway_flow(keys[name])
    workers.prepare(list(keys.values()), wait=True)
    print(f"warm-up, not timed (embedded server, pathways, {workers.worker_count()} batch workers): {time.perf_counter() - warm:.1f} s")

    def decide_all() -> list[tuple[str, dict]]:
        """The floor's evaluation: bare durable-rules decisions for the same facts (the same message building)."""
        decided_all = []
        for name in NAMES:
            evaluator = runtimes.get(name).evaluator
            fields = evaluator.ruleset.fields
            for i, eid in enumerate(cohorts[name]):
                if i == 0:  # advanced in the warm-up, not in the timed run
                    continue
                facts = patients[f"bench-{name}-{i}"][1]
                reader = Reader(evaluator.timeline(facts, AT), evaluator.plan.facts, evaluator.plan.derived, AT)
                decided_all.append((eid, evaluator.engine_decisions(message_for(evaluator.plan, reader, fields))))
        return decided_all

    # Every round starts from the same stored cohort: a copy of the store as the warm-up left it
    # (SQLite's backup: consistent, write-ahead log included), made before any timing.
    warmed = {cohorts[name][0] for name in NAMES}
    expected = sorted(e for name in NAMES for e in cohorts[name][1:])
    origin = os.environ["PATHWAYS_DATABASE_URL"]
    urls = [origin]
    if args.rounds > 1:
        import sqlite3

        source = sqlite3.connect(WORK / "store.db")
        for k in range(2, args.rounds + 1):
            target = sqlite3.connect(WORK / f"store-{k}.db")
            source.backup(target)
            target.close()
            urls.append(f"sqlite:///{WORK / f'store-{k}.db'}")
        source.close()
    rounds = []
    before = []  # the ratio with the stand-in rows the floor inserted before 2026-12-01's seventh session
    for k, url in enumerate(urls, 1):
        os.environ["PATHWAYS_DATABASE_URL"] = url  # the batch workers take it with every batch
        store = open_store(clock)  # migrated and its configuration recorded here, before the timing, as for the first

        # the floor, first half: its evaluation before the end-to-end run (the machine's speed drifts; the mean of two counts)
        gc.collect()  # before every timed part: none of them pays for the garbage another left
        start = time.perf_counter()
        decide_all()
        evaluation_before = time.perf_counter() - start

        gc.collect()
        start = time.perf_counter()
        kinds: dict[str, int] = {}
        # as `pathways advance --due` does: what has come due, per pathway, every pathway's flow run side by side
        groups = {key: [e for e in members if e not in warmed] for key, members in store.due_by_version(AT).items()}
        assert sorted(e for m in groups.values() for e in m) == expected
        timed = sum(len(m) for m in groups.values())
        for counts in advance_pathways_with_prefect(groups, AT).values():
            for kind, n in counts.items():
                kinds[kind] = kinds.get(kind, 0) + n
        end_to_end = time.perf_counter() - start
        decisions = sum(len(store.decisions(e)) for e in cohorts["heartfailure"][:50])

        # the floor, second half: the same evaluation again, then one bulk insert of the same decisions: the rows the run
        # wrote (their reasons and details as stored), read back before the timing, under keys of their own
        gc.collect()
        start = time.perf_counter()
        decided_all = decide_all()
        evaluation_after = time.perf_counter() - start
        written = sum(kinds.values())
        with store.transaction() as session:
            made = session.execute(select(*[getattr(Decision, c) for c in DECISION_COLUMNS])).all()  # a round's own copy: the run's rows only
        made = [row for row in made if row.enrollment_id not in warmed]  # the warm-up's decisions are not this run's
        assert len(made) == written, (len(made), written)
        gc.collect()
        start = time.perf_counter()
        rows = []
        for row in made:
            values = dict(zip(DECISION_COLUMNS, row))
            values["key"] = f"floor:{values['key']}"
            rows.append(values)
        with store.transaction() as session:
            bulk.executemany(session.connection(), DECISION_INSERT, rows)
        writing = time.perf_counter() - start
        # for comparison with the runs recorded before 2026-12-01's seventh session, the floor's insert as it was measured
        # then: as many stand-in rows (empty reasons, the condition's value as detail) through SQLAlchemy's ORM bulk insert
        # (slower than the store's own path); after the other insert, in the same table
        del made, rows
        gc.collect()
        start = time.perf_counter()
        stand_ins = []
        for eid, decided in decided_all:
            if len(stand_ins) >= written:
                break
            for cid, value in decided.items():
                if value is not None and len(stand_ins) < written:
                    stand_ins.append({"key": f"floor-stand-in:{eid}:{cid}", "run_key": f"floor:{eid}", "enrollment_id": eid, "kind": "floor",
                                      "step": cid[:64], "due_on": AT, "decided_on": AT, "pathway_version": "1.0.0", "version_key": "floor",
                                      "reasons": "[]", "detail": json.dumps({"value": value})})
        with store.transaction() as session:
            session.execute(insert(Decision), stand_ins)
        writing_stand_ins = time.perf_counter() - start
        floor = (evaluation_before + evaluation_after) / 2 + writing
        rounds.append(end_to_end / floor)
        before.append(end_to_end / ((evaluation_before + evaluation_after) / 2 + writing_stand_ins))
        print(f"round {k}: end to end through Prefect {end_to_end:.1f} s, {timed / end_to_end:,.0f} enrollments/s; decisions written: "
              f"{written:,} ({decisions} for the first 50 heart failure enrollments); floor (durable-rules on the same facts + "
              f"one bulk insert of the same {written:,} decisions) {floor:.1f} s (evaluation {evaluation_before:.1f} s before the end-to-end run "
              f"and {evaluation_after:.1f} s after it, their mean; insert {writing:.1f} s); ratio {end_to_end / floor:.2f} "
              f"(with {len(stand_ins):,} stand-in rows instead, inserted in {writing_stand_ins:.1f} s: {before[-1]:.2f})", flush=True)
    os.environ["PATHWAYS_DATABASE_URL"] = origin
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    used = workers.worker_count()
    workers.shutdown()  # the batch workers' peak is known once they have ended
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the largest child that has ended: a batch worker
    workers_peak = f"; the largest batch worker {children:.0f} MB" if used > 1 else ""
    print(f"peak memory {peak:.0f} MB in this process{workers_peak}; batch workers: {used}")
    print(f"two-core check (not part of R): two processes ran a fixed loop side by side at {two_core_check():.2f} of one process's speed")
    print(f"with stand-in rows as the floor's insert (the bench before 2026-12-01's seventh session), the median ratio: {statistics.median(before):.2f}")
    if len(rounds) > 1:
        print(f"the {len(rounds)} rounds' ratios: {', '.join(f'{r:.2f}' for r in rounds)}; their median:")
    print(f"ratio {statistics.median(rounds):.2f}")
    if args.prefect_db == "postgresql":
        with admin.connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{prefect_db}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
