"""What changed between two versions of a pathway, in the pathway's own terms (not a text diff).

``diff_pathways(old, new)`` compares two loaded pathways (or bare ``PathwaySpec`` objects) and
returns one ``Change`` per thing a coordinator would name: a step added, removed or moved to
another stage; a gate, timing, discipline, financing route, output or document of a step; a
parameter's value (with its evidence); an escalation's trigger, severity, action or reopen time;
a goal's target or deadline; a rule's condition; a shared library's financing rules; the
pathway's version, title and sources. Expressions are compared by their parsed tree, so
reformatting or comments change nothing. Pure: no store, no files.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Union

from pydantic import BaseModel

from pathways.definition import expr as E
from pathways.definition.durations import Duration
from pathways.definition.loader import LoadedPathway
from pathways.definition.model import PathwaySpec

Kind = Literal["added", "removed", "changed"]

# sections in the order a coordinator reads them, with their headings
SECTIONS: dict[str, str] = {
    "metadata": "Version, title and sources",
    "indication": "Indication (who the pathway is for)",
    "steps": "Steps",
    "goals": "Goals",
    "escalations": "Escalations",
    "parameters": "Parameters (thresholds)",
    "rules": "Rules",
    "outputs": "Recorded facts (step outputs)",
    "facts": "Facts",
    "libraries": "Shared libraries (financing rules, deadlines)",
}

# how a list of entries is keyed, so that entries are matched by name and not by position
_KEYS = ("id", "fact")
_SETS = {"requires", "notify", "uses"}  # lists whose order means nothing
_FIELD_WORDS = {
    "stage": "stage", "discipline": "discipline", "financing": "financing route", "gate": "gate",
    "requires": "requires", "document": "document", "title": "title", "description": "description",
    "after": "timed from", "offset": "due after", "at": "review moments at", "every": "repeats every",
    "until": "repeats until", "trigger": "trigger", "severity": "severity", "action": "action",
    "notify": "notifies", "reopen_after": "reopens after", "target": "target", "deadline": "deadline",
    "when": "condition", "baseline": "baseline", "value": "value", "unit": "unit", "values": "allowed values",
    "type": "type", "required": "required", "range": "plausible range", "version": "version", "uses": "uses libraries",
    "exclude": "exclusion", "alternatives": "alternatives", "evidence": "evidence", "modality": "modality",
    "window": "window", "function": "function", "route": "route", "within": "due within", "owner": "owner",
}


@dataclass(frozen=True)
class Change:
    section: str  # a key of SECTIONS
    kind: Kind
    path: str  # e.g. steps.controle_kwartaal.timing.every
    old: Any  # JSON-ready: text, number, list or mapping; None when added
    new: Any  # None when removed
    sentence: str  # one line for a coordinator
    evidence: dict[str, Any] | None = None  # a parameter's evidence, old and new

    def as_json(self) -> dict[str, Any]:
        data = {"section": self.section, "kind": self.kind, "path": self.path, "old": self.old, "new": self.new,
                "sentence": self.sentence}
        if self.evidence is not None:
            data["evidence"] = self.evidence
        return data


Side = Union[LoadedPathway, PathwaySpec]


def diff_pathways(old: Side, new: Side) -> list[Change]:
    """Every change from ``old`` to ``new``, grouped by section (in ``SECTIONS`` order)."""
    before, after = _plain_side(old), _plain_side(new)
    raw: list[tuple[tuple, Kind, Any, Any]] = []
    _compare((), before, after, raw)
    context = _Context(before, after)
    changes = [context.change(path, kind, a, b) for path, kind, a, b in raw]
    order = list(SECTIONS)
    return sorted(changes, key=lambda c: order.index(c.section))  # stable: file order within a section


# -- a definition as plain, comparable data --------------------------------------------------

def _plain_side(side: Side) -> dict[str, Any]:
    if isinstance(side, LoadedPathway):
        spec, libraries = side.spec, side.libraries
    else:
        spec, libraries = side, ()
    data = _plain(spec)
    data["libraries"] = {d.model.id: _plain(d.model) for d in libraries}
    return data


def _plain(value: Any) -> Any:
    """Models as mappings (by the names authors write), expressions as their canonical text,
    lists of named entries as mappings by name; defaults kept, so writing one changes nothing."""
    if isinstance(value, E.Expr):
        return E.unparse(value.ast)
    if isinstance(value, Duration):
        return str(value)
    if isinstance(value, BaseModel):
        return {(info.alias or name): sorted(_plain(getattr(value, name))) if name in _SETS else _plain(getattr(value, name))
                for name, info in type(value).model_fields.items()}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        items = [_plain(v) for v in value]
        for key in _KEYS:
            if items and all(isinstance(i, dict) and isinstance(i.get(key), str) for i in items):
                names = [i[key] for i in items]
                if len(set(names)) == len(names):
                    return _Keyed({n: i for n, i in zip(names, items)})
        return items
    return value


class _Keyed(dict):
    """A list of named entries (steps by id, outputs by fact): compared by name, order ignored."""


def _compare(path: tuple, a: Any, b: Any, out: list) -> None:
    if a == [] and isinstance(b, _Keyed):  # no entries yet: each new one is an addition
        a = _Keyed()
    if b == [] and isinstance(a, _Keyed):
        b = _Keyed()
    if isinstance(a, dict) and isinstance(b, dict) and not _is_text(a):
        for key in a:
            if key not in b:
                out.append(((*path, key), "removed", a[key], None))
            else:
                _compare((*path, key), a[key], b[key], out)
        for key in b:
            if key not in a:
                out.append(((*path, key), "added", None, b[key]))
        return
    if _same(a, b):
        return
    if a is None and b is not None:
        out.append((path, "added", None, b))
    elif b is None and a is not None:
        out.append((path, "removed", a, None))
    else:
        out.append((path, "changed", a, b))


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return a == b


def _is_text(value: dict) -> bool:
    """A title in Dutch and English: one value, shown whole."""
    return set(value) <= {"nl", "en"} and "nl" in value and not isinstance(value, _Keyed)


# -- sections and sentences -----------------------------------------------------------------

class _Context:
    def __init__(self, before: dict, after: dict):
        self.before, self.after = before, after

    def change(self, path: tuple, kind: Kind, old: Any, new: Any) -> Change:
        section = self._section(path)
        evidence = self._evidence(path)
        sentence = self._sentence(path, kind, old, new)
        if evidence is not None:
            sentence += f" ({_evidence_words(evidence)})"
        return Change(section, kind, ".".join(str(p) for p in path), _json(old), _json(new), sentence, evidence)

    def _section(self, path: tuple) -> str:
        head = path[0]
        if head == "steps":
            if len(path) == 2 and isinstance(self._entry(path), dict) and self._entry(path).get("escalation"):
                return "escalations"  # an escalation step added or removed
            if len(path) > 2 and path[2] == "escalation":
                return "escalations"
            if len(path) > 2 and path[2] == "goals":
                return "goals"
            return "steps"
        if head in ("parameters", "rules", "indication", "libraries"):
            return head
        if head in ("facts", "derived"):
            return "outputs" if head == "facts" and self._recorded_by(path[1]) else "facts"
        return "metadata"

    def _entry(self, path: tuple) -> Any:
        found = _at(self.after, path)
        return found if found is not None else _at(self.before, path)

    def _recorded_by(self, fact: str) -> list[str]:
        steps: dict[str, Any] = {}
        for side in (self.before, self.after):
            for step_id, step in side.get("steps", {}).items():
                if fact in step.get("outputs", {}):
                    steps[step_id] = True
        return list(steps)

    def _evidence(self, path: tuple) -> dict[str, Any] | None:
        """A parameter's evidence, before and after, for a change to its value."""
        if path[0] == "parameters" and len(path) >= 2:
            where: tuple = ("parameters", path[1])
        elif path[0] == "libraries" and len(path) >= 4 and path[2] == "parameters":
            where = path[:4]
        else:
            return None
        if len(path) != len(where) and path[len(where)] not in ("value", "evidence"):
            return None
        old, new = _at(self.before, (*where, "evidence")), _at(self.after, (*where, "evidence"))
        return {"old": old, "new": new}

    def _sentence(self, path: tuple, kind: Kind, old: Any, new: Any) -> str:
        subject, rest = self._subject(path)
        value = new if kind == "added" else old
        if not rest:  # a whole entry
            summary = _summary(path, value)
            return f"{subject} {kind}" + (f": {summary}" if summary else "")
        field = rest[-1]
        words = " ".join(_FIELD_WORDS.get(str(p), str(p).replace("_", " ")) for p in rest
                         if not isinstance(p, int) and not (p == "timing" and len(rest) > 1))
        if field == "stage" and kind == "changed":
            return f"{subject} moved from stage {old} to {new}"
        if field == "value" and path[0] in ("parameters", "libraries") and kind == "changed":
            unit = _at(self.after, (*path[:-1], "unit")) or ""
            return f"{subject}: {_words(old)} -> {_words(new)}{(' ' + unit) if unit else ''}"
        if isinstance(old, dict) and isinstance(new, dict) and _is_text(old) and _is_text(new) and old["nl"] == new["nl"]:
            return f"{subject}: {words} (English) {old.get('en') or 'none'} -> {new.get('en') or 'none'}"
        if kind == "added":
            return f"{subject}: {words} {_words(new)} added"
        if kind == "removed":
            return f"{subject}: {words} {_words(old)} removed"
        return f"{subject}: {words} {_words(old)} -> {_words(new)}"

    def _subject(self, path: tuple) -> tuple[str, tuple]:
        """Who the change is about ('step intake_poh', 'goal hba1c (step doelen)') and the rest of the path."""
        head = path[0]
        if head == "steps" and len(path) >= 2:
            step = f"step {path[1]}"
            if len(path) >= 3 and path[2] == "escalation":
                return f"Escalation of {step}", path[3:]
            if len(path) >= 4 and path[2] == "goals":
                return f"Goal {path[3]} ({step})", path[4:]
            if len(path) >= 4 and path[2] == "outputs":
                return f"Output {path[3]} of {step}", path[4:]
            return step[0].upper() + step[1:], path[2:]
        if head == "libraries" and len(path) >= 2:
            library = f"library {path[1]}"
            if len(path) >= 4 and path[2] in _ENTRY_WORDS:
                return f"{_ENTRY_WORDS[path[2]]} {path[3]} ({library})", path[4:]
            if len(path) >= 4 and path[2] == "financing":
                return f"Financing route {path[3]} ({library})", ("rule",) if len(path) == 4 else path[4:]
            return library[0].upper() + library[1:], path[2:]
        if head in _ENTRY_WORDS and len(path) >= 2:
            subject = f"{_ENTRY_WORDS[head]} {path[1]}"
            if head == "facts":
                steps = self._recorded_by(path[1])
                if steps:
                    subject += f" (recorded in {', '.join(steps)})"
            return subject, path[2:]
        if head == "indication":
            return "Indication", path[1:]
        return "Pathway", path


