"""FHIR R4 import: Synthea (US units, two eGFR unit strings, unit-less BP components) and Dutch
Nictiz examples (XML, mmol/l, ICPC). Fixtures are copies; a sweep runs over ../shared when present."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path

import pytest

from conftest import FIXTURES, SHARED
from pathways.definition.loader import load_pathway
from pathways.facts.fhir import FhirError, load_fhir
from pathways.rules.evaluate import PathwayEvaluator

FHIR = FIXTURES / "fhir"
TODAY = dt.date(2026, 11, 23)


def test_synthea_diabetes_bundle_becomes_facts_in_canonical_units():
    imported = load_fhir(FHIR / "synthea" / "dm_casimira.json.gz")
    facts = imported.facts
    assert facts.patient.startswith("p-") and len(facts.patient) == 18  # a hash, not the FHIR id
    assert (facts.demographics.birth_date, facts.demographics.sex) == (dt.date(1987, 3, 27), "female")
    result = PathwayEvaluator(load_pathway("diabetes")).evaluate(facts, dt.date(2020, 7, 10), TODAY)
    assert result.issues == []
    assert result.indicated is True  # SNOMED 44054006 active since 2017
    hba1c = result.facts["hba1c_mmol_mol"]  # Synthea gives % (LOINC 4548-4): converted, not mixed
    assert 20 < hba1c < 80
    assert result.facts["egfr_ml_min_1_73m2"] is not None
    assert result.unmapped_codes  # the many US codes no fact uses are reported, not guessed
    assert all(": " in line for line in result.unmapped_codes)


def test_unitless_blood_pressure_components_take_loincs_unit_and_are_noted():
    imported = load_fhir(FHIR / "synthea" / "unitless_bp_miguel.json.gz")
    notes = [n for n in imported.notes if "has no unit; LOINC defines it in mm[Hg]" in n]
    assert len(notes) == 128
    result = PathwayEvaluator(load_pathway("heartfailure")).evaluate(imported.facts, dt.date(2009, 12, 1), TODAY)
    assert result.issues == []
    assert 60 < result.facts["systolic_bp_mmhg"] < 250
    assert result.indicated is True  # 88805009 chronic congestive heart failure
    after_death = PathwayEvaluator(load_pathway("heartfailure")).evaluate(imported.facts, dt.date(2010, 6, 1), TODAY)
    assert after_death.indicated is False  # died 2009-12-27


@pytest.mark.parametrize(
    "name, code, value, unit",
    [
        ("nl-core-BodyWeight-zib-1.xml", "29463-7", 72.0, "kg"),
        ("nl-core-LaboratoryTestResult-01.xml", "2947-0", 138.0, "mmol/l"),
    ],
)
def test_nictiz_xml_observations(name, code, value, unit):
    observations = load_fhir(FHIR / "nictiz" / name).facts.observations
    assert [(o.all_codes[0].code, o.value, o.unit) for o in observations] == [(code, value, unit)]


def test_nictiz_blood_pressure_and_icpc_condition_reach_the_diabetes_pathway(tmp_path):
    bp = load_fhir(FHIR / "nictiz" / "nl-core-BloodPressure-zib-1.xml").facts
    assert sorted((o.all_codes[0].code, o.value) for o in bp.observations) == [("8462-4", 75.0), ("8480-6", 125.0)]
    problem = load_fhir(FHIR / "nictiz" / "nl-core-EpisodeOfCare-zib-2-Problem-1.xml").facts
    assert [(c.all_codes[0].system, c.all_codes[0].code, c.onset) for c in problem.conditions] == [
        ("http://hl7.org/fhir/sid/icpc-1-nl", "T90.02", dt.date(2014, 5, 21))
    ]
    combined = problem.model_copy(update={"observations": bp.observations})
    result = PathwayEvaluator(load_pathway("diabetes")).evaluate(combined, dt.date(2025, 1, 1), TODAY)
    assert result.facts["dm2_diagnosis"] is True and result.facts["systolic_bp_mmhg"] == 125.0


@pytest.mark.parametrize(
    "content, message",
    [
        (b'{"resourceType": "Bundle", "entry": [', "malformed JSON"),
        (b'{"hello": 1}', "not a FHIR resource (no resourceType)"),
        (json.dumps({"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Observation", "id": "o1", "status": "final", "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]}, "valueQuantity": {"value": "heavy"}}}]}).encode(), "Bundle.entry[0] (Observation/o1): invalid Observation"),
        (b"<Observation xmlns='http://hl7.org/fhir'><status value='final'/>", "malformed XML"),
    ],
)
def test_bad_fhir_is_a_clear_error_with_the_place(tmp_path, content, message):
    suffix = ".xml" if content.startswith(b"<") else ".json"
    path = tmp_path / f"bad{suffix}"
    path.write_bytes(content)
    with pytest.raises(FhirError) as info:
        load_fhir(path)
    assert message in str(info.value) and str(path) in str(info.value)


def test_gzip_and_plain_json_give_the_same_facts(tmp_path):
    plain = tmp_path / "bundle.json"
    plain.write_bytes(gzip.decompress((FHIR / "synthea" / "dm_casimira.json.gz").read_bytes()))
    assert load_fhir(plain).facts == load_fhir(FHIR / "synthea" / "dm_casimira.json.gz").facts


# -- sweep over ../shared/data/fhir when it is there --------------------------------------
SYNTHEA = SHARED / "data" / "fhir" / "synthea-r4"
CONDITION_CODES = {"diabetes": {"44054006"}, "copd": {"185086009", "87433001"}, "heartfailure": {"88805009"}}


@pytest.mark.shared_data
@pytest.mark.skipif(not SYNTHEA.is_dir(), reason="../shared/data/fhir is not present")
def test_every_synthea_bundle_imports_and_evaluates_on_its_last_encounter():
    evaluators = {n: PathwayEvaluator(load_pathway(n)) for n in CONDITION_CODES}
    files = sorted(SYNTHEA.glob("*/*.json.gz"))
    assert len(files) == 84
    indicated = {n: 0 for n in CONDITION_CODES}
    excluded = 0
    for path in files:
        bundle = json.loads(gzip.decompress(path.read_bytes()))
        codes = {c["code"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Condition" for c in e["resource"]["code"]["coding"]}
        dates = [e["resource"]["period"]["start"][:10] for e in bundle["entry"] if e["resource"]["resourceType"] == "Encounter"]
        last = dt.date.fromisoformat(max(dates))
        facts = load_fhir(path).facts
        for name, evaluator in evaluators.items():
            result = evaluator.evaluate(facts, last, TODAY)
            # Synthea's HbA1c goes down to 2.4 % (about 3 mmol/mol): impossible, left out, reported
            assert all(i.excluded and "hba1c_mmol_mol" in i.message for i in result.issues), (path.name, result.issues[:3])
            excluded += len(result.issues)
            has_code = bool(codes & CONDITION_CODES[name])
            if result.indicated:
                indicated[name] += 1
                assert has_code, (path.name, name)
            if "control" in path.parts:
                assert not result.indicated or name == "heartfailure" and has_code
    assert excluded > 0
    # most patients with the condition are still alive and adult at their last encounter
    assert indicated["diabetes"] >= 15 and indicated["copd"] >= 8 and indicated["heartfailure"] >= 5, indicated
