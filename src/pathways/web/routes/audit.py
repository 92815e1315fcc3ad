"""The auditors' pages (auditors and admins): find an enrollment or a pseudonymous patient, its
timeline, a decision ("why was this patient referred on that date"), indicators per pathway and
period with drill-down to the enrollments and decisions behind each number, the chain's
verification with the head hash to keep outside the database, log search and CSV export.

Reading and auditing go through ``pathways.orchestration.auditing``; the entries are interpreted
by ``pathways.views.audit`` as ``pathways audit`` does. Only pseudonymous ids appear in addresses.
"""

from __future__ import annotations

import datetime as dt
import io
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from pathways.orchestration import auditing
from pathways.store.audit import Query
from pathways.store.db import Store
from pathways.views.audit import Catalog, indicators, parse_period, timeline, write_csv
from pathways.views.decision import decision_detail
from pathways.web.deps import store_of
from pathways.web.pages import render

router = APIRouter(prefix="/audit")
LANG = "en"
LOG_PAGE = 200  # entries shown on the log page; the CSV has them all
NUMBERS = {  # drill-down keys -> what the number counts
    "reviews.on_time": "reviews done on time", "reviews.late_or_missed": "reviews late or missed", "reviews.pending": "reviews pending",
    "escalations.acted": "escalations acted on", "escalations.open": "escalations still open",
    "referrals.with_contact": "referrals with a recorded specialist contact", "referrals.without_contact": "referrals without a recorded contact",
    "goals.met": "goals met by their deadline", "goals.missed": "goals missed", "goals.not_measured": "goals not measured",
}


def _missing(request: Request, exc: Exception, status: int = 404):
    return render(request, "error.html", status=status, title="Not found" if status == 404 else "Not understood", message=str(exc))


@router.get("")
def search(request: Request, id: str = "", store: Store = Depends(store_of)):
    """The search form; with an id, the enrollment's timeline or the patient's enrollments."""
    ident = id.strip()
    if not ident:
        auditing.check(store, "search the audit trail", "audit search")
        return render(request, "audit_search.html", found=None, ident="")
    try:
        found = auditing.find(store, ident)
    except auditing.UnknownInTrail as exc:
        return render(request, "audit_search.html", status=404, found=None, ident=ident, error=str(exc))
    if found.enrollment:
        return RedirectResponse(f"/audit/enrollments/{found.enrollment}", status_code=303)
    return render(request, "audit_search.html", found=found, ident=ident)


@router.get("/enrollments/{enrollment}")
def enrollment_timeline(request: Request, enrollment: str, store: Store = Depends(store_of)):
    found = auditing.enrollment_trail(store, enrollment)
    rows = timeline(found, Catalog(auditing.published(store), request.app.state.settings.places), LANG)
    first = found[0]
    return render(request, "audit_timeline.html", enrollment=enrollment, patient=first["patient_id"], pathway=first["pathway"], rows=rows,
                  decision_actions=("step.", "escalation.", "goal.", "indication."))


@router.get("/decisions/{decision:path}")
def decision(request: Request, decision: str, store: Store = Depends(store_of)):
    try:
        key, decision_id, found = auditing.decision_trail(store, decision)
    except auditing.UnknownInTrail as exc:
        return _missing(request, exc)
    detail = decision_detail(key, decision_id, found, Catalog(auditing.published(store), request.app.state.settings.places), LANG)
    return render(request, "audit_decision.html", d=detail, e=detail.entry, p=detail.entry["payload"])


def _indicator_inputs(request: Request, store: Store, pathway: str, period: str, grace: str):
    """The indicators of a pathway over a period, or an error page (unknown pathway, bad period)."""
    try:
        chosen = parse_period(period)
    except ValueError as exc:
        return None, _missing(request, f"period: {exc}", 400)
    if not grace.isdigit() or int(grace) > 365:
        return None, _missing(request, f"grace: '{grace}' is not a number of days from 0 to 365", 400)
    try:
        found = auditing.pathway_trail(store, pathway)
    except auditing.UnknownInTrail as exc:
        return None, _missing(request, exc)
    today = request.app.state.settings.clock.today()
    return indicators(found, Catalog(auditing.published(store), request.app.state.settings.places), pathway, chosen, today, int(grace)), None