_ENTRY_WORDS = {"parameters": "Parameter", "rules": "Rule", "facts": "Fact", "derived": "Derived fact",
                "sources": "Source", "deadlines": "Deadline"}


def _summary(path: tuple, value: Any) -> str:
    """A whole entry in a few words: a step's stage and discipline, a parameter's value."""
    if not isinstance(value, dict):
        return _words(value)
    head = path[0]
    if head == "steps" and len(path) == 2:
        gate = f", gate {value['gate']}" if value.get("gate") else ""
        escalation = value.get("escalation")
        if isinstance(escalation, dict):
            gate += f", escalates on {escalation.get('trigger')} -> {escalation.get('action')} ({escalation.get('severity')})"
        return f"{_title(value.get('title'))} (stage {value.get('stage')}, {value.get('discipline')}{gate})"
    if "trigger" in value:
        return f"{value['trigger']} -> {value.get('action')} ({value.get('severity')})"
    if "target" in value:
        return f"{value.get('fact')} {value['target']} within {value.get('deadline')}"
    if "value" in value and "evidence" in value:
        unit = f" {value['unit']}" if value.get("unit") else ""
        return f"{_words(value['value'])}{unit}, {_title(value.get('title'))}"
    if "when" in value and "title" in value:
        return f"{value['when']}"
    if "within" in value:
        return f"{value.get('within')} after {value.get('after')}"
    if "fact" in value:
        return value["fact"] + ("" if value.get("required", True) else " (optional)")
    if "title" in value:
        version = f" {value['version']}" if value.get("version") else ""
        return f"{_title(value['title'])}{version}"
    return ""


def _title(value: Any) -> str:
    return value.get("nl", "") if isinstance(value, dict) else str(value or "")


def _evidence_words(evidence: dict[str, Any]) -> str:
    def one(e: Any) -> str:
        if not isinstance(e, dict):
            return "none"
        section = f", {e['section']}" if e.get("section") else ""
        return f"{e.get('source')}{section}, confidence {e.get('confidence')}"

    old, new = evidence.get("old"), evidence.get("new")
    if old is None or new is None or old == new:
        return f"evidence: {one(new if new is not None else old)}"
    return f"evidence: {one(old)} -> {one(new)}"


def _words(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        if _is_text(value):
            return _title(value)
        return "{" + ", ".join(f"{k}: {_words(v)}" for k, v in value.items() if v not in (None, (), [], {})) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_words(v) for v in value) + "]"
    return str(value)


def _at(data: Any, path: tuple) -> Any:
    for part in path:
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def _json(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)  # dates
