"""Pathways as Prefect flows (the only package that imports Prefect).

Each pathway version is a flow named ``pathway-<id>`` with the pathway version as the flow
version. One flow run advances many enrollments (a flow run per patient would cost seconds
each) in batches, one ``advance-batch`` task each, side by side in worker processes when there
is more than one (orchestration/workers.py); then one task run per step in stage order reports
that step for all of them (recorded with its final state, ``_report_steps``): ``Escalated``,
``Due``, ``Gated`` (a COMPLETED state named Gated, its message the counts and the first gated
enrollments) or ``Waiting``. The run's first escalation opens the ``escalation-<id>`` subflow, which counts and
lists the run's escalations once its last batch is in. Parameters, names, logs and the artifacts carry
pseudonymous enrollment ids and step ids only; clinical values stay in the store.
Stopped on request (Ctrl-C, SIGTERM: pathways.interrupt), a run lets its batches in flight
finish, starts no more, ends as usual and counts what it left (``NOT_ADVANCED``).
"""

from __future__ import annotations

import contextvars
import datetime as dt
import os
import re
import threading
from collections import Counter
from concurrent.futures import Future
from functools import lru_cache
from typing import Any, Literal

from prefect import flow, get_run_logger, pause_flow_run, task
from prefect.input import RunInput
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.states import Completed
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import Field

from pathways import interrupt
from pathways.errors import PrefectUnavailable
from pathways.clock import FixedClock
from pathways.orchestration import prefect_edge, workers
from pathways.orchestration.service import (
    Runtimes, batch_size, by_version, open_store, schedule_reviews_setting, sign_off)


def _clock(at: str) -> FixedClock:
    return FixedClock.on(dt.date.fromisoformat(at))


class BatchSummary:
    """A batch task's result: its compact summary (``data``, from ``workers.advance_batch``).
    Prefect walks a task's result for futures and states inside it, into every item of a dict
    or list (the escalations listed, the gated ids: 0.3 s of the flow process's CPU for a
    10,000-enrollment cohort here); an object of another kind it passes on as it is."""

    __slots__ = ("data",)

    def __init__(self, data: dict[str, Any]):
        self.data = data

    def __repr__(self) -> str:
        return f"BatchSummary({self.data.get('advanced')} enrollments)"


class Batch:
    """A batch task's enrollment ids, passed as one object: Prefect walks a task's parameters for
    futures and states inside them, into every item of a list (twice per task: 0.1 s of the flow
    process's CPU for a 10,000-enrollment cohort here); an object of another kind it passes on."""

    __slots__ = ("enrollments",)

    def __init__(self, enrollments: list[str]):
        self.enrollments = enrollments

    def __repr__(self) -> str:
        return f"Batch({len(self.enrollments)} enrollments)"


@task(name="advance-batch", cache_policy=NO_CACHE)
def advance_batch(batch: Batch, at: str, parallel: bool = False, first: bool = False) -> BatchSummary:
    """Advance a batch (in a worker process when ``parallel``; ``first``: its run's first batch,
    which goes ahead of other runs' waiting batches); return a compact summary (per step: counts
    and gated ids; events)."""
    from prefect.runtime import flow_run, task_run

    # audit entries name the Prefect runs that made them (ids only; the trail is self-sufficient)
    context = {"prefect_flow_run": str(flow_run.id), "prefect_task_run": str(task_run.id)}
    return BatchSummary(workers.advance(batch.enrollments, at, context, parallel, first))


def _step_task(step_id: str, stage: str):
    """A step's Prefect task. Its runs are recorded (``_report_steps``), not executed: the step's
    work is done in the batches."""

    @task(name=f"{stage}:{step_id}", cache_policy=NO_CACHE)
    def report(counts: dict[str, int], gated: list[str]):
        return _step_state(counts, gated)

    return report


def _step_state(counts: dict[str, int], gated: list[str]):
    """A step's state in a run: COMPLETED, named Escalated, Due, Gated or Waiting, its message the
    counts per status (and the first gated enrollments, whose reasons are in the store)."""
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    if counts.get("escalated"):
        return Completed(name="Escalated", message=summary)
    if counts.get("due"):
        return Completed(name="Due", message=summary)
    if gated:
        return Completed(name="Gated", message=f"{summary}; gated for {', '.join(gated[:20])} (reasons in the store)")
    return Completed(name="Waiting", message=summary)


