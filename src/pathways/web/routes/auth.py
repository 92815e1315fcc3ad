"""Log-in and log-out."""

from __future__ import annotations

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse

from pathways.access import Actor
from pathways.orchestration.accounts import authenticate
from pathways.store.audit import Record
from pathways.store.vocabulary import Action
from pathways.web import security
from pathways.web.pages import render

router = APIRouter()


def _next(target: str | None) -> str:
    """Where to go after log-in: a path of this site only (never another site)."""
    return target if target and target.startswith("/") and not target.startswith("//") and "\\" not in target else "/worklist"


@router.get("/login")
def login_page(request: Request, next: str | None = None):
    return render(request, "login.html", next=_next(next))


@router.post("/login")
def login(request: Request, name: str = Form(""), password: str = Form(""), next: str = Form("/worklist")):
    settings, limiter = request.app.state.settings, request.app.state.limiter
    client = request.client.host if request.client else "unknown"
    store = request.app.state.store_for(security.ANONYMOUS)
    until = limiter.blocked_until(name, client)
    if until is not None:
        store.record_audit([Record(Action.LOGIN_BLOCKED, subject=name[:64], payload={"client": client, "until": until.isoformat()})])
        minutes = max(1, int((until - settings.clock.now()).total_seconds() // 60) + 1)
        return render(request, "login.html", status=429, next=_next(next), name=name,
                      error=f"Too many failed log-ins for this account from here: try again in {minutes} minute(s).",
                      headers={"Retry-After": str(minutes * 60)})
    actor = authenticate(store, name, password)
    if actor is None:
        limiter.failed(name, client)
        store.record_audit([Record(Action.LOGIN_FAILED, subject=name[:64], payload={"client": client})])
        return render(request, "login.html", status=401, next=_next(next), name=name, error="Unknown name or wrong password.")
    limiter.succeeded(name, client)
    security.start_session(request, actor.user, settings.clock, settings.session_lifetime)
    request.app.state.store_for(actor).record_audit([Record(Action.LOGIN_SUCCEEDED, subject=actor.user, payload={"client": client})])
    return RedirectResponse(_next(next), status_code=303)


@router.post("/logout")
def logout(request: Request):
    user = request.session.get("user")
    request.session.clear()
    if user:
        request.app.state.store_for(Actor(user=user, role="none", via="web")).record_audit([Record(Action.LOGOUT, subject=user)])
    return RedirectResponse("/login", status_code=303)
