"""What routes depend on: the logged-in actor and a store acting for them."""

from __future__ import annotations

from fastapi import Depends, Request

from pathways.access import Actor
from pathways.orchestration.accounts import current_actor
from pathways.store.db import Store
from pathways.web import security


def actor_of(request: Request) -> Actor:
    """The logged-in account's actor; NotLoggedIn without a live session (or a disabled account)."""
    user = security.session_user(request, request.app.state.settings.clock)
    if user is None:
        raise security.NotLoggedIn()
    actor = current_actor(request.app.state.store_for(security.ANONYMOUS), user)
    if actor is None:
        request.session.clear()
        raise security.NotLoggedIn()
    request.state.actor = actor
    return actor


def store_of(request: Request, actor: Actor = Depends(actor_of)) -> Store:
    """The store, acting for the logged-in actor (who is audited for what the request does)."""
    return request.app.state.store_for(actor)