def _report_steps(step_tasks: list[tuple[str, Any]], counts: dict[str, Counter], gated: dict[str, list[str]]) -> None:
    """One task run per step, in stage order, in this flow run, recorded with its final state
    through Prefect's event stream: the event that Prefect's task engine sends when a task run
    ends (its own function), which the server's task-run recorder writes as the run. The task
    engine would send three events per step (pending, running, completed) and set up a run
    context for a body that only returns the state: measured here, 74 steps cost 0.23 s of the
    flow process's CPU and 0.28 s of the server's that way, 0.02 s and 0.08 s this way (4 % of a
    10,000-enrollment cohort's CPU). What the server records is the same: name, task, flow run,
    state with its name and message, start and end time."""
    from prefect.runtime import flow_run

    previous = None
    for i, (step_id, step_task) in enumerate(step_tasks):
        state = _step_state(counts.get(step_id, {}), gated.get(step_id, []))
        if previous is not None and state.timestamp <= previous:  # stage order is time order, also on a coarse clock
            state.timestamp = previous + dt.timedelta(microseconds=1)
        previous = state.timestamp
        prefect_edge.emit_step_run(flow_run.id, i, step_task, state)


@lru_cache(maxsize=None)
def escalation_flow(pathway: str):
    @flow(name=f"escalation-{pathway}", flow_run_name="escalations-{pathway_run}", log_prints=False)
    def escalations(pathway_run: str) -> int:
        """Opened by the pathway's flow run when its first batch escalates; once its last batch is
        in, counts that run's escalations per step and lists them (the first ESCALATIONS_LISTED;
        parameters: the run's id only, no enrollment ids)."""
        _created()
        at, escalated = _OPENED[pathway_run].result()
        create_markdown_artifact(
            key=f"escalations-{pathway}".replace("_", "-"),
            markdown=escalations_markdown(escalated, pathway, at),
            description=f"Escalations opened in {pathway}",
        )
        return len(escalated)

    return escalations


ESCALATIONS_LISTED = 200  # rows of a run's escalations artifact; the rest are counted


def escalations_markdown(escalated: list[tuple[str, str]], pathway: str, at: str) -> str:
    """A run's escalations: how many per escalation step, then the enrollments, the first
    ``ESCALATIONS_LISTED`` of them (a first review of a large cohort opens thousands; every one
    is in the store's audit trail)."""
    per_step = Counter(step for _, step in escalated)
    counts = "\n".join(f"| {step} | {n} |" for step, n in sorted(per_step.items()))
    rows = "\n".join(f"| {e} | {s} |" for e, s in escalated[:ESCALATIONS_LISTED])
    more = len(escalated) - ESCALATIONS_LISTED
    rest = (f"\n\n{more} more not listed here; all of them: "
            f"`pathways audit log --action escalation.opened --pathway {pathway} --since {at}`" if more > 0 else "")
    return (f"| escalation step | opened |\n|---|---|\n{counts}\n\n"
            f"| enrollment | escalation step |\n|---|---|\n{rows}{rest}")


_OPENED: dict[str, Future] = {}  # pathway flow run id -> its escalations, once all its batches are in


