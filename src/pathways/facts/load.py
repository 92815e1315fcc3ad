"""Read a patient file: our facts JSON, or FHIR (Bundle or resource; JSON, .json.gz or XML).
Every problem names the file and the field."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from pathways.facts.fhir import BulkError, FhirError, from_resources, load_fhir, read_ndjson
from pathways.facts.jsonread import JsonFileError, read_json
from pathways.facts.model import PatientFacts
from pathways.facts.problems import Partial, partial, place_key, schema_message


class PatientFileError(ValueError):
    """``schema``: (field, message) of a facts file's schema problems, and ``partial`` the facts
    that did parse, so that a caller with a pathway can report the rest in the same round."""

    def __init__(self, problems: list[str], schema: list[tuple[str, str]] | None = None, partial: Partial | None = None):
        super().__init__("\n".join(problems))
        self.problems = problems
        self.schema = schema or []
        self.partial = partial


@dataclass
class PatientFile:
    facts: PatientFacts
    source: str  # "facts" or "fhir"
    notes: list[str] = field(default_factory=list)
    identity: dict = field(default_factory=dict)  # bsn, name, birth_date when the file has them (FHIR)


def _loc(loc: tuple) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def load_facts_json(path: Path) -> PatientFile:
    try:
        data = read_json(path)  # within the size and depth limits of jsonread
    except JsonFileError as exc:
        raise PatientFileError([str(exc)]) from None
    if isinstance(data, dict) and "resourceType" in data:
        return load_fhir_file(path)
    try:
        return PatientFile(PatientFacts.model_validate(data), "facts")
    except ValidationError as exc:
        schema = sorted((schema_message(e) for e in exc.errors(include_url=False)), key=lambda item: place_key(item[0]))
        raise PatientFileError([f"{path}: {at}: {message}" for at, message in schema], schema, partial(data, exc)) from None


def load_fhir_file(path: Path) -> PatientFile:
    try:
        imported = load_fhir(path)
    except FhirError as exc:
        raise PatientFileError([str(exc)]) from None
    except ValidationError as exc:
        raise PatientFileError([f"{path}: {_loc(e['loc'])}: {e['msg']}" for e in exc.errors(include_url=False)]) from None
    return PatientFile(imported.facts, "fhir", imported.notes, imported.identity)


def load_patient_file(path: Path) -> PatientFile:
    """A facts JSON or a FHIR file, told apart by content."""
    name = path.name.lower()
    if name.endswith((".json.gz", ".xml")):
        return load_fhir_file(path)
    return load_facts_json(path)


def load_bulk_export(paths: list[Path]) -> list[tuple[str, PatientFile | PatientFileError]]:
    """A FHIR bulk-data export (NDJSON files): one PatientFile per patient, or the problem that
    keeps that patient out. A malformed line anywhere refuses the whole export (PatientFileError
    naming every bad line): no patient is enrolled from an export read only in part."""
    try:
        groups = read_ndjson(paths)
    except BulkError as exc:
        raise PatientFileError([str(p) for p in exc.problems]) from None
    found: list[tuple[str, PatientFile | PatientFileError]] = []
    for patient, resources in sorted(groups.items()):
        label = f"{paths[0].parent.name}/ Patient/{patient}"
        try:
            imported = from_resources(resources, patient)
        except FhirError as exc:
            found.append((label, PatientFileError([str(exc)])))
            continue
        except ValidationError as exc:
            found.append((label, PatientFileError([f"Patient/{patient}: {_loc(e['loc'])}: {e['msg']}" for e in exc.errors(include_url=False)])))
            continue
        found.append((label, PatientFile(imported.facts, "fhir-bulk", imported.notes, imported.identity)))
    return found
