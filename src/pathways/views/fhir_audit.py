"""The audit trail as FHIR R4 AuditEvent resources (every entry) and Provenance resources (every
decision), validated with fhir.resources' R4B models before anything is written. Patients and
enrollments are named by pseudonymous identifiers only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable
from pathways.store.vocabulary import DECISION_PREFIXES, Action, Key

SYSTEM = "urn:pathways"
DECISION_ACTIONS = DECISION_PREFIXES


class ExportError(ValueError):
    pass


def _identifier(kind: str, value: str) -> dict[str, Any]:
    return {"identifier": {"system": f"{SYSTEM}:{kind}", "value": value}}


def audit_event(entry: dict[str, Any]) -> dict[str, Any]:
    action = entry["action"]
    denied = action == Action.ACCESS_DENIED
    entities = []
    if entry.get("patient_id"):
        entities.append({"what": _identifier("patient", entry["patient_id"]),
                         "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "1", "display": "Person"},
                         "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1", "display": "Patient"}})
    if entry.get("enrollment_id"):
        entities.append({"what": _identifier("enrollment", entry["enrollment_id"]), "name": "enrollment"})
    details = [{"type": "seq", "valueString": str(entry["seq"])}, {"type": "hash", "valueString": entry["hash"]},
               {"type": "prev_hash", "valueString": entry["prev_hash"]}]
    if entry.get("version_key"):
        details.append({"type": "pathway_version", "valueString": entry["version_key"]})
    entities.append({"what": _identifier("audit-entry", str(entry["seq"])), "name": "audit entry",
                     "description": entry.get("subject") or action, "detail": details})
    return {
        "resourceType": "AuditEvent",
        "id": f"pathways-audit-{entry['seq']}",
        "type": {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110100", "display": "Application Activity"},
        "subtype": [{"system": f"{SYSTEM}:audit-action", "code": action}],
        "action": "E" if action.startswith(DECISION_ACTIONS) else ("R" if denied else "C"),
        "recorded": entry["at"],
        "outcome": "4" if denied else "0",
        "outcomeDesc": entry["payload"].get(Key.ATTEMPTED) if denied else None,
        "agent": [{
            "who": _identifier("user", entry["actor"]),
            "role": [{"text": entry["role"]}],
            "requestor": True,
        }],
        "source": {"observer": {"display": "pathways engine"},
                   "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4", "display": "Application Server"}]},
        "entity": entities,
    }


def provenance(entry: dict[str, Any]) -> dict[str, Any]:
    payload = entry["payload"]
    facts = [{"role": "source", "what": {"display": f"{name} = {value}"}} for name, value in sorted((payload.get(Key.FACTS) or {}).items())]
    rules = [{"role": "derivation", "what": {"display": f"rule {name} ({where})"}} for name, where in sorted((payload.get(Key.RULES) or {}).items())]
    return {
        "resourceType": "Provenance",
        "id": f"pathways-decision-{entry['seq']}",
        "target": [{**_identifier("decision", entry["subject"]), "display": f"{entry['action']} {payload.get(Key.STEP) or ''}".strip()}],
        "recorded": entry["at"],
        "occurredDateTime": payload.get(Key.DECIDED_ON),
        "policy": [f"{SYSTEM}:pathway:{entry['version_key']}"] if entry.get("version_key") else None,
        "reason": [{"text": reason} for reason in (payload.get(Key.REASONS) or [])[:20]] or None,
        "activity": {"coding": [{"system": f"{SYSTEM}:audit-action", "code": entry["action"]}]},
        "agent": [{
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type", "code": "assembler"}]},
            "who": _identifier("user", entry["actor"]),
        }],
        "entity": (facts + rules) or None,
    }


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def resources(entries: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """AuditEvent per entry, Provenance per decision; each validated (ExportError otherwise)."""
    from fhir.resources.R4B.auditevent import AuditEvent
    from fhir.resources.R4B.provenance import Provenance

    found = []
    for entry in entries:
        items = [(AuditEvent, audit_event(entry))]
        if entry["action"].startswith(DECISION_ACTIONS) and entry.get("subject"):
            items.append((Provenance, provenance(entry)))
        for model, resource in items:
            resource = _clean(resource)
            try:
                model.model_validate(resource)
            except Exception as exc:  # pydantic ValidationError
                raise ExportError(f"entry {entry['seq']}: the {resource['resourceType']} does not validate: {str(exc).splitlines()[0]}") from None
            found.append(resource)
    return found


def write(out: Path, items: list[dict[str, Any]], ndjson: bool) -> None:
    """Write a Bundle (type collection) or NDJSON, whole or not at all."""
    if ndjson:
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in items)
    else:
        from fhir.resources.R4B.bundle import Bundle

        bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in items]}
        Bundle.model_validate(bundle)
        text = json.dumps(bundle, ensure_ascii=False, indent=1)
    tmp = out.with_name(out.name + ".part")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)
