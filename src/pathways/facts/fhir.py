"""FHIR R4 import: a Bundle (JSON, .json.gz, or XML) or a single resource -> PatientFacts.

Resources are validated with fhir.resources' R4B models (R4-compatible; the package's default
models are R5). Only Patient, Condition, Observation and MedicationRequest are read, which also
keeps large Synthea bundles fast: their Claims and ExplanationOfBenefits are never validated.
The patient's FHIR id becomes a pseudonym (a hash). The identifying data (BSN, name, birth
date) is returned apart from the facts, for the store's identity table (BSN as a keyed hash);
it never reaches the rules, Prefect or the logs. Addresses and other identifiers are not read.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pathways.facts.jsonread import MAX_DEPTH, MAX_PROBLEMS, JsonFileError, parse_json, read_limited, read_ndjson_lines
from pathways.facts.model import CodeRef, Condition, Demographics, Medication, Observation, PatientFacts

READ = ("Patient", "Condition", "Observation", "MedicationRequest")
UCUM = "http://unitsofmeasure.org"
# LOINC defines these blood-pressure components in mm[Hg]; Synthea leaves the unit off ~22%
# of them. Only these are filled in, and each one is reported.
LOINC_DEFINED_UNITS = {"8480-6": "mm[Hg]", "8462-4": "mm[Hg]"}
NOT_TRUE = {"entered-in-error", "cancelled", "preliminary", "registered"}
ENDED = {"resolved", "inactive", "remission"}


class FhirError(ValueError):
    """A file that is not FHIR we can read; ``where`` names the place in it."""

    def __init__(self, where: str, message: str):
        super().__init__(f"{where}: {message}")
        self.where, self.message = where, message


BSN_SYSTEM = "http://fhir.nl/fhir/NamingSystem/bsn"


@dataclass
class FhirImport:
    facts: PatientFacts
    notes: list[str] = field(default_factory=list)  # what was filled in or left out, and why
    identity: dict[str, Any] = field(default_factory=dict)  # bsn, name, birth_date (kept apart)


def _model(resource_type: str):
    from fhir.resources.R4B import condition, medicationrequest, observation, patient

    return {
        "Patient": patient.Patient,
        "Condition": condition.Condition,
        "Observation": observation.Observation,
        "MedicationRequest": medicationrequest.MedicationRequest,
    }[resource_type]


def read_resources(path: Path) -> list[tuple[str, dict | Any]]:
    """(where, resource) pairs: dicts from JSON, validated models from XML. The file is read
    within the limits of ``jsonread`` (size, depth, gzip), and every entry of a Bundle that we
    cannot read is a FhirError, never skipped silently."""
    try:
        raw = read_limited(path)
        if raw.removeprefix(b"\xef\xbb\xbf").lstrip().startswith(b"<"):  # XML, maybe after a UTF-8 byte order mark
            return _read_xml(path, raw)
        data = parse_json(raw, str(path))
    except JsonFileError as exc:
        raise FhirError(exc.where, f"{exc.message}; {exc.fix}") from None
    kind = _resource_type(data, str(path))
    if kind != "Bundle":
        return [(f"{path}: {kind}", data)]
    entries = data.get("entry") or []
    if not isinstance(entries, list):
        raise FhirError(f"{path}: Bundle.entry", "must be a list of entries")
    found = []
    for i, entry in enumerate(entries):
        where = f"{path}: Bundle.entry[{i}]"
        if not isinstance(entry, dict):
            raise FhirError(where, f"an entry must be an object with a resource, not {_kind_of(entry)}")
        resource = entry.get("resource")
        if resource is None:
            continue  # FHIR allows an entry without a resource (a request or response only)
        _resource_type(resource, f"{where}.resource")
        found.append((where, resource))
    return found


def _resource_type(data: Any, where: str) -> str:
    """The resourceType of a resource read from JSON, or a FhirError that says what is wrong."""
    if not isinstance(data, dict):
        raise FhirError(where, f"not a FHIR resource: {_kind_of(data)} instead of an object with a resourceType")
    kind = data.get("resourceType")
    if kind is None:
        raise FhirError(where, "not a FHIR resource (no resourceType); add one, e.g. \"resourceType\": \"Observation\"")
    if not isinstance(kind, str) or not kind.isidentifier():
        raise FhirError(where, f"resourceType must be the name of a FHIR resource type, not {_kind_of(kind)}")
    return kind


def _kind_of(value: Any) -> str:
    if isinstance(value, str):
        return f"the text {value[:40]!r}"
    names = {dict: "an object", list: "a list", bool: "true/false", int: "a number", float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _read_xml(path: Path, raw: bytes) -> list[tuple[str, Any]]:
    from lxml import etree

    # no DTDs, no entity expansion, no network, and libxml2's own limits (huge_tree off)
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    try:
        root = etree.fromstring(raw, parser)
    except etree.XMLSyntaxError as exc:
        raise FhirError(f"{path}:{exc.lineno}", f"malformed XML: {exc.msg}") from None
    if root.getroottree().docinfo.doctype:
        raise FhirError(str(path), "the XML declares a DOCTYPE, which FHIR XML must not have; remove the <!DOCTYPE ...> part")
    deep = _xml_deeper_than(root, MAX_DEPTH)
    if deep is not None:
        raise FhirError(f"{path}:{deep.sourceline}", f"the XML nests deeper than {MAX_DEPTH} levels; check that this is the file you meant: nothing pathways reads nests this deep")
    name = etree.QName(root).localname
    if name == "Bundle":
        found = []
        for i, entry in enumerate(root.iterfind("{http://hl7.org/fhir}entry/{http://hl7.org/fhir}resource")):
            if len(entry):
                child = entry[0]
                if not isinstance(child.tag, str):
                    continue  # a comment or processing instruction
                kind = etree.QName(child).localname
                if kind in READ:
                    found.append((f"{path}: Bundle.entry[{i}]", _validate_xml(f"{path}: Bundle.entry[{i}]", kind, etree.tostring(child))))
        return found
    if name not in READ:
        return []
    return [(f"{path}: {name}", _validate_xml(str(path), name, raw))]


def _xml_deeper_than(root: Any, limit: int) -> Any:
    """The first element nested deeper than ``limit`` (iteratively), or None."""
    from lxml import etree

    depth = 0
    for event, element in etree.iterwalk(root, events=("start", "end")):
        depth += 1 if event == "start" else -1
        if depth > limit:
            return element
    return None


def _validate_xml(where: str, kind: str, xml: bytes):
    try:
        return _model(kind).model_validate_xml(xml)
    except Exception as exc:  # pydantic ValidationError or lxml errors
        raise FhirError(where, f"invalid {kind}: {str(exc).splitlines()[0]}") from None


def load_fhir(path: Path) -> FhirImport:
    return from_resources(read_resources(path), path.name)


def read_ndjson(paths: list[Path]) -> dict[str, list[tuple[str, dict]]]:
    """A FHIR bulk-data export (NDJSON: one resource per line, e.g. Patient.ndjson,
    Observation.ndjson): the resources we read, grouped by patient id. Every malformed line is
    reported (FhirErrors), so that no patient is enrolled from an export read only in part."""
    groups: dict[str, list[tuple[str, dict]]] = {}
    problems: list[FhirError] = []
    for path in paths:
        try:
            for where, resource in read_ndjson_lines(path):
                if len(problems) >= MAX_PROBLEMS:
                    problems.append(FhirError(where, f"stopped reading here after {MAX_PROBLEMS} problems; fix these and give the export again"))
                    break
                if isinstance(resource, JsonFileError):
                    problems.append(FhirError(resource.where, f"{resource.message}; {resource.fix}"))
                    continue
                try:
                    kind = _resource_type(resource, where)
                except FhirError as exc:
                    problems.append(exc)
                    continue
                if kind not in READ:
                    continue
                patient = _bulk_patient(resource, kind)
                if not patient:
                    problems.append(FhirError(where, f"{kind} without a patient ({'id' if kind == 'Patient' else 'subject.reference Patient/...'} is missing or not text)"))
                    continue
                groups.setdefault(patient, []).append((where, resource))
        except JsonFileError as exc:
            problems.append(FhirError(exc.where, f"{exc.message}; {exc.fix}"))
        if len(problems) > MAX_PROBLEMS:
            break
    if problems:
        raise BulkError(problems)
    return groups


def _bulk_patient(resource: dict, kind: str) -> str | None:
    """The patient id a bulk-data resource belongs to (text only), or None."""
    if kind == "Patient":
        patient = resource.get("id")
    else:
        subject = resource.get("subject")
        reference = subject.get("reference") if isinstance(subject, dict) else None
        patient = reference.split("/", 1)[1] if isinstance(reference, str) and reference.startswith("Patient/") else None
    return patient if isinstance(patient, str) and patient.strip() else None


class BulkError(ValueError):
    def __init__(self, problems: list[FhirError]):
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


def from_resources(resources, name: str) -> FhirImport:
    """PatientFacts from one patient's resources: (where, dict or validated model) pairs."""
    notes: list[str] = []
    patient_id = None
    identity: dict[str, Any] = {}
    demographics = Demographics()
    observations: list[Observation] = []
    conditions: list[Condition] = []
    medications: list[Medication] = []
    for where, resource in resources:
        kind = _resource_type(resource, where) if isinstance(resource, dict) else resource.get_resource_type()
        if kind not in READ:
            continue
        if isinstance(resource, dict):
            try:
                model = _model(kind).model_validate(resource)
            except Exception as exc:
                first = str(exc).splitlines()
                detail = first[1].strip() + ": " + first[2].strip() if len(first) > 2 else first[0]
                raise FhirError(f"{where} ({kind}/{resource.get('id', '?')})", f"invalid {kind}: {detail}") from None
        else:
            model = resource
        if kind == "Patient":
            patient_id = model.id or patient_id
            identity = _identity(model)
            demographics = Demographics(
                birth_date=model.birthDate,
                sex=model.gender if model.gender in ("male", "female", "other", "unknown") else None,
                deceased_date=_date(model.deceasedDateTime),
            )
        elif kind == "Condition":
            item = _condition(model, where, notes)
            if item is not None:
                conditions.append(item)
        elif kind == "Observation":
            observations.extend(_observations(model, where, notes))
        elif kind == "MedicationRequest":
            item = _medication(model)
            if item is not None:
                medications.append(item)
    pseudonym = "p-" + hashlib.sha256((patient_id or name).encode()).hexdigest()[:16]
    facts = PatientFacts(
        patient=pseudonym, demographics=demographics, observations=tuple(observations),
        conditions=tuple(conditions), medications=tuple(medications),
    )
    return FhirImport(facts, notes, identity)


