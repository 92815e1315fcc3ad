"""The web application's speed on a store of 10,000 enrollments (issue 27, item 7).

Set-up, not timed: synthetic enrollments over the three pathways (bench/rules.py's patients,
as bench/migrate.py stores them: patient, facts and enrollment rows in one transaction), then
each advanced once on the day they were enrolled through the store's bulk write
(``Store.apply_many``, as a `pathways run` batch writes): step runs, decisions and their audit
entries. One account per role. The application (``create_app``) runs in this process under
Starlette's TestClient, entered as a context so that its lifespan starts the embedded Prefect
server and keeps it warm, as `pathways web` does.

Timed, ``--requests`` times each (default 40), warm (each page requested once before):
- the worklist page: the first page, filtered by discipline (huisarts) and pathway (diabetes);
- an enrollment page; an auditor's decision page ("why was this patient referred");
- record-and-advance of one step: the intake form of a different diabetes enrollment each time
  posted (validated, stored, advanced in its transaction), then its flow run through Prefect.
Median and p95 of each; and the floor of the worklist page, the bare store query of the same rows
(``store.worklist.due_steps`` with the same filter, the page's steps per version given), measured
in the same run, interleaved with the page. Last line ``ratio R`` = worklist page p95 / bare
query p95. Targets: R <= 3; record-and-advance p95 under 1 s.
Usage: python bench/web.py [--enrollments 10000] [--requests 40]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

WORK = Path(tempfile.mkdtemp(prefix="pathways-bench-web-"))
os.environ["PATHWAYS_DATABASE_URL"] = f"sqlite:///{WORK / 'store.db'}"  # the flow runs open it too
os.environ["PREFECT_HOME"] = str(WORK / "prefect")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.pop("PREFECT_API_URL", None)
os.environ.pop("PATHWAYS_ROLE", None)
os.environ["DO_NOT_TRACK"] = "1"

from fastapi.testclient import TestClient  # noqa: E402

from pathways.clock import FixedClock  # noqa: E402
from pathways.orchestration.accounts import add_user  # noqa: E402
from pathways.orchestration.service import Runtimes, enrollment_id, ensure_published, open_store  # noqa: E402
from pathways.runtime.core import enroll  # noqa: E402
from pathways.store import worklist as queries  # noqa: E402
from pathways.store.rows import state_json  # noqa: E402
from pathways.store.models import Enrollment, Patient  # noqa: E402
from pathways.web import WebSettings, create_app  # noqa: E402
from rules import AT, synthetic  # noqa: E402

NAMES = ["diabetes", "copd", "heartfailure"]
BATCH = 500
PASSWORD = "bench-password-1"
INTAKE = "intake_huisarts"  # the first step of a diabetes enrollment: the huisarts's intake


def stored_cohort(total: int) -> list[str]:
    """The cohort stored and advanced once; returns the diabetes enrollments whose intake is due."""
    clock = FixedClock(dt.datetime(AT.year, AT.month, AT.day, 12, tzinfo=dt.timezone.utc))
    store = open_store(clock)
    runtimes = Runtimes(templates=False)
    rnd = random.Random(7)
    per = total // len(NAMES)
    for name in NAMES:
        ensure_published(store, runtimes.get(name))
    enrolled: list[tuple[str, object, object]] = []
    with store.transaction() as session:
        for name in NAMES:
            runtime = runtimes.get(name)
            for i in range(per):
                facts = synthetic(name, i, rnd)
                eid = enrollment_id(runtime.loaded, facts.patient)
                state = enroll(runtime.loaded, eid, facts.patient, AT, runtime.evaluator)
                session.add(Patient(id=facts.patient, created_at=clock.now()))
                session.flush()
                store._append(session, facts.patient, facts, "bench")
                session.add(Enrollment(id=eid, patient_id=facts.patient, pathway=name, version=state.version, version_key=state.version_key,
                                       enrolled_on=AT, as_of=AT, state=state_json(state), state_version=0, updated_at=clock.now()))
                enrolled.append((name, state, facts))
    intake_due = []
    for start in range(0, len(enrolled), BATCH):  # as a run's batches write: step runs, decisions, audit entries
        writes = []
        for name, state, facts in enrolled[start:start + BATCH]:
            new, events, _ = runtimes.get(name).advance(state, facts, clock)
            writes.append((new, 0, events))
            if name == "diabetes" and new.steps.get(INTAKE) and new.steps[INTAKE].status == "due":
                intake_due.append(new.enrollment)
        store.apply_many(writes)
    for user, role in (("poh-bench", "scheduler"), ("audit-bench", "auditor")):
        add_user(store, user, role, PASSWORD)
    return intake_due


def log_in(client: TestClient, user: str) -> None:
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text).group(1)
    done = client.post("/login", data={"name": user, "password": PASSWORD, "csrf": token, "next": "/worklist"}, follow_redirects=False)
    assert done.status_code == 303, done.text[:500]


def timed(function) -> float:
    began = time.perf_counter()
    function()
    return time.perf_counter() - began


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[-1] if len(values) > 1 else values[0]


def line(what: str, values: list[float]) -> str:
    return f"{what}: median {statistics.median(values) * 1000:.0f} ms, p95 {p95(values) * 1000:.0f} ms ({len(values)} requests)"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--enrollments", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=40)
    args = parser.parse_args()
    began = time.perf_counter()
    intake_due = stored_cohort(args.enrollments)
    print(f"set-up: {args.enrollments // 3 * 3:,} enrollments stored and advanced once, {len(intake_due)} diabetes intakes due, "
          f"in {time.perf_counter() - began:.1f} s ({WORK})", flush=True)
    assert len(intake_due) > args.requests, "too few diabetes intakes due for the record-and-advance timing"
    url = os.environ["PATHWAYS_DATABASE_URL"]
    app = create_app(WebSettings(database_url=url, secret_key="b" * 40, clock=FixedClock.on(AT)))
    started = time.perf_counter()
    with TestClient(app) as poh, TestClient(app) as auditor:  # the first one's lifespan starts Prefect, warm from here on
        print(f"application and embedded Prefect server started in {time.perf_counter() - started:.1f} s", flush=True)
        log_in(poh, "poh-bench")
        log_in(auditor, "audit-bench")
        worklist = "/worklist?discipline=huisarts&pathway=diabetes"
        first = poh.get(worklist)
        assert first.status_code == 200, first.text[:500]
        # the bare query of the same rows: the huisarts's steps per version, as the page computes them (once: not the query)
        store = open_store(FixedClock.on(AT))
        runtimes = app.state.runtimes
        versions = {key: runtimes.get_version(key, store) for key in queries.version_keys(store)}
        steps = {key: {s.id for s in r.spec.steps if s.discipline == "huisarts"} for key, r in versions.items()}
        bare_rows = queries.due_steps(store, pathway="diabetes", steps=steps, limit=25)
        assert bare_rows.total > 0
        enrollment = intake_due[-1]
        page = f"/enrollments/{enrollment}"
        assert poh.get(page).status_code == 200
        timeline = auditor.get(f"/audit/enrollments/{enrollment}").text
        key = re.search(r'href="/audit/decisions/([^"]+)">why</a>', timeline).group(1)
        decision = f"/audit/decisions/{key}"
        assert auditor.get(decision).status_code == 200

        pages: list[float] = []
        bare: list[float] = []
        for _ in range(args.requests):  # interleaved: the same machine's speed for both
            pages.append(timed(lambda: poh.get(worklist).raise_for_status()))
            bare.append(timed(lambda: queries.due_steps(store, pathway="diabetes", steps=steps, limit=25)))
        enrollment_pages = [timed(lambda: poh.get(page).raise_for_status()) for _ in range(args.requests)]
        decisions = [timed(lambda: auditor.get(decision).raise_for_status()) for _ in range(args.requests)]

        records: list[float] = []
        pending = 0
        for eid in intake_due[:args.requests + 1]:
            path = f"/enrollments/{eid}/steps/{INTAKE}/record"
            token = re.search(r'name="csrf" value="([^"]+)"', poh.get(path).text).group(1)
            data = {"csrf": token, "out.fasting_glucose_mmol_l": "8.1", "out.dm2_diagnosis": "true"}
            answer = None

            def post():
                nonlocal answer
                answer = poh.post(path, data=data, follow_redirects=False)
            took = timed(post)
            assert answer.status_code == 303, answer.text[:800]
            pending += "advance=pending" in answer.headers["location"]
            records.append(took)
        records = records[1:]  # the first loads the pathway's flow once per process, as the first record after start-up does
    print(line("worklist page (first page, huisarts, diabetes)", pages))
    print(line("bare store query of the same rows", bare) + f"; {bare_rows.total} rows match")
    print(line("enrollment page", enrollment_pages))
    print(line("decision page (auditor)", decisions))
    print(line("record-and-advance (form posted, stored, advanced through Prefect)", records)
          + (f"; {pending} advance(s) pending: Prefect failed" if pending else ""))
    print(f"ratio {p95(pages) / p95(bare):.2f}")


if __name__ == "__main__":
    try:
        main()
    finally:
        shutil.rmtree(WORK, ignore_errors=True)
