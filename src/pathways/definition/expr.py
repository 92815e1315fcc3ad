"""The rule expression language: text in YAML -> a frozen AST. Parsed by lark, never eval'd.

Examples::

    hba1c_mmol_mol > 53 and age_years < 70
    change(body_weight_kg, 3d) > 2 kg
    pct_change(egfr_ml_min_1_73m2, 365d) < -20 %
    simms_class in ["1", "2", "3"] or missing(simms_class)
    count(copd_exacerbation, 1y) >= 2

Grammar (lowest precedence first): ``or``, ``and``, ``not``, comparison
(``< <= > >= == !=``, ``in [...]``, ``not in [...]``), ``+ -``, ``* /``, unary ``-``, atoms
(numbers with an optional unit, durations such as ``3d``, strings, ``true``/``false``, names,
function calls, parentheses). Every node keeps its character span in the source text so that
problems point at the right column.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Iterator, Mapping, Union

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from pydantic import GetCoreSchemaHandler
from pydantic_core import PydanticCustomError, core_schema

from pathways.definition.durations import Duration
from pathways.definition.textvalue import text_value_schema

GRAMMAR = r"""
?start: or_expr

?or_expr: and_expr
        | or_expr "or" and_expr          -> or_
?and_expr: not_expr
         | and_expr "and" not_expr       -> and_
?not_expr: "not" not_expr                -> not_
         | comparison
?comparison: sum
           | sum COMPOP sum              -> compare
           | sum "in" list               -> in_
           | sum "not" "in" list         -> not_in
?sum: product
    | sum ADDOP product                  -> arith
?product: unary
        | product MULOP unary            -> arith
?unary: "-" unary                        -> neg
      | atom
?atom: NUMBER UNIT?                      -> number
     | DURATION                          -> duration
     | STRING                            -> string
     | "true"                            -> true
     | "false"                           -> false
     | NAME "(" [arguments] ")"          -> call
     | NAME                              -> name
     | "(" or_expr ")"
list: "[" [literal ("," literal)* ","?] "]"
?literal: NUMBER UNIT?                   -> number
        | "-" NUMBER UNIT?               -> negnumber
        | STRING                         -> string
        | DURATION                       -> duration
        | "true"                         -> true
        | "false"                        -> false
arguments: or_expr ("," or_expr)*

COMPOP: "<=" | ">=" | "==" | "!=" | "<" | ">"
ADDOP: "+" | "-"
MULOP: "*" | "/"
DURATION.3: /\d+(mo|d|w|y)(?![A-Za-z0-9_])/
NUMBER.2: /\d+(\.\d+)?/
UNIT.1: "%" | /(?!(and|or|in|not)(?![A-Za-z0-9_]))(?:[A-Za-zµ]|\[[A-Za-z0-9_.]+\]|\{[^{}]*\})(?:[A-Za-z0-9µ_.\/]|\[[A-Za-z0-9_.]+\]|\{[^{}]*\})*/
NAME: /(?!(and|or|in|not|true|false)(?![A-Za-z0-9_.]))[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*/
STRING: /"[^"\n]*"/ | /'[^'\n]*'/

