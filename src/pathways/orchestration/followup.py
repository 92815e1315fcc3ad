"""What follows an advance: each enrollment's next due date scheduled as a run of the batch
deployment, when ``review_deployment`` says so (``schedule_reviews``), and the personal plans of
the patients advanced made again for the day (``replan_for``, orchestration/careplan.py); and
the day a run is for (``today``, ``day_clock``). Logs say how many, never who; scheduled runs'
parameters carry pseudonymous enrollment ids only. Prefect API used: the client
(``read_deployment_by_name``, ``create_flow_run_from_deployment``) and the run logger.
"""

from __future__ import annotations

import datetime as dt
import os

from prefect import get_run_logger

from pathways import interrupt
from pathways.clock import FixedClock
from pathways.orchestration.service import Runtimes, open_store, schedule_reviews_setting


def day_clock(at: str) -> FixedClock:
    """The clock of a run for the day ``at`` (ISO date): every decision of the run is made on it."""
    return FixedClock.on(dt.date.fromisoformat(at))


def today() -> dt.date:
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
                run_logger().warning(f"PATHWAYS_SCHEDULE_REVIEWS=1 but there is no deployment {BATCH_DEPLOYMENT}: "
                                  "next reviews not scheduled (`pathways deploy` or `pathways serve` makes it)")
            return None


def run_logger():
    """The run's logger inside a flow run, else this module's."""
    import logging

    try:
        return get_run_logger()
    except Exception:  # outside a run (a command): Prefect's MissingContextError
        return logging.getLogger("pathways")


def schedule_reviews(enrollments: list[str]) -> int:
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

    store = open_store(day_clock(today().isoformat()))
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


def replan_for(enrollments: list[str], at: dt.date) -> None:
    """The stored plan of every patient these enrollments belong to, made again for the day
    (orchestration/careplan.py): the appointments follow what the advance decided. The log
    says how many, never who."""
    if interrupt.requested():  # stopped: the next run for the day makes the plans left
        return
    from pathways.orchestration.careplan import replan

    done = replan(open_store(day_clock(at.isoformat())), Runtimes(templates=False), enrollments, at)
    run_logger().info(f"personal plans made again for {done.patients} patient(s) on {at}: {done.changed} changed, "
                   f"{done.decisions_added} new bundling or conflict decision(s)")
    if done.problems:
        run_logger().warning(f"{len(done.problems)} personal plan(s) not made: `pathways plan PATIENT` says why")
