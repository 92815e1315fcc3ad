"""Advance batches of enrollments, in worker processes when there is more than one batch.

An advance is CPU-bound Python (rules, explanations, state), so threads would share one core.
A cohort's batches are spread over ``PATHWAYS_WORKERS`` processes (default: the number of
cores, at most 4), started once per process and kept for later runs. The workers do not import
Prefect: each batch stays a Prefect task in the flow run (submitted concurrently), and only its
work happens in the worker. Writes from several workers queue on the store's audit head lock.

Each call carries the caller's environment and working directory, so a worker always uses the
same database, roles and settings as the flow that sent the batch. If a worker process dies,
its batch is run again in the calling process: advancing is idempotent (keyed decisions), so
a batch that was half written before is neither doubled nor lost.
"""

from __future__ import annotations

import atexit
import datetime as dt
import gc
import heapq
import os
import pickle
import threading
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from typing import Any, Iterator

from pathways import interrupt
from pathways.orchestration import settings as configured
from pathways.orchestration.settings import worker_count  # the setting lives with the others

GATED_SHOWN = 20  # gated enrollment ids kept per step for the flow's summary


def advance_batch(enrollments: list[str], at: str, context: dict[str, Any], worker: bool = False) -> dict[str, Any]:
    """Advance one batch here; a compact summary: per step, its enrollments per status and a few
    gated ids; per kind of event, how many; the escalations opened (enrollment, step).
    In a worker (``worker``), the flow that sent the batch has migrated the store and loaded the
    pathway with every check: the worker skips both (its document templates are not used)."""
    from pathways.clock import FixedClock
    from pathways.orchestration.service import Runtimes, advance_many, open_store

    clock = FixedClock.on(dt.date.fromisoformat(at))
    store = open_store(clock, context=context, migrated=worker)
    pairs: Counter = Counter()  # (step, status) -> enrollments
    gated: dict[str, list[str]] = {}
    kinds: Counter = Counter()
    escalated: list[tuple[str, str | None]] = []
    with _no_cycle_collection():
        advanced_all = advance_many(store, Runtimes(templates=not worker), enrollments, clock)
    for advanced in advanced_all:
        pairs.update(advanced.statuses.items())  # counted in C: a batch has tens of thousands of them
        if "gated" in advanced.statuses.values():
            for step, status in advanced.statuses.items():
                if status == "gated" and len(gated.setdefault(step, [])) < GATED_SHOWN:
                    gated[step].append(advanced.enrollment)
        for event in advanced.events:
            kinds[event.kind] += 1
            if event.kind == "escalated":
                escalated.append((advanced.enrollment, event.step))
    steps: dict[str, dict[str, int]] = {}
    for (step, status), count in pairs.items():
        steps.setdefault(step, {})[status] = count
    return {"steps": steps, "gated": gated, "kinds": dict(kinds), "escalated": escalated, "advanced": len(advanced_all)}


@contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """Python's cycle collector off while a batch runs. A batch allocates millions of short-lived
    objects (states, facts, explanations) that reference counting frees; the collector's passes
    over them cost a fifth of a batch's time here, and a batch leaves about 150 objects in
    cycles, collected once it is switched back on."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _in_worker(environment: dict[str, str], cwd: str, settings: configured.Settings, enrollments: list[str], at: str,
               context: dict[str, Any]) -> dict[str, Any]:
    """Runs in a worker process: take the caller's settings, then advance."""
    _take_settings(environment, cwd, settings)
    with _portable_errors():
        return advance_batch(enrollments, at, context, worker=True)


@contextmanager
def _portable_errors() -> Iterator[None]:
    """In a worker: an error keeps its type when it crosses back to the caller, else its text
    (one that cannot be rebuilt there would break the whole pool)."""
    try:
        yield
    except Exception as exc:
        try:
            pickle.loads(pickle.dumps(exc))
        except Exception:
            raise RuntimeError(f"{type(exc).__name__}: {exc}") from None
        raise


