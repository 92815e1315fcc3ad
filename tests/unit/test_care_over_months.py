"""Care over months (issue 24): facts belong to the patient, new facts flow in, escalations open
once per episode, goals are judged only on what was measured, records are checked in time, and
a patient known for years can be enrolled part-way."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

from conftest import FIXTURES, ROOT, run_cli
from pathways.access import Actor
from pathways.clock import FixedClock
from pathways.definition.durations import Duration
from pathways.definition.loader import load_pathway
from pathways.facts.derive import Atom, Reader
from pathways.facts.load import load_patient_file
from pathways.facts.model import Condition, Demographics, Observation, PatientFacts
from pathways.orchestration.newfacts import FactsRefused, add_facts
from pathways.orchestration.service import Runtimes, advance_one, enroll_patient, record_step, resolve_escalation
from pathways.runtime.core import RecordError, Runtime, enroll
from pathways.store import audit
from pathways.store.connect import make_engine, migrate
from pathways.store.db import Store

MM = FIXTURES / "multimorbid" / "mm-01.json"  # diabetes, COPD and heart failure; one exacerbation (2026-08-12)
DAY = dt.date(2026, 12, 3)


def store_on(engine, day: dt.date = DAY) -> Store:
    migrate(engine)
    return Store(engine, FixedClock.on(day).now, Actor(user="poh-anna", role="admin", via="test"))


def fact_rows(engine, patient: str) -> list[tuple[str, str]]:
    with engine.connect() as c:
        return [tuple(r) for r in c.execute(sa.text("select kind, payload from fact where patient_id = :p order by id"), {"p": patient})]


# -- facts belong to the patient ------------------------------------------------------------

def test_a_patient_in_three_pathways_has_each_fact_once_and_counts_are_exact(engine):
    store = store_on(engine)
    runtimes = Runtimes()
    read = load_patient_file(MM)
    results = [enroll_patient(store, runtimes, name, read, "file:mm-01.json", FixedClock.on(DAY)) for name in ("heartfailure", "copd", "diabetes")]
    # 3 conditions, 3 observations, 1 event and the demographics: stored by the first, known to the others
    assert [(r.created, r.facts_added, r.facts_known) for r in results] == [(True, 8, 0), (True, 0, 8), (True, 0, 8)]
    assert len(fact_rows(engine, "mm-01")) == 8
    # one exacerbation in a year is one, whichever pathway reads it: COPD's "two or more a year" does not hold
    copd = runtimes.get("copd")
    facts = store.patient_facts("mm-01")
    reader = Reader(copd.evaluator.timeline(facts, DAY), copd.evaluator.plan.facts, copd.evaluator.plan.derived, DAY)
    assert reader.read(Atom("count", "exacerbation_with_ocs", Duration(1, "y"))).value == 1
    advanced = advance_one(store, runtimes, results[1].enrollment, FixedClock.on(DAY))
    assert "frequente_exacerbaties" not in {e.step for e in advanced.events if e.kind == "escalated"}
    # the same file again, as a later export would bring it: nothing new
    again = enroll_patient(store, runtimes, "copd", read, "file:mm-01-again.json", FixedClock.on(DAY))
    assert (again.created, again.facts_added, again.facts_known) == (False, 0, 8)
    with engine.connect() as c:
        added = [e["payload"] for e in audit.entries(c, audit.Query(patient="mm-01", action="facts.added"))]
    assert [(p["added"], p["already_known"]) for p in added] == [(8, 0)]  # what brought nothing new changed nothing


def test_a_store_written_before_facts_were_per_patient_is_migrated_with_duplicates_removed_and_audited(tmp_path):
    """tests/fixtures/stores/c6acbe4.db: written by the code of c6acbe4, which stored mm-01's facts
    once per enrollment (three pathways: everything three times) and demo-dm-01's twice."""
    path = tmp_path / "store.db"
    shutil.copy(FIXTURES / "stores" / "c6acbe4.db", path)
    with sqlite3.connect(path) as c:
        assert c.execute("select count(*) from fact where patient_id = 'mm-01' and kind = 'event'").fetchone() == (3,)
    engine = make_engine(f"sqlite:///{path}")
    store = store_on(engine, dt.date(2026, 12, 11))
    kinds = {}
    for kind, _ in fact_rows(engine, "mm-01"):
        kinds[kind] = kinds.get(kind, 0) + 1
    assert kinds == {"condition": 3, "demographics": 1, "event": 1, "observation": 3}
    assert len(fact_rows(engine, "demo-dm-01")) == 6  # 4 observations, 1 condition, the demographics
    assert len(fact_rows(engine, "demo-dm-02")) == 6  # in one pathway only: its empty indications record went, nothing else
    with engine.connect() as c:
        entries = list(audit.entries(c, audit.Query(action="facts.deduplicated")))
        assert audit.verify(c).intact
    assert {(e["patient_id"], e["payload"]["total"]) for e in entries} == {("mm-01", 16), ("demo-dm-01", 6)}
    assert entries[0]["payload"]["removed"] == {"condition": 1, "demographics": 1, "observation": 4}
    # the migrated store goes on: a fact added twice is still stored once
    facts = store.patient_facts("mm-01")
    assert len(facts.events) == 1 and len(facts.observations) == 3
    assert store.add_patient_facts(facts, "again") == (0, 8)
    migrate(engine)  # a second migration changes nothing
    assert len(fact_rows(engine, "mm-01")) == 8


