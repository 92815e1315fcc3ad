"""Deployments on a Prefect work pool: the flows' code comes from this installed package's
source folder, so every worker machine needs the same pathways installation (and the same
PATHWAYS_DATABASE_URL, the shared store). Also `pathways serve`, which serves the same two
deployments from its own process and, when it stops, leaves those it found as it found them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pathways.orchestration import prefect_edge
from pathways.orchestration.flows import advance_due, advance_enrollments
from pathways.orchestration.followup import BATCH_DEPLOYMENT

SOURCE = Path(__file__).resolve().parents[3]  # the project folder (src/ layout)
DAILY_DEPLOYMENT = "pathways-due/daily"
DAILY_CRON = "0 6 * * *"  # every day at 06:00 UTC
POOL_TYPE = "process"  # what `pathways worker` starts (`prefect worker start --type process`)
# The settings of the deployments' flow runs beyond the machine's own: they schedule each
# enrollment's next due date (followup.review_deployment). A flow run starts a new process that
# reads its settings from its environment, so this is handed over as environment: on a work pool
# through the deployment's job variables, in `pathways serve` through the serving process's own
# (Prefect's runner starts each served run as a subprocess with that environment, and a served
# deployment has no job variables: prefect/runner/_starter_engine.py).
RUN_ENVIRONMENT = {"PATHWAYS_SCHEDULE_REVIEWS": "1"}


class DeployError(Exception):
    """A deployment that cannot be made as asked (the message says what to do); nothing registered."""


def register(pool: str, cron: str = DAILY_CRON) -> list[str]:
    prefect_edge.configure()
    entry = "src/pathways/orchestration/flows.py"
    names = []
    batch = advance_enrollments.from_source(source=str(SOURCE), entrypoint=f"{entry}:advance_enrollments")
    batch.deploy(name="batch", work_pool_name=pool, job_variables={"env": dict(RUN_ENVIRONMENT)}, print_next_steps=False)
    names.append(BATCH_DEPLOYMENT)
    daily = advance_due.from_source(source=str(SOURCE), entrypoint=f"{entry}:advance_due")
    daily.deploy(name="daily", work_pool_name=pool, cron=cron, job_variables={"env": dict(RUN_ENVIRONMENT)}, print_next_steps=False)
    names.append(DAILY_DEPLOYMENT)
    return names


def check_cron(cron: str) -> None:
    """A cron Prefect accepts (its ``CronSchedule`` validates with croniter), else DeployError."""
    from prefect.client.schemas.schedules import CronSchedule

    try:
        CronSchedule(cron=cron, timezone="UTC")
    except ValueError:
        raise DeployError(f"--cron '{cron}' is not a cron expression (five fields, UTC; e.g. '0 6 * * *', every day at 06:00)") from None


def ensure_pool(pool: str) -> bool:
    """Make sure the work pool exists and is of type process; True when it was created here.
    Without this, Prefect's ``deploy`` ends in a traceback on a server without the pool (Prefect
    API: ``read_work_pool``, its ObjectNotFound, ``create_work_pool``)."""
    prefect_edge.configure()
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            found = client.read_work_pool(pool)
        except ObjectNotFound:
            try:
                client.create_work_pool(WorkPoolCreate(name=pool, type=POOL_TYPE))
            except ObjectAlreadyExists:  # made by someone else meanwhile
                found = client.read_work_pool(pool)
            else:
                return True
    if found.type != POOL_TYPE:
        raise DeployError(f"work pool {pool} is of type {found.type}, but `pathways worker` runs a {POOL_TYPE} worker: "
                          f"give another --pool (it is created), or create one with `prefect work-pool create NAME --type {POOL_TYPE}`")
    return False


def server_problem(error: BaseException) -> str | None:
    """What to tell the user when the Prefect server cannot be reached (httpx's connection
    errors, as Prefect's client raises them); None for any other error."""
    import httpx

    from prefect.settings import PREFECT_API_URL

    if isinstance(error, (httpx.ConnectError, httpx.ConnectTimeout)):
        return (f"cannot reach the Prefect server at {PREFECT_API_URL.value()} ({type(error).__name__}); "
                "start it (`prefect server start`) or set PREFECT_API_URL to where it runs; nothing was registered")
    return None


# -- pathways serve --------------------------------------------------------------------------

SERVED = (DAILY_DEPLOYMENT, BATCH_DEPLOYMENT)
# What Prefect's serve overwrites in a deployment of the same name (its upsert through
# ``RunnerDeployment.apply``) and ``update_deployment`` can put back.
_RESTORED = ("paused", "work_pool_name", "work_queue_name", "job_variables", "entrypoint", "path", "pull_steps",
             "parameters", "parameter_openapi_schema", "enforce_parameter_schema", "tags", "version", "description",
             "concurrency_limit", "storage_document_id", "infrastructure_document_id")


def serve(cron: str = DAILY_CRON) -> None:
    """Serve the daily and batch deployments from this process until stopped (Ctrl-C, SIGTERM).

    Prefect's ``serve`` pauses every deployment it served when it stops (``Runner(pause_on_shutdown=True)``,
    its ``_pause_schedules``), also those that `pathways deploy` had made on a work pool and that
    served its workers before: their schedules would never fire again. So Prefect's pause is off
    here; a deployment this process created is paused when it stops (nobody serves it any more),
    and one it found is put back as it was found (paused or not, its work pool, job variables,
    entrypoint and schedules), through Prefect's ``read_deployment_by_name`` and ``update_deployment``.
    The served runs get ``RUN_ENVIRONMENT`` as a work pool's do (through this process's environment)."""
    from prefect import serve as prefect_serve

    os.environ.update(RUN_ENVIRONMENT)
    prefect_edge.configure()
    found = _read_deployments(SERVED)
    try:
        prefect_serve(advance_due.to_deployment(name="daily", cron=cron), advance_enrollments.to_deployment(name="batch"),
                      pause_on_shutdown=False)
    finally:
        leave_as_found(found)


def _read_deployments(names: tuple[str, ...]) -> dict[str, Any]:
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    found: dict[str, Any] = {}
    with get_client(sync_client=True) as client:
        for name in names:
            try:
                found[name] = client.read_deployment_by_name(name)
            except ObjectNotFound:
                found[name] = None
    return found


def leave_as_found(found: dict[str, Any]) -> None:
    """Pause the deployments that did not exist before (as Prefect's serve would); put the others
    back as they were (``found``: name -> Prefect's DeploymentResponse, or None)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import DeploymentScheduleUpdate, DeploymentUpdate
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        for name, before in found.items():
            if before is None:
                try:
                    client.pause_deployment(client.read_deployment_by_name(name).id)
                except ObjectNotFound:
                    pass
                continue
            fields = {key: getattr(before, key) for key in _RESTORED if key in DeploymentUpdate.model_fields}
            fields["schedules"] = [DeploymentScheduleUpdate(schedule=s.schedule, active=s.active, max_scheduled_runs=s.max_scheduled_runs,
                                                            parameters=s.parameters, slug=s.slug) for s in before.schedules]
            client.update_deployment(before.id, DeploymentUpdate(**fields))
