"""Every problem at once: files with several independent mistakes of different kinds report all
of them, each at its line, in one run; a missing cause is reported once, not by its follow-ons."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from conftest import FIXTURES, PATHWAYS_DIR
from pathways.definition.loader import validate_paths

PROBLEMS = sorted(p for p in (FIXTURES / "problems").iterdir() if (p / "expected.txt").is_file())


def _expected(case: Path) -> list[str]:
    return (case / "expected.txt").read_text(encoding="utf-8").splitlines()


@pytest.mark.parametrize("case", PROBLEMS, ids=[p.name for p in PROBLEMS])
def test_each_fixture_reports_exactly_its_problems(case, monkeypatch):
    monkeypatch.chdir(case)
    assert [str(p) for p in validate_paths([Path(".")]).problems] == _expected(case)


def _edit(path: Path, edits: dict[str, tuple[str, str]]) -> dict[str, tuple[int, int]]:
    """Replace text on the first line holding each marker; (line, column) of each new text."""
    lines = path.read_text(encoding="utf-8").splitlines()
    places = {}
    for name, (old, new) in edits.items():
        index = next(i for i, line in enumerate(lines) if old in line)
        lines[index] = lines[index].replace(old, new, 1)
        places[name] = (index + 1, lines[index].index(new) + 1)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return places


def test_three_mistakes_in_the_shipped_diabetes_pathway_are_all_reported(tmp_path):
    """A stage misspelt in one step (a schema error), a negative `every` in another and a gate
    comparing mmol/mol with kg in a third: all three in one run, each at its line."""
    root = tmp_path / "pathways"
    shutil.copytree(PATHWAYS_DIR / "diabetes", root / "diabetes")
    shutil.copytree(PATHWAYS_DIR / "_shared", root / "_shared")
    file = root / "diabetes" / "pathway.yaml"
    at = _edit(file, {
        "stage": ("stage: anamnesis", "stage: anamnesys"),
        "every": ("every: 13w}", "every: -13w}"),
        "units": ("older and treatment_step == \"metformine\" and hba1c_mmol_mol > hba1c_target_standard", "older and treatment_step == \"metformine\" and hba1c_mmol_mol > 80 kg"),
    })
    problems = validate_paths([root]).problems
    stage_line, every_line, units_line = at["stage"][0], at["every"][0], at["units"][0]
    units_column = at["units"][1] + len('older and treatment_step == "metformine" and ')
    assert [(p.location.file, p.location.line, p.code) for p in problems] == [
        (str(file), stage_line, "PW012"),
        (str(file), units_line, "PW025"),
        (str(file), every_line, "PW035"),
    ]
    assert problems[0].message.endswith("'anamnesys' is not allowed here") and problems[0].hint == "did you mean 'anamnesis'?"
    assert (problems[1].location.col, problems[1].message) == (units_column, "compares mmol/mol with kg")
    assert problems[2].message == "'every -13w' never moves forward"


def test_a_broken_top_level_key_leaves_the_steps_checked(tmp_path):
    """An indication that fails the schema and a bad version do not hide a step's problems."""
    shutil.copytree(FIXTURES / "valid" / "mini", tmp_path / "mini")
    file = tmp_path / "mini" / "pathway.yaml"
    text = file.read_text(encoding="utf-8").replace("version: 1.0.0", "version: one").replace("  when: dm2\n", "  wen: dm2\n")
    text += "    requires: [anamnese]\n    gate: dm2 > 3\n"
    file.write_text(text, encoding="utf-8")
    problems = [(p.location.line, p.code, p.message) for p in validate_paths([file]).problems]
    assert problems == [
        (3, "PW012", "'one' is not a valid version"),
        (11, "PW010", "unknown key 'wen'"),
        (11, "PW011", "missing key 'when'"),
        (18, "PW031", "step 'intake' requires unknown step 'anamnese'"),
        (19, "PW024", "compares true/false with a number"),
        (19, "PW036", "threshold 3 in the gate of 'intake' has no evidence citation"),
    ]


