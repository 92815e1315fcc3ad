"""durable-rules from Prefect's thread-pool task runner: the gates of a pathway decided on its
threads (the reference comparison and the library's other sharp edges are in
tests/unit/test_rules_engine.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import ROOT, SESSION_MARK


@pytest.mark.slow
def test_pathway_gates_from_prefects_thread_pool_task_runner(tmp_path):
    """Gates evaluated inside Prefect tasks on its ThreadPoolTaskRunner (embedded server)."""
    probe = r'''
import datetime as dt, json, os
from prefect import flow, task
from prefect.task_runners import ThreadPoolTaskRunner
from pathways.definition.loader import load_pathway
from pathways.facts.model import PatientFacts, Observation, Condition, Demographics
from pathways.rules import durable_adapter
from pathways.rules.evaluate import PathwayEvaluator

durable_adapter.prepare()  # the host exists before any worker thread
evaluator = PathwayEvaluator(load_pathway("diabetes"))
AT, TODAY = dt.date(2026, 11, 1), dt.date(2026, 11, 23)

def patient(i):
    return PatientFacts(patient=f"t{i}", demographics=Demographics(birth_date=dt.date(1940 + i % 50, 1, 1), sex="female"),
        conditions=(Condition(fact="dm2_diagnosis", onset=dt.date(2010, 1, 1)),),
        observations=(Observation(fact="egfr_ml_min_1_73m2", value=20 + i % 80, unit="mL/min/{1.73_m2}", at=AT),
                      Observation(fact="hba1c_mmol_mol", value=40 + i % 40, unit="mmol/mol", at=AT)))

@task
def gates(i):
    return [s.status for s in evaluator.evaluate(patient(i), AT, TODAY).steps]

@flow(task_runner=ThreadPoolTaskRunner(max_workers=6), log_prints=False)
def cohort(n):
    return [f.result() for f in gates.map(range(n))]

got = cohort(60)
want = [[s.status for s in evaluator.evaluate(patient(i), AT, TODAY).steps] for i in range(60)]
print(json.dumps({"same": got == want, "n": len(got)}))
'''
    env = {
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",  # a fresh embedded server can take over 20 s on a busy machine
        "PATH": "/usr/bin:/bin",
        SESSION_MARK[0]: SESSION_MARK[1],  # (a process it leaves behind is found at the end)
    }
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"same": True, "n": 60}
