"""Evaluate the cross-pathway interaction rules (definition/interactions.py) for one patient at
one date: a rule applies when the patient is enrolled in every pathway its source steps belong
to, and raises a conflict when its ``when`` holds.

The rules are evaluated by the reference evaluator (rules/reference.py), the evaluator that
explains every gate and that the durable-rules path is tested against, over the same readers of
the patient's facts the gates read (each fact read as the pathway declaring it reads it, with its
units and derivations). Durable-rules is not used here: its rulesets are compiled per pathway
version, one fact message per patient per pathway, and a cross-pathway rule reads the facts of
two pathways at once; compiling a third ruleset per combination of versions would give the same
three-valued answers (the two are tested equal on every gate) at a much higher cost.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pathways.definition.interactions import Interaction
from pathways.facts.derive import Atom, Reader
from pathways.facts.model import PatientFacts
from pathways.facts.resolve import Timeline
from pathways.rules.evaluate import PathwayEvaluator
from pathways.rules.reference import ReferenceEvaluator
from pathways.runtime.plan import Conflict


def conflicts(rules: tuple[Interaction, ...], evaluators: dict[str, PathwayEvaluator], patient: PatientFacts,
              at: dt.date, trace: dict[str, set] | None = None, timelines: dict[str, Timeline] | None = None) -> list[Conflict]:
    """The conflicts among ``rules`` for a patient enrolled in the pathways of ``evaluators``
    (pathway id -> the evaluator of the version the enrollment runs); ``trace`` (plan cases)
    collects the outcome of every comparison, as `pathways check` does for a pathway.
    ``timelines``: pathway id -> the patient's ``timeline(patient, at)`` under that evaluator,
    where already resolved (the others are resolved here)."""
    readers: dict[str, Reader] = {}
    found = []
    for rule in rules:
        if not all(p in evaluators for p in rule.pathways):
            continue  # not about this patient's pathways
        for p in rule.pathways:
            if p not in readers:
                plan = evaluators[p].plan
                timeline = (timelines or {}).get(p)
                timeline = evaluators[p].timeline(patient, at) if timeline is None else timeline
                readers[p] = Reader(timeline, plan.facts, plan.derived, at)
        explanation = _evaluator(rule, evaluators, readers, trace).evaluate(rule.when.ast, rule.when.text)
        if explanation.value is not True:
            continue
        used = {str(atom): (value.isoformat() if isinstance(value, dt.date) else value) for atom, value in explanation.used.items()}
        found.append(Conflict(
            rule=rule.id, title=rule.text("title", "nl"), steps=tuple((s.pathway, s.step) for s in rule.steps),
            reasons=tuple(line.strip() for line in explanation.lines if line.strip()), action=rule.text("action", "nl"),
            severity=rule.severity, evidence=rule.evidence.model_dump(exclude_none=True), facts=dict(sorted(used.items())),
            en={"title": rule.text("title", "en"), "action": rule.text("action", "en")},
            escalate=None if rule.escalate is None else rule.escalate.model_dump(),
        ))
    return found


def _evaluator(rule: Interaction, evaluators: dict[str, PathwayEvaluator], readers: dict[str, Reader],
               trace: dict[str, set] | None = None) -> ReferenceEvaluator:
    """A reference evaluator over the names of the rule's pathways (the first pathway that
    declares a name decides what it is), reading each fact through its own pathway's reader."""
    facts: dict[str, Any] = {}
    rules: dict[str, Any] = {}
    parameters: dict[str, Any] = {}
    units: dict[str, str | None] = {}
    owner: dict[str, Reader] = {}
    for p in reversed(rule.pathways):  # the first pathway wins: update in reverse
        plan = evaluators[p].plan
        facts.update(plan.facts)
        rules.update(plan.rules)
        parameters.update(plan.parameters)
        units.update(plan.parameter_units)
        owner.update({name: readers[p] for name in (*plan.facts, *plan.derived)})
    first = readers[rule.pathways[0]]

    def read(atom: Atom):
        return owner.get(atom.fact, first).read(atom)

    return ReferenceEvaluator(read, rules, parameters, units, facts, trace)
