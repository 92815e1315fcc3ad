"""Care over months through the real command: `pathways facts add` starts Prefect to escalate an
urgent value in the same command (the rest is in tests/unit/test_care_over_months.py)."""

from __future__ import annotations

import json

import pytest

from conftest import run_cli
from pathways.store import audit
from pathways.store.connect import make_engine

from test_care_over_months import MM


@pytest.mark.slow
def test_facts_add_escalates_an_urgent_value_in_the_same_command_through_prefect(tmp_path):
    env = {"PATHWAYS_DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}", "PREFECT_HOME": str(tmp_path / "prefect"),
           "PATHWAYS_TODAY": "2026-12-03", "PATHWAYS_ROLE": "", "PATHWAYS_TOKEN_FILE": "", "PATHWAYS_IDENTITY_SECRET_FILE": str(tmp_path / "k")}
    unknown = run_cli("facts", "add", "mm-01", "--facts", str(MM), env=env)
    assert unknown.returncode == 1
    assert f"error: {MM}: unknown patient 'mm-01': enrol the patient first" in unknown.stderr and "Traceback" not in unknown.stderr
    done = run_cli("facts", "add", "mm-01", "--facts", str(MM), "--enroll", "heartfailure", env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines()[0].startswith("enrolled: heartfailure-") and done.stdout.splitlines()[0].endswith("(patient mm-01, heartfailure); facts: 8 added")
    assert "heartfailure: re-evaluated on 2026-12-03: " in done.stdout
    lab = tmp_path / "lab.json"
    lab.write_text(json.dumps({"patient": "mm-01", "observations": [
        {"fact": "potassium_mmol_l", "value": 6.3, "unit": "mmol/L", "at": "2026-12-02"},
        {"fact": "body_weight_kg", "value": 81.5, "unit": "kg", "at": "2026-09-20"}]}), encoding="utf-8")
    added = run_cli("facts", "add", "mm-01", "--facts", str(lab), env=env)
    assert added.returncode == 0, added.stderr[-3000:]
    lines = added.stdout.strip().splitlines()
    assert lines[0] == "facts for mm-01 from lab.json: 1 added, 1 already known"
    enrollment = done.stdout.split()[1]
    assert f"escalation opened: hyperkaliemie (spoed, spoedconsult) for {enrollment}" in lines
    again = run_cli("facts", "add", "mm-01", "--facts", str(lab), env=env)
    assert again.returncode == 0
    assert again.stdout.strip().splitlines() == ["facts for mm-01 from lab.json: 0 added, 2 already known",
                                                 "nothing new: the enrollments stand as they were"]
    engine = make_engine(env["PATHWAYS_DATABASE_URL"])
    with engine.connect() as c:
        (opened,) = [e for e in audit.entries(c, audit.Query(enrollment=enrollment, action="escalation.opened"))]
    # audited with the facts that triggered it, and run in a Prefect flow run
    assert opened["payload"]["facts"]["potassium_mmol_l"] == 6.3 and "prefect_flow_run" in json.dumps(opened["payload"]["context"])
    future = tmp_path / "future.json"
    future.write_text(json.dumps({"patient": "mm-01", "observations": [{"fact": "potassium_mmol_l", "value": 5, "unit": "mmol/L", "at": "2027-01-01"}]}))
    refused = run_cli("facts", "add", "mm-01", "--facts", str(future), env=env)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert refused.stderr.splitlines() == [f"error: {future}: observations[0].at: dated 2027-01-01, after today (2026-12-03): give facts that have happened",
                                           "error: nothing stored"]
