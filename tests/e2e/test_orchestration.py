"""Enrol, advance (through Prefect's embedded server), status, record and cohort runs, as a
scheduler uses them; and no patient data in Prefect's own database."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import uuid

import pytest

from conftest import FIXTURES, run_cli

PATIENT = {
    "patient": "pt-orch-1",
    "demographics": {"birth_date": "1947-08-19", "sex": "female"},
    "conditions": [{"fact": "hf_diagnosis", "onset": "2020-01-01"}],
    "observations": [{"fact": "potassium_mmol_l", "value": 5.87, "unit": "mmol/L", "at": "2026-01-02"}],
}


def environment(tmp_path, today="2026-01-05"):
    return {
        "PATHWAYS_DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}",
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PATHWAYS_TODAY": today,
    }


def enroll_patient(tmp_path, env):
    """PATIENT enrolled in heartfailure with the real command: its facts file, the command's answer, the enrollment id."""
    facts = tmp_path / "patient.json"
    facts.write_text(json.dumps(PATIENT), encoding="utf-8")
    done = run_cli("enroll", "pt-orch-1", "--pathway", "heartfailure", "--facts", str(facts), env=env)
    assert done.returncode == 0, done.stderr
    return facts, done, done.stdout.split()[1]


@pytest.mark.slow
def test_enroll_advance_status_record(tmp_path):
    env = environment(tmp_path)
    facts, done, enrollment = enroll_patient(tmp_path, env)
    assert done.stdout.strip() == f"enrolled: {enrollment} (patient pt-orch-1, heartfailure); facts: 3 added, 0 already known"
    again = run_cli("enroll", "pt-orch-1", "--pathway", "heartfailure", "--facts", str(facts), env=env)
    assert again.stdout.strip() == f"already enrolled: {enrollment} (patient pt-orch-1, heartfailure); facts: 0 added, 3 already known"

    done = run_cli("advance", enrollment, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == f"heartfailure: advanced 1 enrollment(s) on 2026-01-05: 1 due, 1 escalated, 1 gated, 1 indicated"
    # advancing again the same day decides nothing new
    done = run_cli("advance", enrollment, env=env)
    assert done.stdout.strip() == "heartfailure: advanced 1 enrollment(s) on 2026-01-05: no new decisions"

    status = run_cli("status", enrollment, env=env)
    assert status.returncode == 0
    assert "open escalation hyperkaliemie: spoed, spoedconsult since 2026-01-05" in status.stdout
    assert "intake_poh" in status.stdout and "due" in status.stdout

    bad = tmp_path / "bad.json"
    bad.write_text('{"body_weight_kg": "heavy", "shoe_size": 42}', encoding="utf-8")
    done = run_cli("record", enrollment, "intake_poh", "--data", str(bad), env=env)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"error: {bad}: 'shoe_size' is not an output of step 'intake_poh' (outputs: body_weight_kg, nyha_class, systolic_bp_mmhg)",
        f"error: {bad}: required output 'nyha_class' of step 'intake_poh' is missing",
        f"error: {bad}: required output 'systolic_bp_mmhg' of step 'intake_poh' is missing",
        f"error: {bad}: body_weight_kg: expected a number, got 'heavy'",
    ]
    good = tmp_path / "good.json"
    good.write_text('{"body_weight_kg": 81, "nyha_class": 2, "systolic_bp_mmhg": 130}', encoding="utf-8")
    done = run_cli("record", enrollment, "intake_poh", "--data", str(good), env=env)
    assert done.returncode == 0 and done.stdout.strip().splitlines() == [
        f"recorded intake_poh for {enrollment}: done intake_poh",
        "then: due laboratorium_voor_start, due medicatiebeoordeling, due zelfredzaamheid_thuis"]  # what it unblocks, at once

    # nothing about the patient but the pseudonymous ids reaches Prefect's database
    database = next((tmp_path / "prefect").rglob("*.db"))
    dump = "\n".join(sqlite3.connect(database).iterdump())
    assert enrollment in dump
    for secret in ("1947-08-19", "pt-orch-1", "potassium"):
        assert secret not in dump, secret
    # the value as a number on its own (timestamps such as 13:30:55.878982 hold these digits too)
    assert not re.search(r"(?<![\d:.])5\.87(?!\d)", dump)


