"""Commands that run care: enroll, advance, status, record, resolve, signoff, resume, run, facts,
patient, serve, deploy, worker, user, web (migrate: cli/versions.py)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from pathways.cli import ui
from pathways.cli.common import _clock, _enrollment_or_fail, _one_patient_file, _parse_date, _patient_files, _reevaluate, _report_failed, _require, _stopped, _store_or_fail, _today, _until_stopped, _version_labels, _versions_or_fail
from pathways.cli.ui import fail, fail_all, fail_with_problems
from pathways.errors import ProblemsFound


def enroll(
    patient: Annotated[str, typer.Argument(help="Pseudonymous patient id (never a name or BSN)")],
    pathway: Annotated[str, typer.Option("--pathway", help="Pathway name")],
    facts: Annotated[Optional[Path], typer.Option("--facts", help="Patient facts JSON (leave out for a patient the store knows)")] = None,
    fhir: Annotated[Optional[Path], typer.Option("--fhir", help="FHIR R4 Bundle or resource")] = None,
    from_stage: Annotated[Optional[str], typer.Option("--from", help="Start part-way, at this stage: the steps of the stages before it are marked done before the enrollment (a patient known for years)")] = None,
) -> None:
    """Store a patient's facts and enrol them in a pathway (stored in PATHWAYS_DATABASE_URL).
    A patient enrolled already gets what is new in the file (nothing is stored twice); a patient
    the store knows (in another pathway) can be enrolled on the facts stored, without a file."""
    _require("enrollment.write", f"enrol {patient} in {pathway}", patient)
    import re

    from pathways.facts.load import PatientFileError
    from pathways.orchestration.service import EnrolledInOtherVersion, Runtimes, UnknownPatient, enroll_file, enroll_known
    from pathways.orchestration.versions import DraftPathway

    from pathways.definition.model import STAGES

    if facts is not None and fhir is not None:
        _one_patient_file(facts, fhir)
    if not re.fullmatch(r"[A-Za-z0-9._:-]{1,128}", patient):
        fail(f"error: '{patient}' is not a pseudonymous id: use letters, digits and . _ : - only")
    if from_stage is not None and from_stage not in STAGES[:-1]:
        fail(f"error: --from '{from_stage}' is not a stage to start from: one of {', '.join(STAGES[:-1])}", code=2)
    clock = _clock()
    store = _store_or_fail(clock)
    try:
        runtimes = Runtimes()
        runtimes.get(pathway)
        if facts is None and fhir is None:
            enrolled = enroll_known(store, runtimes, pathway, patient, clock, from_stage)
        else:
            enrolled = enroll_file(store, runtimes, pathway, facts or fhir, clock, patient, from_stage)
    except UnknownPatient as exc:
        fail(f"error: {exc}; not enrolled")
    except ProblemsFound as exc:
        fail_with_problems(exc.problems)
    except (DraftPathway, EnrolledInOtherVersion) as exc:
        fail(f"error: {exc}; {patient} not enrolled")
    except PatientFileError as exc:
        fail_all([f"error: {problem}" for problem in exc.problems])
    verb = "enrolled" if enrolled.created else "already enrolled"
    start = f", from stage {from_stage}" if from_stage and enrolled.created else ""
    ui.out.print(f"{verb}: {enrolled.enrollment} (patient {enrolled.patient}, {pathway}{start}); "
              f"facts: {enrolled.facts_added} added, {enrolled.facts_known} already known", markup=False)
    if from_stage and not enrolled.created:
        ui.err.print(f"note: --from {from_stage} applies to a new enrollment only; {enrolled.enrollment} is unchanged", markup=False)


def advance(
    enrollment: Annotated[Optional[str], typer.Argument(help="Enrollment id")] = None,
    due: Annotated[bool, typer.Option("--due", help="Advance every enrollment that has come due")] = False,
    at: Annotated[Optional[str], typer.Option("--at", help="Date YYYY-MM-DD (default: today)")] = None,
) -> None:
    """Advance enrollments in a Prefect flow run (embedded server unless PREFECT_API_URL is set)."""
    _require("enrollment.write", "advance enrollments", enrollment)
    from pathways.orchestration.service import at_clock
    from pathways.runtime.core import BackInTime, not_back_in_time
    from pathways.store.db import UnknownEnrollment

    if (enrollment is None) == (not due):
        fail("error: give an ENROLLMENT or --due", code=2)
    clock = at_clock(_clock(), _parse_date(at, "--at"))
    store = _store_or_fail(clock)
    if enrollment:
        try:
            state, _ = store.load(enrollment)
        except UnknownEnrollment as exc:
            fail(f"error: {exc}")
        try:
            not_back_in_time(state, clock.today())
        except BackInTime as exc:
            fail(f"error: {enrollment} was advanced to {exc.as_of} already: it cannot go back to {exc.at} "
                 f"(give --at {exc.as_of} or later; nothing was run)")
        groups = {state.version_key: [enrollment]}
    else:
        groups = store.due_by_version(clock.today())  # each enrollment runs the version it was enrolled in
    if not groups:
        ui.out.print(f"nothing due on {clock.today()}", markup=False)
        return
    _versions_or_fail(store, groups)
    from pathways.orchestration.advancing import NOT_ADVANCED, advance_pathways_with_prefect

    labels = _version_labels(groups)
    for key, kinds in advance_pathways_with_prefect(groups, clock.today()).items():  # pathway versions side by side
        left = kinds.pop(NOT_ADVANCED, 0)  # stopped on request (Ctrl-C, SIGTERM): the next run advances them
        summary = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "no new decisions"
        count = len(groups[key])
        advanced = f"{count - left} of {count} enrollment(s) on {clock.today()} ({left} not yet: stopped)" if left else f"{count} enrollment(s) on {clock.today()}"
        ui.out.print(f"{labels[key]}: advanced {advanced}: {summary}", markup=False)


def status(enrollment: Annotated[str, typer.Argument(help="Enrollment id")]) -> None:
    """Where an enrollment stands: steps, due dates, open escalations, goals."""
    _require("enrollment.read", f"read the status of {enrollment}", enrollment)
    from rich.table import Table

    from pathways.store.db import UnknownEnrollment

    store = _store_or_fail(_clock())
    try:
        state, version = store.load(enrollment)
    except UnknownEnrollment as exc:
        fail(f"error: {exc}")
    ui.out.print(f"{state.enrollment}: patient {state.patient}, {state.pathway} {state.version}, enrolled {state.enrolled_on}, as of {state.as_of} (state v{version})", markup=False)
    table = Table(title="Steps", title_justify="left")
    for column in ("step", "status", "due on", "done on", "reasons"):
        table.add_column(column)
    for step, progress in state.steps.items():
        shown_status = "done" if progress.status == "finished" and progress.done_on else progress.status
        table.add_row(step, shown_status, str(progress.due_on or ""), ", ".join(str(d) for d in progress.done_on), "\n".join(progress.reasons[-2:]).replace("[", "\\["))
    ui.out.print(table)
    for step, escalation in state.escalations.items():
        ui.out.print(f"open escalation {step}: {escalation.severity}, {escalation.action} since {escalation.since}", markup=False)
    for step, episode in state.closed_escalations.items():
        if step in state.escalations:
            continue
        still = "its trigger has stopped holding since" if episode.recovered else "its trigger still holds"
        ui.out.print(f"closed escalation {step}: opened {episode.opened}, {episode.how} on {episode.closed} ({still})", markup=False)
    for goal, progress in state.goals.items():
        shown_status = progress.status.replace("_", " ")
        ui.out.print(f"goal {goal}: {progress.fact} {progress.target} by {progress.deadline} - {shown_status} (baseline {progress.baseline}, latest {progress.latest})", markup=False)


def record(
    enrollment: Annotated[str, typer.Argument(help="Enrollment id")],
    step: Annotated[str, typer.Argument(help="Step id")],
    data: Annotated[Path, typer.Option("--data", help="JSON object: output fact -> value (or {value, unit})")],
    at: Annotated[Optional[str], typer.Option("--at", help="Date YYYY-MM-DD (default: today)")] = None,
) -> None:
    """Record a step done with the outputs people recorded; validated against the step."""
    _require("input.record", f"record step {step} of {enrollment}", enrollment)
    from pathways.facts.jsonread import MAX_DATA_BYTES, JsonFileError, read_json
    from pathways.orchestration.service import Runtimes, at_clock, record_step
    from pathways.orchestration.versions import VersionNotPublished
    from pathways.runtime.core import RecordError
    from pathways.store.db import UnknownEnrollment

    try:
        values = read_json(data, MAX_DATA_BYTES, "the values of one step")
    except JsonFileError as exc:
        fail(f"error: {exc}")
    if not isinstance(values, dict):
        fail(f"error: {data}: expected a JSON object of output fact -> value")
    clock = at_clock(_clock(), _parse_date(at, "--at"))
    store = _store_or_fail(clock)
    try:
        events = record_step(store, Runtimes(), enrollment, step, values, clock, today=_today())
    except (RecordError,) as exc:
        fail_all([f"error: {data}: {problem}" for problem in exc.problems])
    except (UnknownEnrollment, VersionNotPublished) as exc:  # its version: from the trail
        fail(f"error: {exc}")
    recorded = [e for e in events if e.kind in ("done", "goal_agreed") and e.step == step]
    then = [e for e in events if e not in recorded]
    ui.out.print(f"recorded {step} for {enrollment}: " + ", ".join(f"{e.kind} {e.step or ''}".strip() for e in recorded), markup=False)
    if then:
        ui.out.print("then: " + ", ".join(f"{e.kind} {e.step or ''}".strip() for e in then), markup=False)


def resolve(
    enrollment: Annotated[str, typer.Argument(help="Enrollment id")],
    step: Annotated[str, typer.Argument(help="An open escalation step, e.g. verwijzing_nefroloog")],
    reason: Annotated[str, typer.Option("--reason", help="Why it is closed without doing the step (kept in the store's audit trail, never in Prefect)")],
    at: Annotated[Optional[str], typer.Option("--at", help="Date YYYY-MM-DD (default: today)")] = None,
) -> None:
    """Close an open escalation for a documented reason (e.g. the huisarts judged a referral not
    needed). It opens again only when its trigger newly holds after the patient recovered, or after
    the escalation's reopen_after interval."""
    _require("input.record", f"resolve escalation {step} of {enrollment}", enrollment)
    from pathways.orchestration.service import Runtimes, at_clock, resolve_escalation
    from pathways.orchestration.versions import VersionNotPublished
    from pathways.runtime.core import RecordError
    from pathways.store.db import UnknownEnrollment

    clock = at_clock(_clock(), _parse_date(at, "--at"))
    if clock.today() > _today():
        fail(f"error: --at {clock.today()} is in the future (today is {_today()})")
    store = _store_or_fail(clock)
    try:
        resolve_escalation(store, Runtimes(), enrollment, step, reason, clock)
    except RecordError as exc:
        fail_all([f"error: {problem}" for problem in exc.problems])
    except (UnknownEnrollment, VersionNotPublished) as exc:
        fail(f"error: {exc}")
    ui.out.print(f"resolved {step} for {enrollment} on {clock.today()}", markup=False)


