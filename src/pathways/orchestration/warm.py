"""Prefect for a long-lived process (the web application): one embedded Prefect server started
once and kept warm until the process stops (or the server at PREFECT_API_URL, when it is set),
and the advance of one enrollment through it after a step was recorded, as a flow run of its
pathway version (``flows.advance_with_prefect``, the same run as ``pathways advance ENROLLMENT``).

A failed advance is not an error for the caller: the recorded step stays recorded (it was
committed before) and the daily run (``pathways run``) advances the enrollment; ``Advance``
says so. Prefect is imported only when started, so the web application's import stays light.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
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
    """Start once (``start``), advance many times (``advance``, from any thread), ``stop`` at the end."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.started = False
        self.problem = ""  # why the server could not be started (the advances are then pending)

    @property
    def embedded(self) -> bool:
        return not os.environ.get("PREFECT_API_URL")

    def start(self, store_url: str) -> None:
        """Start the embedded server (or check the one at PREFECT_API_URL) and keep it warm, for
        the store at ``store_url``; a failure is kept in ``problem`` and logged, not raised:
        recording still works."""
        from pathways.orchestration.service import database_url

        with _keeping_loggers(HOST_LOGGERS):  # importing Prefect configures logging for the whole process
            from pathways.orchestration import flows, prefect_edge

            prefect_edge.configure()  # this long-lived process's entry into Prefect

        with self._lock:
            if store_url != database_url():  # the flow runs open the configured store, not the caller's
                self.problem = "the flow runs would advance the store of PATHWAYS_DATABASE_URL, another store"
                log.warning("Prefect is not used: %s", self.problem)
                return
            try:
                flows._start_server()  # Prefect's temporary server, kept until ``stop``; or the one at PREFECT_API_URL reached
                self.started, self.problem = True, ""
            except Exception as exc:  # noqa: BLE001 - any failure to start leaves the advances pending
                self.started, self.problem = False, _kind(exc)
                log.warning("Prefect is not available (%s): recorded steps are advanced by the daily run", self.problem)

    def stop(self) -> None:
        """Stop the embedded server this process started (a server at PREFECT_API_URL stays)."""
        with self._lock:
            if self.started and self.embedded:
                from pathways.orchestration import prefect_edge

                prefect_edge.stop_embedded_server()  # the server the client started, its logs and events sent first
            self.started = False

    def advance(self, version_key: str, enrollment: str, at: dt.date) -> Advance:
        """Advance one enrollment through Prefect on ``at``; never raises for Prefect's sake."""
        if not self.started:
            return Advance(False, self.problem or "Prefect is not started")
        from pathways.orchestration.flows import NOT_ADVANCED, advance_with_prefect

        try:
            kinds = advance_with_prefect(version_key, [enrollment], at)
        except Exception as exc:  # noqa: BLE001 - the step is stored; the daily run advances it
            log.warning("advance of %s through Prefect failed (%s): the daily run will advance it", enrollment, _kind(exc))
            return Advance(False, _kind(exc))
        if kinds.get(NOT_ADVANCED):
            return Advance(False, "stopped")
        return Advance(True)


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
