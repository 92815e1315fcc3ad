"""The reference evaluator: pure Python over the expression tree, three-valued (true, false,
missing), and the source of every explanation. The durable-rules path is tested against it.

Semantics (Kleene): `and` is false if any part is false, else missing if any is missing;
`or` is true if any part is true, else missing if any is missing; `not missing` is missing;
a comparison or arithmetic with a missing side is missing; division by zero is missing;
exists()/missing() are always known. Durations compare in days (months 30.4375, years 365.25).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

from pathways.definition import expr as E
from pathways.facts.derive import Atom, Reading, interned
from pathways.rules.plan import ARITH, COMPARE, NOT_A_LITERAL, atom_of, literal_value

AT_THRESHOLD = "at"  # traced (for `pathways check`) when a comparison's two sides are equal


def truth(value: bool | None) -> str:
    return "missing" if value is None else ("true" if value else "false")


@dataclass
class Explanation:
    """What a condition decided and why: each sub-condition with its truth value and readings."""

    value: bool | None
    lines: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # atoms that were missing
    used: dict[str, Any] = field(default_factory=dict)  # atom -> value read


_TRUTH = {None: "missing", True: "true", False: "false"}


class _Run:
    """One evaluation's mutable parts: where lines, readings and missing atoms go."""

    __slots__ = ("read", "lines", "used", "missing", "trace", "shown")

    def __init__(self, read, lines: list[str], used: dict[str, Any], missing: list[str], trace, shown: dict):
        self.read, self.lines, self.used, self.missing, self.trace, self.shown = read, lines, used, missing, trace, shown


