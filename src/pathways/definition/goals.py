"""Goals that no step measures again by their deadline.

A goal agreed at step X with deadline D is judged at D on the latest value of its fact. When
the first step after X that records the fact is due only after D, the goal can only be judged
on its baseline. Times are the earliest each step can fall due, counted from enrollment with
`Duration.approx_days` and gates ignored (a gated step may never come, so this is a lower
bound: it finds goals that are always judged too early, not those that sometimes are).
Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from pathways.definition.model import Goal, PathwaySpec, Step

HORIZON_DAYS = 20 * 365.25  # recurring steps are followed this far


@dataclass(frozen=True)
class UnmeasuredGoal:
    step: Step
    index: int  # of the goal in its step
    goal: Goal
    message: str
    hint: str


def unmeasured_goals(spec: PathwaySpec, facts: dict) -> list[UnmeasuredGoal]:
    """Each goal whose fact is not recorded again by a step due by the goal's deadline."""
    steps = {s.id: s for s in spec.steps}
    earliest: dict[str, float] = {}
    for step in spec.steps:
        _earliest(step.id, steps, earliest, ())
    found = []
    for step in spec.steps:
        for index, goal in enumerate(step.goals):
            if goal.fact not in facts:
                continue  # reported as an unknown fact already
            agreed = earliest[step.id]
            deadline = goal.deadline.approx_days
            first = _first_measurement(step.id, goal.fact, agreed, steps, earliest)
            if first is None:
                message = f"goal '{goal.id}' is judged {goal.deadline} after step '{step.id}', but no later step records {goal.fact}"
            elif first[0] - agreed > deadline:
                delay = _describe(first[0] - agreed)
                message = f"goal '{goal.id}' is judged {goal.deadline} after step '{step.id}', but {goal.fact} is first recorded again {delay} after it (step '{first[1]}')"
            else:
                continue
            hint = f"so it can only be judged 'not measured': record {goal.fact} in a step due by {goal.deadline}, or give the goal a later deadline"
            found.append(UnmeasuredGoal(step, index, goal, message, hint))
    return found


def _earliest(step_id: str, steps: dict[str, Step], known: dict[str, float], trail: tuple[str, ...]) -> float:
    """The earliest day (from enrollment) a step can first fall due: its timing and requirements."""
    if step_id in known:
        return known[step_id]
    step = steps[step_id]
    if step_id in trail:  # a cycle is reported elsewhere
        return 0.0
    trail += (step_id,)
    after = max((_earliest(r, steps, known, trail) for r in step.requires if r in steps), default=0.0)
    first = _occurrences(step, steps, known, trail)
    known[step_id] = max(after, first[0]) if first else after
    return known[step_id]


def _occurrences(step: Step, steps: dict[str, Step], known: dict[str, float], trail: tuple[str, ...]) -> list[float]:
    """The days a step's timing puts its occurrences on (empty: due once its requirements are done)."""
    timing = step.timing
    if timing is None:
        return []
    anchor = 0.0
    if timing.after != "enrollment":
        if timing.after not in steps:
            return []
        anchor = _earliest(timing.after, steps, known, trail)
    if timing.at:
        days = [anchor + d.approx_days for d in timing.at]
    else:
        days = [anchor + timing.offset.approx_days]
    if timing.every is not None and timing.every.approx_days > 0:
        while days[-1] < anchor + HORIZON_DAYS:
            days.append(days[-1] + timing.every.approx_days)
    return days


def _downstream(step_id: str, of: str, steps: dict[str, Step], trail: tuple[str, ...] = ()) -> bool:
    """True when ``step_id`` can only come after ``of``: it requires it or is timed after it."""
    step = steps.get(step_id)
    if step is None or step_id in trail:
        return False
    before = list(step.requires) + ([step.timing.after] if step.timing and step.timing.after in steps else [])
    return of in before or any(_downstream(b, of, steps, trail + (step_id,)) for b in before)


def _first_measurement(goal_step: str, fact: str, agreed: float, steps: dict[str, Step], earliest: dict[str, float]) -> tuple[float, str] | None:
    """The earliest day after the goal is agreed that a step records the fact, and that step."""
    best: tuple[float, str] | None = None
    for step in steps.values():
        if step.id == goal_step or not any(o.fact == fact for o in step.outputs):
            continue
        after = _downstream(step.id, goal_step, steps)
        days = _occurrences(step, steps, earliest, ()) or [earliest[step.id]]
        days = [max(d, earliest[step.id]) for d in days]
        # a step that waits for the goal counts from the moment the goal is agreed; any other
        # step only when it falls due later (what it records before is the baseline)
        later = [d for d in days if d >= agreed] if after else [d for d in days if d > agreed]
        if later and (best is None or min(later) < best[0]):
            best = (min(later), step.id)
    return best


def _describe(days: float) -> str:
    weeks = days / 7
    return f"{weeks:.0f}w" if abs(weeks - round(weeks)) < 0.05 else f"{days:.0f}d"
