"""One personal care plan per patient across the pathways they are enrolled in (pure: no store,
no Prefect, no clock).

Input: the patient's enrollment states, each with the pathway version it runs, the date and the
bundling window (a parameter of the care network, default 14 days). Output: one ``PersonalPlan``.

- Every pathway's due and upcoming steps (and open escalations) with their source pathway and
  step. A gated step (its gate does not hold) is not planned, nor an upcoming one whose gate does
  not hold on the plan's date; a finished one neither.
- Bundling rule ``same-discipline-within-window``: the steps of one discipline are taken in
  order of their planning date (the due date, or ``at`` for a step that is overdue or an open
  escalation); the first opens an appointment on its date, and every later step of that
  discipline whose date falls within ``window`` days after it joins that appointment. The
  appointment's date is the earliest planning date of its steps. The next step beyond the window
  opens the next appointment. Each appointment says why (which steps, which rule, which window).
- Measurements: the quantities (facts of type quantity) that the appointment's steps record,
  requested once per appointment and listed with every pathway step they serve.
- Goals: the goals agreed in every enrollment (with status), and for a pathway whose goals are
  not agreed yet, the goals its goal-setting step will agree; each with the patient's own
  priority when recorded (1 high, 2 medium, 3 low: FHIR's goal-priority), those with a
  priority first (most important first), then the others in pathway order.
- Conflicts between pathways (runtime/interactions.py) are passed in and shown with the plan;
  a conflict of a rule that escalates opens an escalation on the plan, passed in with those
  still open from earlier plans (store/plans.py keeps them until resolved).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from pathways.definition.loader import LoadedPathway
from pathways.definition.network import DEFAULT_WINDOW_DAYS, MAX_WINDOW_DAYS  # the care network's parameter
from pathways.runtime.core import EnrollmentState

PRIORITIES = {1: "high", 2: "medium", 3: "low"}  # the patient's priority of a goal -> FHIR goal-priority
BUNDLE_RULE = "same-discipline-within-window"


class PlanError(ValueError):
    """Input a plan cannot be made from (no enrollments, one pathway twice, a bad window)."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Enrolled:
    """One enrollment with the pathway version it runs; ``gated``: the steps whose gate does not
    hold on the plan's date (an upcoming occurrence of one is not planned: the quarterly and the
    half-yearly diabetes control are not both booked)."""

    state: EnrollmentState
    loaded: LoadedPathway
    gated: frozenset[str] = frozenset()


@dataclass(frozen=True)
class PlannedStep:
    pathway: str
    version: str
    enrollment: str
    step: str
    title: str
    discipline: str
    status: str  # due | upcoming | escalated
    due_on: dt.date  # the step occurrence's due date (an escalation: the day it opened)
    planned_on: dt.date  # the due date, or ``at`` when it is overdue
    measures: tuple[str, ...] = ()  # quantity facts it records

    def ref(self) -> dict[str, str]:
        return {"pathway": self.pathway, "step": self.step}


@dataclass(frozen=True)
class Measurement:
    fact: str
    serves: tuple[tuple[str, str], ...]  # (pathway, step)

    def to_json(self) -> dict[str, Any]:
        return {"fact": self.fact, "for": [{"pathway": p, "step": s} for p, s in self.serves],
                "pathways": sorted({p for p, _ in self.serves})}