@router.get("/indicators")
def indicator_page(request: Request, pathway: str = "", period: str = "", grace: str = "14", store: Store = Depends(store_of)):
    known = auditing.pathways(store)
    if not pathway or not period:
        return render(request, "audit_indicators.html", known=known, pathway=pathway or (known[0] if known else ""),
                      period=period or str(request.app.state.settings.clock.today().year), grace=grace, result=None)
    result, error = _indicator_inputs(request, store, pathway, period, grace)
    if error is not None:
        return error
    from pathways.views.report import plots

    query = urlencode({"pathway": pathway, "period": period, "grace": grace})
    return render(request, "audit_indicators.html", known=known, pathway=pathway, period=period, grace=grace, result=result,
                  data=result.to_json(), plots=plots(result, image="png"), query=query, counts={k: len(v) for k, v in result.behind.items()})


@router.get("/indicators/behind")
def behind(request: Request, pathway: str = "", period: str = "", number: str = "", grace: str = "14", store: Store = Depends(store_of)):
    result, error = _indicator_inputs(request, store, pathway, period, grace)
    if error is not None:
        return error
    if number not in NUMBERS and not number.startswith("prom."):
        return _missing(request, f"number: '{number}' is not one of the indicators' numbers ({', '.join(NUMBERS)}, prom.FACT.MONTH)", 400)
    items = sorted(result.behind.get(number, []), key=lambda i: (i["on"], i["enrollment"]))
    auditing.shown(store, "audit indicator drill-down", f"{pathway} {result.period.label} {number}", [i["enrollment"] for i in items],
                   number=number)
    label = NUMBERS.get(number) or f"PROM {number.split('.')[1]} recorded in {number.split('.')[-1]}"
    return render(request, "audit_behind.html", pathway=pathway, period=result.period, label=label, items=items,
                  back="/audit/indicators?" + urlencode({"pathway": pathway, "period": period, "grace": grace}))


@router.get("/verify")
def verify(request: Request, anchor: str = "", store: Store = Depends(store_of)):
    parsed, problem = None, None
    if anchor.strip():
        seq, sep, digest = anchor.strip().partition(":")
        if sep and seq.isdigit() and len(digest) == 64 and all(c in "0123456789abcdefABCDEF" for c in digest):
            parsed = (int(seq), digest.lower())
        else:
            problem = f"anchor '{anchor}' is not SEQ:HASH (a sequence number and a 64-character SHA-256, as this page showed it before)"
    result = auditing.verification(store, parsed)
    return render(request, "audit_verify.html", status=400 if problem else 200, result=result, anchor=anchor, problem=problem,
                  checked_at=request.app.state.settings.clock.now())


def _log_query(since: str, until: str, **fields: str) -> tuple[Query, list[str]]:
    problems, days = [], {}
    for name, text in (("since", since), ("until", until)):
        try:
            days[name] = dt.date.fromisoformat(text) if text else None
        except ValueError:
            problems.append(f"{'from' if name == 'since' else 'until'}: '{text}' is not a date (YYYY-MM-DD)")
            days[name] = None
    return Query(**{k: v.strip() or None for k, v in fields.items()}, since=days["since"], until=days["until"]), problems


@router.get("/log")
def log(request: Request, action: str = "", enrollment: str = "", patient: str = "", pathway: str = "", actor: str = "",
        since: str = "", until: str = "", store: Store = Depends(store_of)):
    filters = {"action": action, "enrollment": enrollment, "patient": patient, "pathway": pathway, "actor": actor, "since": since, "until": until}
    query, problems = _log_query(since, until, action=action, enrollment=enrollment, patient=patient, pathway=pathway, actor=actor)
    if problems:
        auditing.check(store, "read the audit log", "audit log")
        return render(request, "audit_log.html", status=400, filters=filters, problems=problems, rows=[], total=0, query="")
    rows, total = auditing.log(store, query, limit=LOG_PAGE)
    return render(request, "audit_log.html", filters=filters, problems=[], rows=rows, total=total, query=urlencode(filters), limit=LOG_PAGE)


@router.get("/log.csv")
def log_csv(request: Request, action: str = "", enrollment: str = "", patient: str = "", pathway: str = "", actor: str = "",
            since: str = "", until: str = "", store: Store = Depends(store_of)):
    query, problems = _log_query(since, until, action=action, enrollment=enrollment, patient=patient, pathway=pathway, actor=actor)
    if problems:
        auditing.check(store, "export the audit log", "audit log export")
        return Response("; ".join(problems) + "\n", status_code=400, media_type="text/plain")
    rows, _ = auditing.log(store, query, page="audit log export")
    text = io.StringIO()
    write_csv(text, rows)
    stamp = request.app.state.settings.clock.now().strftime("%Y%m%d-%H%M%S")
    return Response(text.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="audit-log-{stamp}.csv"'})
