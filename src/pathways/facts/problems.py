"""Every problem of a patient file in one round, each with the form expected.

A facts file that fails the schema in some entries is still read for the rest (``partial``), so
that the problems only a pathway can find (an unknown fact name, a unit that does not convert)
are reported with the schema's, not one round later. Messages name the field and what to write.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from pathways.errors import did_you_mean
from pathways.facts.model import PatientFacts

_SECTIONS = tuple(PatientFacts.model_fields)  # the order of the file's sections
_DATE_KINDS = {"date_from_datetime_parsing", "date_parsing", "date_type", "date_from_datetime_inexact"}


def where(loc: tuple) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def place_key(message_where: str) -> tuple:
    """Sort key for a field path such as observations[3].at: section order, then index."""
    section = re.match(r"[a-z_]+", message_where)
    rank = _SECTIONS.index(section.group(0)) if section and section.group(0) in _SECTIONS else -1
    return (rank, [int(n) if n.isdigit() else n for n in re.findall(r"\d+|[a-z_]+", message_where)])


def _allowed(loc: tuple) -> list[str]:
    """The keys allowed where an unknown key stands, for did-you-mean."""
    current: Any = PatientFacts
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = current.model_fields.get(part) if isinstance(current, type) and issubclass(current, BaseModel) else None
        if field is None:
            return []
        annotation = field.annotation
        for candidate in (annotation, *getattr(annotation, "__args__", ())):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                current = candidate
                break
            inner = [a for a in getattr(candidate, "__args__", ()) if isinstance(a, type) and issubclass(a, BaseModel)]
            if inner:
                current = inner[0]
                break
        else:
            return []
    return list(current.model_fields) if isinstance(current, type) and issubclass(current, BaseModel) else []


def schema_message(error: dict) -> tuple[str, str]:
    """(field path, message with the expected form) for one pydantic error of a facts file."""
    loc = tuple(error["loc"])
    kind, value, ctx = error["type"], error.get("input"), error.get("ctx") or {}
    at = where(loc) or "(top)"
    if kind in _DATE_KINDS:
        return at, f"'{value}' is not a date: write dates as YYYY-MM-DD (e.g. 1955-04-02)"
    if kind == "missing":
        return at, "missing: add it"
    if kind == "extra_forbidden":
        allowed = _allowed(loc)
        hint = did_you_mean(str(loc[-1]), allowed) or (f"allowed here: {', '.join(allowed)}" if allowed else "remove it")
        return at, f"unknown key '{loc[-1]}' ({hint})"
    if kind == "literal_error":
        return at, f"'{value}' is not allowed: write one of {ctx.get('expected', '')}"
    if kind in ("float_parsing", "float_type", "int_parsing", "int_type"):
        return at, f"{value!r} is not a number: write a number"
    return at, error["msg"].removeprefix("Value error, ")


@dataclass(frozen=True)
class Partial:
    """The facts that parsed, and for each list section the file's index of each kept entry."""

    facts: PatientFacts
    indexes: dict[str, list[int]]

    def original(self, at: str) -> str:
        """A field path of the partial facts as a path in the file: observations[1] -> [2]."""
        match = re.match(r"([a-z_]+)\[(\d+)\](.*)", at)
        if not match or match.group(1) not in self.indexes:
            return at
        return f"{match.group(1)}[{self.indexes[match.group(1)][int(match.group(2))]}]{match.group(3)}"


def partial(data: Any, exc: ValidationError) -> Partial | None:
    """The facts without the entries and fields that failed, or None when even that fails."""
    if not isinstance(data, dict):
        return None
    kept = dict(data)
    bad_entries: dict[str, set[int]] = {}
    for error in exc.errors():
        loc = tuple(error["loc"])
        if not loc:
            return None
        section = loc[0]
        if len(loc) >= 2 and isinstance(loc[1], int) and isinstance(data.get(section), list):
            bad_entries.setdefault(section, set()).add(loc[1])  # one observation, condition, ...
        elif section == "patient":
            kept["patient"] = "unknown"
        elif len(loc) >= 2 and isinstance(kept.get(section), dict):  # one field of demographics, ...
            kept[section] = {k: v for k, v in kept[section].items() if k != loc[1]}
        else:
            kept.pop(section, None)
    indexes: dict[str, list[int]] = {}
    for section, bad in bad_entries.items():
        indexes[section] = [i for i in range(len(data[section])) if i not in bad]
        kept[section] = [data[section][i] for i in indexes[section]]
    try:
        return Partial(PatientFacts.model_validate(kept), indexes)
    except ValidationError:
        return None


def every_problem(path: Path, schema: list[tuple[str, str]], patient: Partial | None, facts: dict, today: dt.date) -> list[str]:
    """The schema's problems and, for the entries that parsed, those the pathway's facts find
    (unknown fact names, units that do not convert, dates in the future), in file order."""
    found = list(schema)
    if patient is not None:
        from pathways.facts.resolve import resolve

        found += [(patient.original(issue.where), issue.message) for issue in resolve(patient.facts, facts, today).issues if not issue.excluded]
    found.sort(key=lambda item: place_key(item[0]))
    return [f"{path}: {at}: {message}" for at, message in found]
