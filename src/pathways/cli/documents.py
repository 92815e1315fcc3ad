"""Commands that write documents and exchange formats: render, fhir export."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from pathways.cli import ui
from pathways.cli.common import _clock, _enrollment_or_fail, _places, _require, _runtime_for, _store_or_fail
from pathways.cli.ui import fail, fail_with_problems
from pathways.errors import ProblemsFound


def render(
    document: Annotated[str, typer.Argument(help="zorgplan, verwijsbrief, evaluatieverslag or overdracht")],
    enrollment: Annotated[str, typer.Argument(help="Enrollment id")],
    fmt: Annotated[str, typer.Option("--format", help="html, pdf or md")] = "html",
    out_path: Annotated[Optional[Path], typer.Option("--out", help="Output file (default: ENROLLMENT-DOCUMENT.FORMAT; '-' prints md or html)")] = None,
    lang: Annotated[str, typer.Option("--lang", help="nl (default) or en")] = "nl",
    escalation: Annotated[Optional[str], typer.Option("--escalation", help="For a verwijsbrief: the escalation step (default: the open referral)")] = None,
) -> None:
    """Write a care-plan document for an enrollment from the pathway's templates."""
    from pathways.definition.documents import DOCUMENTS
    from pathways.store.audit import document_rendered
    from pathways.views.documents import FORMATS, DocumentError, write_atomically
    from pathways.views.enrollment_documents import make_document

    if fmt not in FORMATS:
        fail(f"error: --format '{fmt}': use one of {', '.join(FORMATS)}", code=2)
    if lang not in ("nl", "en"):
        fail(f"error: --lang '{lang}': use nl or en", code=2)
    if out_path is not None and str(out_path) == "-" and fmt == "pdf":
        fail("error: a PDF is not printed: give --out FILE.pdf", code=2)
    to_stdout = out_path is not None and str(out_path) == "-"
    if out_path is not None and not to_stdout and not out_path.parent.is_dir():
        fail(f"error: --out {out_path}: the folder {out_path.parent} does not exist")
    actor = _require("document.render", f"render {document} for {enrollment}", enrollment)
    clock = _clock()
    store = _store_or_fail(clock)
    state = _enrollment_or_fail(store, enrollment)
    runtime = _runtime_for(state)
    named = {s.document for s in runtime.spec.steps if s.document}
    if document not in DOCUMENTS and document not in named:
        from pathways.errors import did_you_mean

        known = sorted(set(DOCUMENTS) | named)
        fail(f"error: unknown document '{document}' ({did_you_mean(document, known) or 'documents: ' + ', '.join(known)})")
    identity = store.identity(state.patient) if actor.may("identity.read") else None
    try:
        data = make_document(store, runtime, state, document, fmt, lang, clock.today(), identity, escalation)
    except DocumentError as exc:
        fail(f"error: {exc}")
    target = None if to_stdout else (out_path or Path(f"{enrollment}-{document}.{fmt}"))
    if target is not None:
        write_atomically(target, data)
    # disclosed: the trail says what was rendered for whom (a hash of it, not the text)
    store.record_audit([document_rendered(state, document, fmt, lang, data, identifying=identity is not None)])
    if target is None:
        sys.stdout.write(data.decode("utf-8"))
    else:
        ui.out.print(f"wrote {target}", markup=False)


fhir_app = typer.Typer(help="FHIR R4 exchange: export pathways and care plans.", no_args_is_help=True)


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
        fail(f"error: --out {out_file}: the folder {out_file.parent} does not exist")
    try:
        if what in available_pathways(_places()) or Path(what).exists():
            from pathways.definition.loader import load_pathway

            try:
                resources = plan_definition(load_pathway(what, places=_places()))
            except ProblemsFound as exc:
                fail_with_problems(exc.problems)
        else:
            _require("document.render", f"export the care plan of {what}", what)
            clock = _clock()
            store = _store_or_fail(clock)
            from pathways.store.db import UnknownEnrollment

            try:
                state, _ = store.load(what)
            except UnknownEnrollment:
                from pathways.errors import did_you_mean

                hint = did_you_mean(what, list(available_pathways(_places())))
                fail(f"error: '{what}' is neither a pathway nor an enrollment{' (' + hint + ')' if hint else ''}")
            runtime = _runtime_for(state)
            resources = care_plan(runtime.loaded, state, clock.today())
        data = bundle(resources)
    except ExportError as exc:
        fail(f"error: {exc}; nothing was written")
    text = write(out_file, data)
    if out_file is None:
        sys.stdout.write(text + "\n")
    else:
        kinds: dict[str, int] = {}
        for r in resources:
            kinds[r["resourceType"]] = kinds.get(r["resourceType"], 0) + 1
        ui.out.print(f"wrote {out_file}: " + ", ".join(f"{n} {k}" for k, n in kinds.items()), markup=False)
