"""Care-plan documents: where their templates live, what a template may use, and the checks
that run with `pathways validate`. Pure: no store; jinja2 only parses and renders here.

Templates are Markdown with jinja2, one per document and language: ``<document>.<lang>.md.j2``.
They are looked up, first found wins, in

1. ``$PATHWAYS_TEMPLATES/<pathway>/`` and ``$PATHWAYS_TEMPLATES/`` (a care network's overrides),
2. ``<pathway folder>/documents/`` (templates that live with the pathway),
3. ``<pathways root>/_shared/documents/`` (the shipped defaults for every pathway).

Every template gets the same context (built by the functions below, for a real enrollment in
``pathways.views.documents`` and for a sample one here). Undefined names fail: the environment is
strict, and ``validate`` renders every template with a sample context in which every list has an
item and every optional part is present, so a misspelt variable is found when the pathway is
validated, not when a letter is written for a patient.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Iterable

from pathways.definition import wording as W
from pathways.definition.model import DISCIPLINES, PathwaySpec, Step
from pathways.errors import Location, Problem

DOCUMENTS: dict[str, dict[str, str]] = {
    "zorgplan": {"nl": "Individueel zorgplan", "en": "Individual care plan"},
    "verwijsbrief": {"nl": "Verwijsbrief", "en": "Referral letter"},
    "evaluatieverslag": {"nl": "Evaluatieverslag", "en": "Review report"},
    "overdracht": {"nl": "Overdracht aan de wijkverpleging", "en": "Handover to district nursing"},
}
LANGS = ("nl", "en")

STATUS_TEXT = {
    "nl": {"waiting": "gepland", "due": "nu aan de beurt", "gated": "nog niet: voorwaarde niet vervuld", "finished": "afgerond",
           "open": "loopt", "met": "gehaald", "missed": "niet gehaald", "not_measured": "niet gemeten", "done": "gedaan"},
    "en": {"waiting": "planned", "due": "due now", "gated": "not yet: a condition is not met", "finished": "finished",
           "open": "in progress", "met": "met", "missed": "not met", "not_measured": "not measured", "done": "done"},
}
SEVERITY_TEXT = {"nl": {"spoed": "spoed: dezelfde dag", "regulier": "niet dringend"},
                 "en": {"spoed": "urgent: the same day", "regulier": "not urgent"}}
ACTION_TEXT = {
    "nl": {"spoedconsult": "spoedconsult bij de huisarts", "consultatie_specialist": "overleg met de specialist",
           "verwijzing_specialist": "verwijzing naar de specialist", "opschaling_specialist": "terug naar de specialist",
           "huisarts_informeren": "de huisarts informeren"},
    "en": {"spoedconsult": "urgent consultation with the GP", "consultatie_specialist": "consultation with the specialist",
           "verwijzing_specialist": "referral to the specialist", "opschaling_specialist": "back to specialist care",
           "huisarts_informeren": "inform the GP"},
}
ROUTE_TEXT = {"zvw": "Zvw (basisverzekering)", "zvw_wijkverpleging": "Zvw wijkverpleging", "wlz": "Wlz", "wmo": "Wmo", "pgb": "pgb"}
DISCIPLINE_NL = {"poh": "praktijkondersteuner (POH)", "patient": "u zelf", "mantelzorger": "uw mantelzorger"}


# -- where templates are -------------------------------------------------------------------

def template_dirs(pathway_file: Path, pathway_id: str, network: Path | None = None) -> list[Path]:
    """The folders a pathway's templates are looked for in, first found wins; ``network``: a care
    network's templates (the settings' PATHWAYS_TEMPLATES), used before the pathway's own."""
    dirs: list[Path] = []
    if network:
        dirs += [Path(network) / pathway_id, Path(network)]
    dirs += [pathway_file.parent / "documents", pathway_file.parent.parent / "_shared" / "documents"]
    return [d for d in dirs if d.is_dir()]


def template_name(document: str, lang: str) -> str:
    return f"{document}.{lang}.md.j2"


