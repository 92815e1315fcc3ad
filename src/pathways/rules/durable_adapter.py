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
- An unmatched fact raises MessageNotHandledException: that means "no rule matched"; the
  engine then made no session, and deleting that session would kill the process.
- One rule may hold at most 32 expressions: the compiler splits conditions into clauses.
- Its C core holds the GIL and threads sharing a session lose actions: calls into the engine
  are serialised by one lock, and sessions are never shared.
"""

from __future__ import annotations

import itertools
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
            index, outcome, _ = rule_name[1:].split("__")
            definition[rule_name] = {**rule, "run": self._action(condition_ids[int(index)], outcome == "T")}
        with _CALL_LOCK:
            host.register_rulesets({name: definition})
        self.live_sessions = 0

    def _action(self, condition_id: str, outcome: bool):
        results = self._results

        def record(c):  # exactly one parameter: two would make it asynchronous
            results[c.m.sid][condition_id] = outcome

        return record

    def evaluate(self, message: dict[str, Any]) -> dict[str, bool]:
        """Condition id -> true/false for every condition that is known; missing ones absent."""
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


_REGISTRY: dict[str, CompiledRuleset] = {}
_REGISTRY_LOCK = threading.Lock()


def ruleset(name: str, rules: dict[str, dict], condition_ids: list[str]) -> CompiledRuleset:
    """The registered ruleset of this name, registering it the first time only."""
    with _REGISTRY_LOCK:
        if name not in _REGISTRY:
            _REGISTRY[name] = CompiledRuleset(name, rules, condition_ids)
        return _REGISTRY[name]