class _Escalations:
    """A pathway flow run's escalation subflow, started at the run's first escalation, while its
    batches still run: creating a flow run right after many task runs meets the embedded
    server's task-run recorder (SQLite answers "database is locked"; Prefect's client waited 2 s
    before ``_quick_retries``), and waiting for the recorder at the end of every run costs
    about half a second."""

    def __init__(self, pathway: str, at: str):
        from prefect.runtime import flow_run

        self.pathway, self.at, self.run_id = pathway, at, str(flow_run.id)
        self.escalated: list[tuple[str, str]] = []
        self.subflow: Future | None = None  # the subflow's run, in a thread of the run's context (its parent is this run)

    def add(self, escalated: list[tuple[str, str]]) -> None:
        self.escalated += escalated
        if escalated and self.subflow is None:
            _OPENED[self.run_id] = Future()
            self.subflow = _beside(self._run, name=f"escalations-{self.pathway}")

    def _run(self) -> None:
        together = _TOGETHER.get()
        if together is None:
            escalation_flow(self.pathway)(self.run_id)
        else:  # not while another run is being created
            together.run(escalation_flow(self.pathway), self.run_id)

    def hand_over(self) -> None:
        """Hand the complete list over once the last batch is in: the subflow lists it while the
        run reports its steps."""
        if self.subflow is not None and not _OPENED[self.run_id].done():
            _OPENED[self.run_id].set_result((self.at, list(self.escalated)))

    def close(self, error: BaseException | None = None) -> None:
        """Hand the complete list over (or the run's error) if not yet done, and wait for the subflow to end."""
        if self.subflow is None:
            return
        if error is None:
            self.hand_over()
        elif not _OPENED[self.run_id].done():
            _OPENED[self.run_id].set_exception(RuntimeError(f"the run of {self.pathway} failed: {type(error).__name__}"))
        failed = self.subflow.exception()  # waits for the subflow to end
        del _OPENED[self.run_id]
        if error is None and failed is not None:
            raise failed


@lru_cache(maxsize=None)
def pathway_flow(version_key: str):
    """The Prefect flow of one pathway version (cached: one flow object per process): named
    ``pathway-<id>``, its Prefect flow version the pathway version; groups are keyed by version key."""
    spec = Runtimes().get_version(version_key).spec  # loaded once per process, shared with the batches run here
    step_tasks = [(s.id, _step_task(s.id, s.stage)) for s in spec.steps]

    # Started by this module only (a subflow of the deployed flows, or directly), with parameters
    # it built: not validated again by Prefect, which walks every item of the enrollment list
    # looking for block references (28 ms of CPU for 3,333 ids here, before the first batch).
    @flow(name=f"pathway-{spec.id}", version=spec.version, flow_run_name=f"{spec.id}-{{at}}-n{{size}}", log_prints=False,
          task_runner=ThreadPoolTaskRunner(max_workers=8), validate_parameters=False)
    def run(pathway_id: str, enrollments: list[str], at: str, size: int) -> dict[str, int]:
        counts: dict[str, Counter] = {}
        gated: dict[str, list[str]] = {}
        kinds: Counter = Counter()
        parallel = len(enrollments) > batch_size() and workers.worker_count() > 1
        batches = workers.batches(enrollments, batch_size(), parallel)
        escalations = _Escalations(spec.id, at)
        _created()
        try:
            if parallel:  # batches run side by side in worker processes
                futures = [advance_batch.submit(Batch(batch), at, True, i == 0) for i, batch in enumerate(batches)]
                summaries = (future.result().data for future in futures)
            else:  # once a stop is asked for (pathways.interrupt), the rest are not started
                summaries = (advance_batch(Batch(batch), at).data if not interrupt.requested() else workers.not_started(batch)
                             for batch in batches)
            left = 0
            for summary in summaries:  # in order, as they come in
                left += summary.get("not_started", 0)
                for step, c in summary["steps"].items():
                    counts.setdefault(step, Counter()).update(c)
                for step, ids in summary["gated"].items():
                    gated.setdefault(step, []).extend(ids)
                kinds.update(summary["kinds"])
                escalations.add(summary["escalated"])
            escalations.hand_over()
            summarised = _beside(_decisions_artifact, spec.id, spec.version, len(enrollments), at, dict(kinds), left)
            _report_steps(step_tasks, counts, gated)
        except BaseException as exc:
            escalations.close(exc)
            raise
        escalations.close()
        summarised.result()
        if left:
            get_run_logger().info(f"stopped on request: {size - left} of {size} enrollments advanced, {left} left for the next run")
            return {**kinds, NOT_ADVANCED: left}
        return dict(kinds)

    return run


NOT_ADVANCED = "not advanced"  # in a run's result when it was stopped (pathways.interrupt): the enrollments it left


