"""Moving an enrollment from one pathway version to another, without side effects.

``map_state`` carries an enrollment's state over to the new version: steps kept (by id) keep
their progress, added steps start fresh, removed steps that are waiting or finished are dropped
(noted), removed steps that are due or gated, and open escalations and goals of removed steps,
*block* the enrollment (it stays on its version; the reasons are listed).

``compare`` evaluates both sides at one date, on copies: the old state advanced under the old
runtime, the mapped state under the new one, and lists what differs per step (status with the
reasons under each version, next due date), per goal and per open escalation. Nothing is stored;
the decisions themselves are made by the next advance, under the new version.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from pathways.clock import FixedClock
from pathways.facts.model import PatientFacts
from pathways.rules.evaluate import Evaluation
from pathways.runtime.core import EnrollmentState, Runtime, StepProgress


@dataclass(frozen=True)
class Change:
    """One difference between the versions for one enrollment at the date."""

    kind: str  # status | next_due | escalation | goal | step_added | step_dropped
    subject: str  # a step, escalation or goal id
    old: Any = None
    new: Any = None
    reasons_old: tuple[str, ...] = ()
    reasons_new: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        shown = {"kind": self.kind, "subject": self.subject, "old": _plain(self.old), "new": _plain(self.new)}
        if self.reasons_old or self.reasons_new:
            shown.update({"reasons_old": list(self.reasons_old), "reasons_new": list(self.reasons_new)})
        return shown


@dataclass(frozen=True)
class Blocked:
    """Why an enrollment cannot be moved: something of the old version is in hand."""

    subject: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"subject": self.subject, "reason": self.reason}


@dataclass(frozen=True)
class Mapped:
    state: EnrollmentState  # on the new version, not advanced (as_of unchanged)
    dropped: tuple[Change, ...] = ()
    blocked: tuple[Blocked, ...] = ()


@dataclass(frozen=True)
class EnrollmentPreview:
    enrollment: str
    from_key: str
    to_key: str
    at: dt.date
    changes: tuple[Change, ...] = ()
    blocked: tuple[Blocked, ...] = ()
    mapped: EnrollmentState | None = field(default=None, compare=False)

    @property
    def outcome(self) -> str:
        return "blocked" if self.blocked else "changed" if self.changes else "unchanged"


def map_state(state: EnrollmentState, new: Runtime) -> Mapped:
    """``state`` carried over to ``new``'s version (see the module docstring)."""
    spec = new.spec
    kept_ids = {s.id for s in spec.steps}
    dropped: list[Change] = []
    blocked: list[Blocked] = []
    for sid, progress in state.steps.items():
        if sid in kept_ids:
            continue
        if progress.status in ("due", "gated"):
            blocked.append(Blocked(sid, f"step '{sid}' is {progress.status} (since {progress.due_on}) and "
                                        f"{spec.id} {spec.version} has no such step: record or resolve it first"))
        else:
            dropped.append(Change("step_dropped", sid, progress.status, None))
    for eid, open_ in state.escalations.items():
        if eid not in kept_ids:
            blocked.append(Blocked(eid, f"escalation '{eid}' is open (since {open_.since}) and {spec.id} {spec.version} "
                                        f"has no such step: act on it or resolve it first"))
    for gid, goal in state.goals.items():
        if goal.step not in kept_ids and goal.status == "open":
            blocked.append(Blocked(gid, f"goal '{gid}' (agreed in step '{goal.step}', deadline {goal.deadline}) is open and "
                                        f"{spec.id} {spec.version} has no step '{goal.step}'"))
    steps = {s.id: state.steps.get(s.id, StepProgress()) for s in spec.steps}
    added = [Change("step_added", s.id, None, "waiting") for s in spec.steps if s.id not in state.steps]
    mapped = state.model_copy(update={
        "version": spec.version, "version_key": new.evaluator.plan.version_key, "steps": steps,
        "escalations": {k: v for k, v in state.escalations.items() if k in kept_ids},
        "closed_escalations": {k: v for k, v in state.closed_escalations.items() if k in kept_ids},
        "goals": {k: v for k, v in state.goals.items() if v.step in kept_ids},
    })
    return Mapped(mapped, tuple(added + dropped), tuple(blocked))


def compare(state: EnrollmentState, facts: PatientFacts, old: Runtime, new: Runtime, at: dt.date,
            old_evaluation: Evaluation | None = None, new_evaluation: Evaluation | None = None,
            mapped: Mapped | None = None) -> EnrollmentPreview:
    """What moving ``state`` from ``old`` to ``new`` changes at ``at`` (no earlier than the state
    stands). The evaluations (and the mapping): made in bulk by the caller, else here."""
    at = max(at, state.as_of)
    mapped = mapped or map_state(state, new)
    key = new.evaluator.plan.version_key
    if mapped.blocked:
        return EnrollmentPreview(state.enrollment, state.version_key, key, at, mapped.dropped, mapped.blocked)
    clock = FixedClock.on(at)
    before, _, _ = old.advance(state, facts, clock, old_evaluation)
    after, _, _ = new.advance(mapped.state, facts, clock, new_evaluation)
    changes = list(mapped.dropped)
    for step in new.spec.steps:
        if step.escalation is not None:
            continue
        sid = step.id
        now, then = before.steps.get(sid), after.steps[sid]
        if now is None:
            continue  # an added step: listed as added (its status under the new version follows)
        if now.status != then.status:
            changes.append(Change("status", sid, now.status, then.status, now.reasons, then.reasons))
        if now.due_on != then.due_on:
            changes.append(Change("next_due", sid, now.due_on, then.due_on))
    for sid in sorted(set(before.escalations) | set(after.escalations)):
        was, will = before.escalations.get(sid), after.escalations.get(sid)
        if (was is None) != (will is None):
            changes.append(Change("escalation", sid, "open" if was else "closed", "open" if will else "closed",
                                  was.reasons if was else (), will.reasons if will else ()))
    for gid in sorted(set(before.goals) | set(after.goals)):
        was, will = before.goals.get(gid), after.goals.get(gid)
        if was is None or will is None or (was.status, was.target, was.deadline) != (will.status, will.target, will.deadline):
            changes.append(Change("goal", gid, _goal(was), _goal(will)))
    for step in new.spec.steps:
        if step.id not in state.steps and step.escalation is None and after.steps[step.id].status != "waiting":
            changes.append(Change("status", step.id, None, after.steps[step.id].status, (), after.steps[step.id].reasons))
    return EnrollmentPreview(state.enrollment, state.version_key, key, at, tuple(changes), (), mapped.state)


def _goal(goal) -> str | None:
    return None if goal is None else f"{goal.status}: {goal.fact} {goal.target} by {goal.deadline}"


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.date) else value
