"""The `pathways` command. Thin: each command calls the library and prints.

Exit codes: 0 success; 1 problems in the input (listed as file:line:col: CODE message (hint));
2 wrong usage of the command itself. Commands that do not orchestrate never import Prefect.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from pathways.errors import Problem, ProblemsFound

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
    noun = "problem" if len(problems) == 1 else "problems"
    err.print(f"{len(problems)} {noun} found", markup=False)
    raise typer.Exit(1)


@app.command()
def validate(
    paths: Annotated[Optional[list[Path]], typer.Argument(help="Pathway files or folders (default: ./pathways)")] = None,
) -> None:
    """Check pathway and shared library files; report every problem as file:line:col."""
    from pathways.definition.loader import validate_paths

    result = validate_paths(paths or [Path("pathways")])
    if result.problems:
        _fail(result.problems)
    steps = sum(len(d.model.steps) for d in result.pathways)
    names = ", ".join(f"{d.model.id} {d.model.version}" for d in result.pathways) or "none"
    out.print(
        f"ok: {result.files} files, {len(result.pathways)} pathways ({names}), "
        f"{len(result.libraries)} shared libraries, {steps} steps",
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
    except PatientFileError as exc:
        for problem in exc.problems:
            err.print(f"error: {problem}", markup=False)
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
    if failed:
        raise typer.Exit(1)


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
    facts: Annotated[Optional[Path], typer.Option("--facts", help="Patient facts JSON")] = None,
    fhir: Annotated[Optional[Path], typer.Option("--fhir", help="FHIR R4 Bundle or resource")] = None,
) -> None:
    """Store a patient's facts and enrol them in a pathway (stored in PATHWAYS_DATABASE_URL)."""
    import re

    from pathways.facts.load import PatientFileError
    from pathways.orchestration.service import Runtimes, enroll_file

    _one_patient_file(facts, fhir)
    if not re.fullmatch(r"[A-Za-z0-9._:-]{1,128}", patient):
        err.print(f"error: '{patient}' is not a pseudonymous id: use letters, digits and . _ : - only", markup=False)
        raise typer.Exit(1)
    clock = _clock()
    store = _store_or_fail(clock)
    try:
        runtimes = Runtimes()
        runtimes.get(pathway)
        enrolled = enroll_file(store, runtimes, pathway, facts or fhir, clock, patient)
    except ProblemsFound as exc:
        _fail(exc.problems)
    except PatientFileError as exc:
        for problem in exc.problems:
            err.print(f"error: {problem}", markup=False)
        raise typer.Exit(1)
    verb = "enrolled" if enrolled.created else "already enrolled"
    out.print(f"{verb}: {enrolled.enrollment} (patient {enrolled.patient}, {pathway})", markup=False)


@app.command()
def advance(
    enrollment: Annotated[Optional[str], typer.Argument(help="Enrollment id")] = None,
    due: Annotated[bool, typer.Option("--due", help="Advance every enrollment that has come due")] = False,
    at: Annotated[Optional[str], typer.Option("--at", help="Date YYYY-MM-DD (default: today)")] = None,
) -> None:
    """Advance enrollments in a Prefect flow run (embedded server unless PREFECT_API_URL is set)."""
    from collections import defaultdict

    from pathways.orchestration.service import at_clock
    from pathways.store.db import UnknownEnrollment

    if (enrollment is None) == (not due):
        err.print("error: give an ENROLLMENT or --due", markup=False)
        raise typer.Exit(2)
    clock = at_clock(_clock(), _parse_date(at, "--at"))
    store = _store_or_fail(clock)
    ids = [enrollment] if enrollment else store.enrollments_due(clock.today())
    groups: dict[str, list[str]] = defaultdict(list)
    for eid in ids:
        try:
            state, _ = store.load(eid)
        except UnknownEnrollment as exc:
            err.print(f"error: {exc}", markup=False)
            raise typer.Exit(1)
        groups[state.pathway].append(eid)
    if not ids:
        out.print(f"nothing due on {clock.today()}", markup=False)
        return
    from pathways.orchestration.flows import advance_with_prefect

    for pathway, members in sorted(groups.items()):
        kinds = advance_with_prefect(pathway, members, clock.today())
        summary = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "no new decisions"
        out.print(f"{pathway}: advanced {len(members)} enrollment(s) on {clock.today()}: {summary}", markup=False)


