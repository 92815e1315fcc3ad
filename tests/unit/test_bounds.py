"""No gaps at the boundaries: values left between or-branches (PW050), goals judged before their
fact is measured again (PW051, a warning), and assurance cases exactly at every threshold."""

from __future__ import annotations

import datetime as dt

import pytest

from conftest import FIXTURES
from pathways.definition import expr as E
from pathways.definition.bounds import alternatives_gaps, point_gaps
from pathways.definition.loader import load_pathway
from pathways.rules.cases import Case, boundaries_of, patient_facts
from pathways.rules.evaluate import PathwayEvaluator

LTA_AS_WRITTEN = (
    "macro or (age < boundary and egfr < refer_young) or (age > boundary and egfr < refer_old)"
)
PARAMETERS = {"boundary": 65, "also_65": 65, "refer_young": 45, "refer_old": 30, "flag": True}


def gaps(text: str) -> list[tuple[str, float, str, str]]:
    return [(g.subject, g.value, E.unparse(g.below), E.unparse(g.above)) for g in point_gaps(E.parse(text), PARAMETERS)]


def test_the_kidney_referral_as_the_lta_words_it_leaves_age_65_out():
    assert gaps(LTA_AS_WRITTEN) == [("age", 65.0, "age < boundary", "age > boundary")]


@pytest.mark.parametrize(
    "text",
    [
        LTA_AS_WRITTEN.replace("age > boundary", "age >= boundary"),  # the fix: 65 with the older group
        LTA_AS_WRITTEN.replace("age < boundary", "age <= boundary"),  # or with the younger one
        "age < boundary or age == boundary or age > boundary",  # a branch of its own
        "egfr < refer_old or egfr > refer_young",  # a range left out on purpose is not a point gap
        "age < boundary or egfr > boundary",  # different facts
        "age < boundary and age > boundary",  # 'and' is PW041's business, not a gap
        "age < boundary or (flag and age > boundary) or age >= 60",  # another branch covers 65
    ],
)
def test_no_gap_when_some_branch_takes_the_bound(text):
    assert gaps(text) == []


def test_gaps_by_value_written_the_other_way_round_and_nested():
    assert gaps("age < boundary or age > also_65") == [("age", 65.0, "age < boundary", "age > also_65")]
    assert gaps("b and (-3 > change(w, 3d) or change(w, 3d) > -3)") == [
        ("change(w, 3d)", -3.0, "-3 > change(w, 3d)", "change(w, 3d) > -3")
    ]


def test_durations_and_alternatives_written_as_separate_conditions():
    assert gaps("days_since(d) < 10y or days_since(d) > 10y")[0][:2] == ("days_since(d)", 3652.5)
    whens = [E.parse("not frail and days_since(d) < 10y"), E.parse("not frail and days_since(d) >= 10y"), E.parse("frail")]
    assert alternatives_gaps(whens, PARAMETERS) == []
    whens[1] = E.parse("not frail and days_since(d) > 10y")
    assert [(g.subject, g.bound) for g in alternatives_gaps(whens, PARAMETERS)] == [("days_since(d)", "10y")]


@pytest.mark.parametrize(
    "text, numbers_and_parameters, with_durations",
    [
        ("18", 18.0, 18.0),
        ("-boundary", -65.0, -65.0),
        ("-(refer_old)", -30.0, -30.0),
        ("2w", None, 14.0),  # a duration is a bound of the boundary checks, not a case's threshold
        ("-3d", None, -3.0),
        ("flag", None, None),  # a boolean parameter is no number
        ("unknown", None, None),
        ("age + 1", None, None),
    ],
)
def test_one_evaluator_of_constants_for_bounds_and_cases(text, numbers_and_parameters, with_durations):
    node = E.parse(text)
    assert E.constant_value(node, PARAMETERS) == numbers_and_parameters
    assert E.constant_value(node, PARAMETERS, durations=True) == with_durations


def test_a_pathway_with_only_warnings_loads_and_runs():
    loaded = load_pathway(str(FIXTURES / "broken" / "goal_deadlines"))
    assert loaded.spec.id == "mini"


def _case(birth: str, egfr: float) -> Case:
    return Case.model_validate({
        "id": "grens", "description": "grens", "at": "2026-11-01",
        "patient": {"birth_date": birth, "sex": "male", "conditions": {"dm2_diagnosis": "2012-05-01"},
                    "values": {"egfr_ml_min_1_73m2": egfr, "acr_mg_mmol": 2}},
        "expect": {},
    })


@pytest.mark.parametrize(
    ("birth", "egfr", "escalations"),
    [
        ("1961-06-01", 12, ["verwijzing_nefroloog"]),  # 65: "65 jaar en ouder", eGFR < 30
        ("1961-06-01", 40, ["consultatie_nefroloog"]),  # 65: eGFR 30-45
        ("1962-06-01", 40, ["verwijzing_nefroloog"]),  # 64: "< 65", eGFR < 45
        ("1960-06-01", 40, ["consultatie_nefroloog"]),  # 66
    ],
)
def test_a_65_year_old_belongs_to_the_older_kidney_group(birth, egfr, escalations):
    loaded = load_pathway("diabetes")
    case = _case(birth, egfr)
    result = PathwayEvaluator(loaded).evaluate(patient_facts(case, loaded), case.at, dt.date(2026, 11, 23))
    assert sorted(e.id for e in result.escalations) == escalations


def test_thresholds_that_need_a_case_at_their_bound():
    found = boundaries_of(PathwayEvaluator(load_pathway("diabetes")))
    age = found["age_years < ckd_age_boundary_years"]
    assert (age.where, age.subject, age.bound, age.value) == ("rule:kidney_referral", "age_years", "ckd_age_boundary_years", 65.0)
    assert found["age_years >= 18"].value == 18.0
    assert "treatment_step in [\"su\", \"insuline\"]" not in found  # codes have no bound
    copd = boundaries_of(PathwayEvaluator(load_pathway("copd")))
    decline = copd["change(fev1_l, 1y) < -fev1_decline_l_per_year"]
    assert (decline.bound, decline.value) == ("-fev1_decline_l_per_year", -0.15)
    # an equality is its own bound; booleans and durations are not thresholds
    hf = boundaries_of(PathwayEvaluator(load_pathway("heartfailure")))
    assert "lvef_percent == lvef_reduced_below" not in hf
    assert all(b.subject != "lvef_boundary_is_reduced" for b in hf.values())
