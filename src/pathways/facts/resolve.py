"""Put a patient's facts onto a pathway's fact definitions: canonical units, checked values.

Observations are matched to a fact by name or by code; codes no fact lists, unknown units,
values of the wrong kind and physiologically impossible values are reported and left out,
never guessed or silently used.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from pathways.definition.model import Fact
from pathways.errors import did_you_mean
from pathways.facts.model import CodeRef, PatientFacts
from pathways.facts.units import UnitError, to_canonical

SYSTEM_ALIASES = {
    "http://loinc.org": "loinc",
    "http://snomed.info/sct": "snomed",
    "http://hl7.org/fhir/sid/icd-10": "icd10",
    "http://hl7.org/fhir/sid/icd-10-nl": "icd10",
    "http://hl7.org/fhir/sid/icd-10-cm": "icd10",
    "http://hl7.org/fhir/sid/icpc-1-nl": "icpc",
    "http://hl7.org/fhir/sid/icpc-1": "icpc",
    "https://referentiemodel.nhg.org/tabellen/nhg-tabel-24-icpc": "icpc",
    "https://referentiemodel.nhg.org/tabellen/nhg-tabel-45-diagnostische-bepalingen": "nhg45",
    "http://www.whocc.no/atc": "atc",
    "http://www.nlm.nih.gov/research/umls/rxnorm": "rxnorm",
}


def system_name(system: str) -> str:
    return SYSTEM_ALIASES.get(system, system)


@dataclass(frozen=True)
class Point:
    at: dt.date
    value: Any
    source: str  # where it came from, e.g. "observations[3]" or a FHIR resource id
    original: str = ""  # the value as given, when it was converted


@dataclass(frozen=True)
class Interval:
    start: dt.date | None
    end: dt.date | None
    source: str

    def active(self, at: dt.date) -> bool:
        return (self.start is None or self.start <= at) and (self.end is None or self.end > at)


@dataclass(frozen=True)
class FactIssue:
    """A problem with one input value. ``excluded`` values (physiologically impossible,
    contradictory) are left out and reported, and evaluation goes on; the others (unknown
    unit, wrong kind of value, a date in the future) make the input unusable."""

    where: str  # a field path in the input, e.g. observations[3]
    message: str
    excluded: bool = False
    kind: str = "value"  # the value itself; "unknown_fact": a fact this pathway does not declare; "future": dated after the day

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" + (" - left out" if self.excluded else "")


@dataclass
class Timeline:
    """A patient's facts in canonical units, per fact name."""

    patient: str
    points: dict[str, list[Point]] = field(default_factory=dict)
    intervals: dict[str, list[Interval]] = field(default_factory=dict)
    issues: list[FactIssue] = field(default_factory=list)
    unmapped_codes: list[str] = field(default_factory=list)

    def add(self, name: str, point: Point) -> None:
        self.points.setdefault(name, []).append(point)

    def unusable(self) -> list[FactIssue]:
        """Values the pathway cannot use (of the wrong kind, in an unknown unit, a condition ending
        before it starts): they would count as missing. Not among them: values left out as
        impossible, facts the pathway does not declare, values dated after the day."""
        return [issue for issue in self.issues if not issue.excluded and issue.kind == "value"]

    def sort(self) -> None:
        for series in self.points.values():
            series.sort(key=lambda p: p.at)


def code_index(facts: dict[str, Fact]) -> dict[tuple[str, str], str]:
    index: dict[tuple[str, str], str] = {}
    for name, fact in facts.items():
        for code in fact.codes:
            index.setdefault((code.system, code.code), name)
    return index


def _lookup(facts: dict[str, Fact], index: dict, fact: str | None, codes: tuple[CodeRef, ...]) -> tuple[str | None, str]:
    if fact is not None:
        if fact in facts:
            return fact, ""
        hint = did_you_mean(fact, facts)
        return None, f"unknown fact '{fact}'" + (f" ({hint})" if hint else " (this pathway does not declare it)")
    for code in codes:
        name = index.get((system_name(code.system), code.code))
        if name is not None:
            return name, ""
    first = codes[0]
    return None, f"{system_name(first.system)} {first.code}" + (f" ({first.display})" if first.display else "")


def check_value(fact: Fact, value: Any, unit: str | None) -> tuple[Any, str, str]:
    """(canonical value, original text, problem). The problem is '' when the value is usable."""
    original = f"{value} {unit}" if unit else str(value)
    if fact.type in ("quantity", "count"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None, original, f"expected a number, got {value!r}"
        try:
            converted = to_canonical(fact, value, unit)
        except UnitError as exc:
            return None, original, str(exc)
        number = converted.value
        if fact.range is not None and not (fact.range[0] <= number <= fact.range[1]):
            shown = f"{number:g} {fact.unit or ''}".strip()
            return None, original, f"{shown} is physiologically impossible (plausible {fact.range[0]:g}-{fact.range[1]:g})"
        return number, original if converted.how != "same unit" else "", ""
    if fact.type == "boolean":
        if not isinstance(value, bool):
            return None, original, f"expected true or false, got {value!r}"
        return value, "", ""
    if fact.type == "code":
        if str(value) not in (fact.values or ()):
            return None, original, f"'{value}' is not one of {', '.join(fact.values or ())}"
        return str(value), "", ""
    if fact.type == "date":
        try:
            return (value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))), "", ""
        except ValueError:
            return None, original, f"expected a date YYYY-MM-DD, got {value!r}"
    return str(value), "", ""