@pytest.mark.slow
def test_cohort_run_continues_past_a_broken_file_and_says_so(tmp_path):
    cohort = tmp_path / "cohort"
    cohort.mkdir()
    shutil.copy(FIXTURES / "fhir" / "synthea" / "dm_casimira.json.gz", cohort / "a.json.gz")
    (cohort / "b.json").write_text(json.dumps({**PATIENT, "patient": "pt-orch-2", "conditions": [{"fact": "dm2_diagnosis", "onset": "2019-01-01"}]}), encoding="utf-8")
    (cohort / "c.json").write_text('{"patient": "pt-orch-3", "observations": [', encoding="utf-8")
    # read, but a value the pathway cannot use: not enrolled (it would silently count as missing)
    unusable = {"fact": "hba1c_mmol_mol", "value": "high", "at": "2019-06-01"}
    (cohort / "d.json").write_text(json.dumps({**PATIENT, "patient": "pt-orch-4", "observations": [unusable]}), encoding="utf-8")
    done = run_cli("run", "diabetes", "--cohort", str(cohort), "--at", "2020-07-10", env=environment(tmp_path, "2026-11-23"))
    assert done.returncode == 1
    assert re.search(r"enrolled and advanced +│ +2 │", done.stdout)
    assert re.search(r"failed \(not enrolled\) +│ +2 │", done.stdout)
    # of the four files one could not be read; of the three patients read one was refused
    assert re.search(r"could not be read +│ +1 │", done.stdout) and re.search(r"patients read +│ +3 │", done.stdout)
    assert re.search(r"refused \(unusable values\) +│ +1 │", done.stdout)
    assert f"error: c.json: {cohort / 'c.json'}:1:43: malformed JSON" in done.stderr
    assert "error: d.json: observations[0]: hba1c_mmol_mol: expected a number, got 'high'; not enrolled" in done.stderr
    store = sqlite3.connect(tmp_path / "store.db")
    assert store.execute("select count(*) from patient where id = 'pt-orch-4'").fetchone() == (0,)  # nothing of it stored
    assert store.execute("select count(*) from enrollment").fetchone() == (2,)


def test_enrolling_a_file_with_a_value_the_pathway_cannot_use_stores_nothing(tmp_path):
    """`pathways enroll` refuses the values `pathways evaluate` refuses as unusable: a value of the
    wrong kind, an unknown unit; the file and the field are named, nothing is stored."""
    facts = tmp_path / "pt-orch-5.json"
    observations = [{"fact": "hba1c_mmol_mol", "value": "high", "at": "2025-12-01"},
                     {"fact": "hba1c_mmol_mol", "value": 61, "unit": "furlongs", "at": "2025-12-02"}]
    facts.write_text(json.dumps({**PATIENT, "patient": "pt-orch-5", "observations": observations}), encoding="utf-8")
    env = environment(tmp_path)
    done = run_cli("enroll", "pt-orch-5", "--pathway", "diabetes", "--facts", str(facts), env=env)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[0] == f"error: {facts}: observations[0]: hba1c_mmol_mol: expected a number, got 'high'", lines
    assert lines[1].startswith(f"error: {facts}: observations[1]: ") and "furlongs" in lines[1], lines
    assert lines[2] == "error: 2 problems in the patient file; nothing stored, not enrolled", lines
    evaluated = run_cli("evaluate", "diabetes", "--facts", str(facts), env=env)  # the same problems, the same words
    assert evaluated.returncode == 1 and lines[0] in evaluated.stderr and lines[1] in evaluated.stderr
    store = sqlite3.connect(tmp_path / "store.db")
    assert store.execute("select count(*) from patient").fetchone() == (0,)
    assert store.execute("select count(*) from fact").fetchone() == (0,)
    assert store.execute("select count(*) from enrollment").fetchone() == (0,)
    # mended, the same file enrols
    facts.write_text(json.dumps({**PATIENT, "patient": "pt-orch-5", "observations": [{**observations[0], "value": 61, "unit": "mmol/mol"}]}), encoding="utf-8")
    done = run_cli("enroll", "pt-orch-5", "--pathway", "diabetes", "--facts", str(facts), env=env)
    assert done.returncode == 0 and done.stdout.startswith("enrolled: diabetes-"), done.stderr