def test_the_fact_migration_removes_duplicates_on_either_database(engine):
    """Revision 0003 on a database at 0002 with duplicate rows (SQLite, and PostgreSQL in CI)."""
    from alembic import command
    from alembic.config import Config

    from pathways.store.connect import MIGRATIONS

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0002")
        connection.execute(sa.text("insert into patient (id, created_at) values ('p1', '2026-01-01 00:00:00')"))
        observation = json.dumps({"fact": "hba1c_mmol_mol", "value": 60, "unit": "mmol/mol", "at": "2026-01-02"})
        other = json.dumps({"fact": "hba1c_mmol_mol", "value": 58, "unit": "mmol/mol", "at": "2026-02-02"})
        for payload in (observation, observation, other, observation):
            connection.execute(sa.text("insert into fact (patient_id, kind, payload, observed_on, source, recorded_at) "
                                       "values ('p1', 'observation', :p, '2026-01-02', 'f', '2026-01-03 00:00:00')"), {"p": payload})
    migrate(engine)
    assert [json.loads(p)["value"] for _, p in fact_rows(engine, "p1")] == [60, 58]
    with engine.connect() as c:
        (entry,) = audit.entries(c, audit.Query(action="facts.deduplicated"))
    assert entry["patient_id"] == "p1" and entry["payload"]["removed"] == {"observation": 2}
    with pytest.raises(sa.exc.IntegrityError):  # the database itself keeps a fact once per patient
        with engine.begin() as c:
            fingerprint = c.execute(sa.text("select fingerprint from fact limit 1")).scalar()
            c.execute(sa.text("insert into fact (patient_id, kind, payload, source, recorded_at, fingerprint) "
                              "values ('p1', 'observation', '{}', 'x', '2026-01-03 00:00:00', :f)"), {"f": fingerprint})


# -- new facts flow in -------------------------------------------------------------------------

def _hf_patient(tmp_path, engine, potassium: float = 4.6):
    store = store_on(engine, dt.date(2026, 11, 2))
    runtimes = Runtimes()
    path = tmp_path / "hf.json"
    path.write_text(json.dumps({
        "patient": "hf-1", "demographics": {"birth_date": "1948-04-01", "sex": "male"},
        "conditions": [{"fact": "hf_diagnosis", "onset": "2024-02-01"}],
        "observations": [{"fact": "potassium_mmol_l", "value": potassium, "unit": "mmol/L", "at": "2026-10-28"}],
    }), encoding="utf-8")
    enrolled = enroll_patient(store, runtimes, "heartfailure", load_patient_file(path), "file:hf.json", FixedClock.on(dt.date(2026, 11, 2)))
    advance_one(store, runtimes, enrolled.enrollment, FixedClock.on(dt.date(2026, 11, 2)))
    return store, runtimes, enrolled.enrollment


