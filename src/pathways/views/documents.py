"""Care-plan documents for one enrollment: the context (from the store, the runtime state and the
rules' current view of the patient), rendered with the pathway's templates to Markdown, HTML
(markdown-it, raw HTML in values escaped) or PDF (WeasyPrint)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from pathways.definition import documents as D
from pathways.definition import wording as W
from pathways.definition.loader import LoadedPathway
from pathways.facts.derive import Atom, Reader
from pathways.views.findings import Findings

FORMATS = ("md", "html", "pdf")
HIDDEN_FACTS = {"birth_date", "deceased_date", "referral_date", "specialist_contact_date"}  # identifying, or bookkeeping


class DocumentError(ValueError):
    pass


def build_context(loaded: LoadedPathway, evaluator, document: str, lang: str, today: dt.date, *, state, patient_facts,
                  decisions: list, recorded: list[tuple[dt.date, str, dict]], identity: dict | None,
                  escalation_step: str | None = None) -> dict[str, Any]:
    """The document context of a real enrollment (same shape as ``definition.documents.sample_context``).

    ``decisions`` are the store's Decision rows of the enrollment; ``recorded`` the recorded step
    outputs as (date, step, values)."""
    spec = loaded.spec
    facts = loaded.facts
    evaluation = evaluator.evaluate(patient_facts, today, today)
    timeline = evaluator.timeline(patient_facts, today)
    reader = Reader(timeline, evaluator.plan.facts, evaluator.plan.derived, today)
    written = Findings(evaluator.plan, lang)
    steps = []
    for step in spec.steps:
        if step.escalation is not None:
            continue
        progress = state.steps[step.id]
        steps.append(D.step_item(step, lang, progress.status, progress.due_on, progress.done_on[-1] if progress.done_on else None, progress.reasons))
    goals = []
    spec_goals = {g.id: g for s in spec.steps for g in s.goals}
    for gid, goal in state.goals.items():
        goals.append(D.goal_item(gid, spec_goals.get(gid), lang, fact=facts.get(goal.fact), target=goal.target, baseline=goal.baseline,
                                 latest=goal.latest, agreed_on=goal.agreed_on, deadline=goal.deadline, status=goal.status))
    fact_items = []
    for name, fact in facts.items():
        if name in HIDDEN_FACTS or fact.type == "date":
            continue
        reading = reader.read(Atom("value", name))
        if reading.value is None or reading.value is False:
            continue
        observed = None if fact.source == "demographic" else reading.observed  # a demographic's date is the birth date
        fact_items.append(D.fact_item(name, fact, reading.value, observed, lang))
    medications = []
    for m in patient_facts.medications:
        if (m.start is None or m.start <= today) and (m.end is None or m.end > today):
            title = getattr(facts.get(m.fact), "title", None) if m.fact else None
            name = title or (m.code.display if m.code and m.code.display else None) or (m.code.code if m.code else None) or m.fact or "?"
            medications.append({"name": name, "since": m.start})
    financing = []
    for route, e in evaluation.eligibility.items():
        eligible = e["eligible"]
        explanation = evaluation.explanations[f"eligibility:{route}"]
        found = written.of(f"eligibility:{route}", explanation.lines, explanation.used, eligible) if eligible is not None or explanation.missing else []
        financing.append({"route": route, "label": D.ROUTE_TEXT.get(route, route), "eligible": eligible,
                          "eligible_text": {True: "ja" if lang == "nl" else "yes", False: "nee" if lang == "nl" else "no"}.get(eligible, "onbekend" if lang == "nl" else "unknown"),
                          "reasons": found[:3]})
    escalations = []
    by_step = {s.id: s for s in spec.steps}
    for d in decisions:
        if d.kind != "escalated" or d.step not in by_step:
            continue
        detail = json.loads(d.detail)
        at_decision = Reader(timeline, evaluator.plan.facts, evaluator.plan.derived, d.decided_on)
        used = _facts_read(detail.get("facts") or {}, facts, at_decision, lang)
        reasons, trigger = json.loads(d.reasons), f"trigger:{d.step}"
        # the date an escalation opened is its decision's date, whenever the letter is written
        escalations.append(D.escalation_item(by_step[d.step], lang, d.decided_on, reasons, used, d.step in state.escalations,
                                             written.of(trigger, reasons, detail.get("facts") or {}), written.criterion(trigger)))
    escalations.sort(key=lambda e: e["since"], reverse=True)
    chosen = None
    if escalation_step is not None:
        chosen = next((e for e in escalations if e["id"] == escalation_step), None)
        if chosen is None:
            raise DocumentError(f"escalation '{escalation_step}' was never opened for {state.enrollment}"
                                f" (opened: {', '.join(sorted({e['id'] for e in escalations})) or 'none'})")
    elif escalations:
        referrals = [e for e in escalations if e["action"] in ("verwijzing_specialist", "consultatie_specialist", "opschaling_specialist")]
        chosen = next((e for e in referrals if e["open"]), None) or (referrals[0] if referrals else escalations[0])
    if document == "verwijsbrief" and chosen is None:
        raise DocumentError(f"no escalation to refer for: {state.enrollment} has had none (a verwijsbrief explains an escalation)")
    review = _review(spec, state, recorded, decisions, facts, lang, written)
    patient = {"id": state.patient, "name": (identity or {}).get("name"), "birth_date": (identity or {}).get("birth_date"),
               "age": evaluation.facts.get("age_years"), "sex": evaluation.facts.get("sex"),
               "sex_text": W.code_text(facts.get("sex"), evaluation.facts.get("sex"), lang) if evaluation.facts.get("sex") else None}
    return D.context(spec, document, lang, today, patient=patient,
                     enrollment={"id": state.enrollment, "enrolled_on": state.enrolled_on, "as_of": state.as_of},
                     steps=steps, goals=goals, facts=fact_items, medications=medications, financing=financing,
                     escalations=escalations, escalation=chosen, review=review)


def _review(spec, state, recorded, decisions, facts, lang, written: Findings) -> dict[str, Any]:
    """The latest review done, what was recorded at it, PROMs, and what changed since the one before."""
    reviews = {s.id for s in spec.steps if s.stage == "reviews"}
    done = sorted(((day, step, values) for day, step, values in recorded if step in reviews), key=lambda r: r[0])
    if not done:
        return {"step": None, "recorded": [], "proms": [], "changes": [], "previous_on": None}
    day, step_id, values = done[-1]
    previous = done[-2] if len(done) > 1 else None
    step = next(s for s in spec.steps if s.id == step_id)
    progress = state.steps[step_id]
    item = D.step_item(step, lang, progress.status, progress.due_on, day, ())
    items = [D.fact_item(k, facts.get(k), v.get("value") if isinstance(v, dict) else v, day, lang) for k, v in values.items()]
    history = sorted(recorded, key=lambda r: r[0])
    proms = []
    for name, value in values.items():
        fact = facts.get(name)
        if fact is None or not getattr(fact, "prom", False):
            continue
        earlier = [v[name] for d, _, v in history if d < day and name in v]
        proms.append({"name": name, "title": fact.title, "latest": W.fact_value_text(fact, value, lang),
                      "previous": W.fact_value_text(fact, earlier[-1], lang) if earlier else None})
    since = previous[0] if previous else state.enrolled_on
    changes = []
    words = {"nl": {"escalated": "escalatie", "goal_agreed": "doel afgesproken", "goal_met": "doel gehaald", "goal_missed": "doel niet gehaald", "goal_not_measured": "doel niet gemeten", "gated": "tegengehouden"},
             "en": {"escalated": "escalation", "goal_agreed": "goal agreed", "goal_met": "goal met", "goal_missed": "goal missed", "goal_not_measured": "goal not measured", "gated": "held back"}}[lang]
    titles = {s.id: D.text(s.title, lang) for s in spec.steps}
    for d in decisions:
        if since < d.decided_on <= day and d.kind in words:
            found = _decision_findings(written, d)
            changes.append(f"{D.format_date(d.decided_on, lang)}: {words[d.kind]}: {titles.get(d.step, d.step or '')}" + (f" ({'; '.join(found)})" if found else ""))
    return {"step": item, "recorded": items, "proms": proms, "changes": changes, "previous_on": previous[0] if previous else None}


def _facts_read(read: dict[str, Any], facts: dict, at_decision: Reader, lang: str) -> list[dict]:
    """The facts a decision read, with their values and dates: a function of a fact over time
    (``min(ccq_score, 6mo)``) stands for its fact's value then; what was missing is not a fact it rested on."""
    items: dict[str, dict] = {}
    for key, value in read.items():
        name = key if key in facts else key.partition("(")[2].partition(",")[0].partition(")")[0].strip()
        if name not in facts or name in HIDDEN_FACTS or name in items:
            continue
        reading = at_decision.read(Atom("value", name))
        value = value if key == name else reading.value
        if value is None:
            continue
        items[name] = D.fact_item(name, facts[name], value, None if facts[name].source == "demographic" else reading.observed, lang)
    return list(items.values())


