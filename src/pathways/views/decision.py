"""One decision, as an auditor asks about it: "why was this patient referred on that date".
From the decision's audit entries alone (``store.audit.find_decision``) and the pathway version
published in the trail (``views.audit.Catalog``): outcome, reasons and findings, the rules with
the files that defined them, the facts read with their values and observation dates, guideline
citations, the Prefect flow-run and task-run ids. ``DecisionDetail.lines`` is what
``pathways audit show`` prints; the web's decision page shows the rest."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pathways.store.vocabulary import Key
from pathways.views.audit import Catalog, PathwayVersion, findings as _findings

@dataclass(frozen=True)
class FactRead:
    name: str
    value: Any
    shown: str  # with its unit, as the explanation gives it
    observed: str | None  # the date it was observed, where the explanation gives it


@dataclass(frozen=True)
class Citation:
    cites: str  # "step verwijzing_nefroloog", "rule kidney_referral", "parameter ckd_refer_egfr_older"
    source: str
    title: str
    version: str
    section: str
    confidence: str
    note: str
    url: str


@dataclass
class DecisionDetail:
    key: str
    id: int | None
    entry: dict[str, Any]
    outcome: str
    step: str | None
    reasons: list[str]
    findings: list[str]
    conditions: list[dict[str, Any]]
    rules: list[tuple[str, str]]  # (rule, the file that defined it)
    files: list[tuple[str, str]]  # (file, kind) of the pathway version
    facts: list[FactRead]
    details: dict[str, Any]  # financing, severity, action, notify, goal, target, deadline
    citations: list[Citation]
    flow_run: str
    task_run: str

    def lines(self) -> list[str]:
        """What ``pathways audit show`` prints."""
        e, p = self.entry, self.entry["payload"]
        lines = [
            f"decision {e['subject']}" + (f" (id {self.id})" if self.id else ""),
            f"  outcome: {e['action']} {p.get(Key.STEP) or ''}".rstrip(),
            f"  enrollment: {e['enrollment_id']} (patient {e['patient_id']})",
            f"  due on: {p.get(Key.DUE_ON)}; decided on: {p.get(Key.DECIDED_ON)}",
            f"  pathway: {e['pathway']} {e['pathway_version']} ({e['version_key']})",
        ]
        lines += ["  reasons:"] + [f"    {r}" for r in p.get(Key.REASONS) or ["-"]]
        for c in p.get(Key.CONDITIONS) or []:
            lines.append(f"  condition {c['id']}: {c['when']}")
        if p.get(Key.RULES):
            lines.append("  rules (defined in): " + ", ".join(f"{r} ({w})" for r, w in p[Key.RULES].items()))
        if p.get(Key.FACTS):
            lines.append("  facts used: " + ", ".join(f"{k} = {v}" for k, v in p[Key.FACTS].items()))
        for k, v in self.details.items():
            lines.append(f"  {k}: {v}")
        lines.append(f"  Prefect flow run: {self.flow_run}; task run: {self.task_run}")
        lines.append(f"  audit entry #{e['seq']} at {e['at']} by {e['actor']} ({e['role']}); hash {e['hash']}")
        return lines


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def decision_detail(key: str, decision_id: int | None, found: list[dict[str, Any]], catalog: Catalog,
                    lang: str | None = "en") -> DecisionDetail | None:
    """One decision from its audit entries (``store.audit.find_decision``), or None without any;
    its findings in clinical sentences in ``lang`` (none with ``lang=None``: loading the version takes time)."""
    if not found:
        return None
    e = found[0]
    p = e["payload"]
    version = catalog.get(e.get("version_key"))
    conditions = list(p.get(Key.CONDITIONS) or [])
    named = {word for c in conditions for word in _IDENTIFIER.findall(str(c.get("when", "")))}
    named |= {word for r in p.get(Key.REASONS) or [] for word in _IDENTIFIER.findall(r)}
    rules = {}  # rule -> the file that defined it (and the version the decision names, where it gives one)
    for name, where in (p.get(Key.RULES) or {}).items():
        file = version.defined_in.get(f"rule:{name}") if version else None
        rules[name] = f"{file} ({where})" if file and where else (file or str(where))
    if version is not None:
        for name in sorted(named):
            if name in version.rules and name not in rules:
                rules[name] = version.defined_in.get(f"rule:{name}", "?")
    facts = []
    for name, value in (p.get(Key.FACTS) or {}).items():
        shown, observed = str(value), None
        for reason in p.get(Key.REASONS) or []:
            if m := re.search(rf"\b{re.escape(name)} = ([^,;)]+?)(?:, observed (\d{{4}}-\d{{2}}-\d{{2}}))?[;)]", reason):
                shown, observed = m[1], m[2]
                if observed:
                    break
        facts.append(FactRead(name, value, shown, observed))
    context = p.get(Key.CONTEXT) or {}
    return DecisionDetail(
        key=key, id=decision_id, entry=e, outcome=e["action"], step=p.get(Key.STEP), reasons=list(p.get(Key.REASONS) or []),
        findings=_findings(e, catalog, lang) if lang else [], conditions=conditions, rules=sorted(rules.items()),
        files=sorted((info["file"], info["kind"]) for info in version.files.values()) if version else [],
        facts=facts, details={k: p[k] for k in ("financing", "severity", "action", "notify", "goal", "target", "deadline") if p.get(k) is not None},
        citations=_citations(version, p.get(Key.STEP), e["action"], sorted(named), rules) if version else [],
        flow_run=str(context.get("prefect_flow_run", "-")), task_run=str(context.get("prefect_task_run", "-")))


def _citations(version: PathwayVersion, step: str | None, action: str, named: list[str], rules: dict[str, str]) -> list[Citation]:
    cited: list[tuple[str, dict]] = []
    if step and isinstance(version.steps.get(step, {}).get("evidence"), dict):
        cited.append((f"step {step}", version.steps[step]["evidence"]))
    if action.startswith("indication.") and isinstance(version.indication.get("evidence"), dict):
        cited.append(("indication", version.indication["evidence"]))
    for name in sorted(rules):
        if isinstance(version.rules.get(name, {}).get("evidence"), dict):
            cited.append((f"rule {name}", version.rules[name]["evidence"]))
    for name in named:
        if isinstance(version.parameters.get(name, {}).get("evidence"), dict):
            cited.append((f"parameter {name}", version.parameters[name]["evidence"]))
    found = []
    for cites, evidence in cited:
        source = version.sources.get(evidence.get("source"), {})
        found.append(Citation(cites, str(evidence.get("source", "")), str(source.get("title", evidence.get("source", ""))), str(source.get("version", "")),
                              str(evidence.get("section") or ""), str(evidence.get("confidence") or ""), str(evidence.get("note") or ""),
                              str(source.get("url") or "")))
    return found
