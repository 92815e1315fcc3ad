"""Prefect for a long-lived process (the web application): one embedded Prefect server started
once and kept warm until the process stops (or the server at PREFECT_API_URL, when it is set),
and the advance of one enrollment through it after a step was recorded, as a flow run of its
pathway version (``advancing.advance_with_prefect``, the same run as ``pathways advance ENROLLMENT``).

A failed advance is not an error for the caller: the recorded step stays recorded (it was
committed before) and the daily run (``pathways run``) advances the enrollment; ``Advance``
says so. Prefect is imported only when started, so the web application's import stays light.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

log = logging.getLogger("pathways.prefect")


@dataclass(frozen=True)
class Advance:
    """What became of the Prefect advance after a step was recorded."""

    done: bool
    reason: str = ""  # why it is pending (no patient data: a Prefect or connection error's kind)


class WarmPrefect:
    """Start once (``start``, or ``start_in_background`` so that the application serves pages while
    the embedded server starts), advance many times (``advance``, from any thread), ``stop`` at the
    end. A server that could not be started, or went away, is tried again by the next advance once
    ``retry_after`` seconds have passed since the last try: the advances meanwhile are pending."""

    START_WAIT = 120.0  # seconds an advance waits for a start in progress (the embedded server: 10-30 s)

    def __init__(self, retry_after: float = 60.0) -> None:
        self._lock = threading.Lock()
        self.started = False
        self.problem = ""  # why the server could not be started or reached (the advances are then pending)
        self.retry_after = retry_after
        self._store_url = ""
        self._tried = 0.0  # time.monotonic() of the last failed start or advance
        self._starting: threading.Thread | None = None
        self._stopping = False

    @property
    def embedded(self) -> bool:
        return not os.environ.get("PREFECT_API_URL")

    def start(self, store_url: str) -> None:
        """Start the embedded server (or check the one at PREFECT_API_URL) and keep it warm, for
        the store at ``store_url``; a failure is kept in ``problem`` and logged, not raised:
        recording still works."""
        from pathways.orchestration import advancing
        from pathways.orchestration.service import database_url

        self.prepare()
        with self._lock:
            if store_url != database_url():  # the flow runs open the configured store, not the caller's (never retried)
                self.problem = "the flow runs would advance the store of PATHWAYS_DATABASE_URL, another store"
                log.warning("Prefect is not used: %s", self.problem)
                return
            self._store_url = store_url
            try:
                advancing.start_server()  # Prefect's temporary server, kept until ``stop``; or the one at PREFECT_API_URL reached
                self.started, self.problem = True, ""
            except Exception as exc:  # noqa: BLE001 - any failure to start leaves the advances pending
                self.started, self.problem, self._tried = False, _kind(exc), time.monotonic()
                if not self._stopping:  # (stopped while it started: nothing to report)
                    log.warning("Prefect is not available (%s): recorded steps are advanced by the daily run", self.problem)

    @staticmethod
    def prepare() -> None:
        """Import Prefect and apply the edge (once; 2-4 s). Importing Prefect configures logging for
        the whole process: the host's loggers are kept as they were, which is only safe before the
        host serves (a request logged meanwhile would be lost), so ``start_in_background`` does
        this part first, in the caller's thread."""
        with _keeping_loggers(HOST_LOGGERS):
            from pathways.orchestration import advancing, prefect_edge  # noqa: F401 - advancing: Prefect imported here

            prefect_edge.configure()  # this long-lived process's entry into Prefect

    def start_in_background(self, store_url: str) -> None:
        """``start`` in a thread of its own after ``prepare`` here: the caller (the application's
        start-up) goes on while the server starts (the embedded one: 10-30 s)."""
        self.prepare()
        self._starting = threading.Thread(target=self.start, args=(store_url,), name="pathways-prefect-start", daemon=True)
        self._starting.start()

    def stop(self) -> None:
        """Stop the embedded server this process started (a server at PREFECT_API_URL stays); a
        start in progress is waited for first."""
        if self._starting is not None:
            self._stopping = True
            if self._starting.is_alive() and self.embedded:  # stopped while it starts (Ctrl-C in the first seconds):
                from pathways.orchestration import prefect_edge  # its server stopped now, so the start ends at once

                prefect_edge.stop_embedded_server(timeout=1)
            self._starting.join(self.START_WAIT)
        with self._lock:
            if self.started and self.embedded:
                from pathways.orchestration import prefect_edge

                prefect_edge.stop_embedded_server()  # the server the client started, its logs and events sent first
            self.started = False

    def advance(self, version_key: str, enrollment: str, at: dt.date) -> Advance:
        """Advance one enrollment through Prefect on ``at``; never raises for Prefect's sake."""
        if self._starting is not None and self._starting.is_alive():
            self._starting.join(self.START_WAIT)  # the first advances after start-up wait for the server
        if not self.started and self._store_url and time.monotonic() - self._tried >= self.retry_after:
            self._restart()
        if not self.started:
            return Advance(False, self.problem or "Prefect is not started")
        from pathways.orchestration.advancing import NOT_ADVANCED, advance_with_prefect

        try:
            kinds = advance_with_prefect(version_key, [enrollment], at)
        except Exception as exc:  # noqa: BLE001 - the step is stored; the daily run advances it
            log.warning("advance of %s through Prefect failed (%s): the daily run will advance it", enrollment, _kind(exc))
            self._check(exc)
            return Advance(False, _kind(exc))
        if kinds.get(NOT_ADVANCED):
            return Advance(False, "stopped")
        return Advance(True)

    def _check(self, exc: BaseException) -> None:
        """After a failed advance: is the server still there? If not, it is started again (or
        reached) by a later advance, ``retry_after`` seconds on."""
        from prefect.client.orchestration import get_client

        try:
            with get_client(sync_client=True) as client:
                gone = client.api_healthcheck()
        except Exception as error:  # noqa: BLE001 - not reachable at all
            gone = error
        if gone is not None:
            with self._lock:
                self.started, self.problem, self._tried = False, _kind(exc), time.monotonic()
            log.warning("Prefect went away (%s): it is tried again in %.0f s", _kind(gone), self.retry_after)

    def _restart(self) -> None:
        """Start again after a failed start or a server that went away: an embedded server that
        died is stopped first (Prefect keeps its instance, which would not start again)."""
        with self._lock:
            self._tried = time.monotonic()
            if self.embedded:
                from pathways.orchestration import prefect_edge

                prefect_edge.stop_embedded_server(timeout=2)  # (logs and events for a dead server: a short wait)
        self.start(self._store_url)


HOST_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")  # the web server's own: its access log stays on


@contextmanager
def _keeping_loggers(names: tuple[str, ...]) -> Iterator[None]:
    """Prefect's logging set-up (on its import, ``prefect.main``) applies its own configuration
    to loggers it names, uvicorn's among them: the access log would fall silent (level WARNING).
    These loggers get back their level, handlers and propagation afterwards."""
    kept = {name: (logger.level, list(logger.handlers), logger.propagate, logger.disabled)
            for name in names for logger in [logging.getLogger(name)]}
    try:
        yield
    finally:
        for name, (level, handlers, propagate, disabled) in kept.items():
            logger = logging.getLogger(name)
            logger.setLevel(level)
            logger.handlers[:] = handlers
            logger.propagate, logger.disabled = propagate, disabled


def _kind(exc: BaseException) -> str:
    """An exception's kind and first line, without values that could come from a patient's data
    (Prefect's errors are about connections and runs, not facts)."""
    first = str(exc).splitlines()[0][:200] if str(exc) else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
