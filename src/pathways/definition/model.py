"""The frozen definition of a pathway and of a shared library (pydantic v2).

A pathway file starts with ``pathway: <id>``; a shared library (facts, parameters and rules
that several pathways use, such as the Wlz/Wmo/Zvw/PGB eligibility rules) starts with
``library: <id>``. Unknown keys are rejected; every model is frozen. Cross-references (facts
named in gates, steps named in ``requires``) are checked by ``checks``, not here, so that all
problems of a file are found in one run.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from pathways.definition.durations import Duration
from pathways.definition.expr import Expr

STAGES: tuple[str, ...] = ("intake", "anamnesis", "goals", "interventions", "reviews", "escalation")
Stage = Literal["intake", "anamnesis", "goals", "interventions", "reviews", "escalation"]

DISCIPLINES: dict[str, str] = {
    "huisarts": "huisarts (general practitioner)",
    "poh": "praktijkondersteuner huisarts (practice nurse)",
    "casemanager": "casemanager",
    "wijkverpleegkundige": "wijkverpleegkundige (district nurse)",
    "internist": "internist",
    "nefroloog": "nefroloog / internist-nefroloog",
    "longarts": "longarts (pulmonologist)",
    "cardioloog": "cardioloog",
    "hartfalenverpleegkundige": "hartfalenverpleegkundige (heart failure nurse)",
    "dietist": "diëtist",
    "fysiotherapeut": "fysiotherapeut",
    "ergotherapeut": "ergotherapeut",
    "apotheker": "apotheker (pharmacist)",
    "psycholoog": "psycholoog",
    "podotherapeut": "podotherapeut",
    "oogarts": "oogarts (ophthalmologist)",
    "optometrist": "optometrist / funduscreener",
    "specialist_ouderengeneeskunde": "specialist ouderengeneeskunde",
    "verpleegkundig_specialist": "verpleegkundig specialist",
    "laboratorium": "laboratorium",
    "mantelzorger": "mantelzorger (informal carer)",
    "patient": "patiënt",
    "ciz": "CIZ (Wlz indication)",
    "gemeente": "gemeente (Wmo consultant)",
    "zorgkantoor": "zorgkantoor",
    "zorgverzekeraar": "zorgverzekeraar",
}
Discipline = Literal[
    "huisarts", "poh", "casemanager", "wijkverpleegkundige", "internist", "nefroloog", "longarts",
    "cardioloog", "hartfalenverpleegkundige", "dietist", "fysiotherapeut", "ergotherapeut", "apotheker",
    "psycholoog", "podotherapeut", "oogarts", "optometrist", "specialist_ouderengeneeskunde",
    "verpleegkundig_specialist", "laboratorium", "mantelzorger", "patient", "ciz", "gemeente",
    "zorgkantoor", "zorgverzekeraar",
]  # fmt: skip
Financing = Literal["zvw", "zvw_wijkverpleging", "aanvullend", "wlz", "wmo", "pgb"]
Confidence = Literal["P", "S", "M"]
CodeSystem = Literal["loinc", "snomed", "icpc", "icd10", "nhg45", "atc", "local"]
FactType = Literal["quantity", "count", "boolean", "code", "date", "text"]
FactSource = Literal["observation", "condition", "medication", "demographic", "recorded", "indication", "event"]
DerivedFunction = Literal["latest", "value_ago", "change", "pct_change", "count", "min", "max", "days_since", "age"]
Severity = Literal["spoed", "regulier"]
EscalationAction = Literal[
    "spoedconsult", "consultatie_specialist", "verwijzing_specialist", "opschaling_specialist", "huisarts_informeren"
]
Modality = Literal["must", "may"]

Identifier = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]
SemVer = Annotated[str, StringConstraints(pattern=r"^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$")]
NonEmpty = Annotated[str, StringConstraints(min_length=1, max_length=2000)]


class Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class Text(Strict):
    """Text in Dutch, optionally in English too."""

    nl: NonEmpty
    en: NonEmpty | None = None


class BilingualText(Text):
    en: NonEmpty


class Source(Strict):
    """A guideline, law or protocol that the file cites, pinned to a version."""

    id: Identifier
    title: NonEmpty
    version: NonEmpty
    publisher: NonEmpty | None = None
    url: NonEmpty | None = None
    confidence: Confidence = "P"


class Evidence(Strict):
    """Where a threshold or step comes from: a declared source, the part of it, and how sure."""

    source: Identifier
    section: NonEmpty | None = None
    confidence: Confidence
    note: NonEmpty | None = None


class Code(Strict):
    system: CodeSystem
    code: NonEmpty
    display: NonEmpty | None = None
    confidence: Confidence | None = None  # how sure the mapping is (guidelines.md labels)


class LinearConversion(Strict):
    """value_in_canonical_unit = slope * value_in_unit + intercept, for conversions that are
    equations between methods rather than units (HbA1c NGSP % -> IFCC mmol/mol)."""

    unit: NonEmpty
    slope: float
    intercept: float
    evidence: Evidence


class Fact(Strict):
    """Something known about a patient: a lab value, a diagnosis, a recorded answer."""

    type: FactType
    title: NonEmpty
    source: FactSource
    unit: NonEmpty | None = None
    codes: tuple[Code, ...] = ()
    values: tuple[NonEmpty, ...] | None = None
    range: tuple[float, float] | None = None
    molar_mass_g_mol: float | None = Field(default=None, gt=0)  # to convert mass <-> molar concentrations
    convert_from: tuple[LinearConversion, ...] = ()
    prom: bool = False  # a patient-reported outcome measure (PROM): reported over time in audits
    label: Text | None = None  # the short clinical name letters use ("eGFR", "leeftijd"); else the title
    value_titles: dict[str, Text] | None = None  # a code fact's values as a letter writes them (male: {nl: man})

    @model_validator(mode="after")
    def _consistent(self) -> "Fact":
        if self.type == "quantity" and not self.unit:
            raise ValueError("a quantity fact needs its canonical unit (unit: ...)")
        if self.type not in ("quantity", "count") and self.unit:
            raise ValueError(f"a {self.type} fact has no unit; remove 'unit'")
        if self.values is not None and self.type != "code":
            raise ValueError("only a code fact lists its values; remove 'values' or make it type: code")
        if self.type == "code" and not self.values:
            raise ValueError("a code fact lists the values it can take (values: [...])")
        unknown = sorted(set(self.value_titles or ()) - set(self.values or ()))
        if unknown:
            raise ValueError(f"value_titles names values the fact does not list: {', '.join(unknown)} (values: {', '.join(self.values or ())})")
        if self.range is not None:
            if self.type not in ("quantity", "count"):
                raise ValueError("only quantity and count facts have a plausible range")
            if self.range[0] >= self.range[1]:
                raise ValueError("range must be [lowest, highest] with lowest < highest")
        return self


class Derived(Strict):
    """A fact computed from another one over time, at the evaluation date."""

    function: DerivedFunction
    of: Identifier
    window: Duration | None = None
    title: NonEmpty | None = None
    label: Text | None = None  # the short clinical name letters use

    @model_validator(mode="after")
    def _window(self) -> "Derived":
        needs_window = self.function in ("value_ago", "change", "pct_change", "count", "min", "max")
        if needs_window and self.window is None:
            raise ValueError(f"{self.function} needs a window (e.g. window: 3d)")
        if not needs_window and self.window is not None:
            raise ValueError(f"{self.function} takes no window; remove 'window'")
        return self


class Alternative(Strict):
    """Another value that another source gives for a configurable parameter."""

    value: Union[float, int, str, bool]
    evidence: Evidence
    note: NonEmpty | None = None


class Parameter(Strict):
    """A threshold or setting; care networks may override it (sources disagree)."""

    title: NonEmpty
    value: Union[bool, int, float, str]
    unit: NonEmpty | None = None
    evidence: Evidence
    alternatives: tuple[Alternative, ...] = ()
    # how a letter names the threshold, with {value} where its value goes:
    # "de verwijsgrens van {value} voor 65-plussers"; without one, "de grens van {value}"
    label: Text | None = None


class Rule(Strict):
    """A named condition; ``may`` marks a discretionary rule (a body may, not must, decide so)."""

    title: NonEmpty
    when: Expr
    modality: Modality = "must"
    evidence: Evidence | None = None
    effective_from: dt.date | None = None
    effective_until: dt.date | None = None


class Deadline(Strict):
    """A statutory deadline: due ``within`` after the date fact ``after``."""

    id: Identifier
    title: NonEmpty
    route: Financing  # the financing route whose procedure the deadline belongs to
    after: Identifier
    within: Duration
    evidence: Evidence


class Timing(Strict):
    """When a step becomes due: ``offset`` after the anchor, or recurring at ``at`` then ``every``."""

    after: Identifier = "enrollment"
    offset: Duration = Duration(0, "d")
    at: tuple[Duration, ...] = ()
    every: Duration | None = None
    until: Duration | None = None


class Output(Strict):
    """A fact that the responsible discipline records when doing the step."""

    fact: Identifier
    required: bool = True


class Goal(Strict):
    """A SMART goal agreed with the patient: measured fact, baseline, target, deadline."""

    id: Identifier
    title: Text
    fact: Identifier
    when: Expr | None = None  # the goal applies to patients for whom this holds
    baseline: Union[Literal["recorded"], float] = "recorded"
    target: NonEmpty  # a comparison with the fact on the left left out, e.g. "<= 53" or "<= hba1c_target"
    deadline: Duration
    evidence: Evidence | None = None


class Escalation(Strict):
    trigger: Expr
    severity: Severity
    action: EscalationAction
    notify: tuple[Discipline, ...] = Field(min_length=1)
    # once acted on, the escalation opens again while its trigger keeps holding only after this
    # long (without it: only after the patient recovered and the trigger newly holds)
    reopen_after: Duration | None = None


class Step(Strict):
    id: Identifier
    title: Text
    stage: Stage
    discipline: Discipline
    description: NonEmpty | None = None
    requires: tuple[Identifier, ...] = ()
    gate: Expr | None = None
    financing: Financing = "zvw"
    timing: Timing | None = None
    outputs: tuple[Output, ...] = ()
    goals: tuple[Goal, ...] = ()
    document: Identifier | None = None
    evidence: Evidence | None = None
    escalation: Escalation | None = None


class Indication(Strict):
    """Who the pathway is for: inclusion (``when``) and exclusions (``exclude``)."""

    when: Expr
    exclude: Expr | None = None
    evidence: Evidence


class _Definitions(Strict):
    sources: tuple[Source, ...] = ()
    facts: dict[Identifier, Fact] = {}
    derived: dict[Identifier, Derived] = {}
    parameters: dict[Identifier, Parameter] = {}
    rules: dict[Identifier, Rule] = {}


class PathwaySpec(_Definitions):
    id: Identifier = Field(alias="pathway")
    version: SemVer
    title: BilingualText
    owner: NonEmpty
    description: NonEmpty | None = None
    sources: tuple[Source, ...] = Field(min_length=1)
    uses: tuple[Identifier, ...] = ()
    indication: Indication
    steps: tuple[Step, ...] = Field(min_length=1)


class Library(_Definitions):
    """Definitions shared by several pathways, e.g. financing eligibility (Wlz, Wmo, Zvw, PGB)."""

    id: Identifier = Field(alias="library")
    version: SemVer
    title: BilingualText
    owner: NonEmpty
    description: NonEmpty | None = None
    effective_from: dt.date
    effective_until: dt.date | None = None
    sources: tuple[Source, ...] = Field(min_length=1)
    financing: dict[Financing, Identifier] = {}
    deadlines: tuple[Deadline, ...] = ()