def test_a_missing_library_is_one_problem_not_one_per_use(tmp_path):
    case = FIXTURES / "problems" / "missing_library"
    problems = validate_paths([case / "pathway.yaml"]).problems
    assert [p.code for p in problems] == ["PW038", "PW038"]
    assert "age_years (lines 13, 27), weight_kg (lines 21, 27)" in problems[0].hint


def test_an_undefined_name_is_reported_once_at_its_first_use_with_the_others_lines(tmp_path):
    shutil.copytree(FIXTURES / "valid" / "mini", tmp_path / "mini")
    file = tmp_path / "mini" / "pathway.yaml"
    file.write_text(file.read_text(encoding="utf-8").replace("when: dm2", "when: dm2 and not on_insulin")
                    + "    gate: on_insulin or not on_insulin\n", encoding="utf-8")
    problems = [str(p) for p in validate_paths([file]).problems]
    assert problems == [f"{file}:11:21: PW021 unknown name 'on_insulin', used 3 times (also line 18) (define it under facts, derived, parameters or rules)"]


# -- validate: names, folders and files; every YAML file; cases.yaml ------------------------

def _pathways_copy(tmp_path: Path, name: str = "diabetes") -> Path:
    root = tmp_path / "pathways"
    shutil.copytree(PATHWAYS_DIR / name, root / name)
    shutil.copytree(PATHWAYS_DIR / "_shared", root / "_shared")
    return root


def test_validate_takes_a_pathway_name_as_show_does(tmp_path, monkeypatch):
    from pathways.definition.places import Places
    from pathways.rules.casefile import validate_with_cases

    root = _pathways_copy(tmp_path)
    monkeypatch.chdir(tmp_path)
    (root / "diabetes" / "cases.yaml").write_text("pathway: diabetes\ncases: [\n", encoding="utf-8")
    result = validate_with_cases(["diabetes", "diabetis"], Places(path=(root,)))
    assert [str(p) for p in result.problems] == [
        "diabetis: PW007 no file, folder or pathway named 'diabetis' (did you mean 'diabetes'?)",
        "pathways/diabetes/cases.yaml:3:1: PW001 did not find expected node content while parsing a flow node (check the indentation and quoting around this place)",
    ]
    assert [d.model.id for d in result.pathways] == ["diabetes"]


def test_validate_reads_every_yaml_file_of_a_pathway_folder_and_its_cases(tmp_path):
    from pathways.rules.casefile import validate_with_cases

    root = _pathways_copy(tmp_path)
    folder = root / "diabetes"
    (folder / "extra.yaml").write_text("steps: []\n", encoding="utf-8")
    cases = folder / "cases.yaml"
    at = _edit(cases, {"at": ("at: 2026-11-01", "at: 2026-13-01"), "birth": ("birth_date: 1971-02-01", "birth_date: 1971-02-30")})
    result = validate_with_cases([root])
    assert [(p.location.file, p.location.line, p.code, p.message) for p in result.problems] == [
        (str(cases), at["at"][0], "PW012", "'2026-13-01' is not a date: month value is outside expected range of 1-12"),
        (str(cases), at["birth"][0], "PW012", "'1971-02-30' is not a date: day value is outside expected range"),
        (str(folder / "extra.yaml"), 1, "PW011", "missing key 'pathway'"),
    ]
    assert result.problems[0].hint == "write dates as YYYY-MM-DD, a date that exists"


def test_a_version_that_yaml_reads_as_an_impossible_date_is_a_problem_not_a_traceback(tmp_path):
    shutil.copytree(FIXTURES / "valid" / "mini", tmp_path / "mini")
    file = tmp_path / "mini" / "pathway.yaml"
    file.write_text(file.read_text(encoding="utf-8").replace("version: 1.0.0", "version: 2024-02-30"), encoding="utf-8")
    assert [str(p) for p in validate_paths([file]).problems] == [
        f"{file}:3:10: PW012 '2024-02-30' is not a valid version (write a semantic version such as 1.2.0)"
    ]


