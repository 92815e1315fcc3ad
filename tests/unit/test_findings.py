"""Findings: a decision's basis written as a clinician writes it, with only the branch of a rule
that held, from the explanation the rules layer gives (as the runtime stores it), and values,
units and codes shown in the letter's language."""

from __future__ import annotations

import datetime as dt

import pytest

from pathways.definition import wording as W
from pathways.definition.loader import load_pathway
from pathways.facts.model import PatientFacts
from pathways.rules.evaluate import PathwayEvaluator
from pathways.views.findings import Findings

AT = dt.date(2026, 10, 20)
KIDNEY = "trigger:verwijzing_nefroloog"


def patient(born: str, sex: str, egfr: float | None, acr: float) -> PatientFacts:
    observations = [{"fact": "acr_mg_mmol", "value": acr, "unit": "mg/mmol", "at": "2026-10-15"}]
    if egfr is not None:
        observations.append({"fact": "egfr_ml_min_1_73m2", "value": egfr, "unit": "mL/min/{1.73_m2}", "at": "2026-10-15"})
    return PatientFacts.model_validate({
        "patient": "p-findings", "demographics": {"birth_date": born, "sex": sex},
        "conditions": [{"fact": "dm2_diagnosis", "onset": "2016-04-01"}], "observations": observations,
    })


@pytest.fixture(scope="module")
def evaluator():
    return PathwayEvaluator(load_pathway("diabetes"))


def written(evaluator, facts: PatientFacts, lang: str, outcome=True, condition=KIDNEY, writer_plan=None) -> list[str]:
    """What the runtime stores (explanation lines and values read), written back as findings."""
    explanation = evaluator.evaluate(facts, AT, AT).explanations[condition]
    return Findings(writer_plan or evaluator.plan, lang).of(condition, explanation.lines, explanation.used, outcome)


def test_an_82_year_old_is_referred_on_the_over_65_branch_only(evaluator):
    facts = patient("1944-06-30", "female", 26, 3)
    assert written(evaluator, facts, "nl") == [
        "Leeftijd 82 jaar, op of boven de leeftijdsgrens van 65 jaar",
        "eGFR 26 ml/min/1,73m² (15 oktober 2026), onder de verwijsgrens van 30 voor 65-plussers",
    ]
    assert written(evaluator, facts, "en") == [
        "Age 82 years, at or above the age limit of 65 years",
        "eGFR 26 ml/min/1.73m² (15 October 2026), below the referral threshold of 30 for patients aged 65 and over",
    ]


def test_a_60_year_old_is_referred_on_the_under_65_branch_and_macroalbuminuria_by_sex(evaluator):
    facts = patient("1966-01-10", "male", 40.5, 31)
    assert written(evaluator, facts, "nl") == [
        "Geslacht: man",
        "ACR 31 mg/mmol (15 oktober 2026), boven de grens van 25 voor macroalbuminurie bij mannen",
        "Leeftijd 60 jaar, onder de leeftijdsgrens van 65 jaar",
        "eGFR 40,5 ml/min/1,73m² (15 oktober 2026), onder de verwijsgrens van 45 voor patiënten jonger dan 65",
    ]


def test_what_did_not_hold_and_what_was_missing(evaluator):
    fine = patient("1966-01-10", "female", 70, 3)
    found = written(evaluator, fine, "nl", outcome=False)
    assert "eGFR 70 ml/min/1,73m² (15 oktober 2026), op of boven de verwijsgrens van 45 voor patiënten jonger dan 65" in found
    assert "ACR 3 mg/mmol (15 oktober 2026), op of onder de grens van 35 voor macroalbuminurie bij vrouwen" in found
    unknown = patient("1966-01-10", "female", None, 3)
    assert written(evaluator, unknown, "nl", outcome=None) == ["eGFR: onbekend"]
    assert written(evaluator, unknown, "en", outcome=None) == ["eGFR: not known"]


def test_the_threshold_is_the_one_decided_with_even_under_a_care_networks_override(evaluator):
    stricter = PathwayEvaluator(load_pathway("diabetes"), {"ckd_refer_egfr_older": 35})
    facts = patient("1944-06-30", "female", 32, 3)
    # the trail's writer knows the published defaults only; the stored explanation has the value decided with
    assert written(stricter, facts, "nl", writer_plan=evaluator.plan)[-1] == (
        "eGFR 32 ml/min/1,73m² (15 oktober 2026), onder de verwijsgrens van 35 voor 65-plussers")


def test_values_that_do_not_give_the_stored_outcome_again_give_no_findings(evaluator):
    explanation = evaluator.evaluate(patient("1944-06-30", "female", 26, 3), AT, AT).explanations[KIDNEY]
    tampered = {**explanation.used, "egfr_ml_min_1_73m2": 50}
    assert Findings(evaluator.plan, "nl").of(KIDNEY, explanation.lines, tampered) == []
    assert Findings(evaluator.plan, "nl").of("trigger:nope", explanation.lines, explanation.used) == []


