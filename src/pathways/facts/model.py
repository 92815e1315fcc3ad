"""What is known about one patient, as pydantic models: the input of `pathways evaluate --facts`.

Patients are named by a pseudonymous id only. Values carry their unit as written (UCUM);
conversion to a pathway's canonical units happens in ``resolve``. Dates are ISO dates.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

Scalar = Union[bool, int, float, str]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CodeRef(_Model):
    system: str  # loinc | snomed | icpc | nhg45 | icd10 | atc | rxnorm | a FHIR system URI
    code: str
    display: str | None = None


class _Coded(_Model):
    """Names its fact directly (``fact``) or by a code (or codes) that a pathway fact lists."""

    fact: str | None = None
    code: CodeRef | None = None
    codes: tuple[CodeRef, ...] = ()  # more codings of the same thing (FHIR CodeableConcept)

    @model_validator(mode="after")
    def _named(self):
        if self.fact is None and self.code is None and not self.codes:
            raise ValueError("give the fact name or its code")
        return self

    @property
    def all_codes(self) -> tuple[CodeRef, ...]:
        return ((self.code,) if self.code else ()) + self.codes


class Observation(_Coded):
    """A measured or recorded value at a date (lab, vital sign, questionnaire, recorded answer)."""

    value: Scalar
    unit: str | None = None
    at: dt.date


class Condition(_Coded):
    """A diagnosis: active from onset until abatement (open-ended when absent)."""

    onset: dt.date | None = None
    abatement: dt.date | None = None


class Medication(_Coded):
    start: dt.date | None = None
    end: dt.date | None = None


class Event(_Coded):
    """Something that happened once (an exacerbation, an unplanned admission)."""

    at: dt.date


class Demographics(_Model):
    birth_date: dt.date | None = None
    sex: Literal["male", "female", "other", "unknown"] | None = None
    deceased_date: dt.date | None = None


class WlzIndication(_Model):
    zorgprofiel: str | None = None
    besluit_date: dt.date | None = None
    aanvraag_date: dt.date | None = None
    leveringsvorm: Literal["intramuraal", "vpt", "mpt", "pgb"] | None = None


class WmoIndication(_Model):
    melding_date: dt.date | None = None
    aanvraag_date: dt.date | None = None
    beschikking_date: dt.date | None = None


class WijkverplegingIndication(_Model):
    indication_date: dt.date | None = None
    specialist_managed: bool | None = None


class Indications(_Model):
    """Existing financing indications: Wlz (CIZ), Wmo (municipality), Zvw wijkverpleging."""

    wlz: WlzIndication | None = None
    wmo: WmoIndication | None = None
    wijkverpleging: WijkverplegingIndication | None = None


class LivingSituation(_Model):
    living_alone: bool | None = None
    adl_dependent: bool | None = None
    informal_carer: bool | None = None


class Insurance(_Model):
    basic: bool = True  # basisverzekering (Zvw)
    supplementary: bool | None = None  # aanvullende verzekering
    deductible_remaining_eur: float | None = Field(default=None, ge=0)  # eigen risico left


class PatientFacts(_Model):
    patient: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")
    demographics: Demographics = Demographics()
    observations: tuple[Observation, ...] = ()
    conditions: tuple[Condition, ...] = ()
    medications: tuple[Medication, ...] = ()
    events: tuple[Event, ...] = ()
    indications: Indications = Indications()
    living: LivingSituation = LivingSituation()
    insurance: Insurance = Insurance()
