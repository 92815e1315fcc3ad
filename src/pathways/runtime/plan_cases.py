"""Assurance cases for combined plans (`pathways/_shared/plan-cases.yaml`): one multimorbid
patient, the pathways they are enrolled in (the date and the stage they were enrolled from) and a
date -> the appointments the personal plan must bundle and the conflicts it must show.

Each case runs as the store would: every pathway enrolls the patient (``enroll``, then
``enroll_from`` the given stage: the earlier stages are done on the enrollment date), is
advanced to the case date over the case's facts, and the plan is built from those enrollments
with the interaction library's conflicts (runtime/plan.py, runtime/interactions.py). The expected
appointments and conflicts come from the pathways' timings and thresholds and
``../shared/domain/guidelines.md``, never from the engine's output (docs/cases.md).

Coverage: every threshold comparison in the interaction rules' ``when`` must be seen true and
false across the cases, and every ordering comparison also exactly at its threshold, as for a
pathway's own cases.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, ValidationError

from pathways.clock import FixedClock
from pathways.definition import expr as E
from pathways.definition.interactions import Interaction
from pathways.definition.loader import PLAN_CASES_FILE, SHARED_DIR, LoadedPathway, schema_problems
from pathways.definition.places import Places
from pathways.definition.yamlsource import read_yaml
from pathways.errors import ProblemsFound
from pathways.rules.cases import ORDERING, CasePatient, case_patient_facts
from pathways.rules.evaluate import PathwayEvaluator
from pathways.rules.reference import AT_THRESHOLD
from pathways.runtime.core import Runtime, enroll
from pathways.runtime.interactions import conflicts
from pathways.runtime.plan import DEFAULT_WINDOW_DAYS, Enrolled, PersonalPlan, build_plan, gated_steps

Stage = Literal["intake", "anamnesis", "goals", "interventions", "reviews"]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Enrolment(_Strict):
    since: dt.date  # the enrollment date
    from_stage: Stage = "intake"  # the stages before it were done on the enrollment date


class ExpectedAppointment(_Strict):
    date: dt.date
    discipline: str
    steps: list[str]  # "pathway.step", in the plan's order
    measurements: Optional[list[str]] = None  # exactly these facts, when given


class PlanExpect(_Strict):
    appointments: Optional[list[ExpectedAppointment]] = None  # exactly these, in order, when given
    appointments_until: Optional[dt.date] = None  # compare only the appointments up to this date
    conflicts: list[str] = []  # exactly these interaction rules


class PlanCase(_Strict):
    id: str
    description: str
    at: dt.date
    window_days: int = DEFAULT_WINDOW_DAYS
    enrolled: dict[str, Enrolment]  # pathway -> enrollment
    patient: CasePatient
    expect: PlanExpect


class PlanCaseFile(_Strict):
    cases: list[PlanCase]


@dataclass
class PlanCaseResult:
    case: PlanCase
    failures: list[str]
    plan: PersonalPlan | None


@dataclass
class PlanCheckReport:
    results: list[PlanCaseResult] = field(default_factory=list)
    uncovered: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[PlanCaseResult]:
        return [r for r in self.results if r.failures]


def plan_cases_file(folder: Path) -> Path | None:
    candidate = folder / SHARED_DIR / PLAN_CASES_FILE
    return candidate if candidate.is_file() else None


def load_plan_cases(path: Path) -> PlanCaseFile:
    source, problems = read_yaml(path)
    if source is None or problems:
        raise ProblemsFound(problems)
    try:
        return PlanCaseFile.model_validate(source.data)
    except ValidationError as exc:
        raise ProblemsFound(schema_problems(source, PlanCaseFile, exc)) from None


def plan_of_case(case: PlanCase, runtimes: dict[str, Runtime], rules: tuple[Interaction, ...],
                 trace: dict[str, set] | None = None) -> PersonalPlan:
    """The personal plan a case's patient gets on the case date (see the module's docstring)."""
    unknown = sorted(set(case.enrolled) - set(runtimes))
    if unknown:
        raise ValueError(f"unknown pathway {', '.join(unknown)} (known: {', '.join(sorted(runtimes))})")
    declared: dict = {}
    for name in reversed(sorted(case.enrolled)):
        declared.update(runtimes[name].loaded.facts)
    facts = case_patient_facts(case.id, case.at, case.patient, declared)
    enrolled = []
    for name, how in sorted(case.enrolled.items()):
        runtime = runtimes[name]
        state = enroll(runtime.loaded, f"{name}-{facts.patient}", facts.patient, how.since, runtime.evaluator)
        if how.from_stage != "intake":
            state, _ = runtime.enroll_from(state, how.from_stage)
        state, _, evaluation = runtime.advance(state, facts, FixedClock.on(case.at))
        enrolled.append(Enrolled(state, runtime.loaded, gated_steps(evaluation)))
    evaluators = {name: runtimes[name].evaluator for name in case.enrolled}
    found = conflicts(rules, evaluators, facts, case.at, trace)
    return build_plan(facts.patient, enrolled, case.at, case.window_days, found)


def compare_plan(case: PlanCase, plan: PersonalPlan) -> list[str]:
    failures = []
    expect = case.expect
    if expect.appointments is not None:
        got = [a for a in plan.appointments if expect.appointments_until is None or a.date <= expect.appointments_until]
        shown = [_shown(a.date, a.discipline, [f"{s.pathway}.{s.step}" for s in a.steps]) for a in got]
        wanted = [_shown(a.date, a.discipline, a.steps) for a in expect.appointments]
        if shown != wanted:
            failures.append(f"appointments: expected {'; '.join(wanted) or 'none'}, got {'; '.join(shown) or 'none'}")
        for a, e in zip(got, expect.appointments):
            measured = [m.fact for m in a.measurements]
            if e.measurements is not None and measured != sorted(e.measurements):
                failures.append(f"appointment {e.date} {e.discipline}: expected measurements {sorted(e.measurements)}, got {measured}")
    got_conflicts = sorted(c.rule for c in plan.conflicts)
    if got_conflicts != sorted(expect.conflicts):
        failures.append(f"conflicts: expected {sorted(expect.conflicts) or 'none'}, got {got_conflicts or 'none'}")
    return failures


def _shown(date: dt.date, discipline: str, steps: list[str]) -> str:
    return f"{date} {discipline} [{', '.join(steps)}]"


def run_plan_cases(runtimes: dict[str, Runtime], rules: tuple[Interaction, ...], cases: PlanCaseFile) -> PlanCheckReport:
    report = PlanCheckReport()
    seen: dict[str, set] = {}
    for case in cases.cases:
        try:
            plan = plan_of_case(case, runtimes, rules, seen)
        except Exception as exc:  # a case must never crash the check: report it
            report.results.append(PlanCaseResult(case, [f"error: {exc}"], None))
            continue
        report.results.append(PlanCaseResult(case, compare_plan(case, plan), plan))
    for rule in rules:
        if not all(p in runtimes for p in rule.pathways):
            continue
        parameters: dict = {}
        for p in reversed(rule.pathways):
            parameters.update(runtimes[p].evaluator.plan.parameters)
        for node in E.walk(rule.when.ast):
            if not isinstance(node, E.Compare):
                continue
            text = E.unparse(node)
            bounds = [(s, E.constant_value(b, parameters)) for s, b in ((node.left, node.right), (node.right, node.left))]
            bounded = [(s, v) for s, v in bounds if v is not None and not (isinstance(s, E.Name) and s.name in parameters)]
            if not bounded:
                continue
            outcomes = seen.get(text, set())
            for value in (True, False):
                if value not in outcomes:
                    report.uncovered.append(f"interaction:{rule.id}: {text} never {'true' if value else 'false'}")
            if node.op in ORDERING and AT_THRESHOLD not in outcomes:
                subject, value = bounded[0]
                report.uncovered.append(f"interaction:{rule.id}: {text} never exactly at the threshold "
                                        f"(add a case with {E.unparse(subject)} at {value:g})")
    return report


def runtimes_for(loaded: dict[str, LoadedPathway]) -> dict[str, Runtime]:
    """A runtime per pathway that explains every condition (cross-checked, as `pathways check` runs)."""
    return {name: Runtime(p, PathwayEvaluator(p)) for name, p in loaded.items()}


def check_plan_cases(file: Path, places: Places = Places()) -> PlanCheckReport:
    """Run a plan-cases file with the pathways it names and the interaction library next to it
    (ProblemsFound when the file, a pathway or the library does not read); ``places``: where
    the pathways' shared libraries are also looked for (the settings' PATHWAYS_PATH)."""
    from pathways.definition.interactions import interactions_file, read_interactions
    from pathways.definition.loader import load_pathway

    cases = load_plan_cases(file)
    folder = file.parent.parent
    names = sorted({name for case in cases.cases for name in case.enrolled})
    loaded = {}
    for name in names:  # a pathway not in the folder: the cases naming it fail with "unknown pathway"
        candidate = folder / name / "pathway.yaml"
        if candidate.is_file():
            loaded[name] = load_pathway(str(candidate), templates=False, places=places)
    rules: tuple[Interaction, ...] = ()
    library = interactions_file(folder)
    if library is not None:
        doc, problems = read_interactions(library)
        if problems:
            raise ProblemsFound(problems)
        rules = doc.library.interactions
    return run_plan_cases(runtimes_for(loaded), rules, cases)
