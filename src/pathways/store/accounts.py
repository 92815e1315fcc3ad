"""Web accounts in the store: who may log in, in which role, with which password hash.

The store keeps names, roles and hashes only; hashing and checking passwords happen above it
(pathways.orchestration.accounts). Adding an account is audited (``account.added``), in the
transaction that adds it; the hash never reaches the trail.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session

from pathways.store.audit import Record
from pathways.store.connect import retrying
from pathways.store.db import Store
from pathways.store.models import UserAccount
from pathways.store.vocabulary import Action


class AccountExists(ValueError):
    pass


@dataclass(frozen=True)
class Account:
    name: str
    role: str
    password_hash: str
    disabled: bool


def add_account(store: Store, name: str, role: str, password_hash: str) -> None:
    """Add an account; AccountExists (nothing written) if the name is taken."""
    def write() -> None:
        with store.transaction() as session:
            if session.get(UserAccount, name) is not None:
                raise AccountExists(f"an account named '{name}' exists already; nothing changed")
            session.add(UserAccount(name=name, role=role, password_hash=password_hash, created_at=store.now()))
            store.audit(session, [Record(Action.ACCOUNT_ADDED, subject=name, payload={"role": role})])
    retrying(write, what=store.where)


def account(store: Store, name: str) -> Account | None:
    def read() -> Account | None:
        with Session(store.engine) as session:
            row = session.get(UserAccount, name)
            return None if row is None else Account(row.name, row.role, row.password_hash, row.disabled)
    return retrying(read, what=store.where)


def replace_hash(store: Store, name: str, password_hash: str) -> None:
    """A stronger hash of the same password (argon2's parameters went up): not audited, nothing
    about the account changes."""
    def write() -> None:
        with Session(store.engine) as session:
            with session.begin():
                row = session.get(UserAccount, name)
                if row is not None:
                    row.password_hash = password_hash
    retrying(write, what=store.where)
