"""The personal plan's remaining parts (issue 28): the patient's own goal priorities (recorded
with `pathways plan --priority`, stored, audited, shown in the JSON, the zorgplan and the FHIR
CarePlan), conflicts that escalate (open on the plan until `--resolve`), the bundling window as
a care-network parameter (network.yaml, PATHWAYS_PLAN_WINDOW_DAYS, --window) and English
titles and actions of the interaction rules."""

from __future__ import annotations

import json
import shutil
import sqlite3

import pytest

from conftest import ROOT, mm01_on_metformin, run_cli
from pathways.orchestration.network import bundling_window
from pathways.runtime.plan import PlanError


def environment(tmp_path) -> dict[str, str]:
    return {"PATHWAYS_DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}", "PREFECT_HOME": str(tmp_path / "prefect"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1", "PATHWAYS_TODAY": "2026-12-03",
            "PATHWAYS_ROLE": "admin"}


def entries(tmp_path, action: str) -> list[tuple[str, str]]:
    with sqlite3.connect(tmp_path / "store.db") as c:
        return c.execute("select subject, payload from audit_entry where action = ? order by seq", (action,)).fetchall()


@pytest.fixture
def mm01(tmp_path):
    """mm-01 in diabetes and heart failure, with an eGFR of 25 while on metformin (the metformin
    stop conflict, which escalates)."""
    env = environment(tmp_path)
    file, _ = mm01_on_metformin(tmp_path)
    for pathway in ("diabetes", "heartfailure"):
        done = run_cli("enroll", "mm-01", "--pathway", pathway, "--facts", str(file), env=env)
        assert done.returncode == 0, done.stderr
    return env


def plan_json(env, *args: str) -> dict:
    done = run_cli("plan", "mm-01", "--at", "2026-12-10", "--json", *args, env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_patients_goal_priorities_are_recorded_audited_and_shown_first_in_json_zorgplan_and_fhir(mm01, tmp_path):
    before = plan_json(mm01)
    assert all("priority" not in g for g in before["goals"])
    goals = [(g["pathway"], g["goal"]) for g in before["goals"]]
    last = goals[-1]  # a heart-failure goal: ranked high, it comes first

    plan = plan_json(mm01, "--priority", f"{last[0]}.{last[1]}=1", "--priority", f"{goals[0][0]}.{goals[0][1]}=3")
    ranked = [(g["pathway"], g["goal"], g.get("priority")) for g in plan["goals"]]
    assert ranked[0] == (*last, 1) and ranked[1] == (*goals[0], 3)
    assert all(p is None for _, _, p in ranked[2:]) and len(ranked) == len(goals)
    audited = entries(tmp_path, "plan.priority")
    assert [s for s, _ in audited] == [f"mm-01:{last[0]}.{last[1]}", f"mm-01:{goals[0][0]}.{goals[0][1]}"]
    assert json.loads(audited[0][1])["priority"] == 1

    # kept in the store: the next plan shows them without the option; the same value again audits nothing
    assert plan_json(mm01, "--priority", f"{last[0]}.{last[1]}=1")["goals"] == plan["goals"]
    assert len(entries(tmp_path, "plan.priority")) == 2

    # the zorgplan (English) and the FHIR CarePlan show it
    document = tmp_path / "plan.md"
    done = run_cli("plan", "mm-01", "--at", "2026-12-10", "--document", str(document), "--lang", "en", env=mm01)
    assert done.returncode == 0, done.stderr
    text = document.read_text(encoding="utf-8")
    assert "How important to you: high." in text and "How important to you: low." in text

    # forgetting one; bad ones: a clear message, nothing stored
    plan = plan_json(mm01, "--priority", f"{goals[0][0]}.{goals[0][1]}=none")
    assert [g.get("priority") for g in plan["goals"]].count(None) == len(goals) - 1
    for bad, said in ((f"{last[0]}.{last[1]}=7", "must be 1 (high), 2 (medium), 3 (low) or none"),
                      ("diabetes.no_such_goal=1", "has no goal 'diabetes.no_such_goal'"),
                      ("nonsense", "write PATHWAY.GOAL=N")):
        done = run_cli("plan", "mm-01", "--at", "2026-12-10", "--priority", bad, env=mm01)
        assert (done.returncode, done.stdout) == (1, ""), bad
        assert said in done.stderr and "Traceback" not in done.stderr
    assert len(entries(tmp_path, "plan.priority")) == 3


def test_the_fhir_careplans_goals_carry_the_patients_priority_and_validate():
    import datetime as dt

    from pathways.definition.loader import load_pathway
    from pathways.runtime.core import GoalProgress, enroll
    from pathways.views.fhir_export import bundle, personal_care_plan

    loaded = load_pathway("diabetes")
    state = enroll(loaded, "diabetes-mm-01", "mm-01", dt.date(2026, 12, 1))
    agreed = {g: GoalProgress(step="doelen_afspreken", fact="hba1c_mmol_mol", target="<= 53 mmol/mol", agreed_on=dt.date(2026, 12, 1),
                              deadline=dt.date(2027, 3, 1)) for g in ("hba1c_standaard", "ander_doel")}
    state = state.model_copy(update={"goals": agreed})
    plan = {"patient": "mm-01", "at": "2026-12-10", "window_days": 14, "appointments": [], "conflicts": [], "escalations": [],
            "pathways": [{"pathway": "diabetes", "version": loaded.spec.version, "enrollment": "diabetes-mm-01"}],
            "goals": [{"pathway": "diabetes", "goal": "hba1c_standaard", "priority": 2}, {"pathway": "diabetes", "goal": "ander_doel"}]}
    resources = personal_care_plan(plan, [(loaded, state)], dt.date(2026, 12, 10))
    bundle(resources)  # validates every resource
    goals = {r["identifier"][0]["value"]: r for r in resources if r["resourceType"] == "Goal"}
    assert goals["diabetes-mm-01:hba1c_standaard"]["priority"]["coding"][0] == {
        "system": "http://terminology.hl7.org/CodeSystem/goal-priority", "code": "medium-priority", "display": "Medium Priority"}
    assert "priority" not in goals["diabetes-mm-01:ander_doel"]


def test_an_escalating_conflict_stays_open_on_the_plan_until_resolved_with_a_reason(mm01, tmp_path):
    plan = plan_json(mm01)
    (conflict,) = plan["conflicts"]
    (opened,) = plan["escalations"]
    assert opened["rule"] == conflict["rule"] == "metformine_bij_egfr_onder_stopgrens"
    assert (opened["severity"], opened["action"], opened["steps"]) == ("regulier", "huisarts_informeren", conflict["steps"])
    assert len(entries(tmp_path, "plan.escalated")) == 1
    # still open on a later plan, opened once
    assert plan_json(mm01)["escalations"] == plan["escalations"]
    assert len(entries(tmp_path, "plan.escalated")) == 1
    bundle = tmp_path / "plan.json"
    done = run_cli("plan", "mm-01", "--at", "2026-12-10", "--fhir", str(bundle), env=mm01)
    assert done.returncode == 0, done.stderr
    (whole,) = [e["resource"] for e in json.loads(bundle.read_text())["entry"] if e["resource"].get("title") == "Zorgplan (alle zorgpaden)"]
    assert any(n["text"].startswith("open escalation metformine_bij_egfr_onder_stopgrens (regulier") for n in whole["note"])
    shown = run_cli("plan", "mm-01", "--at", "2026-12-10", env={**mm01, "COLUMNS": "300"})
    assert "Open escalations" in shown.stdout and "huisarts_informeren" in shown.stdout

    # resolving needs a reason and an open escalation of that rule
    done = run_cli("plan", "mm-01", "--at", "2026-12-10", "--resolve", "nsaid_bij_hartfalen", "--reason", "x", env=mm01)
    assert done.returncode == 1 and "no escalation of rule 'nsaid_bij_hartfalen' is open" in done.stderr
    assert "open: metformine_bij_egfr_onder_stopgrens" in done.stderr
    done = run_cli("plan", "mm-01", "--at", "2026-12-10", "--resolve", opened["rule"], env=mm01)
    assert done.returncode == 1 and "--reason" in done.stderr

    plan = plan_json(mm01, "--resolve", opened["rule"], "--reason", "huisarts stopped metformin on 2026-12-09")
    assert plan["escalations"] == [] and plan["conflicts"]  # the conflict stands on the same values; the escalation is closed
    (resolved,) = entries(tmp_path, "plan.resolved")
    assert json.loads(resolved[1])["reason"] == "huisarts stopped metformin on 2026-12-09"
    # the same conflict on the same values does not open it again
    assert plan_json(mm01)["escalations"] == []
    assert len(entries(tmp_path, "plan.escalated")) == 1


def test_the_english_zorgplan_shows_the_conflict_in_english(mm01, tmp_path):
    for lang, title, action in (("en", "Metformin with an eGFR below the stop limit", "consult the GP - stop metformin"),
                                ("nl", "Metformine bij een eGFR onder de stopgrens", "huisarts consulteren - metformine stoppen")):
        document = tmp_path / f"plan-{lang}.md"
        done = run_cli("plan", "mm-01", "--at", "2026-12-10", "--document", str(document), "--lang", lang, env=mm01)
        assert done.returncode == 0, done.stderr
        text = document.read_text(encoding="utf-8")
        assert f"**{title}.**" in text and action in text
    assert "Metformine bij" not in (tmp_path / "plan-en.md").read_text(encoding="utf-8")
    # the escalation the conflict opened, in words for the patient
    assert "- We tell your GP about this. Open since 10 December 2026." in (tmp_path / "plan-en.md").read_text(encoding="utf-8")
    assert "- Wij laten dit aan de huisarts weten. Dit staat open sinds 10 december 2026." in (tmp_path / "plan-nl.md").read_text(encoding="utf-8")


# -- the bundling window: a parameter of the care network -------------------------------------

def network(tmp_path, text: str):
    shared = tmp_path / "net" / "_shared"
    shared.mkdir(parents=True)
    (shared / "network.yaml").write_text(text, encoding="utf-8")
    return [tmp_path / "net"]


def test_the_window_comes_from_the_option_the_environment_the_network_file_or_the_default(tmp_path, monkeypatch):
    monkeypatch.delenv("PATHWAYS_PLAN_WINDOW_DAYS", raising=False)
    roots = network(tmp_path, "# care network\nbundling_window_days: 21\n")
    assert bundling_window(None, roots) == 21
    assert bundling_window(None, []) == 14
    monkeypatch.setenv("PATHWAYS_PLAN_WINDOW_DAYS", "7")
    assert bundling_window(None, roots) == 7
    assert bundling_window(30, roots) == 30


@pytest.mark.parametrize("text, shown", [("bundling_window_days: -1\n", -1), ("bundling_window_days: 400\n", 400),
                                         ("bundling_window_days: twee weken\n", "twee weken"), ("bundling_window_days: 1.5\n", 1.5)])
def test_a_contradictory_window_in_the_network_file_names_the_file_and_line(tmp_path, monkeypatch, text, shown):
    monkeypatch.delenv("PATHWAYS_PLAN_WINDOW_DAYS", raising=False)
    roots = network(tmp_path, "# care network\n" + text)
    with pytest.raises(PlanError) as caught:
        bundling_window(None, roots)
    message = str(caught.value)
    assert message.startswith(f"{roots[0] / '_shared' / 'network.yaml'}:2:")
    assert f"not {shown!r}" in message and "bundling_window_days: 14" in message


def test_a_bad_window_in_the_environment_names_the_variable(monkeypatch):
    monkeypatch.setenv("PATHWAYS_PLAN_WINDOW_DAYS", "abc")
    with pytest.raises(PlanError, match=r"^PATHWAYS_PLAN_WINDOW_DAYS: the bundling window must be a whole number"):
        bundling_window(None, [])


def test_pathways_plan_uses_the_networks_window_and_stores_nothing_when_it_is_bad(mm01, tmp_path):
    folder = tmp_path / "pathways"
    shutil.copytree(ROOT / "pathways", folder)
    (folder / "_shared" / "network.yaml").write_text("bundling_window_days: 30\n", encoding="utf-8")
    assert plan_json({**mm01, "PATHWAYS_PATH": str(folder)})["window_days"] == 30
    assert plan_json({**mm01, "PATHWAYS_PATH": str(folder)}, "--window", "5")["window_days"] == 5
    made = len(entries(tmp_path, "plan.made"))
    (folder / "_shared" / "network.yaml").write_text("\nbundling_window_days: -3\n", encoding="utf-8")
    done = run_cli("plan", "mm-01", "--at", "2026-12-11", "--priority", "x=1", env={**mm01, "PATHWAYS_PATH": str(folder)})
    assert (done.returncode, done.stdout) == (1, "")
    assert "network.yaml:2:" in done.stderr and "not -3" in done.stderr and "Traceback" not in done.stderr
    assert len(entries(tmp_path, "plan.made")) == made and entries(tmp_path, "plan.priority") == []


def test_re_planning_after_an_advance_uses_the_networks_window_and_a_bad_one_is_reported_not_raised(mm01, tmp_path, monkeypatch):
    from pathways.access import Actor
    from pathways.clock import FixedClock
    from pathways.orchestration.careplan import replan
    from pathways.orchestration.service import Runtimes, open_store
    import datetime as dt

    store = open_store(FixedClock.on(dt.date(2026, 12, 10)), mm01["PATHWAYS_DATABASE_URL"],
                       Actor(user="pathways-service", role="admin", via="test"))
    with sqlite3.connect(tmp_path / "store.db") as c:
        enrollments = [e for (e,) in c.execute("select id from enrollment order by id")]
    monkeypatch.setenv("PATHWAYS_PLAN_WINDOW_DAYS", "21")
    done = replan(store, Runtimes(templates=False), enrollments, dt.date(2026, 12, 10))
    assert (done.patients, done.problems) == (1, [])
    with sqlite3.connect(tmp_path / "store.db") as c:
        assert c.execute("select window_days from care_plan where plan_on = '2026-12-10'").fetchall() == [(21,)]
    monkeypatch.setenv("PATHWAYS_PLAN_WINDOW_DAYS", "-2")
    done = replan(store, Runtimes(templates=False), enrollments, dt.date(2026, 12, 11))
    assert done.patients == 0 and len(done.problems) == 1 and done.problems[0].startswith("PATHWAYS_PLAN_WINDOW_DAYS:")
    with sqlite3.connect(tmp_path / "store.db") as c:
        assert c.execute("select count(*) from care_plan where plan_on = '2026-12-11'").fetchone() == (0,)


def test_validate_reports_a_bad_escalate_in_the_interaction_library_with_file_and_line(tmp_path):
    from pathways.definition.interactions import validate_with_interactions

    folder = tmp_path / "pathways"
    shutil.copytree(ROOT / "pathways", folder)
    library = folder / "_shared" / "interactions.yaml"
    text = library.read_text(encoding="utf-8")
    assert text.count("escalate: {severity: regulier, action: huisarts_informeren}") == 2
    library.write_text(text.replace("escalate: {severity: regulier, action: huisarts_informeren}",
                                    "escalate: {severity: hoog, action: huisarts_informeren}", 1), encoding="utf-8")
    line = next(i for i, l in enumerate(library.read_text(encoding="utf-8").splitlines(), 1) if "severity: hoog" in l)
    problems = [p for p in validate_with_interactions([folder]).problems if p.location.file.endswith("interactions.yaml")]
    assert problems and all(p.location.line == line for p in problems), [str(p.location) + " " + p.message for p in problems]
    assert any("spoed" in p.message + p.hint or "regulier" in p.message + p.hint for p in problems)


def test_validate_reports_a_contradictory_or_unknown_care_network_parameter_with_file_and_line(tmp_path):
    folder = tmp_path / "pathways"
    shutil.copytree(ROOT / "pathways", folder)
    (folder / "_shared" / "network.yaml").write_text("# the care network\nbundling_window_days: 400\nbundel_venster: 3\n",
                                                    encoding="utf-8")
    done = run_cli("validate", str(folder))
    assert done.returncode == 1
    shown = done.stdout + done.stderr
    assert "network.yaml:2:" in shown and "PW012" in shown and "not 400" in shown
    assert "network.yaml:3:" in shown and "PW010" in shown and "'bundel_venster' is no care-network parameter" in shown