def signoff(
    enrollment: Annotated[str, typer.Argument(help="Enrollment id")],
    step: Annotated[str, typer.Argument(help="An open escalation step, e.g. verwijzing_nefroloog")],
    timeout: Annotated[int, typer.Option("--timeout", min=1, help="Seconds to wait for the sign-off")] = 3600,
) -> None:
    """Wait inside a Prefect flow run (paused, with typed input) for the sign-off of an open
    escalation; resume it in Prefect's UI or with `pathways resume`. Needs a Prefect server
    (PREFECT_API_URL) for someone else to resume it; otherwise use `pathways record`."""
    _require("input.record", f"wait for the sign-off of {step} for {enrollment}", enrollment)
    store = _store_or_fail(_clock())
    state = _enrollment_or_fail(store, enrollment)
    if step not in state.escalations:
        fail(f"error: '{step}' is not an open escalation of {enrollment} (open: {', '.join(sorted(state.escalations)) or 'none'})")
    from pathways.orchestration import prefect_edge
    from pathways.orchestration.flows import signoff as signoff_flow

    prefect_edge.configure()
    outcome = signoff_flow(enrollment, step, timeout)
    ui.out.print(f"{step} for {enrollment}: {outcome}", markup=False)


def resume(
    flow_run: Annotated[str, typer.Argument(help="The id of the paused pathways-signoff flow run")],
    by: Annotated[str, typer.Option("--by", help="Staff id of who signs off")],
    outcome: Annotated[str, typer.Option("--outcome", help="akkoord or 'niet akkoord'")],
) -> None:
    """Give a waiting sign-off its answer (the same as Prefect's UI form)."""
    import re
    import uuid

    _require("input.record", f"sign off flow run {flow_run}", flow_run)
    if outcome not in ("akkoord", "niet akkoord"):
        fail(f"error: --outcome '{outcome}': use akkoord or 'niet akkoord'", code=2)
    if not re.fullmatch(r"[A-Za-z0-9._@-]{1,64}", by):
        fail(f"error: --by '{by}' is not a staff id: letters, digits and . _ @ - only (never a patient's name)", code=2)
    try:
        run_id = uuid.UUID(flow_run)
    except ValueError:
        fail(f"error: '{flow_run}' is not a flow-run id", code=2)
    from prefect import resume_flow_run

    from pathways.orchestration import prefect_edge

    prefect_edge.configure()
    resume_flow_run(run_id, run_input={"signed_off_by": by, "outcome": outcome})
    ui.out.print(f"resumed {flow_run}: {outcome} by {by}", markup=False)