@app.command()
def status(enrollment: Annotated[str, typer.Argument(help="Enrollment id")]) -> None:
    """Where an enrollment stands: steps, due dates, open escalations, goals."""
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
        table.add_row(step, progress.status, str(progress.due_on or ""), ", ".join(str(d) for d in progress.done_on), "\n".join(progress.reasons[-2:]).replace("[", "\\["))
    out.print(table)
    for step, escalation in state.escalations.items():
        out.print(f"open escalation {step}: {escalation.severity}, {escalation.action} since {escalation.since}", markup=False)
    for goal, progress in state.goals.items():
        out.print(f"goal {goal}: {progress.fact} {progress.target} by {progress.deadline} - {progress.status} (baseline {progress.baseline}, latest {progress.latest})", markup=False)


@app.command()
def record(
    enrollment: Annotated[str, typer.Argument(help="Enrollment id")],
    step: Annotated[str, typer.Argument(help="Step id")],
    data: Annotated[Path, typer.Option("--data", help="JSON object: output fact -> value (or {value, unit})")],
    at: Annotated[Optional[str], typer.Option("--at", help="Date YYYY-MM-DD (default: today)")] = None,
) -> None:
    """Record a step done with the outputs people recorded; validated against the step."""
    import json

    from pathways.orchestration.service import Runtimes, at_clock, record_step
    from pathways.runtime.core import RecordError
    from pathways.store.db import UnknownEnrollment

    try:
        values = json.loads(data.read_text(encoding="utf-8"))
    except OSError as exc:
        err.print(f"error: {data}: cannot read: {exc.strerror}", markup=False)
        raise typer.Exit(1)
    except json.JSONDecodeError as exc:
        err.print(f"error: {data}:{exc.lineno}:{exc.colno}: malformed JSON: {exc.msg}", markup=False)
        raise typer.Exit(1)
    if not isinstance(values, dict):
        err.print(f"error: {data}: expected a JSON object of output fact -> value", markup=False)
        raise typer.Exit(1)
    clock = at_clock(_clock(), _parse_date(at, "--at"))
    store = _store_or_fail(clock)
    try:
        events = record_step(store, Runtimes(), enrollment, step, values, clock)
    except (RecordError,) as exc:
        for problem in exc.problems:
            err.print(f"error: {data}: {problem}", markup=False)
        raise typer.Exit(1)
    except UnknownEnrollment as exc:
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(1)
    out.print(f"recorded {step} for {enrollment}: " + ", ".join(f"{e.kind} {e.step or ''}".strip() for e in events), markup=False)


