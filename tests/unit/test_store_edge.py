"""The store is the one edge to the database (issue 26 item 5): nobody outside ``pathways.store``
opens a connection or session (a scan of the sources; import-linter keeps the database
libraries out of orchestration, the CLI, the web and the views), and what they read instead,
``Store.trail`` and ``connect.open_trail``, answers as ``audit``'s queries do on a connection."""

from __future__ import annotations

import ast
from pathlib import Path

from test_audit import advance, all_entries, setup

from pathways.store import audit
from pathways.store.audit import Query
from pathways.store.connect import is_database_url, open_trail, without_password
from pathways.store.vocabulary import Action

SRC = Path(__file__).resolve().parents[2] / "src" / "pathways"

# calls that open a connection, a transaction or a session on a database (or make an engine)
OPENING = {"connect", "begin", "raw_connection", "Session", "sessionmaker", "create_engine", "create_async_engine"}


def _openings(text: str) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
            if name in OPENING:
                found.append((node.lineno, ast.unparse(func)))
    return found


def test_nobody_outside_the_store_opens_a_connection_or_session():
    found = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if rel.startswith("store/"):
            continue
        found += [f"{rel}:{line}: {call}(...)" for line, call in _openings(path.read_text(encoding="utf-8"))]
    # a query the code needs belongs in the store (a Store method, or store/trail.py for the audit trail)
    assert found == []


def test_the_scan_finds_what_it_looks_for():
    text = "def f(store):\n    with store.engine.connect() as c:\n        pass\n    with Session(store.engine) as s:\n        pass\n"
    assert _openings(text) == [(2, "store.engine.connect"), (4, "Session")]
    assert len(_openings((SRC / "store" / "trail.py").read_text(encoding="utf-8"))) >= 8  # the store itself does


def test_a_store_trail_reads_what_the_queries_read(engine):
    store, runtime, clock = setup(engine, patients=2)
    advance(store, runtime, clock)
    trail = store.trail
    with engine.connect() as connection:
        assert trail.entries() == list(audit.entries(connection)) == all_entries(engine)
        assert trail.entries(Query(enrollment="enr-1")) == list(audit.entries(connection, Query(enrollment="enr-1")))
        assert trail.has_enrollment("enr-2") and not trail.has_enrollment("enr-9")
        assert trail.enrollments_of("p-audit-2") == audit.enrollments_of(connection, "p-audit-2") == [("enr-2", "heartfailure")]
        assert trail.pathway_names() == ["heartfailure"]
        decision = next(e["subject"] for e in trail.entries(Query(action="step.")))
        assert trail.find_decision(decision) == audit.find_decision(connection, decision)
        assert trail.find_decision(decision)[2] != []
        assert trail.last_payload(Action.ENROLLMENT_CREATED) == audit.last_payload(connection, Action.ENROLLMENT_CREATED)
    verification = trail.verify()
    assert verification.intact and verification.entries == len(all_entries(engine))
    assert store.has_enrollment("enr-1") and not store.has_enrollment("enr-9")


def test_the_audit_commands_trail_is_read_only(tmp_path):
    import sqlalchemy as sa

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'pathways.db'}")
    store, _, _ = setup(engine)
    trail = open_trail(f"sqlite:///{tmp_path / 'pathways.db'}")
    assert trail.entries() == store.trail.entries() != []
    assert trail.published_versions("heartfailure") == [] and trail.published_payload("heartfailure@1") is None


def test_the_url_checks_the_settings_ask_the_store_for():
    assert is_database_url("sqlite:///x.db") and is_database_url("postgresql://u@h/db")
    assert not is_database_url("pathways.db")
    assert without_password("postgresql://u:secret@h/db") == "postgresql://u:***@h/db"
    assert without_password("sqlite:///.pathways/pathways.db") == "sqlite:///.pathways/pathways.db"