def _decisions_artifact(pathway: str, version: str, size: int, at: str, kinds: dict[str, int], left: int = 0) -> None:
    """A pathway run's artifact: how many decisions of each kind (counts only), and how many
    enrollments it left when it was stopped."""
    rows = "\n".join(f"| {kind} | {n} |" for kind, n in sorted(kinds.items()))
    advanced = (f"Advanced {size - left} of {size} enrollments of {pathway} {version} at {at}: stopped on request, "
                f"the other {left} are advanced by the next run." if left else f"Advanced {size} enrollments of {pathway} {version} at {at}.")
    create_markdown_artifact(
        key=f"decisions-{pathway}".replace("_", "-"),
        markdown=f"{advanced}\n\n| decision | count |\n|---|---|\n{rows}\n",
        description="Decisions of this run (details and explanations are in the pathways store)",
    )


def _beside(function, *args, name: str = "run-artifact") -> Future:
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


class _Together:
    """Pathway runs started side by side, and their escalation subflows, are created one after
    the other; each run begins its batches as soon as it exists. On the embedded server (SQLite)
    a flow run created while another is being created is often answered "database is locked".
    (Before the client's quick retries, ``_quick_retries``, each such answer cost 2 s, and the
    runs waited for each other's creation before they began: 0.1-0.2 s of idle workers.)"""

    def __init__(self):
        self.creating = threading.Lock()

    def run(self, call, *args):
        """``call`` (which starts a flow run) once no other run is being created; the run's body
        lets the next one be created (``_created``)."""
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


_TOGETHER: contextvars.ContextVar[_Together | None] = contextvars.ContextVar("pathways_together", default=None)
_TURN: contextvars.ContextVar[dict | None] = contextvars.ContextVar("pathways_turn", default=None)


def _created() -> None:
    """First thing in a flow run's body: this run exists, the next one may be created."""
    turn = _TURN.get()
    if turn is not None and turn["holding"]:
        turn["holding"] = False
        turn["lock"].release()


def _start_workers(groups: dict[str, list[str]]) -> None:
    """Start the batch workers (without waiting) for the pathways with more than one batch: they
    start and load while the flow runs are created."""
    parallel = [pathway for pathway, members in groups.items() if len(members) > batch_size()]
    if parallel:
        workers.prepare(parallel)


def _in_turn(together: _Together, function, *args):
    """For a pool thread: ``function(*args)`` in a copy of this (the submitting thread's) context,
    with ``together`` set, in turn with the others."""
    context = contextvars.copy_context()

    def inside():
        _TOGETHER.set(together)
        return together.run(function, *args)

    return lambda: context.run(inside)


def advance_with_prefect(pathway: str, enrollments: list[str], at: dt.date) -> dict[str, int]:
    """Advance enrollments of one pathway in a Prefect flow run (embedded server by default), then
    schedule their next due dates when ``review_deployment`` says so. ``pathway``: the version key
    the enrollments run (given a pathway's name, each is advanced on the version it runs). Stopped
    on request (pathways.interrupt), its result counts the enrollments it left (``NOT_ADVANCED``)."""
    prefect_edge.configure()
    if "@" not in pathway:
        totals: Counter = Counter()
        for counts in advance_pathways_with_prefect(by_version(open_store(_clock(at.isoformat())), enrollments), at).values():
            totals.update(counts)
        return dict(totals)
    if interrupt.requested():  # stopped before it began: start nothing
        return {NOT_ADVANCED: len(enrollments)}
    try:
        _start_workers({pathway: enrollments})
        with prefect_edge.embedded_run_settings():  # (also the server's start-up time limit, read from the environment again)
            _start_server()
            kinds = _finishing(pathway_flow(pathway), pathway, enrollments, at.isoformat(), len(enrollments))
    except interrupt.Interrupted:  # while the server started: no run was created
        return {NOT_ADVANCED: len(enrollments)}
    if not kinds.get(NOT_ADVANCED):
        _schedule_reviews(enrollments)
        _replan(enrollments, at)
    return kinds


