"""Enrolling a patient from a file uploaded in the web application: as ``pathways enroll --facts
FILE`` or ``--fhir FILE`` (``service.enroll_file``: the same reading, limits and checks), from an
upload copied into a private temporary folder under the name it was sent with (so that the
problems name that file, not the folder), removed afterwards. Every refusal is one
``UploadRefused`` with the problems and the status the web answers with: 413 for a file over the
size limit (``facts.jsonread.MAX_DOCUMENT_BYTES``), 400 for anything else; nothing is stored then."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import BinaryIO

from pathways.clock import Clock
from pathways.definition.loader import available_pathways
from pathways.orchestration.settings import current
from pathways.errors import ProblemsFound
from pathways.facts.jsonread import MAX_DOCUMENT_BYTES
from pathways.facts.load import PatientFileError
from pathways.orchestration.service import Enrolled, EnrolledInOtherVersion, Runtimes, authorize, enroll_file
from pathways.orchestration.versions import DraftPathway
from pathways.store.db import Store

SUFFIXES = (".json", ".json.gz", ".xml")
_PATIENT_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")  # as `pathways enroll`
_CHUNK = 1 << 20


class UploadRefused(ValueError):
    """An upload that enrolled no one: every problem, and the HTTP status (400 or 413)."""

    def __init__(self, problems: list[str], status: int = 400):
        super().__init__("; ".join(problems))
        self.problems, self.status = problems, status


def enroll_upload(store: Store, runtimes: Runtimes, pathway: str, filename: str, upload: BinaryIO, clock: Clock,
                  patient_id: str | None = None, limit: int = MAX_DOCUMENT_BYTES) -> Enrolled:
    """Enrol the patient of an uploaded facts JSON or FHIR file (``patient_id``: under this
    pseudonymous id instead of the file's own). UploadRefused, with nothing stored, otherwise."""
    authorize(store, "enrollment.write", f"enrol patients in {pathway}", patient_id or pathway)
    name = Path(filename.replace("\\", "/")).name
    if not name.lower().endswith(SUFFIXES) or not re.fullmatch(r"[A-Za-z0-9._ -]{1,200}", name):
        raise UploadRefused([f"'{name or '(no file)'}': upload a patient's facts JSON or FHIR file (.json, .json.gz or .xml; "
                             "a name of letters, digits, dots, dashes and underscores)"])
    if patient_id is not None and not _PATIENT_ID.fullmatch(patient_id):
        raise UploadRefused([f"patient id '{patient_id}' is not a pseudonymous id: use letters, digits and . _ : - only "
                             "(or leave it empty for the file's own)"])
    with tempfile.TemporaryDirectory(prefix="pathways-upload-") as folder:
        path = Path(folder) / name
        size = 0
        with path.open("wb") as copy:
            while chunk := upload.read(_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise UploadRefused([f"{name}: the file is over the {limit // 1_000_000 or limit} "
                                         f"{'MB' if limit >= 1_000_000 else 'bytes'} limit for a patient file; "
                                         "send a large FHIR record as a bulk-data export (pathways facts add)"], 413)
                copy.write(chunk)
        try:
            return enroll_file(store, runtimes, pathway, path, clock, patient_id)
        except (ProblemsFound, PatientFileError, DraftPathway, EnrolledInOtherVersion) as exc:
            problems = [str(p) for p in exc.problems] if hasattr(exc, "problems") else [str(exc)]
            raise UploadRefused([p.replace(f"{folder}/", "") for p in problems]) from None


def pathway_choices() -> list[str]:
    """The pathways one may enrol in (on PATHWAYS_PATH; enrolling refuses a draft with its reason)."""
    return sorted(available_pathways(current().places))