def run(
    name: Annotated[str, typer.Argument(help="Pathway name")],
    cohort: Annotated[Path, typer.Option("--cohort", help="Folder of patient files (FHIR bundles or facts JSON)")],
    at: Annotated[Optional[str], typer.Option("--at", help="Date YYYY-MM-DD (default: today)")] = None,
) -> None:
    """Enrol every patient file in a folder and advance them all in one Prefect flow run. Patients
    enrolled already get what is new in their files (a later export, a bulk-data delta) and are
    advanced with the others."""
    _require("enrollment.write", f"run a cohort of {name}", name)
    from rich.progress import Progress
    from rich.table import Table

    from pathways.facts.load import PatientFileError
    from pathways.facts.cohort import read_cohort
    from pathways.orchestration.service import EnrolledInOtherVersion, Runtimes, UnusableValues, at_clock, enroll_patient

    clock = at_clock(_clock(), _parse_date(at, "--at"))
    files = _patient_files(cohort)
    store = _store_or_fail(clock)
    runtimes = Runtimes()
    try:
        from pathways.orchestration.service import refuse_draft
        from pathways.orchestration.versions import DraftPathway

        refuse_draft(store, runtimes.get(name))
    except ProblemsFound as exc:
        fail_with_problems(exc.problems)
    except DraftPathway as exc:
        fail(f"error: {exc}; nothing enrolled")
    enrolled, known, failed = [], [], []
    unreadable = refused = added = repeated = 0  # files (or a bulk export) that could not be read; patients read but not enrolled
    with Progress(console=ui.err, transient=True) as progress:
        job = progress.add_task(f"enrolling from {len(files)} files", total=None)
        for label, patient, source in _until_stopped(read_cohort(files)):
            if isinstance(patient, PatientFileError):
                failed.append((label, "; ".join(patient.problems)))
                unreadable += 1
            else:
                try:
                    result = enroll_patient(store, runtimes, name, patient, source, clock)
                except (UnusableValues, EnrolledInOtherVersion) as exc:
                    failed.append((label, f"{exc}; not enrolled"))
                    refused += 1
                else:
                    (enrolled if result.created else known).append(result.enrollment)
                    added, repeated = added + result.facts_added, repeated + result.facts_known
            progress.advance(job)
    kinds, left = {}, 0
    states = store.load_many(known) if known else {}
    ahead = [e for e in known if states[e][0].as_of > clock.today()]  # advanced past this day already: left as they are
    advancing = enrolled + [e for e in known if e not in ahead]
    if advancing:
        from collections import Counter

        from pathways.orchestration.advancing import NOT_ADVANCED, advance_pathways_with_prefect
        from pathways.orchestration.service import by_version

        groups = by_version(store, advancing)  # patients enrolled before keep the version they were enrolled in
        _versions_or_fail(store, groups)
        kinds = Counter()
        for counts in advance_pathways_with_prefect(groups, clock.today()).values():
            kinds.update(counts)
        left = kinds.pop(NOT_ADVANCED, 0)  # stopped on request: the next run advances them
    table = Table(title=f"{name}: cohort {cohort} on {clock.today()}", title_justify="left")
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_row("patient files", str(len(files)))
    table.add_row("could not be read", str(unreadable))
    table.add_row("patients read", str(len(enrolled) + refused))
    table.add_row("refused (unusable values)", str(refused))
    table.add_row("enrolled and advanced", str(len(enrolled) - min(left, len(enrolled))))
    table.add_row("already enrolled, advanced", str(len(advancing) - len(enrolled) - max(0, left - len(enrolled))))
    if ahead:
        table.add_row(f"already enrolled, past {clock.today()} (not advanced)", str(len(ahead)))
    if _stopped():
        table.add_row("enrolled, not advanced yet (stopped)", str(left))
    table.add_row("facts added", str(added))
    table.add_row("facts already known", str(repeated))
    table.add_row("failed (not enrolled)", str(len(failed)))
    for kind, n in sorted(kinds.items()):
        table.add_row(f"decisions: {kind}", str(n))
    ui.out.print(table)
    _report_failed(failed)


