"""The `pathways` command. Thin: each command calls the library and prints.

One module per audience: `authoring` (validate, show, diagram, check, schema, new, diff, publish),
`evaluation` (evaluate, simulate, plan), `running` (enroll, advance, status, record, resolve,
signoff, resume, run, facts, patient, serve, deploy, worker, migrate, user, web), `documents`
(render, fhir), `audit` (audit *); `common` holds the application object and what several share,
`ui` the consoles and `fail`, the one way a command ends on an error. Commands are registered
here, in the order `pathways --help` lists them.

Exit codes: 0 success; 1 problems in the input (listed as file:line:col: CODE message (hint));
2 wrong usage of the command itself. Commands that do not orchestrate never import Prefect."""

from __future__ import annotations

import sys

from pathways.cli import audit, authoring, documents, evaluation, running, versions
from pathways.cli import ui
from pathways.cli.common import _stopped_cleanly, app

# the commands in the order `pathways --help` lists them
app.command()(authoring.validate)
app.command()(authoring.show)
app.command()(authoring.diagram)
app.command()(evaluation.evaluate)
app.command()(authoring.check)
app.command()(running.enroll)
app.command()(running.advance)
app.command()(running.status)
app.command()(running.record)
app.command()(running.resolve)
app.command()(running.signoff)
app.command()(running.resume)
app.command()(running.run)
app.add_typer(running.facts_app, name="facts")
app.command()(evaluation.simulate)
app.command()(running.serve)
app.command()(running.deploy)
app.command()(running.worker)
app.command()(authoring.publish)
app.command()(running.patient)
app.command()(documents.render)
app.add_typer(documents.fhir_app, name="fhir")
app.add_typer(audit.audit_app, name="audit")
app.command()(authoring.diff)
app.command()(evaluation.plan)
app.add_typer(running.user_app, name="user")
app.command()(running.web)
app.add_typer(versions.migrate_app, name="migrate")
app.command()(authoring.schema)
app.command()(authoring.new)
app.command()(authoring.config)


def main() -> None:  # console script entry point
    from pathways import interrupt
    from pathways.errors import PrefectUnavailable, SettingError
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
            ui.err.print(f"error: {exc}", markup=False)
            code = 2
        except PrefectUnavailable as exc:  # Prefect's server not reached, or the embedded one not started
            ui.err.print(f"error: {exc}", markup=False)
            code = 1
        except StoreError as exc:  # the store unreachable or locked after its retries, wherever it was met
            ui.err.print(f"error: {exc}", markup=False)
            code = 1
        except KeyboardInterrupt:  # pragma: no cover (only before the handlers are in place)
            code = 130
        except BaseException:
            if not interrupt.requested():
                raise
            code = None  # the stop itself, seen through a library that wrapped it (pydantic, while Prefect loads)
        code = _stopped_cleanly(code)
    sys.exit(code)
