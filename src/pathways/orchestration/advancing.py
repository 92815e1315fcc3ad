"""Advancing enrollments with Prefect from a command (`pathways advance`, `run`, the web's
advance, the warm process): the embedded server started (or the one at PREFECT_API_URL reached)
first, one pathway flow run per pathway version (orchestration/flows.py), several side by side
in turn (orchestration/turns.py), stopped cleanly on a signal, then the next reviews scheduled
and the plans made again (orchestration/followup.py).
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections import Counter
from concurrent.futures import Future

from pathways import interrupt
from pathways.errors import PrefectUnavailable
from pathways.orchestration import prefect_edge
from pathways.orchestration.flows import NOT_ADVANCED, pathway_flow, start_workers
from pathways.orchestration.followup import day_clock, replan_for, schedule_reviews
from pathways.orchestration.service import by_version, open_store
from pathways.orchestration.turns import Together, finishing, in_turn

# NOT_ADVANCED: in an advance's result, the enrollments a stopped run left (defined with the flow that counts them)
__all__ = ["NOT_ADVANCED", "advance_pathways_with_prefect", "advance_with_prefect", "start_server"]


def advance_with_prefect(pathway: str, enrollments: list[str], at: dt.date) -> dict[str, int]:
    """Advance enrollments of one pathway in a Prefect flow run (embedded server by default), then
    schedule their next due dates when ``review_deployment`` says so. ``pathway``: the version key
    the enrollments run (given a pathway's name, each is advanced on the version it runs). Stopped
    on request (pathways.interrupt), its result counts the enrollments it left (``NOT_ADVANCED``)."""
    prefect_edge.configure()
    if "@" not in pathway:
        totals: Counter = Counter()
        for counts in advance_pathways_with_prefect(by_version(open_store(day_clock(at.isoformat())), enrollments), at).values():
            totals.update(counts)
        return dict(totals)
    if interrupt.requested():  # stopped before it began: start nothing
        return {NOT_ADVANCED: len(enrollments)}
    try:
        start_workers({pathway: enrollments})
        with prefect_edge.embedded_run_settings():  # (also the server's start-up time limit, read from the environment again)
            start_server()
            kinds = finishing(pathway_flow(pathway), pathway, enrollments, at.isoformat(), len(enrollments))
    except interrupt.Interrupted:  # while the server started: no run was created
        return {NOT_ADVANCED: len(enrollments)}
    if not kinds.get(NOT_ADVANCED):
        schedule_reviews(enrollments)
        replan_for(enrollments, at)
    return kinds


def start_server() -> None:
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
    start_workers(groups)
    from concurrent.futures import ThreadPoolExecutor

    for pathway in groups:
        pathway_flow(pathway)  # load each pathway once, before the threads
    together = Together()
    run = lambda pathway, members: pathway_flow(pathway)(pathway, members, at.isoformat(), len(members))  # noqa: E731

    def side_by_side() -> dict[str, Future]:
        with ThreadPoolExecutor(max_workers=len(groups), thread_name_prefix="pathway-flow") as pool:
            return {pathway: pool.submit(in_turn(together, run, pathway, members)) for pathway, members in groups.items()}

    with prefect_edge.embedded_run_settings():  # the settings once, here (40 ms of CPU each time), in every thread's copy of this context
        try:
            start_server()  # here, once, not from several threads
        except interrupt.Interrupted:  # stopped while the server started: no run was created
            return {pathway: {NOT_ADVANCED: len(members)} for pathway, members in groups.items()}
        futures = finishing(side_by_side)
    results: dict[str, dict[str, int]] = {}
    errors: list[BaseException] = []
    for pathway, future in futures.items():
        try:
            results[pathway] = future.result()
        except Exception as exc:
            errors.append(exc)
    advanced = [e for pathway in results if not results[pathway].get(NOT_ADVANCED) for e in groups[pathway]]
    schedule_reviews(advanced)
    replan_for(advanced, at)  # once per patient, after all their pathways' runs
    if errors:
        raise errors[0]
    return results