def _take_settings(environment: dict[str, str], cwd: str, settings: configured.Settings) -> None:
    """In a worker: the caller's settings (the object it read, not read again here), environment
    and working directory, sent with every call."""
    if dict(os.environ) != environment:
        os.environ.clear()
        os.environ.update(environment)
    configured.use(settings)
    if os.getcwd() != cwd:
        os.chdir(cwd)


def _warm(environment: dict[str, str], cwd: str, settings: configured.Settings, pathways: list[str]) -> int:
    """Runs in a worker process: load the pathways (and their rulesets) before the first batch."""
    _take_settings(environment, cwd, settings)
    from pathways.orchestration.service import Runtimes

    runtimes = Runtimes(templates=False)
    with _portable_errors():
        for pathway in pathways:
            # a version key as the flows group work (its published files), or a pathway's files by name
            runtime = runtimes.get_version(pathway) if "@" in pathway else runtimes.get(pathway)
            runtime.evaluator.ruleset  # noqa: B018 - built here, once per process
    gc.collect()
    gc.freeze()  # the loaded pathways live as long as the worker: later collections skip them
    return os.getpid()


def prepare(pathways: list[str], wait: bool = False) -> set[int]:
    """Start the worker processes now and let each load ``pathways``: a worker's interpreter
    start and pathway loading (about a second) then overlap with the creation of the flow run
    instead of delaying its first batch. ``wait``: return once they are ready (a long-running
    process that starts its workers up front); returns the ids of the processes that have
    loaded them (none without ``wait``, or when there is nothing to do)."""
    count = worker_count()
    if count <= 1:
        return set()
    pool = _executor(count)
    key = (id(pool), configured.current().places, os.getcwd())
    wanted = sorted(p for p in set(pathways) if (key, p) not in _warmed)
    if not wanted:
        return set()
    loaded: set[int] = set()
    try:
        with _deaf_children():
            futures = [pool.submit(_warm, dict(os.environ), os.getcwd(), configured.current(), wanted) for _ in range(count)]
        if wait:
            loaded = {future.result() for future in futures}
    except BrokenProcessPool:  # the batches will find out and run here
        _discard(pool)
        return set()
    _warmed.update((key, p) for p in wanted)
    return loaded


_warmed: set[tuple] = set()  # (pool, settings, pathway) already sent to be loaded


