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

Every flow is here: the pathway flow and its escalation subflow, the flows the deployments
point at (``advance_enrollments``, ``advance_due``) and the sign-off (``signoff``). Commands
start them through orchestration/advancing.py; runs side by side take turns through
orchestration/turns.py; what follows an advance (next reviews, plans) is
orchestration/followup.py.
"""

from __future__ import annotations

import datetime as dt
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
from pathways.clock import FixedClock
from pathways.orchestration import prefect_edge, workers
from pathways.orchestration.followup import day_clock, replan_for, schedule_reviews, today
from pathways.orchestration.service import Runtimes, batch_size, by_version, open_store, sign_off
from pathways.orchestration.turns import TOGETHER, Together, beside, created


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
        created()
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
            self.subflow = beside(self._run, name=f"escalations-{self.pathway}")

    def _run(self) -> None:
        together = TOGETHER.get()
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
        created()
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
            summarised = beside(_decisions_artifact, spec.id, spec.version, len(enrollments), at, dict(kinds), left)
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


def start_workers(groups: dict[str, list[str]]) -> None:
    """Start the batch workers (without waiting) for the pathways with more than one batch: they
    start and load while the flow runs are created."""
    parallel = [pathway for pathway, members in groups.items() if len(members) > batch_size()]
    if parallel:
        workers.prepare(parallel)


# -- module-level flows that deployments point at -------------------------------------------

@flow(name="pathways-advance", log_prints=False)
def advance_enrollments(pathway: str, enrollments: list[str], at: str | None = None) -> dict[str, int]:
    """Advance these enrollments of one pathway (a batch, or one patient's scheduled review)."""
    prefect_edge.configure()  # a deployment's run: this is its entry point
    day = at or today().isoformat()
    kinds: Counter = Counter()
    # ``pathway`` names the pathway; each enrollment runs the version it was enrolled in
    for key, members in by_version(open_store(day_clock(day)), enrollments).items():
        kinds.update(pathway_flow(key)(key, members, day, len(members)))
    schedule_reviews(enrollments)
    replan_for(enrollments, dt.date.fromisoformat(day))
    return dict(kinds)


@task(name="advance-pathway", cache_policy=NO_CACHE)
def _advance_pathway(pathway: str, enrollments: list[str], at: str) -> dict[str, int]:
    """Runs one pathway's flow as a subflow of the daily run (a task, so that pathways run side by
    side), then schedules its enrollments' next due dates."""
    run = pathway_flow(pathway)
    together = TOGETHER.get()
    if together is None:
        kinds = run(pathway, enrollments, at, len(enrollments))
    else:
        kinds = together.run(run, pathway, enrollments, at, len(enrollments))
    schedule_reviews(enrollments)
    return kinds


@flow(name="pathways-due", log_prints=False, task_runner=ThreadPoolTaskRunner(max_workers=8))
def advance_due(at: str | None = None) -> dict[str, int]:
    """The daily run: advance every enrollment that has come due, one pathway flow run per
    pathway, side by side: one pathway's batches keep the workers busy while Prefect records
    another's step tasks."""
    prefect_edge.configure()  # a deployment's run: this is its entry point
    day = dt.date.fromisoformat(at) if at else today()
    store = open_store(day_clock(day.isoformat()))
    groups = store.due_by_version(day)
    for pathway in groups:
        pathway_flow(pathway)  # load each pathway here, once: loading in the task threads would take turns
    start_workers(groups)
    together = TOGETHER.set(Together() if len(groups) > 1 else None)  # the task threads take a copy of this context
    try:
        futures = [_advance_pathway.submit(pathway, members, day.isoformat()) for pathway, members in groups.items()]
    finally:
        TOGETHER.reset(together)
    totals: Counter = Counter()
    for future in futures:
        totals.update(future.result())
    replan_for([e for members in groups.values() for e in members], day)  # once per patient, after every pathway
    return dict(totals)


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
    clock = FixedClock.on(today())
    store = open_store(clock, context={"prefect_flow_run": str(flow_run.id)})
    state, _ = store.load(enrollment)
    if step not in state.escalations:
        raise ValueError(f"'{step}' is not an open escalation of {enrollment} (open: {', '.join(sorted(state.escalations)) or 'none'})")
    get_run_logger().info(f"waiting for the sign-off of {step} for {enrollment}: in Prefect's UI, or "
                          f"`pathways resume {flow_run.id} --by STAFF_ID --outcome akkoord`")
    answer = pause_flow_run(wait_for_input=SignOff, timeout=timeout, poll_interval=poll_interval)
    clock = FixedClock.on(today())
    store.now = clock.now
    sign_off(store, Runtimes(), enrollment, step, answer.signed_off_by, answer.outcome, clock, via="pause_flow_run")
    return answer.outcome