def _start_server() -> None:
    """Start the embedded server (if it is the one used) or reach the one at PREFECT_API_URL, here,
    before the run: a stop asked for while it starts stops at once, nothing having been written
    yet; a server that cannot be reached or does not start is ``PrefectUnavailable``."""
    from prefect.client.orchestration import get_client

    api = os.environ.get("PREFECT_API_URL")
    try:
        with get_client(sync_client=True) as client:
            failed = client.api_healthcheck()
    except RuntimeError as exc:  # Prefect's client: not reached, or the embedded server did not start
        failed = exc
    if failed is None:
        return
    if api:
        raise PrefectUnavailable(f"Prefect's server at PREFECT_API_URL={api} cannot be reached ({str(failed).splitlines()[0]}); "
                                 "nothing was advanced. Start it (`prefect server start`), or unset PREFECT_API_URL to use "
                                 "the embedded server, and run the command again") from None
    log = prefect_edge.server_log()
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()] if log.exists() else []
    cause = [line for line in lines if re.match(r"[\w.]+(Error|Exception): ", line)] or lines  # the exception, if one is named
    raise PrefectUnavailable(f"the embedded Prefect server did not start; nothing was advanced. Its output is in {log}"
                             + (f" ({cause[-1]})" if cause else "")
                             + ". Check PREFECT_HOME and PREFECT_SERVER_DATABASE_CONNECTION_URL (`pathways config`), "
                             "then run the command again") from None


def _finishing(function, *args):
    """``function(*args)`` (which runs flows) so that a signal stops it cleanly
    (pathways.interrupt): batches in flight finish, no new one begins, the run ends and reports
    what it did. It runs in a thread of its own while this (the main) thread waits: in the main
    thread Prefect's flow engine puts its own SIGTERM handler in place of ours, which marks the
    run crashed and ends the process by the signal, leaving the batch workers and the embedded
    server running."""
    with interrupt.finishing():
        return _beside(function, *args, name="pathways-run").result()


def advance_pathways_with_prefect(groups: dict[str, list[str]], at: dt.date) -> dict[str, dict[str, int]]:
    """Advance the enrollments of several pathways: one flow run per pathway, side by side
    (threads), so that one pathway's batches keep the workers busy while Prefect creates and
    records another's runs; then schedules their next due dates when ``review_deployment`` says so.
    Returns each pathway's decision counts (with ``NOT_ADVANCED`` when stopped on request); if a
    pathway's run fails, the others still finish (and are scheduled) and then its error is raised."""
    prefect_edge.configure()
    groups = {pathway: members for pathway, members in sorted(groups.items()) if members}
    if len(groups) <= 1:
        return {pathway: advance_with_prefect(pathway, members, at) for pathway, members in groups.items()}
    if interrupt.requested():
        return {pathway: {NOT_ADVANCED: len(members)} for pathway, members in groups.items()}
    _start_workers(groups)
    from concurrent.futures import ThreadPoolExecutor

    for pathway in groups:
        pathway_flow(pathway)  # load each pathway once, before the threads
    together = _Together()
    run = lambda pathway, members: pathway_flow(pathway)(pathway, members, at.isoformat(), len(members))  # noqa: E731

    def side_by_side() -> dict[str, Future]:
        with ThreadPoolExecutor(max_workers=len(groups), thread_name_prefix="pathway-flow") as pool:
            return {pathway: pool.submit(_in_turn(together, run, pathway, members)) for pathway, members in groups.items()}

    with prefect_edge.embedded_run_settings():  # the settings once, here (40 ms of CPU each time), in every thread's copy of this context
        try:
            _start_server()  # here, once, not from several threads
        except interrupt.Interrupted:  # stopped while the server started: no run was created
            return {pathway: {NOT_ADVANCED: len(members)} for pathway, members in groups.items()}
        futures = _finishing(side_by_side)
    results: dict[str, dict[str, int]] = {}
    errors: list[BaseException] = []
    for pathway, future in futures.items():
        try:
            results[pathway] = future.result()
        except Exception as exc:
            errors.append(exc)
    advanced = [e for pathway in results if not results[pathway].get(NOT_ADVANCED) for e in groups[pathway]]
    _schedule_reviews(advanced)
    _replan(advanced, at)  # once per patient, after all their pathways' runs
    if errors:
        raise errors[0]
    return results


# -- module-level flows that deployments point at -------------------------------------------

