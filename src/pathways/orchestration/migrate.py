"""Moving a pathway's enrollments to a newer published version: preview, apply, revert (issue 25).

``preview`` reads the pathway's enrollments batch by batch (states, facts and the rules evaluated
in bulk, as ``advance_many`` does; no whole-cohort objects), compares each under both versions
(runtime/migrate.py) and keeps only the preview, keyed by a sha256 over everything it read.
``apply`` moves exactly that preview's enrollments, refused when anything it read changed;
``revert`` puts them back. No Prefect here: the next advance runs the new version.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from pathways.errors import ProblemsFound
from pathways.orchestration.service import Runtimes, authorize
from pathways.runtime.core import EnrollmentState, Runtime
from pathways.runtime.migrate import EnrollmentPreview, compare, map_state
from pathways.runtime.stateformat import load_state
from pathways.store import previews
from pathways.store.db import StaleState, Store
from pathways.store.rows import chunks
from pathways.store.vocabulary import Action, Key

PERMISSION = "enrollment.migrate"
DRAFT = "draft"  # ``to_version`` for the files on disk, before publishing


class MigrationRefused(ValueError):
    """A preview, apply or revert that cannot be done: every reason, nothing written."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass
class Preview:
    hash: str
    pathway: str
    from_keys: list[str]
    to_key: str
    at: dt.date
    enrollments: int = 0
    unchanged: int = 0
    changed: list[dict[str, Any]] = field(default_factory=list)
    blocked: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # on the target version, or a newer one
    draft: bool = False  # a preview of the files on disk, not published: shown, not kept, cannot be applied

    def as_dict(self) -> dict[str, Any]:
        return {"preview": self.hash, "pathway": self.pathway, "from": self.from_keys, "to": self.to_key, "at": self.at.isoformat(),
                "enrollments": self.enrollments, "unchanged": self.unchanged, "changed": self.changed, "blocked": self.blocked,
                "not_considered": self.skipped, "draft": self.draft}


