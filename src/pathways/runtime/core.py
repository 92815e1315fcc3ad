"""An enrollment (one patient in one pathway version) moving through time. Free of Prefect and
of the database: ``advance`` and ``record`` take a state, the patient's facts and a clock, and
return the new state and the events, deterministically. The state is plain data (pydantic) so it
can be saved and reloaded between any two calls.

- A step becomes due when its requirements are done and its date (from its timing) has come;
  then its gate and financing decide: ``due`` or ``gated`` (with the reasons).
- Recurring reviews move to their next occurrence when done; a gated occurrence is passed over
  when the next one comes due.
- Escalations open once when their trigger holds and stay open until acted on: the step recorded
  (a sign-off records it) or a documented resolution. A closed escalation is not opened again
  while its trigger keeps holding: only when the trigger newly holds after the patient recovered
  (it stopped holding at an advance since), or once the pathway's ``reopen_after`` interval has
  passed since it was closed.
- Goals are agreed when their step is recorded (those whose condition holds), with the latest
  value as baseline, and judged at their deadline: met, missed, or not measured when no value
  was recorded after the goal was agreed.
Every event names its step run (enrollment, step, due date: one row in the store) and has an
idempotency key (the run and the outcome), so advancing twice never duplicates a decision.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from pathways.clock import Clock
from pathways.definition import expr as E
from pathways.definition.loader import LoadedPathway
from pathways.facts.derive import Atom, Reader
from pathways.facts.model import Observation, PatientFacts
from pathways.facts.resolve import check_value
from pathways.rules.evaluate import Evaluation, PathwayEvaluator
from pathways.rules.reference import ReferenceEvaluator
from pathways.runtime.schedule import add, occurrence_date

StepStatus = Literal["waiting", "due", "gated", "finished"]


class _State(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StepProgress(_State):
    occurrence: int = 0  # the occurrence now pending (0-based)
    status: StepStatus = "waiting"
    due_on: dt.date | None = None
    done_on: tuple[dt.date, ...] = ()
    reasons: tuple[str, ...] = ()


class GoalProgress(_State):
    step: str
    fact: str
    target: str
    agreed_on: dt.date
    deadline: dt.date
    baseline: float | None = None
    latest: float | None = None
    status: Literal["open", "met", "missed", "not_measured"] = "open"


class OpenEscalation(_State):
    since: dt.date
    severity: str
    action: str
    reasons: tuple[str, ...] = ()


class ClosedEscalation(_State):
    """The last episode of an escalation, closed: it does not open again while its trigger keeps
    holding (``recovered``: the trigger stopped holding at an advance since it was closed)."""

    opened: dt.date
    closed: dt.date
    how: Literal["done", "resolved"]
    recovered: bool = False


class EnrollmentState(_State):
    enrollment: str
    patient: str  # pseudonymous id
    pathway: str
    version: str
    version_key: str
    enrolled_on: dt.date
    as_of: dt.date
    indicated: bool | None = None
    steps: dict[str, StepProgress]
    goals: dict[str, GoalProgress] = {}
    escalations: dict[str, OpenEscalation] = {}
    closed_escalations: dict[str, ClosedEscalation] = {}


@dataclass(frozen=True)
class Event:
    kind: str  # due | gated | escalated | resolved | done | done_before | goal_agreed | goal_met | goal_missed | goal_not_measured | indicated | not_indicated | skipped
    step: str | None
    on: dt.date  # the due date of the step occurrence (or the date of the event)
    run_key: str  # the step run: enrollment, step and due date (one row in the store)
    decided: dt.date  # the evaluation date
    reasons: tuple[str, ...] = ()
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """Idempotency key of this decision: its step run and its outcome."""
        return f"{self.run_key}:{self.kind}"


class RecordError(ValueError):
    """``fields``: for each problem, the output it is about (None: the record as a whole), so a
    form can show it next to its field."""

    def __init__(self, problems: list[str], fields: list[str | None] | None = None):
        super().__init__("\n".join(problems))
        self.problems = problems
        self.fields = fields if fields is not None else [None] * len(problems)


class StepNotOpen(RecordError):
    """The step cannot be recorded now: not due, or recorded already (by someone else, say)."""


class BackInTime(ValueError):
    """An enrollment asked to advance to a date before the one it was advanced to already."""

    def __init__(self, enrollment: str, as_of: dt.date, at: dt.date):
        super().__init__(f"cannot advance {enrollment} back in time ({at} < {as_of})")
        self.enrollment, self.as_of, self.at = enrollment, as_of, at


def not_back_in_time(state: EnrollmentState, at: dt.date) -> None:
    """BackInTime when ``at`` is before the date ``state`` was advanced to: time only goes forward."""
    if at < state.as_of:
        raise BackInTime(state.enrollment, state.as_of, at)


def enroll(loaded: LoadedPathway, enrollment: str, patient: str, on: dt.date, evaluator: PathwayEvaluator | None = None) -> EnrollmentState:
    evaluator = evaluator or PathwayEvaluator(loaded)
    return EnrollmentState(
        enrollment=enrollment, patient=patient, pathway=loaded.spec.id, version=loaded.spec.version,
        version_key=evaluator.plan.version_key, enrolled_on=on, as_of=on,
        steps={s.id: StepProgress() for s in loaded.spec.steps},
    )


def _key(state: EnrollmentState, step: str | None, on: dt.date | None) -> str:
    return f"{state.enrollment}:{step or '-'}:{on.isoformat() if on else '-'}"


class Runtime:
    """Advances enrollments of one pathway version."""

    def __init__(self, loaded: LoadedPathway, evaluator: PathwayEvaluator | None = None):
        self.loaded = loaded
        self.spec = loaded.spec
        self.evaluator = evaluator or PathwayEvaluator(loaded)
        self.steps = {s.id: s for s in self.spec.steps}
        # where each named rule is defined (document id@version): the "rule version" of a decision
        self.rule_origin = {name: f"{doc.model.id}@{doc.model.version}" for doc in loaded.libraries for name in doc.model.rules}
        self.rule_origin.update({name: f"{self.spec.id}@{self.spec.version}" for name in self.spec.rules})
        self.conditions = {c.id: c for c in self.evaluator.plan.conditions}
        self._rules_of: dict[str, dict[str, str]] = {}

    def rules_of(self, cid: str) -> dict[str, str]:
        """The named rules a condition uses, directly or through other rules (computed once)."""
        if cid not in self._rules_of:
            rules: dict[str, str] = {}
            pending = [n.name for n in E.names(self.conditions[cid].ast)]
            while pending:
                name = pending.pop()
                if name in self.rule_origin and name not in rules:
                    rules[name] = self.rule_origin[name]
                    pending += [n.name for n in E.names(self.evaluator.plan.rules[name].when.ast)]
            self._rules_of[cid] = rules
        return self._rules_of[cid]

    def basis(self, evaluation: Evaluation, *condition_ids: str) -> dict[str, Any]:
        """What a decision rests on: its conditions, the named rules they use (with the version
        of the file defining each), and the facts they read with the values read."""
        rules: dict[str, str] = {}
        facts: dict[str, Any] = {}
        conditions = []
        for cid in condition_ids:
            condition = self.conditions.get(cid)
            if condition is None:
                continue
            conditions.append({"id": cid, "when": condition.text})
            rules.update(self.rules_of(cid))
            explanation = evaluation.explanations[cid]
            facts.update({atom: (value.isoformat() if isinstance(value, dt.date) else value) for atom, value in explanation.used.items()})
        return {"conditions": conditions, "rules": dict(sorted(rules.items())), "facts": dict(sorted(facts.items()))}

    # -- advance -------------------------------------------------------------------------
    def advance(self, state: EnrollmentState, patient: PatientFacts, clock: Clock,
                evaluation: Evaluation | None = None) -> tuple[EnrollmentState, list[Event], Evaluation]:
        """``evaluation``: the patient's evaluation at the clock's date, when already made (in
        bulk, ``PathwayEvaluator.evaluate_many``); else it is made here."""
        at = clock.today()
        not_back_in_time(state, at)
        if evaluation is None:
            evaluation = self.evaluator.evaluate(patient, at, at)
        elif evaluation.at != at or evaluation.version_key != state.version_key:
            raise ValueError(f"the evaluation given for {state.enrollment} is of {evaluation.version_key} at {evaluation.at}, "
                             f"not of {state.version_key} at {at}")
        events: list[Event] = []
        indicated = evaluation.indicated
        if indicated != state.indicated:
            events.append(Event("indicated" if indicated else "not_indicated", None, at, _key(state, "indication", at), at, tuple(evaluation.indication_reasons),
                                self.basis(evaluation, "indication", "exclusion")))
        statuses = {s.id: s for s in evaluation.steps}
        steps = dict(state.steps)
        for step in self.spec.steps:
            if step.escalation is not None:
                continue
            steps[step.id] = self._step(state, step, steps, statuses[step.id], at, indicated, events, evaluation)
        escalations, closed = self._escalate(state, evaluation, at, events)
        goals = {gid: self._judge(goal, patient, at, gid, state, events) for gid, goal in state.goals.items()}
        new = state.model_copy(update={"as_of": at, "indicated": indicated, "steps": steps, "escalations": escalations,
                                       "goals": goals, "closed_escalations": closed})
        return new, events, evaluation

    def _escalate(self, state: EnrollmentState, evaluation: Evaluation, at: dt.date, events: list[Event]):
        """Open the escalations whose trigger holds, once per episode (see the module's docstring)."""
        escalations = dict(state.escalations)
        closed = dict(state.closed_escalations)
        holding = {e.id for e in evaluation.escalations}
        for eid, episode in state.closed_escalations.items():
            if eid not in holding and not episode.recovered:
                closed[eid] = episode.model_copy(update={"recovered": True})
        for escalation in evaluation.escalations:
            if escalation.id in escalations:
                continue
            episode = closed.get(escalation.id)
            why: dict[str, Any] = {}
            if episode is not None:
                reopen_after = self.steps[escalation.id].escalation.reopen_after
                if episode.recovered:
                    why = {"reopened": f"the trigger holds again after it stopped holding since {episode.closed}"}
                elif reopen_after is not None and at >= add(episode.closed, reopen_after):
                    why = {"reopened": f"the trigger still holds {reopen_after} (reopen_after) after it was closed on {episode.closed}"}
                else:
                    continue  # the same episode: acted on already
            escalations[escalation.id] = OpenEscalation(since=at, severity=escalation.severity, action=escalation.action, reasons=tuple(escalation.reasons))
            events.append(Event("escalated", escalation.id, at, _key(state, escalation.id, at), at, tuple(escalation.reasons),
                                {"severity": escalation.severity, "action": escalation.action, "notify": escalation.notify, **why,
                                 **self.basis(evaluation, f"trigger:{escalation.id}")}))
        return escalations, closed

    def _anchor(self, step, steps: dict[str, StepProgress], state: EnrollmentState) -> dt.date | None:
        required = [steps[r].done_on[0] if steps[r].done_on else None for r in step.requires]
        if None in required:
            return None
        if step.timing is None:  # due as soon as what it requires is done
            return max([state.enrolled_on, *required])
        if step.timing.after == "enrollment":  # requirements gate it; its dates count from enrollment
            return state.enrolled_on
        done = steps[step.timing.after].done_on
        return done[0] if done else None

    def _step(self, state, step, steps, decision, at: dt.date, indicated: bool, events: list[Event], evaluation: Evaluation) -> StepProgress:
        progress = steps[step.id]
        if not indicated:
            return progress.model_copy(update={"status": "waiting", "reasons": ("not indicated",)}) if progress.status in ("due", "gated") else progress
        anchor = self._anchor(step, steps, state)
        if anchor is None:
            return progress
        occurrence = progress.occurrence
        due_on = occurrence_date(step.timing, anchor, occurrence)
        # a gated (not done) occurrence is passed over once the next one has come
        while progress.status == "gated" and due_on is not None:
            following = occurrence_date(step.timing, anchor, occurrence + 1)
            if following is None or following > at:
                break
            events.append(Event("skipped", step.id, due_on, _key(state, step.id, due_on), at, progress.reasons))
            occurrence, due_on = occurrence + 1, following
        if due_on is None:
            return progress.model_copy(update={"status": "finished", "occurrence": occurrence, "due_on": None})
        if due_on > at:
            return progress.model_copy(update={"status": "waiting", "occurrence": occurrence, "due_on": due_on, "reasons": ()})
        status = "due" if decision.status == "due" else "gated"
        if status == progress.status and due_on == progress.due_on:
            return progress  # nothing new: no event, no explanation needed
        reasons = tuple(decision.reasons)
        conditions = ([f"gate:{step.id}"] if step.gate is not None else []) + [f"eligibility:{step.financing}"]
        events.append(Event(status, step.id, due_on, _key(state, step.id, due_on), at, reasons,
                            {"stage": step.stage, "financing": step.financing, **self.basis(evaluation, *conditions)}))
        return progress.model_copy(update={"status": status, "occurrence": occurrence, "due_on": due_on, "reasons": reasons})

    # -- goals ---------------------------------------------------------------------------
    def _reference(self, patient: PatientFacts, at: dt.date):
        plan = self.evaluator.plan
        reader = Reader(self.evaluator.timeline(patient, at), plan.facts, plan.derived, at)
        return reader, ReferenceEvaluator(reader.read, plan.rules, plan.parameters, plan.parameter_units, plan.facts)

    def _judge(self, goal: GoalProgress, patient: PatientFacts, at: dt.date, gid: str, state, events: list[Event]) -> GoalProgress:
        if goal.status != "open":
            return goal
        reader, _ = self._reference(patient, min(at, goal.deadline))
        latest = reader.read(Atom("value", goal.fact)).value
        if at < goal.deadline:
            return goal.model_copy(update={"latest": latest})
        reader, reference = self._reference(patient, goal.deadline)
        measured = reader.read(Atom("value", goal.fact)).observed
        if at == goal.deadline and (measured is None or measured <= goal.agreed_on):
            return goal.model_copy(update={"latest": latest})  # the review of the deadline's own day may still be recorded
        detail = {"goal": gid, "fact": goal.fact, "target": goal.target, "deadline": goal.deadline.isoformat(),
                  "agreed_on": goal.agreed_on.isoformat(), "baseline": goal.baseline, "facts": {goal.fact: latest}}
        if measured is None or measured <= goal.agreed_on:  # only the baseline (or nothing) is known: no judgement
            events.append(Event("goal_not_measured", goal.step, goal.deadline, _key(state, f"goal-{gid}", goal.deadline), at,
                                (f"{goal.fact} was not measured between {goal.agreed_on} and {goal.deadline}, target {goal.target}",),
                                {**detail, "last_measured": measured.isoformat() if measured else None}))
            return goal.model_copy(update={"latest": latest, "status": "not_measured"})
        met = reference.evaluate(E.parse(f"{goal.fact} {goal.target}")).value is True
        events.append(Event("goal_met" if met else "goal_missed", goal.step, goal.deadline, _key(state, f"goal-{gid}", goal.deadline), at,
                            (f"{goal.fact} = {latest} on {measured}, target {goal.target} by {goal.deadline}",),
                            {**detail, "measured_on": measured.isoformat()}))
        return goal.model_copy(update={"latest": latest, "status": "met" if met else "missed"})

    # -- human input ---------------------------------------------------------------------
    def record(self, state: EnrollmentState, step_id: str, data: dict[str, Any], patient: PatientFacts, clock: Clock,
               require_all: bool = True) -> tuple[EnrollmentState, list[Event], list[Observation]]:
        """Record a step as done with the outputs people recorded; validated against the step's
        declared outputs (``require_all=False``, for simulations, lets required ones be absent).
        Returns the new state, the events and the observations to store."""
        at = clock.today()
        if step_id not in self.steps:
            raise RecordError([f"unknown step '{step_id}' in {self.spec.id} {self.spec.version}"])
        step = self.steps[step_id]
        progress = state.steps[step_id]
        if step.escalation is None and progress.status != "due":
            raise StepNotOpen([f"step '{step_id}' is not due (status {progress.status})"])
        if step.escalation is not None and step_id not in state.escalations:
            raise StepNotOpen([f"escalation '{step_id}' is not open"])
        problems, observations = self._outputs(step, data, at, require_all)
        if problems:
            raise RecordError([text for _, text in problems], [name for name, _ in problems])
        events = [Event("done", step_id, progress.due_on or at, _key(state, step_id, progress.due_on or at), at, (), {"outputs": sorted(data), "stage": step.stage})]
        steps = dict(state.steps)
        steps[step_id] = progress.model_copy(update={
            "done_on": (*progress.done_on, at), "occurrence": progress.occurrence + (1 if step.escalation is None else 0),
            "status": "waiting", "reasons": (),
        })
        escalations = {k: v for k, v in state.escalations.items() if k != step_id}
        closed = dict(state.closed_escalations)
        if step.escalation is not None:
            closed[step_id] = ClosedEscalation(opened=state.escalations[step_id].since, closed=at, how="done")
        goals = dict(state.goals)
        if step.goals:
            updated = patient.model_copy(update={"observations": (*patient.observations, *observations)})
            _, reference = self._reference(updated, at)
            reader, _ = self._reference(updated, at)
            for goal in step.goals:
                if goal.when is not None and reference.evaluate(goal.when.ast).value is not True:
                    continue
                baseline = goal.baseline if goal.baseline != "recorded" else reader.read(Atom("value", goal.fact)).value
                goals[goal.id] = GoalProgress(step=step_id, fact=goal.fact, target=goal.target, agreed_on=at,
                                              deadline=add(at, goal.deadline), baseline=baseline, latest=baseline)
                events.append(Event("goal_agreed", step_id, at, _key(state, f"goal-{goal.id}", at), at, (f"{goal.fact} {goal.target} by {add(at, goal.deadline)}",),
                                    {"goal": goal.id, "fact": goal.fact, "target": goal.target, "deadline": add(at, goal.deadline).isoformat(),
                                     "baseline": baseline, "facts": {goal.fact: baseline}}))
        new = state.model_copy(update={"steps": steps, "escalations": escalations, "goals": goals, "closed_escalations": closed})
        return new, events, observations

    def resolve(self, state: EnrollmentState, step_id: str, reason: str, clock: Clock) -> tuple[EnrollmentState, list[Event]]:
        """Close an open escalation without doing its step, for a documented reason (e.g. the
        huisarts judged a referral not needed): it is then treated as acted on."""
        at = clock.today()
        if step_id not in state.escalations:
            raise RecordError([f"'{step_id}' is not an open escalation of {state.enrollment} "
                               f"(open: {', '.join(sorted(state.escalations)) or 'none'})"])
        if not reason.strip():
            raise RecordError(["give the reason the escalation is resolved (--reason)"])
        opened = state.escalations[step_id]
        if at < opened.since:
            raise RecordError([f"'{step_id}' was opened on {opened.since}: it cannot be resolved on {at}, before that"])
        event = Event("resolved", step_id, opened.since, _key(state, step_id, opened.since), at, (reason.strip(),),
                      {"opened": opened.since.isoformat(), "severity": opened.severity, "action": opened.action})
        closed = {**state.closed_escalations, step_id: ClosedEscalation(opened=opened.since, closed=at, how="resolved")}
        escalations = {k: v for k, v in state.escalations.items() if k != step_id}
        return state.model_copy(update={"escalations": escalations, "closed_escalations": closed}), [event]

    def enroll_from(self, state: EnrollmentState, stage: str) -> tuple[EnrollmentState, list[Event]]:
        """A patient known for years, enrolled part-way: the steps of the stages before ``stage``
        are marked done before the enrollment (on its date, with no outputs recorded)."""
        from pathways.definition.model import STAGES

        if stage not in STAGES or stage == "escalation":
            raise RecordError([f"'{stage}' is not a stage to start from (one of {', '.join(STAGES[:-1])})"])
        before = STAGES[:STAGES.index(stage)]
        at = state.enrolled_on
        steps = dict(state.steps)
        events = []
        for step in self.spec.steps:
            if step.stage in before and step.escalation is None:
                steps[step.id] = steps[step.id].model_copy(update={"done_on": (at,), "occurrence": 1, "status": "waiting", "reasons": ()})
                events.append(Event("done_before", step.id, at, _key(state, step.id, at), at, (f"done before enrollment (enrolled from stage {stage})",),
                                    {"stage": step.stage, "from_stage": stage}))
        return state.model_copy(update={"steps": steps}), events

    def _outputs(self, step, data: dict[str, Any], at: dt.date, require_all: bool = True) -> tuple[list[tuple[str, str]], list[Observation]]:
        """(problems as (output, message), observations)."""
        declared = {o.fact: o for o in step.outputs}
        facts = self.evaluator.plan.facts
        problems = [(name, f"'{name}' is not an output of step '{step.id}' (outputs: {', '.join(declared) or 'none'})") for name in data if name not in declared]
        if require_all:
            problems += [(name, f"required output '{name}' of step '{step.id}' is missing") for name, o in declared.items() if o.required and name not in data]
        observations = []
        for name, value in data.items():
            if name not in declared:
                continue
            unit = None
            if isinstance(value, dict):
                value, unit = value.get("value"), value.get("unit")
            elif facts[name].type == "quantity":
                unit = facts[name].unit
            _, _, problem = check_value(facts[name], value, unit)
            if problem:
                problems.append((name, f"{name}: {problem}"))
            else:
                observations.append(Observation(fact=name, value=value, unit=unit, at=at))
        return problems, observations
