"""New facts for a patient already known: checked, stored once (what the store knows already is
counted, not stored again), then every enrollment of the patient is re-evaluated at once, so an
urgent value escalates in the same command. Without Prefect: the caller runs the re-evaluation
(``pathways facts add`` through a Prefect flow run, like any advance)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from pathways.clock import Clock
from pathways.facts.model import PatientFacts
from pathways.orchestration.service import Runtimes, authorize, identity_row
from pathways.store.db import Store


class FactsRefused(ValueError):
    """A file whose facts cannot be taken as they are: nothing of it is stored."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass
class FactsAdded:
    patient: str
    added: int
    known: int
    enrollments: dict[str, list[str]] = field(default_factory=dict)  # pathway -> the patient's enrollments in it


def check_new_facts(store: Store, runtimes: Runtimes, patient: str, facts: PatientFacts, identity: dict, today: dt.date,
                    where: str) -> list[str]:
    """Every problem that refuses the file, each naming ``where`` (the file) and the field."""
    problems = []
    stored = store.patient_facts(patient)
    if facts.patient != patient and not identity:  # our facts JSON names its patient itself
        problems.append(f"{where}: patient: the file is of patient '{facts.patient}', not '{patient}' "
                        f"(add it to that patient, or correct the file's \"patient\")")
    born_stored, born_file = stored.demographics.birth_date, facts.demographics.birth_date
    if born_stored and born_file and born_stored != born_file:
        problems.append(f"{where}: demographics.birth_date: {born_file}, but patient '{patient}' was born on {born_stored}: "
                        f"the file is of another patient")
    if identity.get("bsn"):
        known = store.identity(patient)
        row = identity_row(identity)
        if known and known.get("bsn_hmac") and row and row.get("bsn_hmac") and known["bsn_hmac"] != row["bsn_hmac"]:
            problems.append(f"{where}: Patient.identifier (BSN): another BSN than patient '{patient}' has: "
                            f"the file is of another patient")
    if problems:  # another patient's file: its dates and values are not this patient's to check
        return problems
    born = born_stored or born_file
    for index, entry in _dated(facts):
        kind, at = entry
        if at > today:
            problems.append(f"{where}: {index}: dated {at}, after today ({today}): give facts that have happened")
        elif born and at < born:
            problems.append(f"{where}: {index}: dated {at}, before the patient was born ({born})")
    enrollments = [eid for eid, _, _ in store.enrollments_of(patient)]
    versions = sorted({state.version_key for state, _ in store.load_many(enrollments).values()}) if enrollments else []
    for key in versions:  # each version the patient's enrollments run, as published
        runtime = runtimes.get_version(key, store)
        for issue in runtime.evaluator.timeline(facts, today).unusable():
            problems.append(f"{where}: {issue} ({runtime.spec.id})")
    return list(dict.fromkeys(problems))


def _dated(facts: PatientFacts):
    for name, entries in (("observations", facts.observations), ("events", facts.events)):
        for i, entry in enumerate(entries):
            yield f"{name}[{i}].at", (name, entry.at)
    for i, entry in enumerate(facts.conditions):
        if entry.onset:
            yield f"conditions[{i}].onset", ("conditions", entry.onset)
    for i, entry in enumerate(facts.medications):
        if entry.start:
            yield f"medications[{i}].start", ("medications", entry.start)


def add_facts(store: Store, runtimes: Runtimes, patient: str, facts: PatientFacts, identity: dict, source: str, clock: Clock,
              where: str, today: dt.date | None = None) -> FactsAdded:
    """Store what is new of a known patient's facts (all or nothing). ``today``: the real date
    (facts after it are refused), when the clock is set to another day with --at."""
    authorize(store, "enrollment.write", f"add facts for {patient}", patient)
    if not store.has_patient(patient):
        raise FactsRefused([f"{where}: unknown patient '{patient}': enrol the patient first "
                            f"(`pathways enroll {patient} --pathway NAME --facts FILE`), or give --enroll PATHWAY"])
    problems = check_new_facts(store, runtimes, patient, facts, identity, today or clock.today(), where)
    if problems:
        raise FactsRefused(problems + ["nothing stored"])
    facts = facts.model_copy(update={"patient": patient})
    added, known = store.add_patient_facts(facts, source)
    groups: dict[str, list[str]] = {}
    for eid, pathway, _ in store.enrollments_of(patient):
        groups.setdefault(pathway, []).append(eid)
    return FactsAdded(patient, added, known, groups)
