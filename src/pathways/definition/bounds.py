"""Boundary checks over a condition's or-branches: values that fall between two branches.

``x < b`` in one branch and ``x > b`` in another, with no branch of the same ``or`` that takes
``x == b``, leaves a patient with exactly that value out of both (a 65-year-old is neither
"< 65" nor "> 65"; ages are whole years, so that is a whole year). Each branch is turned into an
interval per numeric subject (a fact, a derived fact or a function of a fact) from its
comparisons with constants (numbers and parameters, by their values); a point where one
branch's interval ends open and another's starts open, that no branch covers, is a gap.

Branches that do not compare the subject at all are left out: they are about something else
(``macroalbuminuria or (age < 65 and ...) or (age > 65 and ...)`` still misses age 65 for the
kidney branches). Pure: no I/O; the caller turns gaps into problems.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

from pathways.definition import expr as E

ORDERING = {"<", "<=", ">", ">=", "=="}
_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "=="}


@dataclass(frozen=True)
class Gap:
    subject: str  # the subject as written, e.g. 'age_years'
    value: float
    bound: str  # the bound as written, e.g. 'ckd_age_boundary_years' or '65'
    below: E.Compare  # the comparison that stops short of the value (x < b)
    above: E.Compare  # the comparison that starts just after it (x > b)

    @property
    def later(self) -> E.Compare:
        """The comparison written last: where the gap is reported."""
        return max(self.below, self.above, key=lambda c: c.span.start)


@dataclass
class _Interval:
    low: float = -math.inf
    low_inclusive: bool = True
    high: float = math.inf
    high_inclusive: bool = True
    low_by: E.Compare | None = None  # the comparison that sets each end, and its bound as written
    high_by: E.Compare | None = None
    low_text: str = ""
    high_text: str = ""

    def contains(self, value: float) -> bool:
        above = value > self.low or (value == self.low and self.low_inclusive)
        below = value < self.high or (value == self.high and self.high_inclusive)
        return above and below


def point_gaps(node: E.Node, parameters: Mapping[str, object]) -> list[Gap]:
    """Every value left between two branches of an ``or`` in this condition, once each."""
    gaps: list[Gap] = []
    seen: set[tuple[str, float]] = set()
    for sub in E.walk(node):
        if isinstance(sub, E.BoolOp) and sub.op == "or":
            for gap in _gaps_in(sub.operands, parameters):
                if (gap.subject, gap.value) not in seen:
                    seen.add((gap.subject, gap.value))
                    gaps.append(gap)
    return gaps


def alternatives_gaps(conditions: list[E.Node], parameters: Mapping[str, object]) -> list[Gap]:
    """Gaps between alternatives written as separate conditions (e.g. the ``when`` of each goal
    on the same fact): together they act as the branches of one ``or``."""
    return _gaps_in(tuple(conditions), parameters)


def _gaps_in(branches: tuple[E.Node, ...], parameters: Mapping[str, object]) -> list[Gap]:
    per_subject: dict[str, list[_Interval]] = {}
    names: dict[str, str] = {}
    for branch in branches:
        for key, (text, interval) in _intervals(branch, parameters).items():
            per_subject.setdefault(key, []).append(interval)
            names[key] = text
    gaps = []
    for key, intervals in per_subject.items():
        for low_side in intervals:
            for high_side in intervals:
                if low_side is high_side or low_side.high_by is None or high_side.low_by is None:
                    continue
                value = low_side.high
                if value != high_side.low or low_side.high_inclusive or high_side.low_inclusive:
                    continue
                if any(i.contains(value) for i in intervals):
                    continue
                gaps.append(Gap(names[key], value, high_side.low_text, low_side.high_by, high_side.low_by))
    return gaps


def _intervals(branch: E.Node, parameters: Mapping[str, object]) -> dict[str, tuple[str, _Interval]]:
    """The interval of each subject that this branch's own comparisons ('and'-ed) allow."""
    conjuncts = branch.operands if isinstance(branch, E.BoolOp) and branch.op == "and" else (branch,)
    found: dict[str, tuple[str, _Interval]] = {}
    for part in conjuncts:
        if not isinstance(part, E.Compare) or part.op not in ORDERING:
            continue
        normal = _normalise(part, parameters)
        if normal is None:
            continue
        subject, op, value, bound = normal
        _, interval = found.setdefault(E.unparse(subject), (E.unparse(subject), _Interval()))
        if op in (">", ">=", "==") and (value > interval.low or (value == interval.low and op == ">")):
            interval.low, interval.low_inclusive, interval.low_by, interval.low_text = value, op != ">", part, E.unparse(bound)
        if op in ("<", "<=", "==") and (value < interval.high or (value == interval.high and op == "<")):
            interval.high, interval.high_inclusive, interval.high_by, interval.high_text = value, op != "<", part, E.unparse(bound)
    return found


def _normalise(node: E.Compare, parameters: Mapping[str, object]) -> tuple[E.Node, str, float, E.Node] | None:
    """(subject, op, value, bound) with the subject on the left; None unless one side is constant."""
    right = E.constant_value(node.right, parameters, durations=True)
    left = E.constant_value(node.left, parameters, durations=True)
    if right is not None and left is None:
        return node.left, node.op, right, node.right
    if left is not None and right is None:
        return node.right, _FLIP[node.op], left, node.left
    return None