facts_app = typer.Typer(help="A known patient's facts: add new lab results and observations.", no_args_is_help=True)


@facts_app.command("add")
def facts_add(
    patient: Annotated[str, typer.Argument(help="Pseudonymous patient id")],
    facts: Annotated[Optional[Path], typer.Option("--facts", help="Patient facts JSON")] = None,
    fhir: Annotated[Optional[Path], typer.Option("--fhir", help="FHIR R4 Bundle or resource, or a bulk-data .ndjson file of this patient")] = None,
    at: Annotated[Optional[str], typer.Option("--at", help="Re-evaluate on this date YYYY-MM-DD (default: today)")] = None,
    enroll_in: Annotated[Optional[str], typer.Option("--enroll", help="Enrol the patient in this pathway if not known yet")] = None,
) -> None:
    """Add what is new in a file to a known patient (the same file twice adds nothing), then
    re-evaluate every enrollment of the patient at once in a Prefect flow run: an urgent value
    escalates in this command, audited with the facts that triggered it."""
    _require("enrollment.write", f"add facts for {patient}", patient)
    import re

    from pathways.facts.load import PatientFileError, load_bulk_export, load_patient_file
    from pathways.orchestration.newfacts import FactsRefused, add_facts
    from pathways.orchestration.service import Runtimes, UnusableValues, at_clock, enroll_patient
    from pathways.orchestration.versions import DraftPathway

    path = _one_patient_file(facts, fhir)
    if not re.fullmatch(r"[A-Za-z0-9._:-]{1,128}", patient):
        fail(f"error: '{patient}' is not a pseudonymous id: use letters, digits and . _ : - only", code=2)
    clock = at_clock(_clock(), _parse_date(at, "--at"))
    if clock.today() > _today():
        fail(f"error: --at {clock.today()} is in the future (today is {_today()})")
    try:
        if path.name.lower().endswith(".ndjson"):
            found = load_bulk_export([path])
            if len(found) != 1:
                fail(f"error: {path}: holds {len(found)} patients; give one patient's file, or add a bulk-data delta "
                          f"with `pathways run PATHWAY --cohort FOLDER`")
            read = found[0][1]
            if isinstance(read, PatientFileError):
                raise read
        else:
            read = load_patient_file(path)
    except PatientFileError as exc:
        fail_all([f"error: {problem}" for problem in exc.problems])
    store = _store_or_fail(clock)
    runtimes = Runtimes()
    source = f"file:{path.name}"
    try:
        if enroll_in is not None and not store.has_patient(patient):
            runtimes.get(enroll_in)
            enrolled = enroll_patient(store, runtimes, enroll_in, read, source, clock, patient)
            ui.out.print(f"enrolled: {enrolled.enrollment} (patient {patient}, {enroll_in}); facts: {enrolled.facts_added} added", markup=False)
            added, groups = enrolled.facts_added, {enroll_in: [enrolled.enrollment]}
        else:
            result = add_facts(store, runtimes, patient, read.facts, read.identity, source, clock, str(path), today=_today())
            ui.out.print(f"facts for {patient} from {path.name}: {result.added} added, {result.known} already known", markup=False)
            added, groups = result.added, result.enrollments
    except ProblemsFound as exc:
        fail_with_problems(exc.problems)
    except (FactsRefused, UnusableValues) as exc:
        fail_all([f"error: {problem}" for problem in exc.problems])
    except (DraftPathway, EnrolledInOtherVersion) as exc:
        fail(f"error: {exc}; {patient} not enrolled")
    if not added:
        ui.out.print("nothing new: the enrollments stand as they were", markup=False)
        return
    _reevaluate(store, groups, clock.today())


