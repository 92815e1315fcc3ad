"""Opening the store as configured: the database (``PATHWAYS_DATABASE_URL``) brought to the
current schema once per process, the acting user, and the settings that change what the engine
does or keeps recorded when they change (``config.changed``)."""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Any

from pathways.access import AccessDenied, Actor
from pathways.clock import Clock
from pathways.orchestration.identity import identity_secret
from pathways.orchestration.settings import (
    batch_size, bsn_storage, check_database_url, current, database_url, schedule_reviews_setting)
from pathways.store.audit import Record
from pathways.store.connect import make_engine, migrate, retrying, without_password
from pathways.store.db import Store
from pathways.store.vocabulary import Action, Key


_MIGRATED: set[str] = set()
_CONFIGURED: set[tuple[str, str]] = set()


def open_store(clock: Clock, url: str | None = None, actor: Actor | None = None, context: dict[str, Any] | None = None,
               migrated: bool = False) -> Store:
    """A store on the configured database, brought to the current schema (once per process;
    ``migrated``: the caller knows it is), acting for ``actor`` (default: from the environment).
    A configuration that differs from the last one recorded is audited (``config.changed``)."""
    settings_now = current()  # every setting read and checked here, before the database is touched
    url = url or settings_now.database_url
    check_database_url(url)
    settings = configuration(url)
    if migrated:
        _MIGRATED.add(url)
    engine = migrate_once(url)
    store = Store(engine, clock.now, actor or settings_now.actor(), context)
    note_configuration(store, url, settings)
    return store


def migrate_once(url: str):
    """The engine of ``url``, its database brought to the current schema once per process
    (Alembic's command API is not thread-safe: one migration at a time)."""
    engine = make_engine(url)
    if url not in _MIGRATED:
        with _MIGRATING:
            if url not in _MIGRATED:
                migrate(engine)
                _MIGRATED.add(url)
    return engine


_MIGRATING = threading.Lock()


def configuration(url: str) -> dict[str, Any]:
    """The settings that change what the engine does or keeps (secrets as fingerprints only)."""
    secret = identity_secret(create=False)
    return {
        "database": without_password(url),
        "bsn_storage": bsn_storage(),
        "identity_secret": hashlib.sha256(secret).hexdigest()[:12] if secret else None,
        "batch_size": str(batch_size()),  # as recorded before it was checked
        "schedule_reviews": schedule_reviews_setting() == "1",
        "prefect_api": "server" if current().prefect_api_url else "embedded",
        "roles_from": ("token-file" if current().token_file else "PATHWAYS_ROLE" if current().role else "default (admin)"),
    }


def note_configuration(store: Store, url: str, settings: dict[str, Any] | None = None) -> None:
    settings = settings or configuration(url)
    key = (url, json.dumps(settings, sort_keys=True))
    if key in _CONFIGURED:
        return

    last = retrying(lambda: store.trail.last_payload(Action.CONFIG_CHANGED), what=store.where)
    if last is None or last.get(Key.SETTINGS) != settings:
        changed = sorted(k for k in settings if last is None or last.get(Key.SETTINGS, {}).get(k) != settings[k])
        store.record_audit([Record(Action.CONFIG_CHANGED, subject="configuration", payload={Key.SETTINGS: settings, Key.CHANGED: changed})])
    _CONFIGURED.add(key)


def authorize(store: Store, permission: str, what: str, subject: str | None = None) -> None:
    """Raise AccessDenied (and audit the denial) unless the store's actor holds ``permission``."""
    if store.actor.may(permission):
        return
    store.record_audit([Record(Action.ACCESS_DENIED, subject=subject or what,
                               payload={Key.PERMISSION: permission, Key.ATTEMPTED: what, Key.VIA: store.actor.via})])
    raise AccessDenied(store.actor, permission, what)