def _facts(patient="hf-1", **kw) -> PatientFacts:
    return PatientFacts(patient=patient, **kw)


def test_new_facts_are_added_once_and_refused_whole_when_any_is_wrong(tmp_path, engine):
    store, runtimes, enrollment = _hf_patient(tmp_path, engine)
    clock = FixedClock.on(dt.date(2026, 11, 20))
    new = _facts(observations=(Observation(fact="potassium_mmol_l", value=6.2, unit="mmol/L", at=dt.date(2026, 11, 19)),
                               Observation(fact="potassium_mmol_l", value=4.6, unit="mmol/L", at=dt.date(2026, 10, 28))))
    added = add_facts(store, runtimes, "hf-1", new, {}, "file:lab.json", clock, "lab.json")
    assert (added.added, added.known, added.enrollments) == (1, 1, {"heartfailure": [enrollment]})
    again = add_facts(store, runtimes, "hf-1", new, {}, "file:lab.json", clock, "lab.json")
    assert (again.added, again.known) == (0, 2)
    rows = len(fact_rows(engine, "hf-1"))
    bad = _facts(observations=(Observation(fact="potassium_mmol_l", value=5.0, unit="mmol/L", at=dt.date(2026, 11, 21)),   # after today
                               Observation(fact="potassium_mmol_l", value=5.1, unit="mmol/L", at=dt.date(1940, 1, 1)),     # before birth
                               Observation(fact="potassium_mmol_l", value=5.2, unit="kg", at=dt.date(2026, 11, 18)),       # wrong unit
                               Observation(fact="potassium_mmol_l", value=4.9, unit="mmol/L", at=dt.date(2026, 11, 18))))  # fine
    with pytest.raises(FactsRefused) as refused:
        add_facts(store, runtimes, "hf-1", bad, {}, "file:bad.json", clock, "bad.json")
    problems = refused.value.problems
    assert problems[0] == "bad.json: observations[0].at: dated 2026-11-21, after today (2026-11-20): give facts that have happened"
    assert problems[1] == "bad.json: observations[1].at: dated 1940-01-01, before the patient was born (1948-04-01)"
    assert problems[2].startswith("bad.json: ") and "potassium_mmol_l" in problems[2] and "kg" in problems[2] and problems[2].endswith("(heartfailure)")
    assert problems[-1] == "nothing stored" and len(problems) == 4
    assert len(fact_rows(engine, "hf-1")) == rows  # nothing of the file was stored
    with pytest.raises(FactsRefused, match=r"unknown patient 'nobody': enrol the patient first .*--enroll PATHWAY"):
        add_facts(store, runtimes, "nobody", _facts("nobody"), {}, "f", clock, "x.json")
    other = _facts("someone-else", demographics=Demographics(birth_date=dt.date(1960, 1, 1)))
    with pytest.raises(FactsRefused) as refused:
        add_facts(store, runtimes, "hf-1", other, {}, "f", clock, "other.json")
    assert refused.value.problems[:2] == [
        "other.json: patient: the file is of patient 'someone-else', not 'hf-1' (add it to that patient, or correct the file's \"patient\")",
        "other.json: demographics.birth_date: 1960-01-01, but patient 'hf-1' was born on 1948-04-01: the file is of another patient",
    ]


# -- escalations: one episode, acted on once ---------------------------------------------------

def _potassium(*values: tuple[str, float]) -> tuple[Observation, ...]:
    return tuple(Observation(fact="potassium_mmol_l", value=v, unit="mmol/L", at=dt.date.fromisoformat(d)) for d, v in values)


def _hf(observations) -> PatientFacts:
    return PatientFacts(patient="p-esc", demographics=Demographics(birth_date=dt.date(1950, 3, 1), sex="female"),
                        conditions=(Condition(fact="hf_diagnosis", onset=dt.date(2020, 1, 1)),), observations=observations)


def _escalated(events) -> list[str]:
    return [e.step for e in events if e.kind == "escalated"]


