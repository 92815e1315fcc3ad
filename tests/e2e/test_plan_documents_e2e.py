"""Audit indicators of integrated plans after a real run through Prefect: combined reviews, visits
saved and how conflicts ended (the documents themselves are in tests/unit/test_plan_documents.py)."""

from __future__ import annotations

import json

import pytest

from conftest import mm01_on_metformin, run_cli


@pytest.mark.slow
def test_audit_indicators_show_combined_reviews_visits_saved_and_how_conflicts_ended(tmp_path):
    env = {"PATHWAYS_DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}", "PREFECT_HOME": str(tmp_path / "prefect"), "DO_NOT_TRACK": "1",
           "PATHWAYS_TODAY": "2026-12-03", "PATHWAYS_ROLE": "admin"}
    file, patient = mm01_on_metformin(tmp_path)
    single = {**patient, "patient": "dm-01"}
    (tmp_path / "dm-01.json").write_text(json.dumps(single), encoding="utf-8")
    for who, pathway, facts in (("mm-01", "diabetes", file), ("mm-01", "heartfailure", file), ("dm-01", "diabetes", tmp_path / "dm-01.json")):
        done = run_cli("enroll", who, "--pathway", pathway, "--facts", str(facts), "--from", "reviews", env=env)
        assert done.returncode == 0, done.stderr
    for who in ("mm-01", "dm-01"):
        assert run_cli("plan", who, "--at", "2026-12-10", env=env).returncode == 0
    first = json.loads(run_cli("plan", "mm-01", "--at", "2026-12-10", "--json", env=env).stdout)
    saved = sum(len(a["steps"]) - 1 for a in first["appointments"])
    assert saved >= 1 and [c["rule"] for c in first["conflicts"]] == ["metformine_bij_egfr_onder_stopgrens"]

    def personal_plans() -> dict:
        done = run_cli("audit", "indicators", "--pathway", "diabetes", "--period", "2026Q4", "--json", env=env)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)["personal_plans"]

    shown = personal_plans()
    single_saved = sum(len(a["steps"]) - 1 for a in json.loads(run_cli("plan", "dm-01", "--at", "2026-12-10", "--json", env=env).stdout)["appointments"])
    assert (shown["patients_with_a_plan"], shown["multimorbid_patients"], shown["with_combined_review"]) == (2, 1, 1)
    assert shown["percent_with_combined_review"] == 100.0 and shown["visits_saved"] == saved + single_saved
    assert shown["conflicts"]["found"] == 1 and shown["conflicts"]["resolution"] == {"still raised by the latest plan": 1}
    # its escalation resolved with a reason (the conflict still raised): counted as resolved that way
    done = run_cli("plan", "mm-01", "--at", "2026-12-10", "--resolve", "metformine_bij_egfr_onder_stopgrens",
                   "--reason", "huisarts: metformin to be stopped at the next visit", env=env)
    assert done.returncode == 0, done.stderr
    ended = personal_plans()["conflicts"]
    assert ended["resolution"] == {"escalation resolved with a reason": 1} and ended["items"][0]["ended_on"] == "2026-12-10"

    # metformin stopped: the next plan no longer raises the conflict, and the indicator says so
    stopped = tmp_path / "stopped.json"
    stopped.write_text(json.dumps({"patient": "mm-01", "observations": [{"fact": "treatment_step", "value": "leefstijl", "at": "2026-12-01"}]}),
                       encoding="utf-8")
    assert run_cli("facts", "add", "mm-01", "--facts", str(stopped), env=env).returncode == 0
    assert run_cli("plan", "mm-01", "--at", "2026-12-11", env=env).returncode == 0
    ended = personal_plans()["conflicts"]
    assert ended["resolution"] == {"no longer raised by the latest plan": 1}
    assert ended["items"][0]["rule"] == "metformine_bij_egfr_onder_stopgrens" and ended["items"][0]["ended_on"] == "2026-12-11"
    text = run_cli("audit", "indicators", "--pathway", "diabetes", "--period", "2026Q4", env=env).stdout
    assert "multimorbid patients with one combined review: 100.0% (1 of 1)" in text
    assert "conflicts between pathways: 1 found (metformine_bij_egfr_onder_stopgrens 1); 1 no longer raised by the latest plan" in text