def environment(dirs: list[Path]):
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(loader=FileSystemLoader([str(d) for d in dirs]), undefined=StrictUndefined, autoescape=False,
                      trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["date"] = format_date
    env.filters["value"] = format_value
    return env


MONTHS_NL = ["januari", "februari", "maart", "april", "mei", "juni", "juli", "augustus", "september", "oktober", "november", "december"]


def format_date(day: dt.date | None, lang: str = "nl") -> str:
    if day is None:
        return "-"
    if lang == "nl":
        return f"{day.day} {MONTHS_NL[day.month - 1]} {day.year}"
    return day.strftime("%-d %B %Y")


def format_value(value: Any, unit: str | None = None) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "ja" if value else "nee"
    if isinstance(value, float):
        value = f"{value:.1f}".rstrip("0").rstrip(".") if abs(value) < 1000 else f"{value:.0f}"
    if isinstance(value, dt.date):
        value = value.isoformat()
    unit = None if unit in (None, "1", "{score}") else unit
    return f"{value} {unit}" if unit else str(value)


# -- the context every template gets --------------------------------------------------------

def text(value: Any, lang: str) -> str:
    """A bilingual title in ``lang`` (Dutch when there is no English)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return getattr(value, lang, None) or value.nl


def discipline_label(discipline: str, lang: str) -> str:
    if lang == "nl":
        return DISCIPLINE_NL.get(discipline, DISCIPLINES.get(discipline, discipline).split(" (")[0])
    full = DISCIPLINES.get(discipline, discipline)
    return full.split("(")[1].rstrip(")") if "(" in full else full


def step_item(step: Step, lang: str, status: str, due_on: dt.date | None, done_on: dt.date | None, reasons: Iterable[str] = ()) -> dict:
    return {
        "id": step.id, "title": text(step.title, lang), "stage": step.stage, "discipline": step.discipline,
        "discipline_label": discipline_label(step.discipline, lang), "status": status,
        "status_text": STATUS_TEXT[lang].get(status, status), "due_on": due_on, "done_on": done_on,
        "reasons": list(reasons), "description": step.description, "document": step.document,
    }


def fact_item(name: str, fact: Any, value: Any, observed: dt.date | None, lang: str) -> dict:
    unit = getattr(fact, "unit", None)
    title = getattr(fact, "title", None) or name
    if lang != "nl" and getattr(getattr(fact, "label", None), lang, None):
        title = W.capitalized(W.fact_label(name, fact, lang))  # fact titles are Dutch; a label may have the English name
    return {"name": name, "title": title, "value": value, "unit": unit, "observed": observed,
            "text": W.fact_value_text(fact, value, lang)}


def goal_item(goal_id: str, spec_goal: Any, lang: str, *, fact: Any, target: str, baseline: Any, latest: Any,
              agreed_on: dt.date, deadline: dt.date, status: str) -> dict:
    unit = getattr(fact, "unit", None)
    fact_title = getattr(fact, "title", None) or (spec_goal.fact if spec_goal else goal_id)
    title = text(spec_goal.title, lang) if spec_goal is not None else goal_id
    by = format_date(deadline, lang)
    baseline_text, latest_text = W.fact_value_text(fact, baseline, lang), W.fact_value_text(fact, latest, lang)
    target_text = f"{W.number_text(target, lang) if isinstance(target, (int, float)) else target} {W.unit_text(unit, lang)}"
    smart = (f"{fact_title}: van {baseline_text} naar {target_text} vóór {by}" if lang == "nl"
             else f"{fact_title}: from {baseline_text} to {target_text} by {by}")
    return {"id": goal_id, "title": title, "fact": spec_goal.fact if spec_goal else None, "fact_title": fact_title, "unit": unit,
            "target": target, "baseline": baseline, "latest": latest, "latest_text": latest_text,
            "baseline_text": baseline_text, "agreed_on": agreed_on, "deadline": deadline,
            "status": status, "status_text": STATUS_TEXT[lang].get(status, status), "smart": " ".join(smart.split())}


def contact_item(step: Step, lang: str) -> dict:
    e = step.escalation
    return {"id": step.id, "title": text(step.title, lang), "severity": e.severity, "severity_text": SEVERITY_TEXT[lang][e.severity],
            "action": e.action, "action_text": ACTION_TEXT[lang][e.action], "when": e.trigger.text,
            "notify": [discipline_label(d, lang) for d in e.notify]}


def escalation_item(step: Step, lang: str, since: dt.date, reasons: Iterable[str], facts: list[dict], open_: bool,
                    findings: Iterable[str] = (), criterion: str | None = None) -> dict:
    """``findings``: the clinical sentences of what held (``pathways.views.findings``); the raw
    explanation stays in ``reasons`` for templates that want it, and in `audit show`.
    ``criterion``: the title of the rule that triggered it (else the step's title)."""
    item = contact_item(step, lang)
    return {**item, "since": since, "reasons": list(reasons), "findings": list(findings), "criterion": criterion or item["title"],
            "facts": facts, "open": open_}


def held(reasons: list[str], truth: str) -> list[str]:
    """The lines of an explanation with this outcome ("true", "false" or "missing"), without the
    summary lines of named rules ("kidney_referral: true"): what made an escalation open, or
    what held a step back."""
    found: list[str] = []
    for line in reasons:
        head, _, rest = line.partition(":")
        summary = head.strip().isidentifier() and "(" not in rest
        if ((rest.strip().startswith(truth) and not summary) or (truth == "missing" and head.strip() == "missing")) and line not in found:
            found.append(line)
    return found


def context(spec: PathwaySpec, document: str, lang: str, today: dt.date, *, patient: dict, enrollment: dict,
            steps: list[dict], goals: list[dict], facts: list[dict], medications: list[dict], financing: list[dict],
            escalations: list[dict], escalation: dict | None, review: dict) -> dict:
    """The one context shape of every document template."""
    active = [s for s in steps if s["status"] in ("due", "gated") or s["due_on"] or s["done_on"]]
    team: dict[str, dict] = {}
    for step in active:
        member = team.setdefault(step["discipline"], {"discipline": step["discipline"], "label": step["discipline_label"], "steps": []})
        member["steps"].append(step["title"])
    contacts = [contact_item(s, lang) for s in spec.steps if s.escalation is not None]
    return {
        "lang": lang, "today": today,
        "document": {"name": document, "title": DOCUMENTS.get(document, {}).get(lang, document)},
        "pathway": {"id": spec.id, "version": spec.version, "title": text(spec.title, lang), "owner": spec.owner,
                    "sources": [{"title": s.title, "version": s.version, "publisher": s.publisher} for s in spec.sources]},
        "patient": patient, "enrollment": enrollment,
        "team": list(team.values()),
        "steps": steps,  # every step of the pathway
        "active_steps": active,  # due, held back, scheduled or done: what concerns this patient now
        "interventions": [s for s in active if s["stage"] == "interventions"],
        "reviews": {"upcoming": [s for s in steps if s["stage"] == "reviews" and s["status"] in ("waiting", "due") and s["due_on"]],
                    "done": [s for s in steps if s["stage"] == "reviews" and s["done_on"]]},
        "goals": goals, "facts": facts, "medications": medications, "financing": financing,
        "contacts": contacts, "contacts_urgent": [c for c in contacts if c["severity"] == "spoed"],
        "escalations": escalations, "escalation": escalation, "review": review,
    }


def sample_context(spec: PathwaySpec, facts: dict, document: str, lang: str) -> dict:
    """A context with every part present (for checking templates; never shown to anyone)."""
    day = dt.date(2026, 1, 5)
    plain = [s for s in spec.steps if s.escalation is None]
    steps = [step_item(s, lang, "waiting", day, day, ["sample reason"]) for s in plain]
    goals = []
    for s in spec.steps:
        for g in s.goals:
            goals.append(goal_item(g.id, g, lang, fact=facts.get(g.fact), target=g.target, baseline=1.0, latest=1.0,
                                   agreed_on=day, deadline=day, status="open"))
    fact_items = [fact_item(name, f, 1.0, day, lang) for name, f in list(facts.items())[:5]] or [fact_item("x", None, 1.0, day, lang)]
    escalation_steps = [s for s in spec.steps if s.escalation is not None]
    escalations = [escalation_item(s, lang, day, ["sample reason"], fact_items[:2], True, ["sample finding"], "sample criterion")
                   for s in escalation_steps]
    sample_goal = goal_item("sample", None, lang, fact=None, target="< 1", baseline=1.0, latest=1.0, agreed_on=day, deadline=day, status="open")
    step_sample = steps[0] if steps else None
    return context(
        spec, document, lang, day,
        patient={"id": "p-sample", "name": "Sample", "birth_date": day, "age": 70, "sex": "female", "sex_text": W.code_text(facts.get("sex"), "female", lang)},
        enrollment={"id": f"{spec.id}-sample", "enrolled_on": day, "as_of": day},
        steps=steps, goals=goals or [sample_goal], facts=fact_items,
        medications=[{"name": "sample", "since": day}],
        financing=[{"route": "zvw", "label": ROUTE_TEXT["zvw"], "eligible": True, "eligible_text": "ja", "reasons": ["sample"]}],
        escalations=escalations, escalation=escalations[0] if escalations else None,
        review={"step": step_sample, "recorded": fact_items, "proms": [{"name": "x", "title": "x", "latest": "1", "previous": "1"}],
                "changes": ["sample change"], "previous_on": day},
    )


# -- checks run by `pathways validate` -------------------------------------------------------

def check_templates(pathway_file: Path, spec: PathwaySpec, facts: dict, step_locations: dict[str, Location],
                    network: Path | None = None) -> list[Problem]:
    """Every document a step names has a Dutch template; every template of the pathway parses
    and renders with the sample context (strict: an undefined name is a problem). ``network``:
    a care network's templates folder, as ``template_dirs`` takes it."""
    from jinja2 import TemplateNotFound, TemplateSyntaxError, UndefinedError

    problems: list[Problem] = []
    named = {s.document: s.id for s in spec.steps if s.document}
    dirs = template_dirs(pathway_file, spec.id, network)
    if not named and not (pathway_file.parent / "documents").is_dir():
        return problems
    env = environment(dirs)
    wanted = sorted(set(DOCUMENTS) | set(named))
    for document in wanted:
        for lang in LANGS:
            name = template_name(document, lang)
            try:
                template = env.get_template(name)
            except TemplateNotFound:
                if lang == "nl" and document in named:
                    searched = ", ".join(str(d) for d in dirs) or f"{pathway_file.parent / 'documents'}"
                    problems.append(Problem(step_locations[named[document]], "PW046",
                                            f"step '{named[document]}' names document '{document}', but there is no template {name}",
                                            f"add it to {pathway_file.parent / 'documents'} (searched: {searched})"))
                continue
            except TemplateSyntaxError as exc:
                problems.append(Problem(Location(_shown(exc.filename) if exc.filename else name, exc.lineno or 1, 1), "PW044",
                                        f"template {name} cannot be parsed: {exc.message}", "check the {% %} and {{ }} pairs"))
                continue
            sample = sample_context(spec, facts, document, lang)
            try:
                template.render(sample)
            except UndefinedError as exc:
                line = template_line(exc, template.filename)
                problems.append(Problem(Location(_shown(template.filename), line, 1), "PW045",
                                        f"template {name} uses something a document does not provide: {exc.message}",
                                        _suggest(exc.message or "", sample) or "see docs/documents.md for the names a template can use"))
            except Exception as exc:  # a filter applied to the wrong kind of value, a bad call, ...
                line = template_line(exc, template.filename)
                problems.append(Problem(Location(_shown(template.filename), line, 1), "PW045",
                                        f"template {name} fails to render: {exc}", "see docs/documents.md"))
    return problems


def _suggest(message: str, sample: dict) -> str:
    """did-you-mean for an undefined name, from the names the context has."""
    import re

    from pathways.errors import did_you_mean

    found = re.search(r"has no attribute '([^']+)'", message) or re.search(r"'([^']+)' is undefined", message)
    if not found:
        return ""
    names: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            names.update(value)
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value[:3]:
                walk(item)

    walk(sample)
    return did_you_mean(found[1], sorted(names))


def _shown(filename: str | None) -> str:
    if not filename:
        return "?"
    try:
        return str(Path(filename).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return filename


def template_line(exc: BaseException, filename: str | None) -> int:
    """The template line of a render error, from the traceback jinja2 rewrites."""
    tb = exc.__traceback__
    line = 1
    while tb is not None:
        if filename and tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line
