"""The care team's pages: the worklist, an enrollment, and recording a step with its form."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from pathways.orchestration import care, upload
from pathways.orchestration.service import authorize
from pathways.runtime.core import RecordError, StepNotOpen
from pathways.store.db import StaleState, Store
from pathways.views.documents import DocumentError
from pathways.views.enrollment_documents import MEDIA_TYPES, documents_of, render_document
from pathways.views.goal_plots import goal_plots
from pathways.web.deps import store_of
from pathways.web.pages import render

router = APIRouter()


def _day(text: str | None, name: str, problems: list[str]) -> dt.date | None:
    if not text:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        problems.append(f"{name}: '{text}' is not a date (YYYY-MM-DD)")
        return None


@router.get("/worklist")
def worklist(request: Request, discipline: str = "", pathway: str = "", since: str = "", until: str = "", page: str = "1",
             store: Store = Depends(store_of)):
    problems: list[str] = []
    start, end = _day(since, "from", problems), _day(until, "until", problems)
    number = int(page) if page.isdigit() else 1
    settings = request.app.state.settings
    listed = care.worklist(store, request.app.state.runtimes, settings.clock.today(), discipline=discipline or None,
                           pathway=pathway or None, since=start, until=end, page=number, size=settings.page_size)
    filters = {"discipline": discipline, "pathway": pathway, "since": since, "until": until}
    partial = request.headers.get("HX-Request") == "true" and request.headers.get("HX-Target") == "results"
    return render(request, "worklist_results.html" if partial else "worklist.html", status=400 if problems else 200,
                  worklist=listed, filters=filters, problems=problems, today=settings.clock.today())


@router.get("/enrollments/{enrollment}")
def enrollment(request: Request, enrollment: str, recorded: str = "", advance: str = "", declined: str = "", enrolled: str = "",
               store: Store = Depends(store_of)):
    view = care.enrollment_view(store, request.app.state.runtimes, enrollment)
    documents = documents_of(request.app.state.runtimes.get_version(store.load(enrollment)[0].version_key, store))
    return render(request, "enrollment.html", view=view, recorded=recorded, advance=advance, declined=declined, enrolled=enrolled,
                  documents=documents if store.actor.may("document.render") else [], plots=goal_plots(view.goals))


@router.get("/enrollments/{enrollment}/documents/{name}.{fmt}")
def document(request: Request, enrollment: str, name: str, fmt: str, lang: str = "nl", store: Store = Depends(store_of)):
    """A care-plan document to download (as `pathways render DOCUMENT ENROLLMENT --format pdf`)."""
    authorize(store, "document.render", f"render {name} for {enrollment}", enrollment)
    state, _ = store.load(enrollment)
    runtime = request.app.state.runtimes.get_version(state.version_key, store)
    identity = store.identity(state.patient) if store.actor.may("identity.read") else None
    try:
        if lang not in ("nl", "en"):
            raise DocumentError(f"language '{lang}': use nl or en")
        data = render_document(store, runtime, state, name, fmt, lang, request.app.state.settings.clock.today(), identity)
    except DocumentError as exc:
        return render(request, "error.html", status=404 if "unknown document" in str(exc) else 409, title="No document", message=str(exc))
    return Response(data, media_type=MEDIA_TYPES[fmt], headers={"Content-Disposition": f'attachment; filename="{enrollment}-{name}.{fmt}"'})


def _form_context(request: Request, store: Store, enrollment: str, step: str):
    view = care.enrollment_view(store, request.app.state.runtimes, enrollment, page="record")
    found = next((s for s in view.steps if s.id == step), None)
    if found is None:
        return view, None, None
    state_key = store.load(enrollment)[0].version_key
    return view, found, care.step_fields(store, request.app.state.runtimes, state_key, step)


@router.get("/enrollments/{enrollment}/steps/{step}/record")
def record_form(request: Request, enrollment: str, step: str, store: Store = Depends(store_of)):
    authorize(store, "input.record", f"record step {step}", enrollment)
    view, found, fields = _form_context(request, store, enrollment, step)
    if found is None:
        return render(request, "error.html", status=404, title="Not found", message=f"{view.pathway} {view.version} has no step '{step}'")
    if not found.recordable:
        return render(request, "error.html", status=409, title="Nothing to record",
                      message=f"step '{step}' is not due (status {found.status}): see the enrollment page")
    return render(request, "record.html", view=view, step=found, fields=fields, values={}, errors={}, general=[])


@router.post("/enrollments/{enrollment}/steps/{step}/record")
async def record(request: Request, enrollment: str, step: str, store: Store = Depends(store_of)):
    authorize(store, "input.record", f"record step {step}", enrollment)
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    view, found, fields = _form_context(request, store, enrollment, step)
    if found is None:
        return render(request, "error.html", status=404, title="Not found", message=f"{view.pathway} {view.version} has no step '{step}'")
    data = care.form_values(fields, form)
    try:
        # in a worker thread, as the synchronous routes run: the event loop keeps serving others meanwhile
        await run_in_threadpool(care.record, store, request.app.state.runtimes, enrollment, step, data, request.app.state.settings.clock)
    except StepNotOpen as exc:  # recorded by someone else since the form was opened, or not due
        return render(request, "error.html", status=409, title="Conflict: nothing was stored", message="; ".join(exc.problems))
    except StaleState:
        return render(request, "error.html", status=409, title="Conflict: nothing was stored",
                      message=f"{enrollment} changed while this was being saved (someone else recorded or advanced it): open it again")
    except RecordError as exc:
        declared = {f.name for f in fields}
        errors: dict[str, list[str]] = {}
        general = []
        for problem, name in zip(exc.problems, exc.fields):
            (errors.setdefault(name, []) if name in declared else general).append(problem)
        return render(request, "record.html", status=422, view=view, step=found, fields=fields, values=form, errors=errors, general=general)
    return await _advanced(request, store, enrollment, step)


async def _advanced(request: Request, store: Store, enrollment: str, step: str) -> RedirectResponse:
    """After a step was recorded (committed): the advance through Prefect, then the enrollment page."""
    settings = request.app.state.settings
    if not settings.prefect:  # advanced in the recording's transaction only; the daily run goes through Prefect
        return RedirectResponse(f"/enrollments/{enrollment}?recorded={step}", status_code=303)
    # whatever Prefect does now, the step stays recorded (a failed advance is pending)
    advanced = await run_in_threadpool(care.advance_recorded, store, request.app.state.prefect, enrollment, settings.clock)
    return RedirectResponse(f"/enrollments/{enrollment}?recorded={step}&advance={'prefect' if advanced.done else 'pending'}", status_code=303)


@router.post("/enrollments/{enrollment}/escalations/{step}/signoff")
async def sign_off(request: Request, enrollment: str, step: str, store: Store = Depends(store_of)):
    """An open escalation signed off by the logged-in account: akkoord records it done, niet akkoord leaves it open."""
    form = await request.form()
    outcome = form.get("outcome") if isinstance(form.get("outcome"), str) else ""
    try:
        await run_in_threadpool(care.sign_off, store, request.app.state.runtimes, enrollment, step, outcome, request.app.state.settings.clock)
    except StepNotOpen as exc:  # signed off or recorded by someone else since the page was opened
        return render(request, "error.html", status=409, title="Conflict: nothing was stored", message="; ".join(exc.problems))
    except StaleState:
        return render(request, "error.html", status=409, title="Conflict: nothing was stored",
                      message=f"{enrollment} changed while this was being saved (someone else recorded or advanced it): open it again")
    except RecordError as exc:
        return render(request, "error.html", status=422, title="Nothing was stored", message="; ".join(exc.problems))
    if outcome != "akkoord":
        return RedirectResponse(f"/enrollments/{enrollment}?declined={step}", status_code=303)
    return await _advanced(request, store, enrollment, step)


@router.get("/enroll")
def enroll_form(request: Request, store: Store = Depends(store_of)):
    authorize(store, "enrollment.write", "enrol patients", "enroll")
    return render(request, "enroll.html", pathways=upload.pathway_choices(), chosen="", patient="", problems=[])


@router.post("/enroll")
async def enroll(request: Request, store: Store = Depends(store_of)):
    """A patient enrolled from an uploaded facts JSON or FHIR file (as `pathways enroll --facts/--fhir`)."""
    authorize(store, "enrollment.write", "enrol patients", "enroll")
    form = await request.form()
    pathway, patient, sent = form.get("pathway"), form.get("patient"), form.get("file")
    pathway = pathway if isinstance(pathway, str) else ""
    patient = patient.strip() if isinstance(patient, str) else ""
    choices = upload.pathway_choices()
    try:
        if pathway not in choices:
            raise upload.UploadRefused([f"choose a pathway ({', '.join(choices)})"])
        if sent is None or isinstance(sent, str):
            raise upload.UploadRefused(["choose a patient file to upload (facts JSON or FHIR: .json, .json.gz or .xml)"])
        enrolled = await run_in_threadpool(upload.enroll_upload, store, request.app.state.runtimes, pathway, sent.filename or "",
                                           sent.file, request.app.state.settings.clock, patient or None,
                                           request.app.state.settings.max_upload_bytes)
    except upload.UploadRefused as exc:
        return render(request, "enroll.html", status=exc.status, pathways=choices, chosen=pathway, patient=patient, problems=exc.problems)
    return RedirectResponse(f"/enrollments/{enrolled.enrollment}?enrolled={'new' if enrolled.created else 'known'}", status_code=303)
