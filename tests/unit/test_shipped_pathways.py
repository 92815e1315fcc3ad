"""The three shipped pathways and the shared libraries: clean, complete, and really used."""

from __future__ import annotations

import pytest

from conftest import PATHWAYS_DIR
from pathways.definition import expr as E
from pathways.definition.loader import load_pathway, validate_paths
from pathways.definition.model import STAGES

SHIPPED = ["diabetes", "copd", "heartfailure"]


def test_all_shipped_files_validate_clean():
    result = validate_paths([PATHWAYS_DIR])
    assert [str(p) for p in result.problems if not p.is_warning] == []
    # the one known warning, for the COPD owner to decide: no step records cigarettes per day
    # after the goals are agreed, so the smoking goal is judged on its baseline at 12 weeks
    assert [(p.location.file.rsplit("pathways/", 1)[-1], p.code) for p in result.problems if p.is_warning] == [
        ("copd/pathway.yaml", "PW051")
    ]
    assert sorted(d.model.id for d in result.pathways) == sorted(SHIPPED)
    assert sorted(d.model.id for d in result.libraries) == ["clinical", "financing"]


@pytest.mark.parametrize("name", SHIPPED)
def test_pathway_has_steps_in_all_six_stages_with_disciplines(name):
    spec = load_pathway(name).spec
    stages = {s.stage for s in spec.steps}
    assert stages == set(STAGES)
    # a multidisciplinary team, not one person doing everything
    assert len({s.discipline for s in spec.steps}) >= 5
    assert spec.uses == ("clinical", "financing")
    assert spec.title.nl and spec.title.en
    assert all(s.version for s in spec.sources)


@pytest.mark.parametrize("name", SHIPPED)
def test_every_threshold_parameter_cites_a_declared_source(name):
    spec = load_pathway(name).spec
    declared = {s.id for s in spec.sources}
    assert spec.parameters, "thresholds are parameters a care network can override"
    for parameter in spec.parameters.values():
        assert parameter.evidence.source in declared
        assert parameter.evidence.confidence in ("P", "S", "M")


@pytest.mark.parametrize("name", SHIPPED)
def test_every_escalation_has_severity_action_and_notifies_someone(name):
    spec = load_pathway(name).spec
    escalations = [s for s in spec.steps if s.stage == "escalation"]
    assert len(escalations) >= 3
    for step in escalations:
        assert step.escalation is not None
        assert step.escalation.severity in ("spoed", "regulier")
        assert step.escalation.notify


def _names_used(spec) -> set[str]:
    used: set[str] = set()
    expressions = [spec.indication.when, spec.indication.exclude, *(r.when for r in spec.rules.values())]
    for step in spec.steps:
        expressions += [step.gate, step.escalation.trigger if step.escalation else None]
        expressions += [g.when for g in step.goals]
    for expression in expressions:
        if expression is not None:
            used |= {n.name for n in E.names(expression.ast)}
    for step in spec.steps:
        for goal in step.goals:
            used |= {n.name for n in E.names(E.parse(f"{goal.fact} {goal.target}"))}
    return used


def test_guideline_thresholds_are_where_guidelines_md_puts_them():
    # spot checks against ../shared/domain/guidelines.md, so an edit that changes a threshold is seen
    diabetes = load_pathway("diabetes").spec.parameters
    assert diabetes["hba1c_target_standard"].value == 53
    assert (diabetes["hba1c_target_older_short"].value, diabetes["hba1c_target_older_long"].value) == (58, 64)
    assert (diabetes["metformin_reduce_egfr"].value, diabetes["metformin_stop_egfr"].value) == (60, 30)
    assert [a.value for a in diabetes["hypo_glucose"].alternatives] == [3.5, 3.0]
    hf = load_pathway("heartfailure").spec.parameters
    assert (hf["nt_probnp_rule_out"].value, hf["bnp_rule_out"].value) == (125, 35)
    assert (hf["weight_gain_kg"].value, hf["potassium_max"].value, hf["kidney_decline_pct"].value) == (2, 5.5, 20)
    assert hf["lvef_boundary_is_reduced"].value is False and hf["lvef_boundary_is_reduced"].alternatives[0].value is True
    copd = load_pathway("copd").spec.parameters
    assert copd["use_fixed_ratio"].value is False and copd["fixed_fev1_fvc_cutoff"].value == 0.70
    assert (copd["ccq_refer"].value, copd["mrc_refer"].value, copd["fev1_pct_severe"].value) == (2, 3, 50)


@pytest.mark.parametrize("name", SHIPPED)
def test_declared_parameters_and_rules_are_used(name):
    loaded = load_pathway(name)
    spec = loaded.spec
    used = _names_used(spec)
    unused = [p for p in [*spec.parameters, *spec.rules] if p not in used]
    assert unused == []


def test_financing_library_defines_all_four_routes_with_citations_and_deadlines():
    result = validate_paths([PATHWAYS_DIR / "_shared"])
    financing = next(d.model for d in result.libraries if d.model.id == "financing")
    assert set(financing.financing) == {"wlz", "wmo", "zvw_wijkverpleging", "pgb"}
    for rule_name in financing.financing.values():
        assert financing.rules[rule_name].evidence is not None
    assert financing.rules["wmo_mag_weigeren"].modality == "may"
    # Wlz indication excludes Zvw wijkverpleging unless specialist-managed
    text = financing.rules["zvw_wijkverpleging_eligible"].when.text
    assert "not wlz_indicatie" in text and "verpleging_specialistisch_aangestuurd" in text
    deadlines = {d.id: str(d.within) for d in financing.deadlines}
    assert deadlines == {"wmo_persoonlijk_plan": "7d", "wmo_onderzoek": "6w", "wmo_beschikking": "2w", "ciz_besluit": "6w"}
    assert financing.effective_from.isoformat() == "2015-01-01"


@pytest.mark.parametrize("name", SHIPPED)
def test_each_pathway_uses_the_shared_financing_routes(name):
    spec = load_pathway(name).spec
    assert {s.financing for s in spec.steps} & {"zvw_wijkverpleging", "wmo", "wlz", "pgb"}
