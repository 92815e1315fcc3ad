"""What to evaluate for a pathway: every condition (indication, exclusion, step gates,
escalation triggers, financing eligibility), with named rules and parameters either kept
(for explanations) or inlined (for engines), and the atoms they read. Pure.
"""

from __future__ import annotations

import hashlib
import json
import operator
from dataclasses import dataclass
from functools import cached_property

from pathways.definition import expr as E
from pathways.definition.dump import to_data
from pathways.definition.loader import LoadedPathway
from pathways.facts.derive import Atom, interned

ELIGIBILITY_ROUTES = ("wlz", "wmo", "zvw_wijkverpleging", "pgb")
COMPARE = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq, "!=": operator.ne}
ARITH = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}


@dataclass(frozen=True)
class Condition:
    id: str  # e.g. "gate:metformine_starten", "trigger:hyperkaliemie", "eligibility:wlz"
    kind: str  # indication | exclusion | gate | trigger | eligibility | rule
    ast: E.Node  # as written: names of rules and parameters kept
    text: str


class Plan:
    """The conditions of one pathway version, with parameter overrides applied."""

    def __init__(self, loaded: LoadedPathway, overrides: dict[str, object] | None = None):
        self.loaded = loaded
        self.spec = loaded.spec
        self.facts = loaded.facts
        self.derived = loaded.derived
        self.rules = loaded.rules
        self.parameters = {name: p.value for name, p in loaded.parameters.items()}
        self.parameter_units = {name: p.unit for name, p in loaded.parameters.items()}
        for name, value in (overrides or {}).items():
            if name not in self.parameters:
                raise KeyError(f"unknown parameter '{name}'")
            self.parameters[name] = value
        self.conditions = self._conditions()
        # per set of fields durable-rules reads: the atoms to put in a message (rules/evaluate.py)
        self.message_fields: dict[frozenset[str] | None, list] = {}

    def _conditions(self) -> list[Condition]:
        spec = self.spec
        found = [Condition("indication", "indication", spec.indication.when.ast, spec.indication.when.text)]
        if spec.indication.exclude is not None:
            found.append(Condition("exclusion", "exclusion", spec.indication.exclude.ast, spec.indication.exclude.text))
        for step in spec.steps:
            if step.gate is not None:
                found.append(Condition(f"gate:{step.id}", "gate", step.gate.ast, step.gate.text))
            if step.escalation is not None:
                trigger = step.escalation.trigger
                found.append(Condition(f"trigger:{step.id}", "trigger", trigger.ast, trigger.text))
        routes = {}
        for library in self.loaded.libraries:
            routes.update(library.model.financing)
        for route in ELIGIBILITY_ROUTES:
            if route in routes:
                rule = self.rules[routes[route]]
                found.append(Condition(f"eligibility:{route}", "eligibility", E.Name(routes[route], E.Span(0, len(routes[route]))), routes[route]))
        if "wmo_mag_weigeren" in self.rules:
            found.append(Condition("eligibility:wmo_mag_weigeren", "eligibility", E.Name("wmo_mag_weigeren", E.Span(0, 16)), "wmo_mag_weigeren"))
        return found

    @cached_property
    def version_key(self) -> str:
        """Pathway id, version and a hash of everything evaluated (definition, libraries, overrides)."""
        payload = json.dumps(
            {
                "pathway": _evaluated(to_data(self.spec)),
                "libraries": [_evaluated(to_data(d.model)) for d in self.loaded.libraries],
                "parameters": self.parameters,
            },
            sort_keys=True,
            default=str,
        )
        digest = hashlib.sha256(payload.encode()).hexdigest()[:12]
        return f"{self.spec.id}@{self.spec.version}#{digest}"

    # -- inlining ----------------------------------------------------------------------
    def inline(self, node: E.Node) -> E.Node:
        """The tree with named rules and parameters replaced by their definitions and values."""
        if isinstance(node, E.Name):
            if node.name in self.rules:
                return self.inline(self.rules[node.name].when.ast)
            if node.name in self.parameters:
                value = self.parameters[node.name]
                if isinstance(value, bool):
                    return E.Bool(value, node.span)
                if isinstance(value, (int, float)):
                    return E.Num(value, self.parameter_units.get(node.name), node.span)
                return E.Str(str(value), node.span)
            return node
        if isinstance(node, E.Not):
            return E.Not(self.inline(node.operand), node.span)
        if isinstance(node, E.Neg):
            operand = self.inline(node.operand)
            if isinstance(operand, E.Num):
                return E.Num(-operand.value, operand.unit, node.span)
            return E.Neg(operand, node.span)
        if isinstance(node, E.BoolOp):
            return E.BoolOp(node.op, tuple(self.inline(o) for o in node.operands), node.span)
        if isinstance(node, E.Compare):
            return E.Compare(node.op, self.inline(node.left), self.inline(node.right), node.span)
        if isinstance(node, E.InList):
            return E.InList(self.inline(node.item), node.values, node.negated, node.span)
        if isinstance(node, E.Arith):
            return E.Arith(node.op, self.inline(node.left), self.inline(node.right), node.span)
        if isinstance(node, E.Call):
            # the first argument of a time function names a fact: keep it as written
            if node.func in ("exists", "missing"):
                return E.Call(node.func, tuple(self.inline(a) for a in node.args), node.span)
            return node
        return node

    @cached_property
    def inlined(self) -> dict[str, E.Node]:
        return {c.id: self.inline(c.ast) for c in self.conditions}

    @cached_property
    def atoms(self) -> tuple[Atom, ...]:
        found: dict[str, Atom] = {}
        for tree in self.inlined.values():
            for atom in atoms_of(tree):
                found.setdefault(atom.key, atom)
        for name in self.facts:
            found.setdefault(name, Atom("value", name))
        for name in self.derived:
            found.setdefault(name, Atom("value", name))
        return tuple(interned(atom) for atom in found.values())


# how documents word facts and thresholds: not evaluated, so not part of a version's key (adding a
# label to a shipped pathway must not strand its running enrollments on "another version")
WORDING_ONLY = ("label", "value_titles")


def _evaluated(data: dict) -> dict:
    for section in ("facts", "derived", "parameters"):
        if isinstance(data.get(section), dict):
            data[section] = {name: {k: v for k, v in item.items() if k not in WORDING_ONLY} if isinstance(item, dict) else item
                             for name, item in data[section].items()}
    return data


NOT_A_LITERAL = object()


def literal_value(node: E.Node):
    """The value of a literal (durations in days), or NOT_A_LITERAL."""
    if isinstance(node, (E.Num, E.Str, E.Bool)):
        return node.value
    if isinstance(node, E.Dur):
        return node.value.approx_days
    return NOT_A_LITERAL


def atom_of(node: E.Node) -> Atom | None:
    """The atom a name or a time function reads, or None for other nodes."""
    if isinstance(node, E.Name):
        return Atom("value", node.name)
    if isinstance(node, E.Call) and node.func not in ("exists", "missing") and node.args and isinstance(node.args[0], E.Name):
        window = node.args[1].value if len(node.args) > 1 and isinstance(node.args[1], E.Dur) else None
        return Atom(node.func, node.args[0].name, window)
    return None


def atoms_of(node: E.Node) -> list[Atom]:
    atom = atom_of(node)
    if atom is not None:
        return [atom]
    found: list[Atom] = []
    for child in E.children(node):
        found.extend(atoms_of(child))
    return found
