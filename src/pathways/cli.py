"""The `pathways` command. Thin: each command calls the library and prints.

Exit codes: 0 success; 1 problems in the input (listed as file:line:col: CODE message (hint));
2 wrong usage of the command itself. Commands that do not orchestrate never import Prefect.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from pathways.errors import Problem, ProblemsFound, errors

app = typer.Typer(
    name="pathways",
    help="Personal care pathways (persoonlijke zorgtrajecten): author, validate, show and run them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def _print_problems(problems: list[Problem]) -> None:
    for problem in problems:
        err.print(str(problem), markup=False)


def _fail(problems: list[Problem]) -> None:
    _print_problems(problems)
    failing = errors(problems)
    noun = "problem" if len(failing) == 1 else "problems"
    warned = len(problems) - len(failing)
    also = f", {warned} warning{'s' if warned > 1 else ''}" if warned else ""
    err.print(f"{len(failing)} {noun} found{also}", markup=False)
    raise typer.Exit(1)


@app.command()
def validate(
    paths: Annotated[Optional[list[str]], typer.Argument(help="Pathway names, files or folders (default: ./pathways)")] = None,
) -> None:
    """Check pathway, shared library and cases files, and each folder's cross-pathway interaction
    library (_shared/interactions.yaml); report every problem as file:line:col."""
    from pathways.rules.casefile import validate_with_cases

    result = validate_with_cases(paths or ["pathways"])
    if errors(result.problems):
        _fail(result.problems)
    _print_problems(result.problems)  # only warnings are left: shown, but the files are valid
    steps = sum(len(d.model.steps) for d in result.pathways)
    names = ", ".join(f"{d.model.id} {d.model.version}" for d in result.pathways) or "none"
    out.print(
        f"ok: {result.files} files{f' ({len(result.cases)} of them cases)' if result.cases else ''}, {len(result.pathways)} pathways ({names}), "
        f"{len(result.libraries)} shared libraries, {steps} steps"
        + (f", {result.interaction_rules} interaction rules" if result.interaction_rules else ""),
        markup=False,
    )


@app.command()
def show(name: Annotated[str, typer.Argument(help="Pathway name (e.g. diabetes) or path")]) -> None:
    """Stages, steps, gates and disciplines of a pathway as a readable table."""
    from pathways.definition.loader import load_pathway
    from pathways.views.show import render_show

    try:
        loaded = load_pathway(name)
    except ProblemsFound as exc:
        _fail(exc.problems)
    render_show(loaded, out)


@app.command()
def diagram(
    name: Annotated[str, typer.Argument(help="Pathway name (e.g. diabetes) or path")],
    html: Annotated[Optional[Path], typer.Option("--html", help="Also write a self-contained page that renders the diagram offline")] = None,
) -> None:
    """Print the pathway as a Mermaid flowchart; --html OUT writes an offline page."""
    from pathways.definition.loader import load_pathway
    from pathways.views.diagram import DiagramError, mermaid, write_html

    try:
        loaded = load_pathway(name)
    except ProblemsFound as exc:
        _fail(exc.problems)
    text = mermaid(loaded)
    if html is None:
        out.print(text, markup=False)
        return
    try:
        write_html(loaded, text, html)
    except DiagramError as exc:
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(1)
    out.print(f"wrote {html}", markup=False)


def _one_patient_file(facts: Optional[Path], fhir: Optional[Path]) -> Path:
    if (facts is None) == (fhir is None):
        err.print("error: give exactly one of --facts FILE.json or --fhir BUNDLE", markup=False)
        raise typer.Exit(2)
    return facts or fhir


def _today():
    import os

    from pathways.clock import clock_from_environment

    return clock_from_environment(dict(os.environ)).today()


def _parse_date(text: str | None, what: str):
    import datetime as dt

    if text is None:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        err.print(f"error: {what} '{text}' is not a date; write YYYY-MM-DD", markup=False)
        raise typer.Exit(1)


@app.command()
def evaluate(
    name: Annotated[str, typer.Argument(help="Pathway name (e.g. diabetes) or path")],
    facts: Annotated[Optional[Path], typer.Option("--facts", help="Patient facts JSON")] = None,
    fhir: Annotated[Optional[Path], typer.Option("--fhir", help="FHIR R4 Bundle or resource (.json, .json.gz, .xml)")] = None,
    at: Annotated[Optional[str], typer.Option("--at", help="Evaluation date YYYY-MM-DD (default: today)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also list input codes no fact uses, and import notes")] = False,
) -> None:
    """Evaluate every gate, eligibility rule and escalation at a date; runs and stores nothing."""
    import json

    from pathways.definition.loader import load_pathway
    from pathways.facts.load import PatientFileError, load_facts_json, load_fhir_file
    from pathways.rules.evaluate import PathwayEvaluator

    _one_patient_file(facts, fhir)
    today = _today()
    when = _parse_date(at, "--at") or today
    if when > today:
        err.print(f"error: --at {when} is in the future (today is {today})", markup=False)
        raise typer.Exit(1)
    try:
        loaded = load_pathway(name)
    except ProblemsFound as exc:
        _fail(exc.problems)
    path = facts or fhir
    try:
        patient = load_facts_json(path) if facts is not None else load_fhir_file(path)
    except PatientFileError as exc:  # the parts that parsed are checked against the pathway too
        from pathways.facts.problems import every_problem

        problems = every_problem(path, exc.schema, exc.partial, loaded.facts, today) if exc.schema else exc.problems
        for problem in problems:
            err.print(f"error: {problem}", markup=False)
        err.print(f"{len(problems)} problem{'s' if len(problems) > 1 else ''} in the patient file; nothing evaluated", markup=False)
        raise typer.Exit(1)
    evaluator = PathwayEvaluator(loaded)
    result = evaluator.evaluate(patient.facts, when, today)
    errors = [i for i in result.issues if not i.excluded]
    if errors:
        for issue in errors:
            err.print(f"error: {path}: {issue}", markup=False)
        err.print(f"{len(errors)} problem{'s' if len(errors) > 1 else ''} in the patient file; nothing evaluated", markup=False)
        raise typer.Exit(1)
    for issue in result.issues:
        err.print(f"warning: {path}: {issue}", markup=False)
    if result.unmapped_codes:
        err.print(f"note: {len(result.unmapped_codes)} coded entries in {path} are used by no fact of {loaded.spec.id} (--verbose lists them)", markup=False)
        if verbose:
            for line in result.unmapped_codes:
                err.print(f"  {line}", markup=False)
    if verbose:
        for note in patient.notes:
            err.print(f"note: {note}", markup=False)
    if as_json:
        out.print(json.dumps(result.to_json(), ensure_ascii=False, indent=2), markup=False)
        return
    from pathways.views.evaluation import render_evaluation

    render_evaluation(result, out, patient.facts.patient)


@app.command()
def check(
    names: Annotated[Optional[list[str]], typer.Argument(help="Pathway names (default: every pathway with a cases.yaml)")] = None,
) -> None:
    """Run each pathway's assurance cases (cases.yaml) and report threshold coverage."""
    from rich.table import Table

    from pathways.definition.loader import available_pathways, find_pathway, load_pathway
    from pathways.rules.cases import load_cases, run_cases

    today = _today()
    chosen = names or [n for n, f in available_pathways().items() if (f.parent / "cases.yaml").is_file()]
    failed = False
    for name in chosen:
        try:
            loaded = load_pathway(name)
            cases_file = find_pathway(name).parent / "cases.yaml"
            if not cases_file.is_file():
                err.print(f"{cases_file}: no cases for {name}", markup=False)
                failed = True
                continue
            cases = load_cases(cases_file)
        except ProblemsFound as exc:
            _print_problems(exc.problems)
            failed = True
            continue
        report = run_cases(loaded, cases, today)
        table = Table(title=f"{name}: {len(report.results)} cases", title_justify="left", expand=True)
        table.add_column("case", no_wrap=True)
        table.add_column("result", no_wrap=True)
        table.add_column("details", ratio=1, overflow="fold")
        for result in report.results:
            ok = not result.failures
            table.add_row(result.case.id, "[green]pass[/green]" if ok else "[red]FAIL[/red]", result.case.description.replace("[", "\\["))
        out.print(table)
        for result in report.failed:
            for failure in result.failures:
                out.print(f"FAIL {loaded.spec.id}/{result.case.id}: {failure}", markup=False)
        for line in report.uncovered:
            out.print(f"uncovered threshold: {line}", markup=False)
        passed = len(report.results) - len(report.failed)
        out.print(f"{name}: {passed} passed, {len(report.failed)} failed; {len(report.uncovered)} threshold sides not covered", markup=False)
        failed = failed or bool(report.failed) or bool(report.uncovered)
    if not names:
        failed = _check_plans() or failed
    if failed:
        raise typer.Exit(1)


