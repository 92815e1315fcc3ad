"""Assurance cases (`pathways/NAME/cases.yaml`): patients + a date -> expected decisions.

A case names facts by their canonical names and canonical units, so a case reads like the
guideline. ``pathways check`` runs every case and reports threshold coverage: each comparison
with a guideline threshold must be seen both true and false across the cases, and each ordering
comparison (< <= > >=) of a numeric fact with a number or parameter must also be seen with the
fact exactly at the threshold (the value a source puts on one side or the other; docs/cases.md).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from pathways.definition import expr as E
from pathways.definition.loader import LoadedPathway
from pathways.facts.model import Condition, Demographics, Event, Medication, Observation, PatientFacts
from pathways.rules.casefile import LONG_AGO, Case, CaseFile, CasePatient, Expect, Scalar, Status, load_cases, read_cases  # noqa: F401 (the format, re-exported)
from pathways.rules.evaluate import Evaluation, PathwayEvaluator
from pathways.rules.plan import atom_of
from pathways.rules.reference import AT_THRESHOLD


def patient_facts(case: Case, loaded: LoadedPathway) -> PatientFacts:
    return case_patient_facts(case.id, case.at, case.patient, loaded.facts)


def case_patient_facts(case_id: str, at: dt.date, p: CasePatient, facts: dict) -> PatientFacts:
    """The patient of a case as facts; ``facts`` (name -> declaration) gives the canonical units."""
    observations = []
    for name, value in p.values.items():
        unit = None
        if isinstance(value, (tuple, list)):
            value, unit = value
        elif name in facts and facts[name].type == "quantity":
            unit = facts[name].unit
        observations.append(Observation(fact=name, value=value, unit=unit, at=at))
    for name, points in p.series.items():
        unit = facts[name].unit if name in facts and facts[name].type == "quantity" else None
        observations.extend(Observation(fact=name, value=v, unit=unit, at=d) for d, v in points)
    conditions = [Condition(fact=n, onset=onset or LONG_AGO) for n, onset in p.conditions.items()]
    conditions += [Condition(fact=n, onset=a, abatement=b) for n, (a, b) in p.ended_conditions.items()]
    return PatientFacts(
        patient=f"case-{case_id}".replace("_", "-"),
        demographics=Demographics(birth_date=p.birth_date, sex=p.sex, deceased_date=p.deceased_date),
        observations=tuple(observations),
        conditions=tuple(conditions),
        medications=tuple(Medication(fact=n, start=LONG_AGO) for n in p.medications),
        events=tuple(Event(fact=n, at=d) for n, dates in p.events.items() for d in dates),
        indications=p.indications,
    )


@dataclass
class CaseResult:
    case: Case
    failures: list[str]
    evaluation: Evaluation | None


@dataclass
class CheckReport:
    pathway: str
    results: list[CaseResult] = field(default_factory=list)
    uncovered: list[str] = field(default_factory=list)  # "<condition>: <comparison> never <true|false>"

    @property
    def failed(self) -> list[CaseResult]:
        return [r for r in self.results if r.failures]


def compare(case: Case, result: Evaluation) -> list[str]:
    failures = []
    expect = case.expect
    if expect.indicated is not None and result.indicated != expect.indicated:
        failures.append(f"indicated: expected {expect.indicated}, got {result.indicated}")
    statuses = {s.id: s for s in result.steps}
    for step, status in expect.steps.items():
        if step not in statuses:
            failures.append(f"step {step}: no such step")
        elif statuses[step].status != status:
            failures.append(f"step {step}: expected {status}, got {statuses[step].status} ({'; '.join(statuses[step].reasons[-3:])})")
    if expect.escalations is not None:
        got = sorted(e.id for e in result.escalations)
        if got != sorted(expect.escalations):
            failures.append(f"escalations: expected {sorted(expect.escalations)}, got {got}")
    for route, eligible in expect.eligibility.items():
        actual = result.eligibility.get(route, {}).get("eligible", "absent")
        if actual != eligible:
            failures.append(f"eligibility {route}: expected {eligible}, got {actual}")
    for route, texts in expect.eligibility_reasons.items():
        reasons = " | ".join(result.eligibility.get(route, {}).get("reasons", []))
        for text in texts:
            if text not in reasons:
                failures.append(f"eligibility {route}: no reason mentions '{text}' ({reasons})")
    for name, value in expect.facts.items():
        actual = result.facts.get(name, "absent")
        if isinstance(actual, float) and isinstance(value, (int, float)) and abs(actual - value) < 1e-6:
            continue
        if isinstance(actual, dt.date):
            actual = actual.isoformat()
        if actual != value:
            failures.append(f"fact {name}: expected {value!r}, got {actual!r}")
    return failures


def _issues(case: Case, found: list[str]) -> list[str]:
    expected = case.expect.issues
    failures = [f"input: {issue}" for issue in found if not any(text in issue for text in expected)]
    failures += [f"expected an input problem mentioning '{text}'" for text in expected if not any(text in issue for issue in found)]
    return failures


def thresholds_of(evaluator: PathwayEvaluator) -> dict[str, str]:
    """Comparisons that state a threshold (a parameter or a number), keyed by their text."""
    plan = evaluator.plan
    found: dict[str, str] = {}
    trees = [(c.id, c.ast) for c in plan.conditions] + [(f"rule:{n}", r.when.ast) for n, r in plan.rules.items()]
    for where, tree in trees:
        for node in E.walk(tree):
            if isinstance(node, E.Compare):
                sides = list(E.walk(node.left)) + list(E.walk(node.right))
                if any(isinstance(s, E.Num) for s in sides) or any(isinstance(s, E.Name) and s.name in plan.parameters for s in sides):
                    found.setdefault(E.unparse(node), where)
    return found


@dataclass(frozen=True)
class Boundary:
    """A threshold comparison that needs a case exactly at its bound."""

    where: str  # 'rule:kidney_referral', 'gate:metformine_starten', ...
    subject: str  # 'age_years', 'change(body_weight_kg, 3d)'
    bound: str  # 'ckd_age_boundary_years', '18', '-weight_loss_month_pct'
    value: float


ORDERING = {"<", "<=", ">", ">="}


def boundaries_of(evaluator: PathwayEvaluator) -> dict[str, Boundary]:
    """Ordering comparisons of a fact (or a function of one) with a number or numeric parameter."""
    plan = evaluator.plan
    found: dict[str, Boundary] = {}
    trees = [(c.id, c.ast) for c in plan.conditions] + [(f"rule:{n}", r.when.ast) for n, r in plan.rules.items()]
    for where, tree in trees:
        for node in E.walk(tree):
            if not isinstance(node, E.Compare) or node.op not in ORDERING:
                continue
            for subject, bound in ((node.left, node.right), (node.right, node.left)):
                value = E.constant_value(bound, plan.parameters)
                if value is not None and atom_of(subject) is not None and not (isinstance(subject, E.Name) and subject.name in plan.parameters):
                    found.setdefault(E.unparse(node), Boundary(where, E.unparse(subject), E.unparse(bound), value))
    return found


def run_cases(loaded: LoadedPathway, cases: CaseFile, today: dt.date) -> CheckReport:
    evaluator = PathwayEvaluator(loaded)  # cross-checks, so every condition is explained and traced
    report = CheckReport(loaded.spec.id)
    seen: dict[str, set] = {}
    evaluator.trace = seen
    for case in cases.cases:
        try:
            result = evaluator.evaluate(patient_facts(case, loaded), case.at, today)
        except Exception as exc:  # a case must never crash the check: report it
            report.results.append(CaseResult(case, [f"error: {exc}"], None))
            continue
        failures = _issues(case, [str(i) for i in result.issues]) + compare(case, result)
        report.results.append(CaseResult(case, failures, result))
    for text, where in thresholds_of(evaluator).items():
        outcomes = seen.get(text, set())
        for value in (True, False):
            if value not in outcomes:
                report.uncovered.append(f"{where}: {text} never {'true' if value else 'false'}")
    for text, boundary in boundaries_of(evaluator).items():
        if AT_THRESHOLD not in seen.get(text, set()):
            at = boundary.bound if boundary.bound == f"{boundary.value:g}" else f"{boundary.bound} = {boundary.value:g}"
            report.uncovered.append(f"{boundary.where}: {text} never exactly at the threshold (add a case with {boundary.subject} at {at})")
    return report
