"""What auditors read: timelines in Dutch and English, quality indicators, the HTML report and
the FHIR AuditEvent/Provenance export. Everything here is computed from the audit trail alone
(entries as dicts, payloads decoded): the trail is self-sufficient, Prefect's history is not read.
"""

from __future__ import annotations

import datetime as dt
import re
import statistics
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml

from pathways.definition.documents import ACTION_TEXT, SEVERITY_TEXT, held
from pathways.definition.model import DISCIPLINES
from pathways.definition.places import Places
from pathways.store.vocabulary import DECISION_KIND, Action, Key

REFERRAL_ACTIONS = ("verwijzing_specialist", "consultatie_specialist", "opschaling_specialist")


# -- periods -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Period:
    start: dt.date
    end: dt.date  # inclusive
    label: str

    def __contains__(self, day: dt.date) -> bool:
        return self.start <= day <= self.end


def parse_period(text: str) -> Period:
    """2026Q1, 2026-03, 2026, or FROM..TO (ISO dates); ValueError says what is accepted."""
    text = text.strip()
    try:
        if m := re.fullmatch(r"(\d{4})[Qq]([1-4])", text):
            year, quarter = int(m[1]), int(m[2])
            start = dt.date(year, 3 * quarter - 2, 1)
            end = (dt.date(year + 1, 1, 1) if quarter == 4 else dt.date(year, 3 * quarter + 1, 1)) - dt.timedelta(days=1)
            return Period(start, end, f"{year}Q{quarter}")
        if m := re.fullmatch(r"(\d{4})-(\d{2})", text):
            start = dt.date(int(m[1]), int(m[2]), 1)
            end = (dt.date(start.year + (start.month == 12), start.month % 12 + 1, 1)) - dt.timedelta(days=1)
            return Period(start, end, text)
        if re.fullmatch(r"\d{4}", text):
            return Period(dt.date(int(text), 1, 1), dt.date(int(text), 12, 31), text)
        if ".." in text:
            first, last = text.split("..", 1)
            start, end = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
            if end < start:
                raise ValueError
            return Period(start, end, text)
    except ValueError:
        pass
    raise ValueError(f"'{text}' is not a period: use 2026Q1, 2026-03, 2026 or 2026-01-01..2026-03-31")


# -- the pathway versions named in the trail -----------------------------------------------

@dataclass
class PathwayVersion:
    key: str
    pathway: str
    version: str
    title: dict[str, str]
    steps: dict[str, dict[str, Any]]
    facts: dict[str, dict[str, Any]]
    files: dict[str, dict[str, Any]]
    rules: dict[str, dict[str, Any]] = field(default_factory=dict)
    parameters: dict[str, dict[str, Any]] = field(default_factory=dict)
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)
    indication: dict[str, Any] = field(default_factory=dict)
    defined_in: dict[str, str] = field(default_factory=dict)  # "rule:NAME", "parameter:NAME", "step:ID" -> file


class Catalog:
    """The pathway versions as published in the trail (their files' text, kept there)."""

    def __init__(self, entries: Iterable[dict[str, Any]], places: Places = Places()):
        self.places = places  # where a published version's libraries and templates are also looked for, as on disk
        self.versions: dict[str, PathwayVersion] = {}
        self._findings: dict[tuple[str, str], Any] = {}
        for entry in entries:
            if entry["action"] == Action.PATHWAY_PUBLISHED:
                self.versions[entry["version_key"]] = _parse_version(entry)

    def get(self, key: str | None) -> PathwayVersion | None:
        return self.versions.get(key) if key else None

    def step(self, key: str | None, step: str | None) -> dict[str, Any]:
        version = self.get(key)
        return (version.steps.get(step) if version and step else None) or {}

    def findings(self, key: str | None, lang: str):
        """The findings writer of a published version (``pathways.views.findings``), or None when
        the version was not published in this trail or its files no longer load."""
        if key not in self.versions:
            return None
        if (key, lang) not in self._findings:
            from pathways.definition.loader import ProblemsFound
            from pathways.rules.plan import Plan
            from pathways.views.findings import Findings

            plans = [v for (k, _), v in self._findings.items() if k == key and v is not None]
            try:
                plan = plans[0].plan if plans else Plan(self.loaded(key))
            except (ProblemsFound, OSError, ValueError):
                plan = None
            self._findings[(key, lang)] = Findings(plan, lang) if plan is not None else None
        return self._findings[(key, lang)]

    def loaded(self, key: str):
        """The published version as a LoadedPathway (its files written to a temporary folder)."""
        from pathways.definition.loader import AUTHORING_CHECKS, load_pathway

        version = self.versions[key]
        with tempfile.TemporaryDirectory() as folder:
            root = Path(folder)
            (root / "_shared").mkdir()
            target = None
            (root / version.pathway / "documents").mkdir(parents=True)
            for info in version.files.values():
                if info["kind"] == "pathway":
                    target = root / version.pathway / info["file"]
                    target.write_text(info["text"], encoding="utf-8")
                elif info["kind"] == "template":  # the document templates as they were when published
                    (root / version.pathway / "documents" / info["file"]).write_text(info["text"], encoding="utf-8")
                else:
                    (root / "_shared" / info["file"]).write_text(info["text"], encoding="utf-8")
            return load_pathway(str(target), tolerated=AUTHORING_CHECKS, places=self.places)  # as published: later checks do not refuse it