def serve(
    cron: Annotated[str, typer.Option("--cron", help="When the daily due run starts (cron, UTC)")] = "0 6 * * *",
) -> None:
    """Create the deployments (daily `pathways-due`, on-demand `pathways-advance`) and serve them
    from this process; reviews become scheduled flow runs. Needs PREFECT_API_URL for a server.
    When it stops, deployments it found (made by `pathways deploy`) are left as they were."""
    _require("enrollment.write", "serve the deployments")
    from pathways.orchestration.deploy import DeployError, check_cron, serve as serve_deployments

    try:
        check_cron(cron)
    except DeployError as exc:
        fail(f"error: {exc}", code=2)
    serve_deployments(cron)  # its flow runs schedule next reviews (deploy.RUN_ENVIRONMENT)


def deploy(
    pool: Annotated[str, typer.Option("--pool", help="Prefect work pool (type process; created if the server has none of that name)")] = "pathways",
    cron: Annotated[str, typer.Option("--cron", help="When the daily due run starts (cron, UTC)")] = "0 6 * * *",
) -> None:
    """Register the deployments on a work pool, for `pathways worker` processes on any machine."""
    _require("enrollment.write", "register deployments")
    from pathways.orchestration.deploy import DeployError, check_cron, ensure_pool, register, server_problem

    try:
        check_cron(cron)
    except DeployError as exc:
        fail(f"error: {exc}", code=2)
    try:
        if ensure_pool(pool):
            ui.out.print(f"created work pool {pool} (type process): start workers with `pathways worker --pool {pool}`", markup=False)
        names = register(pool, cron)
    except DeployError as exc:
        fail(f"error: {exc}")
    except Exception as exc:
        problem = server_problem(exc)
        if problem is None:
            raise
        fail(f"error: {problem}")
    for name in names:
        ui.out.print(f"deployment {name} on work pool {pool}", markup=False)
    ui.out.print(f"{names[-1]} runs at cron '{cron}' (UTC)", markup=False)


