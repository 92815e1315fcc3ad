"""pathways' settings as one typed object (orchestration/settings.py): read and checked at once,
every wrong value named with its variable and the fix before anything runs, handed to the batch
worker processes as read, and shown by `pathways config` with where each came from."""

from __future__ import annotations

import os
import types

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
                                                "PATHWAYS_WEB_SECRET": "s" * 40, "PATHWAYS_PLAN_WINDOW_DAYS": "21"})
    assert done.returncode == 0, done.stderr
    rows = {line.split()[0]: line for line in done.stdout.splitlines()}
    assert len(rows) >= 17 and all(name.startswith(("PATHWAYS_", "PREFECT_")) for name in rows)
    assert "geheim" not in done.stdout and "0123456789abcdef" not in done.stdout and "s" * 40 not in done.stdout
    assert rows["PATHWAYS_DATABASE_URL"].split()[1:] == ["postgresql://pathways:***@db/pathways", "environment", "(PATHWAYS_DATABASE_URL)"]
    assert rows["PATHWAYS_BATCH_SIZE"].split()[1:] == ["100", "environment", "(PATHWAYS_BATCH_SIZE)"]
    assert rows["PATHWAYS_BSN_STORAGE"].split()[1:] == ["hmac", "default"]
    assert rows["PATHWAYS_PLAN_WINDOW_DAYS"].split()[1:] == ["21", "environment", "(PATHWAYS_PLAN_WINDOW_DAYS)"]
    assert rows["PATHWAYS_PATH"].split()[1:] == ["(unset)", "default"]
    assert rows["PATHWAYS_IDENTITY_SECRET"].endswith(f"file {key}") and "(set, hidden)" in rows["PATHWAYS_IDENTITY_SECRET"]
    assert "(set, hidden)" in rows["PATHWAYS_WEB_SECRET"]


def test_config_names_a_wrong_setting_and_exits_2(tmp_path):
    done = run_cli("config", cwd=tmp_path, env={"PATHWAYS_BATCH_SIZE": "0"})
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith("error: PATHWAYS_BATCH_SIZE: 0 enrollments per batch would advance nobody")


# -- read once, at the entry points ---------------------------------------------------------

# The modules that may touch the process's environment, and why. Everywhere else the settings
# arrive as an argument (the Settings object or values from it: ``places``, ``clock()``,
# ``actor()``) or through ``settings.current()`` (the object read once per environment and
# handed to the worker processes).
MAY_READ_THE_ENVIRONMENT = {
    "pathways/orchestration/settings.py": "the one reader: every PATHWAYS_* variable, read and checked at once into Settings",
    "pathways/web/settings.py": "the web application factory's entry: the settings of the environment it is started in",
    "pathways/orchestration/prefect_edge.py": "applies Prefect's own settings to the process's environment (PREFECT_*), "
                                              "applied by the entry points, and reads pathways' through settings.current",
    "pathways/orchestration/workers.py": "hands the caller's whole environment to the worker processes, "
                                         "which take the caller's Settings object with it and read nothing",
}
SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "src")


def environment_reads(source: str) -> list[str]:
    """Where a module reads a PATHWAYS_* variable from the process's environment (``os.environ``
    by key, ``.get``, ``.setdefault``, ``.pop``, ``in``; ``os.getenv``; the key written out or
    a module-level name for it) or hands the whole environment on (``dict(os.environ)``,
    ``f(os.environ)``), as 'line: what'."""
    import ast

    tree = ast.parse(source)
    names = {t.id: node.value.value for node in tree.body if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
             for t in node.targets if isinstance(t, ast.Name) and isinstance(node.value.value, str)}
    from_os = {alias.asname or alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module == "os"
               for alias in node.names}

    def is_environ(node) -> bool:
        return ((isinstance(node, ast.Attribute) and node.attr == "environ" and isinstance(node.value, ast.Name) and node.value.id == "os")
                or (isinstance(node, ast.Name) and node.id == "environ" and "environ" in from_os))

    def is_getenv(node) -> bool:
        return ((isinstance(node, ast.Attribute) and node.attr == "getenv" and isinstance(node.value, ast.Name) and node.value.id == "os")
                or (isinstance(node, ast.Name) and node.id == "getenv" and "getenv" in from_os))

    def pathways_key(node) -> str | None:
        value = node.value if isinstance(node, ast.Constant) else names.get(node.id) if isinstance(node, ast.Name) else None
        return value if isinstance(value, str) and value.startswith("PATHWAYS_") else None

    found, keyed = [], set()
    for node in ast.walk(tree):
        key = None
        if isinstance(node, ast.Call) and node.args and (
                is_getenv(node.func) or (isinstance(node.func, ast.Attribute) and is_environ(node.func.value)
                                         and node.func.attr in ("get", "setdefault", "pop"))):
            key = pathways_key(node.args[0])
        elif isinstance(node, ast.Subscript) and is_environ(node.value):
            key = pathways_key(node.slice)
        elif isinstance(node, ast.Compare) and any(is_environ(c) for c in node.comparators):
            key = pathways_key(node.left)
        if key:
            found.append(f"{node.lineno}: {'writes' if isinstance(getattr(node, 'ctx', None), ast.Store) else 'reads'} {key}")
        for child in ast.iter_child_nodes(node):  # os.environ as a method's object or a key's container is not handed on
            if is_environ(child) and (isinstance(node, (ast.Attribute, ast.Subscript)) or
                                      (isinstance(node, ast.Compare) and child in node.comparators)):
                keyed.add(id(child))
    found += [f"{node.lineno}: hands on the whole environment" for node in ast.walk(tree) if is_environ(node) and id(node) not in keyed]
    return sorted(set(found), key=lambda line: int(line.split(":")[0]))


