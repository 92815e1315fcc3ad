"""Values of facts and derived facts at an evaluation date.

Windows count back from the evaluation date and include both ends; months and years are
30.4375 and 365.25 days (the same approximation in every evaluator, so they agree).
- latest(f): the last value on or before the date; value_ago(f, w): the last value on or
  before date - w; change(f, w) and pct_change(f, w): last minus first value inside the window
  (needs two values there); count(f, w): values or events inside the window (0 when none);
  min/max(f, w): over the window; days_since(f): days since a date fact (or the last value);
  age: whole years since a date fact.
- Diagnoses and medications are closed-world: no active one on the date means false. Other
  facts without a value are missing (None), never a default.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from pathways.definition.durations import Duration
from pathways.definition.model import Derived, Fact
from pathways.facts.resolve import Point, Timeline

CLOSED_WORLD_SOURCES = {"condition", "medication"}


@dataclass(frozen=True)
class Atom:
    """One value an expression reads: a fact, or a function of a fact over a window."""

    func: str  # "value" for a plain fact or derived fact name, else a function name
    fact: str
    window: Duration | None = None

    def __hash__(self) -> int:  # atoms key every reader's cache: hash once, not per lookup
        try:
            return self.__dict__["_hash"]
        except KeyError:
            value = hash((self.func, self.fact, self.window))
            object.__setattr__(self, "_hash", value)
            return value

    def __getstate__(self) -> dict:  # the cached hash is this process's (string hashes differ per process)
        return {k: v for k, v in self.__dict__.items() if k not in ("_hash", "_key")}

    @property
    def key(self) -> str:
        """A flat field name (durable-rules reads nested names at dots)."""
        try:
            return self.__dict__["_key"]
        except KeyError:
            base = self.fact.replace(".", "__")
            key = base if self.func == "value" else f"{self.func}__{base}" + (f"__{self.window}" if self.window else "")
            object.__setattr__(self, "_key", key)
            return key

    def __str__(self) -> str:
        if self.func == "value":
            return self.fact
        return f"{self.func}({self.fact}{', ' + str(self.window) if self.window else ''})"


@dataclass(frozen=True)
class Reading:
    """An atom's value with what it was read from, for explanations."""

    value: Any  # None when missing
    observed: dt.date | None = None
    detail: str = ""


MISSING = Reading(None)


def _window_start(at: dt.date, window: Duration) -> dt.date:
    return at - dt.timedelta(days=int(window.approx_days))


def _upto(series: list[Point], at: dt.date) -> list[Point]:
    return [p for p in series if p.at <= at]


def _in_window(series: list[Point], at: dt.date, window: Duration) -> list[Point]:
    start = _window_start(at, window)
    return [p for p in series if start <= p.at <= at]


def _age(born: dt.date, at: dt.date) -> int:
    return at.year - born.year - ((at.month, at.day) < (born.month, born.day))


_INTERNED: dict[Atom, Atom] = {}


def interned(atom: Atom) -> Atom:
    """One object per distinct atom: readers' caches then find it by identity, hashed once."""
    return _INTERNED.setdefault(atom, atom)


_DERIVED: dict[int, tuple[Derived, Atom]] = {}


def _derived_atom(d: Derived) -> Atom:
    """The atom a derived fact reads, one object per definition (its hash is computed once)."""
    known = _DERIVED.get(id(d))
    if known is None or known[0] is not d:
        known = _DERIVED[id(d)] = (d, interned(Atom("latest" if d.function == "latest" else d.function, d.of, d.window)))
    return known[1]


class Reader:
    """Reads atoms for one patient at one date; caches what it computed."""

    def __init__(self, timeline: Timeline, facts: dict[str, Fact], derived: dict[str, Derived], at: dt.date):
        self.timeline, self.facts, self.derived, self.at = timeline, facts, derived, at
        self.cache: dict[Atom, Reading] = {}

    def read(self, atom: Atom) -> Reading:
        try:
            return self.cache[atom]
        except KeyError:
            reading = self.cache[atom] = self._read(atom)
            return reading

    def _read(self, atom: Atom) -> Reading:
        if atom.func == "value" and atom.fact in self.derived:
            return self.read(_derived_atom(self.derived[atom.fact]))
        if atom.func in ("value", "latest"):
            return self._latest(atom.fact, self.at)
        if atom.func == "value_ago":
            return self._latest(atom.fact, _window_start(self.at, atom.window))
        if atom.func == "age":
            born = self._latest(atom.fact, self.at)
            if born.value is None:
                return MISSING
            return Reading(_age(born.value, self.at), None, f"from {atom.fact}")
        if atom.func == "days_since":
            last = self._latest(atom.fact, self.at)
            if last.value is None:
                return MISSING
            since = last.value if isinstance(last.value, dt.date) else last.observed
            return Reading(float((self.at - since).days), since, f"{atom.fact} on {since}")
        series = self.timeline.points.get(atom.fact, [])
        inside = _in_window(series, self.at, atom.window)
        if atom.func == "count":
            intervals = self.timeline.intervals.get(atom.fact, [])
            start = _window_start(self.at, atom.window)
            onsets = [i for i in intervals if i.start is not None and start <= i.start <= self.at]
            return Reading(len(inside) + len(onsets), None, f"{len(inside) + len(onsets)} in {atom.window}")
        if not inside:
            return MISSING
        if atom.func in ("min", "max"):
            pick = (min if atom.func == "min" else max)(inside, key=lambda p: p.value)
            return Reading(pick.value, pick.at, f"{atom.func} of {len(inside)} in {atom.window}")
        if atom.func in ("change", "pct_change"):
            if len(inside) < 2:
                return MISSING
            first, last = inside[0], inside[-1]
            unit = self.facts[atom.fact].unit or ""
            detail = f"{first.value:g} {unit} on {first.at} -> {last.value:g} {unit} on {last.at}".replace("  ", " ")
            if atom.func == "change":
                return Reading(last.value - first.value, last.at, detail)
            if first.value == 0:
                return MISSING
            return Reading((last.value - first.value) / first.value * 100.0, last.at, detail)
        raise ValueError(f"unknown function {atom.func}")

    def _latest(self, name: str, at: dt.date) -> Reading:
        fact = self.facts.get(name)
        if fact is not None and fact.type == "boolean" and fact.source in CLOSED_WORLD_SOURCES and name not in self.timeline.points:
            active = [i for i in self.timeline.intervals.get(name, []) if i.active(at)]
            if active:
                return Reading(True, active[0].start, f"active since {active[0].start or 'unknown'}")
            return Reading(False, None, "not recorded as active")
        series = _upto(self.timeline.points.get(name, []), at)
        if not series:
            return MISSING
        last = series[-1]
        return Reading(last.value, last.at, last.original)
