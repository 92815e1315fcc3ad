"""Shared helpers. Tests run against the repository's own files; ../shared is optional."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
PATHWAYS_DIR = ROOT / "pathways"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SHARED = ROOT.parent / "shared"
SERVER = os.environ.get("PATHWAYS_TEST_DATABASE_URL")  # a PostgreSQL server; CI always sets it

# The test files sit in tests/unit (the quick loop) and tests/e2e (those that start Prefect, a
# server, a browser, or a real `pathways` process they watch). A test file may import helpers from
# another one in either folder (`from test_faults import populate`), and the shared helpers
# (web_setup.py, cli_inprocess.py) sit here beside this file: all three folders are importable
# whichever files run. (A test file's name is unique across both folders: pytest imports it by
# that name.)
for _folder in (Path(__file__).resolve().parent / "unit", Path(__file__).resolve().parent / "e2e"):
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))


# The commands that run in a new interpreter, as the console script does: those that start
# Prefect (its embedded server, flow runs, a worker) or serve (`web`), where the process
# boundary is the point.
# Every other command runs in this process (``pathways.cli.main``, as the console script calls
# it), about a hundred times faster. Keys: the command's words (``facts add``: both).
IN_A_NEW_PROCESS = frozenset({"advance", "run", "signoff", "resume", "facts add", "serve", "deploy", "worker", "web"})


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the real `pathways` command: what it printed on stdout and stderr and its exit status,
    as a process started with these arguments, working folder and environment would give them."""
    environment = {**os.environ, "DO_NOT_TRACK": "1", **(env or {})}
    words = [a for a in args[:2] if not a.startswith("-")]
    if words[:1] and (words[0] in IN_A_NEW_PROCESS or " ".join(words) in IN_A_NEW_PROCESS):
        return run_cli_process(*args, cwd=cwd, env=environment)
    from cli_inprocess import READ_ONLY, run_in_this_process

    done = run_in_this_process(list(args), cwd or ROOT, environment)
    if os.environ.get("PATHWAYS_TEST_COMPARE") == "1" and words and (" ".join(words) in READ_ONLY or words[0] in READ_ONLY):
        process = run_cli_process(*args, cwd=cwd, env=environment)  # a check of the in-process run itself
        _STARTED.pop()  # (not the test's own doing)
        assert (done.returncode, done.stdout, done.stderr) == (process.returncode, process.stdout, process.stderr), args
    return done


