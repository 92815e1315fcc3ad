"""The contract between pathways and Prefect's private APIs (orchestration/prefect_edge.py): each
one listed in ``PRIVATE_APIS`` still exists, with the parameters (or fields) used. A Prefect
upgrade that changes one fails here, naming it and docs/prefect-upgrade.md; and the edge is
applied by the entry points, not when a module is imported."""

from __future__ import annotations

import importlib
import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pathways.orchestration import prefect_edge

ROOT = Path(__file__).resolve().parents[2]


def resolve(dotted: str):
    """The object a dotted name names: the longest importable module, then attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            found = getattr(found, name)
        return found
    raise ImportError(dotted)


def parameters(target) -> set[str]:
    if inspect.isclass(target) and hasattr(target, "model_fields"):  # a pydantic model: its fields
        return set(target.model_fields)
    return set(inspect.signature(target).parameters)


def broken(dotted: str, used: tuple[str, ...] | None) -> str | None:
    """None when ``dotted`` exists with the parameters ``used``; otherwise what changed."""
    try:
        target = resolve(dotted)
    except (ImportError, AttributeError) as exc:
        return f"Prefect changed {dotted}: it is gone ({exc}): see {prefect_edge.UPGRADE_NOTE}"
    if used is None:
        return None
    missing = sorted(set(used) - parameters(target))
    if missing:
        return f"Prefect changed {dotted}: no longer takes {', '.join(missing)}: see {prefect_edge.UPGRADE_NOTE}"
    return None


@pytest.mark.parametrize("dotted, used", prefect_edge.PRIVATE_APIS, ids=[name for name, _ in prefect_edge.PRIVATE_APIS])
def test_every_private_prefect_api_the_edge_relies_on_is_still_there(dotted, used):
    problem = broken(dotted, used)
    if problem:
        pytest.fail(problem)


def test_the_contract_check_fails_loudly_on_a_change():
    """The check itself: a name that is gone and a parameter no longer taken are both reported."""
    assert broken("prefect.utilities.engine.emit_task_run_state_change_event", ("task_run", "validated_state")) is None
    gone = broken("prefect.utilities.engine.emit_task_run_state_change_event_v2", ("task_run",))
    assert gone.startswith("Prefect changed prefect.utilities.engine.emit_task_run_state_change_event_v2: it is gone")
    assert gone.endswith("see docs/prefect-upgrade.md")
    renamed = broken("prefect.client.base.clamped_poisson_interval", ("average_interval", "clamping_ratio"))
    assert renamed == ("Prefect changed prefect.client.base.clamped_poisson_interval: no longer takes clamping_ratio: "
                       "see docs/prefect-upgrade.md")


def test_every_private_api_the_edge_touches_is_listed():
    """The names the edge's code reaches into are all in PRIVATE_APIS (a new one must be listed)."""
    source = Path(prefect_edge.__file__).read_text(encoding="utf-8")
    listed = {name for name, _ in prefect_edge.PRIVATE_APIS}
    for touched in ("clamped_poisson_interval", "emit_task_run_state_change_event", "refresh_global_settings_context",
                    "TagsContext", "TaskRunPolicy", "orchestration.ssl", "server.subprocess"):
        assert touched in source
        assert any(name.endswith(touched) or touched.split(".")[-1] == name.rsplit(".", 1)[-1] for name in listed), touched
    assert (ROOT / prefect_edge.UPGRADE_NOTE).is_file()
    note = (ROOT / prefect_edge.UPGRADE_NOTE).read_text(encoding="utf-8")
    assert all(name in note for name in listed)


def test_importing_the_flows_configures_nothing_the_entry_point_does(tmp_path):
    """Importing orchestration/flows.py (and the modules that start and follow its runs) writes
    no Prefect setting and patches nothing;
    ``configure()`` does, once, and Prefect (imported before) sees what it wrote. A setting the
    user gave wins."""
    script = (
        "import os\n"
        "import prefect.client.base as base, prefect.client.orchestration as client, prefect.server.api.server as server\n"
        "from prefect.settings import get_current_settings\n"
        "import pathways.orchestration.flows, pathways.orchestration.advancing, pathways.orchestration.followup\n"
        "from pathways.orchestration import prefect_edge\n"
        "before = (os.environ.get('PREFECT_CLIENT_MAX_RETRIES'), get_current_settings().client.max_retries,\n"
        "          base.clamped_poisson_interval.__module__, type(client.ssl).__name__, type(server.subprocess).__name__)\n"
        "prefect_edge.configure(); prefect_edge.configure()\n"
        "after = (os.environ.get('PREFECT_CLIENT_MAX_RETRIES'), get_current_settings().client.max_retries,\n"
        "         base.clamped_poisson_interval.__module__, type(client.ssl).__name__, type(server.subprocess).__name__)\n"
        "print(before); print(after); print(os.environ['PREFECT_SERVER_ANALYTICS_ENABLED'])\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "DO_NOT_TRACK"))}
    env.update(PREFECT_HOME=str(tmp_path / "prefect"), PREFECT_SERVER_ANALYTICS_ENABLED="true")
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    before, after, analytics = done.stdout.splitlines()
    assert before == "(None, 5, 'prefect.utilities.math', 'module', 'module')"
    assert after == "('10', 10, 'pathways.orchestration.prefect_edge', '_SharedTLS', '_ServerSubprocess')"
    assert analytics == "true"  # the user's own setting stays


def test_the_embedded_servers_defaults_are_not_written_for_a_real_server():
    environ = {"PREFECT_API_URL": "http://prefect.example:4200/api"}
    prefect_edge.write_defaults(environ, embedded=False)
    assert environ == {"PREFECT_API_URL": "http://prefect.example:4200/api", "DO_NOT_TRACK": "1",
                       "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120"}
    embedded: dict[str, str] = {}
    prefect_edge.write_defaults(embedded, embedded=True)
    assert embedded["PREFECT_SERVER_SERVICES_EVENT_PERSISTER_ENABLED"] == "false"
    assert embedded["PREFECT_CLIENT_MAX_RETRIES"] == "10" and embedded["PREFECT_CLIENT_CSRF_SUPPORT_ENABLED"] == "false"
