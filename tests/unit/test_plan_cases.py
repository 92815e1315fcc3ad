"""Assurance cases for combined plans (pathways/_shared/plan-cases.yaml, issue 28 item 5): each
multimorbid case is enrolled, advanced and planned as the store would; a wrong expectation, a
missing case at an interaction threshold or a bad file is reported by `pathways check`."""

from __future__ import annotations

import shutil

import pytest

from conftest import ROOT, run_cli
from pathways.errors import ProblemsFound
from pathways.runtime.plan_cases import check_plan_cases, load_plan_cases

SHIPPED = ROOT / "pathways" / "_shared" / "plan-cases.yaml"


@pytest.fixture()
def folder(tmp_path):
    copy = tmp_path / "pathways"
    shutil.copytree(ROOT / "pathways", copy)
    return copy


def test_the_shipped_plan_cases_are_multimorbid_and_all_pass_with_every_interaction_threshold_covered():
    cases = load_plan_cases(SHIPPED)
    assert len(cases.cases) >= 15 and all(len(c.enrolled) >= 2 for c in cases.cases)
    report = check_plan_cases(SHIPPED)
    assert [(r.case.id, r.failures) for r in report.failed] == []
    assert report.uncovered == []
    by_id = {r.case.id: r.plan for r in report.results}
    (visit,) = [a for a in by_id["drie_poh_controles_een_bezoek"].appointments if a.discipline == "poh"]
    assert [s.pathway for s in visit.steps] == ["heartfailure", "copd", "diabetes"]
    assert [c.rule for c in by_id["metformine_egfr_precies_30"].conflicts] == ["metformine_bij_verlaagde_egfr"]


def test_a_wrong_expected_appointment_or_conflict_fails_the_case(folder):
    file = folder / "_shared" / "plan-cases.yaml"
    text = file.read_text(encoding="utf-8")
    # the 15-day case expecting one visit (it is two), the 60 case expecting a conflict (there is none)
    text = text.replace("        - {date: 2026-11-29, discipline: poh, steps: [heartfailure.controle_huisarts]}\n"
                        "        - {date: 2026-12-14, discipline: poh, steps: [diabetes.driemaandelijkse_controle]}",
                        "        - {date: 2026-11-29, discipline: poh, steps: [heartfailure.controle_huisarts, diabetes.driemaandelijkse_controle]}", 1)
    marker = "  - id: metformine_egfr_precies_60"
    head, tail = text.split(marker)
    tail = tail.replace("      conflicts: []", "      conflicts: [metformine_bij_verlaagde_egfr]", 1)
    file.write_text(head + marker + tail, encoding="utf-8")
    report = check_plan_cases(file)
    failed = {r.case.id: r.failures for r in report.failed}
    assert sorted(failed) == ["metformine_egfr_precies_60", "venster_15_dagen_twee_bezoeken"]
    assert failed["venster_15_dagen_twee_bezoeken"] == [
        "appointments: expected 2026-11-29 poh [heartfailure.controle_huisarts, diabetes.driemaandelijkse_controle], "
        "got 2026-11-29 poh [heartfailure.controle_huisarts]; 2026-12-14 poh [diabetes.driemaandelijkse_controle]"]
    assert failed["metformine_egfr_precies_60"] == ["conflicts: expected ['metformine_bij_verlaagde_egfr'], got none"]


def test_without_the_cases_at_30_and_60_the_interaction_thresholds_are_uncovered(folder):
    file = folder / "_shared" / "plan-cases.yaml"
    text = file.read_text(encoding="utf-8")
    for case in ("metformine_egfr_precies_30", "metformine_egfr_precies_60"):
        start = text.index(f"  - id: {case}")
        end = text.index("  - id: ", start + 1)
        text = text[:start] + text[end:]
    file.write_text(text, encoding="utf-8")
    report = check_plan_cases(file)
    assert report.failed == []
    assert report.uncovered == [
        "interaction:metformine_bij_egfr_onder_stopgrens: egfr_ml_min_1_73m2 < metformin_stop_egfr never exactly at the threshold "
        "(add a case with egfr_ml_min_1_73m2 at 30)",
        "interaction:metformine_bij_verlaagde_egfr: egfr_ml_min_1_73m2 < metformin_reduce_egfr never exactly at the threshold "
        "(add a case with egfr_ml_min_1_73m2 at 60)",
        "interaction:metformine_bij_verlaagde_egfr: egfr_ml_min_1_73m2 >= metformin_stop_egfr never exactly at the threshold "
        "(add a case with egfr_ml_min_1_73m2 at 30)",
    ]


def test_an_unknown_pathway_fails_its_case_and_a_bad_key_names_the_file_and_line(folder):
    file = folder / "_shared" / "plan-cases.yaml"
    text = file.read_text(encoding="utf-8")
    file.write_text(text.replace("      copd: {since: 2026-06-02, from_stage: reviews}       # 26w", "      longen: {since: 2026-06-02, from_stage: reviews}       # 26w", 1),
                    encoding="utf-8")
    failed = {r.case.id: r.failures for r in check_plan_cases(file).failed}
    assert failed == {"drie_poh_controles_een_bezoek": ["error: unknown pathway longen (known: copd, diabetes, heartfailure)"]}

    lines = text.splitlines()
    bad = text.replace("    window_days: 30\n", "    window_dayz: 30\n", 1)
    file.write_text(bad, encoding="utf-8")
    with pytest.raises(ProblemsFound) as caught:
        load_plan_cases(file)
    line = next(i + 1 for i, text_line in enumerate(lines) if text_line == "    window_days: 30")
    (problem,) = caught.value.problems
    assert f"plan-cases.yaml:{line}:" in str(problem) and "window_dayz" in str(problem)
    done = run_cli("check", env={"PATHWAYS_PATH": str(folder)}, cwd=folder.parent)
    assert done.returncode == 1 and "window_dayz" in done.stdout + done.stderr and "Traceback" not in done.stderr


def test_pathways_check_reports_the_combined_plans_like_the_other_cases():
    done = run_cli("check", env={"COLUMNS": "200"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "combined plans: 17 cases" in done.stdout
    assert "combined plans: 17 passed, 0 failed; 0 threshold sides not covered" in done.stdout