def test_an_escalation_opens_once_stays_closed_while_it_holds_and_reopens_after_recovery():
    runtime = Runtime(load_pathway("heartfailure"))
    state = enroll(runtime.loaded, "e1", "p-esc", dt.date(2026, 1, 5), runtime.evaluator)
    high = _potassium(("2026-01-02", 6.1))
    state, events, _ = runtime.advance(state, _hf(high), FixedClock.on(dt.date(2026, 1, 5)))
    assert _escalated(events) == ["hyperkaliemie"]
    state, events, _ = runtime.record(state, "hyperkaliemie", {}, _hf(high), FixedClock.on(dt.date(2026, 1, 6)), require_all=False)
    assert "hyperkaliemie" not in state.escalations and state.closed_escalations["hyperkaliemie"].how == "done"
    # the value stays high for weeks (no new lab yet): acted on already, not opened again
    for day in (7, 14, 21, 60):
        state, events, _ = runtime.advance(state, _hf(high), FixedClock.on(dt.date(2026, 1, 6) + dt.timedelta(days=day)))
        assert _escalated(events) == []
    # the patient recovers, then potassium rises again: a new episode
    recovered = high + _potassium(("2026-03-20", 4.8))
    state, events, _ = runtime.advance(state, _hf(recovered), FixedClock.on(dt.date(2026, 3, 21)))
    assert _escalated(events) == [] and state.closed_escalations["hyperkaliemie"].recovered
    again = recovered + _potassium(("2026-04-10", 6.4))
    state, events, _ = runtime.advance(state, _hf(again), FixedClock.on(dt.date(2026, 4, 11)))
    (event,) = [e for e in events if e.kind == "escalated"]
    assert event.step == "hyperkaliemie" and event.detail["reopened"] == "the trigger holds again after it stopped holding since 2026-01-06"
    # a documented resolution closes it too, with its reason
    state, events = runtime.resolve(state, "hyperkaliemie", "kalium herhaald: hemolytisch monster", FixedClock.on(dt.date(2026, 4, 12)))
    assert [(e.kind, e.reasons) for e in events] == [("resolved", ("kalium herhaald: hemolytisch monster",))]
    state, events, _ = runtime.advance(state, _hf(again), FixedClock.on(dt.date(2026, 4, 20)))
    assert _escalated(events) == []
    with pytest.raises(RecordError, match="'hyperkaliemie' is not an open escalation"):
        runtime.resolve(state, "hyperkaliemie", "again", FixedClock.on(dt.date(2026, 4, 21)))

HYPERKALIEMIE = "      trigger: potassium_mmol_l > potassium_max\n"


def _hf_copy_with(tmp_path, extra: str) -> tuple[Path, int]:
    """A copy of the shipped pathways whose heart-failure escalation hyperkaliemie has ``extra``
    (one YAML line) after its trigger: the copy's pathway file and that line's number."""
    folder = tmp_path / "pathways"
    shutil.copytree(ROOT / "pathways", folder)
    path = folder / "heartfailure" / "pathway.yaml"
    text = path.read_text(encoding="utf-8")
    assert HYPERKALIEMIE in text
    path.write_text(text.replace(HYPERKALIEMIE, HYPERKALIEMIE + extra), encoding="utf-8")
    return path, text[:text.index(HYPERKALIEMIE)].count("\n") + 2


def test_reopen_after_opens_an_escalation_again_while_it_keeps_holding(tmp_path):
    path, _ = _hf_copy_with(tmp_path, "      reopen_after: 4w\n")
    runtime = Runtime(load_pathway(str(path)))
    state = enroll(runtime.loaded, "e1", "p-esc", dt.date(2026, 1, 5), runtime.evaluator)
    high = _hf(_potassium(("2026-01-02", 6.1)))
    state, events, _ = runtime.advance(state, high, FixedClock.on(dt.date(2026, 1, 5)))
    state, _, _ = runtime.record(state, "hyperkaliemie", {}, high, FixedClock.on(dt.date(2026, 1, 6)), require_all=False)
    state, events, _ = runtime.advance(state, high, FixedClock.on(dt.date(2026, 2, 2)))  # 27 days after it was closed
    assert _escalated(events) == []
    state, events, _ = runtime.advance(state, high, FixedClock.on(dt.date(2026, 2, 3)))  # 4 weeks
    (event,) = [e for e in events if e.kind == "escalated"]
    assert event.detail["reopened"] == "the trigger still holds 4w (reopen_after) after it was closed on 2026-01-06"


