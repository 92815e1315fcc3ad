"""The personal plan at run time (issue 28 item 4): a second pathway is enrolled on the facts
already stored; `pathways advance` (one enrollment, or the daily `--due` run over every pathway)
makes the stored plan of each patient touched again, once per patient, in orchestration; the
Prefect flow runs stay per pathway version."""

from __future__ import annotations

import json
import sqlite3

import pytest

from conftest import mm01_on_metformin, run_cli


def environment(tmp_path) -> dict[str, str]:
    return {"PATHWAYS_DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}", "PREFECT_HOME": str(tmp_path / "prefect"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1", "PATHWAYS_TODAY": "2026-12-03",
            "PATHWAYS_ROLE": "admin", "PATHWAYS_SCHEDULE_REVIEWS": "0"}


def query(tmp_path, sql: str) -> list[tuple]:
    with sqlite3.connect(tmp_path / "store.db") as c:
        return c.execute(sql).fetchall()


@pytest.mark.slow
def test_a_second_pathway_builds_on_stored_facts_and_advancing_re_plans_each_patient_once(tmp_path):
    env = environment(tmp_path)
    file, patient = mm01_on_metformin(tmp_path)
    first = run_cli("enroll", "mm-01", "--pathway", "diabetes", "--facts", str(file), env=env)
    assert first.returncode == 0, first.stderr
    facts = query(tmp_path, "select count(*) from fact where patient_id = 'mm-01'")

    # heart failure on the facts stored with the diabetes enrollment: no file, nothing stored twice
    second = run_cli("enroll", "mm-01", "--pathway", "heartfailure", env=env)
    assert second.returncode == 0, second.stderr
    assert "facts: 0 added" in second.stdout
    assert query(tmp_path, "select count(*) from fact where patient_id = 'mm-01'") == facts
    unknown = run_cli("enroll", "mm-99", "--pathway", "copd", env=env)
    assert (unknown.returncode, unknown.stdout) == (1, "")
    assert unknown.stderr.strip() == ("error: unknown patient 'mm-99': no facts stored for this pseudonymous id; "
                                      "give --facts FILE.json or --fhir BUNDLE to store them; not enrolled")
    assert query(tmp_path, "select count(*) from enrollment") == [(2,)]

    # the daily run advances both pathways (a flow run per pathway version) and makes one plan for the patient
    due = run_cli("advance", "--due", "--at", "2026-12-03", env=env)
    assert due.returncode == 0, due.stderr
    assert "diabetes: advanced 1 enrollment(s)" in due.stdout and "heartfailure: advanced 1 enrollment(s)" in due.stdout
    made = query(tmp_path, "select subject from audit_entry where action = 'plan.made' order by seq")
    assert made == [("mm-01:2026-12-03",)]  # once per patient, not once per pathway
    (stored,) = query(tmp_path, "select plan from care_plan where patient_id = 'mm-01' and plan_on = '2026-12-03'")
    plan = json.loads(stored[0])
    assert [p["pathway"] for p in plan["pathways"]] == ["diabetes", "heartfailure"]
    # the heart-failure laboratory reads the eGFR the diabetes file brought: metformin below the stop threshold
    assert [c["rule"] for c in plan["conflicts"]] == ["metformine_bij_egfr_onder_stopgrens"]
    # appointments, not duplicate steps: the diabetes intake and both pathways' open kidney escalations, one GP visit
    gp = [a for a in plan["appointments"] if a["discipline"] == "huisarts"]
    assert len(gp) == 1 and {s["pathway"] for s in gp[0]["steps"]} == {"diabetes", "heartfailure"}
    assert all(len({(s["pathway"], s["step"]) for s in a["steps"]}) == len(a["steps"]) for a in plan["appointments"])
    runs = query(tmp_path, "select count(*) from audit_entry where action = 'plan.bundle'")

    # advancing one pathway later re-plans for that day; the same day again changes nothing
    (hf,) = query(tmp_path, "select id from enrollment where pathway = 'heartfailure'")
    one = run_cli("advance", hf[0], "--at", "2026-12-10", env=env)
    assert one.returncode == 0, one.stderr
    assert query(tmp_path, "select subject from audit_entry where action = 'plan.made' order by seq") == [
        ("mm-01:2026-12-03",), ("mm-01:2026-12-10",)]
    again = run_cli("advance", hf[0], "--at", "2026-12-10", env=env)
    assert again.returncode == 0, again.stderr
    assert len(query(tmp_path, "select subject from audit_entry where action = 'plan.made'")) == 2
    assert query(tmp_path, "select count(*) from audit_entry where action = 'plan.bundle'") >= runs
    assert query(tmp_path, "select count(*) from care_plan") == [(2,)]