%import common.WS
%ignore WS
"""

FUNCTIONS = {
    # name: (arguments, meaning)
    "latest": ("fact", "the most recent value of a fact"),
    "value_ago": ("fact, window", "the most recent value at least `window` before the evaluation date"),
    "change": ("fact, window", "latest value minus the value at the start of the window"),
    "pct_change": ("fact, window", "change over the window as a percentage of the value at its start"),
    "count": ("fact, window", "how many values or events fall in the window"),
    "min": ("fact, window", "the lowest value in the window"),
    "max": ("fact, window", "the highest value in the window"),
    "days_since": ("fact", "the time since a date fact (or since the latest value of a fact)"),
    "exists": ("fact", "true when the fact has a value"),
    "missing": ("fact", "true when the fact has no value"),
}


@dataclass(frozen=True)
class Span:
    start: int
    end: int


@dataclass(frozen=True)
class Num:
    value: float
    unit: str | None
    span: Span


@dataclass(frozen=True)
class Str:
    value: str
    span: Span


@dataclass(frozen=True)
class Bool:
    value: bool
    span: Span


@dataclass(frozen=True)
class Dur:
    value: Duration
    span: Span


@dataclass(frozen=True)
class Name:
    name: str
    span: Span


@dataclass(frozen=True)
class Call:
    func: str
    args: tuple["Node", ...]
    span: Span


@dataclass(frozen=True)
class Not:
    operand: "Node"
    span: Span


@dataclass(frozen=True)
class Neg:
    operand: "Node"
    span: Span


@dataclass(frozen=True)
class BoolOp:
    op: str  # "and" | "or"
    operands: tuple["Node", ...]
    span: Span


@dataclass(frozen=True)
class Compare:
    op: str
    left: "Node"
    right: "Node"
    span: Span


@dataclass(frozen=True)
class InList:
    item: "Node"
    values: tuple["Node", ...]
    negated: bool
    span: Span


@dataclass(frozen=True)
class Arith:
    op: str
    left: "Node"
    right: "Node"
    span: Span


Node = Union[Num, Str, Bool, Dur, Name, Call, Not, Neg, BoolOp, Compare, InList, Arith]


def _span(meta: Any) -> Span:
    return Span(meta.start_pos, meta.end_pos)


@v_args(meta=True)
class _ToAst(Transformer):
    def or_(self, meta, children):
        return _flatten("or", children, _span(meta))

    def and_(self, meta, children):
        return _flatten("and", children, _span(meta))

    def not_(self, meta, children):
        return Not(children[0], _span(meta))

    def compare(self, meta, children):
        left, op, right = children
        return Compare(str(op), left, right, _span(meta))

    def in_(self, meta, children):
        return InList(children[0], tuple(children[1]), False, _span(meta))

    def not_in(self, meta, children):
        return InList(children[0], tuple(children[1]), True, _span(meta))

    def arith(self, meta, children):
        left, op, right = children
        return Arith(str(op), left, right, _span(meta))

    def neg(self, meta, children):
        operand = children[0]
        if isinstance(operand, Num):
            return Num(-operand.value, operand.unit, _span(meta))
        return Neg(operand, _span(meta))

    def number(self, meta, children):
        unit = str(children[1]) if len(children) > 1 and children[1] is not None else None
        return Num(_number(children[0]), unit, _span(meta))

    def negnumber(self, meta, children):
        unit = str(children[1]) if len(children) > 1 and children[1] is not None else None
        return Num(-_number(children[0]), unit, _span(meta))

    def duration(self, meta, children):
        return Dur(Duration.parse(str(children[0])), _span(meta))

    def string(self, meta, children):
        return Str(str(children[0])[1:-1], _span(meta))

    def true(self, meta, children):
        return Bool(True, _span(meta))

    def false(self, meta, children):
        return Bool(False, _span(meta))

    def name(self, meta, children):
        return Name(str(children[0]), _span(meta))

    def call(self, meta, children):
        func = children[0]
        args = children[1] if len(children) > 1 and children[1] is not None else ()
        return Call(str(func), tuple(args), _span(meta))

    def arguments(self, meta, children):
        return tuple(children)

    def list(self, meta, children):
        return tuple(c for c in children if c is not None)


def _number(tok: Token) -> float:
    text = str(tok)
    return float(text) if "." in text else int(text)


def _flatten(op: str, children: list, span: Span) -> BoolOp:
    operands: list = []
    for child in children:
        if isinstance(child, BoolOp) and child.op == op:
            operands.extend(child.operands)
        else:
            operands.append(child)
    return BoolOp(op, tuple(operands), span)


@lru_cache(maxsize=1)
def _parser() -> Lark:
    return Lark(GRAMMAR, parser="lalr", propagate_positions=True, maybe_placeholders=True)


class ExprSyntaxError(ValueError):
    def __init__(self, message: str, offset: int, hint: str = ""):
        super().__init__(message)
        self.message = message
        self.offset = offset
        self.hint = hint


_TOKEN_WORDS = {
    "COMPOP": "a comparison (<, <=, >, >=, ==, !=)",
    "ADDOP": "+ or -",
    "MULOP": "* or /",
    "NUMBER": "a number",
    "DURATION": "a duration such as 12w",
    "STRING": "a quoted string",
    "NAME": "a name",
    "UNIT": "a unit",
    "RPAR": "')'",
    "LPAR": "'('",
    "RSQB": "']'",
    "LSQB": "'['",
    "COMMA": "','",
    "AND": "'and'",
    "OR": "'or'",
    "NOT": "'not'",
    "IN": "'in'",
    "TRUE": "'true'",
    "FALSE": "'false'",
    "MINUS": "'-'",
    "$END": "the end",
}


def _describe_expected(expected: set[str]) -> str:
    words = sorted({_TOKEN_WORDS.get(e, e.lower()) for e in expected})
    if len(words) > 6:
        return ", ".join(words[:6]) + ", ..."
    return ", ".join(words)


def parse(text: str) -> Node:
    """Parse an expression; raise ExprSyntaxError with a character offset on bad input."""
    if not text.strip():
        raise ExprSyntaxError("empty expression", 0, "write a condition such as `age_years >= 18`")
    if "==" not in text and "=" in text.replace("<=", "").replace(">=", "").replace("!=", ""):
        offset = _single_equals(text)
        if offset is not None:
            raise ExprSyntaxError("'=' is not a comparison", offset, "write '==' to compare")
    try:
        tree = _parser().parse(text)
    except UnexpectedEOF as exc:
        raise ExprSyntaxError("the expression ends too early", len(text), f"expected {_describe_expected(set(exc.expected))}") from None
    except UnexpectedToken as exc:
        expected = f"expected {_describe_expected(set(exc.expected))}"
        if exc.token.type == "$END":
            raise ExprSyntaxError("the expression ends too early", len(text), expected) from None
        raise ExprSyntaxError(f"unexpected '{exc.token}'", exc.token.start_pos or 0, expected) from None
    except UnexpectedCharacters as exc:
        char = text[exc.pos_in_stream] if exc.pos_in_stream < len(text) else ""
        hint = "use 'and', 'or', 'not'" if char in "&|!" else ""
        raise ExprSyntaxError(f"unexpected character '{char}'", exc.pos_in_stream, hint) from None
    except UnexpectedInput as exc:  # pragma: no cover - other lark input errors
        raise ExprSyntaxError(str(exc).splitlines()[0], getattr(exc, "pos_in_stream", 0) or 0) from None
    return _ToAst().transform(tree)


def _single_equals(text: str) -> int | None:
    in_string: str | None = None
    for i, c in enumerate(text):
        if in_string:
            if c == in_string:
                in_string = None
            continue
        if c in "\"'":
            in_string = c
        elif c == "=" and (i == 0 or text[i - 1] not in "<>!=") and (i + 1 >= len(text) or text[i + 1] != "="):
            return i
    return None


def walk(node: Node) -> Iterator[Node]:
    """Every node of the tree, parents before children."""
    yield node
    for child in children(node):
        yield from walk(child)


def children(node: Node) -> tuple[Node, ...]:
    if isinstance(node, (Not, Neg)):
        return (node.operand,)
    if isinstance(node, BoolOp):
        return node.operands
    if isinstance(node, (Compare, Arith)):
        return (node.left, node.right)
    if isinstance(node, InList):
        return (node.item, *node.values)
    if isinstance(node, Call):
        return node.args
    return ()


def names(node: Node) -> list[Name]:
    return [n for n in walk(node) if isinstance(n, Name)]


def constant_value(node: Node, parameters: Mapping[str, object], durations: bool = False) -> float | None:
    """The number a constant side of a comparison stands for: a literal, a numeric parameter (by
    its value) or minus one of those; with ``durations`` also a duration, in (approximate) days.
    None for anything else. The one evaluator of constants for the boundary checks
    (definition/bounds.py, with durations) and the assurance cases' thresholds (rules/cases.py,
    runtime/plan_cases.py: numbers and parameters only)."""
    if isinstance(node, Num):
        return float(node.value)
    if durations and isinstance(node, Dur):
        return node.value.approx_days
    if isinstance(node, Neg):
        inner = constant_value(node.operand, parameters, durations)
        return None if inner is None else -inner
    if isinstance(node, Name) and node.name in parameters:
        value = parameters[node.name]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


@dataclass(frozen=True)
class Expr:
    """An expression as written (``text``) with its parsed tree (``ast``); equal by text."""

    text: str
    ast: Node

    @classmethod
    def parse(cls, text: str) -> "Expr":
        return cls(text, parse(text))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Expr) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)

    def __str__(self) -> str:
        return self.text

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        def from_str(value: str) -> Expr:
            try:
                return cls.parse(value)
            except ExprSyntaxError as exc:
                raise PydanticCustomError(
                    "expr_syntax", "{message}", {"message": exc.message, "offset": exc.offset, "hint": exc.hint}
                ) from None

        return text_value_schema(cls, from_str, "expr")


_PRECEDENCE = {"or": 1, "and": 2, "not": 3, "compare": 4, "+": 5, "-": 5, "*": 6, "/": 6, "neg": 7, "atom": 8}


def _level(node: Node) -> int:
    if isinstance(node, BoolOp):
        return _PRECEDENCE[node.op]
    if isinstance(node, Not):
        return _PRECEDENCE["not"]
    if isinstance(node, (Compare, InList)):
        return _PRECEDENCE["compare"]
    if isinstance(node, Arith):
        return _PRECEDENCE[node.op]
    if isinstance(node, Neg) or (isinstance(node, Num) and node.value < 0):
        return _PRECEDENCE["neg"]
    return _PRECEDENCE["atom"]


def unparse(node: Node) -> str:
    """Text that parses back to the same tree (parenthesised where precedence needs it)."""

    def wrap(child: Node, minimum: int) -> str:
        text = unparse(child)
        return f"({text})" if _level(child) < minimum else text

    if isinstance(node, Num):
        value = node.value
        text = repr(value) if isinstance(value, float) else str(value)
        return f"{text} {node.unit}" if node.unit else text
    if isinstance(node, Str):
        return f'"{node.value}"' if '"' not in node.value else f"'{node.value}'"
    if isinstance(node, Bool):
        return "true" if node.value else "false"
    if isinstance(node, Dur):
        return str(node.value)
    if isinstance(node, Name):
        return node.name
    if isinstance(node, Call):
        return f"{node.func}({', '.join(unparse(a) for a in node.args)})"
    if isinstance(node, Not):
        return f"not {wrap(node.operand, _PRECEDENCE['not'])}"
    if isinstance(node, Neg):
        return f"-{wrap(node.operand, _PRECEDENCE['neg'] + 1)}"
    if isinstance(node, BoolOp):
        level = _PRECEDENCE[node.op]
        return f" {node.op} ".join(wrap(o, level + 1) for o in node.operands)
    if isinstance(node, Compare):
        level = _PRECEDENCE["compare"]
        return f"{wrap(node.left, level + 1)} {node.op} {wrap(node.right, level + 1)}"
    if isinstance(node, InList):
        values = ", ".join(unparse(v) for v in node.values)
        return f"{wrap(node.item, _PRECEDENCE['compare'] + 1)} {'not in' if node.negated else 'in'} [{values}]"
    if isinstance(node, Arith):
        level = _PRECEDENCE[node.op]
        # left-associative: the right operand needs parentheses at equal precedence
        return f"{wrap(node.left, level)} {node.op} {wrap(node.right, level + 1)}"
    raise TypeError(f"not an expression node: {node!r}")