@dataclass(frozen=True)
class Appointment:
    date: dt.date
    discipline: str
    steps: tuple[PlannedStep, ...]
    measurements: tuple[Measurement, ...]
    window_days: int

    @property
    def key(self) -> str:
        """What identifies this bundling decision: discipline, date and the step occurrences."""
        steps = ",".join(f"{s.enrollment}:{s.step}:{s.due_on}" for s in self.steps)
        return f"{self.date}:{self.discipline}:{hashlib.sha256(steps.encode()).hexdigest()[:16]}"

    @property
    def decision(self) -> dict[str, Any]:
        first, last = self.steps[0], max(self.steps, key=lambda s: s.planned_on)
        pathways = sorted({s.pathway for s in self.steps})
        if len(self.steps) == 1:
            why = (f"one {self.discipline} step on {self.date}; no other {self.discipline} step falls within "
                   f"{self.window_days} days after it")
        else:
            when = (f"fall on {first.planned_on}" if first.planned_on == last.planned_on else
                    f"fall between {first.planned_on} and {last.planned_on}, within {self.window_days} days of the first")
            overdue = " (overdue steps are planned on the plan's date)" if any(s.due_on < s.planned_on for s in self.steps) else ""
            why = (f"{len(self.steps)} {self.discipline} steps of {', '.join(pathways)} {when}: one appointment on "
                   f"{self.date}, the earliest date{overdue}")
        shared = [m.fact for m in self.measurements if len({p for p, _ in m.serves}) > 1]
        if shared:
            why += f"; {', '.join(shared)} measured once for {len(pathways)} pathways"
        return {"rule": BUNDLE_RULE, "discipline": self.discipline, "window_days": self.window_days,
                "date": self.date.isoformat(), "steps": [{**s.ref(), "due_on": s.due_on.isoformat()} for s in self.steps],
                "why": why}

    def to_json(self) -> dict[str, Any]:
        return {"date": self.date.isoformat(), "discipline": self.discipline,
                "steps": [{**s.ref(), "version": s.version, "enrollment": s.enrollment, "title": s.title, "status": s.status,
                           "due_on": s.due_on.isoformat()} for s in self.steps],
                "measurements": [m.to_json() for m in self.measurements], "decision": self.decision}


@dataclass(frozen=True)
class Conflict:
    """Two pathways' steps that must not go ahead as each pathway says (runtime/interactions.py)."""

    rule: str
    title: str
    steps: tuple[tuple[str, str], ...]  # (pathway, step)
    reasons: tuple[str, ...]
    action: str
    severity: str
    evidence: dict[str, Any] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)
    en: dict[str, str] = field(default_factory=dict)  # {"title", "action"} in English (the Dutch when the rule has none)
    escalate: dict[str, str] | None = None  # {"severity", "action"}: the conflict opens an escalation on the plan

    @property
    def key(self) -> str:
        return f"{self.rule}:" + ",".join(f"{p}.{s}" for p, s in self.steps)

    @property
    def decision_key(self) -> str:
        """The conflict on these values: the same conflict on the same facts is one decision."""
        digest = hashlib.sha256(json.dumps(self.facts, sort_keys=True, default=str).encode()).hexdigest()[:16]
        return f"{self.key}:{digest}"

    def to_json(self) -> dict[str, Any]:
        found = {"rule": self.rule, "title": self.title, "steps": [{"pathway": p, "step": s} for p, s in self.steps],
                 "reasons": list(self.reasons), "action": self.action, "severity": self.severity,
                 "evidence": self.evidence, "facts": self.facts, "en": self.en or {"title": self.title, "action": self.action}}
        if self.escalate is not None:
            found["escalate"] = self.escalate
        return found


@dataclass(frozen=True)
class PersonalPlan:
    patient: str
    at: dt.date
    window_days: int
    pathways: tuple[dict[str, str], ...]
    appointments: tuple[Appointment, ...]
    conflicts: tuple[Conflict, ...]
    goals: tuple[dict[str, Any], ...]
    escalations: tuple[dict[str, Any], ...] = ()  # open on the plan: {"key", "rule", "severity", "action", "steps", "opened_on", "new"}

    def to_json(self) -> dict[str, Any]:
        return {"patient": self.patient, "at": self.at.isoformat(), "window_days": self.window_days,
                "pathways": list(self.pathways), "appointments": [a.to_json() for a in self.appointments],
                "conflicts": [c.to_json() for c in self.conflicts], "goals": list(self.goals),
                "escalations": [{k: v for k, v in e.items() if k != "new"} for e in self.escalations]}

    @property
    def digest(self) -> str:
        """A hash of the whole plan: the same plan made twice has the same digest."""
        return hashlib.sha256(json.dumps(self.to_json(), sort_keys=True, default=str).encode()).hexdigest()