def _parse_version(entry: dict[str, Any]) -> PathwayVersion:
    files = entry["payload"].get(Key.FILES, {})
    steps: dict[str, dict] = {}
    facts: dict[str, dict] = {}
    title = {"nl": entry["pathway"], "en": entry["pathway"]}
    rules: dict[str, dict] = {}
    parameters: dict[str, dict] = {}
    sources: dict[str, dict] = {}
    indication: dict[str, Any] = {}
    defined_in: dict[str, str] = {}
    for info in files.values():
        if info["kind"] == "template":
            continue
        data = yaml.safe_load(info["text"]) or {}
        facts.update(data.get("facts") or {})
        for kind, found in (("rule", data.get("rules") or {}), ("parameter", data.get("parameters") or {})):
            (rules if kind == "rule" else parameters).update(found)
            defined_in.update({f"{kind}:{name}": info["file"] for name in found})
        sources.update({s["id"]: s for s in data.get("sources") or [] if isinstance(s, dict) and "id" in s})
        if info["kind"] == "pathway":
            title = data.get("title") or title
            indication = data.get("indication") or {}
            for step in data.get("steps") or []:
                steps[step["id"]] = step
                defined_in[f"step:{step['id']}"] = info["file"]
    return PathwayVersion(entry["version_key"], entry["pathway"], entry["pathway_version"], title, steps, facts, files,
                          rules, parameters, sources, indication, defined_in)


# -- timelines -----------------------------------------------------------------------------