def test_check_reports_an_impossible_date_in_cases_at_its_line(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from pathways.cli import app

    root = _pathways_copy(tmp_path)
    line, column = _edit(root / "diabetes" / "cases.yaml", {"at": ("at: 2026-11-01", "at: 2026-13-01")})["at"]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATHWAYS_PATH", str(root))
    done = CliRunner().invoke(app, ["check", "diabetes"])
    assert done.exit_code == 1
    assert done.output == (f"{root / 'diabetes' / 'cases.yaml'}:{line}:{column + len('at: ')}: PW012 '2026-13-01' is not a date: "
                           "month value is outside expected range of 1-12 (write dates as YYYY-MM-DD, a date that exists)\n")
    assert "Traceback" not in done.output


# -- shared libraries through PATHWAYS_PATH -------------------------------------------------

REGIONAL_LIBRARY = """library: regio
version: 1.0.0
title: {nl: Regionale afspraken, en: Regional agreements}
owner: tests
effective_from: 2020-01-01
sources:
  - {id: regio, title: Regionale transmurale afspraak, version: "2024"}
facts:
  regional_weight_kg: {type: quantity, title: Gewicht, source: observation, unit: kg}
"""


def test_a_shared_library_is_found_through_pathways_path_as_pathways_are(tmp_path, monkeypatch):
    from pathways.definition.loader import load_pathway
    from pathways.definition.places import Places
    from pathways.orchestration.settings import from_environment

    libraries = tmp_path / "network"
    (libraries / "_shared").mkdir(parents=True)
    (libraries / "_shared" / "regio.yaml").write_text(REGIONAL_LIBRARY, encoding="utf-8")
    authoring = tmp_path / "elsewhere" / "mini"
    shutil.copytree(FIXTURES / "valid" / "mini", authoring)
    file = authoring / "pathway.yaml"
    text = file.read_text(encoding="utf-8").replace("facts:\n", "uses: [regio]\nfacts:\n")
    file.write_text(text + "    outputs:\n      - fact: regional_weight_kg\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert [p.code for p in validate_paths([file]).problems] == ["PW038"]  # nothing configured: ./pathways and the shipped ones
    places = from_environment({"PATHWAYS_PATH": os.pathsep.join(["", str(libraries)])}).places  # as the entry points pass it on
    assert places == Places(path=(libraries,))
    result = validate_paths([file], places)
    assert result.problems == [] and [d.model.id for d in result.libraries] == ["regio"]
    assert [d.model.id for d in load_pathway(str(file), places=places).libraries] == ["regio"]


# -- patient files: every problem in one round ----------------------------------------------

def test_a_patient_file_reports_every_problem_at_once_with_the_expected_form(tmp_path, monkeypatch):
    import json

    from typer.testing import CliRunner

    from pathways.cli import app

    monkeypatch.setenv("PATHWAYS_TODAY", "2026-11-01")
    file = tmp_path / "patient.json"
    file.write_text(json.dumps({
        "patient": "pt-0001",
        "demographics": {"birth_date": "02-04-1955", "sex": "vrouw"},
        "conditions": [{"fact": "dm2_diagnosis", "onset": "2012-05-01"}],
        "observations": [
            {"fact": "hba1c_mmol", "value": 60, "unit": "mmol/mol", "at": "2026-10-02"},
            {"fact": "treatment_step", "value": "metformine", "at": "2026-13-10"},
            {"fact": "egfr_ml_min_1_73m2", "value": 50, "unit": "furlongs", "at": "2026-10-02"},
        ],
    }), encoding="utf-8")
    done = CliRunner().invoke(app, ["evaluate", "diabetes", "--facts", str(file), "--at", "2026-11-01"])
    assert done.exit_code == 1
    assert done.output.splitlines() == [
        f"error: {file}: demographics.birth_date: '02-04-1955' is not a date: write dates as YYYY-MM-DD (e.g. 1955-04-02)",
        f"error: {file}: demographics.sex: 'vrouw' is not allowed: write one of 'male', 'female', 'other' or 'unknown'",
        f"error: {file}: observations[0]: unknown fact 'hba1c_mmol' (did you mean 'hba1c_mmol_mol'?)",
        f"error: {file}: observations[1].at: '2026-13-10' is not a date: write dates as YYYY-MM-DD (e.g. 1955-04-02)",
        f"error: {file}: observations[2]: egfr_ml_min_1_73m2: cannot convert furlongs to mL/min/{{1.73_m2}}",
        "5 problems in the patient file; nothing evaluated",
    ]


# -- audit filters, timeline words, stores that are empty -----------------------------------

def _store(tmp_path):
    import datetime as dt

    from pathways.store.connect import make_engine, migrate
    from pathways.store.db import Store

    engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    migrate(engine)
    return Store(engine, lambda: dt.datetime(2026, 1, 5, tzinfo=dt.timezone.utc))


def test_audit_action_filters_match_as_users_type_them(tmp_path):
    from pathways.store.audit import Query, Record, entries

    store = _store(tmp_path)
    store.record_audit([Record("escalation.opened", subject="a"), Record("escalation.acted", subject="b"),
                        Record("escalations.other", subject="c"), Record("step.due", subject="d")])
    with store.engine.connect() as connection:
        def subjects(action):
            return [e["subject"] for e in entries(connection, Query(action=action))]

        assert subjects("escalation") == ["a", "b"]
        assert subjects("escalation.") == ["a", "b"]
        assert subjects("escalation.opened") == ["a"]
        assert subjects("step") == ["d"]
        assert subjects("escal") == []


def test_the_timeline_tells_a_rendered_document_in_words():
    from pathways.views.audit import Catalog, describe

    entry = {"action": "document.rendered", "version_key": None, "pathway": "copd", "pathway_version": "1.1.0", "actor": "x", "role": "y",
             "payload": {"document": "zorgplan", "format": "pdf", "lang": "nl", "identifying": True}}
    assert describe(entry, Catalog([]), "en") == "document zorgplan rendered (pdf, nl), with identifying data"
    assert describe(entry, Catalog([]), "nl") == "document zorgplan gemaakt (pdf, nl), met identificerende gegevens"


def test_an_unknown_enrollment_names_the_store_and_says_when_it_is_empty(tmp_path):
    from pathways.store.db import UnknownEnrollment

    store = _store(tmp_path)
    with pytest.raises(UnknownEnrollment) as raised:
        store.load("copd-123")
    assert str(raised.value) == (f"unknown enrollment 'copd-123' in store sqlite:///{tmp_path / 'store.db'} "
                                 "(empty: was it created here just now? set PATHWAYS_DATABASE_URL to the store you meant)")
    with pytest.raises(UnknownEnrollment) as raised:
        store.load_many(["copd-1", "copd-2"])
    assert str(raised.value).startswith("unknown enrollment 'copd-1' and 1 more in store sqlite:///")


# -- the formats: JSON Schema, a skeleton, the reference -----------------------------------

def test_the_json_schema_accepts_the_shipped_files_and_refuses_a_misspelt_stage(tmp_path):
    import json

    import jsonschema
    from typer.testing import CliRunner

    from pathways.cli import app
    from pathways.definition.yamlsource import read_yaml

    def data(path: Path):
        source, problems = read_yaml(path)
        assert not problems
        return json.loads(json.dumps(source.data, default=str))  # dates as text, as in a JSON document

    printed = {}
    for kind in ("pathway", "library", "cases"):
        done = CliRunner().invoke(app, ["schema", kind])
        assert done.exit_code == 0
        printed[kind] = json.loads(done.output)
    for kind, file in (("pathway", PATHWAYS_DIR / "copd" / "pathway.yaml"), ("library", PATHWAYS_DIR / "_shared" / "financing.yaml"),
                       ("cases", PATHWAYS_DIR / "heartfailure" / "cases.yaml")):
        jsonschema.validate(data(file), printed[kind])
    broken = data(PATHWAYS_DIR / "copd" / "pathway.yaml")
    broken["steps"][0]["stage"] = "intak"
    with pytest.raises(jsonschema.ValidationError, match="'intak' is not one of"):
        jsonschema.validate(broken, printed["pathway"])
    assert CliRunner().invoke(app, ["schema", "pathways"]).exit_code == 2


def test_new_writes_a_skeleton_that_validates_and_never_overwrites(tmp_path):
    from typer.testing import CliRunner

    from pathways.cli import app

    done = CliRunner().invoke(app, ["new", "hartrevalidatie", "--into", str(tmp_path)])
    file = tmp_path / "hartrevalidatie" / "pathway.yaml"
    assert done.exit_code == 0 and done.output.startswith(f"wrote {file}")
    result = validate_paths([file.parent])
    assert result.problems == [] and [d.model.id for d in result.pathways] == ["hartrevalidatie"]
    file.write_text("# mine\n" + file.read_text(encoding="utf-8"), encoding="utf-8")
    again = CliRunner().invoke(app, ["new", "hartrevalidatie", "--into", str(tmp_path)])
    assert again.exit_code == 1 and "exists already: nothing was written" in again.output
    assert file.read_text(encoding="utf-8").startswith("# mine\n")
    assert CliRunner().invoke(app, ["new", "Hart-Revalidatie", "--into", str(tmp_path)]).exit_code == 1


def test_the_format_reference_is_current_and_names_every_key():
    from pathways.definition.model import PathwaySpec, Step
    from pathways.rules.formats import reference

    written = (PATHWAYS_DIR.parent / "docs" / "pathway-format.md").read_text(encoding="utf-8")
    assert written == reference(PATHWAYS_DIR), "docs/pathway-format.md is stale: python -m pathways.rules.formats > docs/pathway-format.md"
    for model in (PathwaySpec, Step):
        section = written.split(f"### {model.__name__}\n", 1)[1].split("\n### ", 1)[0]
        keys = [line.split("`")[1] for line in section.splitlines() if line.startswith("| `")]
        assert sorted(keys) == sorted(info.alias or name for name, info in model.model_fields.items())
        assert "```yaml" in section  # an example from the shipped files


def test_enroll_reports_every_problem_of_a_patient_file_in_one_round(tmp_path):
    import datetime as dt
    import json

    from pathways.clock import FixedClock
    from pathways.facts.load import PatientFileError
    from pathways.orchestration.service import Runtimes, enroll_file

    file = tmp_path / "patient.json"
    file.write_text(json.dumps({"patient": "pt-0002", "demographics": {"birth_date": "1955-02-30"},
                                "observations": [{"fact": "nt_probnp", "value": 400, "unit": "pg/mL", "at": "2026-10-02"}]}), encoding="utf-8")
    store = _store(tmp_path)
    with pytest.raises(PatientFileError) as raised:
        enroll_file(store, Runtimes(), "heartfailure", file, FixedClock(dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)))
    assert [p.split(": ", 1)[1] for p in raised.value.problems] == [
        "demographics.birth_date: '1955-02-30' is not a date: write dates as YYYY-MM-DD (e.g. 1955-04-02)",
        "observations[0]: unknown fact 'nt_probnp' (did you mean 'nt_probnp_pg_ml'?)",
    ]
    with store.engine.connect() as connection:
        assert connection.exec_driver_sql("select count(*) from enrollment").scalar() == 0


def test_a_misspelt_library_folds_every_name_the_meant_library_defines(tmp_path):
    """age_years is close to the pathway's own older_age_years, but clinical defines it: it is a
    follow-on of the misspelt `uses`, not a typo of its own."""
    root = _pathways_copy(tmp_path)
    file = root / "diabetes" / "pathway.yaml"
    line = _edit(file, {"uses": ("uses: [clinical, financing]", "uses: [clinica, financing]")})["uses"][0]
    problems = validate_paths([file]).problems
    assert [(p.location.line, p.code, p.message) for p in problems] == [(line, "PW038", "unknown shared library 'clinica'")]
    assert problems[0].hint.startswith("did you mean 'clinical'? The 14 names used here and defined nowhere else may come from it (47 uses): age_years (lines ")
