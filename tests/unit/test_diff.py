"""`pathways diff`: what changed between two versions of a pathway, in the pathway's own terms
(issue 25, item 2). Unit tests of definition/diff.py on edited copies of the shipped pathways,
and the real command on a published version and the draft on disk."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from conftest import ROOT, run_cli
from pathways.definition.diff import diff_pathways
from pathways.definition.loader import load_pathway

HYPO = """  hypo_glucose:
    title: Hypoglykemie onder deze glucosewaarde
    value: 4.0
    unit: mmol/L
    evidence: {source: hzd, section: hypoglykemie; ook alarmgrens interne.nl, confidence: S}
"""
HYPO_STEP = """  - id: hypoglykemie
    title: {nl: Hypoglykemie, en: Hypoglycaemia}
    stage: escalation
    discipline: huisarts
    escalation:
      trigger: glucose_mmol_l < hypo_glucose
      severity: spoed
      action: spoedconsult
      notify: [huisarts, poh]
    evidence: {source: nhg_dm2, section: "spoedeisende zorg: hypoglykemie (ABCDE); drempel uit regionaal protocol", confidence: S}
"""


def edit(file, *pairs: str) -> None:
    text = file.read_text(encoding="utf-8")
    for old, new in zip(pairs[::2], pairs[1::2]):
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    file.write_text(text, encoding="utf-8")


@pytest.fixture
def copy(tmp_path):
    """A copy of the shipped pathways (never edited in place)."""
    folder = tmp_path / "pathways"
    shutil.copytree(ROOT / "pathways", folder)
    return folder


def changes(name: str, folder) -> list[dict]:
    return [c.as_json() for c in diff_pathways(load_pathway(name), load_pathway(str(folder / name)))]


def test_a_threshold_parameter_changed_shows_old_and_new_value_with_its_evidence(copy):
    # hypo_glucose 4.0 -> 3.5, the alternative the file itself cites (eerstelijnsprotocollen)
    edit(copy / "diabetes" / "pathway.yaml", HYPO, HYPO.replace("value: 4.0", "value: 3.5").replace(
        "{source: hzd, section: hypoglykemie; ook alarmgrens interne.nl, confidence: S}",
        "{source: eerstelijnsprotocollen, section: hypoglykemie, confidence: S}"))
    old = {"source": "hzd", "section": "hypoglykemie; ook alarmgrens interne.nl", "confidence": "S", "note": None}
    new = {"source": "eerstelijnsprotocollen", "section": "hypoglykemie", "confidence": "S", "note": None}
    words = ("evidence: hzd, hypoglykemie; ook alarmgrens interne.nl, confidence S -> "
             "eerstelijnsprotocollen, hypoglykemie, confidence S")
    assert changes("diabetes", copy) == [
        {"section": "parameters", "kind": "changed", "path": "parameters.hypo_glucose.value", "old": 4.0, "new": 3.5,
         "sentence": f"Parameter hypo_glucose: 4.0 -> 3.5 mmol/L ({words})", "evidence": {"old": old, "new": new}},
        {"section": "parameters", "kind": "changed", "path": "parameters.hypo_glucose.evidence.source", "old": "hzd",
         "new": "eerstelijnsprotocollen",
         "sentence": f"Parameter hypo_glucose: evidence source hzd -> eerstelijnsprotocollen ({words})",
         "evidence": {"old": old, "new": new}},
        {"section": "parameters", "kind": "changed", "path": "parameters.hypo_glucose.evidence.section",
         "old": "hypoglykemie; ook alarmgrens interne.nl", "new": "hypoglykemie",
         "sentence": f"Parameter hypo_glucose: evidence section hypoglykemie; ook alarmgrens interne.nl -> hypoglykemie ({words})",
         "evidence": {"old": old, "new": new}},
    ]


def test_a_step_added_and_an_escalation_removed(copy):
    edit(copy / "diabetes" / "pathway.yaml", HYPO_STEP, "", "  - id: dieetadvisering\n",
         "  - id: beweegprogramma\n    title: {nl: Beweegprogramma, en: Exercise programme}\n    stage: interventions\n"
         "    discipline: fysiotherapeut\n    requires: [doelen_afspreken]\n    gate: not frail\n"
         "    evidence: {source: nhg_dm2, section: niet-medicamenteuze behandeling, confidence: P}\n"
         "  - id: dieetadvisering\n")
    found = changes("diabetes", copy)
    assert [(c["section"], c["kind"], c["path"]) for c in found] == [
        ("steps", "added", "steps.beweegprogramma"),
        ("escalations", "removed", "steps.hypoglykemie"),
    ]
    assert found[0]["sentence"] == ("Step beweegprogramma added: Beweegprogramma (stage interventions, fysiotherapeut, "
                                    "gate not frail)")
    assert found[0]["new"]["requires"] == ["doelen_afspreken"] and found[0]["old"] is None
    assert found[1]["sentence"] == ("Step hypoglykemie removed: Hypoglykemie (stage escalation, huisarts, escalates on "
                                    "glucose_mmol_l < hypo_glucose -> spoedconsult (spoed))")
    assert found[1]["old"]["escalation"]["trigger"] == "glucose_mmol_l < hypo_glucose" and found[1]["new"] is None


def test_an_interval_changed_a_stage_moved_and_an_escalation_edited(copy):
    edit(copy / "copd" / "pathway.yaml", "timing: {after: doelen_afspreken, at: [26w], every: 26w}",
         "timing: {after: doelen_afspreken, at: [13w, 26w], every: 13w}")
    edit(copy / "heartfailure" / "pathway.yaml",
         "      trigger: potassium_mmol_l > potassium_max\n      severity: spoed\n",
         "      trigger: potassium_mmol_l >= potassium_max\n      severity: regulier\n      reopen_after: 2w\n")
    found = changes("copd", copy)
    step = next(c["path"].split(".")[1] for c in found)
    assert [(c["kind"], c["path"], c["old"], c["new"], c["sentence"]) for c in found] == [
        ("changed", f"steps.{step}.timing.at", ["26w"], ["13w", "26w"], f"Step {step}: review moments at [26w] -> [13w, 26w]"),
        ("changed", f"steps.{step}.timing.every", "26w", "13w", f"Step {step}: repeats every 26w -> 13w"),
    ]
    assert [(c["section"], c["kind"], c["path"], c["old"], c["new"], c["sentence"]) for c in changes("heartfailure", copy)] == [
        ("escalations", "changed", "steps.hyperkaliemie.escalation.trigger", "potassium_mmol_l > potassium_max",
         "potassium_mmol_l >= potassium_max",
         "Escalation of step hyperkaliemie: trigger potassium_mmol_l > potassium_max -> potassium_mmol_l >= potassium_max"),
        ("escalations", "changed", "steps.hyperkaliemie.escalation.severity", "spoed", "regulier",
         "Escalation of step hyperkaliemie: severity spoed -> regulier"),
        ("escalations", "added", "steps.hyperkaliemie.escalation.reopen_after", None, "2w",
         "Escalation of step hyperkaliemie: reopens after 2w added"),
    ]


def test_goals_outputs_documents_and_the_financing_rules_of_a_shared_library(copy):
    diabetes = copy / "diabetes" / "pathway.yaml"
    edit(diabetes, "        target: <= hba1c_target_frail\n        deadline: 13w\n",
         "        target: <= hba1c_target_older_long\n        deadline: 26w\n",
         "    stage: anamnesis\n    discipline: poh\n    requires: [intake_poh]\n    outputs:\n      - fact: treatment_step\n",
         "    stage: intake\n    discipline: poh\n    requires: [intake_poh]\n    outputs:\n      - fact: treatment_step\n",
         "      - fact: simms_class\n    evidence: {source: ketenzorg_friesland",
         "      - fact: simms_class\n      - fact: foot_high_risk\n    document: evaluatieverslag\n"
         "    evidence: {source: ketenzorg_friesland",
         "    requires: [doelen_afspreken]\n    evidence: {source: nhg_dm2, section: niet-medicamenteuze",
         "    requires: [doelen_afspreken]\n    outputs:\n      - fact: body_weight_kg\n"
         "    evidence: {source: nhg_dm2, section: niet-medicamenteuze",
         "    values: [leefstijl, metformine, su, insuline]\n", "    values: [leefstijl, metformine, su, insuline, anders]\n")
    edit(copy / "_shared" / "financing.yaml", "    when: not eigen_kracht_toereikend\n",
         "    when: not eigen_kracht_toereikend and not wlz_indicatie\n")
    found = [(c["section"], c["kind"], c["path"], c["sentence"]) for c in changes("diabetes", copy)]
    assert found == [
        ("steps", "changed", "steps.anamnese_poh.stage", "Step anamnese_poh moved from stage anamnesis to intake"),
        ("steps", "added", "steps.leefstijladvies.outputs.body_weight_kg",
         "Output body_weight_kg of step leefstijladvies added: body_weight_kg"),
        ("steps", "added", "steps.voetcontrole_driemaandelijks.outputs.foot_high_risk",
         "Output foot_high_risk of step voetcontrole_driemaandelijks added: foot_high_risk"),
        ("steps", "added", "steps.voetcontrole_driemaandelijks.document",
         "Step voetcontrole_driemaandelijks: document evaluatieverslag added"),
        ("goals", "changed", "steps.doelen_afspreken.goals.hba1c_kwetsbaar.target",
         "Goal hba1c_kwetsbaar (step doelen_afspreken): target <= hba1c_target_frail -> <= hba1c_target_older_long"),
        ("goals", "changed", "steps.doelen_afspreken.goals.hba1c_kwetsbaar.deadline",
         "Goal hba1c_kwetsbaar (step doelen_afspreken): deadline 13w -> 26w"),
        ("outputs", "changed", "facts.treatment_step.values",
         "Fact treatment_step (recorded in anamnese_poh): allowed values [leefstijl, metformine, su, insuline] -> "
         "[leefstijl, metformine, su, insuline, anders]"),
        ("libraries", "changed", "libraries.financing.rules.wmo_maatwerk_eligible.when",
         "Rule wmo_maatwerk_eligible (library financing): condition not eigen_kracht_toereikend -> "
         "not eigen_kracht_toereikend and not wlz_indicatie"),
    ]


def test_formatting_and_comments_change_nothing(copy):
    diabetes = copy / "diabetes" / "pathway.yaml"
    edit(diabetes,
         "    when: hba1c_mmol_mol <= hba1c_target_standard and risk_factors_controlled and complaint_free\n",
         "    # reflowed, with a comment and redundant parentheses\n    when: >-\n      (hba1c_mmol_mol <= hba1c_target_standard)\n"
         "      and risk_factors_controlled   and complaint_free\n",
         "    timing: {after: doelen_afspreken, at: [13w], every: 13w}\n",
         "    timing:  # the same, in block style\n      after: doelen_afspreken\n      at:\n        - 13w\n      every: 13w\n",
         "    requires: [doelen_afspreken]\n    evidence: {source: nhg_dm2, section: niet-medicamenteuze",
         "    requires: [doelen_afspreken]\n    financing: zvw  # the default, written out\n"
         "    evidence: {source: nhg_dm2, section: niet-medicamenteuze",
         "    requires: [anamnese_poh, laboratorium_start]\n", "    requires: [laboratorium_start, anamnese_poh]  # order means nothing\n")
    assert changes("diabetes", copy) == []
    # and the check is not blind: a real change in the same expression is found
    edit(diabetes, "      and risk_factors_controlled   and complaint_free\n", "      and risk_factors_controlled\n")
    assert [c["path"] for c in changes("diabetes", copy)] == ["rules.well_controlled.when"]


def test_publish_then_diff_the_published_version_with_the_edited_draft(tmp_path, copy):
    env = {"PATHWAYS_DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}", "PATHWAYS_PATH": str(copy),
           "PATHWAYS_TODAY": "2026-12-03"}
    done = run_cli("publish", "diabetes", env=env)
    assert done.returncode == 0, done.stderr
    key = done.stdout.strip().removeprefix("published: ")
    assert key.startswith("diabetes@1.2.0#")

    done = run_cli("diff", "diabetes@1.2.0", "diabetes@draft", env=env)
    assert (done.returncode, done.stdout, done.stderr) == (0, f"{key} -> diabetes@draft\nno changes\n", "")

    edit(copy / "diabetes" / "pathway.yaml", "version: 1.2.0\n", "version: 1.3.0\n", HYPO, HYPO.replace("value: 4.0", "value: 3.5"),
         "timing: {after: doelen_afspreken, at: [13w], every: 13w}", "timing: {after: doelen_afspreken, at: [12w], every: 12w}")
    done = run_cli("diff", "diabetes@1.2.0", "diabetes@draft", "--json", env=env)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert (result["from"], result["to"]) == (key, "diabetes@draft")
    assert [(c["kind"], c["path"], c["old"], c["new"]) for c in result["changes"]] == [
        ("changed", "version", "1.2.0", "1.3.0"),
        ("changed", "steps.driemaandelijkse_controle.timing.at", ["13w"], ["12w"]),
        ("changed", "steps.driemaandelijkse_controle.timing.every", "13w", "12w"),
        ("changed", "parameters.hypo_glucose.value", 4.0, 3.5),
    ]
    done = run_cli("diff", "diabetes@1.2.0", "diabetes", env=env)  # text, grouped by section
    assert done.returncode == 0, done.stderr
    assert [line.strip() for line in done.stdout.splitlines() if line.strip() and line[0] != " "][:5] == [
        f"{key} -> diabetes@draft", "4 changes", "Version, title and sources", "~  Pathway: version 1.2.0 -> 1.3.0", "Steps"]

    # an unknown version names the published ones; a draft that does not validate lists its problems
    done = run_cli("diff", "diabetes@1.1.0", "diabetes@draft", env=env)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.strip() == ("error: diabetes@1.1.0: diabetes 1.1.0 is not published in this store (published: 1.2.0); "
                                   "name a published version, `diabetes@draft` for the files on disk, or a path")
    edit(copy / "diabetes" / "pathway.yaml", "    gate: not well_controlled\n", "    gate: not well_controled\n")
    done = run_cli("diff", "diabetes@1.2.0", "diabetes@draft", env=env)
    assert (done.returncode, done.stdout) == (1, "")
    lines = done.stderr.strip().splitlines()
    assert re.fullmatch(rf"{re.escape(str(copy / 'diabetes' / 'pathway.yaml'))}:\d+:\d+: PW021 unknown name 'well_controled' "
                        r"\(did you mean 'well_controlled'\?\)", lines[0]), lines
    assert lines[1:] == ["1 problem found"]
