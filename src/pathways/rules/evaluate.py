"""Evaluate every condition of a pathway for one patient at one date.

Decisions come from durable-rules (one fact per patient per pathway); the reference
evaluator explains them, and the two are compared on every call: a disagreement is an
internal error, never a silent decision. Nothing is stored; no clock is read here.
"""

from __future__ import annotations

import datetime as dt
from collections import UserList
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pathways.definition.loader import LoadedPathway
from pathways.facts.derive import Atom, Reader
from pathways.facts.model import PatientFacts
from pathways.facts.resolve import FactIssue, Timeline, resolve
from pathways.rules import compile_durable
from pathways.rules.plan import ELIGIBILITY_ROUTES, Plan
from pathways.rules.reference import Explanation, ReferenceEvaluator, truth



class EngineDisagreement(RuntimeError):
    pass


class StepResult:
    """A step's status at the date; its reasons are explained when first asked for, by
    ``explain(about)`` (one function per evaluation, not one per step)."""

    __slots__ = ("id", "stage", "status", "_reasons", "_explain", "_about")

    def __init__(self, id: str, stage: str, status: str, reasons: list[str] | None = None, explain=None, about=None):
        self.id, self.stage, self.status = id, stage, status
        self._reasons, self._explain, self._about = reasons, explain, about

    @property
    def reasons(self) -> list[str]:
        if self._reasons is None:
            self._reasons = self._explain(self._about) if self._explain is not None else []
        return self._reasons


class LazyReasons(UserList):
    """Reasons written out only when someone reads them (most advances never do)."""

    def __init__(self, make):  # no super().__init__: ``data`` is produced on first use
        self._make, self._data = make, None

    @property
    def data(self) -> list[str]:
        if self._data is None:
            self._data = list(self._make())
        return self._data

    @data.setter
    def data(self, value: list[str]) -> None:
        self._data = value

    def __getitem__(self, index):  # slices are plain lists (UserList would rebuild this class)
        return self.data[index]

    def __add__(self, other):
        return self.data + list(other)


class LazyFacts(Mapping):
    """Every fact's value at the date, read when first asked for (an advance never asks)."""

    def __init__(self, make):
        self._make, self._data = make, None

    @property
    def data(self) -> dict[str, Any]:
        if self._data is None:
            self._data = self._make()
        return self._data

    def __getitem__(self, key):
        return self.data[key]

    def __iter__(self):
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def __eq__(self, other) -> bool:
        return dict(self.data) == dict(other) if isinstance(other, Mapping) else NotImplemented


class Explanations:
    """Reference explanations per condition, computed when first needed (all of them when
    cross-checking against durable-rules)."""

    def __init__(self, reference: ReferenceEvaluator, conditions):
        self.reference = reference
        self.conditions = {c.id: c for c in conditions}
        self.cache: dict[str, Explanation] = {}

    def __getitem__(self, cid: str) -> Explanation:
        if cid not in self.cache:
            condition = self.conditions[cid]
            self.cache[cid] = self.reference.evaluate(condition.ast, condition.text)
        return self.cache[cid]

    def items(self):
        return [(cid, self[cid]) for cid in self.conditions]


@dataclass
class EscalationResult:
    id: str
    severity: str
    action: str
    notify: list[str]
    reasons: list[str]


@dataclass
class Evaluation:
    pathway: str
    pathway_version: str
    version_key: str
    at: dt.date
    indicated: bool
    indication_reasons: list[str]
    facts: Mapping[str, Any]  # LazyFacts: computed on first use
    steps: list[StepResult]
    eligibility: dict[str, dict]
    escalations: list[EscalationResult]
    decisions: dict[str, bool | None]
    explanations: Explanations
    issues: list[FactIssue] = field(default_factory=list)
    unmapped_codes: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        """The documented `pathways evaluate --json` object, with exactly these keys."""
        return {
            "pathway": self.pathway,
            "pathway_version": self.pathway_version,
            "at": self.at.isoformat(),
            "indicated": self.indicated,
            "facts": {k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in self.facts.items()},
            "steps": [{"id": s.id, "stage": s.stage, "status": s.status, "reasons": s.reasons} for s in self.steps],
            "eligibility": {route: {"eligible": e["eligible"], "reasons": list(e["reasons"])} for route, e in self.eligibility.items()},
            "escalations": [{"id": e.id, "severity": e.severity, "action": e.action, "reasons": e.reasons} for e in self.escalations],
        }


def _message_fields(plan: Plan, fields: frozenset[str] | None) -> list[tuple[Atom, str, str | None]]:
    """Per plan and field set, once: the atoms to read, their keys and presence flags (or None)."""
    cache = plan.message_fields
    if fields not in cache:
        chosen = []
        for atom in plan.atoms:
            flag = compile_durable.presence(atom.key)
            if fields is not None and atom.key not in fields and flag not in fields:
                continue
            chosen.append((atom, atom.key, flag if fields is None or flag in fields else None))
        cache[fields] = chosen
    return cache[fields]


