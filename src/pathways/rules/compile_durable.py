"""Compile inlined expression trees to durable-rules JSON rulesets. Pure: no durable import.

Three-valued logic on a two-valued engine: each condition becomes two rules, one that fires
when the condition is known to be true and one when it is known to be false. When neither
fires, a value it needs is missing. Negation swaps the two; `and`/`or` follow Kleene's rules.

durable-rules compares a message field on the left with an expression on the right, so a
comparison whose left side is not a plain field is rewritten against a constant field
``__zero`` (``l > r`` holds exactly when ``0 > r - l``). Fields that a comparison reads must
exist (``$ex``), so a missing value never takes part in a comparison.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pathways.definition import expr as E
from pathways.rules.plan import ARITH, COMPARE, NOT_A_LITERAL, atom_of, literal_value

ZERO = "__zero"
ALWAYS: dict = {ZERO: 0}
NEVER: dict = {ZERO: 1}  # never sent to the engine: rules that can never fire are left out


def presence(key: str) -> str:
    """The flag field saying whether ``key`` has a value. durable-rules 2.0.28 hangs on rules
    that test absence with ``$nex``, so presence is an explicit true/false field instead."""
    return f"has__{key}"

_OPS = {"<": "$lt", "<=": "$lte", ">": "$gt", ">=": "$gte", "==": "$eq", "!=": "$neq"}
_NEGATED = {"<": ">=", "<=": ">", ">": "<=", ">=": "<", "==": "!=", "!=": "=="}
_FLIPPED = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}
_ARITH = {"+": "$add", "-": "$sub", "*": "$mul", "/": "$div"}



class Unsupported(ValueError):
    pass


class TooManyClauses(Unsupported):
    pass


class _MissingValue(Exception):
    """A constant subexpression without a value (division by zero): the comparison is missing."""


def _keys(node: E.Node) -> list[str]:
    atom = atom_of(node)
    if atom is not None:
        return [atom.key]
    keys: list[str] = []
    for child in E.children(node):
        keys.extend(k for k in _keys(child) if k not in keys)
    return keys


def _rvalue(node: E.Node) -> Any:
    if isinstance(node, (E.Arith, E.Neg)) and _constant(node):
        # the engine does not compute arithmetic over constants alone (property test): fold it
        value = _constant_value(node)
        if value is None:
            raise _MissingValue()
        return value
    value = literal_value(node)
    if value is not NOT_A_LITERAL:
        return value
    atom = atom_of(node)
    if atom is not None:
        return {"$m": atom.key}
    if isinstance(node, E.Neg):
        return {"$mul": {"$l": -1, "$r": _rvalue(node.operand)}}
    if isinstance(node, E.Arith):
        left = _rvalue(node.left)
        if node.op == "/":  # durable-rules divides two whole numbers as whole numbers (1 / 2 = 0): a real division
            # (a constant becomes a decimal number; the engine computes nothing over constants alone)
            left = {"$mul": {"$l": 1.0, "$r": left}} if isinstance(left, dict) else float(left)
        return {_ARITH[node.op]: {"$l": left, "$r": _rvalue(node.right)}}
    raise Unsupported(f"cannot compile {E.unparse(node)} as a value")


def _divisors_nonzero(node: E.Node) -> list[dict]:
    guards = []
    for sub in E.walk(node):
        if isinstance(sub, E.Arith) and sub.op == "/":
            atom = atom_of(sub.right)
            if atom is not None:
                guards.append({"$neq": {atom.key: 0}})
            elif not isinstance(sub.right, E.Num):
                raise Unsupported("division by an expression other than a fact or a number")
            elif sub.right.value == 0:
                return [NEVER]
    return guards


def _compare(op: str, left: E.Node, right: E.Node) -> dict:
    left_atom, right_atom = atom_of(left), atom_of(right)
    if left_atom is None and right_atom is not None:
        return _compare(_FLIPPED[op], right, left)
    if left_atom is not None:
        field, value = left_atom.key, _rvalue(right)
        if op == "==":
            return {field: value} if not isinstance(value, dict) else {"$eq": {field: value}}
        return {_OPS[op]: {field: value}}
    # neither side is a plain field: compare 0 with (right - left)
    difference = {"$sub": {"$l": _rvalue(right), "$r": _rvalue(left)}}
    return {_OPS[op]: {ZERO: difference}}


def _constant_value(node: E.Node) -> Any:
    if isinstance(node, E.Neg):
        value = _constant_value(node.operand)
        return None if value is None else -value
    if isinstance(node, E.Arith):
        left, right = _constant_value(node.left), _constant_value(node.right)
        if left is None or right is None or (node.op == "/" and right == 0):
            return None
        return ARITH[node.op](left, right)
    return _rvalue(node)


def _constant(node: E.Node) -> bool:
    return not _keys(node)


MAX_CLAUSES = 512
MAX_TESTS = 30  # durable-rules 2.0.28 allows 32 expressions in a rule (MAX_SEQUENCE_EXPRESSIONS)

Clause = tuple  # a conjunction of atomic tests (dicts); () always holds


def clauses(node: E.Node, want: bool) -> list[Clause]:
    """The condition "node is known to be ``want``" in disjunctive normal form.

    durable-rules caps one rule at 32 expressions, so a condition becomes one small rule per
    clause; all of them record the same outcome. A field compared with a constant needs no
    presence test (measured on durable-rules 2.0.28: no such test, $neq included, matches a
    message without the field); a comparison that reads other fields does, since arithmetic
    over an absent field can match.
    """
    if isinstance(node, E.Bool):
        return [()] if node.value == want else []
    if isinstance(node, E.Not):
        return clauses(node.operand, not want)
    if isinstance(node, E.BoolOp):
        parts = [clauses(o, want) for o in node.operands]
        if (node.op == "and") == want:  # all parts must hold: combine their clauses
            combined: list[Clause] = [()]
            for part in parts:
                combined = _dedupe([a + b for a in combined for b in part])
                if len(combined) > MAX_CLAUSES:
                    raise TooManyClauses(f"the condition {E.unparse(node)[:80]}... needs over {MAX_CLAUSES} rules")
            return combined
        return _dedupe([c for part in parts for c in part])
    if isinstance(node, E.Call) and node.func in ("exists", "missing"):
        atom = atom_of(node.args[0])
        if atom is None:
            raise Unsupported(f"{node.func} of an expression")
        return [({presence(atom.key): (node.func == "exists") == want},)]
    if isinstance(node, E.Compare):
        if _constant(node):
            left, right = _constant_value(node.left), _constant_value(node.right)
            if left is None or right is None:  # e.g. division by zero: the comparison is missing
                return []
            return [()] if COMPARE[node.op](left, right) == want else []
        guards = _divisors_nonzero(node)
        if NEVER in guards:
            return []
        op = node.op if want else _NEGATED[node.op]
        try:
            test = _compare(op, node.left, node.right)
        except _MissingValue:
            return []
        if "$m" in json.dumps(test):
            # a comparison that reads other fields (or arithmetic over them) can match with a
            # field absent (found by the property test): require every field it reads
            guards = [{presence(k): True} for k in _keys(node)] + guards
        return [(*guards, test)]
    if isinstance(node, E.InList):
        member = want != node.negated
        if member:
            return [(_compare("==", node.item, v),) for v in node.values]
        return [tuple(_compare("!=", node.item, v) for v in node.values)]
    atom = atom_of(node)
    if atom is not None:  # a boolean fact as a condition
        return [({atom.key: want},)]
    raise Unsupported(f"cannot compile {E.unparse(node)} as a condition")


def _dedupe(found: list[Clause]) -> list[Clause]:
    """Drop repeated tests, repeated clauses, and clauses implied by a smaller one
    (absorption: ``a or (a and b)`` is ``a``), keeping the first-seen order."""
    keyed: list[tuple[frozenset[str], Clause]] = []
    for clause in found:
        tests = {json.dumps(t, sort_keys=True): t for t in clause}
        keyed.append((frozenset(tests), tuple(tests.values())))
    keyed.sort(key=lambda item: len(item[0]))
    kept: list[tuple[frozenset[str], Clause]] = []
    for keys, clause in keyed:
        if not any(other <= keys for other, _ in kept):
            kept.append((keys, clause))
    return [clause for _, clause in kept]


def _condition(clause: Clause) -> dict:
    if not clause:
        return ALWAYS
    if len(clause) > MAX_TESTS:
        raise Unsupported(f"a rule with {len(clause)} tests (durable-rules allows {MAX_TESTS})")
    return clause[0] if len(clause) == 1 else {"$and": list(clause)}


SENTINEL = "alive"  # a rule that always matches: every assert is handled and its session deleted


@dataclass(frozen=True)
class Split:
    """How a condition's value combines from pieces the engine decides (Kleene logic)."""

    op: str  # "piece" | "and" | "or" | "not"
    parts: tuple  # a piece id for "piece", else Splits

    def value(self, known: dict[str, bool]) -> bool | None:
        if self.op == "piece":
            return known.get(self.parts[0])
        values = [part.value(known) for part in self.parts]
        if self.op == "not":
            return None if values[0] is None else not values[0]
        if self.op == "and":
            return False if False in values else (None if None in values else True)
        return True if True in values else (None if None in values else False)