@pytest.mark.slow
def test_advancing_back_in_time_is_a_clear_error_before_anything_runs(tmp_path):
    """An enrollment advanced (or enrolled) on a day cannot be advanced to an earlier one: a clear
    error naming the date to give, no Prefect run, nothing written; a due run for an earlier day
    leaves it out instead of failing its batch."""
    facts = tmp_path / "pt-orch-7.json"
    facts.write_text(json.dumps({**PATIENT, "patient": "pt-orch-7"}), encoding="utf-8")
    env = environment(tmp_path)  # today 2026-01-05
    done = run_cli("enroll", "pt-orch-7", "--pathway", "heartfailure", "--facts", str(facts), env=env)
    assert done.returncode == 0, done.stderr
    enrollment = done.stdout.split()[1]
    store = sqlite3.connect(tmp_path / "store.db")
    before = store.execute("select state, state_version from enrollment").fetchall()
    done = run_cli("advance", enrollment, "--at", "2026-01-01", env=env)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip() == (f"error: {enrollment} was advanced to 2026-01-05 already: it cannot go back to 2026-01-01 "
                                   "(give --at 2026-01-05 or later; nothing was run)"), done.stderr
    assert not (tmp_path / "prefect").exists()  # no Prefect server was started
    done = run_cli("advance", "--due", "--at", "2026-01-01", env=env)
    assert done.returncode == 0 and done.stdout.strip() == "nothing due on 2026-01-01", (done.stdout, done.stderr)
    assert store.execute("select state, state_version from enrollment").fetchall() == before
    assert store.execute("select count(*) from decision").fetchone() == (0,)


@pytest.mark.slow
def test_unknown_enrollment_and_pathway_are_clear_errors(tmp_path):
    env = environment(tmp_path)
    for args, expected in [
        (["advance", "nope-123"], "error: unknown enrollment 'nope-123'"),
        (["status", "nope-123"], "error: unknown enrollment 'nope-123'"),
        (["enroll", "pt-9", "--pathway", "diabetis", "--facts", "x.json"], "diabetis: PW007 unknown pathway 'diabetis' (did you mean 'diabetes'?)"),
        (["enroll", "Jan de Vries", "--pathway", "diabetes", "--facts", "x.json"], "error: 'Jan de Vries' is not a pseudonymous id"),
    ]:
        done = run_cli(*args, env=env)
        assert done.returncode == 1, args
        assert expected in done.stderr and "Traceback" not in done.stderr, (args, done.stderr)


DUE_RUN = r'''
import json
from prefect.client.orchestration import get_client
from pathways.orchestration import prefect_edge
from pathways.orchestration.flows import advance_due

prefect_edge.configure()  # the entry point's part: before the flow (and its embedded server) starts
state = advance_due(at="2026-01-12", return_state=True)
due = state.state_details.flow_run_id
with get_client(sync_client=True) as client:
    children = []
    for run in client.read_flow_runs():
        if run.parent_task_run_id and client.read_task_run(run.parent_task_run_id).flow_run_id == due:
            children.append({"flow": client.read_flow(run.flow_id).name, "state": run.state.name,
                             "start": run.start_time.timestamp(), "end": run.end_time.timestamp()})
print(json.dumps({"result": state.result(), "children": children}))
'''


