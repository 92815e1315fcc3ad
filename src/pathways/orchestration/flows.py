"""Pathways as Prefect flows (the only package that imports Prefect).

Each pathway version is a flow named ``pathway-<id>`` with the pathway version as the flow
version. One flow run advances a batch of enrollments (a flow run per patient would cost
seconds each); inside it, one task per step in stage order reports that step for the batch:
``Due``, ``Gated`` (a COMPLETED state named Gated, its message the reasons), ``Waiting`` or
``Done``. Escalations start the ``escalation-<id>`` subflow. Parameters, names, logs and the
artifact carry pseudonymous enrollment ids and step ids only; clinical values stay in the store.
"""

from __future__ import annotations

import datetime as dt
import os
from collections import Counter
from functools import lru_cache
from typing import Any

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

from prefect import flow, task  # noqa: E402
from prefect.artifacts import create_markdown_artifact  # noqa: E402
from prefect.states import Completed  # noqa: E402

from pathways.clock import FixedClock  # noqa: E402
from pathways.definition.loader import load_pathway  # noqa: E402
from pathways.orchestration.service import Advanced, Runtimes, advance_one, open_store  # noqa: E402

BATCH = 500


def _clock(at: str) -> FixedClock:
    day = dt.date.fromisoformat(at)
    return FixedClock(dt.datetime(day.year, day.month, day.day, 12, tzinfo=dt.timezone.utc))


@task(name="advance-batch")
def advance_batch(enrollments: list[str], at: str) -> list[dict[str, Any]]:
    """Rules for the whole batch, one store transaction per enrollment."""
    clock = _clock(at)
    store = open_store(clock)
    runtimes = Runtimes()
    results = []
    for enrollment in enrollments:
        advanced: Advanced = advance_one(store, runtimes, enrollment, clock)
        results.append({
            "enrollment": advanced.enrollment,
            "statuses": advanced.statuses,
            "events": [(e.kind, e.step) for e in advanced.events],
        })
    return results


def _step_task(step_id: str, stage: str):
    @task(name=f"{stage}:{step_id}")
    def report(results: list[dict[str, Any]]):
        counts = Counter(r["statuses"].get(step_id, "waiting") for r in results)
        gated = [r["enrollment"] for r in results if r["statuses"].get(step_id) == "gated"]
        summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        if counts.get("escalated"):
            return Completed(name="Escalated", message=summary)
        if counts.get("due"):
            return Completed(name="Due", message=summary)
        if gated:
            return Completed(name="Gated", message=f"{summary}; gated for {', '.join(gated[:20])} (reasons in the store)")
        return Completed(name="Waiting", message=summary)

    return report


@lru_cache(maxsize=None)
def escalation_flow(pathway: str):
    @flow(name=f"escalation-{pathway}", log_prints=False)
    def escalations(enrollments: list[str], steps: list[str]) -> int:
        lines = [f"| {e} | {s} |" for e, s in zip(enrollments, steps)]
        create_markdown_artifact(
            key=f"escalations-{pathway}".replace("_", "-"),
            markdown="| enrollment | escalation step |\n|---|---|\n" + "\n".join(lines),
            description=f"Escalations opened in {pathway}",
        )
        return len(lines)

    return escalations


@lru_cache(maxsize=None)
def pathway_flow(pathway: str):
    """The Prefect flow of one pathway version (cached: one flow object per process)."""
    spec = load_pathway(pathway).spec
    step_tasks = [(s.id, _step_task(s.id, s.stage)) for s in spec.steps]

    @flow(name=f"pathway-{spec.id}", version=spec.version, flow_run_name="{pathway_id}-{at}-n{size}", log_prints=False)
    def run(pathway_id: str, enrollments: list[str], at: str, size: int) -> dict[str, int]:
        results: list[dict[str, Any]] = []
        for start in range(0, len(enrollments), BATCH):
            results += advance_batch(enrollments[start:start + BATCH], at)
        for _, step_task in step_tasks:
            step_task(results, return_state=True)
        escalated = [(r["enrollment"], step) for r in results for kind, step in r["events"] if kind == "escalated"]
        if escalated:
            escalation_flow(spec.id)([e for e, _ in escalated], [s for _, s in escalated])
        kinds = Counter(kind for r in results for kind, _ in r["events"])
        rows = "\n".join(f"| {kind} | {n} |" for kind, n in sorted(kinds.items()))
        create_markdown_artifact(
            key=f"decisions-{spec.id}".replace("_", "-"),
            markdown=f"Advanced {len(results)} enrollments of {spec.id} {spec.version} at {at}.\n\n| decision | count |\n|---|---|\n{rows}\n",
            description="Decisions of this run (details and explanations are in the pathways store)",
        )
        return dict(kinds)

    return run


def advance_with_prefect(pathway: str, enrollments: list[str], at: dt.date) -> dict[str, int]:
    """Advance enrollments of one pathway in a Prefect flow run (embedded server by default)."""
    return pathway_flow(pathway)(pathway, enrollments, at.isoformat(), len(enrollments))
