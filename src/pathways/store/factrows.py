"""A patient's facts as rows of the ``fact`` table, each stored once per patient.

A fact is the same fact when it says the same thing: its kind and its payload (what was observed
or given, with its value, unit and date, as JSON). Its fingerprint is a hash of those two, unique
per patient, so a patient enrolled in several pathways has one timeline that every pathway reads,
and ``count()`` or ``change()`` over a window counts each observation once, whatever the number
of files or enrollments it came through.

The patient-level records that are replaced rather than added to (demographics, financing
indications, living situation, insurance: the last one given wins) are stored when they differ
from the one in force; their fingerprint also counts how many of that kind came before, so going
back to an earlier value is stored as the newer one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Iterable

from pathways.facts.model import Condition, Event as FactEvent, Medication, Observation, PatientFacts

# kinds that hold one record in force (the latest), not a list of entries
SINGLE = ("demographics", "indications", "living", "insurance")
ENTRY_KIND = {Observation: "observation", Condition: "condition", Medication: "medication", FactEvent: "event"}


def canonical(payload: str) -> str:
    """A payload's JSON text with sorted keys and no spaces: the same fact, the same text."""
    return json.dumps(json.loads(payload), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def fingerprint(kind: str, payload: str, ordinal: int | None = None) -> str:
    """What identifies a fact of a patient (``ordinal``: for SINGLE kinds, how many came before)."""
    text = f"{kind}\n{canonical(payload)}" + (f"\n#{ordinal}" if ordinal is not None else "")
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class FactRow:
    kind: str
    payload: str
    observed_on: dt.date | None


def rows_of(facts: PatientFacts) -> list[FactRow]:
    """The rows a patient file gives, in the file's order (empty patient-level records left out)."""
    rows = []
    for kind, record in (("demographics", facts.demographics), ("indications", facts.indications),
                         ("living", facts.living), ("insurance", facts.insurance)):
        if record != type(record)():  # a record with nothing given says nothing: not stored
            rows.append(FactRow(kind, record.model_dump_json(), None))
    for entry in (*facts.observations, *facts.conditions, *facts.medications, *facts.events):
        observed = getattr(entry, "at", None) or getattr(entry, "onset", None) or getattr(entry, "start", None)
        rows.append(FactRow(ENTRY_KIND[type(entry)], entry.model_dump_json(), observed))
    return rows


@dataclass
class Known:
    """What the store already holds of a patient: the fingerprints of its entries, and per SINGLE
    kind the record in force and how many were stored."""

    fingerprints: set[str]
    in_force: dict[str, str]  # kind -> canonical payload of the latest
    counts: dict[str, int]

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[str, str, str]]) -> "Known":
        """From (kind, payload, fingerprint) rows in the order they were stored."""
        known = cls(set(), {}, {})
        for kind, payload, print_ in rows:
            known.fingerprints.add(print_)
            if kind in SINGLE:
                known.in_force[kind] = canonical(payload)
                known.counts[kind] = known.counts.get(kind, 0) + 1
        return known


def new_rows(rows: list[FactRow], known: Known) -> tuple[list[tuple[FactRow, str]], int]:
    """The rows not yet known, each with its fingerprint, and how many were already known.
    ``known`` is updated as rows are taken (a file that repeats an entry adds it once)."""
    fresh: list[tuple[FactRow, str]] = []
    repeated = 0
    for row in rows:
        if row.kind in SINGLE:
            text = canonical(row.payload)
            if known.in_force.get(row.kind) == text:
                repeated += 1
                continue
            print_ = fingerprint(row.kind, row.payload, known.counts.get(row.kind, 0))
            known.in_force[row.kind] = text
            known.counts[row.kind] = known.counts.get(row.kind, 0) + 1
        else:
            print_ = fingerprint(row.kind, row.payload)
            if print_ in known.fingerprints:
                repeated += 1
                continue
        known.fingerprints.add(print_)
        fresh.append((row, print_))
    return fresh, repeated


def facts_from_pairs(patient: str, pairs: Iterable[tuple[str, str]]) -> PatientFacts:
    """Rebuild a patient's facts from their (kind, payload) rows, in order. The rows hold JSON
    written by the models themselves: they are joined into one document that pydantic validates
    in one pass (decoding every row in Python first costs twice as much)."""
    parts: dict[str, list[str]] = {"observation": [], "condition": [], "medication": [], "event": []}
    single: dict[str, str] = {}
    for kind, payload in pairs:
        if kind in SINGLE:
            if any(v is not None for v in json.loads(payload).values()):  # the last one given wins
                single[kind] = payload
        else:
            parts[kind].append(payload)
    records = "".join(f',"{kind}":{payload}' for kind, payload in single.items())
    return PatientFacts.model_validate_json(
        f'{{"patient":{json.dumps(patient)}{records},'
        f'"observations":[{",".join(parts["observation"])}],"conditions":[{",".join(parts["condition"])}],'
        f'"medications":[{",".join(parts["medication"])}],"events":[{",".join(parts["event"])}]}}'
    )


def counts(rows: Iterable[FactRow | tuple[FactRow, Any]]) -> dict[str, int]:
    """How many of each kind of entry (as the audit trail counts them)."""
    names = {"observation": "observations", "condition": "conditions", "medication": "medications", "event": "events"}
    result = {name: 0 for name in names.values()}
    for row in rows:
        row = row[0] if isinstance(row, tuple) else row
        if row.kind in names:
            result[names[row.kind]] += 1
    return result