def _identity(model: Any) -> dict[str, Any]:
    bsn = next((i.value for i in (model.identifier or []) if i.system == BSN_SYSTEM and i.value), None)
    name = None
    for human in model.name or []:
        name = human.text or " ".join([*(human.given or []), *([human.family] if human.family else [])]).strip() or None
        if name:
            break
    return {"bsn": bsn, "name": name, "birth_date": model.birthDate}


def _date(value: Any) -> dt.date | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = str(value)
    try:
        return dt.date.fromisoformat(text[:10]) if len(text) >= 10 else dt.date(int(text[:4]), int(text[5:7] or 1) if len(text) >= 7 else 1, 1)
    except ValueError:
        return None


def _codes(concept: Any) -> tuple[CodeRef, ...]:
    if concept is None:
        return ()
    return tuple(
        CodeRef(system=c.system or "", code=c.code, display=c.display)
        for c in (concept.coding or [])
        if c.code
    )


def _condition(model: Any, where: str, notes: list[str]) -> Condition | None:
    verification = _codes(model.verificationStatus)
    if any(c.code in ("refuted", "entered-in-error") for c in verification):
        return None
    codes = _codes(model.code)
    if not codes:
        return None
    onset = _date(model.onsetDateTime) or _date(getattr(model.onsetPeriod, "start", None)) or _date(model.recordedDate)
    abatement = _date(model.abatementDateTime) or _date(getattr(model.abatementPeriod, "end", None))
    status = _codes(model.clinicalStatus)
    if abatement is None and any(c.code in ENDED for c in status):
        abatement = onset or dt.date.min
        notes.append(f"{where}: {codes[0].code} is {status[0].code} without an end date; taken as not active")
    return Condition(codes=codes, onset=onset, abatement=abatement)