def resolve(patient: PatientFacts, facts: dict[str, Fact], today: dt.date) -> Timeline:
    """The patient's facts in the pathway's terms. ``today`` (from the clock) bounds dates."""
    timeline = Timeline(patient.patient)
    index = code_index(facts)

    def future(where: str, when: dt.date | None) -> bool:
        if when is not None and when > today:
            timeline.issues.append(FactIssue(where, f"date {when} is in the future (today is {today})", kind="future"))
            return True
        return False

    def unmapped(where: str, label: str) -> None:
        if label.startswith("unknown fact"):
            timeline.issues.append(FactIssue(where, label, kind="unknown_fact"))
        else:
            timeline.unmapped_codes.append(f"{where}: {label}")

    for i, obs in enumerate(patient.observations):
        where = f"observations[{i}]"
        name, why = _lookup(facts, index, obs.fact, obs.all_codes)
        if name is None:
            unmapped(where, why)
            continue
        if future(where, obs.at):
            continue
        value, original, problem = check_value(facts[name], obs.value, obs.unit)
        if problem:
            timeline.issues.append(FactIssue(where, f"{name}: {problem}", "physiologically impossible" in problem))
            continue
        timeline.add(name, Point(obs.at, value, where, original))
    for i, event in enumerate(patient.events):
        where = f"events[{i}]"
        name, why = _lookup(facts, index, event.fact, event.all_codes)
        if name is None:
            unmapped(where, why)
        elif not future(where, event.at):
            timeline.add(name, Point(event.at, 1, where))
    for section, items in (("conditions", patient.conditions), ("medications", patient.medications)):
        for i, item in enumerate(items):
            where = f"{section}[{i}]"
            name, why = _lookup(facts, index, item.fact, item.all_codes)
            if name is None:
                unmapped(where, why)
                continue
            start = item.onset if section == "conditions" else item.start
            end = item.abatement if section == "conditions" else item.end
            if future(where, start):
                continue
            if start is not None and end is not None and end < start:
                timeline.issues.append(FactIssue(where, f"{name}: ends ({end}) before it starts ({start})"))
                continue
            if facts[name].type == "date":
                if start is not None:
                    timeline.add(name, Point(start, start, where))
            else:
                timeline.intervals.setdefault(name, []).append(Interval(start, end, where))
    _demographics_and_indications(patient, facts, timeline, future)
    died = patient.demographics.deceased_date
    if died is not None:
        for name, series in timeline.points.items():
            for point in [p for p in series if p.at > died and name != "deceased_date"]:
                timeline.issues.append(FactIssue(point.source, f"{name} dated {point.at}, after death on {died} (contradictory)", True))
                series.remove(point)
    timeline.sort()
    return timeline


def _demographics_and_indications(patient: PatientFacts, facts: dict[str, Fact], timeline: Timeline, future) -> None:
    """Structured sections map onto facts of the same meaning, where the pathway has them."""
    d = patient.demographics
    born = d.birth_date or dt.date.min

    def put(name: str, value: Any, at: dt.date | None, where: str) -> None:
        if name in facts and value is not None:
            timeline.add(name, Point(at or born, value, where))

    if d.birth_date is not None and not future("demographics.birth_date", d.birth_date):
        put("birth_date", d.birth_date, d.birth_date, "demographics.birth_date")
    if d.deceased_date is not None and not future("demographics.deceased_date", d.deceased_date):
        put("deceased_date", d.deceased_date, d.deceased_date, "demographics.deceased_date")
    if d.birth_date and d.deceased_date and d.deceased_date < d.birth_date:
        timeline.issues.append(FactIssue("demographics.deceased_date", "deceased before birth"))
    put("sex", d.sex, None, "demographics.sex")
    wlz, wmo, wv = patient.indications.wlz, patient.indications.wmo, patient.indications.wijkverpleging
    if wlz is not None:
        if wlz.besluit_date is not None and not future("indications.wlz.besluit_date", wlz.besluit_date):
            put("wlz_indicatie", True, wlz.besluit_date, "indications.wlz")
            put("wlz_indicatie_datum", wlz.besluit_date, wlz.besluit_date, "indications.wlz")
            put("wlz_zorgprofiel", wlz.zorgprofiel, wlz.besluit_date, "indications.wlz")
            put("wlz_leveringsvorm", wlz.leveringsvorm, wlz.besluit_date, "indications.wlz")
        if wlz.aanvraag_date is not None and not future("indications.wlz.aanvraag_date", wlz.aanvraag_date):
            put("wlz_aanvraag_datum", wlz.aanvraag_date, wlz.aanvraag_date, "indications.wlz")
    if wmo is not None:
        for attribute, name in (("melding_date", "wmo_melding_datum"), ("aanvraag_date", "wmo_aanvraag_datum")):
            when = getattr(wmo, attribute)
            if when is not None and not future(f"indications.wmo.{attribute}", when):
                put(name, when, when, "indications.wmo")
        if wmo.beschikking_date is not None and not future("indications.wmo.beschikking_date", wmo.beschikking_date):
            put("wmo_beschikking", True, wmo.beschikking_date, "indications.wmo")
    if wv is not None and wv.indication_date is not None and not future("indications.wijkverpleging.indication_date", wv.indication_date):
        put("wijkverpleging_indicatie", True, wv.indication_date, "indications.wijkverpleging")
        put("wijkverpleging_indicatie_datum", wv.indication_date, wv.indication_date, "indications.wijkverpleging")
        put("verpleging_specialistisch_aangestuurd", wv.specialist_managed, wv.indication_date, "indications.wijkverpleging")
    living = patient.living
    for attribute in ("living_alone", "adl_dependent", "informal_carer"):
        put(attribute, getattr(living, attribute), None, f"living.{attribute}")
