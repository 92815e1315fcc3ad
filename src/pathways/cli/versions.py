"""Commands that move a pathway's enrollments between its published versions: migrate preview,
apply, revert (the diff of two versions is an authoring command)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from pathways.cli import ui
from pathways.cli.common import _clock, _parse_date, _require, _store_or_fail
from pathways.cli.ui import fail, fail_all, fail_with_problems
from pathways.errors import ProblemsFound


migrate_app = typer.Typer(help="Move a pathway's enrollments to a newer published version: preview, apply, revert "
                               "(coordinators and admins).", no_args_is_help=True)


def _migrating(action):
    """Run a migration action; its refusals and bad input as one-line errors (exit 1), nothing written."""
    from pathways.access import AccessDenied
    from pathways.orchestration.migrate import MigrationRefused
    from pathways.orchestration.versions import VersionNotPublished

    try:
        return action()
    except ProblemsFound as exc:
        fail_with_problems(exc.problems)
    except MigrationRefused as exc:
        fail_all([f"error: {problem}" for problem in exc.problems])
    except (VersionNotPublished, AccessDenied) as exc:
        fail(f"error: {exc}")


@migrate_app.command("preview")
def migrate_preview(
    pathway: Annotated[str, typer.Argument(help="Pathway id (e.g. diabetes)")],
    to: Annotated[str, typer.Option("--to", help="The published version to move to (e.g. 1.3.0), or draft: the files on disk before publishing (shown, not kept)")],
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
        fail(f"error: --html {html}: the folder {html.parent} does not exist", code=2)
    store = _store_or_fail(clock)
    result = _migrating(lambda: preview(store, Runtimes(), pathway, to, clock.today())).as_dict()
    if html is not None:
        render_html(result, html)
    if as_json:
        ui.out.print(json.dumps(result, indent=2), markup=False)
    else:
        for line in summary_lines(result):
            ui.out.print(line, markup=False)
        if result["draft"]:
            ui.out.print(f"a preview of the draft on disk, not kept: publish it (`pathways publish {pathway}`), then preview and "
                         f"apply its published version", markup=False)
        else:
            ui.out.print(f"apply it with: pathways migrate apply {result['preview']}", markup=False)


@migrate_app.command("apply")
def migrate_apply(digest: Annotated[str, typer.Argument(metavar="HASH", help="The preview's hash (from `migrate preview`)")]) -> None:
    """Move the enrollments of a preview to its version, exactly as previewed; refused when
    anything it read has changed since."""
    from pathways.orchestration.migrate import apply
    from pathways.orchestration.service import Runtimes

    _require("enrollment.migrate", "apply a migration", digest)
    store = _store_or_fail(_clock())
    moved = _migrating(lambda: apply(store, Runtimes(), digest))
    ui.out.print(f"migrated {len(moved.moved)} enrollment(s) of {moved.pathway} to {moved.to_key}; "
              f"{len(moved.stayed)} blocked stay on their version (preview {moved.hash[:12]})", markup=False)
    if moved.lost:
        fail(f"error: {len(moved.lost)} enrollment(s) changed while migrating and stay on their version: "
                  f"{', '.join(moved.lost)}; make a new preview for them")


@migrate_app.command("revert")
def migrate_revert(digest: Annotated[str, typer.Argument(metavar="HASH", help="The hash of an applied preview")]) -> None:
    """Put the enrollments an applied preview moved back on their old version and state; refused
    when any was advanced since."""
    from pathways.orchestration.migrate import revert

    _require("enrollment.migrate", "revert a migration", digest)
    store = _store_or_fail(_clock())
    moved = _migrating(lambda: revert(store, digest))
    ui.out.print(f"reverted {len(moved.moved)} enrollment(s) of {moved.pathway} to their version before {moved.to_key} "
              f"(preview {moved.hash[:12]})", markup=False)
    if moved.lost:
        fail(f"error: {len(moved.lost)} enrollment(s) changed while reverting: {', '.join(moved.lost)}")