WORDS = {
    "nl": {
        "enrolled": "ingeschreven in {title} ({pathway} {version})",
        "facts": "gegevens vastgelegd uit {source}: {counts}",
        "identity": "identificerende gegevens apart opgeslagen ({fields})",
        "patient": "patiënt aangemaakt (pseudoniem)",
        "indicated": "indicatie vastgesteld: {reasons}",
        "not_indicated": "geen indicatie (meer): {reasons}",
        "due": "{title}: klaar voor {discipline}",
        "gated": "{title} tegengehouden: {reasons}",
        "skipped": "{title} overgeslagen: het volgende moment is al aangebroken",
        "done": "{title} door {discipline}",
        "recorded": "vastgelegd bij {title}: {values}",
        "escalated": "{title} nodig ({severity}, {action}): {reasons}",
        "goal_agreed": "doel afgesproken: {reasons}",
        "goal_met": "doel gehaald: {reasons}",
        "goal_missed": "doel niet gehaald: {reasons}",
        "goal_not_measured": "doel niet gemeten: {reasons}",
        "resolved": "{title} afgesloten zonder uitvoering: {reasons}",
        "done_before": "{title} al gedaan voor de inschrijving",
        "deduplicated": "{total} dubbel opgeslagen gegevens verwijderd (een gegeven hoort bij de patiënt)",
        "published": "pathway {pathway} {version} gepubliceerd ({key})",
        "migrated": "overgezet van {old} naar {new} (voorvertoning {preview})",
        "reverted": "teruggezet van {old} naar {new} (voorvertoning {preview})",
        "config": "configuratie gewijzigd: {changed}",
        "rendered": "document {document} gemaakt ({format}, {lang}){identifying}",
        "identifying": ", met identificerende gegevens",
        "denied": "toegang geweigerd aan {actor} ({role}): {attempted}",
        "declined": "{title}: niet akkoord van {by}; blijft open",
        "signed": " (akkoord van {by})",
        "other": "{action}",
        "counts": "{observations} metingen, {conditions} diagnoses, {medications} medicatie",
        "none": "geen",
    },
    "en": {
        "enrolled": "enrolled in {title} ({pathway} {version})",
        "facts": "facts recorded from {source}: {counts}",
        "identity": "identifying data stored apart ({fields})",
        "patient": "patient created (pseudonymous)",
        "indicated": "indicated: {reasons}",
        "not_indicated": "not (or no longer) indicated: {reasons}",
        "due": "{title}: due for {discipline}",
        "gated": "{title} held back: {reasons}",
        "skipped": "{title} passed over: its next occurrence has come",
        "done": "{title} by {discipline}",
        "recorded": "recorded for {title}: {values}",
        "escalated": "{title} needed ({severity}, {action}): {reasons}",
        "goal_agreed": "goal agreed: {reasons}",
        "goal_met": "goal met: {reasons}",
        "goal_missed": "goal missed: {reasons}",
        "goal_not_measured": "goal not measured: {reasons}",
        "resolved": "{title} closed without doing it: {reasons}",
        "done_before": "{title} done before the enrollment",
        "deduplicated": "{total} facts stored twice removed (a fact belongs to the patient)",
        "migrated": "moved from {old} to {new} (preview {preview})",
        "reverted": "moved back from {old} to {new} (preview {preview})",
        "published": "pathway {pathway} {version} published ({key})",
        "config": "configuration changed: {changed}",
        "rendered": "document {document} rendered ({format}, {lang}){identifying}",
        "identifying": ", with identifying data",
        "denied": "access denied to {actor} ({role}): {attempted}",
        "declined": "{title}: not agreed by {by}; stays open",
        "signed": " (agreed by {by})",
        "other": "{action}",
        "counts": "{observations} observations, {conditions} conditions, {medications} medications",
        "none": "none",
    },
}
DISCIPLINE_SHORT = {"poh": "POH"}
EVENT_WORD = DECISION_KIND  # a decision's action -> the word the texts above use for it


def discipline_label(discipline: str | None, lang: str) -> str:
    if not discipline:
        return "?"
    if lang == "nl":
        return DISCIPLINE_SHORT.get(discipline, discipline)
    text = DISCIPLINES.get(discipline, discipline)
    inner = re.search(r"\(([^)]*)\)", text)
    return inner[1] if inner else text


def entry_date(entry: dict[str, Any]) -> dt.date:
    """The date a decision was made, else the day the entry was written."""
    payload = entry["payload"]
    day = payload.get(Key.DECIDED_ON) or payload.get(Key.ON)
    return dt.date.fromisoformat(day) if day else dt.date.fromisoformat(entry["at"][:10])