def test_the_scan_finds_every_way_of_reading_a_setting_from_the_environment():
    source = '''import os
from os import environ
ENV = "PATHWAYS_PLAN_WINDOW_DAYS"
a = os.environ.get("PATHWAYS_PATH", "")
b = os.getenv("PATHWAYS_TEMPLATES")
c = os.environ[ENV]
d = "PATHWAYS_TODAY" in os.environ
e = environ.get("PATHWAYS_ROLE")
f = clock_from_environment(dict(os.environ))
os.environ["PATHWAYS_SCHEDULE_REVIEWS"] = "1"
g = os.environ.get("PREFECT_API_URL") or os.environ.get("USER")
def h(environ_given): return environ_given.get("PATHWAYS_TODAY")
'''
    assert environment_reads(source) == ["4: reads PATHWAYS_PATH", "5: reads PATHWAYS_TEMPLATES", "6: reads PATHWAYS_PLAN_WINDOW_DAYS",
                                         "7: reads PATHWAYS_TODAY", "8: reads PATHWAYS_ROLE", "9: hands on the whole environment",
                                         "10: writes PATHWAYS_SCHEDULE_REVIEWS"]


def test_only_the_entry_points_read_settings_from_the_environment():
    found: dict[str, list[str]] = {}
    for folder, _, files in os.walk(os.path.join(SRC, "pathways")):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                with open(path, encoding="utf-8") as handle:
                    reads = environment_reads(handle.read())
                if reads:
                    found[os.path.relpath(path, SRC).replace(os.sep, "/")] = reads
    outside = {module: reads for module, reads in found.items() if module not in MAY_READ_THE_ENVIRONMENT}
    assert outside == {}, "pass the settings (orchestration/settings.py: current(), or a value from it) instead"
    assert sorted(found) == sorted(MAY_READ_THE_ENVIRONMENT), "an allowance no module needs any more: remove it"


def test_the_settings_give_the_layers_below_their_values(tmp_path):
    from pathways.clock import SystemClock
    from pathways.definition.places import Places

    read = configured.from_environment({"PATHWAYS_TODAY": "2026-01-05", "PATHWAYS_ROLE": "auditor", "PATHWAYS_USER": "jan",
                                        "PATHWAYS_PATH": os.pathsep.join([str(tmp_path / "a"), "", str(tmp_path / "b")]),
                                        "PATHWAYS_TEMPLATES": str(tmp_path / "t")})
    assert read.places == Places(path=(tmp_path / "a", tmp_path / "b"), templates=tmp_path / "t")
    assert read.clock().now().isoformat() == "2026-01-05T12:00:00+00:00"
    assert (read.actor().user, read.actor().role, read.actor().via) == ("jan", "auditor", "environment")
    assert isinstance(configured.from_environment({}).clock(), SystemClock) and configured.from_environment({}).places == Places()


def test_pathways_serve_hands_its_runs_the_setting_that_schedules_reviews(monkeypatch):
    """Prefect's runner starts each served flow run as a subprocess with the serving process's
    environment (served deployments have no job variables): serve puts RUN_ENVIRONMENT there,
    as register puts it in the work-pool deployments' job variables."""
    import prefect

    from pathways.orchestration import deploy

    monkeypatch.setenv("PATHWAYS_SCHEDULE_REVIEWS", "0")  # (put back after the test, whatever serve sets)
    seen = {}
    monkeypatch.setattr(deploy.prefect_edge, "configure", lambda: None)
    monkeypatch.setattr(deploy, "_read_deployments", lambda names: {})
    monkeypatch.setattr(deploy, "leave_as_found", lambda found: None)
    monkeypatch.setattr(prefect, "serve", lambda *deployments, **options: seen.update(os.environ))
    for flow_name in ("advance_due", "advance_enrollments"):  # (no deployment made: to_deployment wants Prefect's loop)
        monkeypatch.setattr(deploy, flow_name, types.SimpleNamespace(to_deployment=lambda **options: options))
    deploy.serve()
    assert deploy.RUN_ENVIRONMENT == {"PATHWAYS_SCHEDULE_REVIEWS": "1"}
    assert seen["PATHWAYS_SCHEDULE_REVIEWS"] == "1" and configured.current(seen).schedule_reviews == "1"
