"""FHIR R4 export: a pathway as PlanDefinition + ActivityDefinitions (actions carry their gate
expressions and citations); an enrollment as CarePlan + Goals + Tasks for the steps that are due
or held back. Every resource is validated with fhir.resources' R4B models (R4-compatible) before
anything is written. Patients are referenced by pseudonymous identifier only."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

from pathways.definition import documents as D
from pathways.definition.loader import LoadedPathway

BASE = "urn:pathways"  # canonical URLs: urn:pathways:PlanDefinition/diabetes
EXPRESSION_LANGUAGE = "text/x-pathways-expression"  # our rule language (docs/language.md); not CQL
ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
CODE_SYSTEMS = {"loinc": "http://loinc.org", "snomed": "http://snomed.info/sct", "icpc": "http://hl7.org/fhir/sid/icpc-1-nl",
                "icd10": "http://hl7.org/fhir/sid/icd-10", "nhg45": "https://referentiemodel.nhg.org/tabellen/nhg-tabel-45"}
UNITS = {"d": "d", "w": "wk", "mo": "mo", "y": "a"}  # our duration units -> UCUM (FHIR Timing units)


class ExportError(ValueError):
    pass


def _id(text: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9\-.]", "-", text)[:64]
    return cleaned


def full_url(kind: str, rid: str) -> str:
    """A stable urn:uuid for a resource in an exported Bundle (references inside use it)."""
    import uuid

    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'{BASE}:{kind}/{rid}')}"


def _canonical(kind: str, name: str) -> str:
    return f"{BASE}:{kind}/{name}"


def _duration(duration) -> dict[str, Any]:
    unit = str(duration.unit)
    return {"value": duration.amount, "unit": unit, "system": "http://unitsofmeasure.org", "code": UNITS.get(unit, unit)}


def _citations(loaded: LoadedPathway, evidence) -> list[dict[str, Any]]:
    if evidence is None:
        return []
    sources = {s.id: s for s in loaded.spec.sources}
    for library in loaded.libraries:
        sources.update({s.id: s for s in library.model.sources})
    source = sources.get(evidence.source)
    if source is None:
        return []
    citation = f"{source.title}, {source.version}" + (f", {evidence.section}" if getattr(evidence, "section", None) else "") + f" (confidence {evidence.confidence})"
    item = {"type": "citation", "label": source.id, "display": source.title, "citation": citation}
    if source.url:
        item["url"] = source.url
    return [item]


def _timing(step) -> dict[str, Any]:
    timing = step.timing
    if timing is None:
        return {}
    described = f"after {timing.after}: " + ", ".join(str(d) for d in (timing.at or (timing.offset,)))
    if timing.every is not None:
        unit = str(timing.every.unit)
        return {"timingTiming": {"repeat": {"frequency": 1, "period": timing.every.amount, "periodUnit": UNITS.get(unit, unit)},
                                 "code": {"text": described + f", then every {timing.every}" + (f" until {timing.until}" if timing.until else "")}}}
    if len(timing.at) > 1:
        return {"timingTiming": {"repeat": {"count": len(timing.at)}, "code": {"text": described}}}
    return {"timingDuration": _duration(timing.at[0] if timing.at else timing.offset)}


def plan_definition(loaded: LoadedPathway) -> list[dict[str, Any]]:
    """The pathway as a PlanDefinition (actions in stage order) and one ActivityDefinition per step."""
    spec = loaded.spec
    activities = []
    actions = []
    for step in spec.steps:
        url = _canonical("ActivityDefinition", f"{spec.id}.{step.id}")
        activity = {
            "resourceType": "ActivityDefinition", "id": _id(f"{spec.id}-{step.id}"), "url": url, "version": spec.version,
            "name": step.id, "title": D.text(step.title, "nl"), "status": "active", "kind": "Task",
            "description": step.description or D.text(step.title, "en") or D.text(step.title, "nl"),
            "topic": [{"text": step.stage}],
            "participant": [{"type": "patient" if step.discipline == "patient" else ("related-person" if step.discipline == "mantelzorger" else "practitioner"),
                             "role": {"text": step.discipline}}],
            "relatedArtifact": _citations(loaded, step.evidence) or None,
            **_timing(step),
        }
        activities.append(activity)
        action: dict[str, Any] = {
            "id": _id(step.id), "title": D.text(step.title, "nl"), "description": step.description,
            "code": [{"coding": [{"system": f"{BASE}:stage", "code": step.stage}]}],
            "definitionCanonical": f"{url}|{spec.version}",
            "documentation": _citations(loaded, step.evidence) or None,
            "participant": [{"type": "practitioner", "role": {"text": step.discipline}}],
        }
        conditions = []
        if step.gate is not None:
            conditions.append({"kind": "applicability", "expression": {"language": EXPRESSION_LANGUAGE, "expression": step.gate.text, "description": "gate"}})
        if step.escalation is not None:
            e = step.escalation
            conditions.append({"kind": "applicability", "expression": {"language": EXPRESSION_LANGUAGE, "expression": e.trigger.text,
                                                                          "description": f"escalation trigger: {e.severity}, {e.action}"}})
            action["priority"] = "stat" if e.severity == "spoed" else "routine"
        if conditions:
            action["condition"] = conditions
        if step.requires:
            action["relatedAction"] = [{"actionId": _id(r), "relationship": "after-end"} for r in step.requires]
        if step.timing is not None:
            action.update(_timing(step))
        actions.append(action)
    related = []
    for source in spec.sources:
        item = {"type": "citation", "label": source.id, "display": source.title, "citation": f"{source.title}, {source.version}"}
        if source.url:
            item["url"] = source.url
        related.append(item)
    plan = {
        "resourceType": "PlanDefinition", "id": _id(spec.id), "url": _canonical("PlanDefinition", spec.id), "version": spec.version,
        "identifier": [{"system": f"{BASE}:pathway-version", "value": f"{spec.id}@{spec.version}"}],
        "name": spec.id, "title": spec.title.nl, "subtitle": spec.title.en,
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/plan-definition-type", "code": "clinical-protocol"}]},
        "status": "active", "publisher": spec.owner, "description": spec.description or spec.title.en,
        "relatedArtifact": related,
        "goal": [_plan_goal(g) for s in spec.steps for g in s.goals] or None,
        "action": actions,
    }
    if spec.indication is not None:
        plan["action"].insert(0, {"id": "indication", "title": "Indicatie / indication",
                                  "condition": [{"kind": "applicability", "expression": {"language": EXPRESSION_LANGUAGE, "expression": spec.indication.when.text, "description": "inclusion"}}]
                                  + ([{"kind": "applicability", "expression": {"language": EXPRESSION_LANGUAGE, "expression": f"not ({spec.indication.exclude.text})", "description": "exclusion"}}] if spec.indication.exclude else [])})
    return [_clean(plan), *(_clean(a) for a in activities)]


def _plan_goal(goal) -> dict[str, Any]:
    return {"id": _id(goal.id), "description": {"text": D.text(goal.title, "nl")},
            "target": [{"measure": {"text": goal.fact}, "detailCodeableConcept": {"text": goal.target}, "due": _duration(goal.deadline)}]}


def care_plan(loaded: LoadedPathway, state, today: dt.date) -> list[dict[str, Any]]:
    """The enrollment as a CarePlan with its Goals, and a Task per step that is due or held back."""
    spec = loaded.spec
    subject = {"identifier": {"system": f"{BASE}:patient", "value": state.patient}}
    if ID.fullmatch(state.patient):
        subject["reference"] = f"Patient/{state.patient}"
    plan_id = _id(f"careplan-{state.enrollment}")
    goals = []
    facts = loaded.facts
    for gid, goal in state.goals.items():
        fact = facts.get(goal.fact)
        measure: dict[str, Any] = {"text": getattr(fact, "title", goal.fact)}
        codes = [c for c in getattr(fact, "codes", ()) if c.system in CODE_SYSTEMS]
        if codes:
            measure["coding"] = [{"system": CODE_SYSTEMS[c.system], "code": c.code, "display": c.display} for c in codes[:3]]
        resource = {
            "resourceType": "Goal", "id": _id(f"goal-{state.enrollment}-{gid}"),
            "identifier": [{"system": f"{BASE}:goal", "value": f"{state.enrollment}:{gid}"}],
            "lifecycleStatus": "active" if goal.status == "open" else "completed",
            "description": {"text": f"{goal.fact} {goal.target}"},
            "subject": subject, "startDate": goal.agreed_on.isoformat(),
            "target": [{"measure": measure, "detailString": goal.target, "dueDate": goal.deadline.isoformat()}],
            "note": [{"text": f"baseline {goal.baseline}, latest {goal.latest}"}],
        }
        # goal-achievement has no code for "not measured by the deadline": left out, said in a note
        achievement = {"open": "in-progress", "met": "achieved", "missed": "not-achieved"}.get(goal.status)
        if achievement:
            resource["achievementStatus"] = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/goal-achievement", "code": achievement}]}
        else:
            resource["note"].append({"text": f"not measured between {goal.agreed_on} and {goal.deadline}"})
        goals.append(resource)
    tasks = []
    activities = []
    for step in spec.steps:
        progress = state.steps[step.id]
        definition = _canonical("ActivityDefinition", f"{spec.id}.{step.id}") + f"|{spec.version}"
        if step.escalation is not None:
            if step.id not in state.escalations:
                continue
            status = "ready"
            reasons = state.escalations[step.id].reasons
            due_on = state.escalations[step.id].since
        elif progress.status in ("due", "gated"):
            status = "ready" if progress.status == "due" else "on-hold"
            reasons = progress.reasons
            due_on = progress.due_on
        else:
            detail_status = {"waiting": "scheduled", "finished": "completed"}[progress.status]
            if progress.status == "waiting" and progress.done_on:
                detail_status = "in-progress"
            activity = {"detail": {"status": detail_status, "instantiatesCanonical": [definition], "description": D.text(step.title, "nl"),
                                   "code": {"text": step.id}}}
            if progress.due_on:
                activity["detail"]["scheduledString"] = progress.due_on.isoformat()
            activities.append(activity)
            continue
        task_id = _id(f"task-{state.enrollment}-{step.id}")
        task = {
            "resourceType": "Task", "id": task_id,
            "identifier": [{"system": f"{BASE}:step-run", "value": f"{state.enrollment}:{step.id}:{due_on.isoformat() if due_on else '-'}"}],
            "instantiatesCanonical": definition, "basedOn": [{"reference": full_url("CarePlan", plan_id)}],
            "status": status, "intent": "plan", "priority": "stat" if step.escalation is not None and step.escalation.severity == "spoed" else "routine",
            "code": {"text": step.id}, "description": D.text(step.title, "nl"), "for": subject,
            "authoredOn": today.isoformat(), "performerType": [{"text": step.discipline}],
        }
        if due_on:
            task["executionPeriod"] = {"start": due_on.isoformat()}
        if status == "on-hold" and reasons:
            task["statusReason"] = {"text": "; ".join(reasons)[:1000]}
        elif reasons:
            task["reasonCode"] = {"text": "; ".join(reasons)[:1000]}
        tasks.append(task)
        activities.append({"reference": {"reference": full_url("Task", task_id)}})
    plan = {
        "resourceType": "CarePlan", "id": plan_id,
        "identifier": [{"system": f"{BASE}:enrollment", "value": state.enrollment}],
        "instantiatesCanonical": [f"{_canonical('PlanDefinition', spec.id)}|{spec.version}"],
        "status": "active", "intent": "plan", "title": D.text(spec.title, "nl"),
        "subject": subject, "period": {"start": state.enrolled_on.isoformat()}, "created": state.enrolled_on.isoformat(),
        "goal": [{"reference": full_url("Goal", g["id"])} for g in goals] or None,
        "activity": activities or None,
        "note": [{"text": f"pathway version key {state.version_key}; as of {state.as_of.isoformat()}"}],
    }
    return [_clean(plan), *(_clean(g) for g in goals), *(_clean(t) for t in tasks)]


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if v is not None and v != [] and v != ""}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def bundle(resources: list[dict[str, Any]]) -> dict[str, Any]:
    """A collection Bundle, validated with every resource in it (ExportError if not)."""
    from fhir.resources.R4B.bundle import Bundle

    data = {"resourceType": "Bundle", "type": "collection",
            "entry": [{"fullUrl": full_url(r["resourceType"], r["id"]), "resource": r} for r in resources]}
    for r in resources:
        validate(r)
    try:
        Bundle.model_validate(data)
    except Exception as exc:
        raise ExportError(f"the Bundle does not validate: {str(exc).splitlines()[0]}") from None
    return data


def validate(resource: dict[str, Any]) -> None:
    import importlib

    name = resource["resourceType"]
    module = importlib.import_module(f"fhir.resources.R4B.{name.lower()}")
    try:
        getattr(module, name).model_validate(resource)
    except Exception as exc:  # pydantic ValidationError
        lines = str(exc).splitlines()
        detail = "; ".join(line.strip() for line in lines[1:3]) if len(lines) > 2 else lines[0]
        raise ExportError(f"{name}/{resource.get('id')} does not validate: {detail}") from None


def write(out: Path | None, data: dict[str, Any]) -> str:
    text = json.dumps(data, ensure_ascii=False, indent=1)
    if out is not None:
        tmp = out.with_name(out.name + ".part")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(out)
    return text


def _goal_priorities(plan: dict[str, Any], resources: list[dict[str, Any]]) -> None:
    """The patient's own priorities (plan goals' ``priority``: 1 high, 2 medium, 3 low) on the
    parts' Goal resources, as FHIR's goal-priority."""
    enrollment = {p["pathway"]: p["enrollment"] for p in plan["pathways"]}
    ranked = {f"{enrollment.get(g['pathway'])}:{g['goal']}": g["priority"] for g in plan["goals"] if "priority" in g}
    codes = {1: ("high-priority", "High Priority"), 2: ("medium-priority", "Medium Priority"), 3: ("low-priority", "Low Priority")}
    for r in resources:
        if r.get("resourceType") != "Goal":
            continue
        rank = next((ranked[i["value"]] for i in r.get("identifier", []) if i.get("value") in ranked), None)
        if rank in codes:
            code, display = codes[rank]
            r["priority"] = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/goal-priority", "code": code, "display": display}],
                             "text": "the patient's own priority"}


def personal_care_plan(plan: dict[str, Any], parts: list[tuple[LoadedPathway, Any]], today: dt.date) -> list[dict[str, Any]]:
    """The patient's one plan (runtime/plan.py, as JSON) as a patient-level CarePlan that
    addresses a Condition per pathway (the patient's conditions) and has the appointments as
    bundled for activities and the conflicts between pathways as notes; each pathway's own
    CarePlan (``care_plan``) is one of its parts (``partOf``) and addresses its condition."""
    patient = plan["patient"]
    subject = {"identifier": {"system": f"{BASE}:patient", "value": patient}}
    if ID.fullmatch(patient):
        subject["reference"] = f"Patient/{patient}"
    plan_id = _id(f"careplan-patient-{patient}")
    conditions, resources = [], []
    for loaded, state in parts:
        spec = loaded.spec
        condition = _clean({
            "resourceType": "Condition", "id": _id(f"condition-{state.enrollment}"),
            "identifier": [{"system": f"{BASE}:condition", "value": f"{patient}:{spec.id}"}],
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
            "code": {"text": D.text(spec.title, "nl")}, "subject": subject,
            "note": [{"text": f"the condition pathway {spec.id} {spec.version} is for (enrollment {state.enrollment})"}],
        })
        conditions.append(condition)
        own, *rest = care_plan(loaded, state, today)
        own["partOf"] = [{"reference": full_url("CarePlan", plan_id)}]
        own["addresses"] = [{"reference": full_url("Condition", condition["id"])}]
        resources += [own, *rest]
    activities = []
    for a in plan["appointments"]:
        steps = ", ".join(f"{s['pathway']}.{s['step']}" for s in a["steps"])
        measured = ", ".join(m["fact"] for m in a["measurements"])
        activities.append({"detail": {
            "kind": "Appointment", "status": "scheduled", "code": {"text": a["discipline"]},
            "description": f"{a['discipline']}: {steps}" + (f"; measure once: {measured}" if measured else ""),
            "scheduledString": a["date"], "reasonCode": [{"text": a["decision"]["why"][:1000]}]}})
    notes = [{"text": f"conflict {c['rule']}: {c['title']} ({', '.join(s['pathway'] + '.' + s['step'] for s in c['steps'])}): {c['action']}"}
             for c in plan["conflicts"]]
    notes += [{"text": f"open escalation {e['rule']} ({e['severity']}, since {e['opened_on']}): {e['action']}"} for e in plan.get("escalations", [])]
    _goal_priorities(plan, resources)
    whole = {
        "resourceType": "CarePlan", "id": plan_id,
        "identifier": [{"system": f"{BASE}:personal-plan", "value": f"{patient}:{plan['at']}"}],
        "status": "active", "intent": "plan", "title": "Zorgplan (alle zorgpaden)",
        "category": [{"text": "personal plan across pathways (multimorbidity)"}],
        "subject": subject, "created": plan["at"], "period": {"start": plan["at"]},
        "addresses": [{"reference": full_url("Condition", c["id"])} for c in conditions],
        "activity": activities or None,
        "note": notes + [{"text": f"bundling rule same-discipline-within-window, window {plan['window_days']} days; "
                                  f"parts: {', '.join(p['pathway'] + ' ' + p['version'] for p in plan['pathways'])}"}],
    }
    return [_clean(whole), *conditions, *resources]