def _check_plans() -> bool:
    """The combined-plan cases (`_shared/plan-cases.yaml` of the first pathway folder that has
    one), reported like a pathway's cases; True when something failed."""
    from rich.table import Table

    from pathways.definition.loader import pathway_roots
    from pathways.runtime.plan_cases import check_plan_cases, plan_cases_file

    file = next((f for f in map(plan_cases_file, pathway_roots()) if f is not None), None)
    if file is None:
        return False
    try:
        report = check_plan_cases(file)
    except ProblemsFound as exc:
        _print_problems(exc.problems)
        return True
    table = Table(title=f"combined plans: {len(report.results)} cases", title_justify="left", expand=True)
    table.add_column("case", no_wrap=True)
    table.add_column("result", no_wrap=True)
    table.add_column("details", ratio=1, overflow="fold")
    for result in report.results:
        ok = not result.failures
        table.add_row(result.case.id, "[green]pass[/green]" if ok else "[red]FAIL[/red]", result.case.description.replace("[", "\\["))
    out.print(table)
    for result in report.failed:
        for failure in result.failures:
            out.print(f"FAIL plans/{result.case.id}: {failure}", markup=False)
    for line in report.uncovered:
        out.print(f"uncovered threshold: {line}", markup=False)
    passed = len(report.results) - len(report.failed)
    out.print(f"combined plans: {passed} passed, {len(report.failed)} failed; {len(report.uncovered)} threshold sides not covered",
              markup=False)
    return bool(report.failed) or bool(report.uncovered)


def _clock():
    import os

    from pathways.clock import clock_from_environment

    return clock_from_environment(dict(os.environ))


def _store_or_fail(clock):
    from pathways.orchestration.service import open_store
    from pathways.store.db import StoreError

    try:
        return open_store(clock)
    except StoreError as exc:
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(1)


@app.command()
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
        err.print(f"error: '{patient}' is not a pseudonymous id: use letters, digits and . _ : - only", markup=False)
        raise typer.Exit(1)
    if from_stage is not None and from_stage not in STAGES[:-1]:
        err.print(f"error: --from '{from_stage}' is not a stage to start from: one of {', '.join(STAGES[:-1])}", markup=False)
        raise typer.Exit(2)
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
        err.print(f"error: {exc}; not enrolled", markup=False)
        raise typer.Exit(1)
    except ProblemsFound as exc:
        _fail(exc.problems)
    except (DraftPathway, EnrolledInOtherVersion) as exc:
        err.print(f"error: {exc}; {patient} not enrolled", markup=False)
        raise typer.Exit(1)
    except PatientFileError as exc:
        for problem in exc.problems:
            err.print(f"error: {problem}", markup=False)
        raise typer.Exit(1)
    verb = "enrolled" if enrolled.created else "already enrolled"
    start = f", from stage {from_stage}" if from_stage and enrolled.created else ""
    out.print(f"{verb}: {enrolled.enrollment} (patient {enrolled.patient}, {pathway}{start}); "
              f"facts: {enrolled.facts_added} added, {enrolled.facts_known} already known", markup=False)
    if from_stage and not enrolled.created:
        err.print(f"note: --from {from_stage} applies to a new enrollment only; {enrolled.enrollment} is unchanged", markup=False)


@app.command()
def advance(
    enrollment: Annotated[Optional[str], typer.Argument(help="Enrollment id")] = None,
    due: Annotated[bool, typer.Option("--due", help="Advance every enrollment that has come due")] = False,
    at: Annotated[Optional[str], typer.Option("--at", help="Date YYYY-MM-DD (default: today)")] = None,
) -> None:
    """Advance enrollments in a Prefect flow run (embedded server unless PREFECT_API_URL is set)."""
    _require("enrollment.write", "advance enrollments", enrollment)
    from pathways.orchestration.service import at_clock
    from pathways.store.db import UnknownEnrollment

    if (enrollment is None) == (not due):
        err.print("error: give an ENROLLMENT or --due", markup=False)
        raise typer.Exit(2)
    clock = at_clock(_clock(), _parse_date(at, "--at"))
    store = _store_or_fail(clock)
    if enrollment:
        try:
            state, _ = store.load(enrollment)
        except UnknownEnrollment as exc:
            err.print(f"error: {exc}", markup=False)
            raise typer.Exit(1)
        if clock.today() < state.as_of:
            err.print(f"error: {enrollment} was advanced to {state.as_of} already: it cannot go back to {clock.today()} "
                      f"(give --at {state.as_of} or later; nothing was run)", markup=False)
            raise typer.Exit(1)
        groups = {state.version_key: [enrollment]}
    else:
        groups = store.due_by_version(clock.today())  # each enrollment runs the version it was enrolled in
    if not groups:
        out.print(f"nothing due on {clock.today()}", markup=False)
        return
    _versions_or_fail(store, groups)
    from pathways.orchestration.flows import NOT_ADVANCED, advance_pathways_with_prefect

    labels = _version_labels(groups)
    for key, kinds in advance_pathways_with_prefect(groups, clock.today()).items():  # pathway versions side by side
        left = kinds.pop(NOT_ADVANCED, 0)  # stopped on request (Ctrl-C, SIGTERM): the next run advances them
        summary = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "no new decisions"
        count = len(groups[key])
        advanced = f"{count - left} of {count} enrollment(s) on {clock.today()} ({left} not yet: stopped)" if left else f"{count} enrollment(s) on {clock.today()}"
        out.print(f"{labels[key]}: advanced {advanced}: {summary}", markup=False)


def _versions_or_fail(store, groups: dict[str, list[str]]) -> None:
    """Every version the groups run, loaded from the store's trail before any flow run starts:
    one that is not there, or a state written by a newer pathways, is a one-line error (exit 1),
    nothing advanced."""
    from pathways.orchestration.service import Runtimes
    from pathways.orchestration.versions import VersionNotPublished
    from pathways.store.db import UnreadableState

    try:
        store.check_readable([e for ids in groups.values() for e in ids])
    except UnreadableState as exc:
        err.print(f"error: {exc} (nothing advanced)", markup=False)
        raise typer.Exit(1)
    for key in groups:
        try:
            Runtimes().get_version(key, store)
        except VersionNotPublished as exc:
            err.print(f"error: {exc} ({len(groups[key])} enrollment(s) of it; nothing advanced)", markup=False)
            raise typer.Exit(1)
        except ProblemsFound as exc:
            _fail(exc.problems)


def _version_labels(groups) -> dict[str, str]:
    """A group's name in the output: its pathway, with the version when two versions of it run."""
    ids = [key.split("@", 1)[0] for key in groups]
    return {key: pid if ids.count(pid) == 1 else f"{pid} {key.split('@', 1)[1].split('#', 1)[0]}" for key, pid in zip(groups, ids)}


@app.command()
def status(enrollment: Annotated[str, typer.Argument(help="Enrollment id")]) -> None:
    """Where an enrollment stands: steps, due dates, open escalations, goals."""
    _require("enrollment.read", f"read the status of {enrollment}", enrollment)
    from rich.table import Table

    from pathways.store.db import UnknownEnrollment

    store = _store_or_fail(_clock())
    try:
        state, version = store.load(enrollment)
    except UnknownEnrollment as exc:
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(1)
    out.print(f"{state.enrollment}: patient {state.patient}, {state.pathway} {state.version}, enrolled {state.enrolled_on}, as of {state.as_of} (state v{version})", markup=False)
    table = Table(title="Steps", title_justify="left")
    for column in ("step", "status", "due on", "done on", "reasons"):
        table.add_column(column)
    for step, progress in state.steps.items():
        shown_status = "done" if progress.status == "finished" and progress.done_on else progress.status
        table.add_row(step, shown_status, str(progress.due_on or ""), ", ".join(str(d) for d in progress.done_on), "\n".join(progress.reasons[-2:]).replace("[", "\\["))
    out.print(table)
    for step, escalation in state.escalations.items():
        out.print(f"open escalation {step}: {escalation.severity}, {escalation.action} since {escalation.since}", markup=False)
    for step, episode in state.closed_escalations.items():
        if step in state.escalations:
            continue
        still = "its trigger has stopped holding since" if episode.recovered else "its trigger still holds"
        out.print(f"closed escalation {step}: opened {episode.opened}, {episode.how} on {episode.closed} ({still})", markup=False)
    for goal, progress in state.goals.items():
        shown_status = progress.status.replace("_", " ")
        out.print(f"goal {goal}: {progress.fact} {progress.target} by {progress.deadline} - {shown_status} (baseline {progress.baseline}, latest {progress.latest})", markup=False)


