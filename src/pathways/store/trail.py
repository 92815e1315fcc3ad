"""The audit trail as its readers see it: ``Trail`` answers the questions of ``audit``'s queries
(entries for a query, an enrollment or patient, a decision, the pathways named, publications,
the chain's verification), each opening and closing its own connection. Nobody outside
``pathways.store`` opens a connection or session on the store's database (issue 26 item 5;
tests/unit/test_store_edge.py): orchestration reads through ``Store.trail``, the audit commands
through ``connect.open_trail`` (read-only).

Each method reads with one connection: two calls may see two states of a trail that grows
meanwhile, as two statements did before on SQLite's autocommit reads and PostgreSQL's READ
COMMITTED. Entries are returned as lists (the connection is closed when a method returns).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine

from pathways.store import audit
from pathways.store.audit import Query, Verification


class Trail:
    """Reads of the audit trail on ``engine`` (the store's, or a read-only one)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def entries(self, query: Query = Query()) -> list[dict[str, Any]]:
        """The entries matching ``query``, in chain order, payloads decoded."""
        with self._engine.connect() as connection:
            return list(audit.entries(connection, query))

    def has_enrollment(self, enrollment: str) -> bool:
        with self._engine.connect() as connection:
            return audit.has_enrollment(connection, enrollment)

    def enrollments_of(self, patient: str) -> list[tuple[str, str | None]]:
        """The (enrollment, pathway) pairs of a pseudonymous patient, first enrolled first."""
        with self._engine.connect() as connection:
            return audit.enrollments_of(connection, patient)

    def pathway_names(self) -> list[str]:
        with self._engine.connect() as connection:
            return audit.pathway_names(connection)

    def find_decision(self, decision: str) -> tuple[str, int | None, list[dict[str, Any]]]:
        """A decision by key or id: its key, id and entries (none: no such decision)."""
        with self._engine.connect() as connection:
            return audit.find_decision(connection, decision)

    def verify(self, anchor: tuple[int, str] | None = None) -> Verification:
        with self._engine.connect() as connection:
            return audit.verify(connection, anchor)

    def last_payload(self, action: str) -> dict[str, Any] | None:
        """The payload of the latest entry of ``action`` (None: there is none)."""
        with self._engine.connect() as connection:
            return audit.last_payload(connection, action)

    def published_versions(self, pathway: str) -> list[tuple[str, str]]:
        """The (version, version key) pairs of ``pathway`` published here, oldest first."""
        with self._engine.connect() as connection:
            return audit.published_versions(connection, pathway)

    def published_payload(self, version_key: str) -> dict[str, Any] | None:
        """What publishing ``version_key`` kept (its files), or None if it is not published."""
        with self._engine.connect() as connection:
            return audit.published_payload(connection, version_key)
