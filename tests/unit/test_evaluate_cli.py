"""`pathways evaluate` and `pathways check` as people and scripts use them."""

from __future__ import annotations

import json
import shutil

import pytest

from conftest import FIXTURES, PATHWAYS_DIR, run_cli

TODAY = {"PATHWAYS_TODAY": "2026-11-23"}
PATIENT = {
    "patient": "pt-0001",
    "demographics": {"birth_date": "1955-04-02", "sex": "female"},
    "conditions": [{"code": {"system": "http://hl7.org/fhir/sid/icpc-1-nl", "code": "T90.02"}, "onset": "2012-05-01"}],
    "observations": [
        {"fact": "hba1c_mmol_mol", "value": 61, "unit": "mmol/mol", "at": "2026-10-02"},
        {"fact": "egfr_ml_min_1_73m2", "value": 42, "unit": "mL/min/{1.73_m2}", "at": "2026-10-02"},
        {"fact": "acr_mg_mmol", "value": 3.1, "unit": "mg/mmol", "at": "2026-10-02"},
        {"fact": "treatment_step", "value": "metformine", "at": "2026-01-10"},
    ],
    "indications": {"wmo": {"melding_date": "2026-10-20"}},
}


def write(tmp_path, data, name="patient.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data) if not isinstance(data, str) else data, encoding="utf-8")
    return path


def test_json_has_exactly_the_documented_keys_and_values(tmp_path):
    done = run_cli("evaluate", "diabetes", "--facts", str(write(tmp_path, PATIENT)), "--at", "2026-11-01", "--json", env=TODAY)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert list(result) == ["pathway", "pathway_version", "at", "indicated", "facts", "steps", "eligibility", "escalations"]
    assert (result["pathway"], result["pathway_version"], result["at"], result["indicated"]) == ("diabetes", "1.2.0", "2026-11-01", True)
    assert result["facts"]["age_years"] == 71 and result["facts"]["hba1c_mmol_mol"] == 61
    assert result["facts"]["potassium_mmol_l"] is None  # missing is null, never a default
    canonical = ("age_years", "hba1c_mmol_mol", "egfr_ml_min_1_73m2", "body_weight_kg", "systolic_bp_mmhg", "diastolic_bp_mmhg",
                 "nt_probnp_pg_ml", "lvef_percent", "fev1_fvc_ratio", "potassium_mmol_l", "nyha_class")
    assert [name for name in canonical if name not in result["facts"]] == []
    steps = {s["id"]: s for s in result["steps"]}
    assert {s["status"] for s in result["steps"]} <= {"due", "not_due", "gated", "escalated"}
    assert list(steps["metformine_dosis_verlagen"]) == ["id", "stage", "status", "reasons"]
    assert steps["metformine_dosis_verlagen"]["status"] == "due"
    assert "egfr_ml_min_1_73m2 < metformin_reduce_egfr: true (egfr_ml_min_1_73m2 = 42 mL/min/{1.73_m2}, observed 2026-10-02; metformin_reduce_egfr = 60 mL/min/{1.73_m2})" in steps["metformine_dosis_verlagen"]["reasons"]
    assert steps["fundus_jaarlijks"]["status"] == "gated" and "missing: retinopathy_or_risk" in steps["fundus_jaarlijks"]["reasons"]
    assert set(result["eligibility"]) == {"wlz", "wmo", "zvw_wijkverpleging", "pgb"}
    assert result["eligibility"]["wmo"]["eligible"] is None
    assert any("wmo_onderzoek" in r and "due 2026-12-01" in r for r in result["eligibility"]["wmo"]["reasons"])
    assert [(e["id"], e["severity"], e["action"]) for e in result["escalations"]] == [("consultatie_nefroloog", "regulier", "consultatie_specialist")]
    assert list(result["escalations"][0]) == ["id", "severity", "action", "reasons"]


def test_people_get_a_table_with_reasons(tmp_path):
    done = run_cli("evaluate", "diabetes", "--facts", str(write(tmp_path, PATIENT)), "--at", "2026-11-01", env=TODAY)
    assert done.returncode == 0, done.stderr
    for text in ("diabetes 1.2.0 for patient pt-0001 at 2026-11-01", "consultatie_nefroloog", "escalated", "Financing eligibility", "Escalations"):
        assert text in done.stdout


def test_fhir_bundle_evaluates(tmp_path):
    done = run_cli("evaluate", "diabetes", "--fhir", str(FIXTURES / "fhir" / "synthea" / "dm_casimira.json.gz"), "--at", "2020-07-10", "--json", env=TODAY)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["indicated"] is True
    assert "coded entries in" in done.stderr and "--verbose lists them" in done.stderr


def test_eligibility_outside_the_rules_effective_dates_is_unknown(tmp_path):
    patient = {**PATIENT, "observations": [], "conditions": PATIENT["conditions"]}
    done = run_cli("evaluate", "diabetes", "--facts", str(write(tmp_path, patient)), "--at", "2014-06-01", "--json", env=TODAY)
    assert done.returncode == 0, done.stderr
    wlz = json.loads(done.stdout)["eligibility"]["wlz"]
    assert wlz == {"eligible": None, "reasons": ["rule wlz_eligible (financing 1.0.0) is not in effect on 2014-06-01"]}


@pytest.mark.parametrize(
    "content, expected",
    [
        ('{"patient": "x", "observations": [', "patient.json:1:35: malformed JSON: Expecting value"),
        ({"patient": "x", "observations": [{"fact": "hba1c_mmol_mol", "value": 7, "at": "not-a-date"}]}, "patient.json: observations[0].at: 'not-a-date' is not a date: write dates as YYYY-MM-DD (e.g. 1955-04-02)"),
        ({"patient": "x", "observations": [{"fact": "hba1c_mmol_mol", "value": 7, "unit": "xyz_unit", "at": "2026-10-01"}]}, "patient.json: observations[0]: hba1c_mmol_mol: unknown unit 'xyz_unit'"),
        ({"patient": "x", "observations": [{"fact": "hba1c_mmol_mol", "value": 7, "unit": "mg/dL", "at": "2026-10-01"}]}, "patient.json: observations[0]: hba1c_mmol_mol: cannot convert mg/dL to mmol/mol"),
        ({"patient": "x", "observations": [{"fact": "hba1c_mmol_mol", "value": 61, "unit": "mmol/mol", "at": "2027-01-01"}]}, "patient.json: observations[0]: date 2027-01-01 is in the future (today is 2026-11-23)"),
        ({"patient": "x", "observations": [{"fact": "hba1c_mmol", "value": 61, "at": "2026-01-01"}]}, "patient.json: observations[0]: unknown fact 'hba1c_mmol'"),
        ({"patient": "x", "weight": 80}, "patient.json: weight: unknown key 'weight' (allowed here: patient, demographics, observations"),
        ({"patient": "Jan de Vries"}, "patient.json: patient: String should match pattern"),
    ],
)
def test_bad_patient_files_are_clear_errors_naming_file_and_field(tmp_path, content, expected):
    done = run_cli("evaluate", "diabetes", "--facts", str(write(tmp_path, content)), "--at", "2026-11-01", env=TODAY)
    assert done.returncode == 1
    assert expected.replace("patient.json", str(tmp_path / "patient.json")) in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_impossible_values_are_left_out_and_reported_but_do_not_block(tmp_path):
    patient = {**PATIENT, "observations": [*PATIENT["observations"], {"fact": "potassium_mmol_l", "value": 55, "unit": "mmol/L", "at": "2026-10-02"}]}
    done = run_cli("evaluate", "diabetes", "--facts", str(write(tmp_path, patient)), "--at", "2026-11-01", "--json", env=TODAY)
    assert done.returncode == 0
    assert "warning: " in done.stderr and "potassium_mmol_l: 55 mmol/L is physiologically impossible (plausible 1-10) - left out" in done.stderr
    assert json.loads(done.stdout)["facts"]["potassium_mmol_l"] is None


@pytest.mark.parametrize(
    "args, expected, code",
    [
        (["evaluate", "diabetis", "--facts", "x.json"], "diabetis: PW007 unknown pathway 'diabetis' (did you mean 'diabetes'?)", 1),
        (["evaluate", "diabetes", "--facts", "x.json", "--at", "2027-02-01"], "error: --at 2027-02-01 is in the future (today is 2026-11-23)", 1),
        (["evaluate", "diabetes", "--facts", "x.json", "--at", "01-02-2026"], "error: --at '01-02-2026' is not a date; write YYYY-MM-DD", 1),
        (["evaluate", "diabetes"], "error: give exactly one of --facts FILE.json or --fhir BUNDLE", 2),
        (["evaluate", "diabetes", "--facts", "nope.json", "--at", "2026-01-01"], "error: nope.json: cannot read: No such file or directory", 1),
    ],
)
def test_bad_arguments(args, expected, code):
    done = run_cli(*args, env=TODAY)
    assert done.returncode == code
    assert expected in done.stderr and "Traceback" not in done.stderr


def test_check_runs_all_assurance_cases_with_full_threshold_coverage():
    done = run_cli("check", env=TODAY)
    assert done.returncode == 0, done.stdout[-3000:]
    lines = [line for line in done.stdout.splitlines() if " passed, " in line]
    assert [line.split(": ", 1)[0] for line in lines] == ["copd", "diabetes", "heartfailure", "combined plans"]  # docs/cases.md
    for line in lines:
        name, rest = line.split(": ", 1)
        passed = int(rest.split(" passed")[0])
        assert passed >= 15 and rest.endswith("0 failed; 0 threshold sides not covered"), line


def test_check_fails_on_a_wrong_expectation_and_on_an_uncovered_threshold(tmp_path):
    root = tmp_path / "pathways"
    shutil.copytree(PATHWAYS_DIR, root)
    cases = root / "heartfailure" / "cases.yaml"
    text = cases.read_text(encoding="utf-8")
    text = text.replace("escalations: [hyperkaliemie]", "escalations: []")
    # drop the only case that sees the stable-weight side of the weight-gain threshold
    start = text.index("  - id: gewicht_stabiel")
    text = text[:start] + text[text.index("  - id: hyperkaliemie"):]
    start = text.index("  - id: gewicht_precies_2_kg_in_3_dagen")  # 2 kg exactly is the stable side too
    text = text[:start] + text[text.index("  - id: kalium_precies_5_5"):]
    cases.write_text(text, encoding="utf-8")
    done = run_cli("check", str(root / "heartfailure"), env=TODAY)
    assert done.returncode == 1
    assert "heartfailure/hyperkaliemie: escalations: expected [], got ['hyperkaliemie']" in done.stdout
    assert "uncovered threshold: trigger:gewichtstoename: change(body_weight_kg, 3d) > weight_gain_kg never false" in done.stdout


def test_check_requires_a_case_exactly_at_each_threshold(tmp_path):
    root = tmp_path / "pathways"
    shutil.copytree(PATHWAYS_DIR, root)
    cases = root / "diabetes" / "cases.yaml"
    text = cases.read_text(encoding="utf-8")
    start = text.index("  - id: glucose_precies_4")  # the only case with glucose exactly at the hypo bound
    text = text[:start] + text[text.index("  - id: glucose_precies_15"):]
    cases.write_text(text, encoding="utf-8")
    done = run_cli("check", str(root / "diabetes"), env=TODAY)
    assert done.returncode == 1
    lines = [line for line in done.stdout.splitlines() if line.startswith("uncovered threshold: ")]
    assert lines == [
        "uncovered threshold: trigger:hypoglykemie: glucose_mmol_l < hypo_glucose never exactly at the threshold "
        "(add a case with glucose_mmol_l at hypo_glucose = 4)"
    ]
    assert done.stdout.rstrip().endswith("0 failed; 1 threshold sides not covered")


def test_evaluate_and_check_never_import_prefect(tmp_path):
    import subprocess
    import sys

    probe = (
        "import sys, os\n"
        "os.environ['PATHWAYS_TODAY'] = '2026-11-23'\n"
        "from typer.testing import CliRunner\n"
        "from pathways.cli import app\n"
        f"r = CliRunner().invoke(app, ['evaluate', 'diabetes', '--facts', r'{write(tmp_path, PATIENT)}', '--at', '2026-11-01', '--json'])\n"
        "assert r.exit_code == 0, r.output\n"
        "r = CliRunner().invoke(app, ['check', 'copd'])\n"
        "assert r.exit_code == 0, r.output\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('prefect', 'sqlalchemy', 'sqlmodel', 'fastapi')))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=PATHWAYS_DIR.parent, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
