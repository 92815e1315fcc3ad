"""The only module that imports durable-rules. It owns the library's sharp edges:

- The host is not thread-safe while it is created: one host per process, created under a lock
  (``prepare()`` creates it up front, before any worker thread starts).
- Its two background dispatcher threads (timers, async actions) crash the process at random:
  our host subclass does not start them. We use neither timers nor asynchronous actions.
- An action with two parameters is silently treated as asynchronous and blocks its session:
  every action here takes exactly one.
- Rulesets cannot be registered twice: the ruleset name carries the pathway id, version and a
  content hash, and a registry keeps each name once.
- Live sessions are capped (about 1,024; past that the process is corrupted) and memory grows
  unless state is deleted; one session also wrongly raised MessageObservedException after
  about 11,500 facts: every evaluation uses a fresh session id, asserts one fact, and deletes
  the session's state before returning, so at most one session is ever live.
- A rule testing absence (``$nex``) hangs the engine: the compiler tests presence through
  explicit ``has__<field>`` flags in the message instead.
- ``post()`` fires one rule per event; ``assert_fact`` fires every matching rule: we assert.
- An unmatched fact raises MessageNotHandledException ("no rule matched"), yet the engine
  keeps a session for it that cannot be deleted safely; about 1,000 of those and it raises
  MemoryError (measured). Every ruleset therefore has a sentinel rule that always matches, so
  every assert is handled and its session deleted.
- One rule may hold at most 32 expressions: the compiler splits conditions into clauses.
- Its C core holds the GIL and threads sharing a session lose actions: calls into the engine
  are serialised by one lock, and sessions are never shared.

Speed: the library's Python layer parses the whole message and rewrites the session state for
every action that fires (about 16 per patient here). We register rulesets through the host but
run them on its C engine directly: assert the fact, walk the queued actions reading only the
rule name, complete each, delete the state. Measured on the diabetes ruleset: 1,475 patients/s
through the Python layer, 4,816/s this way, with identical decisions (tests compare both).
"""

from __future__ import annotations

import itertools
import json
import threading
from typing import Any

_HOST_LOCK = threading.Lock()
_CALL_LOCK = threading.Lock()
_host = None


def _new_host():
    from durable import engine

    class QuietHost(engine.Host):
        def _run(self):  # no dispatcher threads: they crash the process at random
            self._d_timer = None
            self._t_timer = None

    return QuietHost(), engine


def prepare() -> None:
    """Create the process's host now (call before starting worker threads)."""
    _get_host()


def _get_host():
    global _host
    if _host is None:
        with _HOST_LOCK:
            if _host is None:
                _host = _new_host()
    return _host


def _ignore(c):  # the sentinel's action (one parameter)
    return None


class CompiledRuleset:
    """A registered ruleset whose rules report ``(condition id, true|false)``."""

    def __init__(self, name: str, rules: dict[str, dict], condition_ids: list[str]):
        self.name = name
        self.condition_ids = condition_ids
        self._results: dict[str, dict[str, bool]] = {}
        self._sids = itertools.count(1)
        host, _ = _get_host()
        definition: dict[str, dict] = {}
        for rule_name, rule in rules.items():
            if "__" not in rule_name:  # the sentinel
                definition[rule_name] = {**rule, "run": _ignore}
                continue
            index, outcome, _ = rule_name[1:].split("__")
            definition[rule_name] = {**rule, "run": self._action(condition_ids[int(index)], outcome == "T")}
        with _CALL_LOCK:
            host.register_rulesets({name: definition})
        self.live_sessions = 0
        self._handle = None
        self.fields = _fields(rules)

    def _action(self, condition_id: str, outcome: bool):
        results = self._results

        def record(c):  # exactly one parameter: two would make it asynchronous
            results[c.m.sid][condition_id] = outcome

        return record

    def evaluate(self, message: dict[str, Any]) -> dict[str, bool]:
        """Condition id -> true/false for every condition that is known; missing ones absent."""
        import durable_rules_engine as core

        host, _ = _get_host()
        handle = self._handle or host.get_ruleset(self.name)._handle
        self._handle = handle
        ids = self.condition_ids
        with _CALL_LOCK:
            sid = f"s{next(self._sids)}"
            fact = {**message, "sid": sid, "__zero": 0}
            code, state = core.assert_fact(handle, json.dumps(fact))
            outcomes: dict[str, bool] = {}
            if code == 1:  # cannot happen with the sentinel; never delete such a session
                raise RuntimeError("durable-rules matched no rule, not even the sentinel")
            if code != 0:
                raise RuntimeError(f"durable-rules answered {code} for a fresh session")
            self.live_sessions += 1
            try:
                started = core.start_action_for_state(handle, state)
                text = started[1] if started else None
                while text:
                    rule = text[2 : text.index('"', 2)]  # '{"c3__T__0":{...}}' -> c3__T__0
                    if "__" in rule:
                        index, outcome, _ = rule[1:].split("__")
                        outcomes[ids[int(index)]] = outcome == "T"
                    text = core.complete_and_start_action(handle, state)
            finally:
                core.delete_state(handle, sid)
                self.live_sessions -= 1
            return outcomes

    def evaluate_through_library(self, message: dict[str, Any]) -> dict[str, bool]:
        """The same through durable-rules' own Python layer (for tests of equivalence)."""
        host, engine = _get_host()
        with _CALL_LOCK:
            sid = f"s{next(self._sids)}"
            fact = {**message, "sid": sid, "__zero": 0}
            self._results[sid] = {}
            try:
                host.assert_fact(self.name, fact)
            except engine.MessageNotHandledException:
                # No rule matched: every condition is missing. The engine made no session, and
                # delete_state on a session it never made kills the process (measured).
                return self._results.pop(sid)
            self.live_sessions += 1
            host.delete_state(self.name, sid)
            self.live_sessions -= 1
            return self._results.pop(sid)


def _fields(rules: dict[str, dict]) -> frozenset[str]:
    """Message fields the rules read: the rest of a message is not sent to the engine."""
    found: set[str] = set()

    def walk(node: Any, key_is_field: bool) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "$m":
                    found.add(value)
                elif not key.startswith("$"):
                    found.add(key)
                    walk(value, False)
                else:
                    walk(value, True)
        elif isinstance(node, list):
            for item in node:
                walk(item, key_is_field)

    for rule in rules.values():
        walk(rule["all"], True)
    found.discard("m")
    return frozenset(found)


_REGISTRY: dict[str, CompiledRuleset] = {}
_REGISTRY_LOCK = threading.Lock()


def ruleset(name: str, rules: dict[str, dict], condition_ids: list[str]) -> CompiledRuleset:
    """The registered ruleset of this name, registering it the first time only."""
    with _REGISTRY_LOCK:
        if name not in _REGISTRY:
            _REGISTRY[name] = CompiledRuleset(name, rules, condition_ids)
        return _REGISTRY[name]