def describe(entry: dict[str, Any], catalog: Catalog, lang: str = "nl") -> str:
    words = WORDS[lang]
    payload, action = entry["payload"], entry["action"]
    step_id = payload.get(Key.STEP)
    step = catalog.step(entry["version_key"], step_id)
    title_field = step.get("title") or {}
    title = (title_field.get(lang) or title_field.get("nl")) if isinstance(title_field, dict) else (title_field or None)
    reasons = findings(entry, catalog, lang)
    severity, shown_action = payload.get(Key.SEVERITY), payload.get(Key.ACTION)
    values = {
        "title": title or step_id or "", "discipline": discipline_label(step.get("discipline"), lang),
        "reasons": "; ".join(reasons) or words["none"],
        "severity": SEVERITY_TEXT[lang].get(severity, severity), "action": ACTION_TEXT[lang].get(shown_action, (shown_action or action).replace("_", " ")),
        "pathway": entry.get("pathway"), "version": entry.get("pathway_version"), "key": entry.get("version_key"),
    }
    if action in EVENT_WORD:
        return words[EVENT_WORD[action]].format(**values)
    if action == Action.ENROLLMENT_CREATED:
        version = catalog.get(entry["version_key"])
        values["title"] = version.title.get(lang, version.title.get("nl")) if version else entry["pathway"]
        return words["enrolled"].format(**values)
    if action == Action.FACTS_ADDED:
        return words["facts"].format(source=payload.get(Key.SOURCE), counts=words["counts"].format(**payload.get(Key.COUNTS, {})))
    if action == Action.FACTS_DEDUPLICATED:
        return words["deduplicated"].format(total=payload.get(Key.TOTAL, 0))
    if action == Action.IDENTITY_STORED:
        return words["identity"].format(fields=", ".join(payload.get(Key.FIELDS, [])))
    if action == Action.PATIENT_CREATED:
        return words["patient"]
    if action == Action.INPUT_RECORDED:
        shown = ", ".join(f"{k} = {_value(v)}" for k, v in sorted(payload.get(Key.VALUES, {}).items())) or words["none"]
        signed = words["signed"].format(by=payload[Key.SIGNED_OFF_BY]) if payload.get(Key.SIGNED_OFF_BY) else ""
        return words["recorded"].format(**{**values, "values": shown}) + signed
    if action == Action.SIGNOFF_DECLINED:
        return words["declined"].format(title=values["title"], by=payload.get(Key.SIGNED_OFF_BY))
    if action == Action.PATHWAY_PUBLISHED:
        return words["published"].format(**values)
    if action in (Action.ENROLLMENT_MIGRATED, Action.ENROLLMENT_MIGRATION_REVERTED):
        word = "migrated" if action == Action.ENROLLMENT_MIGRATED else "reverted"
        return words[word].format(old=payload.get(Key.FROM), new=payload.get(Key.TO), preview=str(payload.get(Key.PREVIEW))[:12])
    if action == Action.DOCUMENT_RENDERED:
        return words["rendered"].format(document=payload.get(Key.DOCUMENT), format=payload.get(Key.FORMAT), lang=payload.get(Key.LANG),
                                        identifying=words["identifying"] if payload.get(Key.IDENTIFYING) else "")
    if action == Action.CONFIG_CHANGED:
        return words["config"].format(changed=", ".join(payload.get(Key.CHANGED, [])))
    if action == Action.ACCESS_DENIED:
        return words["denied"].format(actor=entry["actor"], role=entry["role"], attempted=payload.get(Key.ATTEMPTED))
    return words["other"].format(action=action)


def findings(entry: dict[str, Any], catalog: Catalog, lang: str) -> list[str]:
    """What a decision rested on, in clinical sentences (only the branch of a rule that applied);
    the raw explanation lines where the version is not in the trail. `audit show` keeps the raw lines."""
    payload, action = entry["payload"], entry["action"]
    reasons = payload.get(Key.REASONS) or []
    if action not in (Action.ESCALATION_OPENED, Action.INDICATION_INDICATED, Action.STEP_GATED):
        return reasons
    writer = catalog.findings(entry.get("version_key"), lang)
    conditions = [c["id"] for c in payload.get(Key.CONDITIONS) or []]
    facts = payload.get(Key.FACTS) or {}
    found: list[str] = []
    if writer is not None and conditions:
        if action == Action.STEP_GATED:
            for condition in conditions:
                found += writer.of(condition, reasons, facts, False) or writer.of(condition, reasons, facts, None)
        else:
            found = writer.of(conditions[0], reasons, facts, True)
    if found:
        return found
    if action == Action.STEP_GATED:
        return held(reasons, "false") + held(reasons, "missing") or reasons
    return held(reasons, "true") or reasons


def _value(value: Any) -> str:
    if isinstance(value, dict):
        return f"{value.get('value')} {value.get('unit') or ''}".strip()
    return str(value)


def timeline(entries: Iterable[dict[str, Any]], catalog: Catalog, lang: str = "nl") -> list[tuple[dt.date, str, dict[str, Any]]]:
    """(date, sentence, entry) in the order things happened (then in the trail's order)."""
    rows = [(entry_date(e), describe(e, catalog, lang), e) for e in entries
            if e["action"] not in (Action.PATHWAY_PUBLISHED, Action.CONFIG_CHANGED)]
    return sorted(rows, key=lambda row: (row[0], row[2]["seq"]))


# -- the log as CSV ----------------------------------------------------------------------------

