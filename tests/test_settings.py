"""pathways' settings as one typed object (orchestration/settings.py): read and checked at once,
every wrong value named with its variable and the fix before anything runs, handed to the batch
worker processes as read, and shown by `pathways config` with where each came from."""

from __future__ import annotations

import os

import pytest
from conftest import run_cli
from pydantic import ValidationError

from pathways.errors import SettingError
from pathways.orchestration import settings as configured


def test_every_setting_is_read_typed_with_its_source(tmp_path):
    read = configured.from_environment({"PATHWAYS_BATCH_SIZE": "250", "PATHWAYS_WORKERS": "3", "PATHWAYS_TODAY": "2026-01-05",
                                        "PATHWAYS_WEB_SECURE_COOKIES": "1", "PATHWAYS_ROLE": "auditor", "OTHER": "x"})
    assert (read.batch_size, read.worker_count, read.today.isoformat(), read.web_secure_cookies, read.role) == (250, 3, "2026-01-05", True, "auditor")
    assert read.database_url == "sqlite:///.pathways/pathways.db" and read.bsn_storage == "hmac"
    assert read.sources["batch_size"] == "environment (PATHWAYS_BATCH_SIZE)" and read.sources["bsn_storage"] == "default"
    with pytest.raises(ValidationError):  # frozen: passed on as read, changed by nobody
        read.batch_size = 1  # type: ignore[misc]


def test_every_wrong_value_is_named_at_once_with_the_fix():
    with pytest.raises(SettingError) as raised:
        configured.from_environment({"PATHWAYS_BATCH_SIZE": "0", "PATHWAYS_ROLE": "boss", "PATHWAYS_DATABASE_URL": "pathways.db",
                                     "PATHWAYS_TODAY": "05-01-2026", "PATHWAYS_BSN_STORAGE": "hash"})
    assert str(raised.value).splitlines() == [
        "PATHWAYS_DATABASE_URL: 'pathways.db' is not a database URL; write sqlite:///path/to/pathways.db or postgresql://user@host/database",
        "PATHWAYS_BATCH_SIZE: 0 enrollments per batch would advance nobody; set a whole number of at least 1, or unset it for the default 500",
        "PATHWAYS_BSN_STORAGE: 'hash' is not one of hmac, plain, none",
        "PATHWAYS_ROLE: unknown role 'boss' (roles: coordinator, scheduler, auditor, admin)",
        "PATHWAYS_TODAY: '05-01-2026' is not a date; write YYYY-MM-DD (e.g. 2026-01-05), or unset it for today",
    ]


def test_a_wrong_setting_stops_before_the_store_is_touched(tmp_path, monkeypatch):
    from pathways.clock import SystemClock
    from pathways.orchestration.service import open_store

    store = tmp_path / "store.db"
    monkeypatch.setenv("PATHWAYS_DATABASE_URL", f"sqlite:///{store}")
    monkeypatch.setenv("PATHWAYS_WORKERS", "two")
    with pytest.raises(SettingError, match="PATHWAYS_WORKERS: 'two' is not a whole number"):
        open_store(SystemClock())
    assert not store.exists()


def test_the_settings_are_read_once_per_environment_and_a_worker_takes_the_callers(monkeypatch):
    monkeypatch.setattr(configured, "_CACHE", {})  # (this process's memory of them, put back after)
    environ = {"PATHWAYS_BATCH_SIZE": "7"}
    first = configured.current(environ)
    assert configured.current(dict(environ)) is first  # not read again
    assert configured.current({"PATHWAYS_BATCH_SIZE": "8"}).batch_size == 8  # another environment: its own
    from pathways.orchestration import workers

    callers = configured.from_environment({**os.environ, "PATHWAYS_BATCH_SIZE": "9"})
    workers._take_settings(dict(os.environ), os.getcwd(), callers)  # as a worker process does with what it is sent
    assert configured.current() is callers and configured.batch_size() == 9


def test_config_prints_each_setting_with_its_source_and_hides_secrets(tmp_path):
    key = tmp_path / "identity.key"
    key.write_text("0123456789abcdef0123456789abcdef")
    done = run_cli("config", cwd=tmp_path, env={"PATHWAYS_DATABASE_URL": "postgresql://pathways:geheim@db/pathways",
                                                "PATHWAYS_BATCH_SIZE": "100", "PATHWAYS_IDENTITY_SECRET_FILE": str(key),
                                                "PATHWAYS_WEB_SECRET": "s" * 40})
    assert done.returncode == 0, done.stderr
    rows = {line.split()[0]: line for line in done.stdout.splitlines()}
    assert len(rows) >= 17 and all(name.startswith(("PATHWAYS_", "PREFECT_")) for name in rows)
    assert "geheim" not in done.stdout and "0123456789abcdef" not in done.stdout and "s" * 40 not in done.stdout
    assert rows["PATHWAYS_DATABASE_URL"].split()[1:] == ["postgresql://pathways:***@db/pathways", "environment", "(PATHWAYS_DATABASE_URL)"]
    assert rows["PATHWAYS_BATCH_SIZE"].split()[1:] == ["100", "environment", "(PATHWAYS_BATCH_SIZE)"]
    assert rows["PATHWAYS_BSN_STORAGE"].split()[1:] == ["hmac", "default"]
    assert rows["PATHWAYS_IDENTITY_SECRET"].endswith(f"file {key}") and "(set, hidden)" in rows["PATHWAYS_IDENTITY_SECRET"]
    assert "(set, hidden)" in rows["PATHWAYS_WEB_SECRET"]


def test_config_names_a_wrong_setting_and_exits_2(tmp_path):
    done = run_cli("config", cwd=tmp_path, env={"PATHWAYS_BATCH_SIZE": "0"})
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith("error: PATHWAYS_BATCH_SIZE: 0 enrollments per batch would advance nobody")