def check_window(window_days: Any) -> int:
    if isinstance(window_days, bool) or not isinstance(window_days, int) or not 0 <= window_days <= MAX_WINDOW_DAYS:
        raise PlanError([f"the bundling window must be a whole number of days from 0 to {MAX_WINDOW_DAYS} "
                         f"(default {DEFAULT_WINDOW_DAYS}), not {window_days!r}"])
    return window_days


def gated_steps(evaluation: Any) -> frozenset[str]:
    """The steps whose gate does not hold in an evaluation (rules/evaluate.py ``Evaluation``)."""
    return frozenset(s.id for s in evaluation.steps if s.status == "gated")


def planned_steps(enrolled: Enrolled, at: dt.date) -> list[PlannedStep]:
    """The due and upcoming steps and open escalations of one enrollment."""
    state, spec = enrolled.state, enrolled.loaded.spec
    facts = enrolled.loaded.facts
    found = []
    for step in spec.steps:
        progress = state.steps.get(step.id)
        if step.escalation is not None:
            opened = state.escalations.get(step.id)
            if opened is None:
                continue
            status, due_on = "escalated", opened.since
        elif progress is None or progress.due_on is None or progress.status in ("gated", "finished"):
            continue
        else:
            status, due_on = ("due" if progress.status == "due" or progress.due_on <= at else "upcoming"), progress.due_on
            if status == "upcoming" and step.id in enrolled.gated:
                continue
        measures = tuple(o.fact for o in step.outputs if o.fact in facts and facts[o.fact].type == "quantity")
        found.append(PlannedStep(spec.id, spec.version, state.enrollment, step.id, step.title.en or step.title.nl,
                                 step.discipline, status, due_on, max(due_on, at), measures))
    return found


def bundle(steps: list[PlannedStep], window_days: int) -> list[Appointment]:
    """Appointments by rule ``same-discipline-within-window`` (see the module's docstring)."""
    by_discipline: dict[str, list[PlannedStep]] = {}
    for step in sorted(steps, key=lambda s: (s.planned_on, s.pathway, s.step)):
        by_discipline.setdefault(step.discipline, []).append(step)
    appointments = []
    window = dt.timedelta(days=window_days)
    for discipline, pending in by_discipline.items():
        group: list[PlannedStep] = []
        for step in pending:
            if group and step.planned_on > group[0].planned_on + window:
                appointments.append(_appointment(discipline, group, window_days))
                group = []
            group.append(step)
        if group:
            appointments.append(_appointment(discipline, group, window_days))
    return sorted(appointments, key=lambda a: (a.date, a.discipline))


def _appointment(discipline: str, group: list[PlannedStep], window_days: int) -> Appointment:
    serves: dict[str, list[tuple[str, str]]] = {}
    for step in group:
        for fact in step.measures:
            serves.setdefault(fact, []).append((step.pathway, step.step))
    measurements = tuple(Measurement(fact, tuple(who)) for fact, who in sorted(serves.items()))
    return Appointment(group[0].planned_on, discipline, tuple(group), measurements, window_days)


def goals_of(enrolled: Enrolled) -> list[dict[str, Any]]:
    state, spec = enrolled.state, enrolled.loaded.spec
    if state.goals:
        return [{"pathway": spec.id, "goal": gid, "step": g.step, "fact": g.fact, "target": g.target,
                 "agreed_on": g.agreed_on.isoformat(), "deadline": g.deadline.isoformat(), "baseline": g.baseline,
                 "latest": g.latest, "status": g.status} for gid, g in sorted(state.goals.items())]
    return [{"pathway": spec.id, "goal": goal.id, "step": step.id, "fact": goal.fact, "target": goal.target,
             "title": goal.title.en or goal.title.nl, "deadline": f"{goal.deadline} after agreement", "status": "to agree"}
            for step in spec.steps for goal in step.goals]


