"""Static checks of rule expressions against the names a pathway defines.

``Checker.infer`` gives each expression a type (quantity with its unit, count, boolean, code
with its values, date, duration, text) and reports, through a callback, unknown names and
functions, wrong arguments, mixed types and units, and impossible code values. Pure: no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from pathways.definition import expr as E
from pathways.definition.model import Derived, Fact, Parameter
from pathways.errors import did_you_mean

Report = Callable[[E.Span, str, str, str], None]  # (span, code, message, hint)


@dataclass(frozen=True)
class T:
    kind: str  # number | boolean | code | date | duration | text | unknown
    unit: str | None = None  # numbers: canonical unit; None for counts and bare literals
    values: tuple[str, ...] | None = None  # codes: the values the fact can take
    literal: bool = False  # a bare number literal takes the unit of what it is compared with

    def describe(self) -> str:
        if self.kind == "number":
            if self.literal:
                return "a number"
            return f"a quantity in {self.unit}" if self.unit else "a count"
        return {
            "boolean": "true/false",
            "code": "a code",
            "date": "a date",
            "duration": "a duration",
            "text": "text",
        }.get(self.kind, "a value")


UNKNOWN = T("unknown")
BOOLEAN = T("boolean")
WINDOW_FUNCTIONS = {"value_ago", "change", "pct_change", "count", "min", "max"}


@dataclass(frozen=True)
class Symbol:
    kind: str  # fact | derived | parameter | rule
    type: T
    clinical: bool  # comparing it with a number states a clinical threshold


def fact_type(fact: Fact) -> T:
    if fact.type == "quantity":
        return T("number", fact.unit)
    if fact.type == "count":
        return T("number", fact.unit)
    if fact.type == "code":
        return T("code", values=fact.values)
    return T(fact.type)


def derived_type(derived: Derived, base: T) -> T:
    if derived.function in ("count",):
        return T("number")
    if derived.function == "pct_change":
        return T("number", "%")
    if derived.function == "days_since":
        return T("duration")
    if derived.function == "age":
        return T("number", "a")
    return base


def parameter_type(parameter: Parameter) -> T:
    value = parameter.value
    if isinstance(value, bool):
        return BOOLEAN
    if isinstance(value, (int, float)):
        return T("number", parameter.unit)
    return T("text")


class Checker:
    """Types expressions against a symbol table; reports problems through ``report``."""

    def __init__(self, symbols: dict[str, Symbol], facts: dict[str, Fact], report: Report, broken: set[str] = frozenset()):
        self.symbols = symbols
        self.facts = facts
        self.report = report
        self.broken = broken  # names whose definitions failed the schema: do not report twice

    # -- entry points -------------------------------------------------------------------
    def condition(self, node: E.Node, what: str) -> T:
        """Check an expression that must be true or false (a gate, trigger or rule)."""
        typ = self.infer(node)
        if typ.kind not in ("boolean", "unknown"):
            self.report(
                node.span,
                "PW027",
                f"{what} is {typ.describe()}, not true/false",
                "compare it, e.g. `x > 3`, or use exists(x)",
            )
        return typ

    # -- inference ----------------------------------------------------------------------
    def infer(self, node: E.Node) -> T:
        method = getattr(self, f"_{type(node).__name__.lower()}")
        return method(node)

    def _num(self, node: E.Num) -> T:
        if node.unit is None:
            return T("number", literal=True)
        return T("number", node.unit)

    def _str(self, node: E.Str) -> T:
        return T("text", values=(node.value,), literal=True)

    def _bool(self, node: E.Bool) -> T:
        return BOOLEAN

    def _dur(self, node: E.Dur) -> T:
        return T("duration")

    def _name(self, node: E.Name) -> T:
        symbol = self.symbols.get(node.name)
        if symbol is None:
            if node.name not in self.broken:
                hint = did_you_mean(node.name, self.symbols) or "define it under facts, derived, parameters or rules"
                if node.name in E.FUNCTIONS:
                    hint = f"{node.name} is a function: write {node.name}(fact{', window' if node.name in WINDOW_FUNCTIONS else ''})"
                self.report(node.span, "PW021", f"unknown name '{node.name}'", hint)
            return UNKNOWN
        return symbol.type

    def _call(self, node: E.Call) -> T:
        if node.func not in E.FUNCTIONS:
            hint = did_you_mean(node.func, E.FUNCTIONS) or f"functions: {', '.join(sorted(E.FUNCTIONS))}"
            self.report(node.span, "PW022", f"unknown function '{node.func}'", hint)
            for arg in node.args:
                self.infer(arg)
            return UNKNOWN
        wanted = 2 if node.func in WINDOW_FUNCTIONS else 1
        signature = f"{node.func}({E.FUNCTIONS[node.func][0]})"
        if len(node.args) != wanted:
            self.report(node.span, "PW023", f"{node.func} takes {wanted} argument{'s' if wanted > 1 else ''}, not {len(node.args)}", f"write {signature}")
            return UNKNOWN
        subject = node.args[0]
        if node.func in ("exists", "missing"):
            if not isinstance(subject, (E.Name, E.Call)):
                self.report(subject.span, "PW023", f"{node.func} takes a fact", f"write {signature}")
            else:
                self.infer(subject)
            return BOOLEAN
        if not isinstance(subject, E.Name):
            self.report(subject.span, "PW023", f"the first argument of {node.func} must name a fact", f"write {signature}")
            return UNKNOWN
        base = self.infer(subject)
        symbol = self.symbols.get(subject.name)
        if symbol is not None and symbol.kind not in ("fact",) and node.func != "exists":
            self.report(subject.span, "PW023", f"{node.func} works on facts over time; '{subject.name}' is a {symbol.kind}", "name a fact declared under facts")
            return UNKNOWN
        if wanted == 2:
            window = node.args[1]
            if not isinstance(window, E.Dur):
                self.report(window.span, "PW023", f"the window of {node.func} must be a duration", "write e.g. 3d, 12w, 6mo or 1y")
            elif window.value.amount <= 0:
                self.report(window.span, "PW035", f"a window of {window.value} is empty", "use a window longer than 0")
        if base.kind == "unknown":
            return UNKNOWN
        if node.func in ("change", "pct_change", "min", "max") and base.kind != "number":
            self.report(subject.span, "PW024", f"{node.func} needs a numeric fact; '{subject.name}' is {base.describe()}", "use count() or value_ago() for other facts")
            return UNKNOWN
        if node.func == "count":
            return T("number")
        if node.func == "pct_change":
            return T("number", "%")
        if node.func == "days_since":
            return T("duration")
        return base

    def _not(self, node: E.Not) -> T:
        typ = self.infer(node.operand)
        if typ.kind not in ("boolean", "unknown"):
            self.report(node.operand.span, "PW024", f"'not' needs true/false, got {typ.describe()}", "compare it first, e.g. `not x > 3`")
        return BOOLEAN

    def _boolop(self, node: E.BoolOp) -> T:
        for operand in node.operands:
            typ = self.infer(operand)
            if typ.kind not in ("boolean", "unknown"):
                self.report(operand.span, "PW024", f"'{node.op}' joins conditions; this is {typ.describe()}", "compare it, e.g. `x > 3`")
        return BOOLEAN

    def _neg(self, node: E.Neg) -> T:
        typ = self.infer(node.operand)
        if typ.kind not in ("number", "duration", "unknown"):
            self.report(node.span, "PW024", f"cannot negate {typ.describe()}", "")
        return typ

    def _arith(self, node: E.Arith) -> T:
        left, right = self.infer(node.left), self.infer(node.right)
        if UNKNOWN in (left, right) or left.kind == "unknown" or right.kind == "unknown":
            return UNKNOWN
        if node.op in "+-" and left.kind == right.kind == "duration":
            return left
        if left.kind != "number" or right.kind != "number":
            bad = node.left if left.kind != "number" else node.right
            self.report(bad.span, "PW024", f"arithmetic needs numbers, got {(left if left.kind != 'number' else right).describe()}", "")
            return UNKNOWN
        if node.op in "+-":
            if left.literal:
                return right
            if right.literal:
                return left
            if left.unit != right.unit:
                self.report(node.span, "PW025", f"'{node.op}' mixes {_unit(left)} and {_unit(right)}", "convert one side to the other's unit")
                return UNKNOWN
            return left
        if left.literal:
            return right if node.op == "*" else T("number", f"1/{right.unit}" if right.unit else None, literal=right.literal)
        if right.literal:
            return left
        return T("number", f"{left.unit or '1'}{node.op}{right.unit or '1'}")

    def _compare(self, node: E.Compare) -> T:
        left, right = self.infer(node.left), self.infer(node.right)
        self._comparable(node.op, node.left, left, node.right, right, node.span)
        return BOOLEAN

    def _inlist(self, node: E.InList) -> T:
        item = self.infer(node.item)
        for value in node.values:
            self._comparable("==", node.item, item, value, self.infer(value), value.span)
        return BOOLEAN

    # -- comparison rules ---------------------------------------------------------------
    def _comparable(self, op: str, lnode: E.Node, left: T, rnode: E.Node, right: T, span: E.Span) -> None:
        if left.kind == "unknown" or right.kind == "unknown":
            return
        ordering = op in ("<", "<=", ">", ">=")
        if left.kind == "number" and right.kind == "number":
            if left.literal or right.literal or left.unit == right.unit:
                return
            hint = f"write the threshold in {_unit(left)}" if isinstance(rnode, E.Num) else f"convert one side to {_unit(left)}"
            self.report(span, "PW025", f"compares {_unit(left)} with {_unit(right)}", hint)
            return
        if left.kind == right.kind == "duration":
            return
        if left.kind == right.kind == "date" and not ordering:
            return
        if left.kind == "date" or right.kind == "date":
            self.report(span, "PW024", "dates are compared through days_since(fact)", "write e.g. `days_since(last_foot_exam) > 1y`")
            return
        codes = left if left.kind == "code" else right if right.kind == "code" else None
        text = right if codes is left else left
        if codes is not None and text.kind == "text" and text.literal:
            if ordering:
                self.report(span, "PW024", f"codes have no order; '{op}' cannot compare them", "use == or in [...]")
                return
            value = text.values[0] if text.values else ""
            if codes.values is not None and value not in codes.values:
                literal_node = rnode if codes is left else lnode
                self.report(
                    literal_node.span,
                    "PW026",
                    f"'{value}' is not a value of this fact ({', '.join(codes.values)})",
                    did_you_mean(value, codes.values) or "use one of the listed values",
                )
            return
        if left.kind == right.kind and left.kind in ("boolean", "text", "code"):
            if ordering:
                self.report(span, "PW024", f"{left.describe()} has no order; '{op}' cannot compare it", "use == or !=")
            return
        self.report(span, "PW024", f"compares {left.describe()} with {right.describe()}", _type_hint(left, right))


def _unit(typ: T) -> str:
    return typ.unit or "a count"


def _type_hint(left: T, right: T) -> str:
    kinds = {left.kind, right.kind}
    if kinds == {"boolean", "number"}:
        return "a true/false fact is used as is: write `fact` or `not fact`"
    if kinds == {"code", "number"} or kinds == {"code", "text"}:
        return "compare a code with a quoted value, e.g. == \"2\""
    if "duration" in kinds:
        return "durations compare with durations, e.g. days_since(x) > 1y"
    return "compare values of the same kind"


# -- thresholds and satisfiability ------------------------------------------------------

def thresholds(node: E.Node, symbols: dict[str, Symbol]) -> list[E.Num]:
    """Number literals (other than 0) compared with a clinical fact: these need a citation."""
    found: list[E.Num] = []
    for sub in E.walk(node):
        if isinstance(sub, (E.Compare, E.InList)):
            sides = (sub.left, sub.right) if isinstance(sub, E.Compare) else (sub.item, *sub.values)
            clinical = any(
                isinstance(n, E.Name) and n.name in symbols and symbols[n.name].clinical
                for side in sides
                for n in E.walk(side)
            )
            if clinical:
                found.extend(
                    n for side in sides for n in E.walk(side) if isinstance(n, E.Num) and n.value != 0
                )
    return found


def unsatisfiable(node: E.Node) -> bool:
    """True when an 'and' of simple comparisons can never hold (e.g. x > 70 and x < 60)."""
    if isinstance(node, E.Bool):
        return not node.value
    if isinstance(node, E.BoolOp):
        if node.op == "or":
            return all(unsatisfiable(o) for o in node.operands)
        if any(unsatisfiable(o) for o in node.operands):
            return True
        return _conjunction_empty(node.operands)
    return False


def _conjunction_empty(operands: tuple[E.Node, ...]) -> bool:
    bounds: dict[str, list[float]] = {}  # key -> [low, low_inclusive, high, high_inclusive]
    equal_codes: dict[str, set[str]] = {}
    for operand in operands:
        if not isinstance(operand, E.Compare):
            continue
        subject, op, literal = _normalise(operand)
        if subject is None:
            continue
        key = _key(subject)
        if isinstance(literal, E.Str):
            if op == "==":
                equal_codes.setdefault(key, set()).add(literal.value)
            continue
        value = float(literal.value)
        low, low_inc, high, high_inc = bounds.setdefault(key, [-math.inf, 1.0, math.inf, 1.0])
        if op in (">", ">=", "=="):
            inclusive = 1.0 if op != ">" else 0.0
            if value > low or (value == low and not inclusive):
                low, low_inc = value, inclusive
        if op in ("<", "<=", "=="):
            inclusive = 1.0 if op != "<" else 0.0
            if value < high or (value == high and not inclusive):
                high, high_inc = value, inclusive
        bounds[key] = [low, low_inc, high, high_inc]
    for low, low_inc, high, high_inc in bounds.values():
        if low > high or (low == high and not (low_inc and high_inc)):
            return True
    return any(len(values) > 1 for values in equal_codes.values())


_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}


def _normalise(node: E.Compare) -> tuple[E.Node | None, str, E.Num | E.Str]:
    if isinstance(node.right, (E.Num, E.Str)) and not isinstance(node.left, (E.Num, E.Str)):
        return node.left, node.op, node.right
    if isinstance(node.left, (E.Num, E.Str)) and not isinstance(node.right, (E.Num, E.Str)):
        return node.right, _FLIP[node.op], node.left
    return None, "", E.Num(0, None, node.span)


def _key(node: E.Node) -> str:
    if isinstance(node, E.Name):
        return node.name
    if isinstance(node, E.Call):
        return f"{node.func}(" + ",".join(_key(a) for a in node.args) + ")"
    if isinstance(node, E.Dur):
        return str(node.value)
    return repr(node)