def test_reopen_after_must_be_a_duration(tmp_path):
    path, line = _hf_copy_with(tmp_path, "      reopen_after: soon\n")
    done = run_cli("validate", str(path))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"{path}:{line}:" in done.stdout + done.stderr and "'soon' is not a duration" in done.stdout + done.stderr


def test_a_year_of_the_demo_cohort_escalates_each_episode_once():
    """The demo patients' values stay as they are in the simulation (each step records the latest
    known values again), so each escalation whose trigger holds is one episode, acted on once:
    - demo-dm-01: eGFR 78, HbA1c 61, no glucose: no trigger holds.
    - demo-dm-02 (76 years): eGFR 38, in the consultation band for 65-plussers (30 <= eGFR < 45
      with age >= 65, `kidney_consultation`): consultatie_nefroloog once.
    - demo-dm-03 (82 years): eGFR 26, under the referral limit of 30 for 65-plussers
      (`kidney_referral`): verwijzing_nefroloog once.
    - demo-dm-04: glucose 3.1 mmol/L, under hypo_glucose (4.0): hypoglykemie once.
    Before the life cycle each of these opened again every week (53 a year)."""
    done = run_cli("simulate", "diabetes", "--patients", str(ROOT / "examples" / "cohort-diabetes"), "--months", "12",
                   "--start", "2026-11-01", "--json")
    assert done.returncode == 0, done.stderr
    patients = {p["patient"]: p for p in json.loads(done.stdout)["patients"]}
    assert {p: row["escalations_by_step"] for p, row in patients.items()} == {
        "demo-dm-01": {}, "demo-dm-02": {"consultatie_nefroloog": 1}, "demo-dm-03": {"verwijzing_nefroloog": 1}, "demo-dm-04": {"hypoglykemie": 1}}
    assert {p: row["escalations"] for p, row in patients.items()} == {"demo-dm-01": 0, "demo-dm-02": 1, "demo-dm-03": 1, "demo-dm-04": 1}
    for row in patients.values():
        assert set(row) >= {"patient", "steps_done", "reviews_done", "escalations", "goals_met", "goals_missed"}
        # one HbA1c goal is agreed with each patient; the quarterly control measures it by its deadline (13 weeks)
        assert row["goals_agreed"] == 1 and row["goals_met"] + row["goals_missed"] + row["goals_not_measured"] == 1
    # demo-dm-01: HbA1c 61 against the standard target of 53 (not older, not frail): missed
    assert patients["demo-dm-01"]["goals_missed"] == 1


# -- goals and records over time ----------------------------------------------------------------

def _dm_runtime_and_state():
    runtime = Runtime(load_pathway("diabetes"))
    facts = PatientFacts(patient="p-goal", demographics=Demographics(birth_date=dt.date(1962, 3, 14), sex="male"),
                         conditions=(Condition(fact="dm2_diagnosis", onset=dt.date(2020, 1, 1)),),
                         observations=(Observation(fact="hba1c_mmol_mol", value=61, unit="mmol/mol", at=dt.date(2026, 1, 2)),
                                       Observation(fact="frail", value=False, at=dt.date(2026, 1, 2)),
                                       Observation(fact="treatment_step", value="metformine", at=dt.date(2026, 1, 2))))
    return runtime, facts


def _goal_agreed(runtime, facts):
    from pathways.runtime.core import GoalProgress

    state = enroll(runtime.loaded, "g1", "p-goal", dt.date(2026, 1, 5), runtime.evaluator)
    goal = GoalProgress(step="doelen_afspreken", fact="hba1c_mmol_mol", target="<= hba1c_target_standard",
                        agreed_on=dt.date(2026, 1, 10), deadline=dt.date(2026, 4, 11), baseline=61, latest=61)
    return state.model_copy(update={"goals": {"hba1c_standaard": goal}, "as_of": dt.date(2026, 1, 10)})