@pytest.mark.slow
def test_due_runs_advance_every_pathway(tmp_path):
    """`pathways advance --due` and the daily `pathways-due` flow: one flow run per pathway, submitted
    together (one pathway's batches keep the workers busy while Prefect records another's)."""
    import subprocess
    import sys

    env = environment(tmp_path)
    for patient, pathway, condition in [("pt-due-1", "heartfailure", "hf_diagnosis"), ("pt-due-2", "diabetes", "dm2_diagnosis"),
                                        ("pt-due-3", "copd", "copd_diagnosis")]:
        facts = tmp_path / f"{patient}.json"
        facts.write_text(json.dumps({**PATIENT, "patient": patient, "conditions": [{"fact": condition, "onset": "2020-01-01"}]}), encoding="utf-8")
        assert run_cli("enroll", patient, "--pathway", pathway, "--facts", str(facts), env=env).returncode == 0
    done = run_cli("advance", "--due", env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["copd", "diabetes", "heartfailure"]
    assert all("advanced 1 enrollment(s) on 2026-01-05: " in line and "indicated" in line for line in lines), lines

    # a week later, the daily run: each pathway's flow run is one of its subflows
    import os

    done = subprocess.run([sys.executable, "-c", DUE_RUN], env={**os.environ, **env}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    children = report["children"]
    assert sorted(c["flow"] for c in children) == ["pathway-copd", "pathway-diabetes", "pathway-heartfailure"]
    assert all(c["state"] == "Completed" for c in children)
    assert set(report["result"]) <= {"due", "gated", "skipped", "escalated", "goal_met", "goal_missed", "indicated", "not_indicated"}


@pytest.mark.slow
def test_escalations_open_their_subflow_and_every_step_is_a_task(tmp_path):
    """Batches side by side (two workers, one enrollment per batch): the first escalation opens the
    pathway's escalation subflow while later batches still run; it lists every escalation of the
    run, its parameters carry the run's id only, and every task run is recorded as finished in
    Prefect's own database once the command has exited."""
    env = {**environment(tmp_path), "PATHWAYS_BATCH_SIZE": "1", "PATHWAYS_WORKERS": "2"}
    enrollments = {}
    for patient, potassium in [("pt-esc-1", 5.87), ("pt-esc-2", 4.4), ("pt-esc-3", 6.1)]:
        facts = tmp_path / f"{patient}.json"
        observation = {"fact": "potassium_mmol_l", "value": potassium, "unit": "mmol/L", "at": "2026-01-02"}
        facts.write_text(json.dumps({**PATIENT, "patient": patient, "observations": [observation]}), encoding="utf-8")
        done = run_cli("enroll", patient, "--pathway", "heartfailure", "--facts", str(facts), env=env)
        assert done.returncode == 0, done.stderr
        enrollments[patient] = done.stdout.split()[1]
    done = run_cli("advance", "--due", env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 escalated" in done.stdout, done.stdout

    database = sqlite3.connect(next((tmp_path / "prefect").rglob("*.db")))
    runs = {name: (run_id, json.loads(parameters), state, parent) for run_id, name, parameters, state, parent in database.execute(
        "select flow_run.id, flow.name, flow_run.parameters, flow_run.state_type, flow_run.parent_task_run_id "
        "from flow_run join flow on flow.id = flow_run.flow_id")}
    assert set(runs) == {"pathway-heartfailure", "escalation-heartfailure"}
    pathway_run, _, state, _ = runs["pathway-heartfailure"]
    escalation_run, parameters, state_escalations, parent = runs["escalation-heartfailure"]
    assert state == state_escalations == "COMPLETED"
    assert parameters == {"pathway_run": str(uuid.UUID(pathway_run))}  # the run's id only: no enrollment ids, no patient data
    assert database.execute("select flow_run_id from task_run where id = ?", (parent,)).fetchone()[0] == pathway_run
    table = database.execute("select data from artifact where key = 'escalations-heartfailure'").fetchone()[0]
    assert f"| {enrollments['pt-esc-1']} | hyperkaliemie |" in table and f"| {enrollments['pt-esc-3']} | hyperkaliemie |" in table
    assert enrollments["pt-esc-2"] not in table
    assert "| hyperkaliemie | 2 |" in table and "more not listed" not in table  # counted per step; a small run lists all
    # what a large run's artifact points to for the rest: the audit trail lists exactly these
    listed = run_cli("audit", "log", "--action", "escalation.opened", "--pathway", "heartfailure", "--since", "2026-01-05",
                     "--json", "--fields", "enrollment_id,subject", env=env)
    assert listed.returncode == 0, listed.stderr
    assert sorted(e["enrollment_id"] for e in json.loads(listed.stdout)) == sorted([enrollments["pt-esc-1"], enrollments["pt-esc-3"]])
    # the run's decisions artifact (created beside its step tasks): attached to the run, counts only
    summary, artifact_run = database.execute("select data, flow_run_id from artifact where key = 'decisions-heartfailure'").fetchone()
    assert artifact_run == pathway_run
    assert "Advanced 3 enrollments of heartfailure" in summary and "| escalated | 2 |" in summary, summary
    assert not any(e in summary for e in enrollments.values()) and "pt-esc" not in summary

    tasks = database.execute("select name, state_type, state_name from task_run where flow_run_id = ? and id != ? order by expected_start_time",
                             (pathway_run, parent)).fetchall()
    assert all(state_type == "COMPLETED" for _, state_type, _ in tasks), tasks
    batches = [t for t in tasks if t[0].startswith("advance-batch")]
    steps = [t for t in tasks if not t[0].startswith("advance-batch")]
    assert len(batches) == 3
    from pathways.definition.loader import load_pathway

    spec = load_pathway("heartfailure").spec
    assert [name.rsplit("-", 1)[0] for name, _, _ in steps] == [f"{s.stage}:{s.id}" for s in spec.steps]
    assert dict((name.rsplit("-", 1)[0], state) for name, _, state in steps)["escalation:hyperkaliemie"] == "Escalated"
    # each step's run as Prefect's UI shows it: its state's name and message (counts per status), a start and an end
    shown = {name.rsplit("-", 1)[0]: (state, message, start, end) for name, state, message, start, end in database.execute(
        "select task_run.name, task_run_state.name, task_run_state.message, task_run.start_time, task_run.end_time "
        "from task_run join task_run_state on task_run_state.id = task_run.state_id where task_run.flow_run_id = ? "
        "and task_run.name not like 'advance-batch%' and task_run.id != ?", (pathway_run, parent))}
    assert len(shown) == len(spec.steps)
    assert shown["escalation:hyperkaliemie"][1] == "2 escalated, 1 waiting", shown["escalation:hyperkaliemie"]
    assert all(start and end and sum(int(part.split()[0]) for part in message.split(";")[0].split(", ")) == 3
               for _, message, start, end in shown.values()), shown  # every step counts the run's three enrollments
    assert {state for state, *_ in shown.values()} <= {"Escalated", "Due", "Gated", "Waiting"}
    for state, message, _, _ in shown.values():
        assert (state == "Gated") == ("gated for " in message), (state, message)


@pytest.mark.slow
def test_step_runs_carry_the_tags_their_flow_run_is_started_in(tmp_path):
    """A pathway run started inside Prefect's ``tags(...)``: its recorded step runs carry those
    tags beside their own, as task runs through Prefect's task engine do (its batch task, here)."""
    import os
    import subprocess
    import sys

    env = environment(tmp_path)
    _, _, enrollment = enroll_patient(tmp_path, env)
    script = ("import datetime as dt\nfrom prefect import tags\n"
              "from pathways.orchestration.advancing import advance_with_prefect\n"
              "with tags('netwerk-noord'):\n"
              f"    advance_with_prefect('heartfailure', [{enrollment!r}], dt.date(2026, 1, 5))\n")
    done = subprocess.run([sys.executable, "-c", script], env={**os.environ, **env}, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    database = sqlite3.connect(next((tmp_path / "prefect").rglob("*.db")))
    tagged = {name.rsplit("-", 1)[0]: json.loads(tags) for name, tags in database.execute("select name, tags from task_run")}
    assert len(tagged) > 20 and "escalation:hyperkaliemie" in tagged
    assert all(tags == ["netwerk-noord"] for tags in tagged.values()), tagged


def test_side_by_side_runs_are_created_in_turn_and_begin_once_created():
    """Runs started side by side, and the escalation subflows they open, are created one at a time
    (Prefect's embedded server on SQLite answers concurrent creations with "database is locked"),
    in the caller's context; each run begins its batches as soon as it exists, without waiting
    for the others; a run that fails before it begins lets the next one be created."""
    import contextvars
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from pathways.orchestration import turns

    log: list[tuple[str, str, float]] = []
    lock = threading.Lock()
    submitter = contextvars.ContextVar("submitter", default=None)
    submitter.set("the caller's settings")  # e.g. Prefect's settings context: the runs see the caller's

    def note(name: str, event: str) -> None:
        with lock:
            log.append((name, event, time.monotonic()))

    def fake_subflow(name: str) -> None:
        note(name, "create")
        time.sleep(0.05)
        note(name, "created")
        turns.created()  # what the escalation subflow's body does first

    def fake_run(name: str, fail: bool = False) -> str:
        assert submitter.get() == "the caller's settings"
        note(name, "create")
        time.sleep(0.05)  # creating the flow run
        if fail:
            raise RuntimeError("creation failed")
        note(name, "created")
        turns.created()  # what a pathway run's body does first
        note(name, "batches")
        # as an escalation opens its subflow from the run's body, in a thread with the run's context
        opener = threading.Thread(target=contextvars.copy_context().run, args=(turns.TOGETHER.get().run, fake_subflow, f"{name}-sub"))
        opener.start()
        time.sleep(0.3)  # the batches
        opener.join()
        return name

    together = turns.Together()
    with ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(turns.in_turn(together, fake_run, name)) for name in ("a", "b", "c")]
    assert sorted(f.result() for f in futures) == ["a", "b", "c"]
    creations = sorted((t, event) for _, event, t in log if event in ("create", "created"))
    assert [event for _, event in creations] == ["create", "created"] * 6  # three runs, three subflows: never two creations at once
    first_batches = min(t for _, event, t in log if event == "batches")
    last_created = max(t for name, event, t in log if event == "created" and "-" not in name)
    assert first_batches < last_created  # the first run did not wait for the others' creation

    log.clear()
    together = turns.Together()
    with ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(turns.in_turn(together, fake_run, name, name == "a")) for name in ("a", "b", "c")]
    outcomes = sorted(repr(f.exception()) if f.exception() else f.result() for f in futures)
    assert outcomes == ["RuntimeError('creation failed')", "b", "c"]
    assert not together.creating.locked()
    assert turns.TOGETHER.get() is None  # the caller's context is left as it was


def test_the_embedded_servers_busy_answer_is_retried_at_once(monkeypatch):
    """Prefect's embedded server answers 503 when SQLite refuses a write ("database is locked");
    Prefect's client would wait 2 s, then 4, before trying again. On the embedded server it
    tries again after about 1/16 s, then twice as long each time, ten times (about a minute in
    all); with a real server (PREFECT_API_URL) Prefect's own waits apply."""
    import types

    import httpx

    from pathways.orchestration import prefect_edge

    prefect_edge.configure()  # installs the quick retries
    import prefect.client.base as base
    from prefect.settings import PREFECT_API_URL, PREFECT_CLIENT_MAX_RETRIES, temporary_settings

    waits: list[float] = []
    monkeypatch.setattr(base, "time", types.SimpleNamespace(sleep=waits.append))

    def busy_then_ok(busy: int):
        answers = iter([503] * busy + [200])
        client = base.PrefectHttpxSyncClient(transport=httpx.MockTransport(lambda request: httpx.Response(next(answers))),
                                             base_url="http://127.0.0.1:1/api")
        return client.get("/flow_runs/x")

    with temporary_settings(updates={PREFECT_CLIENT_MAX_RETRIES: 10}):
        assert busy_then_ok(2).status_code == 200
        assert len(waits) == 2 and all(wait < 0.2 for wait in waits)  # 1/16 and 1/8 s, with Prefect's jitter
        waits.clear()
        assert busy_then_ok(10).status_code == 200
        assert 30 < sum(waits) < 100 and waits[-1] > 16  # the same patience as Prefect's own back-off
        waits.clear()
        with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:1/api"}):
            assert busy_then_ok(2).status_code == 200
        assert len(waits) == 2 and waits[0] > 1 and waits[1] > 3  # a real server: Prefect's 2 s and 4 s


def test_prefects_api_clients_share_one_tls_context_per_ca_file(tmp_path):
    """Prefect builds a TLS context (loading the whole CA bundle) for every API client; pathways
    builds it once per CA file and shares it. A changed or different CA file gets a context of
    its own, and Prefect's unverified context (PREFECT_API_TLS_INSECURE_SKIP_VERIFY) stays its own."""
    import shutil
    import ssl

    import certifi

    from pathways.orchestration import prefect_edge

    prefect_edge.configure()  # shares the contexts
    import prefect.client.orchestration as orchestration
    from prefect.settings import PREFECT_API_SSL_CERT_FILE, PREFECT_API_TLS_INSECURE_SKIP_VERIFY, temporary_settings

    def context(client):
        return client._client._transport._pool._ssl_context

    first, second = (orchestration.SyncPrefectClient("http://127.0.0.1:1/api") for _ in range(2))
    assert context(first) is context(second)
    assert context(first).verify_mode == ssl.CERT_REQUIRED and context(first).check_hostname
    assert context(orchestration.PrefectClient("http://127.0.0.1:1/api")) is context(first)  # the async client too

    bundle = tmp_path / "ca.pem"
    shutil.copy(certifi.where(), bundle)
    with temporary_settings(updates={PREFECT_API_SSL_CERT_FILE: str(bundle)}):
        own = context(orchestration.SyncPrefectClient("http://127.0.0.1:1/api"))
        assert own is not context(first) and own.verify_mode == ssl.CERT_REQUIRED
        assert context(orchestration.SyncPrefectClient("http://127.0.0.1:1/api")) is own
        bundle.write_bytes(bundle.read_bytes() + b"\n")  # changed on disk: read again
        assert context(orchestration.SyncPrefectClient("http://127.0.0.1:1/api")) is not own

    with temporary_settings(updates={PREFECT_API_TLS_INSECURE_SKIP_VERIFY: True}):
        insecure = [context(orchestration.SyncPrefectClient("http://127.0.0.1:1/api")) for _ in range(2)]
        assert insecure[0] is not insecure[1] and insecure[0].verify_mode == ssl.CERT_NONE
    assert context(orchestration.SyncPrefectClient("http://127.0.0.1:1/api")).verify_mode == ssl.CERT_REQUIRED


def test_the_client_asks_the_embedded_server_for_csrf_tokens_only_when_it_is_protected():
    """Prefect's embedded server does not check CSRF tokens unless told to; its clients then skip
    asking for one (each new client's request was refused). A server told to check them gets them."""
    from pathways.orchestration.prefect_edge import _no_csrf_tokens_unless_protected

    for protection in (None, "false", "0", ""):
        environ = {} if protection is None else {"PREFECT_SERVER_API_CSRF_PROTECTION_ENABLED": protection}
        _no_csrf_tokens_unless_protected(environ)
        assert environ.get("PREFECT_CLIENT_CSRF_SUPPORT_ENABLED") == "false", protection
    for name in ("PREFECT_SERVER_API_CSRF_PROTECTION_ENABLED", "PREFECT_SERVER_CSRF_PROTECTION_ENABLED"):
        for protection in ("true", "True", "1", "on"):
            environ = {name: protection}
            _no_csrf_tokens_unless_protected(environ)
            assert "PREFECT_CLIENT_CSRF_SUPPORT_ENABLED" not in environ, (name, protection)
    environ = {"PREFECT_CLIENT_CSRF_SUPPORT_ENABLED": "true"}  # the user's own choice stays
    _no_csrf_tokens_unless_protected(environ)
    assert environ["PREFECT_CLIENT_CSRF_SUPPORT_ENABLED"] == "true"


def test_a_large_runs_escalations_artifact_counts_them_all_and_lists_the_first():
    """Thousands of escalations (a cohort's first review) make an artifact of counts per step and
    the first ESCALATIONS_LISTED enrollments, pointing to the audit trail for the rest; a small
    run's artifact lists every one."""
    from pathways.orchestration.flows import ESCALATIONS_LISTED, escalations_markdown

    escalated = [(f"enr-{i:05d}", "hyperkaliemie" if i % 3 else "decompensatie") for i in range(ESCALATIONS_LISTED + 57)]
    table = escalations_markdown(escalated, "heartfailure", "2026-11-01")
    per_step = {"hyperkaliemie": sum(1 for _, s in escalated if s == "hyperkaliemie"), "decompensatie": sum(1 for _, s in escalated if s == "decompensatie")}
    assert f"| decompensatie | {per_step['decompensatie']} |" in table and f"| hyperkaliemie | {per_step['hyperkaliemie']} |" in table
    listed = re.findall(r"^\| (enr-\d+) \| ", table, flags=re.M)
    assert listed == [e for e, _ in escalated[:ESCALATIONS_LISTED]]
    assert "57 more not listed here" in table
    assert "`pathways audit log --action escalation.opened --pathway heartfailure --since 2026-11-01`" in table

    small = escalations_markdown(escalated[:3], "heartfailure", "2026-11-01")
    assert re.findall(r"^\| (enr-\d+) \| ", small, flags=re.M) == ["enr-00000", "enr-00001", "enr-00002"]
    assert "more not listed" not in small


def test_a_batch_reaches_its_task_as_one_object():
    """A batch task's enrollment ids travel as one Batch object: Prefect's walk over a task's inputs
    (looking for futures, item by item in a list) sees the one object and passes it on as it is,
    its ids unchanged and in order. (A run through batch tasks: the escalation test above.)"""
    from prefect.utilities.collections import visit_collection

    from pathways.orchestration.flows import Batch

    ids = [f"enr-{i}" for i in range(1000)]
    seen = []
    batch = Batch(ids)
    assert visit_collection(batch, visit_fn=lambda item: seen.append(item) or item, return_data=True) is batch
    assert len(seen) == 1 and seen[0] is batch and batch.enrollments == ids and repr(batch) == "Batch(1000 enrollments)"


def test_simulate_summarises_every_patient_and_names_a_file_it_cannot_use(tmp_path):
    """`pathways simulate` stores nothing and fast-forwards each patient; a file with a value the
    pathway cannot use is named with the value's field and left out (as `run` and `evaluate` do),
    the others are simulated and the exit status says one failed."""
    from conftest import ROOT

    cohort = tmp_path / "cohort"
    shutil.copytree(ROOT / "examples" / "cohort-diabetes", cohort)
    unusable = {"fact": "hba1c_mmol_mol", "value": "high", "at": "2025-12-01"}
    (cohort / "zz-unusable.json").write_text(json.dumps({**PATIENT, "patient": "pt-orch-6", "observations": [unusable]}), encoding="utf-8")
    env = environment(tmp_path)
    done = run_cli("simulate", "diabetes", "--patients", str(cohort), "--months", "6", env=env)
    assert done.returncode == 1, done.stderr
    assert "error: zz-unusable.json: observations[0]: hba1c_mmol_mol: expected a number, got 'high'; not simulated" in done.stderr
    simulated = {json.loads(path.read_text(encoding="utf-8"))["patient"] for path in cohort.glob("demo-*.json")}
    assert all(patient in done.stdout for patient in simulated) and "pt-orch-6" not in done.stdout
    assert not (tmp_path / "store.db").exists()  # stores nothing
