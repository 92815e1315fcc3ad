"""Unit conversion with pint: canonical units, method equations, and refusals."""

from __future__ import annotations

import pytest

from pathways.definition.loader import load_pathway
from pathways.facts.resolve import check_value
from pathways.facts.units import UnitError, to_canonical

FACTS = load_pathway("diabetes").facts


@pytest.mark.parametrize(
    "fact, value, unit, expected",
    [
        ("hba1c_mmol_mol", 7.0, "%", 53.0),  # IFCC-NGSP master equation: 10.929 x % - 23.5
        ("hba1c_mmol_mol", 53, "mmol/mol", 53.0),
        ("fasting_glucose_mmol_l", 126, "mg/dL", 6.994),  # glucose 180.16 g/mol
        ("total_cholesterol_mmol_l", 200, "mg/dL", 5.172),  # cholesterol 386.65 g/mol
        ("ldl_cholesterol_mmol_l", 100, "mg/dL", 2.586),
        ("creatinine_umol_l", 1.0, "mg/dL", 88.40),  # creatinine 113.12 g/mol
        ("body_weight_kg", 72500, "g", 72.5),
        ("egfr_ml_min_1_73m2", 55, "mL/min", 55.0),  # Synthea's second eGFR unit string
        ("acr_mg_mmol", 30, "mg/g", 3.394),
        ("sodium_mmol_l", 138, "mmol/l", 138.0),  # Dutch labs write l
        ("systolic_bp_mmhg", 120, "mm[Hg]", 120.0),
    ],
)
def test_converts_to_the_canonical_unit(fact, value, unit, expected):
    assert to_canonical(FACTS[fact], value, unit).value == pytest.approx(expected, rel=1e-3)


@pytest.mark.parametrize(
    "fact, value, unit, message",
    [
        ("hba1c_mmol_mol", 7.0, "kg", "cannot convert kg to mmol/mol"),
        ("hba1c_mmol_mol", 7.0, "bogus_unit", "unknown unit 'bogus_unit'"),
        ("body_weight_kg", 80, None, "no unit given (expected kg)"),
        ("body_weight_kg", 80, "", "no unit given (expected kg)"),
    ],
)
def test_refuses_units_it_cannot_convert(fact, value, unit, message):
    with pytest.raises(UnitError) as info:
        to_canonical(FACTS[fact], value, unit)
    assert str(info.value) == message


def test_impossible_and_wrongly_typed_values_are_reported_not_used():
    assert check_value(FACTS["body_weight_kg"], 800, "kg") == (None, "800 kg", "800 kg is physiologically impossible (plausible 0.5-400)")
    assert check_value(FACTS["potassium_mmol_l"], 55, "mmol/L")[2] == "55 mmol/L is physiologically impossible (plausible 1-10)"
    assert check_value(FACTS["hba1c_mmol_mol"], "high", "%")[2] == "expected a number, got 'high'"
    assert check_value(FACTS["treatment_step"], "metformin", None)[2] == "'metformin' is not one of leefstijl, metformine, su, insuline"
    assert check_value(FACTS["on_insulin"], "yes", None)[2] == "expected true or false, got 'yes'"
    value, original, problem = check_value(FACTS["hba1c_mmol_mol"], 7.4, "%")
    assert (round(value, 2), original, problem) == (57.37, "7.4 %", "")
