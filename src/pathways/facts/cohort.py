"""A cohort: the patient files in a folder, read one patient at a time (``run`` enrols them,
``simulate`` runs them forward). FHIR bundles, facts JSON, and the .ndjson files of a FHIR
bulk-data export read together; a file that cannot be read is reported, not raised, so that the
rest of the cohort goes on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from pathways.facts.load import PatientFile, PatientFileError, load_bulk_export, load_patient_file

SUFFIXES = (".json", ".json.gz", ".xml", ".ndjson")


class NoPatientFiles(ValueError):
    """A cohort folder with no patient file in it (or no folder at all)."""

    def __init__(self, folder: Path):
        super().__init__(f"{folder}: no patient files ({', '.join(SUFFIXES)})")
        self.folder = folder


def patient_files(folder: Path) -> list[Path]:
    """The patient files in ``folder``, by name; NoPatientFiles when there are none."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name.lower().endswith(SUFFIXES)) if folder.is_dir() else []
    if not files:
        raise NoPatientFiles(folder)
    return files


def read_cohort(files: list[Path]) -> Iterator[tuple[str, PatientFile | PatientFileError, str | None]]:
    """(label, PatientFile or PatientFileError, source) per patient: one per file, and one per
    patient of the .ndjson files (a bulk export) together. A malformed bulk export is one failure.
    ``source`` names where the facts came from (``file:NAME`` or ``bulk:NAMES``); None on failure."""
    bulk = [p for p in files if p.name.lower().endswith(".ndjson")]
    for path in files:
        if path in bulk:
            continue
        try:
            yield path.name, load_patient_file(path), f"file:{path.name}"
        except PatientFileError as exc:
            yield path.name, exc, None
    if bulk:
        try:
            for label, patient in load_bulk_export(bulk):
                yield label, patient, f"bulk:{','.join(p.name for p in bulk)}"
        except PatientFileError as exc:
            yield ", ".join(p.name for p in bulk), exc, None
