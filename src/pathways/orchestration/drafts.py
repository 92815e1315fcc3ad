"""Drafts of a pathway edited in the browser (``pathways web``, the coordinator's editor).

- ``check_draft``: the draft text checked as `pathways validate` checks the file it would replace:
  it is written to a scratch folder laid out as the pathway's own (its ``documents/`` and the
  ``_shared`` libraries linked, not copied), then read by the same loader and checks; the
  folder's interaction library is checked against it and the other pathways. Problems in the
  draft are named by the real file's name, line and column.
- ``save_draft``: the text replaces the pathway's file on disk (under PATHWAYS_PATH), atomically
  (a temporary file in the same folder, then a rename), and only when it is YAML that parses.
- ``catalogue``: each pathway on disk with its published versions (who published what when,
  from the trail's ``pathway.published`` entries) and whether the files are a draft.

Pathways are named, never given as paths: a name that is no pathway on PATHWAYS_PATH is refused.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import threading
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pathways.definition.interactions import check_interactions, interactions_file, read_interactions
from pathways.definition.loader import (PATHWAY_FILE, SHARED_DIR, LoadedPathway, Validation, display_path as _display, _Libraries,
                                        _validate_file, available_pathways, load_pathway)
from pathways.definition.model import PathwaySpec
from pathways.definition.yamlsource import MAX_BYTES, read_yaml
from pathways.errors import Location, Problem, ProblemsFound, errors
from pathways.orchestration.settings import current


class UnknownPathway(LookupError):
    """A name that is no pathway folder on PATHWAYS_PATH."""


def pathway_file(name: str) -> Path:
    """The pathway.yaml of the pathway ``name`` (a folder name on PATHWAYS_PATH; no paths)."""
    known = available_pathways(current().places)
    if name not in known:
        raise UnknownPathway(f"unknown pathway '{name}' (known: {', '.join(known) or 'none'})")
    return known[name]


@dataclass(frozen=True)
class DraftCheck:
    file: str  # the pathway file the draft would replace, as `validate` names it
    problems: list[Problem]  # in the draft (errors and warnings), located in its text
    elsewhere: list[Problem]  # in the files it uses (shared libraries, document templates)
    loaded: LoadedPathway | None  # the draft as a pathway, when it has no errors of its own

    @property
    def valid(self) -> bool:
        """What `pathways validate` on the folder would say: no errors, here or in the files it touches."""
        return self.loaded is not None and not errors(self.elsewhere)


def check_draft(name: str, text: str) -> DraftCheck:
    """Check ``text`` as the new content of pathway ``name``'s file (see the module's docstring)."""
    real = pathway_file(name)
    display = _display(real)
    with tempfile.TemporaryDirectory(prefix="pathways-draft-") as scratch:
        draft = _scratch_copy(real, Path(scratch), text)
        result = Validation()
        libraries = _Libraries(result, current().places)
        doc = _validate_file(draft, result, libraries)
        shown = _display(draft)
        mine = [dataclasses.replace(p, location=dataclasses.replace(p.location, file=display)) for p in result.problems
                if p.location.file == shown]
        other = [p for p in result.problems if p.location.file != shown]
        loaded = None
        if doc is not None and isinstance(doc.model, PathwaySpec) and not errors(result.problems):
            available, _ = libraries.for_pathway(draft)
            loaded = LoadedPathway(doc, tuple(available[u] for u in doc.model.uses), libraries.places)
    if loaded is not None:
        other += _interaction_problems(real, loaded)
    mine.sort(key=Problem.sort_key)
    return DraftCheck(display, mine, sorted(other, key=Problem.sort_key), loaded)


def _interaction_problems(real: Path, draft: LoadedPathway) -> list[Problem]:
    """The folder's interaction library (``_shared/interactions.yaml``) checked against the draft
    and the other pathways of the folder, as `pathways validate FOLDER` checks it."""
    root = real.parent.parent
    file = interactions_file(root)
    if file is None:
        return []
    doc, problems = read_interactions(file, _display(file))
    if doc is None:
        return problems
    found, broken = {draft.spec.id: draft}, set()
    for other in sorted(root.glob(f"*/{PATHWAY_FILE}")):
        if other.parent != real.parent:
            loaded = _sibling(other)
            if loaded is None:
                broken.add(other.parent.name)
            else:
                found[loaded.spec.id] = loaded
    return problems + check_interactions(doc, found, broken)


_SIBLINGS: dict[Path, tuple[tuple, LoadedPathway | None]] = {}  # per process: the other pathways, while unchanged


def _sibling(path: Path) -> LoadedPathway | None:
    stat = path.stat()
    signature = (stat.st_mtime_ns, stat.st_size, *(f.stat().st_mtime_ns for f in sorted(path.parent.parent.glob(f"{SHARED_DIR}/*.yaml"))))
    kept = _SIBLINGS.get(path.resolve())
    if kept is not None and kept[0] == signature:
        return kept[1]
    try:
        loaded = load_pathway(str(path), templates=False, places=current().places)
    except ProblemsFound:
        loaded = None
    _SIBLINGS[path.resolve()] = (signature, loaded)
    return loaded


def _scratch_copy(real: Path, scratch: Path, text: str) -> Path:
    """``scratch/<root>/<pathway>/pathway.yaml`` holding ``text``, beside links to everything the
    real file sees: the other entries of its folder (documents/) and of the folder above (_shared)."""
    folder, root = real.parent, real.parent.parent
    mirror = scratch / root.name / folder.name
    mirror.mkdir(parents=True)
    for entry in root.iterdir():
        if entry.name == SHARED_DIR:
            (mirror.parent / entry.name).symlink_to(entry.resolve(), target_is_directory=True)
    for entry in folder.iterdir():
        if entry.name != PATHWAY_FILE:
            (mirror / entry.name).symlink_to(entry.resolve(), target_is_directory=entry.is_dir())
    draft = mirror / PATHWAY_FILE
    draft.write_text(text, encoding="utf-8")
    return draft


class DraftNotSaved(ValueError):
    """The draft is not YAML that parses (or too big): the file on disk was left as it was."""

    def __init__(self, problems: list[Problem]):
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems


class DraftConflict(ValueError):
    """The file changed on disk since the editor read it (someone else saved): nothing written."""


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def save_draft(name: str, text: str, base: str | None = None) -> Path:
    """Replace pathway ``name``'s file with ``text``, atomically; DraftNotSaved (nothing written)
    unless it parses as YAML; DraftConflict when ``base`` (the content hash of the file as the
    editor read it) no longer matches the file. Checks beyond parsing do not stop a draft from
    being saved. Two saves at once in one process are taken one after the other."""
    real = pathway_file(name)
    with _SAVING:
        if base is not None and content_hash(real.read_text(encoding="utf-8")) != base:
            raise DraftConflict(f"{_display(real)} was changed by someone else since you opened it: nothing was saved; "
                                "copy your changes, reload the editor and apply them again")
        return _replace(real, text)


_SAVING = threading.Lock()


def _replace(real: Path, text: str) -> Path:
    if len(text.encode("utf-8")) > MAX_BYTES:
        raise DraftNotSaved([Problem(Location(_display(real), 1, 1), "PW004", f"the draft is over the {MAX_BYTES // 1_000_000} MB limit",
                                     "check that this is the text you meant")])
    fd, tmp = tempfile.mkstemp(prefix=".pathway-", suffix=".yaml.tmp", dir=real.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        source, problems = read_yaml(Path(tmp), _display(real))
        if source is None or problems:
            raise DraftNotSaved(problems)
        os.chmod(tmp, real.stat().st_mode & 0o777)
        os.replace(tmp, real)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return real


@dataclass(frozen=True)
class CatalogueEntry:
    name: str
    title: str
    version: str  # on disk
    version_key: str | None  # of the files on disk; None when they do not validate
    problems: int  # errors in the files on disk
    published: list[dict]  # who published which version when, oldest first
    draft: bool  # the files on disk are no published version (an edit, or a new version)


def catalogue(store, runtimes) -> list[CatalogueEntry]:
    """Every pathway on PATHWAYS_PATH with its published versions and whether its files are a draft."""
    published: dict[str, list[dict]] = {}
    for entry in store.publications():
        published.setdefault(entry["pathway"], []).append(entry)
    listed = []
    for name in available_pathways(current().places):
        try:
            loaded = runtimes.get(name)
        except ProblemsFound as exc:
            spec, key, count = None, None, len(errors(exc.problems))
        else:
            spec, key, count = loaded.loaded.spec, loaded.evaluator.plan.version_key, 0
        mine = published.get(name, [])
        listed.append(CatalogueEntry(name, spec.title.nl if spec else name, spec.version if spec else "?", key, count, mine,
                                     key is None or key not in {p["version_key"] for p in mine}))
    return listed


def latest_published(store, runtimes, name: str) -> tuple[str, LoadedPathway] | None:
    """The most recently published version of ``name`` (its key and the pathway rebuilt from the
    trail), or None when none is."""
    versions = store.published_versions(name)
    if not versions:
        return None
    key = versions[-1][1]
    return key, runtimes.get_version(key, store).loaded
