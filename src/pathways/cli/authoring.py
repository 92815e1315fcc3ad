"""Commands for pathway authors: validate, show, diagram, check, schema, new, diff, publish."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from pathways.cli import ui
from pathways.cli.common import _clock, _places, _require, _settings, _store_or_fail, _today
from pathways.cli.ui import fail, fail_with_problems, print_problems
from pathways.errors import ProblemsFound, errors


def validate(
    paths: Annotated[Optional[list[str]], typer.Argument(help="Pathway names, files or folders (default: ./pathways)")] = None,
) -> None:
    """Check pathway, shared library and cases files, and each folder's cross-pathway interaction
    library (_shared/interactions.yaml); report every problem as file:line:col."""
    from pathways.rules.casefile import validate_with_cases

    result = validate_with_cases(paths or ["pathways"], _places())
    if errors(result.problems):
        fail_with_problems(result.problems)
    print_problems(result.problems)  # only warnings are left: shown, but the files are valid
    steps = sum(len(d.model.steps) for d in result.pathways)
    names = ", ".join(f"{d.model.id} {d.model.version}" for d in result.pathways) or "none"
    ui.out.print(
        f"ok: {result.files} files{f' ({len(result.cases)} of them cases)' if result.cases else ''}, {len(result.pathways)} pathways ({names}), "
        f"{len(result.libraries)} shared libraries, {steps} steps"
        + (f", {result.interaction_rules} interaction rules" if result.interaction_rules else ""),
        markup=False,
    )


def show(name: Annotated[str, typer.Argument(help="Pathway name (e.g. diabetes) or path")]) -> None:
    """Stages, steps, gates and disciplines of a pathway as a readable table."""
    from pathways.definition.loader import load_pathway
    from pathways.views.show import render_show

    try:
        loaded = load_pathway(name, places=_places())
    except ProblemsFound as exc:
        fail_with_problems(exc.problems)
    render_show(loaded, ui.out)


def diagram(
    name: Annotated[str, typer.Argument(help="Pathway name (e.g. diabetes) or path")],
    html: Annotated[Optional[Path], typer.Option("--html", help="Also write a self-contained page that renders the diagram offline")] = None,
) -> None:
    """Print the pathway as a Mermaid flowchart; --html OUT writes an offline page."""
    from pathways.definition.loader import load_pathway
    from pathways.views.diagram import DiagramError, mermaid, write_html

    try:
        loaded = load_pathway(name, places=_places())
    except ProblemsFound as exc:
        fail_with_problems(exc.problems)
    text = mermaid(loaded)
    if html is None:
        ui.out.print(text, markup=False)
        return
    try:
        write_html(loaded, text, html, _settings().mermaid_js)
    except DiagramError as exc:
        fail(f"error: {exc}")
    ui.out.print(f"wrote {html}", markup=False)


def check(
    names: Annotated[Optional[list[str]], typer.Argument(help="Pathway names (default: every pathway with a cases.yaml)")] = None,
) -> None:
    """Run each pathway's assurance cases (cases.yaml) and report threshold coverage."""
    from pathways.definition.loader import available_pathways, find_pathway, load_pathway
    from pathways.rules.cases import load_cases, run_cases

    today = _today()
    chosen = names or [n for n, f in available_pathways(_places()).items() if (f.parent / "cases.yaml").is_file()]
    failed = False
    for name in chosen:
        try:
            loaded = load_pathway(name, places=_places())
            cases_file = find_pathway(name, _places()).parent / "cases.yaml"
            if not cases_file.is_file():
                ui.err.print(f"{cases_file}: no cases for {name}", markup=False)
                failed = True
                continue
            cases = load_cases(cases_file)
        except ProblemsFound as exc:
            print_problems(exc.problems)
            failed = True
            continue
        failed = _print_cases(run_cases(loaded, cases, today), name, loaded.spec.id) or failed
    if not names:
        failed = _check_plans() or failed
    if failed:
        raise typer.Exit(1)


