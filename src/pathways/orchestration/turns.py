"""Flow runs started side by side, in turn: threads of their own in a copy of the caller's
context (``beside``), one flow-run creation at a time (``Together``, ``in_turn``, ``created``:
the embedded Prefect server's SQLite answers creations at once with "database is locked"), and
a run that a signal stops cleanly (``finishing``, pathways.interrupt). No Prefect here: these
are the threads and locks around the runs that orchestration/flows.py and advancing.py start.
"""

from __future__ import annotations

import contextvars
import threading
from concurrent.futures import Future

from pathways import interrupt


def beside(function, *args, name: str = "run-artifact") -> Future:
    """``function(*args)`` in a thread of its own, in a copy of this thread's context (the flow
    run's, so that what it creates belongs to the run): a run's escalation subflow while its
    batches run, its decisions artifact while it reports its steps (0.1-0.2 s off the end of
    every run here). Its result or error comes through the future."""
    future: Future = Future()
    context = contextvars.copy_context()

    def target() -> None:
        try:
            future.set_result(context.run(function, *args))
        except BaseException as exc:  # raised in the run when it asks for the result
            future.set_exception(exc)

    threading.Thread(target=target, name=name, daemon=True).start()
    return future


class Together:
    """Pathway runs started side by side, and their escalation subflows, are created one after
    the other; each run begins its batches as soon as it exists. On the embedded server (SQLite)
    a flow run created while another is being created is often answered "database is locked".
    (Before the client's quick retries, ``_quick_retries``, each such answer cost 2 s, and the
    runs waited for each other's creation before they began: 0.1-0.2 s of idle workers.)"""

    def __init__(self):
        self.creating = threading.Lock()

    def run(self, call, *args):
        """``call`` (which starts a flow run) once no other run is being created; the run's body
        lets the next one be created (``created``)."""
        turn = {"lock": self.creating, "holding": True}
        self.creating.acquire()
        token = _TURN.set(turn)
        try:
            return call(*args)
        finally:
            _TURN.reset(token)
            if turn["holding"]:  # the run failed before it began: the others go on without it
                turn["holding"] = False
                self.creating.release()


# the runs this context takes turns with (set by ``in_turn`` and the daily flow): their subflows and task threads use it
TOGETHER: contextvars.ContextVar[Together | None] = contextvars.ContextVar("pathways_together", default=None)
_TURN: contextvars.ContextVar[dict | None] = contextvars.ContextVar("pathways_turn", default=None)


def created() -> None:
    """First thing in a flow run's body: this run exists, the next one may be created."""
    turn = _TURN.get()
    if turn is not None and turn["holding"]:
        turn["holding"] = False
        turn["lock"].release()


def in_turn(together: Together, function, *args):
    """For a pool thread: ``function(*args)`` in a copy of this (the submitting thread's) context,
    with ``together`` set, in turn with the others."""
    context = contextvars.copy_context()

    def inside():
        TOGETHER.set(together)
        return together.run(function, *args)

    return lambda: context.run(inside)


def finishing(function, *args):
    """``function(*args)`` (which runs flows) so that a signal stops it cleanly
    (pathways.interrupt): batches in flight finish, no new one begins, the run ends and reports
    what it did. It runs in a thread of its own while this (the main) thread waits: in the main
    thread Prefect's flow engine puts its own SIGTERM handler in place of ours, which marks the
    run crashed and ends the process by the signal, leaving the batch workers and the embedded
    server running."""
    with interrupt.finishing():
        return beside(function, *args, name="pathways-run").result()
