"""The `pathways` application object and what several audiences' commands share: the clock, the
store, the acting user and their permission, versions and enrollments looked up or the command
ends with a clear error, and stopping a cohort cleanly on Ctrl-C or SIGTERM."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Optional

import typer

from pathways.cli import ui
from pathways.cli.ui import fail, fail_with_problems
from pathways.errors import ProblemsFound
from pathways.store.vocabulary import Action, Key


app = typer.Typer(
    name="pathways",
    help="Personal care pathways (persoonlijke zorgtrajecten): author, validate, show and run them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _one_patient_file(facts: Optional[Path], fhir: Optional[Path]) -> Path:
    if (facts is None) == (fhir is None):
        fail("error: give exactly one of --facts FILE.json or --fhir BUNDLE", code=2)
    return facts or fhir


def _settings():
    """The settings (every PATHWAYS_* variable, read and checked once per process; a wrong one
    is a SettingError that `main` reports): the command line is an entry point, it reads them
    here and passes them, or values from them, to the library."""
    from pathways.orchestration.settings import current

    return current()


def _places():
    """Where pathways, libraries and templates are looked for (PATHWAYS_PATH, PATHWAYS_TEMPLATES)."""
    return _settings().places


def _today():
    return _settings().clock().today()


def _parse_date(text: str | None, what: str):
    import datetime as dt

    if text is None:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        fail(f"error: {what} '{text}' is not a date; write YYYY-MM-DD")


def _clock():
    return _settings().clock()


def _store_or_fail(clock):
    from pathways.orchestration.service import open_store
    from pathways.store.db import StoreError

    try:
        return open_store(clock)
    except StoreError as exc:
        fail(f"error: {exc}")


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
        fail(f"error: {exc} (nothing advanced)")
    for key in groups:
        try:
            Runtimes().get_version(key, store)
        except VersionNotPublished as exc:
            fail(f"error: {exc} ({len(groups[key])} enrollment(s) of it; nothing advanced)")
        except ProblemsFound as exc:
            fail_with_problems(exc.problems)


def _version_labels(groups) -> dict[str, str]:
    """A group's name in the output: its pathway, with the version when two versions of it run."""
    ids = [key.split("@", 1)[0] for key in groups]
    return {key: pid if ids.count(pid) == 1 else f"{pid} {key.split('@', 1)[1].split('#', 1)[0]}" for key, pid in zip(groups, ids)}


def _patient_files(folder: Path) -> list[Path]:
    """The patient files in a folder (pathways.facts.cohort); exit 1 when there are none."""
    from pathways.facts.cohort import NoPatientFiles, patient_files

    try:
        return patient_files(folder)
    except NoPatientFiles as exc:
        fail(f"error: {exc}")


def _report_failed(failed: list[tuple[str, str]]) -> None:
    """Name every file that could not be read; the exit status says some failed."""
    for file_name, why in failed:
        ui.err.print(f"error: {file_name}: {why}", markup=False)
    if failed:
        raise typer.Exit(1)


def _reevaluate(store, groups: dict[str, list[str]], at) -> None:
    """Advance a patient's enrollments (each on ``at``, or the day it stands on when later) in
    Prefect flow runs, and say what changed."""
    from pathways.orchestration.advancing import advance_pathways_with_prefect

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
            ui.out.print(f"{labels[key]}: re-evaluated on {day}: {summary}", markup=False)
    after = store.load_many(ids)
    for eid in ids:
        state = after[eid][0]
        for step in sorted(set(state.escalations) - set(before[eid].escalations)):
            escalation = state.escalations[step]
            ui.out.print(f"escalation opened: {step} ({escalation.severity}, {escalation.action}) for {eid}", markup=False)


def _actor():
    from pathways.access import ConfigurationError

    try:
        return _settings().actor()
    except ConfigurationError as exc:
        fail(f"error: {exc}", code=2)


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
        store.record_audit([Record(Action.ACCESS_DENIED, subject=subject or what,
                                   payload={Key.PERMISSION: permission, Key.ATTEMPTED: what, Key.VIA: actor.via})])
    except StoreError as exc:
        ui.err.print(f"warning: the denial could not be audited: {exc}", markup=False)
    fail(f"error: access denied: {AccessDenied(actor, permission, what)}")


def _enrollment_or_fail(store, enrollment: str):
    from pathways.store.db import UnknownEnrollment

    try:
        return store.load(enrollment)[0]
    except UnknownEnrollment as exc:
        fail(f"error: {exc}")


def _runtime_for(state):
    from pathways.orchestration.service import Runtimes

    from pathways.orchestration.versions import VersionNotPublished

    try:
        return Runtimes().get_version(state.version_key)  # the version it runs, as published
    except ProblemsFound as exc:
        fail_with_problems(exc.problems)
    except VersionNotPublished as exc:
        fail(f"error: {exc}")


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
                ui.err.print(f"stopped after {done} patient(s) of the cohort: the patient files after them were not read", markup=False)
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
    ui.err.print(f"interrupted ({interrupt.signal_name()}): stopped cleanly; what was done is kept, nothing was left half done. "
              "Run the same command again to do the rest (nothing is done twice).", markup=False)
    return interrupt.exit_status()