def _check_plans() -> bool:
    """The combined-plan cases (`_shared/plan-cases.yaml` of the first pathway folder that has
    one), reported like a pathway's cases; True when something failed."""
    from pathways.definition.loader import pathway_roots
    from pathways.runtime.plan_cases import check_plan_cases, plan_cases_file

    file = next((f for f in map(plan_cases_file, pathway_roots(_places())) if f is not None), None)
    if file is None:
        return False
    try:
        report = check_plan_cases(file, _places())
    except ProblemsFound as exc:
        print_problems(exc.problems)
        return True
    return _print_cases(report, "combined plans", "plans")


def _print_cases(report, title: str, prefix: str) -> bool:
    """A case report (a pathway's or the combined plans'): the table, each failure as
    ``FAIL PREFIX/CASE: ...``, the uncovered threshold sides, the counts; True when something failed."""
    from rich.table import Table

    table = Table(title=f"{title}: {len(report.results)} cases", title_justify="left", expand=True)
    table.add_column("case", no_wrap=True)
    table.add_column("result", no_wrap=True)
    table.add_column("details", ratio=1, overflow="fold")
    for result in report.results:
        ok = not result.failures
        table.add_row(result.case.id, "[green]pass[/green]" if ok else "[red]FAIL[/red]", result.case.description.replace("[", "\\["))
    ui.out.print(table)
    for result in report.failed:
        for failure in result.failures:
            ui.out.print(f"FAIL {prefix}/{result.case.id}: {failure}", markup=False)
    for line in report.uncovered:
        ui.out.print(f"uncovered threshold: {line}", markup=False)
    passed = len(report.results) - len(report.failed)
    ui.out.print(f"{title}: {passed} passed, {len(report.failed)} failed; {len(report.uncovered)} threshold sides not covered",
                 markup=False)
    return bool(report.failed) or bool(report.uncovered)


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
        fail_with_problems(exc.problems)
    key = runtime.evaluator.plan.version_key
    try:
        created = publish_version(store, runtime.loaded, key)
    except VersionTaken as exc:
        fail(f"error: {exc}; nothing published")
    ui.out.print(f"{'published' if created else 'already published'}: {key}", markup=False)


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
            fail_with_problems(exc.problems)
        except StoreError as exc:
            fail(f"error: {exc}")
    (label_from, old), (label_to, new) = sides
    changes = diff_pathways(old, new)
    if as_json:
        ui.out.print(json.dumps({"from": label_from, "to": label_to, "changes": [c.as_json() for c in changes]}, ensure_ascii=False, indent=2),
                  markup=False)
    else:
        render_diff(label_from, label_to, changes, ui.out)


def schema(
    kind: Annotated[str, typer.Argument(help="pathway, library or cases")] = "pathway",
) -> None:
    """Print the JSON Schema of a file format (for editors), from the same models that check it."""
    import json

    from pathways.rules.formats import FORMATS, json_schema

    if kind not in FORMATS:
        fail(f"error: unknown format '{kind}': one of {', '.join(FORMATS)}", code=2)
    ui.out.print(json.dumps(json_schema(kind), ensure_ascii=False, indent=1), markup=False, soft_wrap=True)


def new(
    name: Annotated[str, typer.Argument(help="The new pathway's id (lower case letters, digits, _)")],
    into: Annotated[Path, typer.Option("--into", help="The folder to write NAME/pathway.yaml in")] = Path("."),
) -> None:
    """Write a small pathway skeleton that validates, to start from."""
    from pathways.definition.skeleton import SkeletonError, write_skeleton

    try:
        file = write_skeleton(name, into)
    except SkeletonError as exc:
        fail(f"error: {exc}")
    except OSError as exc:
        fail(f"error: cannot write in {into}: {exc.strerror}")
    ui.out.print(f"wrote {file}; next: pathways validate {file.parent}", markup=False)


def config() -> None:
    """Print the effective settings (secrets hidden) and where each came from: the environment,
    a file, or the default. A wrong value is named with the fix (exit 2)."""
    from pathways.orchestration.settings import current, shown_lines

    for line in shown_lines(current()):
        ui.out.print(line, markup=False)