def worker(
    pool: Annotated[str, typer.Option("--pool", help="Prefect work pool")] = "pathways",
    limit: Annotated[int, typer.Option("--limit", help="Flow runs at once")] = 2,
) -> None:
    """Start a Prefect worker for the pathways work pool (runs flow runs in subprocesses)."""
    _require("enrollment.write", "start a worker")
    import os
    import shutil
    import sys

    prefect = shutil.which("prefect", path=os.path.dirname(sys.executable)) or shutil.which("prefect")
    os.execvp(prefect, [prefect, "worker", "start", "--pool", pool, "--type", "process", "--limit", str(limit)])


def patient(pid: Annotated[str, typer.Argument(metavar="PATIENT", help="Pseudonymous patient id")]) -> None:
    """A patient's enrollments and the identifying data kept apart (name, birth date, BSN as a
    keyed hash). Not for coordinators; every refusal is audited."""
    _require("identity.read", f"read identifying data of patient {pid}", pid)
    store = _store_or_fail(_clock())
    found = store.patient_record(pid)
    if found is None:
        fail(f"error: unknown patient '{pid}'")
    identity, enrollments = found
    ui.out.print(f"patient {pid}", markup=False)
    if identity is None:
        ui.out.print("  no identifying data stored", markup=False)
    else:
        ui.out.print(f"  name: {identity['name'] or '-'}; birth date: {identity['birth_date'] or '-'}; "
                     f"BSN: {'HMAC ' + identity['bsn_hmac'][:16] + '...' if identity['bsn_hmac'] else (identity['bsn'] or '-')}", markup=False)
    for e in enrollments:
        ui.out.print(f"  enrollment {e['id']}: {e['pathway']} {e['version']}, enrolled {e['enrolled_on']}, as of {e['as_of']}", markup=False)


