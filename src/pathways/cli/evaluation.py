"""Commands that evaluate without changing a stored enrollment: evaluate, simulate, plan."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from pathways.cli import ui
from pathways.cli.common import _clock, _one_patient_file, _places, _parse_date, _patient_files, _report_failed, _require, _store_or_fail, _today, _until_stopped
from pathways.cli.ui import fail, fail_with_problems
from pathways.errors import ProblemsFound, errors


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
        fail(f"error: --at {when} is in the future (today is {today})")
    try:
        loaded = load_pathway(name, places=_places())
    except ProblemsFound as exc:
        fail_with_problems(exc.problems)
    path = facts or fhir
    try:
        patient = load_facts_json(path) if facts is not None else load_fhir_file(path)
    except PatientFileError as exc:  # the parts that parsed are checked against the pathway too
        from pathways.facts.problems import every_problem

        problems = every_problem(path, exc.schema, exc.partial, loaded.facts, today) if exc.schema else exc.problems
        for problem in problems:
            ui.err.print(f"error: {problem}", markup=False)
        fail(f"{len(problems)} problem{'s' if len(problems) > 1 else ''} in the patient file; nothing evaluated")
    evaluator = PathwayEvaluator(loaded)
    result = evaluator.evaluate(patient.facts, when, today)
    errors = [i for i in result.issues if not i.excluded]
    if errors:
        for issue in errors:
            ui.err.print(f"error: {path}: {issue}", markup=False)
        fail(f"{len(errors)} problem{'s' if len(errors) > 1 else ''} in the patient file; nothing evaluated")
    for issue in result.issues:
        ui.err.print(f"warning: {path}: {issue}", markup=False)
    if result.unmapped_codes:
        ui.err.print(f"note: {len(result.unmapped_codes)} coded entries in {path} are used by no fact of {loaded.spec.id} (--verbose lists them)", markup=False)
        if verbose:
            for line in result.unmapped_codes:
                ui.err.print(f"  {line}", markup=False)
    if verbose:
        for note in patient.notes:
            ui.err.print(f"note: {note}", markup=False)
    if as_json:
        ui.out.print(json.dumps(result.to_json(), ensure_ascii=False, indent=2), markup=False)
        return
    from pathways.views.evaluation import render_evaluation

    render_evaluation(result, ui.out, patient.facts.patient)


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
    from pathways.facts.cohort import read_cohort
    from pathways.runtime.simulate import simulate as run_simulation

    first = _parse_date(start, "--start") or _clock().today()
    files = _patient_files(patients)
    try:
        runtime = Runtime(load_pathway(name, places=_places()))
    except ProblemsFound as exc:
        fail_with_problems(exc.problems)
    failed = []
    reviews = {s.id for s in runtime.spec.steps if s.stage == "reviews"}
    rows = []
    for label, patient, _ in _until_stopped(read_cohort(files)):
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
        ui.out.print_json(json.dumps({"pathway": name, "start": first.isoformat(), "months": months, "patients": rows, "total": totals,
                                   "failed": [{"file": f, "problem": why} for f, why in failed]}))
    else:
        if not ui.out.is_terminal:
            ui.out.width = max(ui.out.width, 160)
        table = Table(title=f"{name}: {months} months from {first}", title_justify="left")
        for column in ("patient", *columns.values(), "done without a required input"):
            table.add_column(column, justify="left" if column in ("patient", "done without a required input") else "right", overflow="fold")
        for row in rows:
            table.add_row(row["patient"], *(str(row[key]) for key in columns), ", ".join(row["done_without_required_input"]) or "-")
        table.add_row("[bold]total[/bold]", *(str(totals[key]) for key in columns), "")
        ui.out.print(table)
    _report_failed(failed)


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
        fail(f"error: --lang '{lang}': use nl or en", code=2)
    if document is not None and document.suffix.lower() not in (".md", ".pdf"):
        fail(f"error: --document {document}: write the zorgplan as a .md or .pdf file", code=2)
    if document is not None or fhir is not None:
        _require("document.render", f"write the care plan of {patient}", patient)
    day = _parse_date(at, "--at") or _today()
    store = _store_or_fail(_clock())
    runtimes = Runtimes(templates=False)
    kept: list[str] = []  # what was recorded (each in its own transaction) before the plan was made
    try:
        window_days = bundling_window(window)
        if priority:
            record_priorities(store, runtimes, patient, priority, day)
            kept.append("the priorities given were recorded")
        if resolve is not None:
            resolve_plan_escalation(store, patient, resolve, reason, day)
            kept.append(f"the escalation of {resolve} was closed")
        made, _ = make_plan(store, runtimes, patient, day, window_days)
        parts = plan_parts(store, runtimes, patient) if document is not None or fhir is not None else []
        if document is not None:
            write_plan_document(store, made.to_json(), parts, document, lang)
        if fhir is not None:
            count = write_plan_fhir(made.to_json(), parts, day, fhir)
    except ProblemsFound as exc:
        fail_with_problems(exc.problems)
    except (PlanError, VersionNotPublished) as exc:
        fail(f"error: {exc}; no plan stored" + (f" ({' and '.join(kept)})" if kept else ""))
    except (DocumentError, ExportError) as exc:
        fail(f"error: {exc}; nothing written")
    if document is not None:
        ui.err.print(f"wrote {document}", markup=False)
    if fhir is not None:
        ui.err.print(f"wrote {fhir} ({count} resources, validated)", markup=False)
    if as_json:
        ui.out.print(json.dumps(made.to_json(), indent=2, ensure_ascii=False), markup=False)
    else:
        print_plan(ui.out, made.to_json())
