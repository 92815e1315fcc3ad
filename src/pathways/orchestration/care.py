"""What the care team sees and does in the web application, without the web: the worklist with
each row's step title and discipline, an enrollment as it stands, the form a step's declared
outputs make, and recording it (``service.record_step``: the same validation and advance as
``pathways record``), then advancing it through Prefect (``warm``). Every read of a patient's data is audited (``patient_data.read``)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from pathways.clock import Clock
from pathways.definition.wording import text_in
from pathways.orchestration import service
from pathways.orchestration.service import Runtimes, authorize, record_step
from pathways.orchestration.warm import Advance, WarmPrefect
from pathways.runtime.core import Event
from pathways.store import worklist as queries
from pathways.store.audit import Record
from pathways.store.db import Store
from pathways.store.vocabulary import Action, Key

LANG = "en"


@dataclass(frozen=True)
class WorkItem:
    enrollment: str
    patient: str
    pathway: str
    step: str
    title: str
    discipline: str
    due_on: dt.date
    overdue: bool


@dataclass(frozen=True)
class Worklist:
    items: list[WorkItem]
    total: int
    page: int
    pages: int
    pathways: list[str]  # the filter's choices
    disciplines: list[str]


def worklist(store: Store, runtimes: Runtimes, today: dt.date, *, discipline: str | None = None, pathway: str | None = None,
             since: dt.date | None = None, until: dt.date | None = None, page: int = 1, size: int = 25) -> Worklist:
    """Due and overdue steps across all enrollments, sorted by due date, one page (1-based)."""
    authorize(store, "enrollment.read", "read the worklist", "worklist")
    versions = {key: runtimes.get_version(key, store) for key in queries.version_keys(store)}
    disciplines = sorted({s.discipline for r in versions.values() for s in r.spec.steps})
    pathways = sorted({r.spec.id for r in versions.values()})
    steps = None
    if discipline:
        steps = {key: {s.id for s in r.spec.steps if s.discipline == discipline} for key, r in versions.items()}
    page = max(1, page)
    found = queries.due_steps(store, pathway=pathway or None, steps=steps, since=since, until=until, offset=(page - 1) * size, limit=size)
    items = []
    for row in found.rows:
        spec = versions[row.version_key].steps[row.step] if row.version_key in versions else None
        items.append(WorkItem(row.enrollment, row.patient, row.pathway, row.step, text_in(spec.title, LANG) if spec else row.step,
                              spec.discipline if spec else "", row.due_on, row.due_on < today))
    if items:  # which patients' due steps were shown, to whom
        store.record_audit([Record(Action.PATIENT_DATA_READ, subject="worklist",
                                   payload={Key.PAGE: "worklist", Key.ENROLLMENTS: sorted({i.enrollment for i in items}),
                                            "filters": {"discipline": discipline, "pathway": pathway,
                                                        "since": since and since.isoformat(), "until": until and until.isoformat(), "page": page}})])
    return Worklist(items, found.total, page, max(1, -(-found.total // size)), pathways, disciplines)


@dataclass(frozen=True)
class StepView:
    id: str
    title: str
    stage: str
    discipline: str
    status: str
    due_on: dt.date | None
    done_on: tuple[dt.date, ...]
    reasons: tuple[str, ...]
    recordable: bool


@dataclass(frozen=True)
class EnrollmentView:
    enrollment: str
    patient: str
    pathway: str
    title: str
    version: str
    enrolled_on: dt.date
    as_of: dt.date
    state_version: int
    steps: list[StepView]
    goals: list[dict[str, Any]]
    escalations: list[dict[str, Any]]


def enrollment_view(store: Store, runtimes: Runtimes, enrollment: str, page: str = "enrollment") -> EnrollmentView:
    """An enrollment as it stands (UnknownEnrollment if there is none); the read is audited."""
    authorize(store, "enrollment.read", f"read enrollment {enrollment}", enrollment)
    state, version = store.load(enrollment)
    runtime = runtimes.get_version(state.version_key, store)
    steps = []
    for spec in runtime.spec.steps:
        progress = state.steps.get(spec.id)
        if progress is None:
            continue
        status = "escalated" if spec.id in state.escalations else ("done" if progress.status == "finished" and progress.done_on else progress.status)
        recordable = (spec.escalation is None and progress.status == "due") or spec.id in state.escalations
        steps.append(StepView(spec.id, text_in(spec.title, LANG), spec.stage, spec.discipline, status, progress.due_on,
                              progress.done_on, progress.reasons, recordable))
    facts = runtime.evaluator.plan.facts
    observed = store.patient_facts(state.patient).observations if state.goals else ()
    goals = [{"id": goal, "fact": g.fact, "target": g.target, "deadline": g.deadline, "status": g.status.replace("_", " "),
              "baseline": g.baseline, "latest": g.latest, "agreed_on": g.agreed_on, "unit": facts[g.fact].unit if g.fact in facts else None,
              "points": _progress(observed, g.fact, facts[g.fact].unit if g.fact in facts else None, g.agreed_on)}
             for goal, g in state.goals.items()]
    escalations = [{"step": step, "title": text_in(runtime.steps[step].title, LANG) if step in runtime.steps else step,
                    "since": e.since, "severity": e.severity, "action": e.action, "reasons": e.reasons}
                   for step, e in state.escalations.items()]
    store.record_audit([Record(Action.PATIENT_DATA_READ, state.patient, enrollment, state.pathway, state.version, state.version_key,
                               enrollment, {Key.PAGE: page})])
    return EnrollmentView(enrollment, state.patient, state.pathway, text_in(runtime.spec.title, LANG), state.version,
                          state.enrolled_on, state.as_of, version, steps, goals, escalations)


def _progress(observations, fact: str, unit: str | None, since: dt.date) -> list[tuple[dt.date, float]]:
    """A goal's values since it was agreed: the observations of its fact in the fact's own unit
    (values in another unit are left out of the plot; the goal's status counts them)."""
    return [(o.at, float(o.value)) for o in observations
            if o.fact == fact and o.at >= since and isinstance(o.value, (int, float)) and not isinstance(o.value, bool)
            and (o.unit is None or o.unit == unit)]


@dataclass(frozen=True)
class Field:
    name: str  # the output fact
    title: str
    type: str  # quantity | count | boolean | code | date | text
    required: bool
    unit: str | None = None
    choices: list[tuple[str, str]] = field(default_factory=list)  # (value, label)
    help: str = ""


def step_fields(store: Store, runtimes: Runtimes, version_key: str, step: str) -> list[Field]:
    """The form of a step: one field per declared output, typed as its fact."""
    runtime = runtimes.get_version(version_key, store)
    facts = runtime.evaluator.plan.facts
    fields = []
    for output in runtime.steps[step].outputs:
        fact = facts[output.fact]
        helps = [f"{output.fact}"]
        if fact.unit:
            helps.append(f"in {fact.unit} (another unit of the same kind is converted)")
        if fact.range:
            helps.append(f"plausible {fact.range[0]:g}-{fact.range[1]:g}")
        choices = [(v, text_in((fact.value_titles or {}).get(v), LANG) or v) for v in fact.values or ()]
        fields.append(Field(output.fact, fact.title, fact.type, output.required, fact.unit, choices, "; ".join(helps)))
    return fields


def form_values(fields: list[Field], form: dict[str, str]) -> dict[str, Any]:
    """The posted form as ``pathways record`` reads a JSON file: output -> value (or {value, unit}).
    Empty fields are left out; text that is not a number stays text, for record_step to refuse.
    Fields the step does not declare are passed on as posted (and refused there)."""
    data: dict[str, Any] = {}
    known = {f.name: f for f in fields}
    for key, raw in form.items():
        if not key.startswith("out."):
            continue
        name, text = key[4:], raw.strip()
        if not text:
            continue
        spec = known.get(name)
        if spec is None:
            data[name] = text
        elif spec.type in ("quantity", "count"):
            value = _number(text)
            unit = form.get(f"unit.{name}", "").strip()
            data[name] = {"value": value, "unit": unit} if spec.type == "quantity" and unit else value
        elif spec.type == "boolean":
            data[name] = {"true": True, "false": False}.get(text, text)
        else:
            data[name] = text
    return data


def _number(text: str) -> Any:
    try:
        number = float(text.replace(",", "."))  # Dutch decimal comma
    except ValueError:
        return text
    return int(number) if number.is_integer() and "." not in text and "," not in text else number


def record(store: Store, runtimes: Runtimes, enrollment: str, step: str, data: dict[str, Any], clock: Clock) -> list[Event]:
    """Record a step from the web: as ``pathways record`` (validated, stored, advanced at once)."""
    return record_step(store, runtimes, enrollment, step, data, clock, note={"via": "web"}, today=clock.today())


def advance_recorded(store: Store, prefect: WarmPrefect, enrollment: str, clock: Clock) -> Advance:
    """After a step was recorded (and committed): the enrollment's flow run through Prefect on the
    day it stands (``pathways advance ENROLLMENT``: its decisions in Prefect, its next review
    scheduled, its plan renewed). Pending (``Advance.done`` false) when Prefect fails: the step
    stays recorded and the daily run advances it."""
    state, _ = store.load(enrollment)
    return prefect.advance(state.version_key, enrollment, max(clock.today(), state.as_of))


def sign_off(store: Store, runtimes: Runtimes, enrollment: str, step: str, outcome: str, clock: Clock) -> list[Event]:
    """Sign off an open escalation from the web, by the logged-in account: as the answer to
    ``pathways signoff`` (``service.sign_off``), without a paused flow run to wait in."""
    return service.sign_off(store, runtimes, enrollment, step, store.actor.user, outcome, clock, via="web")