LOG_FIELDS = ("seq", "at", "actor", "role", "action", "patient_id", "enrollment_id", "pathway", "pathway_version",
              "version_key", "subject", "payload", "prev_hash", "hash")


def write_csv(stream, rows: Iterable[dict[str, Any]], fields: Iterable[str] = LOG_FIELDS) -> None:
    """Audit entries as CSV: one row each, payloads as compact JSON with sorted keys."""
    import csv
    import json

    fields = list(fields)
    writer = csv.DictWriter(stream, fieldnames=fields, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: json.dumps(row.get(k), ensure_ascii=False, sort_keys=True) if isinstance(row.get(k), (dict, list)) else row.get(k)
                         for k in fields})


# -- quality indicators --------------------------------------------------------------------

@dataclass
class Indicators:
    pathway: str
    period: Period
    grace_days: int
    reviews: dict[str, Any] = field(default_factory=dict)
    escalation_to_action: dict[str, Any] = field(default_factory=dict)
    referral_to_specialist: dict[str, Any] = field(default_factory=dict)
    goals: dict[str, Any] = field(default_factory=dict)
    proms: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # the enrollments behind each number, for drill-down: "reviews.on_time" -> [{"enrollment", "decision", "on"}]
    behind: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))

    def to_json(self) -> dict[str, Any]:
        return {
            "pathway": self.pathway, "period": {"label": self.period.label, "start": self.period.start.isoformat(), "end": self.period.end.isoformat()},
            "reviews_on_time": self.reviews, "escalation_to_action_days": self.escalation_to_action,
            "referral_to_specialist_days": self.referral_to_specialist, "goals_met_by_deadline": self.goals,
            "proms": self.proms, "grace_days": self.grace_days,
        }


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _pct(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None


def indicators(entries: list[dict[str, Any]], catalog: Catalog, pathway: str, period: Period, today: dt.date, grace_days: int = 14) -> Indicators:
    """Quality indicators of one pathway over a period, from the trail (see docs/audit.md).

    - reviews done on time: review occurrences (stage ``reviews``) due in the period, done
      within ``grace_days`` of their due date; occurrences whose window is still open and not
      yet done are counted as pending, not late;
    - days from an escalation's trigger (opened) to its action (the escalation step recorded);
    - days from referral to first specialist contact: referral escalations recorded with a
      ``specialist_contact_date`` (from ``referral_date`` if recorded, else the record's date);
    - SMART goals met by their deadline (deadline in the period);
    - PROM scores (facts marked ``prom: true``) recorded in the period, per month.
    """
    entries = [e for e in entries if e.get("pathway") == pathway]
    result = Indicators(pathway, period, grace_days)
    done: dict[tuple[str, str], list[dt.date]] = defaultdict(list)  # (enrollment, step) -> done dates
    done_run: dict[str, dt.date] = {}
    recorded: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for e in entries:
        p = e["payload"]
        if e["action"] == Action.STEP_DONE:
            done[(e["enrollment_id"], p[Key.STEP])].append(dt.date.fromisoformat(p[Key.DECIDED_ON]))
            done_run[e["subject"].rsplit(":", 1)[0]] = dt.date.fromisoformat(p[Key.DECIDED_ON])
        elif e["action"] == Action.ESCALATION_RESOLVED:  # closed for a documented reason: acted on too
            done[(e["enrollment_id"], p[Key.STEP])].append(dt.date.fromisoformat(p[Key.DECIDED_ON]))
        elif e["action"] == Action.INPUT_RECORDED:
            recorded[(e["enrollment_id"], p[Key.STEP])].append({"on": dt.date.fromisoformat(p[Key.ON]), "values": p.get(Key.VALUES, {}),
                                                                 "key": e["version_key"]})

    # reviews on time
    on_time = late = pending = 0
    late_list = []
    for e in entries:
        p = e["payload"]
        if e["action"] != Action.STEP_DUE or p.get(Key.STAGE) != "reviews":
            continue
        due = dt.date.fromisoformat(p[Key.DUE_ON])
        if due not in period:
            continue
        run = e["subject"].rsplit(":", 1)[0]
        finished = done_run.get(run)
        window_end = due + dt.timedelta(days=grace_days)
        if finished is not None and finished <= window_end:
            on_time += 1
            outcome = "on_time"
        elif finished is None and window_end >= today:
            pending += 1
            outcome = "pending"
        else:
            late += 1
            outcome = "late_or_missed"
            late_list.append({"enrollment": e["enrollment_id"], "step": p[Key.STEP], "due_on": p[Key.DUE_ON],
                              "done_on": finished.isoformat() if finished else None})
        result.behind[f"reviews.{outcome}"].append({"enrollment": e["enrollment_id"], "decision": e["subject"], "on": p[Key.DUE_ON]})
    result.reviews = {"due": on_time + late + pending, "on_time": on_time, "late_or_missed": late, "pending": pending,
                      "percent_on_time": _pct(on_time, on_time + late), "late": late_list[:50]}

    # escalation trigger -> action
    days, open_count, referral_days, referral_missing = [], 0, [], 0
    for e in entries:
        p = e["payload"]
        if e["action"] != Action.ESCALATION_OPENED:
            continue
        opened = dt.date.fromisoformat(p[Key.DECIDED_ON])
        if opened not in period:
            continue
        acted = [d for d in done.get((e["enrollment_id"], p[Key.STEP]), []) if d >= opened]
        item = {"enrollment": e["enrollment_id"], "decision": e["subject"], "on": p[Key.DECIDED_ON]}
        if acted:
            days.append((min(acted) - opened).days)
        else:
            open_count += 1
        result.behind["escalations.acted" if acted else "escalations.open"].append(item)
        if p.get(Key.ACTION) in REFERRAL_ACTIONS:
            records = [r for r in recorded.get((e["enrollment_id"], p[Key.STEP]), []) if r["on"] >= opened]
            contact = next((r for r in records if r["values"].get("specialist_contact_date")), None)
            result.behind["referrals.with_contact" if contact else "referrals.without_contact"].append(item)
            if contact is None:
                referral_missing += 1
                continue
            referred = dt.date.fromisoformat(str(contact["values"].get("referral_date") or contact["on"]))
            referral_days.append((dt.date.fromisoformat(str(contact["values"]["specialist_contact_date"])) - referred).days)
    result.escalation_to_action = {"escalations": len(days) + open_count, "acted": len(days), "open": open_count,
                                   "median_days": _median(days), "days": sorted(days)}
    result.referral_to_specialist = {"referrals_with_contact": len(referral_days), "without_recorded_contact": referral_missing,
                                     "median_days": _median(referral_days), "days": sorted(referral_days)}

    # goals met by deadline
    met = missed = unmeasured = 0
    for e in entries:
        if e["action"] in (Action.GOAL_MET, Action.GOAL_MISSED, Action.GOAL_NOT_MEASURED):
            deadline = dt.date.fromisoformat(e["payload"].get(Key.DEADLINE) or e["payload"][Key.DUE_ON])
            if deadline in period:
                met += e["action"] == Action.GOAL_MET
                result.behind[f"goals.{e['action'].split('.', 1)[1]}"].append(
                    {"enrollment": e["enrollment_id"], "decision": e["subject"], "on": deadline.isoformat()})
                missed += e["action"] == Action.GOAL_MISSED
                unmeasured += e["action"] == Action.GOAL_NOT_MEASURED
    result.goals = {"judged": met + missed, "met": met, "missed": missed, "not_measured": unmeasured, "percent_met": _pct(met, met + missed)}

    # PROMs over time
    proms: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for (enrollment, _step), items in recorded.items():
        for item in items:
            if item["on"] not in period:
                continue
            version = catalog.get(item["key"])
            for fact, value in item["values"].items():
                declared = (version.facts.get(fact) if version else None) or {}
                if declared.get("prom") and isinstance(value if not isinstance(value, dict) else value.get("value"), (int, float)):
                    number = value.get("value") if isinstance(value, dict) else value
                    proms[fact][item["on"].strftime("%Y-%m")].append(float(number))
                    result.behind[f"prom.{fact}.{item['on'].strftime('%Y-%m')}"].append(
                        {"enrollment": enrollment, "decision": None, "on": item["on"].isoformat()})
    result.proms = {fact: [{"month": month, "n": len(v), "median": statistics.median(v), "values": v} for month, v in sorted(months.items())]
                    for fact, months in sorted(proms.items())}
    return result