@app.command()
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
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(1)
    if not isinstance(values, dict):
        err.print(f"error: {data}: expected a JSON object of output fact -> value", markup=False)
        raise typer.Exit(1)
    clock = at_clock(_clock(), _parse_date(at, "--at"))
    store = _store_or_fail(clock)
    try:
        events = record_step(store, Runtimes(), enrollment, step, values, clock, today=_today())
    except (RecordError,) as exc:
        for problem in exc.problems:
            err.print(f"error: {data}: {problem}", markup=False)
        raise typer.Exit(1)
    except (UnknownEnrollment, VersionNotPublished) as exc:  # its version: from the trail
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(1)
    recorded = [e for e in events if e.kind in ("done", "goal_agreed") and e.step == step]
    then = [e for e in events if e not in recorded]
    out.print(f"recorded {step} for {enrollment}: " + ", ".join(f"{e.kind} {e.step or ''}".strip() for e in recorded), markup=False)
    if then:
        out.print("then: " + ", ".join(f"{e.kind} {e.step or ''}".strip() for e in then), markup=False)


@app.command()
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
        err.print(f"error: --at {clock.today()} is in the future (today is {_today()})", markup=False)
        raise typer.Exit(1)
    store = _store_or_fail(clock)
    try:
        resolve_escalation(store, Runtimes(), enrollment, step, reason, clock)
    except RecordError as exc:
        for problem in exc.problems:
            err.print(f"error: {problem}", markup=False)
        raise typer.Exit(1)
    except (UnknownEnrollment, VersionNotPublished) as exc:
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(1)
    out.print(f"resolved {step} for {enrollment} on {clock.today()}", markup=False)


@app.command()
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
        err.print(f"error: '{step}' is not an open escalation of {enrollment} (open: {', '.join(sorted(state.escalations)) or 'none'})", markup=False)
        raise typer.Exit(1)
    from pathways.orchestration import prefect_edge
    from pathways.orchestration.flows import signoff as signoff_flow

    prefect_edge.configure()
    outcome = signoff_flow(enrollment, step, timeout)
    out.print(f"{step} for {enrollment}: {outcome}", markup=False)


@app.command()
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
        err.print(f"error: --outcome '{outcome}': use akkoord or 'niet akkoord'", markup=False)
        raise typer.Exit(2)
    if not re.fullmatch(r"[A-Za-z0-9._@-]{1,64}", by):
        err.print(f"error: --by '{by}' is not a staff id: letters, digits and . _ @ - only (never a patient's name)", markup=False)
        raise typer.Exit(2)
    try:
        run_id = uuid.UUID(flow_run)
    except ValueError:
        err.print(f"error: '{flow_run}' is not a flow-run id", markup=False)
        raise typer.Exit(2)
    from prefect import resume_flow_run

    from pathways.orchestration import prefect_edge

    prefect_edge.configure()
    resume_flow_run(run_id, run_input={"signed_off_by": by, "outcome": outcome})
    out.print(f"resumed {flow_run}: {outcome} by {by}", markup=False)


