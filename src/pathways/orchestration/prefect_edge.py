"""The edge between pathways and Prefect: everything that configures Prefect or works around it,
in one place, applied explicitly by the entry points (``configure()``), never at import.

- ``configure()``: Prefect's settings that pathways changes (written into the environment with
  ``os.environ.setdefault``, so an explicit variable wins; most only on the embedded server, that
  is without ``PREFECT_API_URL``), Prefect's settings context refreshed to see them, the client's
  quick retries on the embedded server (``_quick_retries``), shared TLS contexts (``_SharedTLS``)
  and the embedded server in a process group of its own, its output in
  ``PREFECT_HOME/embedded-server.log`` (``_server_apart``). Idempotent; worker
  processes inherit the environment it wrote.
- ``embedded_run_settings()``: the flow-run heartbeat off for runs on the embedded server.
- ``stop_embedded_server()``: Prefect's log and event workers drained, then the embedded server
  this process started stopped (before exit, e.g. at the end of a test).
- ``emit_step_run()``: a step's task run recorded with its final state through the event Prefect's
  task engine sends (``_report_steps`` in orchestration/flows.py calls it).

Every private Prefect API used here is listed in ``PRIVATE_APIS`` (with the parameters relied on);
tests/unit/test_prefect_edge.py imports each and checks them. When a Prefect upgrade changes one, that
test fails with "Prefect changed X: see docs/prefect-upgrade.md".
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from contextlib import contextmanager
from typing import Any, Iterator
from uuid import UUID, uuid4

from pathways.orchestration.settings import Settings, current

# Prefect's private (or semi-private) APIs this module relies on: dotted name -> the parameters
# used (None: an attribute replaced or read, not called).
PRIVATE_APIS: tuple[tuple[str, tuple[str, ...] | None], ...] = (
    ("prefect.client.base.clamped_poisson_interval", ("average_interval", "clamping_factor")),  # replaced: _quick_retries
    ("prefect.client.orchestration.ssl", None),  # replaced: _share_tls_contexts
    ("prefect.server.api.server.subprocess", None),  # replaced: _server_apart
    ("prefect.context.refresh_global_settings_context", ()),  # configure: the environment written here is seen
    ("prefect.context.TagsContext", None),  # emit_step_run: the tags the run is in
    ("prefect.utilities.engine.emit_task_run_state_change_event", ("task_run", "initial_state", "validated_state")),  # emit_step_run
    ("prefect.client.schemas.objects.TaskRun", ("id", "name", "flow_run_id", "task_key", "dynamic_key", "task_version",
                                                "empirical_policy", "tags", "task_inputs", "run_count", "expected_start_time",
                                                "start_time", "end_time", "state_id", "state_type", "state_name", "state",
                                                "created", "updated")),  # emit_step_run: the fields set
    ("prefect.client.schemas.objects.TaskRunPolicy", ()),  # emit_step_run
    ("prefect.logging.handlers.APILogWorker.drain_all", ("timeout",)),  # stop_embedded_server
    ("prefect.events.worker.EventsWorker.drain_all", ("timeout",)),  # stop_embedded_server
    ("prefect.server.api.server.SubprocessASGIServer._instances", None),  # stop_embedded_server: the servers started
    ("prefect.server.api.server.SubprocessASGIServer.stop", ("self",)),  # stop_embedded_server
)

UPGRADE_NOTE = "docs/prefect-upgrade.md"

_CONFIGURED = False
_CONFIGURING = threading.Lock()


def configure(settings: Settings | None = None, environ: Any = None) -> None:
    """Apply the edge (once per process): Prefect's settings that pathways changes, then the
    patches. ``settings``: pathways' settings (default: this environment's, read and checked
    here); their ``prefect_api_url`` says which server is used (none: the embedded one)."""
    global _CONFIGURED
    if _CONFIGURED:
        return
    with _CONFIGURING:
        if _CONFIGURED:
            return
        environ = os.environ if environ is None else environ
        settings = settings or current(environ)
        write_defaults(environ, embedded=not settings.prefect_api_url)
        if "prefect.context" in sys.modules:  # Prefect was imported before: its settings are read again
            from prefect.context import refresh_global_settings_context

            refresh_global_settings_context()
        _quick_retries()
        _share_tls_contexts()
        _server_apart()
        _CONFIGURED = True


def write_defaults(environ, embedded: bool) -> None:
    """Prefect's settings that pathways changes, written with ``setdefault`` (an explicit
    variable wins) into ``environ``; those of the embedded server only when ``embedded``."""
    environ.setdefault("DO_NOT_TRACK", "1")
    environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # The embedded server migrates a fresh database when it first starts: 8-15 s here, more than
    # Prefect's 20 s limit on a busy or slow machine. Starting late is better than failing.
    environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    if not embedded:
        return
    # The embedded server keeps no copy of Prefect's event feed (flow and task runs, their
    # states, logs and artifacts are all kept): on SQLite its event persister's writes make our
    # own API calls wait 2 s on "database is locked". Set it to true to keep the feed.
    environ.setdefault("PREFECT_SERVER_SERVICES_EVENT_PERSISTER_ENABLED", "false")
    # Its task-run recorder writes each task-run event in a transaction of its own (10 s of the
    # server's CPU for a 10,000-enrollment cohort here, beside the batches): 50 per transaction,
    # at least every second, halves that. (Prefect reads the interval as whole seconds: 0.1 would
    # be 0, a busy loop.)
    environ.setdefault("PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE", "50")
    environ.setdefault("PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL", "1")
    # With its waits cut to a 32nd (``_quick_retries``), ten retries give the client the same
    # patience as Prefect's five: about a minute in all.
    environ.setdefault("PREFECT_CLIENT_MAX_RETRIES", "10")
    _no_csrf_tokens_unless_protected(environ)


def _no_csrf_tokens_unless_protected(environ) -> None:
    """On the embedded server: unless its CSRF protection is switched on (Prefect's default is
    off), the client does not ask for CSRF tokens. Every new API client would otherwise ask the
    server for one first and be refused (six requests in a cohort run, one on the way to the
    first batch)."""
    protected = environ.get("PREFECT_SERVER_API_CSRF_PROTECTION_ENABLED", environ.get("PREFECT_SERVER_CSRF_PROTECTION_ENABLED", ""))
    if protected.strip().lower() not in ("1", "true", "t", "yes", "y", "on"):
        environ.setdefault("PREFECT_CLIENT_CSRF_SUPPORT_ENABLED", "false")


def _quick_retries() -> None:
    """On the embedded server, Prefect's client retries a 503 after 1/16 s, then twice as long
    each time (1/16, 1/8, ... 32 s: ten retries, about a minute), instead of after 2 s (2, 4,
    ... 32 s: five). The embedded server answers 503 only when SQLite refuses a write because
    another one has just committed ("database is locked"); the next attempt succeeds at once,
    so the 2 s wait was idle time: a flow run created at that moment (a pathway run, an
    escalation subflow) held its run up by 2-4 s, about one cohort in four here. With a server
    (``PREFECT_API_URL``) Prefect's own back-off applies. The wait is Prefect's, with its
    jitter (``PREFECT_CLIENT_RETRY_JITTER_FACTOR``; set to 0 it means Prefect's 2 s again)."""
    import prefect.client.base as base
    from prefect.settings import PREFECT_API_URL

    prefects = base.clamped_poisson_interval
    if getattr(prefects, "embedded_quick_retries", False):
        return

    def interval(average_interval: float, clamping_factor: float = 0.3) -> float:
        if PREFECT_API_URL.value():  # (at most Prefect's own longest wait, should ten retries be set)
            return prefects(min(average_interval, 32.0), clamping_factor)
        return prefects(average_interval / 32, clamping_factor)

    interval.embedded_quick_retries = True  # type: ignore[attr-defined]
    base.clamped_poisson_interval = interval



class _SharedTLS:
    """Stands in for the ``ssl`` module in Prefect's client module: a TLS context verified
    against a CA file is built once per file (and its size and modification time) and shared,
    instead of once for every API client Prefect creates. Building one loads the whole CA bundle:
    16-70 ms of CPU each time here, seven times in a cohort run, one of them on the way to every
    flow run's first batch, although the embedded server is plain HTTP. A context serves many
    connections; after building it Prefect sets nothing on it, and the HTTP library sets only the
    ALPN protocols of a TLS connection, the same for every Prefect client (one HTTP/2 setting).
    Anything else, including Prefect's unverified context (PREFECT_API_TLS_INSECURE_SKIP_VERIFY,
    which it changes after building), is Prefect's own."""

    def __init__(self, module):
        self._module = module
        self._contexts: dict[tuple, Any] = {}
        self._lock = threading.Lock()

    def __getattr__(self, name: str):
        return getattr(self._module, name)

    def create_default_context(self, *args, **kwargs):
        cafile = kwargs.get("cafile")
        if args or set(kwargs) != {"cafile"} or not isinstance(cafile, str):
            return self._module.create_default_context(*args, **kwargs)
        try:
            info = os.stat(cafile)
        except OSError:  # Prefect's own error, as before
            return self._module.create_default_context(*args, **kwargs)
        key = (cafile, info.st_size, info.st_mtime_ns)
        with self._lock:
            if key not in self._contexts:
                self._contexts = {key: self._module.create_default_context(cafile=cafile)}  # the latest file's only
            return self._contexts[key]


def _share_tls_contexts() -> None:
    import prefect.client.orchestration as orchestration

    if not isinstance(orchestration.ssl, _SharedTLS):
        orchestration.ssl = _SharedTLS(orchestration.ssl)


# The embedded server's process: Prefect's uvicorn command, with a thread that ends the server
# (as Prefect would, SIGTERM) once the process that started it is gone (its parent changes).
_SERVER_MAIN = """\
import os, signal, sys, threading, time
def end_with_parent(parent):
    while os.getppid() == parent:
        time.sleep(0.5)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(10)
    os._exit(1)
threading.Thread(target=end_with_parent, args=(os.getppid(),), daemon=True).start()
sys.argv[0] = "uvicorn"
from uvicorn.main import main
main()
"""


def _server_apart() -> None:
    """The embedded server in a process group of its own. In ours, Ctrl-C in a terminal (sent to
    the whole group) stops the server at once, while the run still needs it to record its last
    batches and its end: Prefect's client then retries for a minute and prints tracebacks. Apart,
    the server is stopped by Prefect when this process exits (``SubprocessASGIServer.stop``,
    at exit), and ends by itself if this process is killed (``_SERVER_MAIN``). Prefect's private
    API touched: the ``subprocess`` module that ``prefect.server.api.server`` starts uvicorn with."""
    import prefect.server.api.server as server

    if not isinstance(server.subprocess, _ServerSubprocess):
        server.subprocess = _ServerSubprocess()


class _ServerPopen(subprocess.Popen):
    """``subprocess.Popen`` for Prefect's server module: its uvicorn command (``python -m
    uvicorn ...``) runs as ``_SERVER_MAIN`` in a process group of its own; anything else as asked."""

    def __init__(self, args, *rest, **kwargs):
        if isinstance(args, list) and args[1:3] == ["-m", "uvicorn"] and not rest and "process_group" not in kwargs:
            args = [args[0], "-c", _SERVER_MAIN, *args[3:]]
            kwargs["process_group"] = 0
            if "stdout" not in kwargs and "stderr" not in kwargs:
                # Its output to a file, not to the terminal of the command that started it:
                # stopped with events still queued (after Ctrl-C half way through a run), its
                # task-run recorder logs the cancelled writes with tracebacks, which read as if
                # the command had failed. The store holds the decisions; this is Prefect's view.
                with open(server_log(), "ab") as log:
                    super().__init__(args, *rest, stdout=log, stderr=subprocess.STDOUT, **kwargs)
                return
        super().__init__(args, *rest, **kwargs)


def server_log():
    """The file the embedded server writes its output to: ``embedded-server.log`` in PREFECT_HOME."""
    from prefect.settings import get_current_settings

    home = get_current_settings().home
    home.mkdir(parents=True, exist_ok=True)
    return home / "embedded-server.log"


class _ServerSubprocess:
    """Stands in for the ``subprocess`` module in Prefect's server module: ``Popen`` is
    ``_ServerPopen``, the rest is the module's own."""

    Popen = _ServerPopen

    def __getattr__(self, name: str):
        return getattr(subprocess, name)


@contextmanager
def embedded_run_settings() -> Iterator[None]:
    """On the embedded server (no PREFECT_API_URL) the flow-run heartbeat is off: it exists to let
    a server notice crashed runs of remote workers, and its thread costs about a second per
    synchronous flow run here. With a server, heartbeats stay on."""
    if os.environ.get("PREFECT_API_URL"):
        yield
        return
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


def emit_step_run(flow_run_id: str, index: int, step_task, state) -> None:
    """Record one task run of ``step_task`` (a Prefect task) in the flow run ``flow_run_id``, with
    its final ``state`` only, through the event Prefect's task engine sends when a task run ends
    (its own function), which the server's task-run recorder writes as the run. Tags: those the
    run is in (``with tags(...)``), as the engine gives them, and the task's own."""
    from prefect.client.schemas.objects import TaskRun, TaskRunPolicy
    from prefect.context import TagsContext
    from prefect.utilities.engine import emit_task_run_state_change_event

    run_id = UUID(flow_run_id)
    around = set(TagsContext.get().current_tags or ())
    task_run_id = uuid4()
    state.state_details.task_run_id, state.state_details.flow_run_id = task_run_id, run_id
    run = TaskRun(id=task_run_id, name=f"{step_task.name}-{index}", flow_run_id=run_id, task_key=step_task.task_key,
                  dynamic_key=str(index), task_version=step_task.version, empirical_policy=TaskRunPolicy(),
                  tags=sorted(around | set(step_task.tags)), task_inputs={}, run_count=1,
                  expected_start_time=state.timestamp, start_time=state.timestamp, end_time=state.timestamp,
                  state_id=state.id, state_type=state.type, state_name=state.name, state=state,
                  created=state.timestamp, updated=state.timestamp)
    emit_task_run_state_change_event(run, None, state)


def stop_embedded_server(timeout: float = 10) -> None:
    """Stop the embedded server this process started, now rather than at exit: first the log
    lines and events of the flow runs are sent (Prefect's log and event workers drained, as
    Prefect's own test harness does), so none is sent to a stopped server."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.server.api.server import SubprocessASGIServer

    APILogWorker.drain_all(timeout=timeout)
    EventsWorker.drain_all(timeout=timeout)
    for server in list(SubprocessASGIServer._instances.values()):
        server.stop()