def _patient_files(folder: Path) -> list[Path]:
    """The patient files in a folder (FHIR bundles or facts JSON); exit 1 when there are none."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name.lower().endswith((".json", ".json.gz", ".xml"))) if folder.is_dir() else []
    if not files:
        err.print(f"error: {folder}: no patient files (.json, .json.gz, .xml)", markup=False)
        raise typer.Exit(1)
    return files


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
    """Enrol every patient file in a folder and advance them all in one Prefect flow run."""
    from rich.progress import Progress
    from rich.table import Table

    from pathways.facts.load import PatientFileError
    from pathways.orchestration.service import Runtimes, at_clock, enroll_file

    clock = at_clock(_clock(), _parse_date(at, "--at"))
    files = _patient_files(cohort)
    store = _store_or_fail(clock)
    runtimes = Runtimes()
    try:
        runtimes.get(name)
    except ProblemsFound as exc:
        _fail(exc.problems)
    enrolled, failed = [], []
    with Progress(console=err, transient=True) as progress:
        job = progress.add_task(f"enrolling {len(files)} patients", total=len(files))
        for path in files:
            try:
                enrolled.append(enroll_file(store, runtimes, name, path, clock).enrollment)
            except PatientFileError as exc:
                failed.append((path.name, "; ".join(exc.problems)))
            progress.advance(job)
    kinds = {}
    if enrolled:
        from pathways.orchestration.flows import advance_with_prefect

        kinds = advance_with_prefect(name, enrolled, clock.today())
    table = Table(title=f"{name}: cohort {cohort} on {clock.today()}", title_justify="left")
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_row("patient files", str(len(files)))
    table.add_row("enrolled and advanced", str(len(enrolled)))
    table.add_row("failed to read", str(len(failed)))
    for kind, n in sorted(kinds.items()):
        table.add_row(f"decisions: {kind}", str(n))
    out.print(table)
    _report_failed(failed)


@app.command()
def simulate(
    name: Annotated[str, typer.Argument(help="Pathway name")],
    patients: Annotated[Path, typer.Option("--patients", help="Folder of patient files (FHIR bundles or facts JSON)")],
    months: Annotated[int, typer.Option("--months", min=1, max=120, help="How long to simulate")] = 12,
    start: Annotated[Optional[str], typer.Option("--start", help="First day YYYY-MM-DD (default: today)")] = None,
) -> None:
    """Fast-forward patients through the pathway on a simulated clock, then a summary.
    Stores nothing; due steps are completed with the latest known values of their outputs."""
    from rich.table import Table

    from pathways.definition.loader import load_pathway
    from pathways.facts.load import PatientFileError, load_patient_file
    from pathways.runtime.core import Runtime
    from pathways.runtime.simulate import simulate as run_simulation

    first = _parse_date(start, "--start") or _clock().today()
    files = _patient_files(patients)
    try:
        runtime = Runtime(load_pathway(name))
    except ProblemsFound as exc:
        _fail(exc.problems)
    if not out.is_terminal:
        out.width = max(out.width, 160)
    table = Table(title=f"{name}: {months} months from {first}", title_justify="left")
    for column in ("patient", "steps done", "reviews done", "gated", "escalations", "goals met", "goals missed", "done without a required input"):
        table.add_column(column, justify="left" if column in ("patient", "done without a required input") else "right", overflow="fold")
    totals: dict[str, int] = {}
    failed = []
    reviews = {s.id for s in runtime.spec.steps if s.stage == "reviews"}
    for path in files:
        try:
            facts = load_patient_file(path).facts
        except PatientFileError as exc:
            failed.append((path.name, "; ".join(exc.problems)))
            continue
        result = run_simulation(runtime, facts, first, months)
        counts = result.counts
        row = {
            "done": counts["done"], "reviews": sum(1 for e in result.events if e.kind == "done" and e.step in reviews),
            "gated": counts["gated"], "escalated": counts["escalated"], "met": counts["goal_met"], "missed": counts["goal_missed"],
        }
        for key, value in row.items():
            totals[key] = totals.get(key, 0) + value
        table.add_row(facts.patient, *(str(v) for v in row.values()), ", ".join(sorted(result.without_input)) or "-")
    table.add_row("[bold]total[/bold]", *(str(totals.get(k, 0)) for k in ("done", "reviews", "gated", "escalated", "met", "missed")), "")
    out.print(table)
    _report_failed(failed)


@app.command()
def serve(
    cron: Annotated[str, typer.Option("--cron", help="When the daily due run starts (cron, UTC)")] = "0 6 * * *",
) -> None:
    """Create the deployments (daily `pathways-due`, on-demand `pathways-advance`) and serve them
    from this process; reviews become scheduled flow runs. Needs PREFECT_API_URL for a server."""
    import os

    os.environ["PATHWAYS_SCHEDULE_REVIEWS"] = "1"
    from prefect import serve as prefect_serve

    from pathways.orchestration.flows import advance_due, advance_enrollments

    prefect_serve(
        advance_due.to_deployment(name="daily", cron=cron),
        advance_enrollments.to_deployment(name="batch"),
    )


@app.command()
def deploy(
    pool: Annotated[str, typer.Option("--pool", help="Prefect work pool (type process)")] = "pathways",
) -> None:
    """Register the deployments on a work pool, for `pathways worker` processes on any machine."""
    from pathways.orchestration.deploy import register

    for name in register(pool):
        out.print(f"deployment {name} on work pool {pool}", markup=False)


@app.command()
def worker(
    pool: Annotated[str, typer.Option("--pool", help="Prefect work pool")] = "pathways",
    limit: Annotated[int, typer.Option("--limit", help="Flow runs at once")] = 2,
) -> None:
    """Start a Prefect worker for the pathways work pool (runs flow runs in subprocesses)."""
    import os
    import shutil
    import sys

    prefect = shutil.which("prefect", path=os.path.dirname(sys.executable)) or shutil.which("prefect")
    os.execvp(prefect, [prefect, "worker", "start", "--pool", pool, "--type", "process", "--limit", str(limit)])


def main() -> None:  # console script entry point
    try:
        app()
    except KeyboardInterrupt:  # pragma: no cover
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    main()
