"""The coordinator's pages: the catalogue of pathways, a pathway's page (diagram, steps, gates
with their citations, parameters with evidence) and the editor, whose draft is checked on the
server as one types (the same checks as `pathways validate`), drawn as a diagram, compared with
the published version, saved to the pathway's file and published.

Reading pathways needs ``pathway.read`` (every role); the editor, checking, saving and
publishing need ``pathway.publish`` (coordinators, admins). Every refusal is audited."""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, JSONResponse, Response

from pathways.definition.diff import diff_pathways
from pathways.definition.model import STAGES
from pathways.errors import Problem, ProblemsFound
from pathways.orchestration import drafts
from pathways.orchestration.versions import VersionNotPublished
from pathways.orchestration.service import Runtimes, authorize, publish as publish_version
from pathways.store.db import Store, VersionTaken
from pathways.views.diagram import mermaid
from pathways.views.show import STAGE_TITLES, condition_text, describe_timing
from pathways.web import security
from pathways.web.app import VENDOR
from pathways.web.deps import store_of
from pathways.web.pages import render

router = APIRouter()
# The diagram (Mermaid draws SVG with inline styles) and the editor (CodeMirror adds <style>
# elements) need inline styles on these two pages; scripts stay the app's own files only.
DRAWING_CSP = {"Content-Security-Policy": security.HEADERS["Content-Security-Policy"].replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")}
MAX_DRAFT = 2_000_000  # characters of a draft sent to be checked or saved


@router.get("/vendor/{name}", include_in_schema=False)
def vendor(name: str) -> Response:
    """The diagram renderer and the editor, fetched and bundled at set-up (scripts/setup.sh)."""
    if name not in ("mermaid.min.js", "codemirror.min.js") or not (VENDOR / name).is_file():
        return Response(f"{name} is not installed (run scripts/setup.sh)", status_code=404, media_type="text/plain")
    return FileResponse(VENDOR / name, media_type="text/javascript", headers={"Cache-Control": "public, max-age=86400"})


def _pathway(store: Store, name: str, permission: str, what: str):
    authorize(store, permission, what, name)
    try:
        return drafts.pathway_file(name)
    except drafts.UnknownPathway as exc:
        return exc


def _not_found(request: Request, exc: Exception):
    return render(request, "error.html", status=404, title="Not found", message=str(exc))


@router.get("/pathways")
def catalogue(request: Request, store: Store = Depends(store_of)):
    authorize(store, "pathway.read", "read the catalogue of pathways", "pathways")
    entries = drafts.catalogue(store, Runtimes())  # fresh: the files on disk now (unchanged ones stay compiled)
    return render(request, "catalogue.html", entries=entries, may_edit=store.actor.may("pathway.publish"))


@router.get("/pathways/{name}")
def pathway(request: Request, name: str, store: Store = Depends(store_of)):
    found = _pathway(store, name, "pathway.read", f"read pathway {name}")
    if isinstance(found, Exception):
        return _not_found(request, found)
    try:
        runtime = Runtimes().get(name)  # the files on disk now
    except ProblemsFound as exc:
        return render(request, "error.html", status=409, title=f"{name} does not validate",
                      message="; ".join(str(p) for p in exc.problems[:20]))
    loaded = runtime.loaded
    spec = loaded.spec
    sources = {s.id: s for library in loaded.libraries for s in library.model.sources} | {s.id: s for s in spec.sources}
    stages = [(STAGE_TITLES[stage], [s for s in spec.steps if s.stage == stage]) for stage in STAGES]
    return render(request, "pathway.html", headers=DRAWING_CSP, spec=spec, loaded=loaded, diagram=mermaid(loaded), sources=sources,
                  stages=[(title, steps) for title, steps in stages if steps], condition_text=condition_text,
                  timing=describe_timing, published=store.publications(name), version_key=runtime.evaluator.plan.version_key,
                  may_edit=store.actor.may("pathway.publish"), may_migrate=store.actor.may("enrollment.migrate"))


@router.get("/pathways/{name}/edit")
def editor(request: Request, name: str, store: Store = Depends(store_of)):
    found = _pathway(store, name, "pathway.publish", f"edit pathway {name}")
    if isinstance(found, Exception):
        return _not_found(request, found)
    latest = store.published_versions(name)
    text = found.read_text(encoding="utf-8")
    return render(request, "editor.html", headers=DRAWING_CSP, name=name, text=text, base=drafts.content_hash(text), file=str(found),
                  published=latest[-1][1] if latest else None)


def _draft_text(form) -> str | None:
    text = form.get("text")
    return text if isinstance(text, str) and len(text) <= MAX_DRAFT else None


def _problem(p: Problem) -> dict:
    return {"file": p.location.file, "line": p.location.line, "col": p.location.col, "code": p.code, "message": p.message,
            "hint": p.hint, "severity": "warning" if p.is_warning else "error", "text": str(p)}


@router.post("/pathways/{name}/check")
async def check(request: Request, name: str, store: Store = Depends(store_of)):
    """The draft's problems (line, column, code, hint), its diagram and its changes from the
    published version, as JSON for the editor."""
    found = _pathway(store, name, "pathway.publish", f"check a draft of pathway {name}")
    if isinstance(found, Exception):
        return JSONResponse({"error": str(found)}, status_code=404)
    text = _draft_text(await request.form())
    if text is None:
        return JSONResponse({"error": f"send the draft as the form field 'text' (at most {MAX_DRAFT} characters)"}, status_code=400)
    started = time.perf_counter()
    result = drafts.check_draft(name, text)
    answer: dict = {"file": result.file, "valid": result.valid, "problems": [_problem(p) for p in result.problems],
                    "elsewhere": [_problem(p) for p in result.elsewhere], "diagram": None, "changes": None, "published": None}
    if result.loaded is not None:
        answer["diagram"] = mermaid(result.loaded)
        try:
            latest = drafts.latest_published(store, request.app.state.runtimes, name)
        except VersionNotPublished as exc:  # the trail's copy does not load with this code: no diff, said why
            answer["published_error"] = str(exc)
        else:
            if latest is not None:
                answer["published"] = latest[0]
                answer["changes"] = [c.as_json() for c in diff_pathways(latest[1], result.loaded)]
    answer["milliseconds"] = round((time.perf_counter() - started) * 1000)
    return JSONResponse(answer, status_code=200 if result.valid else 422)


@router.post("/pathways/{name}/save")
async def save(request: Request, name: str, store: Store = Depends(store_of)):
    """Write the draft to the pathway's file (atomically; only YAML that parses)."""
    found = _pathway(store, name, "pathway.publish", f"save a draft of pathway {name}")
    if isinstance(found, Exception):
        return JSONResponse({"error": str(found)}, status_code=404)
    form = await request.form()
    text, base = _draft_text(form), form.get("base")
    if text is None or not isinstance(base, str):
        return JSONResponse({"error": f"send the draft as the form field 'text' (at most {MAX_DRAFT} characters) and the "
                                      "content hash of the file it started from as 'base'"}, status_code=400)
    try:
        path = drafts.save_draft(name, text, base)
    except drafts.DraftConflict as exc:
        return JSONResponse({"saved": False, "message": f"Not saved: {exc}."}, status_code=409)
    except drafts.DraftNotSaved as exc:
        return JSONResponse({"saved": False, "message": "Not saved: the draft is not YAML that parses; the file was left as it was.",
                             "problems": [_problem(p) for p in exc.problems]}, status_code=422)
    return JSONResponse({"saved": True, "base": drafts.content_hash(text), "message": f"Saved to {path.name} of {name}; publish it when it validates."})


@router.post("/pathways/{name}/publish")
async def publish(request: Request, name: str, store: Store = Depends(store_of)):
    """Publish the pathway's files on disk (the saved draft), as `pathways publish NAME` does."""
    found = _pathway(store, name, "pathway.publish", f"publish pathway {name}")
    if isinstance(found, Exception):
        return _not_found(request, found)
    try:
        runtime = Runtimes().get(name)  # the files on disk now
    except ProblemsFound as exc:
        return render(request, "published.html", status=422, name=name, done=False,
                      message=f"Not published: {name} does not validate ({len(exc.problems)} problems). Fix them in the editor and save.",
                      problems=[str(p) for p in exc.problems])
    key = runtime.evaluator.plan.version_key
    try:
        created = publish_version(store, runtime.loaded, key)
    except VersionTaken as exc:
        return render(request, "published.html", status=409, name=name, done=False, message=f"Not published: {exc}.", problems=[])
    message = f"Published {key}." if created else f"{key} was published already: nothing changed."
    return render(request, "published.html", name=name, done=True, message=message, problems=[],
                  may_migrate=store.actor.may("enrollment.migrate"))