def _observations(model: Any, where: str, notes: list[str]) -> list[Observation]:
    if model.status in NOT_TRUE:
        return []
    at = _date(model.effectiveDateTime) or _date(getattr(model.effectivePeriod, "start", None)) or _date(model.issued)
    if at is None:
        notes.append(f"{where}: observation without a date left out")
        return []
    found = []
    value = _quantity(model.valueQuantity, _codes(model.code), where, notes) if model.valueQuantity is not None else None
    if value is not None:
        found.append(Observation(codes=_codes(model.code), value=value[0], unit=value[1], at=at))
    elif model.valueBoolean is not None:
        found.append(Observation(codes=_codes(model.code), value=model.valueBoolean, at=at))
    for j, component in enumerate(model.component or []):
        codes = _codes(component.code)
        if component.valueQuantity is not None and codes:
            value = _quantity(component.valueQuantity, codes, f"{where}.component[{j}]", notes)
            if value is not None:
                found.append(Observation(codes=codes, value=value[0], unit=value[1], at=at))
    return found


def _quantity(quantity: Any, codes: tuple[CodeRef, ...], where: str, notes: list[str]) -> tuple[float, str | None] | None:
    if quantity.value is None:
        return None
    unit = quantity.code if quantity.code and (quantity.system in (None, UCUM)) else quantity.unit
    if not unit:
        defined = next((LOINC_DEFINED_UNITS[c.code] for c in codes if c.code in LOINC_DEFINED_UNITS), None)
        if defined is not None:
            notes.append(f"{where}: {codes[0].code} has no unit; LOINC defines it in {defined}")
            unit = defined
    return float(quantity.value), unit


def _medication(model: Any) -> Medication | None:
    if model.status in ("entered-in-error", "cancelled", "draft"):
        return None
    codes = _codes(model.medicationCodeableConcept)
    if not codes:
        return None
    start = _date(model.authoredOn)
    end = None if model.status in ("active", "on-hold") else start
    return Medication(codes=codes, start=start, end=end)
