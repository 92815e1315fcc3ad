"""Moving a pathway's enrollments to a newly published version, from the web (issue 27 item 3):
a form (version, date), the preview (orchestration/migrate.py: unchanged, changed with each
change and the reasons that differ, blocked) under its hash, and applying exactly that preview.

Coordinators and admins only (``enrollment.migrate``); every refusal is audited. A refused
apply (a stale preview, one applied already) answers 409 with every reason, nothing moved."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Depends, Request

from pathways.errors import ProblemsFound
from pathways.orchestration import drafts
from pathways.orchestration.migrate import PERMISSION, MigrationRefused, apply, preview
from pathways.orchestration.service import authorize
from pathways.store.db import Store
from pathways.views.migration import change_text, why
from pathways.web.deps import store_of
from pathways.web.pages import render

router = APIRouter()


def _form(request: Request, store: Store, name: str, version: str, at: str, problems: list[str], status: int = 200):
    versions = list(dict.fromkeys(v for v, _ in store.published_versions(name)))
    return render(request, "migrate.html", status=status, name=name, versions=versions, version=version or (versions[-1] if versions else ""),
                  at=at or request.app.state.settings.clock.today().isoformat(), problems=problems, preview=None, moved=None)


def _known(request: Request, store: Store, name: str, what: str):
    authorize(store, PERMISSION, what, name)
    try:
        drafts.pathway_file(name)
    except drafts.UnknownPathway as exc:
        return render(request, "error.html", status=404, title="Not found", message=str(exc))
    return None


@router.get("/pathways/{name}/migrate")
def migrate_form(request: Request, name: str, version: str = "", store: Store = Depends(store_of)):
    """The form: the version to move the older enrollments to (the latest published one first) and the date."""
    return _known(request, store, name, f"preview a migration of {name}") or _form(request, store, name, version, "", [])


@router.post("/pathways/{name}/migrate")
async def migrate_preview(request: Request, name: str, store: Store = Depends(store_of)):
    """Run the preview (kept under its hash; nothing else written) and show it with an Apply button."""
    missing = _known(request, store, name, f"preview a migration of {name}")
    if missing:
        return missing
    form = await request.form()
    version, at = str(form.get("version") or "").strip(), str(form.get("at") or "").strip()
    try:
        day = dt.date.fromisoformat(at)
    except ValueError:
        return _form(request, store, name, version, at, [f"the date '{at}' is not a date: give it as YYYY-MM-DD"], status=422)
    if not version:
        return _form(request, store, name, version, at, ["give the published version to migrate to"], status=422)
    try:
        result = preview(store, request.app.state.runtimes, name, version, day).as_dict()
    except MigrationRefused as exc:
        return _form(request, store, name, version, at, exc.problems, status=409)
    except ProblemsFound as exc:
        return _form(request, store, name, version, at, [str(p) for p in exc.problems[:20]], status=409)
    return render(request, "migrate.html", name=name, preview=result, moved=None, problems=[], change_text=change_text, why=why)


@router.post("/pathways/{name}/migrate/apply")
async def migrate_apply(request: Request, name: str, store: Store = Depends(store_of)):
    """Move the enrollments of the preview with the hash sent, exactly as previewed; 409 with
    every reason when anything it read changed since (nothing moved)."""
    missing = _known(request, store, name, f"migrate {name}")
    if missing:
        return missing
    digest = str((await request.form()).get("preview") or "")
    try:
        moved = apply(store, request.app.state.runtimes, digest)
    except MigrationRefused as exc:
        return render(request, "migrate.html", status=409, name=name, preview=None, moved=None, problems=exc.problems)
    except ProblemsFound as exc:
        return render(request, "migrate.html", status=409, name=name, preview=None, moved=None, problems=[str(p) for p in exc.problems[:20]])
    return render(request, "migrate.html", name=name, preview=None, moved=moved, problems=[])
