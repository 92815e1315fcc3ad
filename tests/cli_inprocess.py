"""A `pathways` command run in the test process, as a fresh interpreter would run it.

``python -m pathways.cli ARGS`` costs about two seconds of interpreter start and imports; here a
command costs what it does. What the process would not share with the tests is set up for the
call and put back after it: the environment (exactly the one given), the working folder,
``sys.argv``, stdout and stderr (captured apart), the consoles the CLI prints with (made anew,
so that their width and colours come from this environment and these streams), the warnings
filters and logging as a fresh interpreter has them, the store's once-per-process memory (which
databases were migrated, configurations noted, versions published, pathways loaded) and the database engines the
command opened (disposed, as the process's end would close their connections).

Commands that start Prefect are not run here (``IN_A_NEW_PROCESS`` in conftest): a call that
imports Prefect anyway fails, naming the command to add to that list.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import traceback
import warnings
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Iterator

from click.testing import CliRunner

# commands that change nothing (beyond creating an empty store): with PATHWAYS_TEST_COMPARE=1,
# run_cli runs these a second time in a new process and fails on any difference in what they printed
READ_ONLY = frozenset({"validate", "show", "check", "evaluate", "status", "patient", "simulate", "audit verify", "audit log",
                       "audit timeline", "audit show", "audit indicators"})

# the warnings filters of a fresh interpreter (python -W default aside): DeprecationWarning shown
# only when raised by __main__ itself, the rest of the ignored kinds ignored
_FRESH_FILTERS = [
    ("default", None, DeprecationWarning, "__main__", 0),
    ("ignore", None, DeprecationWarning, None, 0),
    ("ignore", None, PendingDeprecationWarning, None, 0),
    ("ignore", None, ImportWarning, None, 0),
    ("ignore", None, ResourceWarning, None, 0),
]


@contextmanager
def _environment(environment: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(environment)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextmanager
def _folder(cwd: Path) -> Iterator[None]:
    saved = os.getcwd()
    os.chdir(cwd)
    try:
        yield
    finally:
        os.chdir(saved)


@contextmanager
def _fresh_warnings() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.filters[:] = [(a, m, c, mod if mod is None else __import__("re").compile(mod), ln) for a, m, c, mod, ln in _FRESH_FILTERS]
        warnings._filters_mutated()  # type: ignore[attr-defined]  (forget which were shown already)

        def show(message, category, filename, lineno, file=None, line=None):  # as Python does, on this stderr
            sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))

        warnings.showwarning = show
        yield


@contextmanager
def _fresh_logging() -> Iterator[None]:
    """The root logger without pytest's capturing handlers: a warning goes to stderr through
    logging's last-resort handler, as in a process that configured no logging."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    root.handlers[:] = []
    root.setLevel(logging.WARNING)
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


@contextmanager
def _fresh_process_memory() -> Iterator[None]:
    """What pathways remembers once per process, forgotten for the call (and again after it)."""
    from pathways.orchestration import drafts, service

    remembered = (service._MIGRATED, service._CONFIGURED, service._PUBLISHED, drafts._SIBLINGS)
    for memory in remembered:
        memory.clear()
    try:
        yield
    finally:
        for memory in remembered:
            memory.clear()


@contextmanager
def _engines_disposed() -> Iterator[None]:
    """Every engine the command creates is disposed after it (its SQLite connections closed,
    the WAL checkpointed), as the end of its process would do."""
    import sqlalchemy

    import pathways.store.connect as connect

    created = []
    original = sqlalchemy.create_engine

    def create_engine(*args, **kwargs):
        engine = original(*args, **kwargs)
        created.append(engine)
        return engine

    sqlalchemy.create_engine = create_engine
    connect.create_engine = create_engine
    try:
        yield
    finally:
        sqlalchemy.create_engine = original
        connect.create_engine = original
        for engine in created:
            engine.dispose()


@contextmanager
def _cli_as_a_fresh_process(cli, args: list[str]) -> Iterator[None]:
    """Fresh consoles on the isolated streams; the program name and arguments of
    ``python -m pathways.cli ARGS``."""
    from rich.console import Console

    from pathways.cli import ui

    saved = (ui.out, ui.err, cli.app, sys.argv)
    app = cli.app
    ui.out = Console(highlight=False, soft_wrap=True)
    ui.err = Console(stderr=True, highlight=False, soft_wrap=True)
    cli.app = lambda: app(prog_name="python -m pathways.cli")
    sys.argv = [cli.__file__, *args]
    try:
        yield
    finally:
        ui.out, ui.err, cli.app, sys.argv = saved


def run_in_this_process(args: list[str], cwd: Path, environment: dict[str, str]) -> subprocess.CompletedProcess:
    import pathways.cli as cli

    prefect_before = "prefect" in sys.modules
    runner = CliRunner()
    code: int | str | None = 0
    with ExitStack() as stack:
        stack.enter_context(_environment(environment))
        stack.enter_context(_folder(cwd))
        stdout, stderr, _ = stack.enter_context(runner.isolation())
        stack.enter_context(_fresh_warnings())
        stack.enter_context(_fresh_logging())
        stack.enter_context(_fresh_process_memory())
        stack.enter_context(_engines_disposed())
        stack.enter_context(_cli_as_a_fresh_process(cli, args))
        try:
            cli.main()
        except SystemExit as exc:
            code = exc.code
        except BaseException:  # what escaped main(): Python prints the traceback and exits 1
            traceback.print_exc(file=sys.stderr)
            code = 1
        if code is None:
            code = 0
        elif not isinstance(code, int):  # sys.exit("text"): the text on stderr, status 1
            print(code, file=sys.stderr)
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
        out, err = stdout.getvalue().decode("utf-8"), stderr.getvalue().decode("utf-8")
    if not prefect_before and "prefect" in sys.modules:
        raise AssertionError(f"`pathways {' '.join(args)}` imported Prefect: run it in a new process "
                             "(add the command to IN_A_NEW_PROCESS in tests/conftest.py)")
    return subprocess.CompletedProcess(["pathways", *args], code, out, err)
