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