def message_for(plan: Plan, reader: Reader, fields: frozenset[str] | None = None) -> dict[str, Any]:
    """The one fact asserted per patient: atom values and presence flags (only ``fields``)."""
    message: dict[str, Any] = {}
    read = reader.read
    for atom, key, flag in _message_fields(plan, fields):
        value = read(atom).value
        if flag is not None:
            message[flag] = value is not None
        if value is not None:
            message[key] = value.isoformat() if isinstance(value, dt.date) else value
    return message


class PathwayEvaluator:
    """Evaluates one pathway version (with parameter overrides) for many patients."""

    def __init__(self, loaded: LoadedPathway, overrides: dict[str, object] | None = None, cross_check: bool = True):
        self.loaded = loaded
        self.plan = Plan(loaded, overrides)
        self.cross_check = cross_check
        self.trace: dict[str, set] | None = None  # comparison outcomes, collected for `pathways check`
        self._ruleset = None
        self._static: dict = {}  # the reference evaluator's compiled nodes (the plan keeps the nodes alive)
        self._route_list: list | None = None  # the financing routes decided (``_routes``)
        self._step_list: list | None = None  # the steps as ``_assemble`` walks them (``_step_plan``)

    @property
    def ruleset(self):
        if self._ruleset is None:
            from pathways.rules import durable_adapter

            pieces: dict[str, object] = {}
            self._splits = {c.id: compile_durable.split(c.id, self.plan.inlined[c.id], pieces) for c in self.plan.conditions}
            rules = compile_durable.ruleset(pieces)
            self._ruleset = durable_adapter.ruleset(f"pathway:{self.plan.version_key}", rules, list(pieces))
        return self._ruleset

    def engine_decisions(self, message: dict[str, Any]) -> dict[str, bool | None]:
        """durable-rules' decision for every condition, from one asserted fact."""
        ruleset = self.ruleset
        known = ruleset.evaluate(message)
        return {cid: split.value(known) for cid, split in self._splits.items()}

    def timeline(self, patient: PatientFacts, today: dt.date) -> Timeline:
        return resolve(patient, self.plan.facts, today)

    def decide(self, timeline: Timeline, at: dt.date) -> tuple[dict[str, bool | None], Reader]:
        """Durable-rules' decisions for every condition (None when a value it needs is missing)."""
        reader = Reader(timeline, self.plan.facts, self.plan.derived, at)
        return self.engine_decisions(message_for(self.plan, reader, self.ruleset.fields)), reader

    def evaluate(self, patient: PatientFacts, at: dt.date, today: dt.date) -> Evaluation:
        timeline = self.timeline(patient, today)
        decisions, reader = self.decide(timeline, at)
        return self._explained(timeline, reader, at, decisions)

    def evaluate_many(self, patients: list[PatientFacts], at: dt.date, today: dt.date,
                      timelines: list[Timeline] | None = None) -> list[Evaluation]:
        """``evaluate`` for many patients, the rules in bulk: every patient's durable-rules
        decisions first, then their explanations and answers. The same results as one by one;
        a batch's evaluation loop then stays small enough for the processor's caches (a worker's
        advance took 6-8 % less CPU here, bench/HISTORY.md, 2026-12-03). ``timelines``: the
        patients' ``timeline(patient, today)``, when the caller resolved them already (the
        personal plans read them again for the interaction rules)."""
        decided = []
        for i, patient in enumerate(patients):
            timeline = self.timeline(patient, today) if timelines is None else timelines[i]
            decided.append((timeline, *self.decide(timeline, at)))
        return [self._explained(timeline, reader, at, decisions) for timeline, decisions, reader in decided]

    def _explained(self, timeline: Timeline, reader: Reader, at: dt.date, decisions: dict[str, bool | None]) -> Evaluation:
        reference = ReferenceEvaluator(
            reader.read, self.plan.rules, self.plan.parameters, self.plan.parameter_units, self.plan.facts, self.trace, self._static
        )
        explanations = Explanations(reference, self.plan.conditions)
        if self.cross_check:
            differ = {cid: (decisions[cid], e.value) for cid, e in explanations.items() if decisions[cid] != e.value}
            if differ:
                raise EngineDisagreement(f"durable-rules and the reference evaluator disagree: {differ}")
        return self._assemble(timeline, reader, at, decisions, explanations)

    # -- assembling the answer --------------------------------------------------------
    def _assemble(self, timeline: Timeline, reader: Reader, at: dt.date, decisions, explanations) -> Evaluation:
        spec = self.plan.spec
        indicated, indication_reasons = self._indicated(reader, at, decisions, explanations)
        eligibility = self._eligibility(reader, at, decisions, explanations)
        steps: list[StepResult] = []
        escalations: list[EscalationResult] = []

        def explain_trigger(cid: str) -> list[str]:
            return _reasons(explanations[cid])

        def explain_step(about: tuple) -> list[str]:
            _, _, _, _, gate, route = about
            reasons = _reasons(explanations[gate]) if gate is not None else []
            if route in eligibility and eligibility[route]["eligible"] is not True:
                reasons.append(f"financing {route}: eligible {truth(eligibility[route]['eligible'])}")
            return reasons

        unfinanced = {route for route, e in eligibility.items() if e["eligible"] is not True}
        for about in self._step_plan():
            step_id, stage, escalation, trigger, gate, route = about
            if not indicated:
                steps.append(StepResult(step_id, stage, "not_due", ["not indicated"]))
            elif escalation is not None:
                if decisions[trigger]:
                    reasons = explain_trigger(trigger)
                    steps.append(StepResult(step_id, stage, "escalated", reasons))
                    escalations.append(EscalationResult(step_id, escalation.severity, escalation.action, list(escalation.notify), reasons))
                else:
                    steps.append(StepResult(step_id, stage, "not_due", explain=explain_trigger, about=trigger))
            else:
                gated = (gate is not None and decisions[gate] is not True) or route in unfinanced
                steps.append(StepResult(step_id, stage, "gated" if gated else "due", explain=explain_step, about=about))
        names = [*self.plan.facts, *self.plan.derived]
        facts = LazyFacts(lambda: {name: reader.read(Atom("value", name)).value for name in names})
        return Evaluation(
            spec.id, spec.version, self.plan.version_key, at, indicated, indication_reasons, facts, steps,
            eligibility, escalations, decisions, explanations, list(timeline.issues), list(timeline.unmapped_codes),
        )

    def _indicated(self, reader: Reader, at: dt.date, decisions, explanations) -> tuple[bool, list[str]]:
        indicated = decisions["indication"] is True
        if decisions.get("exclusion") is True:
            indicated = False
        deceased = reader.read(Atom("value", "deceased_date")).value if "deceased_date" in self.plan.facts else None
        if deceased is not None and deceased <= at:
            indicated = False

        def reasons() -> list[str]:
            lines = _reasons(explanations["indication"])
            if "exclusion" in decisions:
                lines += [f"exclusion: {line}" for line in _reasons(explanations["exclusion"])]
            if deceased is not None and deceased <= at:
                lines.append(f"deceased on {deceased}")
            return lines

        return indicated, LazyReasons(reasons)

    def _step_plan(self) -> list[tuple]:
        """Per step, once per plan: (id, stage, escalation, trigger condition, gate condition, financing route)."""
        plan = self._step_list
        if plan is None:
            plan = self._step_list = [
                (s.id, s.stage, s.escalation, f"trigger:{s.id}" if s.escalation is not None else None,
                 f"gate:{s.id}" if s.escalation is None and s.gate is not None else None, s.financing)
                for s in self.plan.spec.steps
            ]
        return plan

    def _routes(self) -> list[tuple[str, str, Any, dt.date, dt.date | None]]:
        """The financing routes this pathway decides: (route, condition, library, in effect from,
        until), once per plan."""
        routes = self._route_list
        if routes is None:
            routes = []
            libraries = [d.model for d in self.loaded.libraries if d.model.financing]
            conditions = {c.id for c in self.plan.conditions}
            for route in ELIGIBILITY_ROUTES:
                cid = f"eligibility:{route}"
                if cid not in conditions:
                    continue
                library = next(lib for lib in libraries if route in lib.financing)
                rule = self.plan.rules[library.financing[route]]
                starts = max(d for d in (library.effective_from, rule.effective_from) if d is not None)
                ends = [d for d in (library.effective_until, rule.effective_until) if d is not None]
                routes.append((route, cid, library, starts, min(ends) if ends else None))
            self._route_list = routes
        return routes

    def _eligibility(self, reader: Reader, at: dt.date, decisions, explanations) -> dict[str, dict]:
        result: dict[str, dict] = {}
        for route, cid, library, starts, ends in self._routes():
            eligible = decisions[cid]
            in_effect = not (at < starts or (ends is not None and at >= ends))
            if not in_effect:
                eligible = None

            def reasons(route=route, library=library, cid=cid, in_effect=in_effect) -> list[str]:
                if in_effect:
                    lines = _reasons(explanations[cid])
                else:
                    lines = [f"rule {library.financing[route]} ({library.id} {library.version}) is not in effect on {at}"]
                for deadline in library.deadlines:
                    if deadline.route != route:
                        continue
                    started = reader.read(Atom("value", deadline.after)).value
                    if isinstance(started, dt.date):
                        due = started + dt.timedelta(days=int(deadline.within.approx_days))
                        lines.append(f"deadline {deadline.id}: {deadline.title} - due {due} ({deadline.within} after {started})")
                if route == "wmo" and decisions.get("eligibility:wmo_mag_weigeren") is True:
                    lines.append("the municipality MAY decline a maatwerkvoorziening because Wlz applies (may, not must)")
                return lines

            result[route] = {"eligible": eligible, "reasons": LazyReasons(reasons)}
        return result


def _reasons(explanation: Explanation) -> list[str]:
    lines = [line.strip() for line in explanation.lines]
    if explanation.value is None and explanation.missing:
        lines.append("missing: " + ", ".join(explanation.missing))
    return lines
