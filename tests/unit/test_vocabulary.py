"""The audit vocabulary is defined once (src/pathways/store/vocabulary.py): every action an audit
entry is written with is one of its actions and is described in docs/audit.md, and no module
outside it spells an action out again; every payload key read (the views, the audit commands,
orchestration) is one of its keys and is written somewhere, and the modules that may import it
spell none out again."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from pathways.store.vocabulary import ACTIONS, DECISION_ACTION, DECISION_KIND, KEYS, PLAN_ACTION, Action, Key

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "pathways"

# where an action is still spelt as a literal: the schema migrations are history (a migration
# never changes once released)
LITERALS_ALLOWED = {"store/migrations"}

# the calls whose action is computed, and where its values come from
COMPUTED = {
    ("store/rows.py", "DECISION_ACTION.get(e.kind, f'decision.{e.kind}')"),
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


# -- payload keys -------------------------------------------------------------------------

# below the store, keys are spelt out (the runtime and the planner may not import the store): every
# dict they build may become a decision's detail or a plan decision's payload
SPELT_BELOW = ("runtime/", "rules/", "store/migrations/")


def _key(node: ast.AST) -> str | None:
    """The key a node names: a string, or ``Key.NAME`` (an unknown name as ``Key.NAME?``)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "Key":
        return getattr(Key, node.attr, f"Key.{node.attr}?")
    return None


def _is_payload(node: ast.AST, aliases: set[str]) -> bool:
    """An entry's payload: ``x["payload"]``, a call of a ``*payload`` function, or a name bound to either."""
    if isinstance(node, ast.Name):
        return node.id in aliases
    if isinstance(node, ast.Subscript):
        return isinstance(node.slice, ast.Constant) and node.slice.value == "payload"
    if isinstance(node, ast.Call):
        func = node.func
        return (func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")).endswith("payload")
    return False


def _aliases(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                pairs = (zip(target.elts, node.value.elts) if isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple)
                         else [(target, node.value)])
                names |= {t.id for t, v in pairs if isinstance(t, ast.Name) and _is_payload(v, set())}
    return names


def _payload_reads(tree: ast.AST):
    """(line, key node) of every ``payload[K]`` and ``payload.get(K, ...)``."""
    aliases = _aliases(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and _is_payload(node.value, aliases):
            yield node.lineno, node.slice
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
              and _is_payload(node.func.value, aliases) and node.args):
            yield node.lineno, node.args[0]


def _payload_writes(tree: ast.AST, below: bool):
    """(line, key node) of the top-level keys of every payload written: a ``Record``'s payload, a
    dict bound to ``payload`` or ``note`` (the signed-off input), what is published, a
    ``payload.setdefault``; below the store, every dict."""
    dicts: list[ast.Dict] = []
    for node in ast.walk(tree):
        if below and isinstance(node, ast.Dict):
            dicts.append(node)
        elif isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
            if name == "setdefault" and getattr(node.func.value, "id", None) == "payload" and node.args:
                yield node.lineno, node.args[0]
            elif name == "Record":
                args = node.args[7:8] + [k.value for k in node.keywords if k.arg == "payload"]
            elif name == "publish":
                args = node.args[-1:]
            else:
                continue
            dicts += [a for a in args if isinstance(a, ast.Dict)]
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict):
            if any(isinstance(t, ast.Name) and t.id in ("payload", "note") for t in node.targets):
                dicts.append(node.value)
    for found in dicts:
        for key in found.keys:
            if key is not None:
                yield found.lineno, key


def _payload_keys():
    """(reads, writes): key -> where, over all sources; and the keys spelt out where Key.NAME belongs."""
    reads: dict[str, list[str]] = {}
    writes: dict[str, list[str]] = {}
    spelt: list[str] = []
    for rel, text in _sources():
        if rel == "store/vocabulary.py":
            continue
        tree = ast.parse(text)
        below = rel.startswith(SPELT_BELOW)
        for found, sites in ((reads, _payload_reads(tree)), (writes, _payload_writes(tree, below))):
            for line, node in sites:
                key = _key(node)
                if key is None:
                    continue
                found.setdefault(key, []).append(f"{rel}:{line}")
                if not below and isinstance(node, ast.Constant) and key in KEYS:
                    spelt.append(f"{rel}:{line}: {key!r} (Key.{key.upper()})")
    return reads, writes, spelt


# the web pages given a decision's payload as ``p`` (web/routes/audit.py)
PAYLOAD_TEMPLATES = ("audit_decision.html",)


def _template_reads() -> dict[str, list[str]]:
    reads: dict[str, list[str]] = {}
    routes = (SRC / "web" / "routes" / "audit.py").read_text(encoding="utf-8")
    for name in PAYLOAD_TEMPLATES:
        assert re.search(rf'"{re.escape(name)}".*\bp=[^,)]*\["payload"\]', routes)  # it is given the payload as p
        for n, line in enumerate((SRC / "web" / "templates" / name).read_text(encoding="utf-8").splitlines(), 1):
            for key in re.findall(r"\bp\.([a-z_]+)|\bp\[['\"]([a-z_]+)['\"]\]", line):
                reads.setdefault(key[0] or key[1], []).append(f"web/templates/{name}:{n}")
    return reads


def test_every_payload_key_read_is_in_the_vocabulary_and_written_somewhere():
    reads, writes, _ = _payload_keys()
    for key, where in _template_reads().items():
        reads.setdefault(key, []).extend(where)
    assert len(reads) > 30 and len(writes) > 60  # the scans find the reads and the writes
    assert {k: where for k, where in reads.items() if k not in KEYS} == {}  # read a new key: add it to Key
    assert {k: where for k, where in reads.items() if k not in writes} == {}  # read but nowhere written
    assert sorted(KEYS - set(writes)) == []  # a key nothing writes


def test_no_module_spells_a_payload_key_out_again():
    _, _, spelt = _payload_keys()
    assert spelt == []


def test_the_payload_scans_see_a_key_that_is_read_but_never_written():
    tree = ast.parse("def f(e):\n    p = e['payload']\n    return p.get(Key.DECIDED_ON), p['decided'], e['payload'].get('from')\n")
    assert [(line, _key(node)) for line, node in _payload_reads(tree)] == [(3, "decided_on"), (3, "decided"), (3, "from")]
    written = ast.parse("Record(Action.X, payload={Key.FROM: 1, 'to': 2})\npayload = {'preview': 3}\n")
    assert sorted(_key(node) for _, node in _payload_writes(written, below=False)) == ["from", "preview", "to"]