user_app = typer.Typer(help="Web application accounts.", no_args_is_help=True)


@user_app.command("add")
def user_add(
    name: Annotated[str, typer.Argument(help="Account name (letters, digits, . _ @ -)")],
    role: Annotated[str, typer.Option("--role", help="coordinator, scheduler, auditor or admin")],
) -> None:
    """Add a web account. The password is typed twice at a terminal, or read as one line from
    standard input when that is not a terminal. Admins only."""
    import getpass

    from pathways.orchestration.accounts import AccountError, AccountExists, MIN_PASSWORD, add_user

    actor = _require("account.manage", f"add the web account {name}", name)
    if sys.stdin.isatty():
        password = getpass.getpass(f"password for {name} (at least {MIN_PASSWORD} characters): ")
        if getpass.getpass("the same password again: ") != password:
            fail("error: the two passwords differ; nothing changed")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    store = _store_or_fail(_clock())
    try:
        add_user(store, name, role, password)
    except (AccountError, AccountExists) as exc:
        fail(f"error: {exc}")
    ui.out.print(f"added web account {name} ({role}) by {actor.user}", markup=False)


def web(
    host: Annotated[str, typer.Option("--host", help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on")] = 8000,
) -> None:
    """Start the web application on the configured store (PATHWAYS_DATABASE_URL); log in with an
    account made by `pathways user add`."""
    import uvicorn

    from pathways.store.db import StoreError

    _store_or_fail(_clock())  # an unreachable store stops here, with its message, before anything listens
    try:  # by name: the command line does not import the web package (import-linter layers)
        uvicorn.run("pathways.web.app:from_environment", factory=True, host=host, port=port, log_level="info",
                    server_header=False)
    except StoreError as exc:
        ui.err.print(f"error: {exc}", markup=False)
