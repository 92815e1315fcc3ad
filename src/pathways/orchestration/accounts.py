"""Web accounts: add one, check a log-in. Passwords are hashed with argon2 (argon2-cffi's
defaults, RFC 9106's low-memory profile); only the hash is stored (pathways.store.accounts).

A log-in names no account that exists or gives the wrong password: the same answer either way,
and the check costs the same (a dummy hash is verified for unknown names), so the answer does
not tell which names exist.
"""

from __future__ import annotations

import re

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from pathways.access import ROLES, Actor
from pathways.orchestration.service import authorize
from pathways.store import accounts as rows
from pathways.store.accounts import AccountExists
from pathways.store.db import Store

MIN_PASSWORD = 12  # characters
_NAME = re.compile(r"[A-Za-z0-9._@-]{1,64}")  # as pathways.access names users
_HASHER = PasswordHasher()
_DUMMY = _HASHER.hash("not a password of anyone")


class AccountError(ValueError):
    pass


def add_user(store: Store, name: str, role: str, password: str) -> None:
    """Add a web account (admins only; the refusal is audited). AccountError for a bad name,
    role or password, AccountExists for a taken name: nothing written."""
    authorize(store, "account.manage", f"add the web account {name}", name)
    problems = []
    if not _NAME.fullmatch(name):
        problems.append(f"the name '{name}' must be 1-64 letters, digits or . _ @ -")
    if role not in ROLES:
        problems.append(f"unknown role '{role}' (roles: {', '.join(ROLES)})")
    if len(password) < MIN_PASSWORD:
        problems.append(f"the password has {len(password)} characters: give at least {MIN_PASSWORD}")
    if problems:
        raise AccountError("; ".join(problems) + "; nothing changed")
    rows.add_account(store, name, role, _HASHER.hash(password))


def authenticate(store: Store, name: str, password: str) -> Actor | None:
    """The account's actor when the password is right and the account is enabled; else None."""
    found = rows.account(store, name) if _NAME.fullmatch(name or "") else None
    try:
        _HASHER.verify(found.password_hash if found else _DUMMY, password)
    except (VerificationError, InvalidHashError):
        return None
    if found is None or found.disabled:
        return None
    if _HASHER.check_needs_rehash(found.password_hash):
        rows.replace_hash(store, name, _HASHER.hash(password))
    return Actor(user=found.name, role=found.role, via="web")


def current_actor(store: Store, name: str) -> Actor | None:
    """The actor of a logged-in account as it stands now (a disabled or removed account: None;
    a changed role counts from the next request)."""
    found = rows.account(store, name)
    if found is None or found.disabled:
        return None
    return Actor(user=found.name, role=found.role, via="web")


__all__ = ["AccountError", "AccountExists", "MIN_PASSWORD", "add_user", "authenticate", "current_actor"]
