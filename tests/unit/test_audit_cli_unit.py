"""`pathways audit verify` on a missing, empty or corrupted database: no cohort run needed (the
audit commands after a real run through Prefect are in tests/e2e/test_audit_cli.py)."""

from __future__ import annotations

import os
import sqlite3

from conftest import run_cli


def test_verify_on_a_missing_empty_or_corrupted_database(tmp_path):
    env = {"PATHWAYS_TOKEN_FILE": "", "PATHWAYS_ROLE": "auditor"}
    missing = tmp_path / "none.db"
    done = run_cli("audit", "verify", env={**env, "PATHWAYS_DATABASE_URL": f"sqlite:///{missing}"})
    assert done.returncode == 1 and done.stderr.startswith(f"error: no pathways store at {missing}") and not missing.exists()
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    done = run_cli("audit", "verify", env={**env, "PATHWAYS_DATABASE_URL": f"sqlite:///{empty}"})
    assert done.returncode == 1 and done.stderr.strip() == f"error: {empty} is empty: not a pathways store" and empty.read_bytes() == b""
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"SQLite format 3\x00" + os.urandom(4000))
    content = corrupt.read_bytes()
    done = run_cli("audit", "verify", env={**env, "PATHWAYS_DATABASE_URL": f"sqlite:///{corrupt}"})
    assert done.returncode == 1 and "the file may be corrupted; nothing was written" in done.stderr and "Traceback" not in done.stderr
    assert corrupt.read_bytes() == content
    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as connection:
        connection.execute("create table t (x)")
    done = run_cli("audit", "log", env={**env, "PATHWAYS_DATABASE_URL": f"sqlite:///{foreign}"})
    assert done.returncode == 1 and "has no audit trail: not a pathways store" in done.stderr