def version_tuple(version: str) -> tuple:
    """``1.10.0`` after ``1.9.2``: numbers compared as numbers, other parts as text."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in version.replace("-", ".").split("."))


def target(store: Store, runtimes: Runtimes, pathway: str, version: str) -> Runtime:
    """The published version ``version`` of ``pathway``, loaded from the trail (ProblemsFound when
    it does not validate); MigrationRefused when it is not published."""
    published = store.published_versions(pathway)
    keys = [key for v, key in published if v == version]
    if keys:
        return runtimes.get_version(keys[-1], store)
    try:
        on_disk = runtimes.get(pathway).loaded.spec.version
    except ProblemsFound:
        on_disk = None
    known = ", ".join(dict.fromkeys(v for v, _ in published)) or "none"
    if on_disk == version:
        raise MigrationRefused([f"{pathway} {version} is not published in this store (published: {known}); the files on disk are "
                                f"that version, a draft: publish it first with `pathways publish {pathway}`"])
    raise MigrationRefused([f"{pathway} {version} is not published in this store (published: {known}): put that version's files "
                            f"on PATHWAYS_PATH and `pathways publish {pathway}`"])


def preview(store: Store, runtimes: Runtimes, pathway: str, to_version: str, at: dt.date, batch: int = 500, keep: bool = True) -> Preview:
    """Compare every enrollment of ``pathway`` on an older version under its version and under
    ``to_version`` at ``at``; keep the preview (``keep``) and return it. Nothing else is written.
    ``to_version`` "draft": the pathway's files on disk before they are published (what publishing
    them would mean for the running patients); such a preview is not kept: publish, then preview
    the published version and apply that."""
    authorize(store, PERMISSION, f"preview a migration of {pathway}", pathway)
    draft = to_version == DRAFT
    if draft:  # the files on disk, before they are published: shown, never kept (it cannot be applied)
        new, keep = runtimes.get(pathway), False
        if store.is_published(new.evaluator.plan.version_key):
            raise MigrationRefused([f"the files of {pathway} on disk are {new.evaluator.plan.version_key}, published already: "
                                    f"preview the migration to {new.loaded.spec.version}"])
    else:
        new = target(store, runtimes, pathway, to_version)
    to_key = new.evaluator.plan.version_key
    wanted = version_tuple(new.loaded.spec.version)
    enrollments = previews.enrollments_of(store, pathway)
    if not enrollments:
        raise MigrationRefused([f"no enrollments in {pathway}: nothing to migrate"])
    olds = {key: key.split("@", 1)[1].split("#", 1)[0] for key in dict.fromkeys(k for _, k in enrollments)}
    # a draft may still carry the version number it was copied from: only its content must differ
    ahead = sorted(k for k, v in olds.items() if k == to_key or (not draft and version_tuple(v) >= wanted))
    chosen = [(eid, key) for eid, key in enrollments if key not in ahead]
    if not chosen:
        runs = ", ".join(sorted({olds[k] for k in ahead}))
        raise MigrationRefused([f"{to_version} is not newer than the version the enrollments of {pathway} run ({runs}): "
                                f"migrate to a newer published version (publish one with `pathways publish {pathway}`)"])
    result = Preview("", pathway, sorted({k for _, k in chosen}), to_key, at, skipped=[e for e, k in enrollments if k in ahead],
                     draft=draft)
    digest = hashlib.sha256(f"{pathway}|{to_key}|{at.isoformat()}\n".encode())
    items: list[dict[str, Any]] = []
    for chunk in chunks([eid for eid, _ in chosen], batch):
        for read, compared in _compare_batch(store, runtimes, new, chunk, at):
            digest.update(read.line().encode())
            items.append({"preview_hash": None, "enrollment_id": read.enrollment, "from_key": read.from_key,
                          "state_version": read.state_version, "as_of": read.as_of, "facts_digest": read.facts_digest,
                          "outcome": compared.outcome, "changes": json.dumps([c.as_dict() for c in compared.changes]),
                          "blocked": json.dumps([b.as_dict() for b in compared.blocked]), "old_state": None, "applied_version": None})
            _count(result, compared)
    result.hash = digest.hexdigest()
    if keep:
        for item in items:
            item["preview_hash"] = result.hash
        summary = {"from": result.from_keys, "enrollments": result.enrollments, "unchanged": result.unchanged,
                   "changed": len(result.changed), "blocked": len(result.blocked)}
        previews.save(store, result.hash, pathway, to_key, at, summary, items)
    return result


def _compare_batch(store: Store, runtimes: Runtimes, new: Runtime, chunk: list[str], at: dt.date):
    """(what was read, the comparison) of each enrollment of a batch; the rules of both versions
    evaluated in bulk per version and date."""
    states = store.load_many(chunk)
    patients = sorted({state.patient for state, _ in states.values()})
    facts = store.patient_facts_many(patients)
    digests = previews.fact_digests(store, patients)
    old_groups: dict[tuple[str, dt.date], list[str]] = {}
    new_groups: dict[dt.date, list[str]] = {}
    mapped = {eid: map_state(states[eid][0], new) for eid in chunk}
    for eid in chunk:
        state = states[eid][0]
        day = max(at, state.as_of)
        old_groups.setdefault((state.version_key, day), []).append(eid)
        if not mapped[eid].blocked:
            new_groups.setdefault(day, []).append(eid)
    old_made, new_made = {}, {}
    for (key, day), ids in old_groups.items():
        made = runtimes.get_version(key, store).evaluator.evaluate_many([facts[states[e][0].patient] for e in ids], day, day)
        old_made.update(zip(ids, made))
    for day, ids in new_groups.items():
        new_made.update(zip(ids, new.evaluator.evaluate_many([facts[states[e][0].patient] for e in ids], day, day)))
    for eid in chunk:
        state, version = states[eid]
        read = previews.Read(eid, state.patient, state.version_key, version, state.as_of, digests[state.patient])
        old = runtimes.get_version(state.version_key, store)
        yield read, compare(state, facts[state.patient], old, new, at, old_made.get(eid), new_made.get(eid), mapped[eid])


def _count(result: Preview, compared: EnrollmentPreview) -> None:
    result.enrollments += 1
    if compared.outcome == "blocked":
        result.blocked.append({"enrollment": compared.enrollment, "blocked": [b.as_dict() for b in compared.blocked]})
    elif compared.outcome == "changed":
        result.changed.append({"enrollment": compared.enrollment, "changes": [c.as_dict() for c in compared.changes]})
    else:
        result.unchanged += 1


@dataclass
class Moved:
    hash: str
    pathway: str
    to_key: str
    moved: list[str] = field(default_factory=list)
    stayed: list[str] = field(default_factory=list)  # blocked in the preview: on their version
    lost: list[str] = field(default_factory=list)  # changed while this ran (a concurrent advance): not moved


def _kept(store: Store, digest: str):
    found = previews.find(store, digest)
    if found is None:
        raise MigrationRefused([f"no migration preview '{digest}' in this store: make one with "
                                f"`pathways migrate preview PATHWAY --to VERSION` and give its hash"])
    return found


def apply(store: Store, runtimes: Runtimes, digest: str) -> Moved:
    """Move the enrollments of a kept preview to its version, exactly as previewed: refused with
    every reason when anything it read has changed. One transaction per enrollment."""
    header, items = _kept(store, digest)
    authorize(store, PERMISSION, f"migrate {header.pathway} to {header.to_key}", header.hash)
    if header.status != "previewed":
        raise MigrationRefused([f"preview {header.hash[:12]} was {header.status} already: make a new preview"])
    problems = _changed_since(store, header, items)
    if problems:
        raise MigrationRefused(problems + [f"nothing migrated: make a new preview (`pathways migrate preview {header.pathway} "
                                           f"--to {header.to_key.split('@', 1)[1].split('#', 1)[0]}`)"])
    new = runtimes.get_version(header.to_key, store)
    result = Moved(header.hash, header.pathway, header.to_key)
    for item in items:
        if item.outcome == "blocked":
            result.stayed.append(item.enrollment_id)
            continue
        state, version = store.load(item.enrollment_id)
        if version != item.state_version:
            result.lost.append(item.enrollment_id)
            continue
        mapped = map_state(state, new).state
        payload = {Key.FROM: state.version_key, Key.TO: header.to_key, Key.PREVIEW: header.hash, "changes": json.loads(item.changes)}
        try:
            previews.move(store, header.hash, state, version, mapped, Action.ENROLLMENT_MIGRATED, payload, keep_old=True)
        except StaleState:
            result.lost.append(item.enrollment_id)
            continue
        result.moved.append(item.enrollment_id)
    previews.set_status(store, header.hash, "applied")
    return result


def _changed_since(store: Store, header, items) -> list[str]:
    """What changed since the preview read it: a newer version, advances, new facts."""
    problems = []
    wanted = version_tuple(header.to_key.split("@", 1)[1].split("#", 1)[0])
    newer = [v for v, _ in store.published_versions(header.pathway) if version_tuple(v) > wanted]
    if newer:
        problems.append(f"{header.pathway} {', '.join(newer)} was published after the version of this preview")
    now = previews.current_reads(store, [item.enrollment_id for item in items])
    for item in items:
        read = now.get(item.enrollment_id)
        if read is None:
            problems.append(f"{item.enrollment_id} no longer exists")
        elif read.from_key != item.from_key:
            problems.append(f"{item.enrollment_id} runs {read.from_key} now, not {item.from_key}")
        elif (read.state_version, read.as_of) != (item.state_version, item.as_of):
            problems.append(f"{item.enrollment_id} was advanced or recorded since the preview (to {read.as_of})")
        elif read.facts_digest != item.facts_digest:
            problems.append(f"{item.enrollment_id} has new facts since the preview (patient {read.patient})")
    return problems


def revert(store: Store, digest: str) -> Moved:
    """Put the enrollments an applied preview moved back on their old version and state; refused
    (nothing written) when any of them was advanced since the migration."""
    header, items = _kept(store, digest)
    authorize(store, PERMISSION, f"revert the migration of {header.pathway} to {header.to_key}", header.hash)
    if header.status != "applied":
        raise MigrationRefused([f"preview {header.hash[:12]} is {header.status}, not applied: nothing to revert"])
    moved = [item for item in items if item.old_state is not None]
    now = store.load_many([item.enrollment_id for item in moved]) if moved else {}
    problems = [f"{item.enrollment_id} was advanced or recorded since the migration (now at {now[item.enrollment_id][0].as_of})"
                for item in moved if now[item.enrollment_id][1] != item.applied_version]
    if problems:
        raise MigrationRefused(problems + ["nothing reverted: those enrollments run the new version now"])
    result = Moved(header.hash, header.pathway, header.to_key)
    for item in moved:
        state, version = now[item.enrollment_id]
        old = load_state(item.old_state)
        payload = {Key.FROM: state.version_key, Key.TO: old.version_key, Key.PREVIEW: header.hash}
        try:
            previews.move(store, header.hash, state, version, old, Action.ENROLLMENT_MIGRATION_REVERTED, payload, keep_old=False)
        except StaleState:
            result.lost.append(item.enrollment_id)
            continue
        result.moved.append(item.enrollment_id)
    previews.set_status(store, header.hash, "reverted")
    return result
