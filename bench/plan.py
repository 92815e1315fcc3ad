"""Personal plans of multimorbid patients (issue 28, item 6).

Set-up, not timed: ``--patients`` synthetic patients (default 10,000), a third of them
(``--multimorbid``) in two or three of the three pathways (bench/rules.py's facts of each pathway,
merged into one patient), the others in one, enrolled and advanced once at enrollment and stored
with their facts, as `pathways run` leaves them.

Timed, in ``--rounds`` rounds (default 3), each for its own plan date: the personal plan of every
patient (``make_plans``, orchestration/careplan.py, batch-wise: enrollments and facts read from
the store, each enrollment projected to the date under its own version, the interaction rules
evaluated, the plans built and stored with their decisions audited), and, in the same round, the
floor: the bare evaluation of the same enrollments' rules (``PathwayEvaluator.evaluate_many`` per pathway, the facts already in
memory), measured once before and once after the plans (their mean counts: this machine's speed
drifts). Prints per round the figures and ratio, and as its last line ``ratio R``, the median of
the rounds' ratios (plan time / floor). The machine's load (``uptime``) is printed before and after.
Usage: python bench/plan.py [--patients 10000] [--multimorbid 0.333] [--rounds 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

WORK = Path(tempfile.mkdtemp(prefix="pathways-bench-plan-"))
os.environ["PATHWAYS_DATABASE_URL"] = f"sqlite:///{WORK / 'store.db'}"
os.environ.pop("PATHWAYS_ROLE", None)
os.environ.pop("PATHWAYS_PLAN_WINDOW_DAYS", None)
os.environ["DO_NOT_TRACK"] = "1"

from pathways.clock import FixedClock  # noqa: E402
from pathways.facts.model import PatientFacts  # noqa: E402
from pathways.orchestration.careplan import interaction_rules, make_plans  # noqa: E402
from pathways.orchestration.service import Runtimes, enrollment_id, ensure_published, open_store  # noqa: E402
from pathways.runtime.core import enroll  # noqa: E402
from pathways.store.rows import state_json  # noqa: E402
from pathways.store.models import Enrollment, Patient  # noqa: E402
from rules import AT, synthetic  # noqa: E402

NAMES = ["diabetes", "copd", "heartfailure"]
BATCH = 500


def multimorbid(i: int, names: list[str], rnd: random.Random) -> PatientFacts:
    """One patient with the synthetic facts of each of ``names`` (the last value of a fact wins)."""
    parts = [synthetic(name, i, rnd) for name in names]
    return PatientFacts(patient=f"bench-mm-{i}", demographics=parts[0].demographics,
                        conditions=tuple(c for p in parts for c in p.conditions),
                        observations=tuple(o for p in parts for o in p.observations),
                        events=tuple(e for p in parts for e in p.events))


def load() -> str:
    """The machine's load averages (1, 5, 15 min), as ``uptime`` prints them, and its cores."""
    return f"load average {', '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--multimorbid", type=float, default=1 / 3, help="the share of patients in two or three pathways")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    clock = FixedClock(dt.datetime(AT.year, AT.month, AT.day, 12, tzinfo=dt.timezone.utc))
    store = open_store(clock)
    runtimes = Runtimes(templates=False)
    rnd = random.Random(11)
    start = time.perf_counter()
    for name in NAMES:
        ensure_published(store, runtimes.get(name))
    cohorts: dict[str, list[PatientFacts]] = {name: [] for name in NAMES}  # the floor's input: each pathway's patients
    enrollments = 0
    with store.transaction() as session:
        for i in range(args.patients):
            several = i < round(args.patients * args.multimorbid)
            names = sorted(rnd.sample(NAMES, rnd.choice([2, 3]) if several else 1))
            facts = multimorbid(i, names, rnd)
            session.add(Patient(id=facts.patient, created_at=clock.now()))
            session.flush()
            store._append(session, facts.patient, facts, "bench")
            for name in names:
                runtime = runtimes.get(name)
                eid = enrollment_id(runtime.loaded, facts.patient)
                state = enroll(runtime.loaded, eid, facts.patient, AT, runtime.evaluator)
                state, _, _ = runtime.advance(state, facts, clock)
                session.add(Enrollment(id=eid, patient_id=facts.patient, pathway=name, version=state.version,
                                       version_key=state.version_key, enrolled_on=AT, as_of=AT, state=state_json(state),
                                       state_version=0, updated_at=clock.now()))
                cohorts[name].append(facts)
                enrollments += 1
    patients = [f"bench-mm-{i}" for i in range(args.patients)]
    several = round(args.patients * args.multimorbid)
    print(f"set-up: {args.patients:,} patients, {several:,} of them in 2 or 3 pathways ({enrollments:,} enrollments) stored and advanced once "
          f"in {time.perf_counter() - start:.1f} s ({WORK})")
    evaluators = {name: runtimes.get(name).evaluator for name in NAMES}
    rules = interaction_rules()
    for name in NAMES:
        evaluators[name].evaluate_many(cohorts[name][:1], AT, AT)
    for key in {key for name in NAMES for _, key in store.published_versions(name)}:  # as in a long-running process
        runtimes.get_version(key, store)

    def floor(at: dt.date) -> float:
        gc.collect()
        began = time.perf_counter()
        for name in NAMES:
            for i in range(0, len(cohorts[name]), BATCH):
                evaluators[name].evaluate_many(cohorts[name][i:i + BATCH], at, at)
        return time.perf_counter() - began

    print(f"load before: {load()}")
    ratios = []
    for r in range(args.rounds):
        at = AT + dt.timedelta(days=7 * (r + 1))
        before = floor(at)
        gc.collect()
        began = time.perf_counter()
        appointments = conflicts = 0
        for plan, _ in make_plans(store, runtimes, patients, at, rules=rules).values():
            appointments += len(plan.appointments)
            conflicts += len(plan.conflicts)
        plans = time.perf_counter() - began
        after = floor(at)
        base = (before + after) / 2
        ratios.append(plans / base)
        print(f"round {r + 1} ({at}): {len(patients):,} plans in {plans:.2f} s ({appointments:,} appointments, {conflicts:,} conflicts); "
              f"floor {base:.2f} s (before {before:.2f}, after {after:.2f}); ratio {ratios[-1]:.2f}")
    print(f"load after: {load()}")
    print(f"ratio {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    try:
        main()
    finally:
        shutil.rmtree(WORK, ignore_errors=True)