class ReferenceEvaluator:
    """Evaluates a condition tree with its explanation.

    Each node is turned once into a small Python function (its text, atoms, parameters and
    indentation worked out in advance); evaluating a condition for a patient then only reads
    values and writes lines. The functions depend on the pathway, not on the patient: they
    are kept in ``static``, which a caller may share between evaluators of the same plan while
    the nodes stay alive (the plan holds them); by default it lives as long as this evaluator.
    """

    def __init__(self, read: Callable[[Atom], Reading], rules: dict, parameters: dict[str, Any], units: dict[str, str | None], facts: dict,
                 trace: dict[str, set] | None = None, static: dict | None = None):
        self.read, self.rules, self.parameters, self.units = read, rules, parameters, units
        self.trace = trace  # when given (`pathways check`): comparison text -> outcomes seen
        self.static = {} if static is None else static
        known = self.static.get(("facts", id(facts)))
        if known is None or known[0] is not facts:  # per plan, not per patient (the plan keeps ``facts`` alive)
            known = self.static[("facts", id(facts))] = (facts, {name: f.unit for name, f in facts.items()}, {name: f.source for name, f in facts.items()})
        _, self.fact_units, self.fact_sources = known
        self._shown: dict[Atom, str] = {}  # this patient's readings as text, per atom

    def evaluate(self, node: E.Node, text: str | None = None) -> Explanation:
        explanation = Explanation(None)
        run = _Run(self.read, explanation.lines, explanation.used, explanation.missing, self.trace, self._shown)
        explanation.value = self._compiled(node, 0)(run)
        return explanation

    # -- compiling nodes --------------------------------------------------------------
    def _compiled(self, node: E.Node, depth: int | None) -> Callable[[_Run], Any]:
        """The function of a node as a condition at ``depth`` (None: as a value)."""
        key = ("fn", id(node), depth)
        known = self.static.get(key)
        if known is None or known[0] is not node:  # the node itself is kept: an id is only unique while it lives
            known = self.static[key] = (node, self._value_fn(node) if depth is None else self._bool_fn(node, depth))
        return known[1]

    def _value_fn(self, node: E.Node) -> Callable[[_Run], Any]:
        value = literal_value(node)
        if value is not NOT_A_LITERAL:
            return lambda run: value
        if isinstance(node, E.Name) and node.name in self.parameters:
            parameter = self.parameters[node.name]
            return lambda run: parameter
        if isinstance(node, E.Name) and node.name in self.rules:
            return self._compiled(node, 1)
        atom = atom_of(node)
        if atom is not None:
            atom, name = interned(atom), str(atom)

            def read_atom(run: _Run) -> Any:
                value = run.read(atom).value
                run.used[name] = value
                if value is None and name not in run.missing:
                    run.missing.append(name)
                return value
            return read_atom
        if isinstance(node, E.Neg):
            operand = self._compiled(node.operand, None)

            def negative(run: _Run) -> Any:
                value = operand(run)
                return None if value is None else -value
            return negative
        if isinstance(node, E.Arith):
            left, right, op, divides = self._compiled(node.left, None), self._compiled(node.right, None), ARITH[node.op], node.op == "/"

            def arithmetic(run: _Run) -> Any:
                a, b = left(run), right(run)
                if a is None or b is None or not _numbers(a, b):
                    return None
                if divides and b == 0:
                    return None
                return op(a, b)
            return arithmetic
        return self._compiled(node, 1)

    def _bool_fn(self, node: E.Node, depth: int) -> Callable[[_Run], bool | None]:
        indent = "  " * depth
        if isinstance(node, E.Name) and node.name in self.rules:
            rule = self.rules[node.name]
            inner = self._compiled(rule.when.ast, depth + 1)
            named = f"{indent}{node.name}{' (may, not must)' if rule.modality == 'may' else ''}: "

            def rule_fn(run: _Run) -> bool | None:
                value = inner(run)
                run.lines.append(named + _TRUTH[value])
                return value
            return rule_fn
        if isinstance(node, E.Bool):
            constant = node.value
            return lambda run: constant
        if isinstance(node, E.Not):
            operand = self._compiled(node.operand, depth)

            def negation(run: _Run) -> bool | None:
                inner = operand(run)
                return None if inner is None else not inner
            return negation
        if isinstance(node, E.BoolOp):
            parts = tuple(self._compiled(o, depth) for o in node.operands)
            if node.op == "and":
                def conjunction(run: _Run) -> bool | None:
                    values = [part(run) for part in parts]  # every part, for the explanation
                    return False if False in values else (None if None in values else True)
                return conjunction

            def disjunction(run: _Run) -> bool | None:
                values = [part(run) for part in parts]
                return True if True in values else (None if None in values else False)
            return disjunction
        if isinstance(node, E.Call) and node.func in ("exists", "missing"):
            argument, exists = self._compiled(node.args[0], None), node.func == "exists"
            prefix = f"{indent}{self._static(node)[0]}: "

            def presence(run: _Run) -> bool:
                # read apart: what exists() looks at is not a value the decision used
                present = argument(_Run(run.read, [], {}, [], run.trace, run.shown)) is not None
                result = present if exists else not present
                run.lines.append(prefix + _TRUTH[result])
                return result
            return presence
        if isinstance(node, E.Compare):
            left, right, op = self._compiled(node.left, None), self._compiled(node.right, None), COMPARE[node.op]
            text = self._static(node)[0]
            prefix, readings = f"{indent}{text}: ", self._readings_fn(node)

            def comparison(run: _Run) -> bool | None:
                a, b = left(run), right(run)
                result = None if a is None or b is None or not _comparable(a, b) else op(a, b)
                if run.trace is not None:
                    outcomes = run.trace.setdefault(text, set())
                    outcomes.add(result)
                    if _numbers(a, b) and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9):
                        outcomes.add(AT_THRESHOLD)  # both sides equal: the case sits exactly on the bound
                run.lines.append(prefix + _TRUTH[result] + readings(run))
                return result
            return comparison
        if isinstance(node, E.InList):
            item, values, negated = self._compiled(node.item, None), tuple(self._compiled(v, None) for v in node.values), node.negated
            prefix, readings = f"{indent}{self._static(node)[0]}: ", self._readings_fn(node)

            def membership(run: _Run) -> bool | None:
                value = item(run)
                if value is None:
                    result = None
                else:
                    result = value in [v(run) for v in values]
                    result = (not result) if negated else result
                run.lines.append(prefix + _TRUTH[result] + readings(run))
                return result
            return membership
        value_fn = self._compiled(node, None)
        atom = atom_of(node)
        if atom is not None:  # a boolean fact used as a condition
            prefix, readings = f"{indent}{atom}: ", self._readings_fn(node)

            def fact(run: _Run) -> bool | None:
                value = value_fn(run)
                result = None if value is None else bool(value)
                run.lines.append(prefix + _TRUTH[result] + readings(run))
                return result
            return fact

        def other(run: _Run) -> bool | None:
            value = value_fn(run)
            return None if value is None else bool(value)
        return other

    def _static(self, node: E.Node) -> tuple[str, tuple[Atom, ...], tuple[str, ...]]:
        """A node's text, the atoms it reads (in order, once each) and its parameters with units."""
        key = ("static", id(node))
        known = self.static.get(key)
        if known is None or known[0] is not node:
            atoms: dict[str, Atom] = {}
            parameters = []
            for sub in E.walk(node):
                atom = atom_of(sub)
                if isinstance(sub, E.Name) and sub.name in self.parameters:
                    unit = self.units.get(sub.name)
                    parameters.append(f"{sub.name} = {self.parameters[sub.name]}{' ' + unit if unit else ''}")
                    continue
                if atom is None or isinstance(sub, E.Name) and sub.name in self.rules:
                    continue
                atoms.setdefault(str(atom), interned(atom))
            known = self.static[key] = (node, (E.unparse(node), tuple(atoms.values()), tuple(parameters)))
        return known[1]

    def _readings_fn(self, node: E.Node) -> Callable[[_Run], str]:
        """' (hba1c_mmol_mol = 61 mmol/mol, observed 2026-10-02)' for the atoms of a comparison."""
        _, atoms, parameters = self._static(node)
        if not atoms and not parameters:
            return lambda run: ""
        shown = self._reading_text

        def readings(run: _Run) -> str:
            parts = []
            for atom in atoms:
                text = run.shown.get(atom)
                if text is None:
                    text = run.shown[atom] = shown(atom, run.read(atom))
                parts.append(text)
            parts += parameters
            return f" ({'; '.join(dict.fromkeys(parts))})"
        return readings

    def _reading_text(self, atom: Atom, reading: Reading) -> str:
        if reading.value is None:
            return f"{atom} missing"
        unit = self._unit(atom)
        value = reading.value
        shown = f"{value:.4g}" if isinstance(value, float) else str(value).lower() if isinstance(value, bool) else str(value)
        text = f"{atom} = {shown}{' ' + unit if unit else ''}"
        demographic = atom.fact in self.fact_sources and self.fact_sources[atom.fact] == "demographic"
        if reading.observed is not None and not demographic and atom.func in ("value", "latest", "value_ago", "min", "max"):
            text += f", observed {reading.observed}"
        if reading.detail and atom.func not in ("value", "latest"):
            text += f" ({reading.detail})"
        elif reading.detail and atom.func in ("value", "latest") and reading.detail[:1].isdigit():
            text += f", given as {reading.detail}"
        return text

    def _unit(self, atom: Atom) -> str:
        if atom.func == "pct_change":
            return "%"
        if atom.func == "count":
            return ""
        if atom.func == "days_since":
            return "days"
        if atom.func == "value" and atom.fact == "age_years":
            return "years"
        return self.fact_units.get(atom.fact) or ""


def _numbers(*values: Any) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def _comparable(left: Any, right: Any) -> bool:
    if _numbers(left, right):
        return True
    return type(left) is type(right)