def _ignore_interrupts() -> None:
    """Ctrl-C (and a SIGTERM sent to the process group) reaches the workers too: the flow's
    process decides (pathways.interrupt: no new batches), and a worker finishes its batch, which
    is one transaction, instead of printing a traceback; the flow's process then shuts the pool
    down. If the flow's process is killed, its workers would wait for batches for ever (each holds
    the pool's queue open): a worker ends once its parent is gone (a batch in flight is rolled back whole)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _INTERRUPTS)  # blocked since its start (``_deaf_children``): now ignored
    threading.Thread(target=_end_with_parent, args=(os.getppid(),), name="end-with-parent", daemon=True).start()


_INTERRUPTS = {2, 15}  # SIGINT, SIGTERM


@contextmanager
def _deaf_children() -> Iterator[None]:
    """Worker processes started in here (a pool starts them as batches are submitted) begin with
    SIGINT and SIGTERM blocked, until ``_ignore_interrupts`` ignores them: a Ctrl-C while a worker
    starts would otherwise print its interpreter's traceback. (Multiprocessing starts its
    resource tracker the same way.) Here they are held for the moment of the submit, then
    delivered."""
    import signal

    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _INTERRUPTS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def _end_with_parent(parent: int) -> None:
    import time

    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


_pool: ProcessPoolExecutor | None = None
_pool_size = 0
_lock = threading.Lock()


def _executor(size: int) -> ProcessPoolExecutor:
    global _pool, _pool_size
    with _lock:
        if _pool is None or _pool_size != size:
            if _pool is not None:
                _pool.shutdown(wait=False, cancel_futures=True)
            import multiprocessing

            # spawn: a fresh interpreter, no copy of this process's threads or durable-rules host
            _pool, _pool_size = ProcessPoolExecutor(max_workers=size, mp_context=multiprocessing.get_context("spawn"),
                                                    initializer=_ignore_interrupts), size
        return _pool


def _discard(pool: ProcessPoolExecutor) -> None:
    global _pool
    with _lock:
        if _pool is pool:
            _pool = None
    pool.shutdown(wait=False, cancel_futures=True)


def shutdown() -> None:
    global _pool
    with _lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)


atexit.register(shutdown)


_here = threading.Lock()  # durable-rules is not thread-safe: one batch at a time in this process


def batches(enrollments: list[str], size: int, parallel: bool) -> list[list[str]]:
    """Batches of at most ``size``; side by side, as many as keeps every worker busy to the end
    (a multiple of the worker count, of equal size)."""
    count = max(1, -(-len(enrollments) // size))
    if parallel and count > 1:
        workers = worker_count()
        count = -(-count // workers) * workers
    per = max(1, -(-len(enrollments) // count))
    return [enrollments[start:start + per] for start in range(0, len(enrollments), per)]


class _Queue:
    """Batches waiting for a worker process: one batch in flight per worker, the rest wait here.
    Every run's first batch goes first; then the runs' other batches, run after run (in the order
    the runs' batches first came), each run's in order. Runs side by side thus each get their first
    results (and open their escalation subflows, a Prefect flow run to create) early, while the
    workers still have most of the work ahead; and they still end one after the other, so that
    one run's closing work (its step tasks, artifacts) overlaps the next run's batches."""

    def __init__(self):
        self._changed = threading.Condition()
        self._waiting: list[tuple[int, int, int]] = []  # a heap of (0 for a first batch else 1, run rank, arrival)
        self._runs: dict[str, int] = {}  # run -> its rank, while the queue is busy
        self._arrivals = 0
        self._in_flight = 0

    @contextmanager
    def turn(self, first: bool, slots: int, run: str = "") -> Iterator[None]:
        with self._changed:
            self._arrivals += 1
            rank = self._runs.setdefault(run, len(self._runs))
            entry = (0, 0, self._arrivals) if first else (1, rank, self._arrivals)
            heapq.heappush(self._waiting, entry)
            while self._waiting[0] != entry or self._in_flight >= slots:
                self._changed.wait()
            heapq.heappop(self._waiting)
            self._in_flight += 1
            self._changed.notify_all()  # the next one may have a free worker too
        try:
            yield
        finally:
            with self._changed:
                self._in_flight -= 1
                if not self._in_flight and not self._waiting:
                    self._runs.clear()
                self._changed.notify_all()


_queue = _Queue()


def not_started(enrollments: list[str]) -> dict[str, Any]:
    """The summary of a batch left alone because a stop was asked for (pathways.interrupt):
    nothing of it was read or written; the next run advances it."""
    return {"steps": {}, "gated": {}, "kinds": {}, "escalated": [], "advanced": 0, "not_started": len(enrollments)}


def advance(enrollments: list[str], at: str, context: dict[str, Any], parallel: bool, first: bool = False) -> dict[str, Any]:
    """Advance a batch in a worker process (``parallel``; ``first``: the first batch of its run)
    or here; once a stop has been asked for, a batch that has not begun does not begin."""
    if interrupt.requested():
        return not_started(enrollments)
    if parallel and worker_count() > 1:
        from pathways.orchestration.stores import database_url, migrate_once

        migrate_once(database_url())  # here, once: the workers then skip it
        with _queue.turn(first, worker_count(), str(context.get("prefect_flow_run", ""))):
            if interrupt.requested():  # asked while this batch waited for a worker
                return not_started(enrollments)
            pool = _executor(worker_count())
            try:
                with _deaf_children():
                    submitted = pool.submit(_in_worker, dict(os.environ), os.getcwd(), configured.current(), enrollments, at, context)
                return submitted.result()
            except BrokenProcessPool:  # a worker died (killed, or a crash in a C extension): do this batch here
                _discard(pool)
                if interrupt.requested():  # (not while stopping: the next run does it)
                    return not_started(enrollments)
    with _here:
        return advance_batch(enrollments, at, context)