def test_a_goal_without_a_measurement_since_it_was_agreed_is_not_measured():
    runtime, facts = _dm_runtime_and_state()
    state = _goal_agreed(runtime, facts)
    state, events, _ = runtime.advance(state, facts, FixedClock.on(dt.date(2026, 4, 11)))  # the deadline: its review may still come today
    assert state.goals["hba1c_standaard"].status == "open"
    state, events, _ = runtime.advance(state, facts, FixedClock.on(dt.date(2026, 4, 12)))
    (event,) = [e for e in events if e.kind.startswith("goal_")]
    assert event.kind == "goal_not_measured" and state.goals["hba1c_standaard"].status == "not_measured"
    assert event.reasons == ("hba1c_mmol_mol was not measured between 2026-01-10 and 2026-04-11, target <= hba1c_target_standard",)
    # measured on the deadline's day: judged on it
    state = _goal_agreed(runtime, facts)
    measured = facts.model_copy(update={"observations": (*facts.observations, Observation(fact="hba1c_mmol_mol", value=52, unit="mmol/mol", at=dt.date(2026, 4, 11)))})
    state, events, _ = runtime.advance(state, measured, FixedClock.on(dt.date(2026, 4, 11)))
    assert [e.kind for e in events if e.kind.startswith("goal_")] == ["goal_met"] and state.goals["hba1c_standaard"].status == "met"


def test_records_are_checked_in_time_done_at_once_and_never_twice(tmp_path, engine):
    store, runtimes, enrollment = _hf_patient(tmp_path, engine)
    state, _ = store.load(enrollment)
    due = next(s for s, p in state.steps.items() if p.status == "due")
    with pytest.raises(RecordError, match=r"2026-11-01 is before .* was enrolled \(2026-11-02\): give --at 2026-11-02 or later"):
        record_step(store, runtimes, enrollment, due, {}, FixedClock.on(dt.date(2026, 11, 1)), require_all=False)
    with pytest.raises(RecordError, match=r"2026-11-10 is in the future \(today is 2026-11-05\)"):
        record_step(store, runtimes, enrollment, due, {}, FixedClock.on(dt.date(2026, 11, 10)), require_all=False, today=dt.date(2026, 11, 5))
    events = record_step(store, runtimes, enrollment, due, {}, FixedClock.on(dt.date(2026, 11, 4)), require_all=False, today=dt.date(2026, 11, 5))
    state, _ = store.load(enrollment)
    # done at once: no advance needed for the step to show as done and what it unblocks to come due
    assert state.steps[due].done_on == (dt.date(2026, 11, 4),) and state.steps[due].status in ("finished", "waiting")
    assert state.as_of == dt.date(2026, 11, 4) and ("done", due) in [(e.kind, e.step) for e in events]
    assert any(e.kind == "due" for e in events)  # the steps that required it
    with pytest.raises(RecordError) as twice:
        record_step(store, runtimes, enrollment, due, {}, FixedClock.on(dt.date(2026, 11, 5)), require_all=False)
    assert str(twice.value).startswith(f"step '{due}' was recorded already on 2026-11-04 by ")
    assert "(admin, entered 2026-11-02)" in str(twice.value) or "entered" in str(twice.value)


def test_a_recorded_urgent_value_escalates_at_once(tmp_path, engine):
    store, runtimes, enrollment = _hf_patient(tmp_path, engine)
    assert store.load(enrollment)[0].steps["intake_poh"].status == "due"
    events = record_step(store, runtimes, enrollment, "intake_poh", {}, FixedClock.on(dt.date(2026, 11, 3)), require_all=False)
    assert ("due", "laboratorium_voor_start") in [(e.kind, e.step) for e in events]  # unblocked in the same command
    events = record_step(store, runtimes, enrollment, "laboratorium_voor_start", {"potassium_mmol_l": 6.4, "sodium_mmol_l": 139,
                         "creatinine_umol_l": 95, "egfr_ml_min_1_73m2": 61}, FixedClock.on(dt.date(2026, 11, 4)))
    assert _escalated(events) == ["hyperkaliemie"]
    (event,) = [e for e in events if e.kind == "escalated"]
    assert event.detail["facts"]["potassium_mmol_l"] == 6.4
    assert "hyperkaliemie" in store.load(enrollment)[0].escalations


