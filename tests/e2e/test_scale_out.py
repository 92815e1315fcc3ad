"""Scale-out on Prefect's own machinery: a real Prefect server on a free local port, a process
work pool, the deployments, a `pathways worker`; a cohort runs through the worker and is checked
in the store and through Prefect's API. Server and worker are stopped at the end."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import sqlalchemy as sa

from conftest import ROOT, SERVER, _pg_database
from pathways.definition.loader import load_pathway
from pathways.store.connect import make_engine
from test_faults import populate

pytestmark = pytest.mark.slow  # a real Prefect server and a worker

# The simulated "today" lies years ahead of the real clock: next due dates then become scheduled
# runs in Prefect's future, which the running worker must leave alone until their time.
AT = __import__("datetime").date(2031, 3, 3)
# the worker's run: two weeks on, when the steps after the intake come due (the set-up decided everything due on AT)
NEXT = AT + __import__("datetime").timedelta(days=14)


def through_goal_setting(store_url: str, at=None, only: list[str] | None = None) -> None:
    """Bring every enrollment (or ``only`` these) through intake and goal setting on ``at``
    (default AT), as the POH would record them, so that the cohort run finds reviews with a date
    to schedule."""
    import datetime as dt

    from pathways.clock import FixedClock
    from pathways.orchestration.service import Runtimes, advance_one
    from pathways.store.connect import make_engine
    from pathways.store.db import Store

    at = at or AT
    clock = FixedClock(dt.datetime(at.year, at.month, at.day, 12, tzinfo=dt.timezone.utc))
    store = Store(make_engine(store_url), clock.now)
    runtimes = Runtimes()
    with store.engine.connect() as c:
        enrollments = only or [row[0] for row in c.execute(sa.text("select id from enrollment"))]
    for enrollment in enrollments:
        for _ in range(6):
            advance_one(store, runtimes, enrollment, clock)
            state, version = store.load(enrollment)
            runtime = runtimes.get(state.pathway)
            facts = store.patient_facts(state.patient)
            for step in [s for s, p in state.steps.items() if p.status == "due"]:
                state, events, observations = runtime.record(state, step, {}, facts, clock, require_all=False)
                version = store.apply(state, version, events, observations)
    store.engine.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(url)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(params=["sqlite", "postgresql"])
def databases(request, tmp_path):
    """(Prefect server database URL or None for its SQLite default, store URL): all on SQLite
    files, or, as docs/deploy.md sets it up for several machines, a Prefect server on PostgreSQL
    and a shared PostgreSQL store (fresh databases, dropped at the end)."""
    if request.param == "sqlite":
        yield None, f"sqlite:///{tmp_path / 'store.db'}"
        return
    if not SERVER:
        pytest.skip("PATHWAYS_TEST_DATABASE_URL is not set (CI sets it)")
    prefect_url, drop_prefect = _pg_database()
    store_url, drop_store = _pg_database()
    try:
        yield prefect_url.replace("postgresql+psycopg://", "postgresql+asyncpg://"), store_url
    finally:
        drop_prefect()
        drop_store()


def test_a_cohort_runs_through_a_prefect_server_and_a_worker(tmp_path, databases):
    port = free_port()
    prefect_database, store_url = databases
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PATHWAYS_DATABASE_URL": store_url,
        "PATHWAYS_TODAY": AT.isoformat(),
        "PATHWAYS_ROLE": "scheduler",  # workers run as schedulers; a coordinator published the pathway
        "PATHWAYS_TOKEN_FILE": "",
    }
    if prefect_database:
        env["PREFECT_API_DATABASE_CONNECTION_URL"] = prefect_database
    prefect = str(Path(sys.executable).with_name("prefect"))
    logs = tmp_path / "logs"
    logs.mkdir()
    server = subprocess.Popen([prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port)], env=env, cwd=tmp_path,
                              stdout=open(logs / "server.log", "w"), stderr=subprocess.STDOUT, start_new_session=True)
    worker = None
    try:
        wait_for(f"http://127.0.0.1:{port}/api/health", 180)
        subprocess.run([prefect, "work-pool", "create", "pathways", "--type", "process"], env=env, check=True, capture_output=True, timeout=120)
        populate(store_url, 30, AT)
        through_goal_setting(store_url)
        done = subprocess.run([sys.executable, "-m", "pathways.cli", "publish", "diabetes"], env={**env, "PATHWAYS_ROLE": "coordinator"},
                              cwd=ROOT, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0 and done.stdout.startswith("published: diabetes@"), done.stderr[-2000:]
        done = subprocess.run([sys.executable, "-m", "pathways.cli", "deploy", "--pool", "pathways"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "deployment pathways-advance/batch on work pool pathways" in done.stdout
        worker = subprocess.Popen([sys.executable, "-m", "pathways.cli", "worker", "--pool", "pathways"], env=env, cwd=tmp_path,
                                  stdout=open(logs / "worker.log", "w"), stderr=subprocess.STDOUT, start_new_session=True)
        engine = make_engine(store_url)
        with engine.connect() as c:
            enrollments = [row[0] for row in c.execute(sa.text("select id from enrollment order by id"))]
        trigger = (
            "import json, sys\n"
            "from prefect.deployments import run_deployment\n"
            f"run = run_deployment('pathways-advance/batch', parameters={{'pathway': 'diabetes', 'enrollments': {enrollments!r}, 'at': '{NEXT.isoformat()}'}}, timeout=600)\n"
            "print(json.dumps({'state': run.state.type.value, 'id': str(run.id)}))\n"
        )
        done = subprocess.run([sys.executable, "-c", trigger], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=700)
        assert done.returncode == 0, done.stderr[-3000:] + (logs / "worker.log").read_text()[-3000:]
        result = json.loads(done.stdout.strip().splitlines()[-1])
        assert result["state"] == "COMPLETED", (logs / "worker.log").read_text()[-3000:]

        # the store: every enrollment advanced, each decision once
        with engine.connect() as c:
            advanced = c.execute(sa.text("select count(distinct enrollment_id), count(*), count(distinct key) from decision")).one()
        assert advanced[0] == 30 and advanced[1] == advanced[2]
        # the audit trail: intact, every decision once, made by the worker's scheduler role inside Prefect runs
        done = subprocess.run([sys.executable, "-m", "pathways.cli", "audit", "verify", "--json"], env={**env, "PATHWAYS_ROLE": "auditor"},
                              cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0 and json.loads(done.stdout)["intact"], done.stdout + done.stderr[-2000:]
        with engine.connect() as c:
            audited = c.execute(sa.text("select count(distinct subject) from audit_entry where action like 'step.%' or action like 'escalation.%' "
                                        "or action like 'goal.%' or action like 'indication.%'")).scalar()
            worker_entries = c.execute(sa.text("select role from audit_entry where payload like '%prefect_task_run%'")).scalars().all()
        assert audited == advanced[1]  # one audit entry per decision row
        assert worker_entries and set(worker_entries) == {"scheduler"}  # the worker acted as a scheduler, inside Prefect runs

        # Prefect's API: the pathway flow ran as a subflow, and next reviews are scheduled runs
        diabetes_steps = load_pathway("diabetes").spec.steps
        query = (
            "import asyncio, json\n"
            "from prefect.client.orchestration import get_client\n"
            "async def main():\n"
            "    async with get_client() as client:\n"
            "        runs = await client.read_flow_runs(limit=200)\n"
            "        flows = {f.id: f.name for f in await client.read_flows(limit=50)}\n"
            "        print(json.dumps([[flows.get(r.flow_id), r.name, r.state.type.value] for r in runs]))\n"
            "        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId\n"
            "        from prefect.client.schemas.sorting import TaskRunSort\n"
            "        pathway_runs = [r.id for r in runs if flows.get(r.flow_id) == 'pathway-diabetes']\n"
            "        for _ in range(60):  # the server's task-run recorder writes them from the event stream\n"
            "            tasks = await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=pathway_runs)),\n"
            "                                                sort=TaskRunSort.EXPECTED_START_TIME_ASC, limit=200)\n"
            f"            if len([t for t in tasks if not t.name.startswith('advance-batch')]) >= {len(diabetes_steps)}:\n"
            "                break\n"
            "            await asyncio.sleep(0.5)\n"
            "        print(json.dumps([[t.name, t.state.type.value, t.state.name, t.state.message] for t in tasks]))\n"
            "asyncio.run(main())\n"
        )
        done = subprocess.run([sys.executable, "-c", query], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        runs = json.loads(done.stdout.strip().splitlines()[-2])
        assert ["pathway-diabetes", f"diabetes-{NEXT.isoformat()}-n30", "COMPLETED"] in runs
        # its tasks through the API: the batch, then one per step in stage order, each with its state and counts
        tasks = json.loads(done.stdout.strip().splitlines()[-1])
        steps = [t for t in tasks if not t[0].startswith("advance-batch")]
        assert [name.rsplit("-", 1)[0] for name, *_ in steps] == [f"{s.stage}:{s.id}" for s in diabetes_steps], tasks
        assert any(name.startswith("advance-batch") for name, *_ in tasks)
        assert all(kind == "COMPLETED" and state in {"Escalated", "Due", "Gated", "Waiting"} for _, kind, state, _ in steps), steps
        assert all(sum(int(part.split()[0]) for part in message.split(";")[0].split(", ")) == 30 for *_, message in steps), steps
        scheduled = sorted(r[1] for r in runs if r[0] == "pathways-advance" and r[2] == "SCHEDULED")
        from pathways.runtime.stateformat import load_state

        expected = []
        with engine.connect() as c:
            for eid, text in c.execute(sa.text("select id, state from enrollment order by id")):
                state = load_state(text)
                dates = [p.due_on for p in state.steps.values() if p.status == "waiting" and p.due_on and p.due_on > state.as_of]
                if dates:
                    expected.append(f"next-{eid}-{min(dates).isoformat()}")
        # on NEXT the steps after the intake are due and what follows them has no date yet: nothing to schedule
        # (test_schedules.py has next-review runs scheduled and run through a real server and a worker)
        assert scheduled == sorted(expected)
    finally:
        if worker is not None:
            stop(worker)
        stop(server)
