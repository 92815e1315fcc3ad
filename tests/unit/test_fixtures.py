"""Each broken fixture produces exactly the problems listed in its expected.txt."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import FIXTURES, run_cli
from pathways.definition.interactions import validate_with_interactions
from pathways.definition.loader import validate_paths

BROKEN = sorted(p for p in (FIXTURES / "broken").iterdir() if p.is_dir() and p.name != "_shared")


def expected_lines(case: Path) -> list[str]:
    return (case / "expected.txt").read_text(encoding="utf-8").splitlines()


@pytest.mark.parametrize("case", BROKEN, ids=[p.name for p in BROKEN])
def test_broken_fixture_reports_exactly_its_problems(case, monkeypatch):
    monkeypatch.chdir(case)
    result = validate_with_interactions([Path(".")])  # what `pathways validate` runs
    assert [str(p) for p in result.problems] == expected_lines(case)


def only_warnings(case: Path) -> bool:
    from pathways.errors import WARNINGS

    return all(line.split(": ")[1].split(" ")[0] in WARNINGS for line in expected_lines(case))


@pytest.mark.parametrize("case", BROKEN, ids=[p.name for p in BROKEN])
def test_cli_prints_them_and_exits_1_without_traceback(case):
    done = run_cli("validate", ".", cwd=case)
    lines = done.stderr.splitlines()
    count = len(expected_lines(case))
    assert "Traceback" not in done.stderr
    if only_warnings(case):  # warnings are printed, but the files are valid
        assert done.returncode == 0 and lines == expected_lines(case) and done.stdout.startswith("ok: ")
        return
    assert done.returncode == 1
    assert lines == expected_lines(case) + [f"{count} problem{'s' if count > 1 else ''} found"]
    assert done.stdout == ""


def test_every_problem_code_is_produced_by_some_fixture_or_generated_case():
    from pathways.errors import CODES

    produced = {line.split(": ")[1].split(" ")[0] for case in BROKEN for line in expected_lines(case)}
    generated_in_test_bad_input = {"PW004", "PW005", "PW007", "PW008"}
    assert set(CODES) - produced - generated_in_test_bad_input == set()


def test_the_minimal_valid_pathway_is_clean():
    result = validate_paths([FIXTURES / "valid" / "mini"])
    assert result.problems == [] and [d.model.id for d in result.pathways] == ["mini"]