def test_the_criterion_is_the_rule_title_in_dutch(evaluator):
    assert Findings(evaluator.plan, "nl").criterion(KIDNEY) == "Verwijzen naar internist-nefroloog (LTA chronische nierschade)"
    assert Findings(evaluator.plan, "en").criterion(KIDNEY) is None  # rule titles are Dutch: the letter uses the step's title


@pytest.mark.parametrize("unit, nl, en", [
    ("mL/min/{1.73_m2}", "26,5 ml/min/1,73m²", "26.5 ml/min/1.73m²"),
    ("kg/m2", "26,5 kg/m²", "26.5 kg/m²"),
    ("mm[Hg]", "26,5 mmHg", "26.5 mmHg"),
    ("mmol/mol", "26,5 mmol/mol", "26.5 mmol/mol"),
    ("mmol/L", "26,5 mmol/l", "26.5 mmol/L"),
    ("umol/L", "26,5 µmol/l", "26.5 µmol/L"),
    ("a", "26,5 jaar", "26.5 years"),
    ("%", "26,5%", "26.5%"),
    ("{score}", "26,5", "26.5"),
])
def test_units_are_shown_as_clinicians_write_them(unit, nl, en):
    assert W.quantity_text(26.5, unit, "nl") == nl and W.quantity_text(26.5, unit, "en") == en


def test_coded_values_in_the_letters_language():
    loaded = load_pathway("diabetes")
    sex, step = loaded.facts["sex"], loaded.facts["treatment_step"]
    assert [W.fact_value_text(sex, v, "nl") for v in ("male", "female")] == ["man", "vrouw"]
    assert [W.fact_value_text(sex, v, "en") for v in ("male", "female")] == ["male", "female"]
    assert W.fact_value_text(step, "su", "nl") == "SU-derivaat" and W.fact_value_text(step, "su", "en") == "sulfonylurea"
    assert W.fact_value_text(None, True, "nl") == "ja" and W.number_text(5.95, "nl") == "5,95" and W.number_text(30.0, "nl") == "30"


def test_wording_is_not_part_of_a_versions_key(tmp_path):
    """Labels and value titles only word documents: adding them to a shipped pathway must not
    strand its running enrollments on 'another version'."""
    import re
    import shutil

    from conftest import PATHWAYS_DIR
    from pathways.rules.plan import Plan

    bare = tmp_path / "pathways"
    shutil.copytree(PATHWAYS_DIR, bare)
    for path in bare.rglob("*.yaml"):
        text = path.read_text(encoding="utf-8")
        text = re.sub(r"^( +)value_titles:\n(?:\1 +.*\n)+", "", text, flags=re.M)
        path.write_text(re.sub(r"^ +label: .*\n", "", text, flags=re.M), encoding="utf-8")
    shipped, stripped = load_pathway("diabetes"), load_pathway(str(bare / "diabetes"))
    assert shipped.facts["sex"].value_titles and stripped.facts["sex"].value_titles is None
    assert shipped.parameters["ckd_refer_egfr_older"].label and stripped.parameters["ckd_refer_egfr_older"].label is None
    assert Plan(shipped).version_key == Plan(stripped).version_key
    assert Plan(shipped).version_key != Plan(shipped, {"ckd_refer_egfr_older": 35}).version_key


def test_a_label_naming_an_unknown_parameter_is_found_by_validate(tmp_path, evaluator):
    import shutil

    from conftest import PATHWAYS_DIR
    from pathways.definition.loader import validate_paths

    copy = tmp_path / "pathways"
    shutil.copytree(PATHWAYS_DIR, copy)
    pathway = copy / "diabetes" / "pathway.yaml"
    text = pathway.read_text(encoding="utf-8")
    line = next(i for i, l in enumerate(text.splitlines(), 1) if "voor {ckd_age_boundary_years}-plussers\", en: \"the referral" in l)
    pathway.write_text(text.replace("voor {ckd_age_boundary_years}-plussers\", en: \"the referral", "voor {ckd_age_boundry_years}-plussers\", en: \"the referral"), encoding="utf-8")
    from pathways.errors import WARNINGS

    problems = [(p.code, p.location.line, p.message, p.hint) for p in validate_paths([copy]).problems if p.code not in WARNINGS]
    assert problems == [("PW021", line, "the label of parameter 'ckd_refer_egfr_older' names unknown parameter '{ckd_age_boundry_years}'",
                         "did you mean 'ckd_age_boundary_years'?")]


def test_a_label_reads_the_other_parameters_as_decided(evaluator):
    """A care network that refers from 70 on: the letter says so."""
    older = PathwayEvaluator(load_pathway("diabetes"), {"ckd_age_boundary_years": 70})
    assert written(older, patient("1944-06-30", "female", 26, 3), "nl", writer_plan=evaluator.plan) == [
        "Leeftijd 82 jaar, op of boven de leeftijdsgrens van 70 jaar",
        "eGFR 26 ml/min/1,73m² (15 oktober 2026), onder de verwijsgrens van 30 voor 70-plussers",
    ]
