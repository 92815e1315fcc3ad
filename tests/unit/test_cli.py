"""The `pathways` command as a coordinator uses it."""

from __future__ import annotations

import re
import shutil

from conftest import PATHWAYS_DIR, run_cli
from pathways.definition.loader import load_pathway


def test_validate_shipped_pathways_is_clean_with_a_summary(cli):
    done = cli("validate", "pathways/")
    assert done.returncode == 0, done.stderr
    steps = sum(len(load_pathway(n).spec.steps) for n in ("diabetes", "copd", "heartfailure"))
    assert done.stdout.strip() == (
        f"ok: 9 files (3 of them cases), 3 pathways (copd 1.1.0, diabetes 1.2.0, heartfailure 1.1.0), 2 shared libraries, {steps} steps, "
        "3 interaction rules"
    )


def test_validate_defaults_to_the_pathways_folder(cli):
    done = cli("validate")
    assert done.returncode == 0 and done.stdout.startswith("ok: 9 files")


def test_commands_that_do_not_orchestrate_never_import_prefect_or_the_rules_engine(tmp_path):
    import subprocess
    import sys

    probe = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from pathways.cli import app\n"
        "runner = CliRunner()\n"
        f"for args in (['validate', 'pathways'], ['show', 'copd'], ['diagram', 'diabetes'], ['diagram', 'copd', '--html', r'{tmp_path / 'c.html'}']):\n"
        "    result = runner.invoke(app, args)\n"
        "    assert result.exit_code == 0, result.output\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'prefect', 'durable', 'sqlalchemy', 'sqlmodel', 'fhir', 'psycopg', 'fastapi'})\n"
        "print(heavy)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=PATHWAYS_DIR.parent, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_a_broken_fact_name_in_a_gate_is_reported_at_its_place_with_a_suggestion(tmp_path):
    root = tmp_path / "pathways"
    shutil.copytree(PATHWAYS_DIR, root)
    path = root / "diabetes" / "pathway.yaml"
    lines = path.read_text(encoding="utf-8").splitlines()
    index = next(i for i, line in enumerate(lines) if line.strip() == "gate: on_insulin and not insulin_self_management")
    lines[index] = lines[index].replace("on_insulin", "on_insuline")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    column = lines[index].index("on_insuline") + 1
    done = run_cli("validate", str(root))
    assert done.returncode == 1
    copd = root / "copd" / "pathway.yaml"
    goal_line = next(i for i, line in enumerate(copd.read_text(encoding="utf-8").splitlines(), 1) if line.strip() == "- id: stoppen_met_roken") + 5  # its deadline
    assert done.stderr.splitlines() == [
        f"{copd}:{goal_line}:19: PW051 goal 'stoppen_met_roken' is judged 12w after step 'doelen_afspreken', but no later step "
        "records cigarettes_per_day (so it can only be judged 'not measured': record cigarettes_per_day in a step due by 12w, "
        "or give the goal a later deadline)",  # the shipped COPD pathway's one warning, printed with the problems
        f"{path}:{index + 1}:{column}: PW021 unknown name 'on_insuline' (did you mean 'on_insulin'?)",
        "1 problem found, 1 warning",
    ]


def test_show_lists_every_stage_step_discipline_and_parameter(cli):
    done = cli("show", "heartfailure")
    assert done.returncode == 0, done.stderr
    spec = load_pathway("heartfailure").spec
    for title in ("1 Intake", "2 Anamnese", "3 Doelen", "4 Interventies", "5 Evaluaties", "6 Escalatie", "Parameters"):
        assert title in done.stdout
    for step in spec.steps:
        assert step.id in done.stdout
    for name in spec.parameters:
        assert name in done.stdout
    # cells wrap, so compare the words of the table with the words of each gate and trigger
    words = " ".join(re.sub(r"[│┃|]", " ", done.stdout).split())
    for step in spec.steps:
        condition = step.escalation.trigger if step.escalation else step.gate
        if condition is not None:
            for token in condition.text.split():
                assert token in words, (step.id, token)
        if step.escalation is not None:
            assert f"{step.escalation.severity}:" in words and step.escalation.action in words


def test_diagram_prints_mermaid_with_every_step_gate_and_escalation(cli):
    done = cli("diagram", "copd")
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert text.startswith("---\ntitle: COPD in de huisartsenpraktijk (copd 1.1.0)\n---\nflowchart TD\n")
    spec = load_pathway("copd").spec
    for step in spec.steps:
        assert re.search(rf"^\s+{step.id}\[", text, re.M), step.id
        if step.gate is not None:
            assert f"{step.id}__gate{{" in text and f"{step.id}__gate -->|ja| {step.id}" in text
        if step.escalation is not None:
            assert f"{step.id}__trigger -->|{step.escalation.severity}| {step.id}" in text
        for required in step.requires:
            assert f"{required} --> {step.id}__gate" in text or f"{required} --> {step.id}" in text
    assert "subgraph stage_escalation" in text


def test_diagram_html_is_self_contained(tmp_path, cli):
    out = tmp_path / "page" / "diabetes.html"
    done = cli("diagram", "diabetes", "--html", str(out))
    assert done.returncode == 0, done.stderr
    page = out.read_text(encoding="utf-8")
    assert "mermaid.initialize" in page and len(page) > 1_000_000  # the renderer is inlined
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page), "no external assets"
    assert "flowchart TD" in page and "Diabetes mellitus type 2 in de huisartsenpraktijk" in page


def test_help_lists_the_commands(cli):
    done = cli("--help")
    assert done.returncode == 0
    for command in ("validate", "show", "diagram"):
        assert command in done.stdout