def _decision_findings(written: Findings, decision) -> list[str]:
    """What an escalation or a held-back step rested on, in clinical sentences (none for other decisions)."""
    detail = json.loads(decision.detail)
    conditions = [c["id"] for c in detail.get("conditions") or []]
    if decision.kind == "escalated" and conditions:
        return written.of(conditions[0], json.loads(decision.reasons), detail.get("facts") or {})
    found: list[str] = []
    if decision.kind == "gated":  # its gate, or its financing, did not hold (or could not be known)
        reasons = json.loads(decision.reasons)
        for condition in conditions:
            found += written.of(condition, reasons, detail.get("facts") or {}, False) or written.of(condition, reasons, detail.get("facts") or {}, None)
    return found


def render_markdown(loaded: LoadedPathway, document: str, lang: str, context: dict[str, Any]) -> str:
    from jinja2 import TemplateNotFound

    dirs = D.template_dirs(Path(loaded.file), loaded.spec.id, loaded.places.templates)  # as it was loaded: a network's templates first
    env = D.environment(dirs)
    try:
        template = env.get_template(D.template_name(document, lang))
    except TemplateNotFound:
        known = sorted({p.name.split(".")[0] for d in dirs for p in d.glob("*.md.j2")})
        raise DocumentError(f"no template for document '{document}' in {lang} for {loaded.spec.id} (documents: {', '.join(known) or 'none'})") from None
    try:
        return template.render(context)
    except Exception as exc:  # jinja2's UndefinedError, or a filter given the wrong kind of value
        raise DocumentError(f"{template.filename}:{D.template_line(exc, template.filename)}: the template fails for this enrollment: {exc}"
                            " (nothing was written; `pathways validate` checks templates)") from None


def to_html(markdown: str, title: str, lang: str) -> str:
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark", {"html": False, "typographer": False}).enable("table").render(markdown)
    env = Environment(loader=PackageLoader("pathways.views", "templates"), autoescape=select_autoescape(["html", "j2"]), undefined=StrictUndefined)
    return env.get_template("document.html.j2").render(title=title, lang=lang, body=body)


def to_pdf(html: str) -> bytes:
    try:
        from weasyprint import HTML
    except OSError as exc:  # Pango missing
        raise DocumentError(f"PDF needs Pango from the system ({exc}); run the README's set-up, which installs it") from None
    return HTML(string=html).write_pdf()


def write_atomically(out: Path, data: bytes) -> None:
    tmp = out.with_name(out.name + ".part")
    tmp.write_bytes(data)
    tmp.replace(out)