def run_cli_process(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the real `pathways` command in a fresh interpreter."""
    environment = {**os.environ, "DO_NOT_TRACK": "1", **(env or {})}
    _STARTED.append(f"`pathways {' '.join(args)}` in a new process")
    return subprocess.run(
        [sys.executable, "-m", "pathways.cli", *args],
        cwd=cwd or ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def mm01_on_metformin(folder: Path) -> tuple[Path, dict]:
    """The multimorbid patient mm-01 (diabetes, COPD, heart failure; tests/fixtures/multimorbid)
    with an eGFR of 25 and metformin on 2026-11-25 (the metformin stop conflict), written to
    ``folder/mm-01.json``: the file and its content."""
    import json

    patient = json.loads((FIXTURES / "multimorbid" / "mm-01.json").read_text(encoding="utf-8"))
    patient["observations"] += [{"fact": "egfr_ml_min_1_73m2", "value": 25, "unit": "mL/min/{1.73_m2}", "at": "2026-11-25"},
                                {"fact": "treatment_step", "value": "metformine", "at": "2026-11-25"}]
    file = folder / "mm-01.json"
    file.write_text(json.dumps(patient), encoding="utf-8")
    return file, patient


# -- the `slow` marker: tests that start Prefect (a command in a new process) or a browser -----
# `pytest -m "not slow"` is the quick loop. Marked in the test files (`@pytest.mark.slow`), and
# here: tests marked `browser`, and tests using a fixture that runs a cohort through Prefect or
# starts a process once for several tests (only the first of them would start it).
SLOW_FIXTURES = frozenset({
    "trail",  # tests/e2e/test_audit_cli.py: a cohort run with `pathways run`
    "browser", "web",  # below: Chromium through Playwright, `pathways web`
})
_STARTED: list[str] = []  # what the test in hand started that makes it slow


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects
def pytest_collection_modifyitems(config, items):
    here = Path(__file__).resolve().parent
    stray = sorted({item.path.name for item in items if item.path.parent == here})
    if stray:  # (a test file added before the move, merged since)
        raise pytest.UsageError(f"{', '.join(stray)}: a test file belongs in tests/unit (the quick loop) or tests/e2e "
                                "(it starts Prefect, a server, a browser or a `pathways` process it watches): git mv it there")
    for item in items:
        if item.get_closest_marker("browser") or SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A test that is not marked slow and starts a command in a new process or Chromium fails,
    saying so: the marker stays true."""
    outcome = yield
    report = outcome.get_result()
    started, _STARTED[:] = list(_STARTED), []
    if started and report.passed and not item.get_closest_marker("slow"):
        report.outcome = "failed"
        report.longrepr = (f"{item.nodeid} started {', '.join(dict.fromkeys(started))} but is not marked slow: "
                           "add @pytest.mark.slow (or run the command in this process, see IN_A_NEW_PROCESS)")


@pytest.fixture
def cli():
    return run_cli


def _required_tool(names: tuple[str, ...], what: str) -> str:
    """The path of a system tool the test needs; skipped when absent, unless CI requires it."""
    import shutil

    found = next((shutil.which(n) for n in names if shutil.which(n)), None)
    if found is None:
        if os.environ.get("PATHWAYS_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{what} is required here (PATHWAYS_REQUIRE_BROWSER=1) but not installed")
        pytest.skip(f"{what} not installed")
    return found


@pytest.fixture(scope="session")
def chromium() -> str:
    return _required_tool(("chromium", "chromium-browser"), "chromium")


@pytest.fixture
def pdftotext() -> str:
    return _required_tool(("pdftotext",), "pdftotext (poppler-utils)")


def dump_dom(chromium: str, page: Path, profile: Path, wait_ms: int = 30000) -> subprocess.CompletedProcess:
    """Open a page in headless Chromium with every network request failing; the rendered DOM on stdout."""
    _STARTED.append("Chromium")
    return subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}",
         # any attempt to fetch something from a network fails: the page must not need it
         "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
         f"--virtual-time-budget={wait_ms}", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )


# -- the browser tests: one Chromium for the session, one `pathways web` per test module -------
@pytest.fixture(scope="session")
def browser(chromium):
    """Debian's Chromium driven by Playwright (``executable_path``: nothing downloaded, never
    `playwright install`), headless; one for the session, closed at its end (before the check
    for processes left running). Each test gets a context of its own: ``page``."""
    from playwright.sync_api import sync_playwright

    _STARTED.append("Chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def console_errors() -> list[str]:
    """The errors ``page``'s console shows, as they come (a Content-Security-Policy violation is one)."""
    return []


@pytest.fixture
def page(browser, console_errors):
    """A new page in a new browser context (no cookies of another test), its console errors
    collected in ``console_errors``; closed after the test."""
    context = browser.new_context()
    try:
        page = context.new_page()
        page.on("console", lambda message: console_errors.append(message.text) if message.type == "error" else None)
        yield page
    finally:
        context.close()


@pytest.fixture(scope="module")
def web_site():
    """What the module's ``web`` serves (web_setup.Site: which store, which day is today, a copy of
    the pathways or not). A test module that needs another overrides this fixture."""
    from web_setup import Site

    return Site()


@pytest.fixture(scope="session")
def web_prefect_home(tmp_path_factory) -> Path:
    """The PREFECT_HOME of the ``web`` servers (one at a time): their embedded Prefect server's
    database, made once for the session, not the user's."""
    return tmp_path_factory.mktemp("prefect")


@pytest.fixture(scope="module")
def web(web_site, web_prefect_home, tmp_path_factory):
    """The real `pathways web` for this module's tests (web_setup.serve; web_setup.Served): they
    share its store, in the order they run. Stopped after the module's last test."""
    from web_setup import serve

    _STARTED.append("`pathways web` in a new process")
    with serve(web_site, tmp_path_factory.mktemp("web"), web_prefect_home) as served:
        yield served


def _pg_database():
    """A fresh PostgreSQL database on SERVER: (url, drop)."""
    import uuid

    from pathways.store.connect import normalise_url

    admin = sa.create_engine(normalise_url(SERVER), isolation_level="AUTOCOMMIT")
    name = f"pathways_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))

    def drop():
        with admin.connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return normalise_url(SERVER).rsplit("/", 1)[0] + f"/{name}", drop


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    """A store database: a SQLite file, and a fresh PostgreSQL database when SERVER is set."""
    from pathways.store.connect import make_engine

    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
        yield engine
        engine.dispose()
        return
    if not SERVER:
        pytest.skip("PATHWAYS_TEST_DATABASE_URL is not set (CI sets it)")
    url, drop = _pg_database()
    engine = make_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()
        drop()


# -- no process outlives the suite -----------------------------------------------------------
# Every process the tests start carries this mark in its environment (inherited from here), so
# that one left behind is found even after its parent ended and it was handed to init.
SESSION_MARK = ("PATHWAYS_TEST_SESSION", f"{os.getpid()}-{__import__('uuid').uuid4().hex[:12]}")
os.environ[SESSION_MARK[0]] = SESSION_MARK[1]


def _processes() -> dict[int, tuple[int, str, bool]]:
    """pid -> (parent pid, command line, carries SESSION_MARK) of the running processes this user may read."""
    mark = "=".join(SESSION_MARK)
    try:
        import psutil
    except ImportError:
        psutil = None
    found: dict[int, tuple[int, str, bool]] = {}
    if psutil is not None:
        for process in psutil.process_iter(["ppid", "cmdline", "status"]):
            try:
                if process.info["status"] == psutil.STATUS_ZOMBIE:
                    continue
                marked = process.environ().get(SESSION_MARK[0]) == SESSION_MARK[1]
            except (psutil.Error, OSError):
                marked = False
            found[process.pid] = (process.info["ppid"] or 0, " ".join(process.info["cmdline"] or []), marked)
        return found
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            state, ppid = stat[stat.rindex(")") + 2:].split()[:2]
            if state in ("Z", "X"):  # ended (a zombie is waited for by its parent, or by init)
                continue
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except (OSError, ValueError):
            continue
        try:
            marked = mark.encode() in (entry / "environ").read_bytes().split(b"\0")
        except OSError:  # another user's process
            marked = False
        found[int(entry.name)] = (int(ppid), command, marked)
    return found


def outliving_processes() -> dict[int, str]:
    """pid -> command line of every process still running that this test session started:
    its descendants, and any process carrying its mark (orphans handed to init)."""
    me = os.getpid()
    processes = _processes()
    left = {}
    for pid, (ppid, command, marked) in processes.items():
        ancestor, seen = ppid, set()
        while ancestor not in (0, 1, me) and ancestor in processes and ancestor not in seen:
            seen.add(ancestor)
            ancestor = processes[ancestor][0]
        if pid != me and (marked or ancestor == me):
            left[pid] = command
    return left


def pytest_sessionfinish(session, exitstatus):
    """Fail the run when a process started by a test is still running at the end (after a grace
    of a few seconds for those already stopping), naming each; then end them."""
    import signal
    import time

    from multiprocessing import forkserver, resource_tracker

    for helper in (resource_tracker._resource_tracker, forkserver._forkserver):  # this interpreter's own helpers
        helper._stop()  # (they end with it; not a test's process)
    deadline = time.monotonic() + 5
    left = outliving_processes()
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = outliving_processes()
    if not left:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = [f"{len(left)} process(es) started by the tests outlived them (a test must stop what it starts); ended now:"]
    lines += [f"  pid {pid}: {command[:300]}" for pid, command in sorted(left.items())]
    if reporter:
        reporter.write_line("")
        reporter.write_sep("=", "processes left running", red=True)
    for line in lines:
        reporter.write_line(line, red=True) if reporter else print(line, file=sys.stderr)
    for pid in left:  # they are ours: end them, so that none is left holding a port
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