def split(piece_id: str, tree: E.Node, pieces: dict[str, E.Node]) -> Split:
    """Pieces small enough for the engine. A condition whose normal form would need too many
    rules (the negation of a wide 'or' of 'and's) is split at its 'and'/'or'/'not' nodes; the
    engine still decides every piece, and the pieces combine by the same three-valued rules."""
    try:
        clauses(tree, True), clauses(tree, False)
    except TooManyClauses:
        if isinstance(tree, E.Not):
            return Split("not", (split(f"{piece_id}~", tree.operand, pieces),))
        if isinstance(tree, E.BoolOp):
            return Split(tree.op, tuple(split(f"{piece_id}.{i}", o, pieces) for i, o in enumerate(tree.operands)))
        raise
    pieces[piece_id] = tree
    return Split("piece", (piece_id,))


def ruleset(conditions: dict[str, E.Node]) -> dict[str, dict]:
    """Rule definitions without actions: ``{rule_name: {"all": [{"m": condition}]}}``.

    Rule names are ``c<n>__<T|F>__<k>``: condition (piece) number n, the outcome it proves,
    clause k. Conditions that can never be true (or false) get no rule for that outcome.
    """
    rules: dict[str, dict] = {SENTINEL: {"all": [{"m": ALWAYS}]}}
    for index, tree in enumerate(conditions.values()):
        for suffix, want in (("T", True), ("F", False)):
            for k, clause in enumerate(clauses(tree, want)):
                rules[f"c{index}__{suffix}__{k}"] = {"all": [{"m": _condition(clause)}]}
    return rules
