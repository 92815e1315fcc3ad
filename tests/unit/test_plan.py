"""One personal care plan per patient across pathways (issue 28): the pure planner bundles steps
of one discipline within the care network's window and asks shared measurements once; the
cross-pathway interaction rules raise conflicts naming both source steps; `pathways plan`
reads the enrollments from the store, stores the plan and audits each decision once."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from conftest import FIXTURES, ROOT, mm01_on_metformin, run_cli
from pathways.clock import FixedClock
from pathways.definition.interactions import read_interactions, validate_with_interactions
from pathways.definition.loader import load_pathway
from pathways.facts.load import load_patient_file
from pathways.facts.model import Observation
from pathways.rules.evaluate import PathwayEvaluator
from pathways.runtime.core import StepProgress, enroll
from pathways.runtime.interactions import conflicts
from pathways.runtime.plan import Enrolled, PlanError, build_plan

MM = FIXTURES / "multimorbid" / "mm-01.json"  # diabetes, COPD and heart failure
DAY = dt.date(2026, 12, 3)
PATHWAYS = ("copd", "diabetes", "heartfailure")
QUARTERLY = {"diabetes": "driemaandelijkse_controle", "copd": "controle_verhoogde_ziektelast", "heartfailure": "controle_huisarts"}


@pytest.fixture(scope="module")
def loaded():
    return {p: load_pathway(p) for p in PATHWAYS}


def waiting(loaded, pathway: str, due: dict[str, dt.date]) -> Enrolled:
    """An enrollment of mm-01 whose steps in ``due`` wait for that date (the others not yet scheduled)."""
    state = enroll(loaded[pathway], f"{pathway}-mm-01", "mm-01", DAY)
    steps = {**state.steps, **{s: StepProgress(status="waiting", due_on=d, occurrence=1) for s, d in due.items()}}
    return Enrolled(state.model_copy(update={"steps": steps}), loaded[pathway])


def refs(appointment) -> list[tuple[str, str]]:
    return [(s.pathway, s.step) for s in appointment.steps]


# -- the pure planner --------------------------------------------------------------------------

def test_three_quarterly_poh_controls_within_the_window_are_one_appointment_with_each_measurement_once(loaded):
    days = {"heartfailure": DAY + dt.timedelta(days=20), "diabetes": DAY + dt.timedelta(days=27), "copd": DAY + dt.timedelta(days=34)}
    enrolled = [waiting(loaded, p, {QUARTERLY[p]: d}) for p, d in days.items()]
    plan = build_plan("mm-01", enrolled, DAY, window_days=14)
    (visit,) = plan.appointments
    assert (visit.date, visit.discipline) == (DAY + dt.timedelta(days=20), "poh")
    assert refs(visit) == [("heartfailure", "controle_huisarts"), ("diabetes", "driemaandelijkse_controle"),
                           ("copd", "controle_verhoogde_ziektelast")]
    assert all(s.status == "upcoming" for s in visit.steps)
    measured = {m.fact: m.serves for m in visit.measurements}
    # body weight: all three controls record it, asked once for the three
    assert measured["body_weight_kg"] == (("heartfailure", "controle_huisarts"), ("diabetes", "driemaandelijkse_controle"),
                                          ("copd", "controle_verhoogde_ziektelast"))
    assert [m.fact for m in visit.measurements] == sorted(set(measured))  # each fact once
    decision = visit.decision
    assert decision["rule"] == "same-discipline-within-window" and decision["window_days"] == 14
    assert [s["step"] for s in decision["steps"]] == ["controle_huisarts", "driemaandelijkse_controle", "controle_verhoogde_ziektelast"]
    assert "body_weight_kg" in decision["why"] and "within 14 days" in decision["why"]
    assert [p["pathway"] for p in plan.to_json()["pathways"]] == ["copd", "diabetes", "heartfailure"]


def test_controls_further_apart_than_the_window_are_two_appointments(loaded):
    days = {"heartfailure": DAY + dt.timedelta(days=20), "diabetes": DAY + dt.timedelta(days=35), "copd": DAY + dt.timedelta(days=36)}
    enrolled = [waiting(loaded, p, {QUARTERLY[p]: d}) for p, d in days.items()]
    plan = build_plan("mm-01", enrolled, DAY, window_days=14)
    assert [(a.date, refs(a)) for a in plan.appointments] == [
        (DAY + dt.timedelta(days=20), [("heartfailure", "controle_huisarts")]),
        (DAY + dt.timedelta(days=35), [("diabetes", "driemaandelijkse_controle"), ("copd", "controle_verhoogde_ziektelast")]),
    ]
    # the window counts from the appointment's first step, inclusive; a wider one (the care network's choice) bundles all three
    assert len(build_plan("mm-01", enrolled, DAY, window_days=15).appointments) == 2
    assert len(build_plan("mm-01", enrolled, DAY, window_days=16).appointments) == 1


def test_an_overdue_step_is_planned_on_the_plans_date_and_other_disciplines_are_apart(loaded):
    enrolled = [waiting(loaded, "diabetes", {"driemaandelijkse_controle": DAY - dt.timedelta(days=5), "jaarcontrole": DAY + dt.timedelta(days=3)}),
                waiting(loaded, "heartfailure", {"controle_huisarts": DAY + dt.timedelta(days=14)})]
    plan = build_plan("mm-01", enrolled, DAY)
    assert [(a.date, a.discipline) for a in plan.appointments] == [(DAY, "poh"), (DAY + dt.timedelta(days=3), "huisarts")]
    (poh,) = [a for a in plan.appointments if a.discipline == "poh"]
    assert [(s.step, s.status, s.due_on) for s in poh.steps] == [("driemaandelijkse_controle", "due", DAY - dt.timedelta(days=5)),
                                                                  ("controle_huisarts", "upcoming", DAY + dt.timedelta(days=14))]


def test_bad_input_no_pathway_the_same_pathway_twice_or_a_bad_window(loaded):
    with pytest.raises(PlanError, match="is in no pathway"):
        build_plan("mm-01", [], DAY)
    twice = [waiting(loaded, "diabetes", {}), waiting(loaded, "diabetes", {})]
    twice[1] = Enrolled(twice[1].state.model_copy(update={"enrollment": "diabetes-mm-01-b"}), twice[1].loaded)
    with pytest.raises(PlanError, match="in pathway diabetes twice"):
        build_plan("mm-01", twice, DAY)
    for window in (-1, 400, 1.5, True):
        with pytest.raises(PlanError, match="bundling window must be a whole number of days"):
            build_plan("mm-01", [waiting(loaded, "diabetes", {})], DAY, window_days=window)


# -- interactions -----------------------------------------------------------------------------

def mm01(egfr: float, treatment: str = "metformine"):
    facts = load_patient_file(MM).facts
    more = (Observation(fact="egfr_ml_min_1_73m2", value=egfr, unit="mL/min/{1.73_m2}", at=DAY - dt.timedelta(days=10)),
            Observation(fact="treatment_step", value=treatment, at=DAY - dt.timedelta(days=10)))
    return facts.model_copy(update={"observations": facts.observations + more})


def library():
    doc, problems = read_interactions(ROOT / "pathways" / "_shared" / "interactions.yaml")
    assert problems == []
    return doc.library.interactions


def test_metformin_with_a_low_egfr_is_a_conflict_naming_both_steps_on_the_plan(loaded):
    evaluators = {p: PathwayEvaluator(loaded[p], cross_check=False) for p in PATHWAYS}
    found = conflicts(library(), evaluators, mm01(25), DAY)
    (conflict,) = found
    assert conflict.rule == "metformine_bij_egfr_onder_stopgrens"
    assert conflict.steps == (("diabetes", "metformine_starten"), ("heartfailure", "laboratorium_voor_start"))
    assert conflict.action.startswith("huisarts consulteren - metformine stoppen")
    assert conflict.evidence == {"source": "eerstelijnsprotocollen", "section": "kwetsbare ouderen", "confidence": "S"}
    assert conflict.facts == {"egfr_ml_min_1_73m2": 25.0, "treatment_step": "metformine"}
    assert any("metformin_stop_egfr = 30" in r for r in conflict.reasons)
    # 45: the lower-dose rule instead; 65, or no metformin: no conflict
    assert [c.rule for c in conflicts(library(), evaluators, mm01(45), DAY)] == ["metformine_bij_verlaagde_egfr"]
    assert conflicts(library(), evaluators, mm01(65), DAY) == []
    assert conflicts(library(), evaluators, mm01(25, "leefstijl"), DAY) == []
    # a patient not in the heart-failure pathway: the rule is not about them
    assert conflicts(library(), {"diabetes": evaluators["diabetes"]}, mm01(25), DAY) == []
    plan = build_plan("mm-01", [waiting(loaded, p, {}) for p in PATHWAYS], DAY, conflicts=found)
    assert plan.to_json()["conflicts"][0]["steps"] == [{"pathway": "diabetes", "step": "metformine_starten"},
                                                       {"pathway": "heartfailure", "step": "laboratorium_voor_start"}]


def test_validate_names_unknown_pathways_steps_and_facts_of_the_interaction_library_with_file_and_line(tmp_path):
    folder = tmp_path / "pathways"
    shutil.copytree(ROOT / "pathways", folder)
    file = folder / "_shared" / "interactions.yaml"
    text = file.read_text(encoding="utf-8")
    text = text.replace("step: nsaid_stoppen}", "step: nsaid_stopen}").replace("hf_diagnosis and nsaid_use", "hf_diagnosis and nsaid_usage")
    text = text.replace("{pathway: heartfailure, step: laboratorium_voor_start}\n    when: treatment_step != \"leefstijl\" and egfr_ml_min_1_73m2 < metformin_stop_egfr",
                        "{pathway: hartfalen, step: laboratorium_voor_start}\n    when: treatment_step != \"leefstijl\" and egfr_ml_min_1_73m2 < metformin_stop_egfr")
    file.write_text(text, encoding="utf-8")
    lines = text.splitlines()
    found = [str(p) for p in validate_with_interactions([folder]).problems if p.code.startswith("PW0") and "interactions.yaml" in str(p)]
    where = {code: next(i + 1 for i, line in enumerate(lines) if word in line) for code, word in
             (("PW060", "pathway: hartfalen"), ("PW031", "nsaid_stopen"), ("PW021", "nsaid_usage"))}
    assert [p.split(": ", 1)[1] for p in found] == [
        "PW060 interaction 'metformine_bij_egfr_onder_stopgrens' names pathway 'hartfalen', which is not in this folder (did you mean 'heartfailure'?)",
        "PW031 interaction 'nsaid_bij_hartfalen': pathway heartfailure has no step 'nsaid_stopen' (did you mean 'nsaid_stoppen'?)",
        "PW021 interaction 'nsaid_bij_hartfalen' uses 'nsaid_usage', which is no fact, rule or parameter of diabetes or heartfailure (did you mean 'nsaid_use'?)",
    ]
    assert [int(p.split(":")[1]) for p in found] == [where["PW060"], where["PW031"], where["PW021"]]
    done = run_cli("validate", str(folder))
    assert done.returncode == 1 and "PW060" in done.stderr + done.stdout


def test_rules_about_a_pathway_that_did_not_load_are_left_to_its_own_problems(tmp_path):
    folder = tmp_path / "pathways"
    shutil.copytree(ROOT / "pathways", folder)
    file = folder / "heartfailure" / "pathway.yaml"
    file.write_text(file.read_text(encoding="utf-8").replace("uses: [clinical, financing]\n", "uses: [clinical, financing]\nbogus_key: 1\n"), encoding="utf-8")
    problems = [p for p in validate_with_interactions([folder]).problems if not p.is_warning]
    assert [(Path(p.location.file).name, p.code) for p in problems] == [("pathway.yaml", "PW010")]


def test_the_shipped_interaction_library_is_valid_and_names_its_gaps():
    result = validate_with_interactions([ROOT / "pathways"])
    assert [p for p in result.problems if not p.is_warning] == []
    doc, _ = read_interactions(ROOT / "pathways" / "_shared" / "interactions.yaml")
    assert {g.id for g in doc.library.gaps} >= {"niet_selectieve_betablokkers_copd", "corticosteroidkuur_glucose"}
    assert all(r.evidence.source in {s.id for s in doc.library.sources} for r in doc.library.interactions)


# -- `pathways plan` through the real command ----------------------------------------------------

def environment(tmp_path) -> dict[str, str]:
    return {"PATHWAYS_DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}", "PREFECT_HOME": str(tmp_path / "prefect"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1", "PATHWAYS_TODAY": "2026-12-03",
            "PATHWAYS_ROLE": "admin"}


def plan_entries(tmp_path) -> list[tuple[str, str]]:
    with sqlite3.connect(tmp_path / "store.db") as c:
        return c.execute("select action, subject from audit_entry where action like 'plan.%' order by seq").fetchall()


def test_pathways_plan_bundles_mm01s_three_pathways_shows_the_metformin_conflict_and_audits_each_decision_once(tmp_path):
    env = environment(tmp_path)
    file, patient = mm01_on_metformin(tmp_path)
    enrollments = {}
    for pathway in PATHWAYS:
        done = run_cli("enroll", "mm-01", "--pathway", pathway, "--facts", str(file), env=env)
        assert done.returncode == 0, done.stderr
        enrollments[pathway] = done.stdout.split("enrolled: ", 1)[1].split(" ", 1)[0]

    done = run_cli("plan", "mm-01", "--at", "2026-12-10", "--json", env=env)
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert (plan["patient"], plan["at"], plan["window_days"]) == ("mm-01", "2026-12-10", 14)
    assert plan["pathways"] == [{"pathway": p, "version": v, "enrollment": enrollments[p]}
                                for p, v in (("copd", "1.1.0"), ("diabetes", "1.2.0"), ("heartfailure", "1.1.0"))]
    shown = [(a["date"], a["discipline"], [(s["pathway"], s["step"], s["status"]) for s in a["steps"]]) for a in plan["appointments"]]
    # the GP's intake of diabetes, COPD's diagnosis and the open kidney escalations: one GP visit
    assert shown == [
        ("2026-12-10", "huisarts", [("copd", "diagnose_huisarts", "due"), ("diabetes", "intake_huisarts", "due"),
                                    ("diabetes", "verwijzing_nefroloog", "escalated"), ("heartfailure", "nierfunctie_achteruit", "escalated")]),
        ("2026-12-10", "poh", [("heartfailure", "intake_poh", "due")]),
    ]
    assert [m["fact"] for m in plan["appointments"][1]["measurements"]] == ["body_weight_kg", "systolic_bp_mmhg"]
    (conflict,) = plan["conflicts"]
    assert (conflict["rule"], conflict["steps"]) == ("metformine_bij_egfr_onder_stopgrens", [
        {"pathway": "diabetes", "step": "metformine_starten"}, {"pathway": "heartfailure", "step": "laboratorium_voor_start"}])
    assert conflict["action"].startswith("huisarts consulteren") and conflict["reasons"]
    assert len(plan["goals"]) == 8 and {g["status"] for g in plan["goals"]} == {"to agree"}

    entries = plan_entries(tmp_path)
    # the rule escalates (interactions.yaml): the conflict opened an escalation on the plan, audited
    assert [a for a, _ in entries] == ["plan.made", "plan.bundle", "plan.conflict", "plan.escalated"]
    (opened,) = plan["escalations"]
    assert (opened["rule"], opened["severity"], opened["action"], opened["opened_on"]) == (
        "metformine_bij_egfr_onder_stopgrens", "regulier", "huisarts_informeren", "2026-12-10")
    assert entries[0][1] == "mm-01:2026-12-10" and entries[1][1].startswith("mm-01:bundle:2026-12-10:huisarts:")
    assert entries[2][1].startswith("mm-01:conflict:metformine_bij_egfr_onder_stopgrens:diabetes.metformine_starten,heartfailure.laboratorium_voor_start:")
    with sqlite3.connect(tmp_path / "store.db") as c:
        assert c.execute("select count(*) from care_plan").fetchone() == (1,)
        assert c.execute("select kind from care_plan_decision order by kind").fetchall() == [("bundle",), ("conflict",)]

    # the same plan again: nothing new stored or audited; the tables show the same plan
    again = run_cli("plan", "mm-01", "--at", "2026-12-10", env={**env, "COLUMNS": "400"})
    assert again.returncode == 0, again.stderr
    assert "metformine_bij_egfr_onder_stopgrens" in again.stdout and "diagnose_huisarts" in again.stdout
    assert plan_entries(tmp_path) == entries

    # bad input: an unknown patient, a bad window; nothing stored
    unknown = run_cli("plan", "mm-99", "--json", env=env)
    assert (unknown.returncode, unknown.stdout) == (1, "")
    assert unknown.stderr.strip() == "error: unknown patient 'mm-99': no facts or enrollments stored for this pseudonymous id; no plan stored"
    bad = run_cli("plan", "mm-01", "--window", "-1", env=env)
    assert bad.returncode == 1 and "bundling window must be a whole number of days" in bad.stderr
    assert plan_entries(tmp_path) == entries


def test_a_patient_in_no_pathway_gets_a_clear_message_and_nothing_is_stored(engine):
    from pathways.access import Actor
    from pathways.orchestration.careplan import make_plan
    from pathways.orchestration.service import Runtimes
    from pathways.store.connect import migrate
    from pathways.store.db import Store

    migrate(engine)
    store = Store(engine, FixedClock.on(DAY).now, Actor(user="poh-anna", role="admin", via="test"))
    store.add_patient_facts(load_patient_file(MM).facts, "file:mm-01.json")
    with pytest.raises(PlanError, match=r"patient 'mm-01' is in no pathway: enrol them first"):
        make_plan(store, Runtimes(), "mm-01", DAY)
    with engine.connect() as c:
        import sqlalchemy as sa
        assert c.execute(sa.text("select count(*) from care_plan")).scalar() == 0
        assert c.execute(sa.text("select count(*) from audit_entry where action like 'plan.%'")).scalar() == 0