def _patient_files(folder: Path) -> list[Path]:
    """The patient files in a folder (FHIR bundles, facts JSON, or the .ndjson files of a FHIR
    bulk-data export); exit 1 when there are none."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name.lower().endswith((".json", ".json.gz", ".xml", ".ndjson"))) if folder.is_dir() else []
    if not files:
        err.print(f"error: {folder}: no patient files (.json, .json.gz, .xml, .ndjson)", markup=False)
        raise typer.Exit(1)
    return files


def _cohort(files: list[Path]):
    """(label, PatientFile or PatientFileError) per patient: one per file, and one per patient of
    the .ndjson files (a bulk export) together. A malformed bulk export is one failure."""
    from pathways.facts.load import PatientFileError, load_bulk_export, load_patient_file

    bulk = [p for p in files if p.name.lower().endswith(".ndjson")]
    for path in files:
        if path in bulk:
            continue
        try:
            yield path.name, load_patient_file(path), f"file:{path.name}"
        except PatientFileError as exc:
            yield path.name, exc, None
    if bulk:
        try:
            for label, patient in load_bulk_export(bulk):
                yield label, patient, f"bulk:{','.join(p.name for p in bulk)}"
        except PatientFileError as exc:
            yield ", ".join(p.name for p in bulk), exc, None


def _report_failed(failed: list[tuple[str, str]]) -> None:
    """Name every file that could not be read; the exit status says some failed."""
    for file_name, why in failed:
        err.print(f"error: {file_name}: {why}", markup=False)
    if failed:
        raise typer.Exit(1)


@app.command()
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
        _fail(exc.problems)
    except DraftPathway as exc:
        err.print(f"error: {exc}; nothing enrolled", markup=False)
        raise typer.Exit(1)
    enrolled, known, failed = [], [], []
    unreadable = refused = added = repeated = 0  # files (or a bulk export) that could not be read; patients read but not enrolled
    with Progress(console=err, transient=True) as progress:
        job = progress.add_task(f"enrolling from {len(files)} files", total=None)
        for label, patient, source in _until_stopped(_cohort(files)):
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

        from pathways.orchestration.flows import NOT_ADVANCED, advance_pathways_with_prefect
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
    out.print(table)
    _report_failed(failed)


facts_app = typer.Typer(help="A known patient's facts: add new lab results and observations.", no_args_is_help=True)
app.add_typer(facts_app, name="facts")


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
        err.print(f"error: '{patient}' is not a pseudonymous id: use letters, digits and . _ : - only", markup=False)
        raise typer.Exit(2)
    clock = at_clock(_clock(), _parse_date(at, "--at"))
    if clock.today() > _today():
        err.print(f"error: --at {clock.today()} is in the future (today is {_today()})", markup=False)
        raise typer.Exit(1)
    try:
        if path.name.lower().endswith(".ndjson"):
            found = load_bulk_export([path])
            if len(found) != 1:
                err.print(f"error: {path}: holds {len(found)} patients; give one patient's file, or add a bulk-data delta "
                          f"with `pathways run PATHWAY --cohort FOLDER`", markup=False)
                raise typer.Exit(1)
            read = found[0][1]
            if isinstance(read, PatientFileError):
                raise read
        else:
            read = load_patient_file(path)
    except PatientFileError as exc:
        for problem in exc.problems:
            err.print(f"error: {problem}", markup=False)
        raise typer.Exit(1)
    store = _store_or_fail(clock)
    runtimes = Runtimes()
    source = f"file:{path.name}"
    try:
        if enroll_in is not None and not store.has_patient(patient):
            runtimes.get(enroll_in)
            enrolled = enroll_patient(store, runtimes, enroll_in, read, source, clock, patient)
            out.print(f"enrolled: {enrolled.enrollment} (patient {patient}, {enroll_in}); facts: {enrolled.facts_added} added", markup=False)
            added, groups = enrolled.facts_added, {enroll_in: [enrolled.enrollment]}
        else:
            result = add_facts(store, runtimes, patient, read.facts, read.identity, source, clock, str(path), today=_today())
            out.print(f"facts for {patient} from {path.name}: {result.added} added, {result.known} already known", markup=False)
            added, groups = result.added, result.enrollments
    except ProblemsFound as exc:
        _fail(exc.problems)
    except (FactsRefused, UnusableValues) as exc:
        for problem in exc.problems:
            err.print(f"error: {problem}", markup=False)
        raise typer.Exit(1)
    except (DraftPathway, EnrolledInOtherVersion) as exc:
        err.print(f"error: {exc}; {patient} not enrolled", markup=False)
        raise typer.Exit(1)
    if not added:
        out.print("nothing new: the enrollments stand as they were", markup=False)
        return
    _reevaluate(store, groups, clock.today())


def _reevaluate(store, groups: dict[str, list[str]], at) -> None:
    """Advance a patient's enrollments (each on ``at``, or the day it stands on when later) in
    Prefect flow runs, and say what changed."""
    from pathways.orchestration.flows import advance_pathways_with_prefect

    ids = [e for members in groups.values() for e in members]
    before = {eid: state for eid, (state, _) in store.load_many(ids).items()}
    by_day: dict = {}
    for members in groups.values():
        for eid in members:  # each on the version it was enrolled in
            by_day.setdefault(max(at, before[eid].as_of), {}).setdefault(before[eid].version_key, []).append(eid)
    for day, day_groups in sorted(by_day.items()):
        _versions_or_fail(store, day_groups)
        labels = _version_labels(day_groups)
        for key, kinds in advance_pathways_with_prefect(day_groups, day).items():
            summary = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "no new decisions"
            out.print(f"{labels[key]}: re-evaluated on {day}: {summary}", markup=False)
    after = store.load_many(ids)
    for eid in ids:
        state = after[eid][0]
        for step in sorted(set(state.escalations) - set(before[eid].escalations)):
            escalation = state.escalations[step]
            out.print(f"escalation opened: {step} ({escalation.severity}, {escalation.action}) for {eid}", markup=False)


@app.command()
def simulate(
    name: Annotated[str, typer.Argument(help="Pathway name")],
    patients: Annotated[Path, typer.Option("--patients", help="Folder of patient files (FHIR bundles or facts JSON)")],
    months: Annotated[int, typer.Option("--months", min=1, max=120, help="How long to simulate")] = 12,
    start: Annotated[Optional[str], typer.Option("--start", help="First day YYYY-MM-DD (default: today)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the per-patient counts as JSON")] = False,
) -> None:
    """Fast-forward patients through the pathway on a simulated clock, then a summary.
    Stores nothing; due steps and open escalations are completed with the latest known values
    of their outputs (an escalation is then closed: it opens again only as the pathway says)."""
    import json

    from rich.table import Table

    from pathways.definition.loader import load_pathway
    from pathways.facts.load import PatientFileError
    from pathways.runtime.core import Runtime
    from pathways.runtime.simulate import simulate as run_simulation

    first = _parse_date(start, "--start") or _clock().today()
    files = _patient_files(patients)
    try:
        runtime = Runtime(load_pathway(name))
    except ProblemsFound as exc:
        _fail(exc.problems)
    failed = []
    reviews = {s.id for s in runtime.spec.steps if s.stage == "reviews"}
    rows = []
    for label, patient, _ in _until_stopped(_cohort(files)):
        if isinstance(patient, PatientFileError):
            failed.append((label, "; ".join(patient.problems)))
            continue
        facts = patient.facts
        unusable = runtime.evaluator.timeline(facts, first).unusable()
        if unusable:  # as `pathways evaluate` and `pathways run` refuse them: they would count as missing
            failed.append((label, "; ".join(str(issue) for issue in unusable) + "; not simulated"))
            continue
        rows.append(run_simulation(runtime, facts, first, months).summary(reviews))
    columns = {"steps_done": "steps done", "reviews_done": "reviews done", "gated": "gated", "escalations": "escalations",
               "goals_met": "goals met", "goals_missed": "goals missed", "goals_not_measured": "goals not measured"}
    totals = {key: sum(row[key] for row in rows) for key in columns}
    if as_json:
        out.print_json(json.dumps({"pathway": name, "start": first.isoformat(), "months": months, "patients": rows, "total": totals,
                                   "failed": [{"file": f, "problem": why} for f, why in failed]}))
    else:
        if not out.is_terminal:
            out.width = max(out.width, 160)
        table = Table(title=f"{name}: {months} months from {first}", title_justify="left")
        for column in ("patient", *columns.values(), "done without a required input"):
            table.add_column(column, justify="left" if column in ("patient", "done without a required input") else "right", overflow="fold")
        for row in rows:
            table.add_row(row["patient"], *(str(row[key]) for key in columns), ", ".join(row["done_without_required_input"]) or "-")
        table.add_row("[bold]total[/bold]", *(str(totals[key]) for key in columns), "")
        out.print(table)
    _report_failed(failed)


@app.command()
def serve(
    cron: Annotated[str, typer.Option("--cron", help="When the daily due run starts (cron, UTC)")] = "0 6 * * *",
) -> None:
    """Create the deployments (daily `pathways-due`, on-demand `pathways-advance`) and serve them
    from this process; reviews become scheduled flow runs. Needs PREFECT_API_URL for a server.
    When it stops, deployments it found (made by `pathways deploy`) are left as they were."""
    _require("enrollment.write", "serve the deployments")
    import os

    from pathways.orchestration.deploy import DeployError, check_cron, serve as serve_deployments

    try:
        check_cron(cron)
    except DeployError as exc:
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(2)
    os.environ["PATHWAYS_SCHEDULE_REVIEWS"] = "1"
    serve_deployments(cron)


@app.command()
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
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(2)
    try:
        if ensure_pool(pool):
            out.print(f"created work pool {pool} (type process): start workers with `pathways worker --pool {pool}`", markup=False)
        names = register(pool, cron)
    except DeployError as exc:
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(1)
    except Exception as exc:
        problem = server_problem(exc)
        if problem is None:
            raise
        err.print(f"error: {problem}", markup=False)
        raise typer.Exit(1)
    for name in names:
        out.print(f"deployment {name} on work pool {pool}", markup=False)
    out.print(f"{names[-1]} runs at cron '{cron}' (UTC)", markup=False)


@app.command()
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


# -- access ---------------------------------------------------------------------------------

def _actor():
    import os

    from pathways.access import ConfigurationError, actor_from_environment

    try:
        return actor_from_environment(os.environ)
    except ConfigurationError as exc:
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(2)


def _require(permission: str, what: str, subject: str | None = None):
    """The acting user when their role holds ``permission``; else the denial is audited and the
    command stops (exit 1) before it reads or changes anything."""
    from pathways.access import AccessDenied

    actor = _actor()
    if actor.may(permission):
        return actor
    from pathways.orchestration.service import open_store
    from pathways.store.audit import Record
    from pathways.store.db import StoreError

    try:
        store = open_store(_clock(), actor=actor)
        store.record_audit([Record("access.denied", subject=subject or what, payload={"permission": permission, "attempted": what, "via": actor.via})])
    except StoreError as exc:
        err.print(f"warning: the denial could not be audited: {exc}", markup=False)
    err.print(f"error: access denied: {AccessDenied(actor, permission, what)}", markup=False)
    raise typer.Exit(1)


@app.command()
def publish(name: Annotated[str, typer.Argument(help="Pathway name or path")]) -> None:
    """Publish a pathway version in the store: its files are kept in the audit trail, and
    enrollments may run it. Coordinators and admins only."""
    from pathways.orchestration.service import Runtimes, publish as publish_version
    from pathways.store.db import VersionTaken

    _require("pathway.publish", f"publish {name}", name)
    clock = _clock()
    store = _store_or_fail(clock)
    try:
        runtime = Runtimes().get(name)
    except ProblemsFound as exc:
        _fail(exc.problems)
    key = runtime.evaluator.plan.version_key
    try:
        created = publish_version(store, runtime.loaded, key)
    except VersionTaken as exc:
        err.print(f"error: {exc}; nothing published", markup=False)
        raise typer.Exit(1)
    out.print(f"{'published' if created else 'already published'}: {key}", markup=False)


@app.command()
def patient(pid: Annotated[str, typer.Argument(metavar="PATIENT", help="Pseudonymous patient id")]) -> None:
    """A patient's enrollments and the identifying data kept apart (name, birth date, BSN as a
    keyed hash). Not for coordinators; every refusal is audited."""
    from sqlmodel import Session, select

    from pathways.store.models import Enrollment, Patient, PatientIdentity

    _require("identity.read", f"read identifying data of patient {pid}", pid)
    store = _store_or_fail(_clock())
    with Session(store.engine) as session:
        if session.get(Patient, pid) is None:
            err.print(f"error: unknown patient '{pid}'", markup=False)
            raise typer.Exit(1)
        identity = session.get(PatientIdentity, pid)
        enrollments = session.exec(select(Enrollment).where(Enrollment.patient_id == pid)).all()
    out.print(f"patient {pid}", markup=False)
    if identity is None:
        out.print("  no identifying data stored", markup=False)
    else:
        out.print(f"  name: {identity.name or '-'}; birth date: {identity.birth_date or '-'}; "
                  f"BSN: {'HMAC ' + identity.bsn_hmac[:16] + '...' if identity.bsn_hmac else (identity.bsn or '-')}", markup=False)
    for e in enrollments:
        out.print(f"  enrollment {e.id}: {e.pathway} {e.version}, enrolled {e.enrolled_on}, as of {e.as_of}", markup=False)


# -- documents and FHIR -----------------------------------------------------------------------

def _enrollment_or_fail(store, enrollment: str):
    from pathways.store.db import UnknownEnrollment

    try:
        return store.load(enrollment)[0]
    except UnknownEnrollment as exc:
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(1)


def _runtime_for(state):
    from pathways.orchestration.service import Runtimes

    from pathways.orchestration.versions import VersionNotPublished

    try:
        return Runtimes().get_version(state.version_key)  # the version it runs, as published
    except ProblemsFound as exc:
        _fail(exc.problems)
    except VersionNotPublished as exc:
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(1)


@app.command()
def render(
    document: Annotated[str, typer.Argument(help="zorgplan, verwijsbrief, evaluatieverslag or overdracht")],
    enrollment: Annotated[str, typer.Argument(help="Enrollment id")],
    fmt: Annotated[str, typer.Option("--format", help="html, pdf or md")] = "html",
    out_path: Annotated[Optional[Path], typer.Option("--out", help="Output file (default: ENROLLMENT-DOCUMENT.FORMAT; '-' prints md or html)")] = None,
    lang: Annotated[str, typer.Option("--lang", help="nl (default) or en")] = "nl",
    escalation: Annotated[Optional[str], typer.Option("--escalation", help="For a verwijsbrief: the escalation step (default: the open referral)")] = None,
) -> None:
    """Write a care-plan document for an enrollment from the pathway's templates."""
    import hashlib

    from pathways.definition.documents import DOCUMENTS
    from pathways.store.audit import Record
    from pathways.views.documents import FORMATS, DocumentError, build_context, render_markdown, to_html, to_pdf, write_atomically

    if fmt not in FORMATS:
        err.print(f"error: --format '{fmt}': use one of {', '.join(FORMATS)}", markup=False)
        raise typer.Exit(2)
    if lang not in ("nl", "en"):
        err.print(f"error: --lang '{lang}': use nl or en", markup=False)
        raise typer.Exit(2)
    if out_path is not None and str(out_path) == "-" and fmt == "pdf":
        err.print("error: a PDF is not printed: give --out FILE.pdf", markup=False)
        raise typer.Exit(2)
    to_stdout = out_path is not None and str(out_path) == "-"
    if out_path is not None and not to_stdout and not out_path.parent.is_dir():
        err.print(f"error: --out {out_path}: the folder {out_path.parent} does not exist", markup=False)
        raise typer.Exit(1)
    actor = _require("document.render", f"render {document} for {enrollment}", enrollment)
    clock = _clock()
    store = _store_or_fail(clock)
    state = _enrollment_or_fail(store, enrollment)
    runtime = _runtime_for(state)
    named = {s.document for s in runtime.spec.steps if s.document}
    if document not in DOCUMENTS and document not in named:
        from pathways.errors import did_you_mean

        known = sorted(set(DOCUMENTS) | named)
        err.print(f"error: unknown document '{document}' ({did_you_mean(document, known) or 'documents: ' + ', '.join(known)})", markup=False)
        raise typer.Exit(1)
    identity = store.identity(state.patient) if actor.may("identity.read") else None
    try:
        context = build_context(runtime.loaded, runtime.evaluator, document, lang, clock.today(), state=state,
                                patient_facts=store.patient_facts(state.patient), decisions=store.decisions(enrollment),
                                recorded=store.recorded_inputs(enrollment), identity=identity, escalation_step=escalation)
        markdown = render_markdown(runtime.loaded, document, lang, context)
        if fmt == "md":
            data = markdown.encode("utf-8")
        else:
            html = to_html(markdown, f"{context['document']['title']}: {context['pathway']['title']}", lang)
            data = html.encode("utf-8") if fmt == "html" else to_pdf(html)
    except DocumentError as exc:
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(1)
    target = None if to_stdout else (out_path or Path(f"{enrollment}-{document}.{fmt}"))
    if target is not None:
        write_atomically(target, data)
    # disclosed: the trail says what was rendered for whom (a hash of it, not the text)
    store.record_audit([Record("document.rendered", state.patient, enrollment, state.pathway, state.version, state.version_key,
                               f"{enrollment}:{document}", {"document": document, "format": fmt, "lang": lang,
                                                              "sha256": hashlib.sha256(data).hexdigest(), "identifying": identity is not None})])
    if target is None:
        sys.stdout.write(data.decode("utf-8"))
    else:
        out.print(f"wrote {target}", markup=False)


