"""The audit vocabulary is defined once (src/pathways/store/vocabulary.py): every action an audit
entry is written with is one of its actions and is described in docs/audit.md, and no module
outside it spells an action out again."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from pathways.store.vocabulary import ACTIONS, DECISION_ACTION, DECISION_KIND, PLAN_ACTION, Action

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "pathways"

# where an action is still spelt as a literal: the schema migrations are history (a migration
# never changes once released)
LITERALS_ALLOWED = {"store/migrations"}

# the calls whose action is computed, and where its values come from
COMPUTED = {
    ("store/db.py", "DECISION_ACTION.get(e.kind, f'decision.{e.kind}')"),
    ("store/plans.py", "PLAN_ACTION[kind]"),
    ("store/previews.py", "action"),  # from orchestration/migrate.py: Action.ENROLLMENT_MIGRATED / _REVERTED
}


def _sources():
    for path in sorted(SRC.rglob("*.py")):
        yield path.relative_to(SRC).as_posix(), path.read_text(encoding="utf-8")


def _records(tree: ast.AST):
    """The action argument of every Record(...) / audit.Record(...) call."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
            if name != "Record":
                continue
            if node.args:
                yield node.args[0]
            else:
                yield next(k.value for k in node.keywords if k.arg == "action")


def test_every_action_written_is_in_the_vocabulary():
    seen, unknown, computed = set(), [], set()
    for rel, text in _sources():
        if rel == "store/vocabulary.py":
            continue
        for arg in _records(ast.parse(text)):
            if isinstance(arg, ast.Constant):
                seen.add(arg.value)
                if arg.value not in ACTIONS:
                    unknown.append(f"{rel}:{arg.lineno}: {arg.value!r}")
            elif isinstance(arg, ast.Attribute) and isinstance(arg.value, ast.Name) and arg.value.id == "Action":
                if not hasattr(Action, arg.attr):
                    unknown.append(f"{rel}:{arg.lineno}: Action.{arg.attr}")
                seen.add(getattr(Action, arg.attr, None))
            else:
                computed.add((rel, ast.unparse(arg)))
    assert unknown == []
    assert computed == COMPUTED  # a new computed action: list it here, with where its values come from
    assert len(seen) > 15  # the scan finds the calls


def test_every_runtime_event_and_plan_decision_has_its_action():
    kinds = {"due", "gated"}  # a step's status, from a variable
    for node in ast.walk(ast.parse((SRC / "runtime" / "core.py").read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Event":
            kinds |= {c.value for c in ast.walk(node.args[0]) if isinstance(c, ast.Constant)}
    assert {"escalated", "done_before", "goal_not_measured", "resolved", "not_indicated", "goal_missed"} <= kinds
    assert sorted(kinds - set(DECISION_ACTION)) == []  # else stored as an undocumented "decision.KIND"
    assert set(DECISION_ACTION.values()) <= ACTIONS and set(PLAN_ACTION.values()) <= ACTIONS
    assert {DECISION_ACTION[k]: k for k in DECISION_ACTION} == DECISION_KIND


def test_no_module_spells_an_action_out_again():
    repeated = []
    for rel, text in _sources():
        if rel == "store/vocabulary.py" or any(rel.startswith(prefix) for prefix in LITERALS_ALLOWED):
            continue
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Constant) and node.value in ACTIONS:
                repeated.append(f"{rel}:{node.lineno}: {node.value!r}")
    assert repeated == []


def test_every_action_is_documented():
    documented = set(re.findall(r"`([a-z_]+(?:\.[a-z_]+)?)`", (ROOT / "docs" / "audit.md").read_text(encoding="utf-8")))
    assert sorted(ACTIONS - documented) == []
