"""The runtime core: a simulated year, saved and reloaded after every call, gives identical results."""

from __future__ import annotations

import datetime as dt

import pytest

from pathways.clock import FixedClock
from pathways.definition.loader import load_pathway
from pathways.facts.model import Condition, Demographics, PatientFacts
from pathways.runtime.core import EnrollmentState, RecordError, Runtime, enroll
from pathways.runtime.schedule import add, occurrence_date

START = dt.datetime(2025, 1, 6, 9, tzinfo=dt.timezone.utc)


def outputs(runtime: Runtime, step_id: str, week: int) -> dict:
    """What a POH or lab would record: HbA1c falls from 62 by 1 a month, other values fixed."""
    data = {}
    for output in runtime.steps[step_id].outputs:
        fact = runtime.evaluator.plan.facts[output.fact]
        if fact.type == "quantity":
            data[output.fact] = {"hba1c_mmol_mol": 62 - week / 4.3, "egfr_ml_min_1_73m2": 75, "body_weight_kg": 88,
                                 "systolic_bp_mmhg": 135, "diastolic_bp_mmhg": 82, "potassium_mmol_l": 4.4,
                                 "acr_mg_mmol": 1.5, "fasting_glucose_mmol_l": 7.5, "creatinine_umol_l": 90}[output.fact]
        elif fact.type == "boolean":
            data[output.fact] = output.fact in ("dm2_diagnosis", "complaint_free", "risk_factors_controlled")
        elif fact.type == "code":
            data[output.fact] = {"treatment_step": "metformine", "simms_class": "1", "smoking_status": "never"}[output.fact]
    return data


def simulate_year(reload_every_call: bool):
    loaded = load_pathway("diabetes")
    runtime = Runtime(loaded)
    clock = FixedClock(START)
    patient = PatientFacts(patient="sim-1", demographics=Demographics(birth_date=dt.date(1960, 5, 1), sex="male"),
                           conditions=(Condition(fact="dm2_diagnosis", onset=dt.date(2024, 11, 1)),))
    state = enroll(loaded, "enr-1", "sim-1", clock.today(), runtime.evaluator)
    history = []

    def keep(new_state):
        if reload_every_call:  # save and load through JSON, as the store will
            return EnrollmentState.model_validate_json(new_state.model_dump_json())
        return new_state

    for week in range(53):
        state, events, _ = runtime.advance(state, patient, clock)
        state = keep(state)
        history += [(e.kind, e.step, e.on, e.key) for e in events]
        for step_id in [s for s, p in state.steps.items() if p.status == "due"]:
            state, events, observations = runtime.record(state, step_id, outputs(runtime, step_id, week), patient, clock)
            state = keep(state)
            patient = patient.model_copy(update={"observations": (*patient.observations, *observations)})
            history += [(e.kind, e.step, e.on, e.key) for e in events]
        clock.advance(dt.timedelta(days=7))
    return state, history


def test_a_simulated_year_is_identical_when_state_is_saved_and_reloaded_after_every_call():
    in_memory = simulate_year(False)
    reloaded = simulate_year(True)
    assert reloaded[1] == in_memory[1]
    assert reloaded[0] == in_memory[0]


def test_the_simulated_year_follows_the_pathway():
    state, history = simulate_year(False)
    done = {step: p.done_on for step, p in state.steps.items()}
    goals_agreed = done["doelen_afspreken"][0]
    # three-monthly reviews at 13, 26, 39 weeks after the goals, while not well controlled
    assert done["driemaandelijkse_controle"][:3] == tuple(goals_agreed + dt.timedelta(weeks=w) for w in (13, 26, 39))
    # the annual review counts from enrollment
    assert done["jaarcontrole"] == (dt.date(2026, 1, 5),)
    assert done["metformine_starten"] == ()  # treatment_step metformine: gated, with its reason
    assert ("gated", "metformine_starten") in [(k, s) for k, s, _, _ in history]
    kinds = [k for k, *_ in history]
    assert kinds.count("indicated") == 1 and "goal_agreed" in kinds and ("goal_met" in kinds or "goal_missed" in kinds)
    keys = [key for kind, _, _, key in history if kind in ("due", "gated", "escalated")]
    assert len(keys) == len(set(keys))  # one decision per step run and outcome
    # a review gated for one occurrence can become due for the same occurrence later: same run
    runs = [(kind, key.rsplit(":", 1)[0]) for kind, step, _, key in history if step == "halfjaarlijkse_controle" and kind in ("gated", "due")]
    assert ("gated", "enr-1:halfjaarlijkse_controle:2025-08-04") in runs and ("due", "enr-1:halfjaarlijkse_controle:2025-08-04") in runs


