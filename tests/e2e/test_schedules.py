"""Schedules fire on a real Prefect server: `prefect server start` on a free local port (its
scheduler service on a 2 s loop), `pathways deploy` with a cron that fires every minute, a
`pathways worker`. The scheduler creates the daily `pathways-due` run, the worker runs it, it
schedules the next reviews, the worker runs those, and the store shows their decisions. Also:
`pathways advance` with PREFECT_API_URL schedules next reviews, `pathways deploy` on a server
without the pool, and `pathways serve` leaving the deployments it found as they were. Every
process started here is stopped at the end."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import sqlalchemy as sa

from conftest import ROOT
from pathways.store.connect import make_engine
from test_faults import populate
from test_scale_out import free_port, stop, through_goal_setting, wait_for

pytestmark = pytest.mark.slow  # a real Prefect server, a worker and `serve`

# The simulated "today" (PATHWAYS_TODAY) is 30 days before the real one: after goal setting the
# next due date comes two weeks later, a scheduled run already due on the real clock (the worker
# runs it at once); the one after it lies weeks ahead (the chain stops there).
DAY = dt.date.today() - dt.timedelta(days=30)
NEXT = DAY + dt.timedelta(days=14)
PYTHON = [sys.executable, "-m", "pathways.cli"]


def api(base: str, path: str, body: dict | None = None, method: str | None = None):
    request = urllib.request.Request(f"{base}{path}", data=None if body is None else json.dumps(body).encode(),
                                     method=method or ("POST" if body is not None else "GET"), headers={"Content-Type": "application/json"})
    for attempt in range(8):
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                text = response.read()
            return json.loads(text) if text else None
        except urllib.error.HTTPError as exc:  # 503: the server's SQLite was busy ("database is locked"), as Prefect's client retries
            if exc.code != 503 or attempt == 7:
                raise
            time.sleep(0.5 * 2 ** attempt)


def flow_runs(base: str) -> list[dict]:
    return api(base, "/flow_runs/filter", {"limit": 200, "sort": "EXPECTED_START_TIME_ASC"})


def deployment(base: str, name: str) -> dict:
    return api(base, f"/deployments/name/{name}")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A Prefect server (SQLite) with a short scheduler loop, its environment and its log."""
    home = tmp_path_factory.mktemp("schedules")
    port = free_port()
    base = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        "PREFECT_HOME": str(home / "prefect"),
        "PREFECT_API_URL": base,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PATHWAYS_DATABASE_URL": f"sqlite:///{home / 'store.db'}",
        "PATHWAYS_TODAY": DAY.isoformat(),
        "PATHWAYS_ROLE": "scheduler",
        "PATHWAYS_TOKEN_FILE": "",
        # Prefect's own settings: the scheduler looks every 2 s (default 60) and keeps at most
        # two runs of a schedule ahead; the worker asks for runs every 2 s (default 10)
        "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2",
        "PREFECT_SERVER_SERVICES_SCHEDULER_RECENT_DEPLOYMENTS_LOOP_SECONDS": "2",
        "PREFECT_SERVER_SERVICES_SCHEDULER_MAX_RUNS": "2",
        "PREFECT_SERVER_SERVICES_SCHEDULER_MIN_RUNS": "1",
        "PREFECT_WORKER_QUERY_SECONDS": "2",
    }
    for key in ("PATHWAYS_SCHEDULE_REVIEWS", "PREFECT_API_DATABASE_CONNECTION_URL"):
        env.pop(key, None)
    log = home / "server.log"
    process = subprocess.Popen([str(Path(sys.executable).with_name("prefect")), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                               env=env, cwd=home, stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(f"{base}/health", 180)
        yield {"env": env, "base": base, "home": home, "log": log}
    finally:
        stop(process)


def cli(env: dict, *args: str, timeout: int = 240) -> subprocess.CompletedProcess:
    return subprocess.run([*PYTHON, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_the_daily_schedule_fires_and_its_next_reviews_run_on_a_worker(server):
    env, base, home = server["env"], server["base"], server["home"]
    store_url = env["PATHWAYS_DATABASE_URL"]
    populate(store_url, 4, DAY)
    engine = make_engine(store_url)
    with engine.connect() as c:
        enrollments = [row[0] for row in c.execute(sa.text("select id from enrollment order by id"))]
    reviewed, fresh = enrollments[:3], enrollments[3]
    through_goal_setting(store_url, DAY, reviewed)  # the fourth one is left fresh: the daily run decides its intake
    done = cli({**env, "PATHWAYS_ROLE": "coordinator"}, "publish", "diabetes")
    assert done.returncode == 0, done.stderr[-2000:]

    # a server without the pool: created, and said so (no traceback)
    done = cli(env, "deploy", "--pool", "pathways-test", "--cron", "* * * * *")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "created work pool pathways-test (type process)" in done.stdout
    assert "deployment pathways-due/daily on work pool pathways-test" in done.stdout
    assert api(base, "/work_pools/pathways-test")["type"] == "process"
    again = cli(env, "deploy", "--pool", "pathways-test", "--cron", "* * * * *")  # once there, it is used as it is
    assert again.returncode == 0 and "created work pool" not in again.stdout, again.stderr[-2000:]
    assert deployment(base, "pathways-due/daily")["schedules"][0]["schedule"]["cron"] == "* * * * *"
    api(base, "/work_pools/", {"name": "pathways-docker", "type": "docker"})  # a pool `pathways worker` cannot serve: refused
    wrong = cli(env, "deploy", "--pool", "pathways-docker")
    assert wrong.returncode == 1 and wrong.stderr.startswith("error: work pool pathways-docker is of type docker"), wrong.stderr[-2000:]
    assert deployment(base, "pathways-due/daily")["work_pool_name"] == "pathways-test"  # nothing registered

    # a command advancing through the server schedules the next review on the batch deployment
    done = cli(env, "advance", reviewed[0], "--at", DAY.isoformat())
    assert done.returncode == 0, done.stderr[-3000:]
    # ... unless told not to (PATHWAYS_SCHEDULE_REVIEWS=0)
    done = cli({**env, "PATHWAYS_SCHEDULE_REVIEWS": "0"}, "advance", reviewed[1], "--at", DAY.isoformat())
    assert done.returncode == 0, done.stderr[-3000:]
    batch = deployment(base, "pathways-advance/batch")
    by_name = {r["name"]: r for r in flow_runs(base)}
    first = by_name.get(f"next-{reviewed[0]}-{NEXT.isoformat()}")
    assert first is not None and first["deployment_id"] == batch["id"] and first["state_type"] == "SCHEDULED", sorted(by_name)
    assert first["parameters"] == {"pathway": "diabetes", "enrollments": [reviewed[0]], "at": NEXT.isoformat()}
    assert f"next-{reviewed[1]}-{NEXT.isoformat()}" not in by_name

    # the worker: the scheduler's daily run (it advances those due on DAY, the review of
    # reviewed[1] is scheduled now), then the next reviews that it and the command scheduled
    # One run at a time: the daily runs here all advance to the frozen DAY while the reviews go to
    # NEXT; side by side, a daily run that listed an enrollment as due before a review run moved it
    # on would be refused ("cannot advance ... back in time"). On the real clock both are today.
    worker = subprocess.Popen([*PYTHON, "worker", "--pool", "pathways-test", "--limit", "1"], env=env, cwd=home,
                              stdout=open(home / "worker.log", "w"), stderr=subprocess.STDOUT, start_new_session=True)
    daily_id = deployment(base, "pathways-due/daily")["id"]
    wanted = {f"next-{e}-{NEXT.isoformat()}" for e in reviewed}
    try:
        deadline = time.monotonic() + 420
        while time.monotonic() < deadline:
            runs = flow_runs(base)
            daily_done = [r for r in runs if r["deployment_id"] == daily_id and r["auto_scheduled"] and r["state_type"] == "COMPLETED"]
            reviews_done = {r["name"] for r in runs if r["name"] in wanted and r["state_type"] == "COMPLETED"}
            failed = [(r["name"], r["state_name"]) for r in runs if r["state_type"] in ("FAILED", "CRASHED")]
            assert not failed, (failed, (home / "worker.log").read_text()[-4000:])
            # the scheduler service's failure on every loop with SQLAlchemy 2.1: no run would ever come
            assert "Can't evaluate bulk DML" not in server["log"].read_text(), server["log"].read_text()[-3000:]
            if daily_done and reviews_done == wanted:
                break
            time.sleep(3)
        else:
            pytest.fail(f"not done in time: daily {len(daily_done)}, reviews {sorted(reviews_done)}\n"
                        + (home / "worker.log").read_text()[-3000:] + server["log"].read_text()[-3000:])
    finally:
        stop(worker)
    assert "InvalidRequestError" not in server["log"].read_text()  # the scheduler service's failure with SQLAlchemy 2.1

    # the store: the daily run decided the fresh enrollment's intake on DAY, the review runs
    # decided on NEXT, each decision once, made by the worker's scheduler role inside those runs
    # (the audit names the pathway flow run each deployment run opened)
    pathway_runs = {r["id"]: r["name"] for r in runs if r["name"].startswith("diabetes-")}
    with engine.connect() as c:
        decisions = c.execute(sa.text("select enrollment_id, decided_on, kind, key from decision")).all()
        entries = c.execute(sa.text("select enrollment_id, payload, role from audit_entry where payload like '%prefect_task_run%'")).all()
    assert len({key for *_, key in decisions}) == len(decisions)
    assert (fresh, DAY.isoformat(), "due") in {(e, str(on), kind) for e, on, kind, _ in decisions}, decisions
    assert {e for e, on, *_ in decisions if str(on) == NEXT.isoformat()} == set(reviewed), decisions
    made_in = {}
    for enrollment, payload, role in entries:
        assert role == "scheduler"
        made_in.setdefault(enrollment, set()).add(pathway_runs.get(json.loads(payload)["context"]["prefect_flow_run"]))
    assert any(name and name.startswith(f"diabetes-{DAY.isoformat()}-n") for name in made_in[fresh]), made_in
    assert all(f"diabetes-{NEXT.isoformat()}-n1" in made_in[e] for e in reviewed), made_in


def test_a_deploy_without_a_server_is_a_clear_error(tmp_path):
    env = {**os.environ, "PREFECT_API_URL": f"http://127.0.0.1:{free_port()}/api", "PREFECT_HOME": str(tmp_path / "prefect"),
           "PREFECT_CLIENT_MAX_RETRIES": "0", "PATHWAYS_DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}",
           "PATHWAYS_ROLE": "", "PATHWAYS_TOKEN_FILE": "", "DO_NOT_TRACK": "1"}
    done = cli(env, "deploy", "--pool", "nowhere", timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert done.stderr.startswith(f"error: cannot reach the Prefect server at {env['PREFECT_API_URL']}"), done.stderr
    bad = cli(env, "deploy", "--cron", "every morning", timeout=120)
    assert bad.returncode == 2 and bad.stderr.startswith("error: --cron 'every morning' is not a cron expression"), bad.stderr


def test_review_scheduling_is_decided_in_one_place(monkeypatch):
    """Without a server nothing is asked of Prefect; 0 turns it off; a value it does not know is refused."""
    import prefect.client.orchestration as orchestration

    from pathways.errors import SettingError
    from pathways.orchestration import followup

    def no_client(*args, **kwargs):
        raise AssertionError("asked Prefect")

    monkeypatch.setattr(orchestration, "get_client", no_client)
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.delenv("PATHWAYS_SCHEDULE_REVIEWS", raising=False)
    assert followup.review_deployment() is None
    assert followup.schedule_reviews(["diabetes-0"]) == 0
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    monkeypatch.setenv("PATHWAYS_SCHEDULE_REVIEWS", "0")
    assert followup.review_deployment() is None
    monkeypatch.setenv("PATHWAYS_SCHEDULE_REVIEWS", "yes")
    with pytest.raises(SettingError, match="PATHWAYS_SCHEDULE_REVIEWS: 'yes' is not 1"):
        followup.review_deployment()
    monkeypatch.setenv("PATHWAYS_SCHEDULE_REVIEWS", "")
    with pytest.raises(AssertionError, match="asked Prefect"):  # a server: whether the deployment exists is asked
        followup.review_deployment()


def test_serve_leaves_the_deployments_it_found_as_they_were(server):
    env, base, home = server["env"], server["base"], server["home"]
    done = cli(env, "deploy", "--pool", "pathways-serve", "--cron", "30 5 * * *")
    assert done.returncode == 0, done.stderr[-3000:]
    daily = deployment(base, "pathways-due/daily")
    api(base, f"/deployments/{daily['id']}", {"paused": True}, method="PATCH")  # one paused, the other not
    before = {name: deployment(base, name) for name in ("pathways-due/daily", "pathways-advance/batch")}
    assert before["pathways-due/daily"]["paused"] and not before["pathways-advance/batch"]["paused"]

    serving = subprocess.Popen([*PYTHON, "serve", "--cron", "0 7 * * *"], env=env, cwd=home,
                               stdout=open(home / "serve.log", "w"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while [s["schedule"].get("cron") for s in deployment(base, "pathways-due/daily")["schedules"]] != ["0 7 * * *"]:  # serve's, applied
            assert time.monotonic() < deadline and serving.poll() is None, (home / "serve.log").read_text()[-3000:]
            time.sleep(1)
        time.sleep(2)
        serving.send_signal(signal.SIGTERM)  # as a service manager stops it
        serving.wait(timeout=60)
    finally:
        stop(serving)
    after = {name: deployment(base, name) for name in before}
    for name, was in before.items():
        now = after[name]
        assert now["paused"] == was["paused"], f"{name}: paused {now['paused']}, was {was['paused']}"
        for key in ("work_pool_name", "job_variables", "entrypoint", "path", "pull_steps"):
            assert now[key] == was[key], (name, key, now[key], was[key])
        assert [s["schedule"] for s in now["schedules"]] == [s["schedule"] for s in was["schedules"]], name
    assert after["pathways-due/daily"]["schedules"][0]["schedule"]["cron"] == "30 5 * * *"

    # deployments serve created itself it pauses when it stops, as Prefect's serve does: nobody serves them any more
    for was in before.values():
        api(base, f"/deployments/{was['id']}", method="DELETE")
    serving = subprocess.Popen([*PYTHON, "serve", "--cron", "0 8 * * *"], env=env, cwd=home,
                               stdout=open(home / "serve2.log", "w"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if [s["schedule"].get("cron") for s in deployment(base, "pathways-due/daily")["schedules"]] == ["0 8 * * *"]:
                    break
            except urllib.error.HTTPError:  # not there yet
                pass
            assert time.monotonic() < deadline and serving.poll() is None, (home / "serve2.log").read_text()[-3000:]
            time.sleep(1)
        time.sleep(2)
        serving.send_signal(signal.SIGTERM)
        serving.wait(timeout=60)
    finally:
        stop(serving)
    created = {name: deployment(base, name) for name in before}
    assert all(d["paused"] and d["id"] not in {w["id"] for w in before.values()} for d in created.values()), created
