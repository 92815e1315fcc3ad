"""The `pathways` command as a package by audience (src/pathways/cli/): its entry points, the one
error-and-exit helper, and the logic that moved below it (a cohort's files, time going forward)."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
import typer
from rich.console import Console

ROOT = Path(__file__).resolve().parents[2]
CLI = ROOT / "src" / "pathways" / "cli"


def test_entry_points_and_every_audience_registers_its_commands():
    import pathways.cli as cli
    from pathways.cli import audit, authoring, documents, evaluation, running, versions

    assert callable(cli.main) and isinstance(cli.app, typer.Typer)
    assert (CLI / "__main__.py").is_file()
    assert 'pathways = "pathways.cli:main"' in (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    registered = {c.callback for c in cli.app.registered_commands}
    groups = {g.name: g.typer_instance for g in cli.app.registered_groups}
    for module, names in [(authoring, "validate show diagram check schema new diff publish"), (evaluation, "evaluate simulate plan"),
                          (running, "enroll advance status record resolve signoff resume run patient serve deploy worker web"),
                          (documents, "render")]:
        for name in names.split():
            assert getattr(module, name) in registered, name
    assert groups == {"facts": running.facts_app, "fhir": documents.fhir_app, "audit": audit.audit_app,
                      "user": running.user_app, "migrate": versions.migrate_app}


def test_one_error_and_exit_helper(monkeypatch):
    """No command prints an error and raises typer.Exit itself: `fail` does both."""
    printed_then_exited = {path.name: len(re.findall(r"markup=False\)\n\s*raise typer\.Exit\(", path.read_text(encoding="utf-8")))
                           for path in CLI.glob("*.py")}
    assert {name: n for name, n in printed_then_exited.items() if n} == {"ui.py": 1}  # fail() itself
    from pathways.cli import ui

    monkeypatch.setattr(ui, "err", Console(stderr=True, record=True, width=200))
    with pytest.raises(typer.Exit) as raised:
        ui.fail("error: [bold]x[/bold] is wrong", code=2)
    assert raised.value.exit_code == 2
    assert ui.err.export_text() == "error: [bold]x[/bold] is wrong\n"  # printed as written, no markup


def test_a_cohort_folder_is_read_below_the_cli(tmp_path):
    from pathways.facts.cohort import NoPatientFiles, patient_files, read_cohort
    from pathways.facts.load import PatientFileError

    with pytest.raises(NoPatientFiles, match="no patient files"):
        patient_files(tmp_path)
    with pytest.raises(NoPatientFiles):
        patient_files(tmp_path / "missing")
    good = ROOT / "examples" / "cohort-diabetes" / "demo-dm-01.json"
    (tmp_path / "a.json").write_bytes(good.read_bytes())
    (tmp_path / "b.json").write_text("{not json", encoding="utf-8")
    (tmp_path / "notes.txt").write_text("not a patient", encoding="utf-8")
    files = patient_files(tmp_path)
    assert [f.name for f in files] == ["a.json", "b.json"]
    read = list(read_cohort(files))
    assert [(label, source) for label, _, source in read] == [("a.json", "file:a.json"), ("b.json", None)]
    assert not isinstance(read[0][1], PatientFileError) and isinstance(read[1][1], PatientFileError)


def test_an_enrollment_does_not_go_back_in_time():
    from pathways.runtime.core import BackInTime, EnrollmentState, not_back_in_time

    state = EnrollmentState.model_construct(enrollment="e-1", as_of=dt.date(2026, 1, 5))
    not_back_in_time(state, dt.date(2026, 1, 5))
    not_back_in_time(state, dt.date(2026, 2, 1))
    with pytest.raises(BackInTime) as raised:
        not_back_in_time(state, dt.date(2026, 1, 1))
    assert (raised.value.as_of, raised.value.at) == (dt.date(2026, 1, 5), dt.date(2026, 1, 1))
    assert str(raised.value) == "cannot advance e-1 back in time (2026-01-01 < 2026-01-05)"


def test_every_problem_is_printed_before_the_command_ends(monkeypatch):
    """`fail_all` prints each message (every problem at once); no command calls `fail` inside a
    loop over problems, which would end at the first one."""
    import ast

    from pathways.cli import ui

    monkeypatch.setattr(ui, "err", Console(stderr=True, record=True, width=200))
    with pytest.raises(typer.Exit) as raised:
        ui.fail_all(["error: a", "error: b", "error: nothing stored"])
    assert raised.value.exit_code == 1
    assert ui.err.export_text() == "error: a\nerror: b\nerror: nothing stored\n"
    in_loops = []
    for path in CLI.glob("*.py"):
        for loop in (n for n in ast.walk(ast.parse(path.read_text(encoding="utf-8"))) if isinstance(n, ast.For)):
            over = ast.unparse(loop.iter)
            if "problem" in over or "issue" in over or "errors" in over:
                in_loops += [f"{path.name}:{c.lineno}" for c in ast.walk(loop)
                             if isinstance(c, ast.Call) and getattr(c.func, "id", "") == "fail"]
    assert in_loops == []