@flow(name="pathways-advance", log_prints=False)
def advance_enrollments(pathway: str, enrollments: list[str], at: str | None = None) -> dict[str, int]:
    """Advance these enrollments of one pathway (a batch, or one patient's scheduled review)."""
    prefect_edge.configure()  # a deployment's run: this is its entry point
    day = at or _today().isoformat()
    kinds: Counter = Counter()
    # ``pathway`` names the pathway; each enrollment runs the version it was enrolled in
    for key, members in by_version(open_store(_clock(day)), enrollments).items():
        kinds.update(pathway_flow(key)(key, members, day, len(members)))
    _schedule_reviews(enrollments)
    _replan(enrollments, dt.date.fromisoformat(day))
    return dict(kinds)


@task(name="advance-pathway", cache_policy=NO_CACHE)
def _advance_pathway(pathway: str, enrollments: list[str], at: str) -> dict[str, int]:
    """Runs one pathway's flow as a subflow of the daily run (a task, so that pathways run side by
    side), then schedules its enrollments' next due dates."""
    run = pathway_flow(pathway)
    together = _TOGETHER.get()
    if together is None:
        kinds = run(pathway, enrollments, at, len(enrollments))
    else:
        kinds = together.run(run, pathway, enrollments, at, len(enrollments))
    _schedule_reviews(enrollments)
    return kinds


@flow(name="pathways-due", log_prints=False, task_runner=ThreadPoolTaskRunner(max_workers=8))
def advance_due(at: str | None = None) -> dict[str, int]:
    """The daily run: advance every enrollment that has come due, one pathway flow run per
    pathway, side by side: one pathway's batches keep the workers busy while Prefect records
    another's step tasks."""
    prefect_edge.configure()  # a deployment's run: this is its entry point
    day = dt.date.fromisoformat(at) if at else _today()
    store = open_store(_clock(day.isoformat()))
    groups = store.due_by_version(day)
    for pathway in groups:
        pathway_flow(pathway)  # load each pathway here, once: loading in the task threads would take turns
    _start_workers(groups)
    together = _TOGETHER.set(_Together() if len(groups) > 1 else None)  # the task threads take a copy of this context
    try:
        futures = [_advance_pathway.submit(pathway, members, day.isoformat()) for pathway, members in groups.items()]
    finally:
        _TOGETHER.reset(together)
    totals: Counter = Counter()
    for future in futures:
        totals.update(future.result())
    _replan([e for members in groups.values() for e in members], day)  # once per patient, after every pathway
    return dict(totals)


def _replan(enrollments: list[str], at: dt.date) -> None:
    """The stored plan of every patient these enrollments belong to, made again for the day
    (orchestration/careplan.py): the appointments follow what the advance decided. The log
    says how many, never who."""
    if interrupt.requested():  # stopped: the next run for the day makes the plans left
        return
    from pathways.orchestration.careplan import replan

    done = replan(open_store(_clock(at.isoformat())), Runtimes(templates=False), enrollments, at)
    _logger().info(f"personal plans made again for {done.patients} patient(s) on {at}: {done.changed} changed, "
                   f"{done.decisions_added} new bundling or conflict decision(s)")
    if done.problems:
        _logger().warning(f"{len(done.problems)} personal plan(s) not made: `pathways plan PATIENT` says why")


def _today() -> dt.date:
    """Today as the settings say (PATHWAYS_TODAY in tests and demos): a flow run of a deployment
    has no caller to give it a date."""
    from pathways.orchestration.settings import current

    return current().clock().today()


BATCH_DEPLOYMENT = "pathways-advance/batch"  # where next reviews are scheduled (orchestration/deploy.py makes it)


def review_deployment():
    """The one decision whether an advance schedules each enrollment's next due date, for every
    command and flow that advances: the ``pathways-advance/batch`` deployment to schedule it on,
    or None. PATHWAYS_SCHEDULE_REVIEWS=0 says no; otherwise yes on a Prefect server
    (PREFECT_API_URL) where that deployment exists, and with PATHWAYS_SCHEDULE_REVIEWS=1 (set by
    `pathways serve` and in the deployments) wherever it exists. On the embedded server (the
    default) no: it lives as long as the command, nobody would run the scheduled runs.
    (Prefect API: ``read_deployment_by_name``, its ObjectNotFound when there is none.)"""
    setting = schedule_reviews_setting()
    if setting == "0" or (setting == "" and not os.environ.get("PREFECT_API_URL")):
        return None
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            return client.read_deployment_by_name(BATCH_DEPLOYMENT)
        except ObjectNotFound:
            if setting == "1":
                _logger().warning(f"PATHWAYS_SCHEDULE_REVIEWS=1 but there is no deployment {BATCH_DEPLOYMENT}: "
                                  "next reviews not scheduled (`pathways deploy` or `pathways serve` makes it)")
            return None


