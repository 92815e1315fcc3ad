"""Fast-forward enrollments on a simulated clock: advance every week, complete the steps that
fall due with the latest known values of their declared outputs (carried forward; nothing is
invented), and count what happened. Steps completed while a required output was unknown are
counted as completed without that input."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field

from pathways.clock import FixedClock
from pathways.facts.derive import Atom, Reader
from pathways.facts.model import PatientFacts
from pathways.runtime.core import EnrollmentState, Event, RecordError, Runtime, enroll
from pathways.runtime.schedule import add
from pathways.definition.durations import Duration


@dataclass
class Simulated:
    patient: str
    state: EnrollmentState
    events: list[Event] = field(default_factory=list)
    without_input: set[str] = field(default_factory=set)  # steps completed while a required output was unknown

    @property
    def counts(self) -> Counter:
        return Counter(e.kind for e in self.events)

    def summary(self, reviews: set[str]) -> dict:
        """What a person reads of the simulation (``reviews``: the ids of the reviews-stage steps)."""
        counts = self.counts
        return {
            "patient": self.patient, "steps_done": counts["done"],
            "reviews_done": sum(1 for e in self.events if e.kind == "done" and e.step in reviews),
            "gated": counts["gated"], "escalations": counts["escalated"],
            "escalations_by_step": dict(sorted(Counter(e.step for e in self.events if e.kind == "escalated").items())),
            "goals_agreed": counts["goal_agreed"], "goals_met": counts["goal_met"], "goals_missed": counts["goal_missed"],
            "goals_not_measured": counts["goal_not_measured"],
            "done_without_required_input": sorted(self.without_input),
        }


def carried_forward(runtime: Runtime, step_id: str, patient: PatientFacts, at: dt.date) -> tuple[dict, bool]:
    """The step's outputs from the latest known values, and whether every required one was known."""
    plan = runtime.evaluator.plan
    reader = Reader(runtime.evaluator.timeline(patient, at), plan.facts, plan.derived, at)
    data = {}
    complete = True
    for output in runtime.steps[step_id].outputs:
        value = reader.read(Atom("value", output.fact)).value
        if value is None:
            complete = complete and not output.required
            continue
        data[output.fact] = value.isoformat() if isinstance(value, dt.date) else value
    return data, complete


def simulate(runtime: Runtime, patient: PatientFacts, start: dt.date, months: int) -> Simulated:
    clock = FixedClock.on(start)
    end = add(start, Duration(months, "mo"))
    state = enroll(runtime.loaded, f"sim-{patient.patient}", patient.patient, start, runtime.evaluator)
    result = Simulated(patient.patient, state)
    while clock.today() <= end:
        state, events, _ = runtime.advance(state, patient, clock)
        result.events += events
        for step_id in [s for s, p in state.steps.items() if p.status == "due"] + list(state.escalations):
            data, complete = carried_forward(runtime, step_id, patient, clock.today())
            try:
                state, events, observations = runtime.record(state, step_id, data, patient, clock, require_all=False)
            except RecordError:  # a known value the step cannot take: leave it due
                continue
            if not complete:
                result.without_input.add(step_id)
            result.events += events
            patient = patient.model_copy(update={"observations": (*patient.observations, *observations)})
        clock.advance(dt.timedelta(days=7))
    result.state = state
    return result
