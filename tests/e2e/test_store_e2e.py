"""The real commands on a database that cannot be reached: retried, then named without its password
(the store itself is in tests/unit/test_store.py)."""

from __future__ import annotations

import time

import pytest


@pytest.mark.slow
def test_commands_on_an_unreachable_database_retry_then_name_it_without_its_password(tmp_path, monkeypatch):
    """Every command's first contact (migrating a writing command's store, opening an audit
    reader) is retried with backoff, then one clear line and exit 1: no traceback, no password."""
    import types

    import pathways.store.connect as connect
    from conftest import IN_A_NEW_PROCESS, run_cli

    waits: list[float] = []  # the waits of the commands run in this process (the store's time.sleep)
    monkeypatch.setattr(connect, "time", types.SimpleNamespace(sleep=waits.append))
    url = "postgresql://postgres:s3cret@127.0.0.1:1/none"
    env = {"PATHWAYS_DATABASE_URL": url, "PREFECT_HOME": str(tmp_path / "prefect"), "PATHWAYS_ROLE": "", "PATHWAYS_TOKEN_FILE": ""}
    for args, what in ((("status", "enr-x"), "the database"), (("advance", "--due"), "the database"), (("audit", "log"), "the store")):
        waits.clear()
        start = time.monotonic()
        done = run_cli(*args, env=env)
        assert done.returncode == 1, (args, done.stderr[-2000:])
        assert done.stderr.startswith(f"error: {what} postgresql://postgres:***@127.0.0.1:1/none (PATHWAYS_DATABASE_URL) "
                                      "is unavailable after 5 attempts: connection failed"), (args, done.stderr)
        assert "Traceback" not in done.stderr and "s3cret" not in done.stderr + done.stdout
        if args[0] in IN_A_NEW_PROCESS:
            assert time.monotonic() - start >= 3.0  # waited 0.2 + 0.4 + 0.8 + 1.6 s between its attempts
        else:
            assert waits == [0.2, 0.4, 0.8, 1.6], args  # the same backoff, not waited for here