def test_a_patient_known_for_years_is_enrolled_part_way(engine):
    store = store_on(engine)
    runtimes = Runtimes()
    read = load_patient_file(ROOT / "examples" / "cohort-diabetes" / "demo-dm-01.json")
    enrolled = enroll_patient(store, runtimes, "diabetes", read, "file:demo-dm-01.json", FixedClock.on(DAY), from_stage="interventions")
    state, _ = store.load(enrolled.enrollment)
    spec = runtimes.get("diabetes").spec
    earlier = {s.id for s in spec.steps if s.stage in ("intake", "anamnesis", "goals")}
    assert earlier and all(state.steps[s].done_on == (DAY,) for s in earlier)
    assert all(not state.steps[s.id].done_on for s in spec.steps if s.id not in earlier)
    with store.engine.connect() as c:
        marked = [e["subject"] for e in audit.entries(c, audit.Query(enrollment=enrolled.enrollment, action="step.done_before"))]
    assert sorted(m.split(":")[1] for m in marked) == sorted(earlier)
    advanced = advance_one(store, runtimes, enrolled.enrollment, FixedClock.on(DAY))
    assert not {e.step for e in advanced.events if e.kind == "due"} & earlier  # not asked again
    with pytest.raises(RecordError, match="'escalation' is not a stage to start from"):
        runtimes.get("diabetes").enroll_from(state, "escalation")


def test_reopen_after_must_move_forward(tmp_path):
    path, line = _hf_copy_with(tmp_path, "      reopen_after: 0d\n")
    done = run_cli("validate", str(path))
    assert done.returncode == 1
    assert f"{path}:{line}:21: PW035 'reopen_after: 0d' of 'hyperkaliemie' would open it again at once" in done.stdout + done.stderr


def test_a_batch_for_an_earlier_day_leaves_an_enrollment_advanced_past_it_as_it_is(tmp_path, engine):
    """A daily run that listed an enrollment as due, and a review run that moved it on first: the
    daily run's batch decides nothing for it instead of failing (the others still advance)."""
    from pathways.orchestration.service import advance_many

    store, runtimes, enrollment = _hf_patient(tmp_path, engine)
    other = enroll_patient(store, runtimes, "heartfailure", load_patient_file(MM), "file:mm-01.json", FixedClock.on(dt.date(2026, 11, 2)))
    advance_one(store, runtimes, enrollment, FixedClock.on(dt.date(2026, 11, 20)))  # the review run, first
    before = store.load(enrollment)
    results = advance_many(store, runtimes, [enrollment, other.enrollment], FixedClock.on(dt.date(2026, 11, 10)))
    assert [(r.enrollment, r.events) for r in results][0] == (enrollment, [])
    assert results[1].events and store.load(enrollment) == before


def test_a_fhir_update_of_another_patient_is_refused(engine):
    store = store_on(engine)
    runtimes = Runtimes()
    synthea = FIXTURES / "fhir" / "synthea"
    enroll_patient(store, runtimes, "diabetes", load_patient_file(synthea / "dm_casimira.json.gz"), "file:c", FixedClock.on(DAY), "pt-cas")
    other = load_patient_file(synthea / "unitless_bp_miguel.json.gz")
    rows = len(fact_rows(engine, "pt-cas"))
    with pytest.raises(FactsRefused) as refused:
        add_facts(store, runtimes, "pt-cas", other.facts, other.identity, "file:m", FixedClock.on(DAY), "miguel.json.gz")
    assert refused.value.problems == [
        "miguel.json.gz: demographics.birth_date: 1937-02-13, but patient 'pt-cas' was born on 1987-03-27: the file is of another patient",
        "nothing stored"]
    assert len(fact_rows(engine, "pt-cas")) == rows
    same = load_patient_file(synthea / "dm_casimira.json.gz")  # the patient's own bundle again: nothing new
    added = add_facts(store, runtimes, "pt-cas", same.facts, same.identity, "file:c", FixedClock.on(DAY), "casimira.json.gz")
    assert (added.added, added.known) == (0, rows)
