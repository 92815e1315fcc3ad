"""Findings: what a stored decision rested on, written as a clinician writes it.

"eGFR 26 ml/min/1,73m² (15 oktober 2026), onder de verwijsgrens van 30 voor 65-plussers"

From a decision's stored basis (its condition, the facts it read with their values, and its
explanation lines, which carry the dates the values were observed and the parameter values as
decided) the condition is evaluated again, part by part, with the reference evaluator on those
stored values, and only the parts that gave the outcome are written: of an ``or`` only the
alternatives that held (an 82-year-old's letter does not cite the under-65 branch), of an
``and`` every part. The raw expressions stay in the trail (`pathways audit show`).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from pathways.definition import expr as E
from pathways.definition import wording as W
from pathways.definition.documents import format_date
from pathways.definition.durations import Duration
from pathways.facts.derive import MISSING, Atom, Reading
from pathways.rules.plan import Plan, atom_of
from pathways.rules.reference import ReferenceEvaluator

OP_WORDS = {
    "nl": {"<": "onder", "<=": "op of onder", ">": "boven", ">=": "op of boven", "==": "gelijk aan", "!=": "niet gelijk aan"},
    "en": {"<": "below", "<=": "at or below", ">": "above", ">=": "at or above", "==": "equal to", "!=": "not equal to"},
}
FLIPPED = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}
NEGATED = {"<": ">=", "<=": ">", ">": "<=", ">=": "<", "==": "!=", "!=": "=="}
WINDOW_WORDS = {"nl": {"d": ("dag", "dagen"), "w": ("week", "weken"), "mo": ("maand", "maanden"), "y": ("jaar", "jaar")},
                "en": {"d": ("day", "days"), "w": ("week", "weeks"), "mo": ("month", "months"), "y": ("year", "years")}}
WORDS = {
    "nl": {"change": "{label}, verandering in {window}", "pct_change": "{label}, verandering in {window}",
           "count": "{label}, aantal in {window}", "min": "laagste {label} in {window}", "max": "hoogste {label} in {window}",
           "value_ago": "{label} {window} geleden", "days_since": "{label}, dagen geleden",
           "unknown": "{label}: onbekend", "known": "{label}: bekend", "not_known": "{label}: niet bekend"},
    "en": {"change": "{label}, change over {window}", "pct_change": "{label}, change over {window}",
           "count": "{label}, count in {window}", "min": "lowest {label} in {window}", "max": "highest {label} in {window}",
           "value_ago": "{label} {window} ago", "days_since": "{label}, days ago",
           "unknown": "{label}: not known", "known": "{label}: known", "not_known": "{label}: not known"},
}
DATED = ("value", "latest", "value_ago", "min", "max")  # atoms whose value is one observation, with its date


class Basis:
    """A decision's stored basis, read back: the values, their dates, presence checks and the
    parameter values it was decided with (a care network's overrides included)."""

    def __init__(self, plan: Plan, reasons: list[str], facts_read: dict[str, Any]):
        self.values: dict[str, Any] = {}
        for key, value in (facts_read or {}).items():
            fact = plan.facts.get(key)
            if getattr(fact, "type", None) == "date" and isinstance(value, str):
                value = dt.date.fromisoformat(value)
            self.values[key] = value
        text = "\n".join(reasons)
        self.observed: dict[str, dt.date] = {}
        for key in self.values:
            found = re.search(rf"(?:\(|; ){re.escape(key)} = [^;\n]*?, observed (\d{{4}}-\d{{2}}-\d{{2}})", text)
            if found:
                self.observed[key] = dt.date.fromisoformat(found[1])
        self.present: dict[str, bool] = {}
        for found in re.finditer(r"^\s*(exists|missing)\((.+)\): (true|false)$", text, re.M):
            self.present[found[2]] = (found[1] == "exists") == (found[3] == "true")
        self.parameters = dict(plan.parameters)
        for name, default in plan.parameters.items():
            found = re.search(rf"(?:\(|; ){re.escape(name)} = ([^ ;)\n]+)", text)
            if found:
                self.parameters[name] = _like(found[1], default)

    def read(self, atom: Atom) -> Reading:
        key = str(atom)
        if key in self.values and self.values[key] is not None:
            return Reading(self.values[key], self.observed.get(key))
        if self.present.get(key):  # read only by exists(): the value itself was not kept
            return Reading(True)
        return MISSING


def _like(text: str, default: Any) -> Any:
    """A parameter value as the explanation printed it, of the default's type."""
    if isinstance(default, bool):
        return text == "True"
    if isinstance(default, (int, float)):
        try:
            number = float(text)
        except ValueError:
            return default
        return int(number) if number.is_integer() and isinstance(default, int) else number
    return text


class Findings:
    """Writes the findings of decisions of one plan (pathway version) in one language."""

    def __init__(self, plan: Plan, lang: str):
        self.plan, self.lang = plan, lang
        self.conditions = {c.id: c for c in plan.conditions}
        self.parameters = plan.loaded.parameters

    def of(self, condition_id: str, reasons: list[str], facts_read: dict[str, Any], outcome: bool | None = True) -> list[str]:
        """The sentences that explain why ``condition_id`` came out ``outcome`` (true: what held;
        false: what did not; None: what was missing). Empty when the condition is unknown here or
        the stored values do not give the stored outcome again (then the caller shows less, not
        something wrong)."""
        condition = self.conditions.get(condition_id)
        if condition is None:
            return []
        basis = Basis(self.plan, reasons, facts_read)
        evaluator = ReferenceEvaluator(basis.read, self.plan.rules, basis.parameters, self.plan.parameter_units, self.plan.facts)
        if evaluator.evaluate(condition.ast).value is not outcome:
            return []
        found: list[str] = []
        self._walk(condition.ast, outcome, evaluator, basis, found)
        return [W.capitalized(f) for f in dict.fromkeys(found)]

    def criterion(self, condition_id: str) -> str | None:
        """The title of the named rule a condition is, if it is one ("Verwijzen naar internist-nefroloog ...").
        Rule titles are Dutch: in another language there is none (the caller uses the step's title)."""
        condition = self.conditions.get(condition_id)
        if self.lang == "nl" and condition is not None and isinstance(condition.ast, E.Name) and condition.ast.name in self.plan.rules:
            return self.plan.rules[condition.ast.name].title
        return None

    # -- which parts gave the outcome -----------------------------------------------------
    def _walk(self, node: E.Node, want: bool | None, evaluator: ReferenceEvaluator, basis: Basis, found: list[str]) -> None:
        if isinstance(node, E.Name) and node.name in self.plan.rules:
            self._walk(self.plan.rules[node.name].when.ast, want, evaluator, basis, found)
            return
        if isinstance(node, E.BoolOp):
            every = (node.op == "and") == (want is True)  # an and that held, an or that did not: every part counts
            for operand in node.operands:
                if every or evaluator.evaluate(operand).value is want:
                    self._walk(operand, want, evaluator, basis, found)
            return
        if isinstance(node, E.Not):
            if want is True and isinstance(node.operand, E.Name) and node.operand.name in self.plan.rules:
                return  # "not kidney_referral" says what did not apply, not what was found
            self._walk(node.operand, None if want is None else not want, evaluator, basis, found)
            return
        if isinstance(node, E.Bool):
            return
        sentence = self._leaf(node, want, basis)
        if sentence:
            found.append(sentence)

    # -- one comparison, membership, boolean fact or presence check ----------------------------
    def _leaf(self, node: E.Node, want: bool | None, basis: Basis) -> str | None:
        words = WORDS[self.lang]
        if want is None:
            missing = [self._label(a) for a in self._atoms(node) if basis.read(a).value is None]
            return "; ".join(words["unknown"].format(label=label) for label in dict.fromkeys(missing)) or None
        if isinstance(node, E.Call) and node.func in ("exists", "missing"):
            atom = atom_of(node.args[0]) if node.args else None
            if atom is None:
                return None
            return words["known" if basis.read(atom).value is not None else "not_known"].format(label=self._label(atom))
        if isinstance(node, E.InList):
            atom = atom_of(node.item)
            return f"{self._label(atom)}: {self._value(atom, basis, dated=True)}" if atom is not None and self._is_atom(node.item) else None
        if isinstance(node, E.Compare):
            return self._comparison(node, want, basis)
        atom = atom_of(node)
        if atom is not None and self._is_atom(node):  # a boolean fact used as a condition
            return f"{self._label(atom)}: {W.YES_NO[self.lang][0 if want else 1]}"
        return None

    def _comparison(self, node: E.Compare, want: bool, basis: Basis) -> str | None:
        left, right, op = node.left, node.right, node.op
        if not self._is_atom(left) and self._is_atom(right):
            left, right, op = right, left, FLIPPED[op]
        if not want:
            op = NEGATED[op]
        if not self._is_atom(left):
            return None  # arithmetic on both sides: the explanation in `audit show` says it
        atom = atom_of(left)
        subject_unit = self._unit(atom)
        if op in ("==", "!=") and (isinstance(right, E.Str) or self._code(atom)):
            return f"{self._label(atom)}: {self._value(atom, basis, dated=True)}"
        subject = f"{self._subject(atom, basis)}"
        other = self._other(right, subject_unit, basis)
        return f"{subject}, {OP_WORDS[self.lang][op]} {other}" if other else subject

    def _other(self, node: E.Node, subject_unit: str | None, basis: Basis) -> str | None:
        if isinstance(node, E.Name) and node.name in self.parameters:
            value = basis.parameters[node.name]
            unit = self.plan.parameter_units.get(node.name)
            shown = W.number_text(value, self.lang) if unit == subject_unit or unit is None else W.quantity_text(value, unit, self.lang)
            return W.threshold_text(node.name, self.parameters[node.name], shown, self.lang, basis.parameters)
        if isinstance(node, E.Num):
            return W.quantity_text(node.value, node.unit or subject_unit, self.lang)
        if isinstance(node, E.Neg) and isinstance(node.operand, E.Num):
            return W.quantity_text(-node.operand.value, node.operand.unit or subject_unit, self.lang)
        if isinstance(node, E.Dur):
            return self._window(node.value)
        if isinstance(node, E.Str):
            return W.code_text(None, node.value, self.lang)
        if self._is_atom(node):
            return self._subject(atom_of(node), basis)
        return None

    # -- atoms: names, values, units, dates ----------------------------------------------------
    def _is_atom(self, node: E.Node) -> bool:
        atom = atom_of(node)
        return atom is not None and not (isinstance(node, E.Name) and (node.name in self.parameters or node.name in self.plan.rules))

    def _atoms(self, node: E.Node) -> list[Atom]:
        if self._is_atom(node):
            return [atom_of(node)]
        return [atom for child in E.children(node) for atom in self._atoms(child)]

    def _definition(self, atom: Atom):
        return self.plan.facts.get(atom.fact) or self.plan.derived.get(atom.fact)

    def _label(self, atom: Atom) -> str:
        definition = self._definition(atom)
        label = W.fact_label(atom.fact, definition, self.lang)
        if atom.func in ("value", "latest"):
            return label
        return WORDS[self.lang][atom.func].format(label=label, window=self._window(atom.window) if atom.window else "")

    def _code(self, atom: Atom) -> bool:
        return getattr(self._definition(atom), "type", None) == "code"

    def _unit(self, atom: Atom) -> str | None:
        definition = self._definition(atom)
        if atom.func == "value" and atom.fact in self.plan.derived:
            derived = self.plan.derived[atom.fact]
            if derived.function == "age":
                return "a"
            return self._unit(Atom(derived.function if derived.function != "latest" else "latest", derived.of, derived.window))
        if atom.func == "pct_change":
            return "%"
        if atom.func == "count":
            return None
        if atom.func == "days_since":
            return "d"
        return getattr(definition, "unit", None)

    def _value(self, atom: Atom, basis: Basis, dated: bool) -> str:
        reading = basis.read(atom)
        definition = self._definition(atom)
        if reading.value is None:
            return WORDS[self.lang]["unknown"].format(label="").lstrip(": ")
        value = reading.value
        if atom.func in ("change", "pct_change") and isinstance(value, (int, float)) and value > 0:
            shown = "+" + W.quantity_text(value, self._unit(atom), self.lang)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            shown = W.quantity_text(value, self._unit(atom), self.lang)
        else:
            shown = W.fact_value_text(definition, value, self.lang)
        demographic = getattr(definition, "source", None) == "demographic"
        if dated and not demographic and atom.func in DATED and reading.observed is not None:
            shown += f" ({format_date(reading.observed, self.lang)})"
        return shown

    def _subject(self, atom: Atom, basis: Basis) -> str:
        label, value = self._label(atom), self._value(atom, basis, dated=True)
        return f"{label}: {value}" if atom.func not in ("value", "latest") else f"{label} {value}"

    def _window(self, window: Duration) -> str:
        one, many = WINDOW_WORDS[self.lang][window.unit]
        return f"{window.amount} {one if window.amount == 1 else many}"
