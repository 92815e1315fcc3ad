"""The reference evaluator: pure Python over the expression tree, three-valued (true, false,
missing), and the source of every explanation. The durable-rules path is tested against it.

Semantics (Kleene): `and` is false if any part is false, else missing if any is missing;
`or` is true if any part is true, else missing if any is missing; `not missing` is missing;
a comparison or arithmetic with a missing side is missing; division by zero is missing;
exists()/missing() are always known. Durations compare in days (months 30.4375, years 365.25).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from pathways.definition import expr as E
from pathways.facts.derive import Atom, Reading
from pathways.rules.plan import ARITH, COMPARE, NOT_A_LITERAL, atom_of, literal_value



def truth(value: bool | None) -> str:
    return "missing" if value is None else ("true" if value else "false")


@dataclass
class Explanation:
    """What a condition decided and why: each sub-condition with its truth value and readings."""

    value: bool | None
    lines: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # atoms that were missing
    used: dict[str, Any] = field(default_factory=dict)  # atom -> value read


class ReferenceEvaluator:
    def __init__(self, read: Callable[[Atom], Reading], rules: dict, parameters: dict[str, Any], units: dict[str, str | None], facts: dict,
                 trace: dict[str, set] | None = None, static: dict[int, tuple] | None = None):
        self.read, self.rules, self.parameters, self.units = read, rules, parameters, units
        self.trace = trace  # when given (`pathways check`): comparison text -> outcomes seen
        self.fact_units = {name: f.unit for name, f in facts.items()}
        self.fact_sources = {name: f.source for name, f in facts.items()}
        # what does not depend on the patient, per node: its text, the atoms it reads, its
        # parameters. Keyed by id(node): pass a shared dict only while the nodes stay alive
        # (the pathway plan holds them); by default it lives as long as this evaluator.
        self.static = {} if static is None else static

    def evaluate(self, node: E.Node, text: str | None = None) -> Explanation:
        explanation = Explanation(None)
        explanation.value = self._bool(node, explanation, 0, text)
        return explanation

    # -- values ---------------------------------------------------------------------
    def _value(self, node: E.Node, ex: Explanation) -> Any:
        value = literal_value(node)
        if value is not NOT_A_LITERAL:
            return value
        if isinstance(node, E.Name) and node.name in self.parameters:
            return self.parameters[node.name]
        if isinstance(node, E.Name) and node.name in self.rules:
            return self._bool(node, ex, 1, None)
        atom = atom_of(node)
        if atom is not None:
            reading = self.read(atom)
            ex.used[str(atom)] = reading.value
            if reading.value is None:
                if str(atom) not in ex.missing:
                    ex.missing.append(str(atom))
            return reading.value
        if isinstance(node, E.Neg):
            value = self._value(node.operand, ex)
            return None if value is None else -value
        if isinstance(node, E.Arith):
            left, right = self._value(node.left, ex), self._value(node.right, ex)
            if left is None or right is None or not _numbers(left, right):
                return None
            if node.op == "/" and right == 0:
                return None
            return ARITH[node.op](left, right)
        return self._bool(node, ex, 1, None)

    # -- conditions -----------------------------------------------------------------
    def _bool(self, node: E.Node, ex: Explanation, depth: int, text: str | None) -> bool | None:
        if isinstance(node, E.Name) and node.name in self.rules:
            rule = self.rules[node.name]
            value = self._bool(rule.when.ast, ex, depth + 1, rule.when.text)
            modality = " (may, not must)" if rule.modality == "may" else ""
            ex.lines.append(f"{'  ' * depth}{node.name}{modality}: {truth(value)}")
            return value
        if isinstance(node, E.Bool):
            return node.value
        if isinstance(node, E.Not):
            inner = self._bool(node.operand, ex, depth, None)
            return None if inner is None else not inner
        if isinstance(node, E.BoolOp):
            values = [self._bool(o, ex, depth, None) for o in node.operands]
            if node.op == "and":
                result = False if False in values else (None if None in values else True)
            else:
                result = True if True in values else (None if None in values else False)
            return result
        if isinstance(node, E.Call) and node.func in ("exists", "missing"):
            value = self._value(node.args[0], Explanation(None))
            present = value is not None
            result = present if node.func == "exists" else not present
            ex.lines.append(f"{'  ' * depth}{self._static(node)[0]}: {truth(result)}")
            return result
        if isinstance(node, E.Compare):
            left, right = self._value(node.left, ex), self._value(node.right, ex)
            result = None if left is None or right is None or not _comparable(left, right) else COMPARE[node.op](left, right)
            if self.trace is not None:
                self.trace.setdefault(self._static(node)[0], set()).add(result)
            ex.lines.append(f"{'  ' * depth}{self._static(node)[0]}: {truth(result)}{self._readings(node)}")
            return result
        if isinstance(node, E.InList):
            item = self._value(node.item, ex)
            if item is None:
                result = None
            else:
                result = item in [self._value(v, ex) for v in node.values]
                result = (not result) if node.negated else result
            ex.lines.append(f"{'  ' * depth}{self._static(node)[0]}: {truth(result)}{self._readings(node)}")
            return result
        atom = atom_of(node)
        if atom is not None:  # a boolean fact used as a condition
            value = self._value(node, ex)
            result = None if value is None else bool(value)
            ex.lines.append(f"{'  ' * depth}{atom}: {truth(result)}{self._readings(node)}")
            return result
        value = self._value(node, ex)
        return None if value is None else bool(value)

    def _static(self, node: E.Node) -> tuple[str, tuple[Atom, ...], tuple[str, ...]]:
        """A node's text, the atoms it reads (in order, once each) and its parameters with units."""
        known = self.static.get(id(node))
        if known is None:
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
                atoms.setdefault(str(atom), atom)
            known = self.static[id(node)] = (E.unparse(node), tuple(atoms.values()), tuple(parameters))
        return known

    def _readings(self, node: E.Node) -> str:
        """' (hba1c_mmol_mol = 61 mmol/mol, observed 2026-10-02)' for the atoms of a comparison."""
        _, atoms, parameters = self._static(node)
        parts = []
        for atom in atoms:
            reading = self.read(atom)
            if reading.value is None:
                parts.append(f"{atom} missing")
                continue
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
            parts.append(text)
        parts += parameters
        return f" ({'; '.join(dict.fromkeys(parts))})" if parts else ""

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
