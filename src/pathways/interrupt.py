"""Ctrl-C (SIGINT) and SIGTERM as a clean stop.

The command's process (``handled``, in its main thread) turns either signal into one of two
things. Outside a ``finishing`` section nothing is in flight that must end first: the signal
raises ``Interrupted`` at once (a write in progress is one transaction and is rolled back whole).
Inside one (a cohort's enrolment loop, a run's batches) it only asks to stop: the work in flight
finishes, the code there looks at ``requested()`` and starts nothing new, and the command then
says what was done and what was not and exits with ``exit_status()``: 130 for SIGINT, 143 for
SIGTERM, as a shell reports a process ended by that signal. A second signal while finishing
changes nothing: the batch in flight is one transaction of a second or so.

Owns: the signal handlers and the stop request. Knows nothing of Prefect, the store or the CLI.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator

STOPPING = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):
    """Raised in the main thread by a signal outside a ``finishing`` section. A BaseException
    (as KeyboardInterrupt is), so that no ``except Exception`` takes it for an error."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_status(self) -> int:
        return 128 + self.signum


class _Request:
    def __init__(self):
        self.signum: int | None = None
        self.finishing = 0  # depth of ``finishing`` sections in the main thread
        self.stop = threading.Event()


_request = _Request()


def requested() -> bool:
    """A stop was asked for (any thread may look)."""
    return _request.stop.is_set()


def signal_name() -> str:
    return signal.Signals(_request.signum).name if _request.signum else ""


def exit_status() -> int:
    """128 + the signal's number: 130 for SIGINT, 143 for SIGTERM (0 when none came)."""
    return 128 + _request.signum if _request.signum else 0


def _on_signal(signum: int, frame) -> None:
    if _request.signum is None:
        _request.signum = signum
    _request.stop.set()
    if not _request.finishing:
        raise Interrupted(_request.signum)


@contextmanager
def handled() -> Iterator[None]:
    """SIGINT and SIGTERM handled here (main thread only; elsewhere this does nothing); the
    previous handlers come back on leaving, and the request is forgotten."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, _on_signal) for signum in STOPPING}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        reset()


@contextmanager
def finishing() -> Iterator[None]:
    """Inside (entered by the main thread): a signal asks to stop and raises nothing, so that
    the work in flight ends whole; the code inside looks at ``requested()`` before each new
    piece of work. A request already made before entering raises here."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if _request.stop.is_set():
        raise Interrupted(_request.signum or signal.SIGINT)
    _request.finishing += 1
    try:
        yield
    finally:
        _request.finishing -= 1


def reset() -> None:
    """Forget a stop request (tests; ``handled`` on leaving)."""
    _request.signum = None
    _request.stop.clear()
