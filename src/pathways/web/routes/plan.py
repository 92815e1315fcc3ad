"""The patient's personal plan across their pathways (issue 28 in the web): the page
(`pathways plan PATIENT` on the app's date), the forms that record the patient's goal
priorities and close an open plan escalation (as `--priority` and `--resolve --reason`, the same
functions and permission), and the integrated zorgplan to download (as `--document`). Only the
pseudonymous id is in the URL; every read and change is audited by the functions called."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from pathways.errors import ProblemsFound
from pathways.orchestration.careplan import make_plan, plan_page, plan_parts, record_priorities, resolve_plan_escalation
from pathways.orchestration.network import bundling_window
from pathways.orchestration.service import authorize
from pathways.runtime.plan import PRIORITIES, PlanError
from pathways.store.db import Store
from pathways.views.documents import DocumentError
from pathways.views.plan_document import LANGS, plan_document
from pathways.web.deps import store_of
from pathways.web.pages import render

router = APIRouter()

NOTICES = {"priorities": "The patient's goal priorities were saved.",
           "resolved": "The escalation was closed; the reason is kept in the audit trail."}
PRIORITY = "priority."  # form fields: priority.PATHWAY.GOAL = 1 | 2 | 3 | none
MEDIA_TYPES = {"pdf": "application/pdf", "md": "text/markdown; charset=utf-8"}


def _may_plan(store: Store, patient: str) -> None:
    authorize(store, "input.record", f"make the care plan of {patient}", patient)  # as `pathways plan`


def _page(request: Request, store: Store, patient: str, status: int = 200, notice: str = "", problems: list[str] | None = None,
          chosen: dict[str, str] | None = None):
    """The plan page, made on the app's date; a plan that cannot be made is an error page."""
    try:
        made = plan_page(store, request.app.state.runtimes, patient, request.app.state.settings.clock.today())
    except PlanError as exc:
        unknown = any(p.startswith("unknown patient") or "is in no pathway" in p for p in exc.problems)
        return render(request, "error.html", status=404 if unknown else 409, title="No personal plan", message="; ".join(exc.problems))
    except ProblemsFound as exc:  # the care network's or the interaction library's file: the coordinator fixes it
        return render(request, "error.html", status=409, title="No personal plan", message="; ".join(map(str, exc.problems)))
    plan = made.to_json()
    chosen = chosen or {}
    goals = [{**g, "field": f"{PRIORITY}{g['pathway']}.{g['goal']}",
              "chosen": chosen.get(f"{PRIORITY}{g['pathway']}.{g['goal']}", str(g.get("priority", "none")))} for g in plan["goals"]]
    opened = {e["rule"]: e for e in plan.get("escalations", [])}
    return render(request, "plan.html", status=status, plan=plan, goals=goals, opened=opened, priorities=PRIORITIES,
                  notice=NOTICES.get(notice, ""), problems=problems or [], langs=LANGS)


@router.get("/patients/{patient}/plan")
def plan(request: Request, patient: str, saved: str = "", store: Store = Depends(store_of)):
    _may_plan(store, patient)
    return _page(request, store, patient, notice=saved)


@router.post("/patients/{patient}/plan/priorities")
async def priorities(request: Request, patient: str, store: Store = Depends(store_of)):
    """The patient's goal priorities (one field per goal; an unchanged one records nothing), all or none."""
    _may_plan(store, patient)
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str) and k.startswith(PRIORITY)}
    given = [f"{name[len(PRIORITY):]}={value}" for name, value in form.items()]
    today = request.app.state.settings.clock.today()
    try:
        await run_in_threadpool(record_priorities, store, request.app.state.runtimes, patient, given, today, "priority")
    except PlanError as exc:
        return await run_in_threadpool(_page, request, store, patient, 422, "", exc.problems, form)
    return RedirectResponse(f"/patients/{patient}/plan?saved=priorities", status_code=303)


@router.post("/patients/{patient}/plan/escalations/{rule}/resolve")
async def resolve(request: Request, patient: str, rule: str, store: Store = Depends(store_of)):
    """Close the plan's open escalation of ``rule`` for the reason given (kept in the audit trail)."""
    _may_plan(store, patient)
    reason = (await request.form()).get("reason")
    reason = reason if isinstance(reason, str) else ""
    today = request.app.state.settings.clock.today()
    try:
        await run_in_threadpool(resolve_plan_escalation, store, patient, rule, reason, today, ("escalation", "reason"))
    except PlanError as exc:
        return await run_in_threadpool(_page, request, store, patient, 422, "", exc.problems)
    return RedirectResponse(f"/patients/{patient}/plan?saved=resolved", status_code=303)


@router.get("/patients/{patient}/plan/zorgplan.{fmt}")
def zorgplan(request: Request, patient: str, fmt: str, lang: str = "nl", store: Store = Depends(store_of)):
    """The integrated zorgplan (as `pathways plan PATIENT --document OUT.pdf|.md --lang nl|en`)."""
    _may_plan(store, patient)
    authorize(store, "document.render", f"write the care plan of {patient}", patient)
    if fmt not in MEDIA_TYPES or lang not in LANGS:
        return render(request, "error.html", status=404, title="No document",
                      message=f"the zorgplan is downloaded as .pdf or .md in {' or '.join(LANGS)}, not .{fmt} in '{lang}'")
    runtimes = request.app.state.runtimes
    try:
        made, _ = make_plan(store, runtimes, patient, request.app.state.settings.clock.today(), bundling_window(None))
        data = plan_document(store, made.to_json(), plan_parts(store, runtimes, patient), lang, fmt)
    except PlanError as exc:
        return render(request, "error.html", status=409, title="No personal plan", message="; ".join(exc.problems))
    except ProblemsFound as exc:
        return render(request, "error.html", status=409, title="No personal plan", message="; ".join(map(str, exc.problems)))
    except DocumentError as exc:  # e.g. no Pango for PDF: say so, nothing sent
        return render(request, "error.html", status=409, title="No document", message=str(exc))
    return Response(data, media_type=MEDIA_TYPES[fmt],
                    headers={"Content-Disposition": f'attachment; filename="{patient}-zorgplan-{lang}.{fmt}"'})