def test_record_validates_outputs_against_the_declaration():
    loaded = load_pathway("diabetes")
    runtime = Runtime(loaded)
    clock = FixedClock(START)
    patient = PatientFacts(patient="p", demographics=Demographics(birth_date=dt.date(1960, 1, 1)),
                           conditions=(Condition(fact="dm2_diagnosis", onset=dt.date(2020, 1, 1)),))
    state = enroll(loaded, "e", "p", clock.today(), runtime.evaluator)
    state, _, _ = runtime.advance(state, patient, clock)
    with pytest.raises(RecordError) as info:
        runtime.record(state, "intake_huisarts", {"fasting_glucose_mmol_l": "high", "weight": 80}, patient, clock)
    assert info.value.problems == [
        "'weight' is not an output of step 'intake_huisarts' (outputs: fasting_glucose_mmol_l, dm2_diagnosis)",
        "required output 'dm2_diagnosis' of step 'intake_huisarts' is missing",
        "fasting_glucose_mmol_l: expected a number, got 'high'",
    ]
    with pytest.raises(RecordError) as info:
        runtime.record(state, "jaarcontrole", {}, patient, clock)
    assert info.value.problems == ["step 'jaarcontrole' is not due (status waiting)"]
    with pytest.raises(ValueError):
        runtime.advance(state, patient, FixedClock(START - dt.timedelta(days=1)))


def test_escalation_opens_once_and_closes_when_recorded():
    loaded = load_pathway("heartfailure")
    runtime = Runtime(loaded)
    clock = FixedClock(START)
    from pathways.facts.model import Observation

    patient = PatientFacts(patient="p", demographics=Demographics(birth_date=dt.date(1940, 1, 1)),
                           conditions=(Condition(fact="hf_diagnosis", onset=dt.date(2020, 1, 1)),),
                           observations=(Observation(fact="potassium_mmol_l", value=5.9, unit="mmol/L", at=clock.today()),))
    state = enroll(loaded, "e", "p", clock.today(), runtime.evaluator)
    state, events, _ = runtime.advance(state, patient, clock)
    assert [(e.kind, e.step, e.detail["severity"]) for e in events if e.kind == "escalated"] == [("escalated", "hyperkaliemie", "spoed")]
    state, events, _ = runtime.advance(state, patient, clock)
    assert [e for e in events if e.kind == "escalated"] == []  # still open: not raised twice
    state, events, _ = runtime.record(state, "hyperkaliemie", {}, patient, clock)
    assert "hyperkaliemie" not in state.escalations and [e.kind for e in events] == ["done"]


def test_calendar_arithmetic_and_recurrence():
    from pathways.definition.durations import Duration
    from pathways.definition.model import Timing

    assert add(dt.date(2026, 1, 31), Duration(1, "mo")) == dt.date(2026, 2, 28)
    assert add(dt.date(2024, 2, 29), Duration(1, "y")) == dt.date(2025, 2, 28)
    timing = Timing(at=(Duration(4, "w"), Duration(12, "w"), Duration(24, "w")), every=Duration(13, "w"))
    anchor = dt.date(2026, 1, 5)
    assert [occurrence_date(timing, anchor, n) for n in range(5)] == [
        dt.date(2026, 2, 2), dt.date(2026, 3, 30), dt.date(2026, 6, 22), dt.date(2026, 9, 21), dt.date(2026, 12, 21)]
    assert occurrence_date(Timing(offset=Duration(1, "y")), anchor, 1) is None
    assert occurrence_date(Timing(every=Duration(6, "mo"), until=Duration(1, "y")), anchor, 3) is None


def test_simulation_runs_through_reviews_and_escalations_without_inventing_values():
    from pathways.facts.model import Observation
    from pathways.runtime.simulate import simulate

    runtime = Runtime(load_pathway("heartfailure"))
    start = dt.date(2025, 1, 6)
    patient = PatientFacts(
        patient="sim-hf", demographics=Demographics(birth_date=dt.date(1945, 2, 1), sex="male"),
        conditions=(Condition(fact="hf_diagnosis", onset=dt.date(2024, 6, 1)),),
        observations=tuple(Observation(fact=f, value=v, unit=u, at=start) for f, v, u in [
            ("potassium_mmol_l", 5.8, "mmol/L"), ("body_weight_kg", 80, "kg"), ("nyha_class", 3, None),
            ("systolic_bp_mmhg", 125, "mm[Hg]"), ("sodium_mmol_l", 139, "mmol/L"), ("creatinine_umol_l", 110, "umol/L"),
            ("egfr_ml_min_1_73m2", 55, "mL/min/{1.73_m2}")]),
    )
    result = simulate(runtime, patient, start, 12)
    done = [e.step for e in result.events if e.kind == "done"]
    # three-monthly review: at 4 and 12 weeks, then every 13 weeks, after the goals were agreed
    assert done.count("controle_huisarts") >= 4
    # potassium 5.8 stays in the record: the escalation reopens after each sign-off, once a week at most
    assert 1 <= [e.step for e in result.events if e.kind == "escalated"].count("hyperkaliemie") <= 53
    assert "intake_poh" not in result.without_input  # its outputs were all known
    assert "zelfredzaamheid_thuis" in result.without_input  # no value for it: completed without, and said so
