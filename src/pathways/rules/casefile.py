"""The format of an assurance cases file (`pathways/NAME/cases.yaml`), read with every problem
at its line. Only the schema: running the cases is ``cases``' job (it imports the rules engine,
which `pathways validate` does not need).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Literal, Union

from pydantic import BaseModel, ConfigDict, ValidationError

from pathways.definition.loader import CASES_FILE, Validation, display_path, schema_problems, validate_paths
from pathways.definition.places import Places
from pathways.definition.yamlsource import read_yaml
from pathways.errors import Problem, ProblemsFound
from pathways.facts.model import Indications

__all__ = ["CASES_FILE", "Case", "CaseFile", "CasePatient", "Expect", "load_cases", "read_cases", "validate_with_cases"]

Scalar = Union[bool, int, float, str]
Status = Literal["due", "not_due", "gated", "escalated"]
LONG_AGO = dt.date(2000, 1, 1)


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CasePatient(_Strict):
    birth_date: dt.date | None = None
    sex: Literal["male", "female", "other", "unknown"] | None = None
    deceased_date: dt.date | None = None
    conditions: dict[str, dt.date | None] = {}  # fact -> onset (None: long ago)
    ended_conditions: dict[str, tuple[dt.date, dt.date]] = {}  # fact -> (onset, abatement)
    medications: list[str] = []
    values: dict[str, Union[Scalar, tuple[Scalar, str]]] = {}  # observed on the case date
    series: dict[str, list[tuple[dt.date, Scalar]]] = {}
    events: dict[str, list[dt.date]] = {}
    indications: Indications = Indications()


class Expect(_Strict):
    indicated: bool | None = None
    steps: dict[str, Status] = {}
    escalations: list[str] | None = None  # exactly these escalation steps, when given
    eligibility: dict[str, bool | None] = {}
    eligibility_reasons: dict[str, list[str]] = {}  # route -> texts that must appear among its reasons
    facts: dict[str, Union[Scalar, None]] = {}
    issues: list[str] = []  # texts of the input problems this case must produce (and no others)


class Case(_Strict):
    id: str
    description: str
    at: dt.date
    patient: CasePatient
    expect: Expect


class CaseFile(_Strict):
    pathway: str
    cases: list[Case]



def read_cases(path: Path, display: str | None = None) -> tuple[CaseFile | None, list[Problem]]:
    """The cases of a file, or None with every problem found (each at its line)."""
    source, problems = read_yaml(path, display)
    if source is None or problems:
        return None, problems
    try:
        return CaseFile.model_validate(source.data), []
    except ValidationError as exc:
        return None, schema_problems(source, CaseFile, exc)


def load_cases(path: Path) -> CaseFile:
    cases, problems = read_cases(path)
    if cases is None:
        raise ProblemsFound(problems)
    return cases


def validate_with_cases(paths: list[Path] | list[str], places: Places = Places()) -> Validation:
    """What `pathways validate` checks: the pathway and library files named by ``paths`` and
    the cases files beside them and each folder's interaction library, every problem of every file in one run."""
    from pathways.definition.interactions import add_interactions

    result = validate_paths(paths, places)
    for file in result.cases:
        result.problems.extend(read_cases(file, display_path(file))[1])
    add_interactions(result, paths, places)  # sorts the problems
    return result