fhir_app = typer.Typer(help="FHIR R4 exchange: export pathways and care plans.", no_args_is_help=True)
app.add_typer(fhir_app, name="fhir")


@fhir_app.command("export")
def fhir_export(
    what: Annotated[str, typer.Argument(metavar="NAME|ENROLLMENT", help="A pathway name (PlanDefinition) or an enrollment id (CarePlan)")],
    out_file: Annotated[Optional[Path], typer.Option("--out", help="Output file (default: print)")] = None,
) -> None:
    """A pathway as PlanDefinition + ActivityDefinitions, or an enrollment as CarePlan + Goals +
    Tasks, as a FHIR R4 Bundle; validated first, never written when it does not validate."""
    from pathways.definition.loader import available_pathways
    from pathways.views.fhir_export import ExportError, bundle, care_plan, plan_definition, write

    if out_file is not None and not out_file.parent.is_dir():
        err.print(f"error: --out {out_file}: the folder {out_file.parent} does not exist", markup=False)
        raise typer.Exit(1)
    try:
        if what in available_pathways() or Path(what).exists():
            from pathways.definition.loader import load_pathway

            try:
                resources = plan_definition(load_pathway(what))
            except ProblemsFound as exc:
                _fail(exc.problems)
        else:
            _require("document.render", f"export the care plan of {what}", what)
            clock = _clock()
            store = _store_or_fail(clock)
            from pathways.store.db import UnknownEnrollment

            try:
                state, _ = store.load(what)
            except UnknownEnrollment:
                from pathways.errors import did_you_mean

                hint = did_you_mean(what, list(available_pathways()))
                err.print(f"error: '{what}' is neither a pathway nor an enrollment{' (' + hint + ')' if hint else ''}", markup=False)
                raise typer.Exit(1)
            runtime = _runtime_for(state)
            resources = care_plan(runtime.loaded, state, clock.today())
        data = bundle(resources)
    except ExportError as exc:
        err.print(f"error: {exc}; nothing was written", markup=False)
        raise typer.Exit(1)
    text = write(out_file, data)
    if out_file is None:
        sys.stdout.write(text + "\n")
    else:
        kinds: dict[str, int] = {}
        for r in resources:
            kinds[r["resourceType"]] = kinds.get(r["resourceType"], 0) + 1
        out.print(f"wrote {out_file}: " + ", ".join(f"{n} {k}" for k, n in kinds.items()), markup=False)


# -- audit ----------------------------------------------------------------------------------

audit_app = typer.Typer(help="Read and verify the audit trail (auditors and admins).", no_args_is_help=True)
app.add_typer(audit_app, name="audit")

DEFAULT_LOG_FIELDS = ("seq", "at", "actor", "role", "action", "enrollment_id", "subject")


def _reader(permission_what: str):
    """A read-only connection to the store, for auditors: nothing is created or written."""
    from pathways.orchestration.service import database_url
    from pathways.store.db import StoreError, open_readonly

    _require("audit.read", permission_what)
    try:
        return open_readonly(database_url())
    except StoreError as exc:
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(1)


def _catalog(connection):
    from pathways.store.audit import Query, entries
    from pathways.views.audit import Catalog

    return Catalog(entries(connection, Query(action="pathway.published")))


def _period(text: str):
    from pathways.views.audit import parse_period

    try:
        return parse_period(text)
    except ValueError as exc:
        err.print(f"error: --period: {exc}", markup=False)
        raise typer.Exit(1)


def _known_pathway(connection, name: str) -> None:
    from pathways.store.audit import pathway_names

    known = pathway_names(connection)
    if name not in known:
        from pathways.errors import did_you_mean

        hint = did_you_mean(name, known) or ("known: " + ", ".join(known) if known else "the trail names no pathway yet")
        err.print(f"error: no pathway '{name}' in the audit trail ({hint})", markup=False)
        raise typer.Exit(1)


def _known_enrollment(connection, enrollment: str) -> None:
    from pathways.store.audit import has_enrollment

    if not has_enrollment(connection, enrollment):
        from pathways.orchestration.service import database_url
        from pathways.store.db import shown

        err.print(f"error: unknown enrollment '{enrollment}': the audit trail in {shown(database_url())} has no entry for it", markup=False)
        raise typer.Exit(1)


