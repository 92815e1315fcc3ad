"""Deployments on a Prefect work pool: the flows' code comes from this installed package's
source folder, so every worker machine needs the same pathways installation (and the same
PATHWAYS_DATABASE_URL, the shared store)."""

from __future__ import annotations

from pathlib import Path

from pathways.orchestration.flows import advance_due, advance_enrollments

SOURCE = Path(__file__).resolve().parents[3]  # the project folder (src/ layout)


def register(pool: str) -> list[str]:
    entry = "src/pathways/orchestration/flows.py"
    names = []
    batch = advance_enrollments.from_source(source=str(SOURCE), entrypoint=f"{entry}:advance_enrollments")
    batch.deploy(name="batch", work_pool_name=pool, job_variables={"env": {"PATHWAYS_SCHEDULE_REVIEWS": "1"}}, print_next_steps=False)
    names.append("pathways-advance/batch")
    daily = advance_due.from_source(source=str(SOURCE), entrypoint=f"{entry}:advance_due")
    daily.deploy(name="daily", work_pool_name=pool, cron="0 6 * * *", job_variables={"env": {"PATHWAYS_SCHEDULE_REVIEWS": "1"}}, print_next_steps=False)
    names.append("pathways-due/daily")
    return names
