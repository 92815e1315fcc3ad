"""A Prefect server that cannot be reached, or an embedded one that does not start, is one error
line naming the fix and nothing is advanced: through the real command (the contract with Prefect's
private APIs is in tests/unit/test_prefect_edge.py)."""

from __future__ import annotations

from pathlib import Path

import pytest


def _due_store(tmp_path: Path) -> str:
    from test_faults import populate

    url = f"sqlite:///{tmp_path / 'store.db'}"
    populate(url, 3)
    return url


def _decisions(url: str) -> int:
    from test_interrupt import count

    return count(url, "select count(*) from decision")


@pytest.mark.slow
def test_an_unreachable_prefect_server_is_one_line_naming_it_and_nothing_is_advanced(tmp_path):
    from conftest import run_cli
    from test_faults import AT

    url = _due_store(tmp_path)
    done = run_cli("advance", "--due", "--at", AT.isoformat(), env={
        "PATHWAYS_DATABASE_URL": url, "PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_API_URL": "http://127.0.0.1:9/api"})
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert "error: Prefect's server at PREFECT_API_URL=http://127.0.0.1:9/api cannot be reached" in done.stderr
    assert "nothing was advanced" in done.stderr and "prefect server start" in done.stderr
    assert _decisions(url) == 0


@pytest.mark.slow
def test_an_embedded_server_that_does_not_start_names_its_log_and_the_cause(tmp_path):
    """Its output goes to PREFECT_HOME/embedded-server.log (not the command's terminal); the
    error names that file and the exception the server ended with."""
    from conftest import run_cli
    from test_faults import AT

    url = _due_store(tmp_path)
    home = tmp_path / "prefect"
    done = run_cli("advance", "--due", "--at", AT.isoformat(), env={
        "PATHWAYS_DATABASE_URL": url, "PREFECT_HOME": str(home), "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "5",
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{tmp_path / 'no-such-folder' / 'prefect.db'}"})
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and "unable to open database file" not in done.stderr.split("error:")[0]
    log = home / "embedded-server.log"
    assert f"error: the embedded Prefect server did not start; nothing was advanced. Its output is in {log}" in done.stderr
    assert "(sqlalchemy.exc.OperationalError: (sqlite3.OperationalError) unable to open database file)" in done.stderr
    assert "unable to open database file" in log.read_text()
    assert _decisions(url) == 0