@audit_app.command("verify")
def audit_verify(
    anchor: Annotated[Optional[str], typer.Option("--anchor", help="SEQ:HASH kept from an earlier verification")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON")] = False,
) -> None:
    """Recompute the hash chain; name the first broken entry. Exit 0 intact, 1 broken."""
    import json

    from pathways.store.audit import verify

    parsed = None
    if anchor is not None:
        seq, sep, digest = anchor.partition(":")
        if not (sep and seq.isdigit() and len(digest) == 64):
            err.print(f"error: --anchor '{anchor}' is not SEQ:HASH (a sequence number and a 64-character SHA-256)", markup=False)
            raise typer.Exit(1)
        parsed = (int(seq), digest.lower())
    engine = _reader("verify the audit trail")
    with engine.connect() as connection:
        result = verify(connection, parsed)
    if as_json:
        out.print(json.dumps({"intact": result.intact, "entries": result.entries, "head_seq": result.head_seq, "head_hash": result.head_hash,
                              "broken_at": result.broken_at, "reason": result.reason or None}), markup=False)
    elif result.intact:
        out.print(f"intact: {result.entries} entries; head {result.head_seq}:{result.head_hash}", markup=False)
    else:
        out.print(f"BROKEN at entry {result.broken_at}: {result.reason}", markup=False)
    if not result.intact:
        raise typer.Exit(1)


@audit_app.command("log")
def audit_log(
    patient: Annotated[Optional[str], typer.Option("--patient", help="Pseudonymous patient id")] = None,
    enrollment: Annotated[Optional[str], typer.Option("--enrollment")] = None,
    pathway: Annotated[Optional[str], typer.Option("--pathway")] = None,
    since: Annotated[Optional[str], typer.Option("--since", help="From this day (YYYY-MM-DD)")] = None,
    until: Annotated[Optional[str], typer.Option("--until", help="Up to and including this day")] = None,
    actor: Annotated[Optional[str], typer.Option("--actor")] = None,
    action: Annotated[Optional[str], typer.Option("--action", help="An action and those under it (escalation: escalation.*), or a prefix ending in '.'")] = None,
    fields: Annotated[Optional[str], typer.Option("--fields", help="Comma-separated columns to show")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    as_csv: Annotated[bool, typer.Option("--csv")] = False,
) -> None:
    """The audit entries, filtered; as a table, JSON or CSV."""
    import json

    from pathways.store.audit import Query, entries
    from pathways.views.audit import LOG_FIELDS, write_csv

    if as_json and as_csv:
        err.print("error: give --json or --csv, not both", markup=False)
        raise typer.Exit(2)
    chosen = tuple(f.strip() for f in fields.split(",") if f.strip()) if fields else (LOG_FIELDS if (as_json or as_csv) else DEFAULT_LOG_FIELDS)
    unknown = [f for f in chosen if f not in LOG_FIELDS]
    if unknown or not chosen:
        from pathways.errors import did_you_mean

        hint = did_you_mean(unknown[0], LOG_FIELDS) if unknown else None
        err.print(f"error: --fields: unknown field {', '.join(repr(u) for u in unknown) or '(none given)'}"
                  f"{' (' + hint + ')' if hint else ''}; fields: {', '.join(LOG_FIELDS)}", markup=False)
        raise typer.Exit(1)
    query = Query(patient, enrollment, pathway, _parse_date(since, "--since"), _parse_date(until, "--until"), actor, action)
    engine = _reader("read the audit log")
    with engine.connect() as connection:
        rows = [{f: e[f] for f in chosen} for e in entries(connection, query)]
    if as_json:
        out.print(json.dumps(rows, ensure_ascii=False, indent=1), markup=False)
    elif as_csv:
        write_csv(sys.stdout, rows, chosen)
    else:
        from rich.table import Table

        if not out.is_terminal:
            out.width = max(out.width, 200)
        table = Table(title=f"audit log: {len(rows)} entries", title_justify="left")
        for f in chosen:
            table.add_column(f, overflow="fold")
        for row in rows:
            table.add_row(*(json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else str(v if v is not None else "") for v in row.values()))
        out.print(table)


@audit_app.command("timeline")
def audit_timeline(
    enrollment: Annotated[str, typer.Argument(help="Enrollment id")],
    lang: Annotated[str, typer.Option("--lang", help="nl or en")] = "nl",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """An enrollment's history as a readable story (Dutch by default, --lang en)."""
    import json

    from pathways.store.audit import Query, entries
    from pathways.views.audit import timeline

    if lang not in ("nl", "en"):
        err.print(f"error: --lang '{lang}': use nl or en", markup=False)
        raise typer.Exit(2)
    engine = _reader(f"read the timeline of {enrollment}")
    with engine.connect() as connection:
        _known_enrollment(connection, enrollment)
        catalog = _catalog(connection)
        rows = timeline(entries(connection, Query(enrollment=enrollment)), catalog, lang)
    if as_json:
        out.print(json.dumps([{"date": d.isoformat(), "text": t, "seq": e["seq"], "actor": e["actor"], "role": e["role"]} for d, t, e in rows],
                             ensure_ascii=False, indent=1), markup=False)
        return
    for day, text, entry in rows:
        out.print(f"{day} {text}  [#{entry['seq']} {entry['actor']}]", markup=False)


@audit_app.command("show")
def audit_show(decision: Annotated[str, typer.Argument(help="Decision key (e.g. ENROLLMENT:STEP:DATE:gated) or decision id")]) -> None:
    """One decision: outcome, explanation, facts used, rules and versions, Prefect run ids."""
    from pathways.store.audit import find_decision
    from pathways.views.decision import decision_detail

    engine = _reader(f"read decision {decision}")
    with engine.connect() as connection:
        key, decision_id, found = find_decision(connection, decision)
        detail = decision_detail(key, decision_id, found, _catalog(connection), lang=None) if found else None
    if detail is None:
        err.print(f"error: unknown decision '{decision}' (see `pathways audit log --action step.` for keys)", markup=False)
        raise typer.Exit(1)
    out.print("\n".join(detail.lines()), markup=False)


@audit_app.command("indicators")
def audit_indicators(
    pathway: Annotated[str, typer.Option("--pathway", help="Pathway name")],
    period: Annotated[str, typer.Option("--period", help="2026Q1, 2026-03, 2026 or FROM..TO")],
    grace: Annotated[int, typer.Option("--grace", min=0, max=365, help="Days after the due date a review still counts as on time")] = 14,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Quality indicators of a pathway over a period, computed from the audit trail."""
    import json

    from pathways.store.audit import Query, entries
    from pathways.views.audit import indicators
    from pathways.views.plan_indicators import plan_indicators

    chosen = _period(period)
    engine = _reader(f"read indicators of {pathway}")
    with engine.connect() as connection:
        _known_pathway(connection, pathway)
        catalog = _catalog(connection)
        trail = list(entries(connection, Query(pathway=pathway)))
        result = indicators(trail, catalog, pathway, chosen, _today(), grace)
        plans = plan_indicators(entries(connection, Query(action="plan.")), {e["patient_id"] for e in trail if e["patient_id"]}, chosen)
    data = {**result.to_json(), "personal_plans": plans}
    if as_json:
        out.print(json.dumps(data, ensure_ascii=False, indent=1), markup=False)
        return
    r, e, f, g = data["reviews_on_time"], data["escalation_to_action_days"], data["referral_to_specialist_days"], data["goals_met_by_deadline"]
    out.print(f"{pathway} {chosen.label} ({chosen.start} .. {chosen.end})", markup=False)
    out.print(f"  reviews on time (within {grace} days): {r['percent_on_time'] if r['percent_on_time'] is not None else 'n/a'}% "
              f"({r['on_time']} on time, {r['late_or_missed']} late or missed, {r['pending']} pending)", markup=False)
    out.print(f"  escalation trigger -> action: median {e['median_days'] if e['median_days'] is not None else 'n/a'} days ({e['acted']} acted, {e['open']} open)", markup=False)
    out.print(f"  referral -> first specialist contact: median {f['median_days'] if f['median_days'] is not None else 'n/a'} days "
              f"({f['referrals_with_contact']} with a recorded contact, {f['without_recorded_contact']} without)", markup=False)
    out.print(f"  SMART goals met by their deadline: {g['percent_met'] if g['percent_met'] is not None else 'n/a'}% ({g['met']} met, {g['missed']} missed)", markup=False)
    for fact, months in data["proms"].items():
        out.print(f"  PROM {fact}: " + "; ".join(f"{m['month']} median {m['median']} (n={m['n']})" for m in months), markup=False)
    if not data["proms"]:
        out.print("  PROMs: none recorded in the period", markup=False)
    c = plans["conflicts"]
    share = f"{plans['percent_with_combined_review']}%" if plans["percent_with_combined_review"] is not None else "n/a"
    out.print(f"  multimorbid patients with one combined review: {share} ({plans['with_combined_review']} of {plans['multimorbid_patients']})",
              markup=False)
    out.print(f"  visits saved by bundling: {plans['visits_saved']} ({plans['steps_planned']} steps in the latest plans of "
              f"{plans['patients_with_a_plan']} patient(s))", markup=False)
    how = "; ".join(f"{n} {k}" for k, n in c["resolution"].items()) or "none"
    out.print(f"  conflicts between pathways: {c['found']} found ({', '.join(f'{r} {n}' for r, n in c['by_rule'].items()) or 'none'}); {how}",
              markup=False)


@audit_app.command("report")
def audit_report(
    enrollment: Annotated[Optional[str], typer.Argument(help="Enrollment id (or use --pathway and --period)")] = None,
    pathway: Annotated[Optional[str], typer.Option("--pathway")] = None,
    period: Annotated[Optional[str], typer.Option("--period", help="2026Q1, 2026-03, 2026 or FROM..TO")] = None,
    html: Annotated[Path, typer.Option("--html", help="Where to write the report")] = Path("audit-report.html"),
    grace: Annotated[int, typer.Option("--grace", min=0, max=365)] = 14,
) -> None:
    """One self-contained HTML report: timeline, explanations, diagram, indicators, verification."""
    from pathways.store.audit import Query, entries, verify
    from pathways.views.audit import Period, indicators
    from pathways.views.diagram import DiagramError
    from pathways.views.report import render

    if (enrollment is None) == (pathway is None) or (pathway is not None and period is None):
        err.print("error: give an ENROLLMENT, or --pathway NAME with --period", markup=False)
        raise typer.Exit(2)
    if not html.parent.is_dir():
        err.print(f"error: --html {html}: the folder {html.parent} does not exist", markup=False)
        raise typer.Exit(1)
    chosen = _period(period) if period else None
    engine = _reader("write an audit report")
    with engine.connect() as connection:
        if enrollment:
            _known_enrollment(connection, enrollment)
        else:
            _known_pathway(connection, pathway)
        catalog = _catalog(connection)
        verification = verify(connection)
        if enrollment:
            selected = list(entries(connection, Query(enrollment=enrollment)))
            name = selected[0]["pathway"]
            history = list(entries(connection, Query(pathway=name)))
            days = [e for e in selected if e["action"] != "pathway.published"]
            first = min(dt.date.fromisoformat(e["at"][:10]) for e in days)
            span = Period(first, max(_today(), first), f"{first}..{max(_today(), first)}")
            ind = indicators([e for e in history if e.get("enrollment_id") == enrollment], catalog, name, span, _today(), grace)
            subject = {"enrollment": enrollment, "patient (pseudonym)": selected[0]["patient_id"], "pathway": name}
            title = f"Audit: {enrollment}"
        else:
            history = list(entries(connection, Query(pathway=pathway)))
            selected = [e for e in history if e["action"] != "pathway.published" and
                        chosen.start <= dt.date.fromisoformat((e["payload"].get("decided_on") or e["at"])[:10]) <= chosen.end]
            ind = indicators(history, catalog, pathway, chosen, _today(), grace)
            subject = {"pathway": pathway, "period": f"{chosen.label} ({chosen.start} .. {chosen.end})", "enrollments": len({e['enrollment_id'] for e in selected if e['enrollment_id']})}
            title = f"Audit: {pathway} {chosen.label}"
    keys = sorted({e["version_key"] for e in selected if e.get("version_key")})
    try:
        render(html, title=title, subject=subject, entries=selected, catalog=catalog, indicators=ind,
               verification=verification, generated=_clock().now(), version_keys=keys)
    except DiagramError as exc:
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(1)
    out.print(f"wrote {html} ({len(selected)} entries; chain {'intact' if verification.intact else 'BROKEN at ' + str(verification.broken_at)})", markup=False)


@audit_app.command("export")
def audit_export(
    fhir: Annotated[Path, typer.Option("--fhir", help="Output file: a FHIR R4 Bundle (JSON), or NDJSON with --ndjson")],
    ndjson: Annotated[bool, typer.Option("--ndjson", help="One resource per line (FHIR bulk data)")] = False,
    enrollment: Annotated[Optional[str], typer.Option("--enrollment")] = None,
    pathway: Annotated[Optional[str], typer.Option("--pathway")] = None,
    since: Annotated[Optional[str], typer.Option("--since")] = None,
    until: Annotated[Optional[str], typer.Option("--until")] = None,
) -> None:
    """Export the trail as FHIR R4 AuditEvent (every entry) and Provenance (every decision)."""
    from pathways.store.audit import Query, entries
    from pathways.views.fhir_audit import ExportError, resources, write

    if not fhir.parent.is_dir():
        err.print(f"error: --fhir {fhir}: the folder {fhir.parent} does not exist", markup=False)
        raise typer.Exit(1)
    query = Query(enrollment=enrollment, pathway=pathway, since=_parse_date(since, "--since"), until=_parse_date(until, "--until"))
    engine = _reader("export the audit trail")
    with engine.connect() as connection:
        selected = list(entries(connection, query))
    try:
        items = resources(selected)
        write(fhir, items, ndjson)
    except ExportError as exc:
        err.print(f"error: {exc}; nothing was written", markup=False)
        raise typer.Exit(1)
    kinds = {}
    for r in items:
        kinds[r["resourceType"]] = kinds.get(r["resourceType"], 0) + 1
    out.print(f"wrote {fhir}: " + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())), markup=False)


# -- versions -------------------------------------------------------------------------------

@app.command()
def diff(
    side_from: Annotated[str, typer.Argument(metavar="FROM", help="NAME@VERSION (published), NAME@draft or NAME (files on disk), or a path")],
    side_to: Annotated[str, typer.Argument(metavar="TO", help="The same forms as FROM")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the changes as JSON")] = False,
) -> None:
    """What changed between two versions of a pathway, in its own terms: steps, gates, timings,
    parameters (with their evidence), escalations, goals, financing rules. Not a text diff."""
    import json

    from pathways.definition.diff import diff_pathways
    from pathways.orchestration.versions import pathway_side
    from pathways.store.db import StoreError
    from pathways.views.diff import render_diff

    sides = []
    for side in (side_from, side_to):
        try:
            sides.append(pathway_side(side))
        except ProblemsFound as exc:
            _fail(exc.problems)
        except StoreError as exc:
            err.print(f"error: {exc}", markup=False)
            raise typer.Exit(1)
    (label_from, old), (label_to, new) = sides
    changes = diff_pathways(old, new)
    if as_json:
        out.print(json.dumps({"from": label_from, "to": label_to, "changes": [c.as_json() for c in changes]}, ensure_ascii=False, indent=2),
                  markup=False)
    else:
        render_diff(label_from, label_to, changes, out)


@app.command()
def plan(
    patient: Annotated[str, typer.Argument(help="Pseudonymous patient id")],
    at: Annotated[Optional[str], typer.Option("--at", help="Plan date YYYY-MM-DD (default: today)")] = None,
    window: Annotated[Optional[int], typer.Option("--window", help="Bundling window in days: steps of one discipline due within it are one appointment (default: the care network's, PATHWAYS_PLAN_WINDOW_DAYS or _shared/network.yaml, else 14)")] = None,
    priority: Annotated[Optional[list[str]], typer.Option("--priority", help="First record the patient's priority of a goal: PATHWAY.GOAL=N (1 high, 2 medium, 3 low, none); repeatable")] = None,
    resolve: Annotated[Optional[str], typer.Option("--resolve", help="First close the plan's open escalation of this interaction rule (with --reason)")] = None,
    reason: Annotated[str, typer.Option("--reason", help="Why the escalation is closed (kept in the audit trail)")] = "",
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON")] = False,
    document: Annotated[Optional[Path], typer.Option("--document", help="Also write the patient's one zorgplan: OUT.md or OUT.pdf")] = None,
    lang: Annotated[str, typer.Option("--lang", help="Language of the zorgplan: nl (B1, default) or en")] = "nl",
    fhir: Annotated[Optional[Path], typer.Option("--fhir", help="Also write the plan as a FHIR R4 Bundle (patient-level CarePlan, the pathways' CarePlans as its parts), validated first")] = None,
) -> None:
    """One personal plan for a patient across all their pathways: bundled appointments, shared
    measurements, conflicts between pathways and goals; stored, each decision audited once."""
    _require("input.record", f"make the care plan of {patient}", patient)
    import json

    from pathways.orchestration.careplan import make_plan, plan_parts, record_priorities, resolve_plan_escalation
    from pathways.orchestration.network import bundling_window
    from pathways.orchestration.service import Runtimes
    from pathways.orchestration.versions import VersionNotPublished
    from pathways.runtime.plan import PlanError
    from pathways.views.careplan import print_plan
    from pathways.views.documents import DocumentError
    from pathways.views.fhir_export import ExportError
    from pathways.views.plan_document import write_plan_document, write_plan_fhir

    if lang not in ("nl", "en"):
        err.print(f"error: --lang '{lang}': use nl or en", markup=False)
        raise typer.Exit(2)
    if document is not None and document.suffix.lower() not in (".md", ".pdf"):
        err.print(f"error: --document {document}: write the zorgplan as a .md or .pdf file", markup=False)
        raise typer.Exit(2)
    if document is not None or fhir is not None:
        _require("document.render", f"write the care plan of {patient}", patient)
    day = _parse_date(at, "--at") or _today()
    store = _store_or_fail(_clock())
    runtimes = Runtimes(templates=False)
    try:
        window_days = bundling_window(window)
        if priority:
            record_priorities(store, runtimes, patient, priority, day)
        if resolve is not None:
            resolve_plan_escalation(store, patient, resolve, reason, day)
        made, _ = make_plan(store, runtimes, patient, day, window_days)
        parts = plan_parts(store, runtimes, patient) if document is not None or fhir is not None else []
        if document is not None:
            write_plan_document(store, made.to_json(), {loaded.spec.id: loaded for loaded, _ in parts}, document, lang)
        if fhir is not None:
            count = write_plan_fhir(made.to_json(), parts, day, fhir)
    except ProblemsFound as exc:
        _fail(exc.problems)
    except (PlanError, VersionNotPublished) as exc:
        err.print(f"error: {exc}; no plan stored", markup=False)
        raise typer.Exit(1)
    except (DocumentError, ExportError) as exc:
        err.print(f"error: {exc}; nothing written", markup=False)
        raise typer.Exit(1)
    if document is not None:
        err.print(f"wrote {document}", markup=False)
    if fhir is not None:
        err.print(f"wrote {fhir} ({count} resources, validated)", markup=False)
    if as_json:
        out.print(json.dumps(made.to_json(), indent=2, ensure_ascii=False), markup=False)
    else:
        print_plan(out, made.to_json())


# -- web application ----------------------------------------------------------------------

user_app = typer.Typer(help="Web application accounts.", no_args_is_help=True)
app.add_typer(user_app, name="user")


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
            err.print("error: the two passwords differ; nothing changed", markup=False)
            raise typer.Exit(1)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    store = _store_or_fail(_clock())
    try:
        add_user(store, name, role, password)
    except (AccountError, AccountExists) as exc:
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(1)
    out.print(f"added web account {name} ({role}) by {actor.user}", markup=False)


@app.command()
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
        err.print(f"error: {exc}", markup=False)


# -- migrate (issue 25) ---------------------------------------------------------------------

migrate_app = typer.Typer(help="Move a pathway's enrollments to a newer published version: preview, apply, revert "
                               "(coordinators and admins).", no_args_is_help=True)
app.add_typer(migrate_app, name="migrate")


def _migrating(action):
    """Run a migration action; its refusals and bad input as one-line errors (exit 1), nothing written."""
    from pathways.access import AccessDenied
    from pathways.orchestration.migrate import MigrationRefused
    from pathways.orchestration.versions import VersionNotPublished

    try:
        return action()
    except ProblemsFound as exc:
        _fail(exc.problems)
    except MigrationRefused as exc:
        for problem in exc.problems:
            err.print(f"error: {problem}", markup=False)
        raise typer.Exit(1)
    except (VersionNotPublished, AccessDenied) as exc:
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(1)


@migrate_app.command("preview")
def migrate_preview(
    pathway: Annotated[str, typer.Argument(help="Pathway id (e.g. diabetes)")],
    to: Annotated[str, typer.Option("--to", help="The published version to move to (e.g. 1.3.0)")],
    at: Annotated[Optional[str], typer.Option("--at", help="Date YYYY-MM-DD to evaluate at (default: today)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
    html: Annotated[Optional[Path], typer.Option("--html", help="Also write the preview as an HTML page")] = None,
) -> None:
    """Show what moving every enrollment of PATHWAY to version --to would change; nothing is
    changed (the preview is kept, under its hash, for `pathways migrate apply`)."""
    import json

    from pathways.orchestration.migrate import preview
    from pathways.orchestration.service import Runtimes, at_clock
    from pathways.views.migration import render_html, summary_lines

    _require("enrollment.migrate", f"preview a migration of {pathway}", pathway)
    clock = at_clock(_clock(), _parse_date(at, "--at"))
    if html is not None and not html.parent.is_dir():
        err.print(f"error: --html {html}: the folder {html.parent} does not exist", markup=False)
        raise typer.Exit(2)
    store = _store_or_fail(clock)
    result = _migrating(lambda: preview(store, Runtimes(), pathway, to, clock.today())).as_dict()
    if html is not None:
        render_html(result, html)
    if as_json:
        out.print(json.dumps(result, indent=2), markup=False)
    else:
        for line in summary_lines(result):
            out.print(line, markup=False)
        out.print(f"apply it with: pathways migrate apply {result['preview']}", markup=False)


@migrate_app.command("apply")
def migrate_apply(digest: Annotated[str, typer.Argument(metavar="HASH", help="The preview's hash (from `migrate preview`)")]) -> None:
    """Move the enrollments of a preview to its version, exactly as previewed; refused when
    anything it read has changed since."""
    from pathways.orchestration.migrate import apply
    from pathways.orchestration.service import Runtimes

    _require("enrollment.migrate", "apply a migration", digest)
    store = _store_or_fail(_clock())
    moved = _migrating(lambda: apply(store, Runtimes(), digest))
    out.print(f"migrated {len(moved.moved)} enrollment(s) of {moved.pathway} to {moved.to_key}; "
              f"{len(moved.stayed)} blocked stay on their version (preview {moved.hash[:12]})", markup=False)
    if moved.lost:
        err.print(f"error: {len(moved.lost)} enrollment(s) changed while migrating and stay on their version: "
                  f"{', '.join(moved.lost)}; make a new preview for them", markup=False)
        raise typer.Exit(1)


@migrate_app.command("revert")
def migrate_revert(digest: Annotated[str, typer.Argument(metavar="HASH", help="The hash of an applied preview")]) -> None:
    """Put the enrollments an applied preview moved back on their old version and state; refused
    when any was advanced since."""
    from pathways.orchestration.migrate import revert

    _require("enrollment.migrate", "revert a migration", digest)
    store = _store_or_fail(_clock())
    moved = _migrating(lambda: revert(store, digest))
    out.print(f"reverted {len(moved.moved)} enrollment(s) of {moved.pathway} to their version before {moved.to_key} "
              f"(preview {moved.hash[:12]})", markup=False)
    if moved.lost:
        err.print(f"error: {len(moved.lost)} enrollment(s) changed while reverting: {', '.join(moved.lost)}", markup=False)
        raise typer.Exit(1)


# -- interrupting (pathways.interrupt) -------------------------------------------------------

@app.command()
def schema(
    kind: Annotated[str, typer.Argument(help="pathway, library or cases")] = "pathway",
) -> None:
    """Print the JSON Schema of a file format (for editors), from the same models that check it."""
    import json

    from pathways.rules.formats import FORMATS, json_schema

    if kind not in FORMATS:
        err.print(f"error: unknown format '{kind}': one of {', '.join(FORMATS)}", markup=False)
        raise typer.Exit(2)
    out.print(json.dumps(json_schema(kind), ensure_ascii=False, indent=1), markup=False, soft_wrap=True)


@app.command()
def new(
    name: Annotated[str, typer.Argument(help="The new pathway's id (lower case letters, digits, _)")],
    into: Annotated[Path, typer.Option("--into", help="The folder to write NAME/pathway.yaml in")] = Path("."),
) -> None:
    """Write a small pathway skeleton that validates, to start from."""
    from pathways.definition.skeleton import SkeletonError, write_skeleton

    try:
        file = write_skeleton(name, into)
    except SkeletonError as exc:
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(1)
    except OSError as exc:
        err.print(f"error: cannot write in {into}: {exc.strerror}", markup=False)
        raise typer.Exit(1)
    out.print(f"wrote {file}; next: pathways validate {file.parent}", markup=False)


@app.command()
def config() -> None:
    """Print the effective settings (secrets hidden) and where each came from: the environment,
    a file, or the default. A wrong value is named with the fix (exit 2)."""
    from pathways.orchestration.settings import current, shown_lines

    for line in shown_lines(current()):
        out.print(line, markup=False)


def _until_stopped(items):
    """``items`` (patients of a cohort) until Ctrl-C or SIGTERM asks to stop: the one in hand is
    finished (enrolled in one transaction, or simulated), no next one is read."""
    from pathways import interrupt

    done = 0
    with interrupt.finishing():
        for item in items:
            yield item
            done += 1
            if interrupt.requested():
                err.print(f"stopped after {done} patient(s) of the cohort: the patient files after them were not read", markup=False)
                return


def _stopped() -> bool:
    from pathways import interrupt

    return interrupt.requested()


def _stopped_cleanly(code: int | str | None) -> int | str | None:
    """The exit status once the command has ended: 130 (SIGINT) or 143 (SIGTERM) if a stop was
    asked for, with a word on stderr after the command's own account of what it did and left."""
    from pathways import interrupt

    if not interrupt.requested():
        return code
    err.print(f"interrupted ({interrupt.signal_name()}): stopped cleanly; what was done is kept, nothing was left half done. "
              "Run the same command again to do the rest (nothing is done twice).", markup=False)
    return interrupt.exit_status()


def main() -> None:  # console script entry point
    from pathways import interrupt
    from pathways.errors import SettingError
    from pathways.store.db import StoreError

    code: int | str | None = 0
    with interrupt.handled():  # Ctrl-C and SIGTERM: a clean stop, 130 / 143, no traceback
        try:
            app()
        except SystemExit as exc:
            code = exc.code
        except interrupt.Interrupted:  # met before anything was in flight
            code = None
        except SettingError as exc:  # a bad PATHWAYS_* value, from wherever it was first read
            err.print(f"error: {exc}", markup=False)
            code = 2
        except StoreError as exc:  # the store unreachable or locked after its retries, wherever it was met
            err.print(f"error: {exc}", markup=False)
            code = 1
        except KeyboardInterrupt:  # pragma: no cover (only before the handlers are in place)
            code = 130
        except BaseException:
            if not interrupt.requested():
                raise
            code = None  # the stop itself, seen through a library that wrapped it (pydantic, while Prefect loads)
        code = _stopped_cleanly(code)
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    main()
