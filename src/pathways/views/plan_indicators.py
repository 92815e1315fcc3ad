"""Indicators of the personal plans for auditors (issue 28), from the audit trail only: of the
patients of one pathway whose plans in the period span two or more pathways (multimorbid),

- the share with one combined review: their latest plan in the period (`plan.made`) has an
  appointment joining steps of two or more pathways;
- visits saved by bundling: over the latest plan in the period of every patient of the
  pathway, the steps planned minus the appointments they are in (each plan counted once, however
  often it was made again);
- conflicts found (`plan.conflict`, per rule) and how they ended: no longer raised by the
  patient's latest plan (the facts changed: metformin stopped, the eGFR rose, the NSAID stopped),
  still raised by it but its escalation resolved with a reason (`plan.resolved`, e.g. the
  huisarts judged it), or still raised by it.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any, Iterable

from pathways.store.vocabulary import Action, Key


def plan_indicators(plan_entries: Iterable[dict[str, Any]], patients: set[str], period) -> dict[str, Any]:
    """``plan_entries``: the trail's `plan.*` entries (in order); ``patients``: the pathway's
    patients; ``period``: views.audit.Period (by the plan's date)."""
    latest: dict[str, dict] = {}  # patient -> payload of the plan.made of the latest plan date in the period
    conflicts: list[tuple[str, dict]] = []
    resolved: dict[tuple[str, str], dict] = {}  # (patient, rule) -> the latest `plan.resolved` of its escalation
    for e in plan_entries:
        patient, p = e["patient_id"], e["payload"]
        if patient not in patients or dt.date.fromisoformat(p[Key.AT]) not in period:
            continue
        if e["action"] == Action.PLAN_MADE and (patient not in latest or p[Key.AT] >= latest[patient]["at"]):
            latest[patient] = p
        elif e["action"] == Action.PLAN_CONFLICT:
            conflicts.append((patient, p))
        elif e["action"] == Action.PLAN_RESOLVED:
            resolved[(patient, p[Key.RULE])] = p
    multimorbid = [p for p in latest.values() if len({x["pathway"] for x in p[Key.PATHWAYS]}) > 1]
    combined = [p for p in multimorbid if p.get(Key.COMBINED_APPOINTMENTS, 0) > 0]
    steps = sum(p.get(Key.STEPS, 0) for p in latest.values())
    saved = sum(p.get(Key.STEPS, 0) - p[Key.APPOINTMENTS] for p in latest.values() if "steps" in p)
    ended: Counter = Counter()
    records = []
    for patient, c in conflicts:
        last = latest.get(patient)
        if last is not None and "conflict_rules" in last and c["rule"] not in last["conflict_rules"]:
            how, on = "no longer raised by the latest plan", last["at"]
        elif (patient, c["rule"]) in resolved and resolved[(patient, c["rule"])]["at"] >= c["at"]:
            how, on = "escalation resolved with a reason", resolved[(patient, c["rule"])]["at"]
        else:
            how, on = "still raised by the latest plan", None
        ended[how] += 1
        records.append({"patient": patient, "rule": c["rule"], "found_on": c["at"], "action": c["action"], "how": how, "ended_on": on})
    return {
        "patients_with_a_plan": len(latest), "multimorbid_patients": len(multimorbid), "with_combined_review": len(combined),
        "percent_with_combined_review": round(100.0 * len(combined) / len(multimorbid), 1) if multimorbid else None,
        "steps_planned": steps, "visits_saved": saved,
        "conflicts": {"found": len(conflicts), "by_rule": dict(sorted(Counter(c["rule"] for _, c in conflicts).items())),
                      "resolution": dict(sorted(ended.items())), "items": records[:50]},
    }
