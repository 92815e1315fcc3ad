"""One integrated zorgplan per patient (issue 28): the personal plan (runtime/plan.py, as stored
by `pathways plan`) written for the patient, in Dutch at B1 level or in English, as Markdown or
PDF (documents.to_html / to_pdf, WeasyPrint): their pathways, the appointments as bundled (one
visit for the steps of several pathways, each measurement once), what to discuss with the
huisarts (the conflicts between pathways, in the document's language, and the escalations they
opened) and the goals of all pathways with the patient's own priorities.

The templates are this package's (templates/personal_plan.LANG.md.j2), not a pathway's: the
document is about the patient, not about one pathway."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from pathways.definition import documents as D
from pathways.definition.loader import LoadedPathway
from pathways.store.vocabulary import Action, Key
from pathways.views.documents import DocumentError, to_html, to_pdf, write_atomically

LANGS = ("nl", "en")
TITLE = {"nl": "Mijn zorgplan", "en": "My care plan"}
GOAL_STATUS = {"nl": {"to agree": "nog afspreken", "open": "bezig", "met": "gehaald", "missed": "niet gehaald",
                      "not_measured": "niet gemeten"},
               "en": {"to agree": "to agree", "open": "in progress", "met": "met", "missed": "not met", "not_measured": "not measured"}}
PRIORITY = {"nl": {1: "hoog", 2: "middel", 3: "laag"}, "en": {1: "high", 2: "medium", 3: "low"}}  # the patient's own
ESCALATION = {"nl": {"spoedconsult": "U krijgt een spoedconsult", "consultatie_specialist": "De huisarts overlegt met een specialist",
                     "verwijzing_specialist": "U krijgt een verwijzing naar een specialist",
                     "opschaling_specialist": "Een specialist neemt deze zorg over", "huisarts_informeren": "Wij laten dit aan de huisarts weten"},
              "en": {"spoedconsult": "You get an urgent appointment", "consultatie_specialist": "Your GP asks a specialist for advice",
                     "verwijzing_specialist": "You are referred to a specialist", "opschaling_specialist": "A specialist takes over this care",
                     "huisarts_informeren": "We tell your GP about this"}}


def _fact_label(loaded: dict[str, LoadedPathway], name: str, lang: str) -> str:
    for p in loaded.values():
        fact = p.facts.get(name)
        if fact is not None:
            return D.text(fact.label, lang) if fact.label is not None else fact.title
    return name


def _step_title(loaded: dict[str, LoadedPathway], pathway: str, step: str, lang: str) -> str:
    spec = loaded[pathway].spec if pathway in loaded else None
    found = next((s for s in spec.steps if s.id == step), None) if spec is not None else None
    return D.text(found.title, lang) if found is not None else step


def _goal_title(loaded: dict[str, LoadedPathway], pathway: str, goal: str, lang: str) -> str | None:
    spec = loaded[pathway].spec if pathway in loaded else None
    found = next((g for s in spec.steps for g in s.goals if g.id == goal), None) if spec is not None else None
    return D.text(found.title, lang) if found is not None else None


def plan_context(plan: dict[str, Any], loaded: dict[str, LoadedPathway], lang: str) -> dict[str, Any]:
    """What the zorgplan templates get, from the plan's JSON (`pathways plan --json`) and the
    pathway versions the enrollments run (for titles in ``lang``)."""
    titles = {p: D.text(loaded[p].spec.title, lang) for p in loaded}
    appointments = []
    for a in plan["appointments"]:
        pathways = sorted({s["pathway"] for s in a["steps"]})
        appointments.append({
            "date": dt.date.fromisoformat(a["date"]), "who": D.discipline_label(a["discipline"], lang),
            "steps": [{"title": _step_title(loaded, s["pathway"], s["step"], lang), "pathway": titles.get(s["pathway"], s["pathway"]),
                       "overdue": s["status"] == "due" and s["due_on"] < a["date"], "escalated": s["status"] == "escalated"} for s in a["steps"]],
            "measurements": [_fact_label(loaded, m["fact"], lang) for m in a["measurements"]],
            "pathways": [titles.get(p, p) for p in pathways], "combined": len(pathways) > 1,
        })
    conflicts = [{"title": c.get(lang, c)["title"] if lang != "nl" else c["title"], "action": c.get(lang, c)["action"] if lang != "nl" else c["action"],
                  "steps": [f"{_step_title(loaded, s['pathway'], s['step'], lang)} ({titles.get(s['pathway'], s['pathway'])})" for s in c["steps"]]}
                 for c in plan["conflicts"]]
    goals = [{"pathway": titles.get(g["pathway"], g["pathway"]), "status": GOAL_STATUS[lang].get(g["status"], g["status"]),
              # a goal still to agree: its title (its target is agreed with the patient); an agreed one: the value by its date
              "what": _goal_title(loaded, g["pathway"], g["goal"], lang) or g.get("title") if g["status"] == "to agree" else f"{_fact_label(loaded, g['fact'], lang)} {g['target']}",
              "deadline": None if g["status"] == "to agree" else dt.date.fromisoformat(g["deadline"]),
              "priority": PRIORITY[lang].get(g.get("priority"))} for g in plan["goals"]]
    escalations = [{"action": ESCALATION[lang].get(e["action"], e["action"]), "urgent": e["severity"] == "spoed",
                    "opened_on": dt.date.fromisoformat(e["opened_on"])} for e in plan.get("escalations", [])]
    steps = sum(len(a["steps"]) for a in plan["appointments"])
    return {"title": TITLE[lang], "lang": lang, "patient": plan["patient"], "at": dt.date.fromisoformat(plan["at"]),
            "window_days": plan["window_days"], "pathways": [titles.get(p["pathway"], p["pathway"]) for p in plan["pathways"]],
            "appointments": appointments, "conflicts": conflicts, "goals": goals, "escalations": escalations,
            "steps": steps, "visits": len(plan["appointments"]), "saved": steps - len(plan["appointments"])}


def render_plan(plan: dict[str, Any], loaded: dict[str, LoadedPathway], lang: str, fmt: str) -> bytes:
    """The zorgplan as Markdown (``md``) or PDF (``pdf``) bytes; DocumentError for a bad language or format."""
    if lang not in LANGS:
        raise DocumentError(f"--lang '{lang}': use nl or en")
    if fmt not in ("md", "pdf"):
        raise DocumentError(f"a zorgplan is written as .md or .pdf, not .{fmt}")
    env = D.environment([Path(__file__).parent / "templates"])
    context = plan_context(plan, loaded, lang)
    markdown = env.get_template(f"personal_plan.{lang}.md.j2").render(context)
    if fmt == "md":
        return markdown.encode("utf-8")
    return to_pdf(to_html(markdown, f"{TITLE[lang]}: {plan['patient']}", lang))


def make_plan_document(plan: dict[str, Any], parts: list, lang: str, fmt: str) -> bytes:
    """The zorgplan as ``md`` or ``pdf`` bytes, not yet audited: the one function behind
    `pathways plan --document` (``write_plan_document``) and the web application's download
    (``plan_document``). ``parts``: the patient's enrollments with the pathway versions they run
    (careplan.plan_parts), for the titles."""
    return render_plan(plan, {loaded.spec.id: loaded for loaded, _ in parts}, lang, fmt)


def plan_document(store, plan: dict[str, Any], parts: list, lang: str, fmt: str) -> bytes:
    """The zorgplan's bytes to send (the web's download), its disclosure audited (a hash of it, not the text)."""
    data = make_plan_document(plan, parts, lang, fmt)
    store.record_audit([_rendered(plan, fmt, lang, data)])
    return data


def _rendered(plan: dict[str, Any], fmt: str, lang: str, data: bytes):
    import hashlib

    from pathways.store.audit import Record

    return Record(Action.DOCUMENT_RENDERED, plan["patient"], subject=f"{plan['patient']}:zorgplan:{plan['at']}",
                  payload={Key.DOCUMENT: "personal-zorgplan", Key.FORMAT: fmt, Key.LANG: lang,
                           Key.SHA256: hashlib.sha256(data).hexdigest(), Key.IDENTIFYING: False})


def write_plan_document(store, plan: dict[str, Any], parts: list, out: Path, lang: str) -> None:
    """Write the zorgplan (``make_plan_document``) to ``out`` (.md or .pdf, written whole or not at
    all); the disclosure is audited once the file is written."""
    if not out.parent.is_dir():
        raise DocumentError(f"--document {out}: the folder {out.parent} does not exist")
    fmt = out.suffix.lstrip(".").lower()
    data = make_plan_document(plan, parts, lang, fmt)
    write_atomically(out, data)
    store.record_audit([_rendered(plan, fmt, lang, data)])


def write_plan_fhir(plan: dict[str, Any], parts: list, today: dt.date, out: Path) -> int:
    """The patient-level CarePlan with its parts as a validated collection Bundle, written to
    ``out`` only when every resource validates (ExportError otherwise); the number of resources."""
    from pathways.views.fhir_export import bundle, personal_care_plan, write

    if not out.parent.is_dir():
        raise DocumentError(f"--fhir {out}: the folder {out.parent} does not exist")
    resources = personal_care_plan(plan, parts, today)
    write(out, bundle(resources))
    return len(resources)