def _logger():
    """The run's logger inside a flow run, else this module's."""
    import logging

    try:
        return get_run_logger()
    except Exception:  # outside a run (a command): Prefect's MissingContextError
        return logging.getLogger("pathways")


def _schedule_reviews(enrollments: list[str]) -> int:
    """When ``review_deployment`` says so, each enrollment's next due date (a review in 12 weeks,
    an intake in 2) becomes a scheduled flow run of the batch deployment, at 06:00 UTC that day:
    no process waits for weeks. Parameters carry the pseudonymous enrollment id only; the
    idempotency key keeps one run per enrollment and date (Prefect's server answers a second
    create with the first run). Returns how many were scheduled (or found scheduled)."""
    if not enrollments:
        return 0
    deployment = review_deployment()
    if deployment is None:
        return 0
    from prefect.client.orchestration import get_client
    from prefect.states import Scheduled

    store = open_store(_clock(_today().isoformat()))
    scheduled = 0
    # One client and one deployment lookup for all of them (``run_deployment`` would read the
    # deployment again, and inside a flow run add a task run, for every enrollment).
    with get_client(sync_client=True) as client:
        for enrollment, (state, _) in store.load_many(enrollments).items():
            dates = [p.due_on for p in state.steps.values() if p.status == "waiting" and p.due_on and p.due_on > state.as_of]
            if dates:
                when = min(dates)
                client.create_flow_run_from_deployment(
                    deployment.id,
                    parameters={"pathway": state.pathway, "enrollments": [enrollment], "at": when.isoformat()},
                    state=Scheduled(scheduled_time=dt.datetime(when.year, when.month, when.day, 6, tzinfo=dt.timezone.utc)),
                    name=f"next-{enrollment}-{when.isoformat()}",
                    idempotency_key=f"next:{enrollment}:{when.isoformat()}",
                )
                scheduled += 1
    return scheduled


# -- short sign-offs inside a flow run -------------------------------------------------------

class SignOff(RunInput):
    """What the person signing off gives (in Prefect's UI or with `pathways resume`): who, and
    the outcome. Deliberately no free text: Prefect keeps run inputs, and clinical detail stays
    in the store (record outputs with `pathways record`)."""

    signed_off_by: str = Field(pattern=r"^[A-Za-z0-9._@-]{1,64}$", description="Staff id (never a patient's name)")
    outcome: Literal["akkoord", "niet akkoord"]


@flow(name="pathways-signoff", flow_run_name="signoff-{enrollment}-{step}", log_prints=False)
def signoff(enrollment: str, step: str, timeout: int = 3600, poll_interval: int = 10) -> str:
    """Wait (paused, for at most ``timeout`` seconds) for the sign-off of an open escalation, e.g.
    the huisarts agreeing to a referral: "akkoord" records the escalation step done, "niet
    akkoord" leaves it open. Both are written to the audit trail with who signed off."""
    from prefect.runtime import flow_run

    prefect_edge.configure()  # a deployment's run: this is its entry point
    clock = FixedClock.on(_today())
    store = open_store(clock, context={"prefect_flow_run": str(flow_run.id)})
    state, _ = store.load(enrollment)
    if step not in state.escalations:
        raise ValueError(f"'{step}' is not an open escalation of {enrollment} (open: {', '.join(sorted(state.escalations)) or 'none'})")
    get_run_logger().info(f"waiting for the sign-off of {step} for {enrollment}: in Prefect's UI, or "
                          f"`pathways resume {flow_run.id} --by STAFF_ID --outcome akkoord`")
    answer = pause_flow_run(wait_for_input=SignOff, timeout=timeout, poll_interval=poll_interval)
    clock = FixedClock.on(_today())
    store.now = clock.now
    sign_off(store, Runtimes(), enrollment, step, answer.signed_off_by, answer.outcome, clock, via="pause_flow_run")
    return answer.outcome
