"""Every problem at once: files with several independent mistakes of different kinds report all
of them, each at its line, in one run; a missing cause is reported once, not by its follow-ons."""

from __future__ import annotations

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
    from pathways.rules.casefile import validate_with_cases

    root = _pathways_copy(tmp_path)
    monkeypatch.setenv("PATHWAYS_PATH", str(root))
    monkeypatch.chdir(tmp_path)
    (root / "diabetes" / "cases.yaml").write_text("pathway: diabetes\ncases: [\n", encoding="utf-8")
    result = validate_with_cases(["diabetes", "diabetis"])
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

    libraries = tmp_path / "network"
    (libraries / "_shared").mkdir(parents=True)
    (libraries / "_shared" / "regio.yaml").write_text(REGIONAL_LIBRARY, encoding="utf-8")
    authoring = tmp_path / "elsewhere" / "mini"
    shutil.copytree(FIXTURES / "valid" / "mini", authoring)
    file = authoring / "pathway.yaml"
    text = file.read_text(encoding="utf-8").replace("facts:\n", "uses: [regio]\nfacts:\n")
    file.write_text(text + "    outputs:\n      - fact: regional_weight_kg\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PATHWAYS_PATH", raising=False)
    assert [p.code for p in validate_paths([file]).problems] == ["PW038"]
    monkeypatch.setenv("PATHWAYS_PATH", str(libraries))
    result = validate_paths([file])
    assert result.problems == [] and [d.model.id for d in result.libraries] == ["regio"]
    assert [d.model.id for d in load_pathway(str(file)).libraries] == ["regio"]