def with_priorities(goals: list[dict[str, Any]], priorities: dict[tuple[str, str], int]) -> list[dict[str, Any]]:
    """The goals with the patient's priority (``priorities``: (pathway, goal) -> 1..3), those
    with one first, most important first; the others after them, in their order."""
    ranked = [{**g, "priority": priorities[(g["pathway"], g["goal"])]} if (g["pathway"], g["goal"]) in priorities else g
              for g in goals]
    return sorted(ranked, key=lambda g: g.get("priority", len(PRIORITIES) + 1))


def escalations_of(conflicts: list[Conflict], known: dict[str, dict[str, Any]], at: dt.date) -> list[dict[str, Any]]:
    """The escalations open on the plan: ``known`` (key -> the stored escalation, open or
    resolved) gives those already opened; a conflict of an escalating rule on values not seen
    before opens a new one (``new``). A resolved one opens again only when its conflict holds on
    other values (a new decision)."""
    found = {k: {**{f: v for f, v in e.items() if f not in ("resolved_on", "reason")}, "new": False}
             for k, e in known.items() if e.get("resolved_on") is None}
    for c in conflicts:
        if c.escalate is None or c.decision_key in known:
            continue
        found[c.decision_key] = {"key": c.decision_key, "rule": c.rule, "severity": c.escalate["severity"],
                                 "action": c.escalate["action"], "steps": [{"pathway": p, "step": s} for p, s in c.steps],
                                 "opened_on": at.isoformat(), "new": True}
    return [found[k] for k in sorted(found)]


def build_plan(patient: str, enrollments: list[Enrolled], at: dt.date, window_days: int = DEFAULT_WINDOW_DAYS,
               conflicts: list[Conflict] = (), priorities: dict[tuple[str, str], int] | None = None,
               escalations: dict[str, dict[str, Any]] | None = None) -> PersonalPlan:
    """The patient's one plan at ``at`` (see the module's docstring). ``priorities``: the
    patient's own, (pathway, goal) -> 1..3; ``escalations``: the plan's stored escalations by key."""
    window_days = check_window(window_days)
    if not enrollments:
        raise PlanError([f"patient '{patient}' is in no pathway: enrol them first (`pathways enroll {patient} --pathway NAME`)"])
    seen: dict[str, str] = {}
    problems = []
    for e in sorted(enrollments, key=lambda e: e.state.enrollment):
        if e.state.patient != patient:
            problems.append(f"enrollment {e.state.enrollment} is of patient '{e.state.patient}', not '{patient}'")
        if e.state.pathway in seen:
            problems.append(f"patient '{patient}' is in pathway {e.state.pathway} twice ({seen[e.state.pathway]} and "
                            f"{e.state.enrollment}): one enrollment per pathway; end one before planning")
        seen.setdefault(e.state.pathway, e.state.enrollment)
    if problems:
        raise PlanError(problems)
    ordered = sorted(enrollments, key=lambda e: (e.state.pathway, e.state.enrollment))
    steps = [s for e in ordered for s in planned_steps(e, at)]
    return PersonalPlan(
        patient=patient, at=at, window_days=window_days,
        pathways=tuple({"pathway": e.state.pathway, "version": e.state.version, "enrollment": e.state.enrollment} for e in ordered),
        appointments=tuple(bundle(steps, window_days)),
        conflicts=tuple(sorted(conflicts, key=lambda c: c.key)),
        goals=tuple(with_priorities([g for e in ordered for g in goals_of(e)], priorities or {})),
        escalations=tuple(escalations_of(list(conflicts), escalations or {}, at)),
    )
